//! The engine actor: the one thread that owns the llama.cpp context (which is not `Send`).
//!
//! Every request becomes sequences in one shared KV cache (unified, so cells are shared
//! between sequences). Each loop iteration puts the pending tokens of every running
//! sequence, from every request, into one batch and decodes it. Forked sequences whose
//! pending tokens are identical form a *group*: those tokens go into the batch once, tagged
//! with all the group's sequence ids, and each member samples its own next token from the
//! same logits. That is how N samples of one prompt cost one prefill.
//!
//! This file is the loop and the commands; the parts are `fill` (what goes into a batch and
//! what it costs), `runs` (when a generation ends), `prefix_cache`, `seqs`, `jobs`,
//! `sessions` and `probes`. llama.cpp sits behind `backend::Backend`, so everything but
//! `backend::Llama` runs in unit tests on a fake decode step.

mod backend;
mod fill;
mod jobs;
mod prefix_cache;
mod probes;
mod runs;
mod seqs;
mod sessions;
#[cfg(test)]
mod drop_tests;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use ponder_core::{BranchId, FinishReason, GenError, Step, StepParams, TopLogprob, Usage};
use tokio::sync::{mpsc, oneshot};

use crate::sampler;
pub(crate) use backend::{Backend, Llama};
use fill::Slot;
use jobs::Job;
pub(crate) use jobs::{kv_need, SampleJob};
use prefix_cache::PrefixCache;
use probes::Probe;
use runs::Position;
pub(crate) use runs::SpanSetup;
use seqs::{Owner, Seq, SeqId};
use sessions::Session;

pub(crate) type SessionId = u64;
type Reply<T> = oneshot::Sender<Result<(T, Usage), GenError>>;

pub(crate) enum Command {
    Sample(Box<SampleJob>),
    Open { prompt: Vec<LlamaToken>, seed: u64, reprefill: bool, reply: oneshot::Sender<Result<(SessionId, Usage), GenError>> },
    /// Next-token log-probabilities of `candidates` after `suffix` on each branch.
    Probe {
        session: SessionId,
        branches: Vec<BranchId>,
        suffix: Vec<LlamaToken>,
        candidates: Vec<LlamaToken>,
        reply: Reply<Vec<Vec<f32>>>,
    },
    /// Next-token log-probabilities of `candidates` after each token sequence (reward
    /// models); sequences reuse and then join the prefix cache.
    Score { sequences: Vec<Vec<LlamaToken>>, candidates: Vec<LlamaToken>, reply: Reply<Vec<Vec<f32>>> },
    Fork { session: SessionId, branch: BranchId, n: usize, reply: Reply<Vec<BranchId>> },
    Extend { session: SessionId, branches: Vec<BranchId>, params: StepParams, reply: Reply<Vec<Step>> },
    Rollback { session: SessionId, branch: BranchId, n_tokens: usize, reply: Reply<()> },
    Release { session: SessionId, branches: Vec<BranchId>, reply: Reply<()> },
    Append { session: SessionId, branch: BranchId, tokens: Vec<LlamaToken>, reply: Reply<()> },
    Close { session: SessionId },
    Tokens { session: SessionId, branch: BranchId, reply: Reply<Vec<LlamaToken>> },
    Stats { reply: oneshot::Sender<Stats> },
}

/// What the actor holds right now (for tests and diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub live_seqs: usize,
    pub cache_entries: usize,
    pub sessions: usize,
    pub jobs: usize,
}

pub(crate) struct Limits {
    pub n_batch: usize,
    /// Most tokens in a batch that feeds several sequences (0: `n_batch`).
    pub shared_rows: usize,
    pub n_seq_max: usize,
    pub n_ctx_seq: usize,
    /// KV cells in the unified cache, shared by all sequences.
    pub n_ctx: usize,
    pub cache_entries: usize,
}

pub(crate) struct Actor<B> {
    backend: B,
    limits: Limits,
    free: Vec<SeqId>,
    seqs: HashMap<SeqId, Seq>,
    jobs: HashMap<u64, Job>,
    sessions: HashMap<SessionId, Session>,
    probes: HashMap<u64, Probe>,
    cache: PrefixCache,
    waiting: VecDeque<Box<SampleJob>>,
    next_id: u64,
    /// KV cells reserved by running sample jobs.
    reserved: usize,
    /// Scratch buffers for sampling, reused across tokens.
    sampler: sampler::Sampler,
}

impl<B: Backend> Actor<B> {
    pub fn new(backend: B, limits: Limits) -> Self {
        let free = (0..limits.n_seq_max as SeqId).rev().collect();
        Self {
            backend,
            free,
            seqs: HashMap::new(),
            jobs: HashMap::new(),
            sessions: HashMap::new(),
            probes: HashMap::new(),
            cache: PrefixCache::new(limits.cache_entries),
            limits,
            waiting: VecDeque::new(),
            next_id: 1,
            reserved: 0,
            sampler: sampler::Sampler::default(),
        }
    }

    pub fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            // Waiting jobs are admitted whenever something may have freed room: after
            // commands and after every step.
            self.admit_waiting();
            if !self.busy() {
                match rx.blocking_recv() {
                    Some(cmd) => self.handle(cmd),
                    None => return,
                }
                continue;
            }
            while let Ok(cmd) = rx.try_recv() {
                self.handle(cmd);
            }
            self.reap_cancelled();
            self.admit_waiting();
            self.step();
        }
    }

    fn busy(&self) -> bool {
        self.seqs.values().any(Seq::is_running)
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn usage_of(&mut self, owner: Owner) -> Option<&mut Usage> {
        match owner {
            Owner::Job(j) => self.jobs.get_mut(&j).map(|j| &mut j.usage),
            Owner::Session(s) => self.sessions.get_mut(&s).map(|s| &mut s.usage),
            Owner::Probe(p) => self.probes.get_mut(&p).map(|p| &mut p.usage),
            Owner::Cache => None,
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Sample(job) => self.waiting.push_back(job),
            Command::Open { prompt, seed, reprefill, reply } => {
                let _ = reply.send(self.open(prompt, seed, reprefill));
            }
            Command::Probe { session, branches, suffix, candidates, reply } => {
                match self.probe_branches(session, &branches, &suffix) {
                    Ok(sequences) => self.start_probe(sequences, candidates, false, reply),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Score { sequences, candidates, reply } => {
                let sequences = sequences.into_iter().map(|t| (t, None)).collect();
                self.start_probe(sequences, candidates, true, reply);
            }
            Command::Fork { session, branch, n, reply } => {
                let r = self.fork(session, branch, n);
                let _ = reply.send(r.map(|v| (v, self.sessions[&session].usage)));
            }
            Command::Extend { session, branches, params, reply } => self.extend(session, branches, params, reply),
            Command::Rollback { session, branch, n_tokens, reply } => {
                let r = self.rollback(session, branch, n_tokens);
                let _ = reply.send(r.map(|()| ((), self.sessions[&session].usage)));
            }
            Command::Append { session, branch, tokens, reply } => {
                let r = self.append(session, branch, tokens);
                let _ = reply.send(r.map(|()| ((), self.sessions[&session].usage)));
            }
            Command::Release { session, branches, reply } => {
                let r = self.release(session, &branches);
                let _ = reply.send(r.map(|()| ((), self.sessions[&session].usage)));
            }
            Command::Tokens { session, branch, reply } => {
                let r = self.branch_seq(session, branch).map(|q| (self.seqs[&q].tokens.clone(), self.sessions[&session].usage));
                let _ = reply.send(r);
            }
            Command::Stats { reply } => {
                let _ = reply.send(Stats {
                    live_seqs: self.seqs.len(),
                    cache_entries: self.cache.len(),
                    sessions: self.sessions.len(),
                    jobs: self.jobs.len() + self.waiting.len(),
                });
            }
            Command::Close { session } => self.close(session),
        }
    }

    // ---- the batch loop ----

    fn step(&mut self) {
        let slots = fill::fill(&self.seqs, self.limits.n_batch, self.limits.shared_rows);
        if slots.is_empty() {
            return;
        }
        for slot in &slots {
            if let Some(u) = self.usage_of(slot.owner) {
                u.prompt_computed += slot.prompt_computed;
                u.prompt_reused += slot.prompt_reused;
            }
        }
        if let Err(e) = self.backend.decode(&slots) {
            self.fail_batch(&slots, e);
            return;
        }
        for mut slot in slots {
            fill::computed(&mut self.seqs, &slot);
            let Some(idx) = slot.logits_at else { continue };
            // A job's root goes first, into the prefix cache: the job may end (and free what
            // it owns) as soon as its last sample finishes below.
            slot.members.sort_by_key(|m| !self.seqs[m].prefill_only);
            for &m in &slot.members {
                // An earlier member's finish can end its job and free the rest of it.
                let Some(s) = self.seqs.get_mut(&m) else { continue };
                s.group = None;
                self.after_logits(m, idx);
            }
        }
    }

    fn fail_batch(&mut self, slots: &[Slot], e: DecodeError) {
        let msg = match e {
            DecodeError::NoKvCacheSlot => "the KV cache is full: lower the number of parallel samples or max tokens, or raise --ctx".to_string(),
            other => format!("llama.cpp decode failed: {other}"),
        };
        tracing::error!(%msg, "decode failed");
        let owners: Vec<Owner> = slots.iter().flat_map(|s| s.members.iter().map(|m| self.seqs[m].owner)).collect();
        for owner in owners {
            match owner {
                Owner::Job(j) => self.fail_job(j, &msg),
                Owner::Session(s) => self.fail_session(s, &msg),
                Owner::Probe(p) => self.fail_probe(p, &msg),
                Owner::Cache => {}
            }
        }
    }

    /// A sequence has logits at batch index `idx`: sample its next token (or, for a job's
    /// root, file it in the prefix cache).
    fn after_logits(&mut self, id: SeqId, idx: i32) {
        let s = self.seqs.get_mut(&id).expect("live sequence");
        if s.prefill_only {
            s.prefill_only = false;
            self.add_to_cache(id);
            return;
        }
        let Some(run) = s.run.as_mut() else { return };
        if let Some(candidates) = run.probe.clone() {
            let lp = sampler::log_probs_of(self.backend.logits(idx), &candidates);
            self.finish_probe(id, lp);
            return;
        }
        let logits = self.backend.logits(idx);
        let k = run.params.token_stats_k as usize;
        let stats = (k > 0).then(|| sampler::token_stats(logits, k));
        let top = run.params.top_logprobs as usize;
        if top > 0 {
            let listed = sampler::top_logprobs(logits, top);
            let backend = &self.backend;
            run.record_top(listed.into_iter().map(|(t, logprob)| TopLogprob { bytes: backend.piece(LlamaToken(t as i32)), logprob }).collect());
        }
        let picked = self.sampler.pick(logits, &run.params, &mut s.rng);
        let token = LlamaToken(picked.token as i32);
        let piece = if self.backend.is_eog(token) && !run.params.ignore_eos {
            None
        } else {
            s.tokens.push(token);
            // Ids only need to be unique (ids of other kinds share the counter harmlessly).
            self.next_id += 1;
            s.cells.push(self.next_id);
            Some(self.backend.piece(token))
        };
        let at = Position { total_generated: s.tokens.len() - s.n_prompt, n_tokens: s.tokens.len(), n_ctx_seq: self.limits.n_ctx_seq };
        let finish = run.accept(picked.logprob, stats, piece.as_deref(), at);
        // A thinking budget closed the span: its close marker and answer prefix are fed
        // next, as prompt work, and the model goes on with the answer.
        if let (None, Some(forced)) = (&finish, run.forced()) {
            let at = s.tokens.len();
            s.tokens.extend_from_slice(forced);
            s.cells.resize(s.cells.len() + forced.len(), seqs::NOT_GENERATED);
            s.forced = at..s.tokens.len();
        }
        let owner = s.owner;
        if let Some(u) = self.usage_of(owner) {
            u.completion += 1;
        }
        if let Some(f) = finish {
            self.finish(id, f);
        }
    }

    fn finish(&mut self, id: SeqId, finish: FinishReason) {
        let s = self.seqs.get_mut(&id).expect("live sequence");
        let out = s.run.take().expect("finishing a running sequence").output(&finish);
        let (owner, tag) = (s.owner, s.tag);
        match owner {
            Owner::Job(j) => {
                self.free_seq(id);
                self.sample_done(j, tag, out, finish);
            }
            Owner::Session(sid) => self.step_done(sid, tag, out, finish),
            Owner::Probe(_) | Owner::Cache => {}
        }
    }
}
