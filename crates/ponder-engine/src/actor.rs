//! The engine actor: the one thread that owns the llama.cpp context (which is not `Send`).
//!
//! Every request becomes sequences in one shared KV cache (unified, so cells are shared
//! between sequences). Each loop iteration puts the pending tokens of every running
//! sequence, from every request, into one batch and decodes it. Forked sequences whose
//! pending tokens are identical form a *group*: those tokens go into the batch once, tagged
//! with all the group's sequence ids, and each member samples its own next token from the
//! same logits. That is how N samples of one prompt cost one prefill.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use ponder_core::confidence::GroupWindow;
use ponder_core::{
    derive_seed, BranchId, CancelToken, FinishReason, GenError, GenEvent, Sample, SamplingParams, Step, StepParams,
    TokenStats, Usage,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, oneshot};

use crate::sampler;

pub(crate) type SessionId = u64;
type SeqId = i32;
type Reply<T> = oneshot::Sender<Result<(T, Usage), GenError>>;
/// A probe sequence: its tokens, and where to copy KV from (a branch and how many of its
/// tokens are computed), or `None` to use the prefix cache.
type ProbeSeq = (Vec<LlamaToken>, Option<(SeqId, usize)>);

pub(crate) struct SampleJob {
    pub prompt: Vec<LlamaToken>,
    pub n: usize,
    pub first_index: usize,
    pub params: SamplingParams,
    pub cancel: CancelToken,
    pub events: mpsc::UnboundedSender<GenEvent>,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Job(u64),
    Session(SessionId),
    Probe(u64),
    Cache,
}

/// One generation run of a sequence: a whole sample, or one step of a branch.
struct Run {
    params: Arc<SamplingParams>,
    delimiter: Option<Vec<u8>>,
    max_tokens: usize,
    /// Cap on the branch's generated tokens in total (sessions).
    max_total: usize,
    n_generated: usize,
    bytes: Vec<u8>,
    logprobs: Vec<f32>,
    /// End of each generated token's bytes in `bytes` (the end-of-generation token adds none).
    ends: Vec<usize>,
    /// A probe reads these tokens' log-probabilities from its logits instead of sampling.
    probe: Option<Arc<Vec<LlamaToken>>>,
    /// Per generated token, when the params ask for them.
    stats: Vec<TokenStats>,
    /// The running group of `params.confidence_stop`.
    group: Option<GroupWindow>,
}

struct Seq {
    tokens: Vec<LlamaToken>,
    /// Tokens already in the KV cache; `tokens[n_past..]` are pending.
    n_past: usize,
    n_prompt: usize,
    /// Highest token count ever fed: feeding below it again is recomputation.
    max_fed: usize,
    group: Option<u64>,
    rng: ChaCha8Rng,
    owner: Owner,
    run: Option<Run>,
    /// The root of a sample job: prefilled for its children, then kept as a prefix-cache entry.
    prefill_only: bool,
    /// Sample index (jobs) or branch id (sessions).
    tag: u64,
}

struct Job {
    remaining: usize,
    /// KV cells held back for this job (see [`kv_need`]).
    reserved: usize,
    usage: Usage,
    events: mpsc::UnboundedSender<GenEvent>,
    cancel: CancelToken,
    started: Instant,
}

struct PendingExtend {
    order: Vec<BranchId>,
    done: HashMap<BranchId, Step>,
    reply: Reply<Vec<Step>>,
    started: Instant,
}

struct Session {
    seed: u64,
    /// Re-prefill every branch at every step (no KV sharing, no prefix cache): the cost an
    /// HTTP backend without a prefix cache pays, for benchmarks.
    reprefill: bool,
    branches: HashMap<BranchId, SeqId>,
    next_branch: BranchId,
    usage: Usage,
    extend: Option<PendingExtend>,
}

/// A batch of next-token probes (self-evaluation, reward models).
struct Probe {
    results: Vec<Option<Vec<f32>>>,
    remaining: usize,
    /// Keep the sequences in the prefix cache afterwards (reward-model scoring, whose next
    /// call extends the same texts).
    keep: bool,
    usage: Usage,
    reply: Reply<Vec<Vec<f32>>>,
    started: Instant,
}

struct CacheEntry {
    seq: SeqId,
    last_used: u64,
}

pub(crate) struct Limits {
    pub n_batch: usize,
    pub n_seq_max: usize,
    pub n_ctx_seq: usize,
    /// KV cells in the unified cache, shared by all sequences.
    pub n_ctx: usize,
    pub cache_entries: usize,
}

pub(crate) struct Actor<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    limits: Limits,
    free: Vec<SeqId>,
    seqs: HashMap<SeqId, Seq>,
    jobs: HashMap<u64, Job>,
    sessions: HashMap<SessionId, Session>,
    probes: HashMap<u64, Probe>,
    cache: Vec<CacheEntry>,
    waiting: VecDeque<Box<SampleJob>>,
    next_id: u64,
    clock: u64,
    /// KV cells reserved by running sample jobs.
    reserved: usize,
    /// Scratch buffers for sampling, reused across tokens.
    sampler: sampler::Sampler,
}

/// A slot of the batch: tokens fed once for `members`.
struct Slot {
    members: Vec<SeqId>,
    fed: usize,
    logits_at: Option<i32>,
}

impl<'m> Actor<'m> {
    pub fn new(model: &'m LlamaModel, ctx: LlamaContext<'m>, limits: Limits) -> Self {
        let batch = LlamaBatch::new(limits.n_batch, limits.n_seq_max as i32);
        let free = (0..limits.n_seq_max as SeqId).rev().collect();
        Self {
            model,
            ctx,
            batch,
            limits,
            free,
            seqs: HashMap::new(),
            jobs: HashMap::new(),
            sessions: HashMap::new(),
            probes: HashMap::new(),
            cache: Vec::new(),
            waiting: VecDeque::new(),
            next_id: 1,
            clock: 0,
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
        self.seqs.values().any(|s| s.run.is_some() || s.prefill_only)
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    // ---- sequence bookkeeping ----

    fn alloc(&mut self) -> Option<SeqId> {
        if self.free.is_empty() {
            self.evict_cache(1);
        }
        self.free.pop()
    }

    fn free_seq(&mut self, id: SeqId) {
        if self.seqs.remove(&id).is_some() {
            // Removing a whole sequence cannot fail (llama.cpp: only partial removals can).
            let _ = self.ctx.clear_kv_cache_seq(Some(id as u32), None, None);
            self.free.push(id);
        }
    }

    /// Frees least-recently-used prefix-cache entries until `need` ids are free (or none are left).
    fn evict_cache(&mut self, need: usize) {
        while self.free.len() < need && !self.cache.is_empty() {
            let (i, _) = self.cache.iter().enumerate().min_by_key(|(_, e)| e.last_used).expect("cache is not empty");
            let e = self.cache.remove(i);
            self.free_seq(e.seq);
        }
    }

    fn new_seq(&self, prompt: Vec<LlamaToken>, owner: Owner, seed: u64, tag: u64) -> Seq {
        Seq {
            n_prompt: prompt.len(),
            tokens: prompt,
            n_past: 0,
            max_fed: 0,
            group: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
            owner,
            run: None,
            prefill_only: false,
            tag,
        }
    }

    /// Copies the longest cached prefix of `prompt` (leaving at least the last token to
    /// compute, whose logits are needed) into `seq`; returns its length.
    fn reuse_prefix(&mut self, seq: SeqId, prompt: &[LlamaToken]) -> usize {
        self.clock += 1;
        let mut best: Option<(usize, usize)> = None;
        for (i, e) in self.cache.iter().enumerate() {
            let cached = &self.seqs[&e.seq].tokens;
            let lcp = cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
            if lcp > best.map_or(0, |b| b.1) {
                best = Some((i, lcp));
            }
        }
        let Some((i, lcp)) = best else { return 0 };
        let reuse = lcp.min(prompt.len().saturating_sub(1));
        if reuse == 0 {
            return 0;
        }
        self.cache[i].last_used = self.clock;
        let src = self.cache[i].seq;
        let _ = self.ctx.copy_kv_cache_seq(src, seq, Some(0), Some(reuse as u32));
        reuse
    }

    /// Clones `parent` into a new sequence sharing its KV cells; pending tokens are shared
    /// through a group so they are computed once.
    fn fork_seq(&mut self, parent: SeqId, seed: u64, tag: u64) -> Option<SeqId> {
        let child = self.alloc()?;
        let group = match self.seqs[&parent].group {
            Some(g) => g,
            None => self.fresh_id(),
        };
        let p = self.seqs.get_mut(&parent).expect("parent sequence exists");
        if p.n_past < p.tokens.len() {
            p.group = Some(group);
        }
        let seq = Seq {
            tokens: p.tokens.clone(),
            n_past: p.n_past,
            n_prompt: p.n_prompt,
            max_fed: p.max_fed,
            group: p.group,
            rng: ChaCha8Rng::seed_from_u64(seed),
            owner: p.owner,
            run: None,
            prefill_only: false,
            tag,
        };
        if seq.n_past > 0 {
            let _ = self.ctx.copy_kv_cache_seq(parent, child, Some(0), Some(seq.n_past as u32));
        }
        self.seqs.insert(child, seq);
        Some(child)
    }

    fn usage_of(&mut self, owner: Owner) -> Option<&mut Usage> {
        match owner {
            Owner::Job(j) => self.jobs.get_mut(&j).map(|j| &mut j.usage),
            Owner::Session(s) => self.sessions.get_mut(&s).map(|s| &mut s.usage),
            Owner::Probe(p) => self.probes.get_mut(&p).map(|p| &mut p.usage),
            Owner::Cache => None,
        }
    }

    // ---- commands ----

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
            Command::Close { session } => {
                if let Some(s) = self.sessions.remove(&session) {
                    for seq in s.branches.into_values() {
                        self.free_seq(seq);
                    }
                }
            }
        }
    }

    fn admit_waiting(&mut self) {
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
            let need = kv_need(job.prompt.len(), job.n, job.params.max_tokens as usize, self.limits.n_ctx_seq);
            while self.reserved + need + self.cache_cells() > self.limits.n_ctx && !self.cache.is_empty() {
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

    fn cache_cells(&self) -> usize {
        self.cache.iter().map(|e| self.seqs[&e.seq].tokens.len()).sum()
    }

    fn start_job(&mut self, job: SampleJob, reserved: usize) {
        let id = self.fresh_id();
        let p = job.prompt.len();
        let root = self.alloc().expect("admission checked free ids");
        let reused = self.reuse_prefix(root, &job.prompt);
        let group = self.fresh_id();
        let mut seq = self.new_seq(job.prompt, Owner::Job(id), 0, 0);
        seq.n_past = reused;
        seq.max_fed = reused;
        seq.prefill_only = true;
        seq.group = Some(group);
        self.seqs.insert(root, seq);
        // A backend without sharing would compute the prompt once per sample.
        let usage = Usage { prompt_reused: (job.n * p - (p - reused)) as u64, ..Usage::default() };
        self.jobs.insert(
            id,
            Job { remaining: job.n, reserved, usage, events: job.events, cancel: job.cancel, started: Instant::now() },
        );
        let params = Arc::new(job.params);
        for i in 0..job.n {
            let index = (job.first_index + i) as u64;
            let child = self.fork_seq(root, derive_seed(params.seed, index), index).expect("admission checked free ids");
            let s = self.seqs.get_mut(&child).expect("just forked");
            s.run = Some(Run::new(params.clone(), None, params.max_tokens as usize, usize::MAX));
        }
    }

    fn session(&mut self, id: SessionId) -> Result<&mut Session, GenError> {
        self.sessions.get_mut(&id).ok_or_else(|| GenError::Backend(format!("session {id} is closed")))
    }

    fn branch_seq(&mut self, session: SessionId, branch: BranchId) -> Result<SeqId, GenError> {
        self.session(session)?.branches.get(&branch).copied().ok_or(GenError::UnknownBranch(branch))
    }

    fn open(&mut self, prompt: Vec<LlamaToken>, seed: u64, reprefill: bool) -> Result<(SessionId, Usage), GenError> {
        let id = self.fresh_id();
        let seq = self.alloc().ok_or_else(|| GenError::Backend("no free sequence for a new session".into()))?;
        let reused = if reprefill { 0 } else { self.reuse_prefix(seq, &prompt) };
        let mut s = self.new_seq(prompt, Owner::Session(id), derive_seed(seed, 0), 0);
        s.n_past = reused;
        s.max_fed = reused;
        self.seqs.insert(seq, s);
        let usage = Usage { prompt_reused: reused as u64, ..Usage::default() };
        let branches = HashMap::from([(0, seq)]);
        self.sessions.insert(id, Session { seed, reprefill, branches, next_branch: 1, usage, extend: None });
        Ok((id, usage))
    }

    fn fork(&mut self, session: SessionId, branch: BranchId, n: usize) -> Result<Vec<BranchId>, GenError> {
        let parent = self.branch_seq(session, branch)?;
        if self.seqs[&parent].run.is_some() {
            return Err(GenError::InvalidRequest(format!("branch {branch} is being extended")));
        }
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

    fn extend(&mut self, session: SessionId, branches: Vec<BranchId>, params: StepParams, reply: Reply<Vec<Step>>) {
        let check = (|| {
            if self.session(session)?.extend.is_some() {
                return Err(GenError::InvalidRequest("an extend is already running in this session".into()));
            }
            params.sampling.validate()?;
            let mut seen = std::collections::HashSet::new();
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
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            }
            let s = self.seqs.get_mut(&seq).expect("branch maps to a live sequence");
            if reprefill {
                s.n_past = 0;
                s.group = None;
            }
            s.run = Some(Run::new(
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

    /// Probe sequences for `branches`: each branch's tokens plus `suffix`, its KV copied.
    fn probe_branches(
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

    /// Starts one probe sequence per entry: its tokens, and where to copy KV from (a
    /// branch and how many of its tokens are computed) or `None` to use the prefix cache.
    fn start_probe(
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
                        let _ = self.ctx.copy_kv_cache_seq(src, seq, Some(0), Some(n_past as u32));
                    }
                    n_past
                }
                None => self.reuse_prefix(seq, &tokens),
            };
            usage.prompt_reused += n_past as u64;
            let mut s = self.new_seq(tokens, Owner::Probe(id), 0, i as u64);
            // Every fed token of a probe is prompt work (`n_prompt` covers them all).
            s.n_past = n_past;
            s.max_fed = n_past;
            let mut run = Run::new(Arc::new(SamplingParams::greedy()), None, 1, 1);
            run.probe = Some(candidates.clone());
            s.run = Some(run);
            self.seqs.insert(seq, s);
        }
        self.probes.insert(
            id,
            Probe { results: vec![None; n], remaining: n, keep, usage, reply, started: Instant::now() },
        );
    }

    fn finish_probe(&mut self, id: SeqId, logprobs: Vec<f32>) {
        let s = self.seqs.get_mut(&id).expect("live sequence");
        s.run = None;
        let (Owner::Probe(p), tag) = (s.owner, s.tag) else { return };
        let keep = self.probes.get(&p).is_some_and(|x| x.keep);
        if keep {
            self.seqs.get_mut(&id).expect("live sequence").owner = Owner::Cache;
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

    fn rollback(&mut self, session: SessionId, branch: BranchId, n_tokens: usize) -> Result<(), GenError> {
        let seq = self.branch_seq(session, branch)?;
        let s = self.seqs.get_mut(&seq).expect("branch maps to a live sequence");
        if s.run.is_some() {
            return Err(GenError::InvalidRequest(format!("branch {branch} is being extended")));
        }
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
        // Positions past `keep` will hold new tokens: feeding them is generation, not recomputation.
        s.max_fed = s.max_fed.min(keep);
        s.group = None;
        // The last kept token becomes pending again so the next step has its logits.
        let new_past = s.n_past.min(keep - 1);
        if new_past < s.n_past {
            s.n_past = new_past;
            if !self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(new_past as u32), None).unwrap_or(false) {
                return Err(GenError::Backend(format!("llama.cpp refused to roll back sequence {seq}")));
            }
        }
        Ok(())
    }

    fn append(&mut self, session: SessionId, branch: BranchId, tokens: Vec<LlamaToken>) -> Result<(), GenError> {
        let seq = self.branch_seq(session, branch)?;
        let n_ctx_seq = self.limits.n_ctx_seq;
        let s = self.seqs.get_mut(&seq).expect("branch maps to a live sequence");
        if s.run.is_some() {
            return Err(GenError::InvalidRequest(format!("branch {branch} is being extended")));
        }
        if s.tokens.len() + tokens.len() >= n_ctx_seq {
            return Err(GenError::PromptTooLong { prompt_tokens: s.tokens.len() + tokens.len(), context: n_ctx_seq });
        }
        s.tokens.extend(tokens);
        // Forced tokens are prompt work when fed: mark them as below the high-water mark.
        s.max_fed = s.tokens.len();
        s.group = None;
        Ok(())
    }

    fn release(&mut self, session: SessionId, branches: &[BranchId]) -> Result<(), GenError> {
        for &b in branches {
            let seq = self.branch_seq(session, b)?;
            if self.seqs[&seq].run.is_some() {
                return Err(GenError::InvalidRequest(format!("branch {b} is being extended")));
            }
        }
        for &b in branches {
            if let Some(seq) = self.session(session)?.branches.remove(&b) {
                self.free_seq(seq);
            }
        }
        Ok(())
    }

    fn reap_cancelled(&mut self) {
        let dead: Vec<u64> =
            self.jobs.iter().filter(|(_, j)| j.cancel.is_cancelled() || j.events.is_closed()).map(|(&id, _)| id).collect();
        for id in dead {
            self.end_job(id);
        }
    }

    fn end_job(&mut self, id: u64) {
        let seqs: Vec<SeqId> = self.seqs.iter().filter(|(_, s)| s.owner == Owner::Job(id)).map(|(&k, _)| k).collect();
        for s in seqs {
            self.free_seq(s);
        }
        if let Some(mut job) = self.jobs.remove(&id) {
            self.reserved -= job.reserved;
            job.usage.wall_ms = job.started.elapsed().as_millis() as u64;
            let _ = job.events.send(GenEvent::Done(job.usage));
        }
    }

    // ---- the batch loop ----

    fn step(&mut self) {
        let slots = self.fill_batch();
        if slots.is_empty() {
            return;
        }
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            self.fail_batch(&slots, e);
            return;
        }
        for mut slot in slots {
            for &m in &slot.members {
                let s = self.seqs.get_mut(&m).expect("members stay live until their logits are read");
                s.n_past += slot.fed;
                s.max_fed = s.max_fed.max(s.n_past);
            }
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

    /// Puts the pending tokens of running sequences into the batch, decode-phase sequences
    /// first so a long prefill never stalls generation.
    fn fill_batch(&mut self) -> Vec<Slot> {
        self.batch.clear();
        let mut ready: Vec<(usize, SeqId)> = self
            .seqs
            .iter()
            .filter(|(_, s)| (s.run.is_some() || s.prefill_only) && s.n_past < s.tokens.len())
            .map(|(&id, s)| (s.tokens.len() - s.n_past, id))
            .collect();
        ready.sort_unstable();
        let mut placed = std::collections::HashSet::new();
        let mut slots = Vec::new();
        let cap = self.limits.n_batch;
        for &(_, id) in &ready {
            if placed.contains(&id) {
                continue;
            }
            let s = &self.seqs[&id];
            let pending: Vec<LlamaToken> = s.tokens[s.n_past..].to_vec();
            let members: Vec<SeqId> = match s.group {
                Some(g) => ready
                    .iter()
                    .map(|&(_, o)| o)
                    .filter(|o| {
                        let t = &self.seqs[o];
                        t.group == Some(g) && t.n_past == s.n_past && t.tokens[t.n_past..] == s.tokens[s.n_past..]
                    })
                    .collect(),
                None => vec![id],
            };
            let room = cap - self.batch.n_tokens() as usize;
            if room == 0 {
                break;
            }
            let take = pending.len().min(room);
            let (n_past, n_prompt, max_fed, owner) = (s.n_past, s.n_prompt, s.max_fed, s.owner);
            for (j, &tok) in pending[..take].iter().enumerate() {
                let last = j + 1 == pending.len();
                // Capacity was checked, so adding cannot fail.
                let _ = self.batch.add(tok, (n_past + j) as i32, &members, last);
            }
            let logits_at = (take == pending.len()).then(|| self.batch.n_tokens() - 1);
            // Accounting: prompt tokens and re-fed tokens are computed prompt; tokens shared
            // by a group are reused by every member but the one that pays.
            let recomputed = (n_past..n_past + take).filter(|&pos| pos < n_prompt || pos < max_fed).count() as u64;
            let sharers = members.iter().filter(|m| !self.seqs[m].prefill_only).count().max(1) as u64 - 1;
            if let Some(u) = self.usage_of(owner) {
                u.prompt_computed += recomputed;
                // Jobs count their prompt sharing up front (see `start_job`).
                if matches!(owner, Owner::Session(_)) {
                    u.prompt_reused += sharers * take as u64;
                }
            }
            placed.extend(members.iter().copied());
            slots.push(Slot { members, fed: take, logits_at });
        }
        slots
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
                Owner::Job(j) => {
                    if let Some(job) = self.jobs.get(&j) {
                        let _ = job.events.send(GenEvent::Failed { index: usize::MAX, error: GenError::Backend(msg.clone()) });
                    }
                    self.end_job(j);
                }
                Owner::Session(s) => {
                    let running: Vec<SeqId> = self
                        .seqs
                        .iter()
                        .filter(|(_, q)| q.owner == owner && q.run.is_some())
                        .map(|(&k, _)| k)
                        .collect();
                    for q in running {
                        self.seqs.get_mut(&q).expect("listed above").run = None;
                    }
                    if let Some(p) = self.sessions.get_mut(&s).and_then(|x| x.extend.take()) {
                        let _ = p.reply.send(Err(GenError::Backend(msg.clone())));
                    }
                }
                Owner::Probe(p) => {
                    let seqs: Vec<SeqId> =
                        self.seqs.iter().filter(|(_, q)| q.owner == owner).map(|(&k, _)| k).collect();
                    for q in seqs {
                        self.free_seq(q);
                    }
                    if let Some(probe) = self.probes.remove(&p) {
                        let _ = probe.reply.send(Err(GenError::Backend(msg.clone())));
                    }
                }
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
            s.owner = Owner::Cache;
            self.add_to_cache(id);
            return;
        }
        let Some(run) = s.run.as_mut() else { return };
        if let Some(candidates) = run.probe.clone() {
            let lp = sampler::log_probs_of(self.ctx.get_logits_ith(idx), &candidates);
            self.finish_probe(id, lp);
            return;
        }
        let logits = self.ctx.get_logits_ith(idx);
        let k = run.params.token_stats_k as usize;
        let stats = (k > 0).then(|| sampler::token_stats(logits, k));
        let picked = self.sampler.pick(logits, &run.params, &mut s.rng);
        let token = LlamaToken(picked.token as i32);
        run.n_generated += 1;
        run.logprobs.push(picked.logprob);
        // DeepConf's online stop: the group of the latest tokens fell below the threshold.
        let mut low_confidence = false;
        if let Some(st) = stats {
            run.stats.push(st);
            if let (Some(g), Some(stop)) = (run.group.as_mut(), run.params.confidence_stop) {
                low_confidence = g.push(st.confidence).is_some_and(|m| m < stop.threshold);
            }
        }
        let owner = s.owner;
        let finish = if self.model.vocab().is_eog(token) && !run.params.ignore_eos {
            Some(FinishReason::Eos)
        } else {
            s.tokens.push(token);
            let piece = self.model.vocab().token_to_piece(token, false, None);
            let from = run.bytes.len();
            run.bytes.extend_from_slice(&piece);
            run_finish(run, from, s.tokens.len() - s.n_prompt, s.tokens.len(), self.limits.n_ctx_seq)
                .or(low_confidence.then_some(FinishReason::LowConfidence))
        };
        run.ends.push(run.bytes.len());
        if let Some(u) = self.usage_of(owner) {
            u.completion += 1;
        }
        if let Some(f) = finish {
            self.finish(id, f);
        }
    }

    fn add_to_cache(&mut self, id: SeqId) {
        self.clock += 1;
        let tokens = self.seqs[&id].tokens.clone();
        if let Some(i) = self.cache.iter().position(|e| self.seqs[&e.seq].tokens == tokens) {
            let old = self.cache.remove(i);
            self.free_seq(old.seq);
        }
        self.cache.push(CacheEntry { seq: id, last_used: self.clock });
        while self.cache.len() > self.limits.cache_entries {
            self.evict_one_cache_entry();
        }
    }

    fn evict_one_cache_entry(&mut self) {
        if let Some((i, _)) = self.cache.iter().enumerate().min_by_key(|(_, e)| e.last_used) {
            let e = self.cache.remove(i);
            self.free_seq(e.seq);
        }
    }

    fn finish(&mut self, id: SeqId, finish: FinishReason) {
        let s = self.seqs.get_mut(&id).expect("live sequence");
        let run = s.run.take().expect("finishing a running sequence");
        let mut bytes = run.bytes;
        let mut start = 0;
        let token_bytes: Vec<Vec<u8>> = run
            .ends
            .iter()
            .map(|&end| {
                let piece = bytes[start..end].to_vec();
                start = end;
                piece
            })
            .collect();
        if let FinishReason::Stop(stop) = &finish {
            if let Some(p) = find(&bytes, stop.as_bytes(), 0) {
                bytes.truncate(p);
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (owner, tag) = (s.owner, s.tag);
        match owner {
            Owner::Job(j) => {
                let sample = Sample {
                    index: tag as usize,
                    text,
                    n_tokens: run.n_generated,
                    token_logprobs: run.logprobs,
                    token_bytes,
                    token_stats: run.stats,
                    finish,
                };
                self.free_seq(id);
                if let Some(job) = self.jobs.get_mut(&j) {
                    let _ = job.events.send(GenEvent::Sample(sample));
                    job.remaining -= 1;
                    if job.remaining == 0 {
                        self.end_job(j);
                    }
                }
            }
            Owner::Session(sid) => {
                let step = Step { branch: tag, text, n_tokens: run.n_generated, token_logprobs: run.logprobs, token_bytes, finish };
                if let Some(p) = self.sessions.get_mut(&sid).and_then(|x| x.extend.as_mut()) {
                    p.done.insert(step.branch, step);
                }
                self.finish_extend_if_done(sid);
            }
            Owner::Probe(_) | Owner::Cache => {}
        }
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
}

/// KV cells a sample job needs at most: its prompt once (shared) plus every sample at
/// full length.
pub(crate) fn kv_need(prompt: usize, n: usize, max_tokens: usize, n_ctx_seq: usize) -> usize {
    prompt + n * max_tokens.min(n_ctx_seq.saturating_sub(prompt))
}

impl Run {
    fn new(params: Arc<SamplingParams>, delimiter: Option<Vec<u8>>, max_tokens: usize, max_total: usize) -> Self {
        let group = params.confidence_stop.map(|c| GroupWindow::new(c.window as usize));
        Self {
            params,
            delimiter,
            max_tokens,
            max_total,
            n_generated: 0,
            bytes: Vec::new(),
            logprobs: Vec::new(),
            ends: Vec::new(),
            probe: None,
            stats: Vec::new(),
            group,
        }
    }
}

/// Whether the run ends after the piece appended at `from`.
fn run_finish(run: &Run, from: usize, total_generated: usize, n_tokens: usize, n_ctx_seq: usize) -> Option<FinishReason> {
    for stop in &run.params.stop {
        let b = stop.as_bytes();
        if !b.is_empty() && find(&run.bytes, b, from.saturating_sub(b.len() - 1)).is_some() {
            return Some(FinishReason::Stop(stop.clone()));
        }
    }
    if let Some(d) = &run.delimiter {
        // A step ends with the token that completes the delimiter; leading delimiters
        // (before any other text) do not end an empty step.
        let scan = from.saturating_sub(d.len() - 1);
        if let Some(p) = find(&run.bytes, d, scan) {
            if run.bytes[..p].iter().any(|c| !c.is_ascii_whitespace()) {
                return Some(FinishReason::StepEnd);
            }
        }
    }
    if total_generated >= run.max_total {
        return Some(FinishReason::Length);
    }
    if run.n_generated >= run.max_tokens {
        // A step cut at its length cap may go on; a whole sample at its cap is done.
        return Some(if run.max_total == usize::MAX { FinishReason::Length } else { FinishReason::StepEnd });
    }
    if n_tokens >= n_ctx_seq {
        return Some(FinishReason::ContextFull);
    }
    None
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}
