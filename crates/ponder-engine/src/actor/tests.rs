//! The actor's bookkeeping on a fake decode step: jobs, sessions, probes, the prefix cache,
//! admission, usage and failure spreading, with no model. The fake stands in for llama.cpp
//! only here; the real-model tests (`tests/it/`) run the same paths on SmolLM2.

use std::collections::HashMap;

use ponder_core::{CancelToken, GenEvent, SamplingParams};
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;

const VOCAB: i32 = 16;
/// The fake's end-of-generation token.
const EOS: i32 = 0;

/// llama.cpp in miniature: the likeliest token after `t` is `t + 1` (wrapping at
/// [`VOCAB`]), token `t` reads as the letter `'a' + t`, and the KV cells of each sequence
/// are kept as tokens so every feed is checked to continue them.
#[derive(Default)]
pub(super) struct Fake {
    cells: HashMap<SeqId, Vec<LlamaToken>>,
    logits: HashMap<i32, Vec<f32>>,
    /// Tokens in each decoded batch.
    pub batches: Vec<usize>,
    /// Sequences whose cells were all removed, in order.
    pub cleared: Vec<SeqId>,
    /// Fail the decode call with this index (0-based).
    fail_at: Option<usize>,
}

impl Backend for Fake {
    fn decode(&mut self, slots: &[Slot]) -> Result<(), DecodeError> {
        let call = self.batches.len();
        self.batches.push(slots.iter().map(|s| s.tokens.len()).sum());
        if self.fail_at == Some(call) {
            return Err(DecodeError::NoKvCacheSlot);
        }
        self.logits.clear();
        for slot in slots {
            for m in &slot.members {
                let cells = self.cells.entry(*m).or_default();
                assert_eq!(cells.len(), slot.pos, "sequence {m} is fed at the end of its cells");
                cells.extend_from_slice(&slot.tokens);
            }
            if let Some(idx) = slot.logits_at {
                let last = slot.tokens.last().expect("a slot feeds a token").0;
                let mut logits = vec![0.0; VOCAB as usize];
                logits[((last + 1) % VOCAB) as usize] = 10.0;
                self.logits.insert(idx, logits);
            }
        }
        Ok(())
    }

    fn logits(&self, idx: i32) -> &[f32] {
        &self.logits[&idx]
    }

    fn is_eog(&self, token: LlamaToken) -> bool {
        token.0 == EOS
    }

    fn piece(&self, token: LlamaToken) -> Vec<u8> {
        vec![b'a' + token.0 as u8]
    }

    fn clear_kv(&mut self, seq: SeqId, from: Option<usize>) -> bool {
        match from {
            Some(p) => self.cells.entry(seq).or_default().truncate(p),
            None => {
                self.cells.remove(&seq);
                self.cleared.push(seq);
            }
        }
        true
    }

    fn copy_kv(&mut self, src: SeqId, dst: SeqId, n: usize) {
        let cells = self.cells[&src][..n].to_vec();
        self.cells.insert(dst, cells);
    }
}

pub(super) fn limits(n_batch: usize, n_seq_max: usize, n_ctx: usize, cache_entries: usize) -> Limits {
    Limits { n_batch, shared_rows: 0, n_seq_max, n_ctx_seq: n_ctx, n_ctx, cache_entries }
}

pub(super) fn actor(limits: Limits) -> Actor<Fake> {
    Actor::new(Fake::default(), limits)
}

pub(super) fn toks(v: &[i32]) -> Vec<LlamaToken> {
    v.iter().map(|&t| LlamaToken(t)).collect()
}

/// The loop of [`Actor::run`] until nothing runs, without a channel.
pub(super) fn drive(a: &mut Actor<Fake>) {
    loop {
        a.admit_waiting();
        if !a.busy() {
            return;
        }
        a.reap_cancelled();
        a.admit_waiting();
        a.step();
    }
}

/// (prompt computed, prompt reused, completion, scorer passes): the counts, without time.
pub(super) fn counts(u: Usage) -> (u64, u64, u64, u64) {
    (u.prompt_computed, u.prompt_reused, u.completion, u.scorer_passes)
}

pub(super) fn greedy(max_tokens: u32, stop: &[&str]) -> SamplingParams {
    SamplingParams { max_tokens, stop: stop.iter().map(|s| s.to_string()).collect(), ..SamplingParams::greedy() }
}

/// Queues a job of `n` samples; its event stream and cancel token.
pub(super) fn sample(a: &mut Actor<Fake>, prompt: &[i32], n: usize, params: SamplingParams) -> (UnboundedReceiver<GenEvent>, CancelToken) {
    let (events, rx) = mpsc::unbounded_channel();
    let cancel = CancelToken::default();
    let job = SampleJob {
        prompt: toks(prompt),
        n,
        first_index: 0,
        params,
        cancel: cancel.clone(),
        events,
        spans: None,
    };
    a.handle(Command::Sample(Box::new(job)));
    (rx, cancel)
}

/// The samples (by index: text, tokens, finish) and the usage a finished job streamed.
pub(super) fn outcome(rx: &mut UnboundedReceiver<GenEvent>) -> (Vec<(String, usize, FinishReason)>, Vec<String>, Usage) {
    let (mut samples, mut failed) = (Vec::new(), Vec::new());
    while let Ok(ev) = rx.try_recv() {
        match ev {
            GenEvent::Sample(s) => samples.push((s.index, (s.text, s.n_tokens, s.finish))),
            GenEvent::Failed { error, .. } => failed.push(error.to_string()),
            GenEvent::Done(u) => {
                samples.sort_by_key(|s| s.0);
                return (samples.into_iter().map(|s| s.1).collect(), failed, u);
            }
        }
    }
    panic!("the job has not ended");
}

pub(super) fn stats(a: &mut Actor<Fake>) -> Stats {
    let (reply, mut rx) = oneshot::channel();
    a.handle(Command::Stats { reply });
    rx.try_recv().expect("stats answer at once")
}

#[test]
fn a_job_prefills_its_prompt_once_and_counts_every_sample() {
    let mut a = actor(limits(64, 8, 256, 4));
    let (mut rx, _) = sample(&mut a, &[5, 6, 7, 8, 1], 3, greedy(4, &[]));
    drive(&mut a);
    let (samples, failed, usage) = outcome(&mut rx);
    assert!(failed.is_empty());
    assert_eq!(samples, vec![("cdef".to_string(), 4, FinishReason::Length); 3]);
    // One prefill for three samples: a backend without sharing would compute 15 tokens.
    assert_eq!(counts(usage), (5, 10, 12, 0));
    // The prefill, then the three samples' pending tokens together, until the last
    // sampled tokens, which are never fed.
    assert_eq!(a.backend.batches, vec![5, 3, 3, 3]);
    assert_eq!(stats(&mut a), Stats { live_seqs: 1, cache_entries: 1, sessions: 0, jobs: 0 });
}

#[test]
fn a_repeated_prompt_computes_only_its_last_token() {
    let mut a = actor(limits(64, 8, 256, 4));
    let (mut first, _) = sample(&mut a, &[5, 6, 7, 8, 1], 2, greedy(2, &[]));
    drive(&mut a);
    let (mut second, _) = sample(&mut a, &[5, 6, 7, 8, 1], 2, greedy(2, &[]));
    drive(&mut a);
    assert_eq!(counts(outcome(&mut first).2), (5, 5, 4, 0));
    assert_eq!(counts(outcome(&mut second).2), (1, 9, 4, 0));
    // The second root replaced the first in the cache.
    assert_eq!(stats(&mut a).cache_entries, 1);
}

#[test]
fn a_long_prompt_is_fed_in_batches_of_n_batch() {
    let mut a = actor(limits(4, 8, 256, 4));
    let (mut rx, _) = sample(&mut a, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 2, greedy(3, &[]));
    drive(&mut a);
    assert_eq!(a.backend.batches, vec![4, 4, 2, 2, 2]);
    assert_eq!(counts(outcome(&mut rx).2), (10, 10, 6, 0));
}

#[test]
fn stop_strings_and_eos_end_samples() {
    let mut a = actor(limits(64, 8, 256, 4));
    // Tokens 2, 3, 4 read "c", "d", "e": the stop "de" spans two tokens.
    let (mut rx, _) = sample(&mut a, &[9, 1], 1, greedy(10, &["de"]));
    let (mut eos, _) = sample(&mut a, &[9, VOCAB - 1], 1, greedy(10, &[]));
    drive(&mut a);
    let (samples, _, usage) = outcome(&mut rx);
    assert_eq!(samples, vec![("c".to_string(), 3, FinishReason::Stop("de".into()))]);
    assert_eq!(usage.completion, 3);
    let (samples, _, usage) = outcome(&mut eos);
    assert_eq!(samples, vec![(String::new(), 1, FinishReason::Eos)]);
    assert_eq!(usage.completion, 1);
}

#[test]
fn a_cancelled_job_counts_the_tokens_its_dropped_samples_generated() {
    let mut a = actor(limits(64, 8, 256, 4));
    let (mut rx, cancel) = sample(&mut a, &[1, 2, 3], 2, greedy(100, &[]));
    a.admit_waiting();
    for _ in 0..3 {
        a.step();
    }
    cancel.cancel();
    a.reap_cancelled();
    let (samples, _, usage) = outcome(&mut rx);
    // They arrive with what they had generated, and all of it was for nothing.
    assert_eq!(samples, vec![("efg".to_string(), 3, FinishReason::Cancelled); 2]);
    assert_eq!(counts(usage), (3, 3, 6, 0));
    assert_eq!(usage.dropped, 6);
    assert!(!a.busy());
    // Only the prompt, kept in the prefix cache, is left.
    assert_eq!(stats(&mut a).live_seqs, 1);
    // Cancelled while queued: done at once, nothing counted.
    let (mut queued, cancel) = sample(&mut a, &[1, 2, 3], 2, greedy(100, &[]));
    cancel.cancel();
    a.admit_waiting();
    let (samples, _, usage) = outcome(&mut queued);
    assert_eq!((samples.len(), counts(usage), usage.dropped), (0, (0, 0, 0, 0), 0));
}

#[test]
fn a_job_waits_until_its_kv_cells_fit() {
    // Each job needs 4 + 2 * 5 = 14 cells; two do not fit in 20.
    let mut a = actor(limits(64, 8, 20, 0));
    let (mut first, _) = sample(&mut a, &[1, 2, 3, 4], 2, greedy(5, &[]));
    let (mut second, _) = sample(&mut a, &[1, 2, 3, 4], 2, greedy(5, &[]));
    a.admit_waiting();
    assert_eq!((a.jobs.len(), a.waiting.len(), a.reserved), (1, 1, 14));
    drive(&mut a);
    assert_eq!(outcome(&mut first).0.len(), 2);
    assert_eq!(outcome(&mut second).0.len(), 2);
    assert_eq!((a.reserved, stats(&mut a).live_seqs), (0, 0));
}

/// Sends a session command built around `reply` and returns its answer.
pub(super) fn ask<T>(a: &mut Actor<Fake>, cmd: impl FnOnce(Reply<T>) -> Command) -> Result<(T, Usage), GenError> {
    let (reply, mut rx) = oneshot::channel();
    a.handle(cmd(reply));
    drive(a);
    rx.try_recv().expect("the command answered")
}

pub(super) fn open(a: &mut Actor<Fake>, prompt: &[i32]) -> SessionId {
    let (reply, mut rx) = oneshot::channel();
    a.handle(Command::Open { prompt: toks(prompt), seed: 1, reprefill: false, reply });
    rx.try_recv().expect("open answers at once").expect("a free sequence").0
}

pub(super) fn step_params(max_step_tokens: u32, delimiter: Option<&str>) -> StepParams {
    StepParams { sampling: greedy(1, &[]), delimiter: delimiter.map(String::from), max_step_tokens, max_total_tokens: 100 }
}

#[test]
fn forked_branches_share_their_prompt_and_step_on_their_own() {
    let mut a = actor(limits(64, 8, 256, 4));
    let session = open(&mut a, &[9, 8, 7, 1]);
    let (branches, usage) = ask(&mut a, |reply| Command::Fork { session, branch: 0, n: 2, reply }).unwrap();
    assert_eq!((branches.clone(), counts(usage)), (vec![1, 2], (0, 0, 0, 0)));
    let (steps, usage) = ask(&mut a, |reply| Command::Extend { session, branches, params: step_params(3, None), reply }).unwrap();
    let got: Vec<(u64, String, FinishReason)> = steps.into_iter().map(|s| (s.branch, s.text, s.finish)).collect();
    assert_eq!(got, vec![(1, "cde".into(), FinishReason::StepEnd), (2, "cde".into(), FinishReason::StepEnd)]);
    // The two branches feed the prompt once: the second reuses it.
    assert_eq!(counts(usage), (4, 4, 6, 0));
    // A rolled-back branch re-feeds its last kept token: one token of recomputation.
    ask(&mut a, |reply| Command::Rollback { session, branch: 1, n_tokens: 1, reply }).unwrap();
    ask(&mut a, |reply| Command::Append { session, branch: 2, tokens: toks(&[5]), reply }).unwrap();
    let (steps, usage) = ask(&mut a, |reply| Command::Extend { session, branches: vec![1, 2], params: step_params(2, Some("g")), reply }).unwrap();
    let got: Vec<(String, FinishReason)> = steps.into_iter().map(|s| (s.text, s.finish)).collect();
    // Branch 1 goes on from "c". Branch 2's forced "f" (token 5) leads to "g", its
    // delimiter, but a leading delimiter does not end an empty step: it ends at its cap.
    assert_eq!(got, vec![("de".into(), FinishReason::StepEnd), ("gh".into(), FinishReason::StepEnd)]);
    // Prompt work: branch 1 re-feeds "c"; branch 2 feeds its pending "e" with the forced
    // "f" (an append marks everything before it as prompt).
    assert_eq!(counts(usage), (4 + 3, 4, 6 + 4, 0));
    let (tokens, _) = ask(&mut a, |reply| Command::Tokens { session, branch: 2, reply }).unwrap();
    assert_eq!(tokens, toks(&[9, 8, 7, 1, 2, 3, 4, 5, 6, 7]));
    ask(&mut a, |reply| Command::Release { session, branches: vec![1], reply }).unwrap();
    assert_eq!(stats(&mut a).live_seqs, 2);
    a.handle(Command::Close { session });
    assert_eq!(stats(&mut a), Stats { live_seqs: 0, cache_entries: 0, sessions: 0, jobs: 0 });
}

#[test]
fn probes_read_candidates_and_scores_stay_in_the_prefix_cache() {
    let mut a = actor(limits(64, 8, 256, 2));
    let candidates = toks(&[4, 5]);
    let score = |a: &mut Actor<Fake>, seqs: &[&[i32]]| {
        let sequences = seqs.iter().map(|s| toks(s)).collect();
        ask(a, |reply| Command::Score { sequences, candidates: candidates.clone(), reply }).unwrap()
    };
    let (lp, usage) = score(&mut a, &[&[1, 2, 3], &[7, 8, 4]]);
    // After token 3 the fake favours 4; after 4 it favours 5.
    assert!(lp[0][0] > -0.01 && lp[0][1] < -9.0, "{lp:?}");
    assert!(lp[1][1] > -0.01 && lp[1][0] < -9.0, "{lp:?}");
    assert_eq!(counts(usage), (6, 0, 0, 2));
    assert_eq!(stats(&mut a).cache_entries, 2);
    // The next step's texts extend the cached ones: only the new tokens are computed.
    let (_, usage) = score(&mut a, &[&[1, 2, 3, 9, 9]]);
    assert_eq!(counts(usage), (2, 3, 0, 1));
    // Capacity 2: the least recently used entry ([7, 8, 4]) was freed, KV cells included.
    let cached: Vec<Vec<LlamaToken>> = a.cache.seqs().map(|s| a.backend.cells[&s].clone()).collect();
    assert_eq!(cached, vec![toks(&[1, 2, 3]), toks(&[1, 2, 3, 9, 9])]);
    assert_eq!(a.backend.cleared.len(), 1);
    // A self-evaluation probe copies the branch's cells and feeds only the rest.
    let session = open(&mut a, &[6, 6, 6]);
    ask(&mut a, |reply| Command::Extend { session, branches: vec![0], params: step_params(1, None), reply }).unwrap();
    let (lp, usage) = ask(&mut a, |reply| Command::Probe { session, branches: vec![0], suffix: toks(&[2, 3]), candidates: candidates.clone(), reply }).unwrap();
    assert!(lp[0][0] > -0.01, "{lp:?}");
    // Computed: the branch's last sampled token, not yet fed, and the question.
    assert_eq!(counts(usage), (3, 3, 0, 1));
}

#[test]
fn a_full_prefix_cache_gives_way_to_new_sequences() {
    // Two sequences in all: caching both leaves none for a session until one is evicted.
    let mut a = actor(limits(64, 2, 256, 4));
    let candidates = toks(&[1]);
    for text in [&[1, 2][..], &[3, 4]] {
        let sequences = vec![toks(text)];
        ask(&mut a, |reply| Command::Score { sequences, candidates: candidates.clone(), reply }).unwrap();
    }
    assert_eq!((stats(&mut a).cache_entries, a.free.len()), (2, 0));
    let first = a.cache.seqs().next().unwrap();
    open(&mut a, &[5, 6]);
    assert_eq!(a.backend.cleared, vec![first]);
    assert_eq!(stats(&mut a).cache_entries, 1);
}

#[test]
fn a_failed_decode_fails_every_request_in_the_batch() {
    let mut a = actor(limits(64, 8, 256, 4));
    let session = open(&mut a, &[1, 2]);
    ask(&mut a, |reply| Command::Extend { session, branches: vec![0], params: step_params(2, None), reply }).unwrap();
    // The second decode holds the job's prefill and the session's next step.
    a.backend.fail_at = Some(a.backend.batches.len());
    let (mut rx, _) = sample(&mut a, &[4, 5, 6], 2, greedy(5, &[]));
    let (reply, mut extend) = oneshot::channel();
    a.handle(Command::Extend { session, branches: vec![0], params: step_params(2, None), reply });
    drive(&mut a);
    let (samples, failed, _) = outcome(&mut rx);
    assert!(samples.is_empty());
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("the KV cache is full"), "{failed:?}");
    assert!(matches!(extend.try_recv(), Ok(Err(GenError::Backend(_)))));
    // The session and its branch stay, as before the step; the job's sequences are gone.
    let (tokens, _) = ask(&mut a, |reply| Command::Tokens { session, branch: 0, reply }).unwrap();
    assert_eq!(tokens, toks(&[1, 2, 3, 4]));
    assert_eq!(stats(&mut a), Stats { live_seqs: 1, cache_entries: 0, sessions: 1, jobs: 0 });
}

#[test]
fn busy_branches_and_bad_requests_are_refused() {
    let mut a = actor(limits(64, 2, 16, 4));
    let session = open(&mut a, &[1, 2]);
    let err = ask(&mut a, |reply| Command::Fork { session, branch: 0, n: 2, reply }).unwrap_err();
    assert!(err.to_string().contains("cannot fork 2 branches"), "{err}");
    let err = ask(&mut a, |reply| Command::Rollback { session, branch: 0, n_tokens: 1, reply }).unwrap_err();
    assert!(err.to_string().contains("it has 0"), "{err}");
    let err = ask(&mut a, |reply| Command::Append { session, branch: 0, tokens: toks(&[1; 14]), reply }).unwrap_err();
    assert!(matches!(err, GenError::PromptTooLong { prompt_tokens: 16, context: 16 }), "{err}");
    let err = ask(&mut a, |reply| Command::Tokens { session, branch: 7, reply }).unwrap_err();
    assert!(matches!(err, GenError::UnknownBranch(7)), "{err}");
    let err = ask(&mut a, |reply| Command::Extend { session, branches: vec![0, 0], params: step_params(2, None), reply }).unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
    let err = ask(&mut a, |reply| Command::Probe { session, branches: vec![0], suffix: Vec::new(), candidates: toks(&[1]), reply }).unwrap_err();
    assert!(err.to_string().contains("non-empty suffix"), "{err}");
    // While an extend runs, its branch takes no other command.
    let (reply, _extend) = oneshot::channel();
    a.handle(Command::Extend { session, branches: vec![0], params: step_params(2, None), reply });
    let (reply, mut rx) = oneshot::channel();
    a.handle(Command::Release { session, branches: vec![0], reply });
    assert!(matches!(rx.try_recv(), Ok(Err(GenError::InvalidRequest(_)))));
    a.handle(Command::Close { session });
    let err = ask(&mut a, |reply| Command::Tokens { session, branch: 0, reply }).unwrap_err();
    assert!(err.to_string().contains("is closed"), "{err}");
}
