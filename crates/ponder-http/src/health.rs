//! What each endpoint of a fleet did, as ponder saw it, and which ones are down: the
//! counts a user reconciles with each server's own counters, and the short memory that
//! sends requests past a server that refused connections instead of trying it first each time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ponder_core::Usage;
use serde::Serialize;

/// How long an endpoint that refused a connection goes last in the order of attempts.
pub(crate) const DOWN_FOR: Duration = Duration::from_secs(5);

/// One endpoint's calls and the tokens their answers reported (generation calls only: the
/// start-up checks and prompt rendering are left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    pub url: String,
    /// Attempts answered with a usable body.
    pub answered: u64,
    /// Attempts that failed (transport error, an error status, a broken body, no answer in
    /// time; not those cancelled by their caller, who counts them as unreported).
    pub failed: u64,
    /// Failed attempts the server may have computed something for: their work is in no usage.
    pub lost: u64,
    /// Attempts refused before any connection was made.
    pub refused: u64,
    /// Tokens the answered attempts reported: prompt computed, prompt from the server's cache,
    /// completion.
    pub prompt_computed: u64,
    pub prompt_reused: u64,
    pub completion: u64,
}

impl EndpointStats {
    /// The reported tokens as a `Usage` (no wall time, no passes).
    pub fn usage(&self) -> Usage {
        Usage { prompt_computed: self.prompt_computed, prompt_reused: self.prompt_reused, completion: self.completion, ..Usage::default() }
    }
}

#[derive(Default)]
pub(crate) struct Health {
    answered: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    refused: AtomicU64,
    prompt_computed: AtomicU64,
    prompt_reused: AtomicU64,
    completion: AtomicU64,
    down_until: Mutex<Option<Instant>>,
}

impl Health {
    pub fn answered(&self, u: &Usage) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        self.prompt_computed.fetch_add(u.prompt_computed, Ordering::Relaxed);
        self.prompt_reused.fetch_add(u.prompt_reused, Ordering::Relaxed);
        self.completion.fetch_add(u.completion, Ordering::Relaxed);
        *self.down_until.lock().expect("not poisoned") = None;
    }

    /// A failed attempt; `refused`: no connection was made (the server is not there).
    pub fn failed(&self, lost: bool, refused: bool) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.lost.fetch_add(u64::from(lost), Ordering::Relaxed);
        if refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
            *self.down_until.lock().expect("not poisoned") = Some(Instant::now() + DOWN_FOR);
        }
    }

    pub fn is_down(&self) -> bool {
        self.down_until.lock().expect("not poisoned").is_some_and(|t| Instant::now() < t)
    }

    pub fn snapshot(&self, url: &str) -> EndpointStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EndpointStats {
            url: url.to_string(),
            answered: get(&self.answered),
            failed: get(&self.failed),
            lost: get(&self.lost),
            refused: get(&self.refused),
            prompt_computed: get(&self.prompt_computed),
            prompt_reused: get(&self.prompt_reused),
            completion: get(&self.completion),
        }
    }
}

/// The order in which a call routed to `route` tries the `n` endpoints: from `route` on,
/// those not marked down first (all of them when every one is down: a server restarted
/// is found again).
pub(crate) fn order(route: usize, n: usize, down: impl Fn(usize) -> bool) -> Vec<usize> {
    let ring = (0..n).map(|k| (route + k) % n);
    let (up, down): (Vec<usize>, Vec<usize>) = ring.partition(|&i| !down(i));
    up.into_iter().chain(down).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_endpoint_goes_last_and_the_ring_order_stays() {
        assert_eq!(order(1, 3, |_| false), vec![1, 2, 0]);
        assert_eq!(order(1, 3, |i| i == 1), vec![2, 0, 1]);
        assert_eq!(order(0, 3, |i| i == 1), vec![0, 2, 1]);
        assert_eq!(order(2, 3, |_| true), vec![2, 0, 1], "all down: all tried, in ring order");
    }

    #[test]
    fn refused_marks_down_and_an_answer_clears_it() {
        let h = Health::default();
        h.failed(true, false);
        assert!(!h.is_down(), "a server that answered badly is there");
        h.failed(false, true);
        assert!(h.is_down());
        h.answered(&Usage { prompt_computed: 3, prompt_reused: 2, completion: 5, ..Usage::default() });
        assert!(!h.is_down());
        let s = h.snapshot("u");
        assert_eq!((s.answered, s.failed, s.lost, s.refused), (1, 2, 1, 1));
        assert_eq!((s.prompt_computed, s.prompt_reused, s.completion), (3, 2, 5));
    }
}
