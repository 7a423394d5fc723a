//! A fixed set of worker threads running checks in parallel, each in its own sandbox.
//!
//! Plain threads and channels, so sync callers need no runtime (async callers can wrap a
//! call in `spawn_blocking`). A worker is never stuck: every check ends by its deadline,
//! and a panic inside one becomes [`Outcome::SandboxError`].

use super::{CheckRequest, Outcome, Sandbox};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

struct Job {
    idx: usize,
    request: CheckRequest,
    reply: Sender<(usize, Outcome)>,
}

/// Runs many checks at once.
pub struct Pool {
    sandbox: Arc<Sandbox>,
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool of `n_workers` threads (at least 1).
    pub fn new(sandbox: Sandbox, n_workers: usize) -> Pool {
        let sandbox = Arc::new(sandbox);
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..n_workers.max(1))
            .map(|worker_idx| {
                let sandbox = Arc::clone(&sandbox);
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name(format!("ponder-check-{worker_idx}"))
                    .spawn(move || work(&sandbox, &queue))
                    .expect("spawning a pool thread") // only fails when the OS is out of threads
            })
            .collect();
        Pool {
            sandbox,
            jobs: Some(jobs),
            workers,
        }
    }

    /// A pool with one worker per available core.
    pub fn with_default_size(sandbox: Sandbox) -> Pool {
        Pool::new(sandbox, default_size())
    }

    pub fn size(&self) -> usize {
        self.workers.len()
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Runs one check on a pool worker.
    pub fn check(&self, request: CheckRequest) -> Outcome {
        self.check_many(vec![request])
            .pop()
            .unwrap_or_else(|| Outcome::SandboxError {
                detail: "no result".into(),
            })
    }

    /// Runs all checks, as many at a time as there are workers; results in request order.
    pub fn check_many(&self, requests: Vec<CheckRequest>) -> Vec<Outcome> {
        let n = requests.len();
        let (reply, results) = channel();
        if let Some(jobs) = &self.jobs {
            for (idx, request) in requests.into_iter().enumerate() {
                // Sending fails only if every worker is gone; the missing results say so below.
                let _ = jobs.send(Job {
                    idx,
                    request,
                    reply: reply.clone(),
                });
            }
        }
        drop(reply);
        let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
        for (idx, outcome) in results {
            outcomes[idx] = Some(outcome);
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Outcome::SandboxError {
                    detail: "pool worker lost the check".into(),
                })
            })
            .collect()
    }
}

/// One worker per available core.
pub(crate) fn default_size() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn work(sandbox: &Sandbox, queue: &Mutex<Receiver<Job>>) {
    loop {
        // Nothing panics while the lock is held, but a poisoned lock is still usable.
        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { return };
        let outcome = catch_unwind(AssertUnwindSafe(|| sandbox.check(&job.request)))
            .unwrap_or_else(|_| Outcome::SandboxError {
                detail: "check panicked".into(),
            });
        let _ = job.reply.send((job.idx, outcome)); // the caller may have gone; nothing to do
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None; // workers see the queue close and return
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
