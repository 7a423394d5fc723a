//! Think-exit on scripted sessions (a token is a word): where the probes settle, that the
//! forced text goes into the sample there, and that every probe is counted.

use futures::executor::block_on;

use super::*;
use crate::testing::{answer_ctx, problem_42, Choice, ScriptedGenerator};

const FORCED: &str = "</think>\n\nFinal answer: ";
const THOUGHT: &str = "<think> 17 times 23 is 391 so it is 391 </think> answer: 391";

/// The model's own text, and what it answers when a probe (or the exit) cuts it after the
/// first 2, 4 or 6 words: 17, then 391 twice. The probes' texts are all but never drawn as
/// a sample's first text (weight 1e-9).
fn model() -> ScriptedGenerator {
    let mut menu = vec![Choice::new(THOUGHT, 1e9, -0.5)];
    for (words, answer) in [("<think> 17", "17"), ("<think> 17 times 23", "391"), ("<think> 17 times 23 is 391", "391")] {
        menu.push(Choice::new(format!("{words}{FORCED}{answer}"), 1e-9, -0.5));
    }
    ScriptedGenerator::new(menu)
}

fn solve(config: ThinkExitConfig, markers: Option<&ThinkingMarkers>) -> Result<Outcome, StrategyError> {
    let g = model();
    let s = ThinkExit { config, sampling: SamplingParams { seed: 3, max_tokens: 64, ..Default::default() } };
    let ctx = Ctx { thinking: markers, ..answer_ctx(&g) };
    block_on(s.solve(&problem_42(), &[Message::user("17*23?")], &ctx))
}

fn every_2() -> ThinkExitConfig {
    ThinkExitConfig { every: 2, probe_tokens: 4, ..Default::default() }
}

#[test]
fn two_agreeing_probes_end_the_span_and_the_sample_answers_after_the_forced_text() {
    let m = ThinkingMarkers::default();
    let out = solve(every_2(), Some(&m)).unwrap();
    let c = &out.candidates[0];
    // Probes after 2 words (17), 4 (391) and 6 (391 again): the exit comes at the third.
    assert_eq!(c.text, format!("<think> 17 times 23 is 391{FORCED}391"));
    assert_eq!((c.answer.as_deref(), out.usage.scorer_passes, out.stopped_early), (Some("391"), 3, true));
    // Six thinking words and one answer word, plus one word for each probe's answer.
    assert_eq!((c.n_tokens, out.usage.completion), (7, 10));
}

#[test]
fn probes_that_are_never_likely_enough_leave_the_sample_as_the_model_wrote_it() {
    let m = ThinkingMarkers::default();
    // Every token here has probability e^-0.5 = 0.61.
    let out = solve(ThinkExitConfig { threshold: 0.9, ..every_2() }, Some(&m)).unwrap();
    let c = &out.candidates[0];
    assert_eq!((c.text.as_str(), out.stopped_early), (THOUGHT, false));
    // A probe after each of the five steps that ended inside the span.
    assert_eq!(out.usage.scorer_passes, 5);
}

#[test]
fn one_probe_is_enough_when_agree_is_1() {
    let m = ThinkingMarkers::default();
    let out = solve(ThinkExitConfig { agree: 1, ..every_2() }, Some(&m)).unwrap();
    assert_eq!(out.candidates[0].text, format!("<think> 17{FORCED}17"));
    assert_eq!(out.usage.scorer_passes, 1);
}

#[test]
fn without_markers_it_says_which_setting_is_missing() {
    let e = solve(every_2(), None).unwrap_err();
    assert!(matches!(&e, StrategyError::InvalidConfig { field, .. } if field == "think_markers"), "{e}");
}

#[test]
fn bad_settings_name_their_field() {
    for (c, field) in [
        (ThinkExitConfig { every: 0, ..Default::default() }, "every"),
        (ThinkExitConfig { agree: 0, ..Default::default() }, "agree"),
        (ThinkExitConfig { threshold: 1.5, ..Default::default() }, "threshold"),
        (ThinkExitConfig { probe_tokens: 0, ..Default::default() }, "probe_tokens"),
        (ThinkExitConfig { n: 0, ..Default::default() }, "n"),
    ] {
        assert_eq!(c.validate().unwrap_err().field, field);
    }
}

#[test]
fn a_sample_is_not_probed_before_it_opens_a_span() {
    let m = ThinkingMarkers::default();
    let g = ScriptedGenerator::new(vec![Choice::new("Let me see. <think> hmm </think> answer: 42", 1.0, -0.1)]);
    let s = ThinkExit { config: ThinkExitConfig { every: 1, ..Default::default() }, sampling: SamplingParams { max_tokens: 64, ..Default::default() } };
    let out = block_on(s.solve(&problem_42(), &[Message::user("q")], &Ctx { thinking: Some(&m), ..answer_ctx(&g) })).unwrap();
    // Only after "<think>" and after "hmm" is the sample inside its span.
    assert_eq!((out.usage.scorer_passes, out.candidates[0].answer.as_deref()), (2, Some("42")));
}
