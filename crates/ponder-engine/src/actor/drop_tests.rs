//! Stopping samples and releasing branches before their end (issue 14): the cells are
//! freed before the next decode step, and `Usage::dropped` counts exactly the generated
//! tokens thrown away. On the fake decode step of `tests.rs`.

use ponder_core::{ConfidenceStop, SamplingParams};

use super::tests::*;
use super::*;

#[test]
fn a_stopped_sample_frees_its_cells_at_once_and_the_others_go_on() {
    let mut a = actor(limits(64, 8, 256, 4));
    let (mut rx, cancel) = sample(&mut a, &[1, 2, 3], 3, greedy(8, &[]));
    a.admit_waiting();
    for _ in 0..3 {
        a.step();
    }
    let seq_of_1 = *a.seqs.iter().find(|(_, s)| s.tag == 1 && s.run.is_some()).expect("sample 1 runs").0;
    cancel.stop(1);
    cancel.stop(1); // asked twice: stopped once
    a.reap_cancelled();
    assert!(!a.seqs.contains_key(&seq_of_1) && a.backend.cleared.contains(&seq_of_1), "freed before the next step");
    let batches = a.backend.batches.len();
    drive(&mut a);
    // Every later decode step feeds the two samples left, one token each.
    assert!(a.backend.batches[batches..].iter().all(|&n| n == 2), "{:?}", &a.backend.batches[batches..]);
    let (samples, failed, usage) = outcome(&mut rx);
    assert!(failed.is_empty());
    assert_eq!(samples[1], ("efg".to_string(), 3, FinishReason::Stopped));
    assert_eq!(samples[0], ("efghijkl".to_string(), 8, FinishReason::Length));
    assert_eq!(samples[2], samples[0], "the others are unaffected");
    assert_eq!((usage.completion, usage.dropped), (8 + 3 + 8, 3));
    // A stop of a finished or unknown sample is ignored.
    cancel.stop(0);
    cancel.stop(7);
    a.reap_cancelled();
    assert_eq!(stats(&mut a).jobs, 0);
}

#[test]
fn a_stop_before_the_job_is_admitted_ends_the_sample_with_nothing_generated() {
    let mut a = actor(limits(64, 8, 256, 4));
    let (mut rx, cancel) = sample(&mut a, &[1, 2, 3], 2, greedy(4, &[]));
    cancel.stop(0);
    drive(&mut a);
    let (samples, _, usage) = outcome(&mut rx);
    assert_eq!(samples, vec![(String::new(), 0, FinishReason::Stopped), ("efgh".to_string(), 4, FinishReason::Length)]);
    assert_eq!((usage.completion, usage.dropped), (4, 0));
}

#[test]
fn a_low_confidence_sample_counts_as_dropped() {
    let mut a = actor(limits(64, 8, 256, 4));
    // The fake's distributions are all alike: any threshold above their confidence stops
    // a sample once its first group of 2 is full.
    let params = SamplingParams {
        token_stats_k: 2,
        confidence_stop: Some(ConfidenceStop { window: 2, threshold: f32::MAX }),
        ..greedy(8, &[])
    };
    let (mut rx, _) = sample(&mut a, &[1, 2, 3], 2, params);
    drive(&mut a);
    let (samples, _, usage) = outcome(&mut rx);
    assert_eq!(samples, vec![("ef".to_string(), 2, FinishReason::LowConfidence); 2]);
    assert_eq!((usage.completion, usage.dropped), (4, 4));
}

fn extend(a: &mut Actor<Fake>, session: SessionId, branches: Vec<BranchId>, params: StepParams) -> Vec<FinishReason> {
    let (steps, _) = ask(a, |reply| Command::Extend { session, branches, params, reply }).unwrap();
    steps.into_iter().map(|s| s.finish).collect()
}

fn release(a: &mut Actor<Fake>, session: SessionId, branches: Vec<BranchId>) -> u64 {
    ask(a, |reply| Command::Release { session, branches, reply }).unwrap().1.dropped
}

#[test]
fn a_released_branch_drops_the_generated_tokens_no_branch_left_holds() {
    let mut a = actor(limits(64, 8, 256, 4));
    let session = open(&mut a, &[9, 8, 7, 1]);
    let (branches, _) = ask(&mut a, |reply| Command::Fork { session, branch: 0, n: 2, reply }).unwrap();
    assert_eq!(branches, vec![1, 2]);
    assert_eq!(extend(&mut a, session, vec![1, 2], step_params(3, None)), vec![FinishReason::StepEnd; 2]);
    // Branch 3 holds branch 1's 3 tokens, then one appended (fed, not generated) and 2 of its own.
    ask(&mut a, |reply| Command::Fork { session, branch: 1, n: 1, reply }).unwrap();
    ask(&mut a, |reply| Command::Append { session, branch: 3, tokens: toks(&[5]), reply }).unwrap();
    extend(&mut a, session, vec![3], step_params(2, None));
    assert_eq!(release(&mut a, session, vec![1]), 0, "branch 3 still holds all of branch 1");
    assert_eq!(release(&mut a, session, vec![3]), 3 + 2, "then nobody does");
    // A branch that ended on its own drops nothing.
    let last = StepParams { max_total_tokens: 5, ..step_params(8, None) };
    assert_eq!(extend(&mut a, session, vec![2], last), vec![FinishReason::Length]);
    assert_eq!(release(&mut a, session, vec![2]), 5);
    // Released together, branches go in the order given: the last holder counts the shared tokens once.
    let (kids, _) = ask(&mut a, |reply| Command::Fork { session, branch: 0, n: 1, reply }).unwrap();
    extend(&mut a, session, kids.clone(), step_params(2, None));
    let (more, _) = ask(&mut a, |reply| Command::Fork { session, branch: kids[0], n: 2, reply }).unwrap();
    extend(&mut a, session, more.clone(), step_params(1, None));
    // Rolled-back tokens are not counted: 2 shared + 1 + 0 after rolling the last one back to 2.
    ask(&mut a, |reply| Command::Rollback { session, branch: more[1], n_tokens: 2, reply }).unwrap();
    assert_eq!(release(&mut a, session, vec![kids[0], more[0], more[1]]), 5 + 2 + 1);
    assert_eq!(stats(&mut a).live_seqs, 1, "only the root is left");
}
