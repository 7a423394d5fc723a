//! Probes: next-token log-probabilities of a few candidate tokens after a text — a branch
//! plus a question (self-evaluation), or whole token sequences (reward models, which keep
//! them in the prefix cache for the next step).

use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::token::LlamaToken;
use ponder_core::{BranchId, GenError, Usage};

use super::backend::Backend;
use super::runs::Run;
use super::seqs::{Owner, Seq, SeqId};
use super::{Actor, Reply, SessionId};

/// A probe sequence: its tokens, and where to copy KV from (a branch and how many of its
/// tokens are computed), or `None` to use the prefix cache.
pub(super) type ProbeSeq = (Vec<LlamaToken>, Option<(SeqId, usize)>);

/// A batch of next-token probes (self-evaluation, reward models).
pub(super) struct Probe {
    results: Vec<Option<Vec<f32>>>,
    remaining: usize,
    /// Keep the sequences in the prefix cache afterwards (reward-model scoring, whose next
    /// call extends the same texts).
    keep: bool,
    pub usage: Usage,
    reply: Reply<Vec<Vec<f32>>>,
    started: Instant,
}

impl<B: Backend> Actor<B> {
    /// Probe sequences for `branches`: each branch's tokens plus `suffix`, its KV copied.
    pub(super) fn probe_branches(
        &mut self,
        session: SessionId,
        branches: &[BranchId],
        suffix: &[LlamaToken],
    ) -> Result<Vec<ProbeSeq>, GenError> {
        if suffix.is_empty() {
            return Err(GenError::InvalidRequest("a probe needs a non-empty suffix".into()));
        }
        let mut out = Vec::with_capacity(branches.len());
        for &b in branches {
            let seq = self.branch_seq(session, b)?;
            let s = &self.seqs[&seq];
            if s.run.is_some() {
                return Err(GenError::InvalidRequest(format!("branch {b} is being extended")));
            }
            let mut tokens = s.tokens.clone();
            tokens.extend_from_slice(suffix);
            out.push((tokens, Some((seq, s.n_past))));
        }
        Ok(out)
    }

    /// Starts one probe sequence per entry.
    pub(super) fn start_probe(
        &mut self,
        sequences: Vec<ProbeSeq>,
        candidates: Vec<LlamaToken>,
        keep: bool,
        reply: Reply<Vec<Vec<f32>>>,
    ) {
        let n = sequences.len();
        let fail = |reply: Reply<Vec<Vec<f32>>>, e: GenError| {
            let _ = reply.send(Err(e));
        };
        if n == 0 {
            let _ = reply.send(Ok((Vec::new(), Usage::default())));
            return;
        }
        if candidates.is_empty() {
            return fail(reply, GenError::InvalidRequest("a probe needs at least one candidate token".into()));
        }
        if let Some((t, _)) = sequences.iter().find(|(t, _)| t.is_empty() || t.len() >= self.limits.n_ctx_seq) {
            return fail(reply, GenError::PromptTooLong { prompt_tokens: t.len(), context: self.limits.n_ctx_seq });
        }
        if self.free.len() < n {
            self.evict_cache(n);
        }
        if self.free.len() < n {
            return fail(
                reply,
                GenError::Backend(format!(
                    "cannot probe {n} sequences: only {} free (engine limit {})",
                    self.free.len(),
                    self.limits.n_seq_max
                )),
            );
        }
        let id = self.fresh_id();
        let candidates = Arc::new(candidates);
        let mut usage = Usage { scorer_passes: n as u64, ..Usage::default() };
        for (i, (tokens, source)) in sequences.into_iter().enumerate() {
            let seq = self.alloc().expect("free ids checked");
            let n_past = match source {
                Some((src, n_past)) => {
                    if n_past > 0 {
                        self.backend.copy_kv(src, seq, n_past);
                    }
                    n_past
                }
                None => self.reuse_prefix(seq, &tokens),
            };
            usage.prompt_reused += n_past as u64;
            // Every fed token of a probe is prompt work (`n_prompt` covers them all).
            let mut s = Seq::new(tokens, n_past, Owner::Probe(id), 0, i as u64);
            s.run = Some(Run::probe(candidates.clone()));
            self.seqs.insert(seq, s);
        }
        self.probes.insert(
            id,
            Probe { results: vec![None; n], remaining: n, keep, usage, reply, started: Instant::now() },
        );
    }

    /// Probe sequence `id` read its candidates' log-probabilities; the probe answers after
    /// the last.
    pub(super) fn finish_probe(&mut self, id: SeqId, logprobs: Vec<f32>) {
        let s = self.seqs.get_mut(&id).expect("live sequence");
        s.run = None;
        let (Owner::Probe(p), tag) = (s.owner, s.tag) else { return };
        if self.probes.get(&p).is_some_and(|x| x.keep) {
            self.add_to_cache(id);
        } else {
            self.free_seq(id);
        }
        let Some(probe) = self.probes.get_mut(&p) else { return };
        probe.results[tag as usize] = Some(logprobs);
        probe.remaining -= 1;
        if probe.remaining == 0 {
            let mut probe = self.probes.remove(&p).expect("present above");
            probe.usage.wall_ms = probe.started.elapsed().as_millis() as u64;
            let results = probe.results.into_iter().map(|r| r.expect("every probe answered")).collect();
            let _ = probe.reply.send(Ok((results, probe.usage)));
        }
    }

    pub(super) fn fail_probe(&mut self, id: u64, msg: &str) {
        for q in self.owned_by(Owner::Probe(id)) {
            self.free_seq(q);
        }
        if let Some(probe) = self.probes.remove(&id) {
            let _ = probe.reply.send(Err(GenError::Backend(msg.to_string())));
        }
    }
}
