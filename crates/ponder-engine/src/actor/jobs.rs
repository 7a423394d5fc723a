//! Sample jobs: N samples of one prompt, admitted only when their KV cells fit, prefilled
//! once in a root sequence that its N children fork from, streamed back sample by sample.

use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::token::LlamaToken;
use ponder_core::{derive_seed, CancelToken, FinishReason, GenError, GenEvent, Sample, SamplingParams, Usage};
use tokio::sync::mpsc;

use super::backend::Backend;
use super::runs::{Output, Run, SpanSetup};
use super::seqs::{Owner, Seq};
use super::Actor;

pub(crate) struct SampleJob {
    pub prompt: Vec<LlamaToken>,
    pub n: usize,
    pub first_index: usize,
    pub params: SamplingParams,
    pub cancel: CancelToken,
    pub events: mpsc::UnboundedSender<GenEvent>,
    /// Reasoning spans to follow, when the params name markers.
    pub spans: Option<Arc<SpanSetup>>,
}

impl SampleJob {
    /// Most tokens a sample adds to its sequence: generated, plus what a thinking budget forces.
    pub fn max_added(&self) -> usize {
        self.params.max_tokens as usize
            + self
                .spans
                .as_ref()
                .filter(|s| s.budget.is_some())
                .map_or(0, |s| s.forced_tokens.len())
    }
}

pub(super) struct Job {
    remaining: usize,
    /// KV cells held back for this job (see [`kv_need`]).
    reserved: usize,
    pub usage: Usage,
    events: mpsc::UnboundedSender<GenEvent>,
    cancel: CancelToken,
    /// Samples stopped one by one that the actor has handled (`CancelToken::stops_since`).
    stops_seen: usize,
    started: Instant,
}

/// KV cells a sample job needs at most: its prompt once (shared) plus every sample at
/// full length.
pub(crate) fn kv_need(prompt: usize, n: usize, max_tokens: usize, n_ctx_seq: usize) -> usize {
    prompt + n * max_tokens.min(n_ctx_seq.saturating_sub(prompt))
}

impl<B: Backend> Actor<B> {
    pub(super) fn admit_waiting(&mut self) {
        // Jobs cancelled while queued end at once, wherever they stand in the queue.
        self.waiting.retain(|job| {
            let dead = job.cancel.is_cancelled() || job.events.is_closed();
            if dead {
                let _ = job.events.send(GenEvent::Done(Usage::default()));
            }
            !dead
        });
        while let Some(job) = self.waiting.pop_front() {
            if self.free.len() < job.n + 1 {
                self.evict_cache(job.n + 1);
            }
            // Admit only what fits in the KV cache at its longest, so a running job never
            // fails for want of cells; cached prefixes give way first.
            let need = kv_need(
                job.prompt.len(),
                job.n,
                job.max_added(),
                self.limits.n_ctx_seq,
            );
            while self.reserved + need + self.cache_cells() > self.limits.n_ctx
                && !self.cache.is_empty()
            {
                self.evict_one_cache_entry();
            }
            let fits = self.reserved + need + self.cache_cells() <= self.limits.n_ctx || self.reserved == 0;
            if self.free.len() < job.n + 1 || !fits {
                self.waiting.push_front(job);
                return;
            }
            self.reserved += need;
            self.start_job(*job, need);
        }
    }

    fn start_job(&mut self, job: SampleJob, reserved: usize) {
        let id = self.fresh_id();
        let p = job.prompt.len();
        let root = self.alloc().expect("admission checked free ids");
        let reused = self.reuse_prefix(root, &job.prompt);
        let group = self.fresh_id();
        let mut seq = Seq::new(job.prompt, reused, Owner::Job(id), 0, 0);
        seq.prefill_only = true;
        seq.group = Some(group);
        self.seqs.insert(root, seq);
        // A backend without sharing would compute the prompt once per sample.
        let usage = Usage { prompt_reused: (job.n * p - (p - reused)) as u64, ..Usage::default() };
        self.jobs.insert(
            id,
            Job { remaining: job.n, reserved, usage, events: job.events, cancel: job.cancel, stops_seen: 0, started: Instant::now() },
        );
        let params = Arc::new(job.params);
        for i in 0..job.n {
            let index = (job.first_index + i) as u64;
            let child = self
                .fork_seq(root, derive_seed(params.seed, index), index)
                .expect("admission checked free ids");
            let run = Run::sample(params.clone());
            let run = match &job.spans {
                Some(setup) => run.with_spans(setup.clone()),
                None => run,
            };
            self.seqs.get_mut(&child).expect("just forked").run = Some(run);
        }
    }

    /// Ends cancelled jobs and the samples stopped one by one, before the next decode
    /// step, so their cells are free for it.
    pub(super) fn reap_cancelled(&mut self) {
        let dead: Vec<u64> =
            self.jobs.iter().filter(|(_, j)| j.cancel.is_cancelled() || j.events.is_closed()).map(|(&id, _)| id).collect();
        for id in dead {
            self.cancel_job(id);
        }
        let stops: Vec<(u64, Vec<usize>)> = self
            .jobs
            .iter_mut()
            .filter_map(|(&id, j)| {
                let new = j.cancel.stops_since(j.stops_seen);
                j.stops_seen += new.len();
                (!new.is_empty()).then_some((id, new))
            })
            .collect();
        for (id, indices) in stops {
            for index in indices {
                self.stop_sample(id, index as u64);
            }
        }
    }

    /// The samples still running end as `Cancelled`, with what they generated; then the job.
    fn cancel_job(&mut self, id: u64) {
        for s in self.owned_by(Owner::Job(id)) {
            if self.seqs.get(&s).is_some_and(|q| q.run.is_some()) {
                self.finish(s, FinishReason::Cancelled);
            }
        }
        self.end_job(id);
    }

    /// Sample `index` of job `id` ends as `Stopped` and frees its cells, if it still runs.
    fn stop_sample(&mut self, id: u64, index: u64) {
        let running = self.owned_by(Owner::Job(id)).into_iter().find(|s| self.seqs[s].tag == index && self.seqs[s].run.is_some());
        if let Some(s) = running {
            self.finish(s, FinishReason::Stopped);
        }
    }

    /// Frees the job's sequences and sends its usage (tokens of unfinished samples included).
    pub(super) fn end_job(&mut self, id: u64) {
        for s in self.owned_by(Owner::Job(id)) {
            // A sample stopped midway keeps its thinking tokens in the count.
            let thinking = self.seqs[&s]
                .run
                .as_ref()
                .and_then(Run::thinking_tokens)
                .unwrap_or(0);
            if let Some(job) = self.jobs.get_mut(&id) {
                job.usage.thinking += thinking as u64;
            }
            self.free_seq(s);
        }
        if let Some(mut job) = self.jobs.remove(&id) {
            self.reserved -= job.reserved;
            job.usage.wall_ms = job.started.elapsed().as_millis() as u64;
            let _ = job.events.send(GenEvent::Done(job.usage));
        }
    }

    /// Sample `index` of job `id` is done: stream it, and end the job after its last.
    pub(super) fn sample_done(&mut self, id: u64, index: u64, out: Output, finish: FinishReason) {
        let sample = Sample {
            index: index as usize,
            text: out.text,
            n_tokens: out.n_tokens,
            token_logprobs: out.token_logprobs,
            token_bytes: out.token_bytes,
            token_stats: out.token_stats,
            top_logprobs: out.top_logprobs,
            finish,
            n_thinking: out.n_thinking,
        };
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.usage.thinking += sample.n_thinking.unwrap_or(0) as u64;
        if sample.finish.is_dropped() {
            job.usage.dropped += sample.n_tokens as u64;
        }
        let _ = job.events.send(GenEvent::Sample(sample));
        job.remaining -= 1;
        if job.remaining == 0 {
            self.end_job(id);
        }
    }

    pub(super) fn fail_job(&mut self, id: u64, msg: &str) {
        if let Some(job) = self.jobs.get(&id) {
            let _ = job.events.send(GenEvent::Failed { index: usize::MAX, error: GenError::Backend(msg.to_string()) });
        }
        self.end_job(id);
    }
}
