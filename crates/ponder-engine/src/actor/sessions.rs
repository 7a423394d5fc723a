//! Step-wise sessions: branches that fork (sharing KV cells), extend by one step each,
//! roll back, take forced tokens and are released, with the session's usage.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::token::LlamaToken;
use ponder_core::{derive_seed, BranchId, FinishReason, GenError, Step, StepParams, Usage};

use super::backend::Backend;
use super::runs::{Output, Run};
use super::seqs::{unshared_generated, Owner, Seq, SeqId, NOT_GENERATED};
use super::{Actor, Reply, SessionId};

pub(super) struct Session {
    seed: u64,
    /// Re-prefill every branch at every step (no KV sharing, no prefix cache): the cost an
    /// HTTP backend without a prefix cache pays, for benchmarks.
    reprefill: bool,
    pub branches: HashMap<BranchId, SeqId>,
    next_branch: BranchId,
    pub usage: Usage,
    extend: Option<PendingExtend>,
    /// Branches whose last step ended them on their own (not `StepEnd`, not
    /// `LowConfidence`): releasing them drops nothing.
    ended: HashSet<BranchId>,
}

struct PendingExtend {
    order: Vec<BranchId>,
    done: HashMap<BranchId, Step>,
    reply: Reply<Vec<Step>>,
    started: Instant,
}

impl<B: Backend> Actor<B> {
    pub(super) fn session(&mut self, id: SessionId) -> Result<&mut Session, GenError> {
        self.sessions.get_mut(&id).ok_or_else(|| GenError::Backend(format!("session {id} is closed")))
    }

    pub(super) fn branch_seq(&mut self, session: SessionId, branch: BranchId) -> Result<SeqId, GenError> {
        self.session(session)?.branches.get(&branch).copied().ok_or(GenError::UnknownBranch(branch))
    }

    /// The branch's sequence, unless it is being extended.
    fn idle_branch(&mut self, session: SessionId, branch: BranchId) -> Result<SeqId, GenError> {
        let seq = self.branch_seq(session, branch)?;
        if self.seqs[&seq].run.is_some() {
            return Err(GenError::InvalidRequest(format!("branch {branch} is being extended")));
        }
        Ok(seq)
    }

    pub(super) fn open(&mut self, prompt: Vec<LlamaToken>, seed: u64, reprefill: bool) -> Result<(SessionId, Usage), GenError> {
        let id = self.fresh_id();
        let seq = self.alloc().ok_or_else(|| GenError::Backend("no free sequence for a new session".into()))?;
        let reused = if reprefill { 0 } else { self.reuse_prefix(seq, &prompt) };
        self.seqs.insert(seq, Seq::new(prompt, reused, Owner::Session(id), derive_seed(seed, 0), 0));
        let usage = Usage { prompt_reused: reused as u64, ..Usage::default() };
        let branches = HashMap::from([(0, seq)]);
        self.sessions.insert(id, Session { seed, reprefill, branches, next_branch: 1, usage, extend: None, ended: HashSet::new() });
        Ok((id, usage))
    }

    pub(super) fn close(&mut self, session: SessionId) {
        if let Some(s) = self.sessions.remove(&session) {
            for seq in s.branches.into_values() {
                self.free_seq(seq);
            }
        }
    }

    pub(super) fn fork(&mut self, session: SessionId, branch: BranchId, n: usize) -> Result<Vec<BranchId>, GenError> {
        let parent = self.idle_branch(session, branch)?;
        if self.free.len() < n {
            self.evict_cache(n);
        }
        if self.free.len() < n {
            return Err(GenError::Backend(format!(
                "cannot fork {n} branches: only {} free sequences (engine limit {})",
                self.free.len(),
                self.limits.n_seq_max
            )));
        }
        let seed = self.sessions[&session].seed;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let s = self.session(session)?;
            let b = s.next_branch;
            s.next_branch += 1;
            let child = self.fork_seq(parent, derive_seed(seed, b), b).expect("free ids checked");
            let shared = self.seqs[&child].n_past as u64;
            let s = self.session(session)?;
            if !s.reprefill {
                s.usage.prompt_reused += shared;
            }
            s.branches.insert(b, child);
            out.push(b);
        }
        Ok(out)
    }

    pub(super) fn extend(&mut self, session: SessionId, branches: Vec<BranchId>, params: StepParams, reply: Reply<Vec<Step>>) {
        let check = (|| {
            if self.session(session)?.extend.is_some() {
                return Err(GenError::InvalidRequest("an extend is already running in this session".into()));
            }
            params.sampling.validate()?;
            let mut seen = HashSet::new();
            for &b in &branches {
                self.branch_seq(session, b)?;
                if !seen.insert(b) {
                    return Err(GenError::InvalidRequest(format!("branch {b} listed twice")));
                }
            }
            Ok(())
        })();
        if let Err(e) = check {
            let _ = reply.send(Err(e));
            return;
        }
        let sampling = Arc::new(params.sampling.clone());
        let delimiter = params.delimiter.as_ref().filter(|d| !d.is_empty()).map(|d| d.as_bytes().to_vec());
        let reprefill = self.sessions[&session].reprefill;
        for &b in &branches {
            let seq = self.sessions[&session].branches[&b];
            if reprefill {
                // Forget the branch's KV cells: the whole text is fed again, as a stateless
                // server would have to.
                self.backend.clear_kv(seq, None);
            }
            let s = self.seqs.get_mut(&seq).expect("branch maps to a live sequence");
            if reprefill {
                s.n_past = 0;
                s.group = None;
            }
            s.run = Some(Run::step(
                sampling.clone(),
                delimiter.clone(),
                params.max_step_tokens.max(1) as usize,
                params.max_total_tokens.max(1) as usize,
            ));
        }
        let pending = PendingExtend { order: branches, done: HashMap::new(), reply, started: Instant::now() };
        self.sessions.get_mut(&session).expect("checked above").extend = Some(pending);
        self.finish_extend_if_done(session);
    }

    /// Branch `branch` of session `sid` finished its step; the extend answers after the last.
    pub(super) fn step_done(&mut self, sid: SessionId, branch: BranchId, out: Output, finish: FinishReason) {
        let step = Step {
            branch,
            text: out.text,
            n_tokens: out.n_tokens,
            token_logprobs: out.token_logprobs,
            token_bytes: out.token_bytes,
            token_stats: out.token_stats,
            top_logprobs: out.top_logprobs,
            finish,
        };
        if let Some(session) = self.sessions.get_mut(&sid) {
            if step.is_final() && !step.finish.is_dropped() {
                session.ended.insert(branch);
            } else {
                session.ended.remove(&branch);
            }
            if let Some(p) = session.extend.as_mut() {
                p.done.insert(step.branch, step);
            }
        }
        self.finish_extend_if_done(sid);
    }

    fn finish_extend_if_done(&mut self, sid: SessionId) {
        let Some(session) = self.sessions.get_mut(&sid) else { return };
        let Some(p) = session.extend.as_ref() else { return };
        if p.done.len() < p.order.len() {
            return;
        }
        let mut p = session.extend.take().expect("checked above");
        session.usage.wall_ms += p.started.elapsed().as_millis() as u64;
        let steps = p.order.iter().map(|b| p.done.remove(b).expect("every branch finished")).collect();
        let _ = p.reply.send(Ok((steps, session.usage)));
    }

    /// A failed decode stops the session's running branches and fails its extend; the
    /// branches stay, as they were before the step.
    pub(super) fn fail_session(&mut self, sid: SessionId, msg: &str) {
        for q in self.owned_by(Owner::Session(sid)) {
            self.seqs.get_mut(&q).expect("listed above").run = None;
        }
        if let Some(p) = self.sessions.get_mut(&sid).and_then(|x| x.extend.take()) {
            let _ = p.reply.send(Err(GenError::Backend(msg.to_string())));
        }
    }

    pub(super) fn rollback(&mut self, session: SessionId, branch: BranchId, n_tokens: usize) -> Result<(), GenError> {
        let seq = self.idle_branch(session, branch)?;
        let s = self.seqs.get_mut(&seq).expect("branch maps to a live sequence");
        let generated = s.tokens.len() - s.n_prompt;
        if n_tokens > generated {
            return Err(GenError::InvalidRequest(format!(
                "cannot roll branch {branch} back to {n_tokens} tokens: it has {generated}"
            )));
        }
        if n_tokens == generated {
            return Ok(());
        }
        let keep = s.n_prompt + n_tokens;
        s.tokens.truncate(keep);
        s.cells.truncate(n_tokens);
        // Positions past `keep` will hold new tokens: feeding them is generation, not recomputation.
        s.max_fed = s.max_fed.min(keep);
        s.group = None;
        // The last kept token becomes pending again so the next step has its logits.
        let new_past = s.n_past.min(keep - 1);
        if new_past < s.n_past {
            s.n_past = new_past;
            if !self.backend.clear_kv(seq, Some(new_past)) {
                return Err(GenError::Backend(format!("llama.cpp refused to roll back sequence {seq}")));
            }
        }
        Ok(())
    }

    pub(super) fn append(&mut self, session: SessionId, branch: BranchId, tokens: Vec<LlamaToken>) -> Result<(), GenError> {
        let seq = self.idle_branch(session, branch)?;
        let n_ctx_seq = self.limits.n_ctx_seq;
        let s = self.seqs.get_mut(&seq).expect("branch maps to a live sequence");
        if s.tokens.len() + tokens.len() >= n_ctx_seq {
            return Err(GenError::PromptTooLong { prompt_tokens: s.tokens.len() + tokens.len(), context: n_ctx_seq });
        }
        s.cells.resize(s.cells.len() + tokens.len(), NOT_GENERATED);
        s.tokens.extend(tokens);
        // Forced tokens are prompt work when fed: mark them as below the high-water mark.
        s.max_fed = s.tokens.len();
        s.group = None;
        Ok(())
    }

    pub(super) fn release(&mut self, session: SessionId, branches: &[BranchId]) -> Result<(), GenError> {
        for &b in branches {
            self.idle_branch(session, b)?;
        }
        for &b in branches {
            let s = self.sessions.get_mut(&session).expect("checked above");
            let Some(seq) = s.branches.remove(&b) else { continue };
            // An unended branch's generated tokens that no branch left holds were for nothing.
            if !s.ended.remove(&b) {
                let others = s.branches.values().map(|o| self.seqs[o].cells.as_slice());
                s.usage.dropped += unshared_generated(&self.seqs[&seq].cells, others) as u64;
            }
            self.free_seq(seq);
        }
        Ok(())
    }
}
