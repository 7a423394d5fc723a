//! Adaptive-ITC on scripted samples and a scripted probe: where draw-more stops, what
//! pruning keeps, and that every probe is counted.

use futures::executor::block_on;

use super::*;
use crate::generator::{Generator, SampleRequest};
use crate::testing::{answer_ctx, problem_42, Choice, ScriptedGenerator};

fn solve(g: &ScriptedGenerator, config: AdaptiveItcConfig) -> Result<Outcome, StrategyError> {
    let itc = AdaptiveItc { config, sampling: SamplingParams { seed: 7, ..Default::default() } };
    block_on(itc.solve(&problem_42(), &[Message::user("q")], &answer_ctx(g)))
}

/// A probe whose p(No) is `p(text)`.
fn probed(choices: Vec<Choice>, p: fn(&str) -> f64) -> ScriptedGenerator {
    ScriptedGenerator::new(choices).with_probe(move |text, candidate| {
        let no = p(text);
        (if candidate == " No" { no } else { 1.0 - no }).ln() as f32
    })
}

/// Usually wrong, sometimes right.
fn menu() -> Vec<Choice> {
    vec![Choice::new("hmm maybe answer: 41", 3.0, -1.0), Choice::new("so answer: 42", 1.0, -1.0)]
}

/// p(No) 0.95 for a sample that says 42, else 0.3.
fn sure_of_42(text: &str) -> f64 {
    [0.3, 0.95][usize::from(text.contains("42"))]
}

#[test]
fn draw_more_stops_at_the_first_sample_past_the_threshold() {
    let req = SampleRequest { messages: vec![Message::user("q")], n: 16, params: SamplingParams { seed: 7, ..Default::default() }, first_index: 0 };
    let reference = block_on(async { ScriptedGenerator::new(menu()).sample(req).await.unwrap().collect().await.unwrap() }).samples;
    let first = reference.iter().position(|s| s.text.contains("42")).expect("some sample says 42");
    assert!(first > 0, "precondition: the first sample does not settle it");

    let out = solve(&probed(menu(), sure_of_42), AdaptiveItcConfig { n: 16, ..Default::default() }).unwrap();
    assert_eq!(out.candidates.len(), first + 1, "drawn up to and including the first sure sample");
    assert!(out.stopped_early);
    assert_eq!(out.answer.as_deref(), Some("42"));
    let best = out.candidates[out.chosen.unwrap()].score.unwrap();
    assert!((best - 0.95).abs() < 1e-6, "{best}");
    assert_eq!(out.usage.scorer_passes, out.candidates.len() as u64, "one probe per sample");
}

#[test]
fn draw_more_draws_the_whole_budget_when_the_probe_never_says_stop() {
    let config = AdaptiveItcConfig { n: 6, round_size: 2, select: ItcSelect::Vote, ..Default::default() };
    let out = solve(&probed(menu(), |_| 0.5), config).unwrap();
    assert_eq!(out.candidates.len(), 6);
    assert!(!out.stopped_early);
    assert_eq!(out.usage.scorer_passes, 6);
    assert_eq!(out.votes.iter().map(|v| v.count).sum::<usize>(), 6, "select = vote: every sample votes");
    let tokens: u64 = out.candidates.iter().map(|c| c.n_tokens as u64).sum();
    assert_eq!(out.usage.completion, tokens);
}

#[test]
fn most_promising_keeps_the_fraction_with_the_highest_scores() {
    assert_eq!(most_promising(&[0.1, 0.9, 0.5, 0.9], 0.5), [1, 3]);
    assert_eq!(most_promising(&[0.1, 0.9, 0.5, 0.9], 0.01), [1], "at least one; ties go to the earlier");
    assert_eq!(most_promising(&[0.1, 0.9, 0.5], 0.5), [1, 2], "rounded up");
    assert_eq!(most_promising(&[0.1, 0.9, 0.5], 1.0), [0, 1, 2]);
}

/// Two kinds of eight-word solutions; the probe, after three words, prefers "fine".
fn long_menu() -> Vec<Choice> {
    vec![
        Choice::new("step one two then more so answer: 41", 1.0, -1.0),
        Choice::new("fine we go on and so answer: 42", 1.0, -1.0),
    ]
}

fn prefers_fine(text: &str) -> f64 {
    [0.3, 0.8][usize::from(text.starts_with("fine"))]
}

#[test]
fn prune_finishes_only_the_kept_fraction() {
    let config = AdaptiveItcConfig { n: 8, mode: ItcMode::Prune, prune_after: 3, keep: 0.25, ..Default::default() };
    let out = solve(&probed(long_menu(), prefers_fine), config).unwrap();
    assert_eq!(out.candidates.len(), 8, "every sample started is reported");
    let (kept, pruned): (Vec<&Candidate>, Vec<&Candidate>) = out.candidates.iter().partition(|c| c.answer.is_some());
    assert_eq!(kept.len(), 2);
    for c in &kept {
        assert!(c.text.starts_with("fine") && c.n_tokens == 8 && c.finish == FinishReason::Eos, "{c:?}");
    }
    for c in &pruned {
        assert_eq!((c.n_tokens, c.score, &c.finish), (3, None, &FinishReason::StepEnd), "{c:?}");
    }
    assert!(out.stopped_early);
    assert_eq!(out.answer.as_deref(), Some("42"));
    assert_eq!(out.usage.scorer_passes, 8 + 2, "every partial, then the survivors again");
    assert_eq!(out.usage.completion, 8 * 3 + 2 * 5, "pruned samples stop at three tokens");
}

#[test]
fn prune_with_a_vote_probes_only_the_partials() {
    let config = AdaptiveItcConfig { n: 4, mode: ItcMode::Prune, prune_after: 3, keep: 0.5, select: ItcSelect::Vote, ..Default::default() };
    let out = solve(&probed(long_menu(), prefers_fine), config).unwrap();
    assert_eq!(out.usage.scorer_passes, 4);
    assert_eq!(out.votes.iter().map(|v| v.count).sum::<usize>(), 2);
}

#[test]
fn a_backend_without_probes_is_a_clear_error() {
    let err = solve(&ScriptedGenerator::new(menu()), AdaptiveItcConfig::default()).unwrap_err();
    assert!(err.to_string().contains("probes"), "{err}");
}
