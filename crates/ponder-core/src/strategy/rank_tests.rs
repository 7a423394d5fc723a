//! rank on scripted judges: verdict parsing, the both-orders rule, failures counted and
//! the base's decision when no verdict parses, exact usage.

use futures::executor::block_on;

use super::*;
use crate::testing::{answer_ctx, problem_42, Choice, ScriptedGenerator};

/// The base's menu: 41 most often, 42 and 43 too.
fn menu() -> Vec<Choice> {
    vec![Choice::new("answer: 41", 3.0, -1.0), Choice::new("answer: 42", 1.0, -1.0), Choice::new("answer: 43", 1.0, -1.0)]
}

/// The answers a judge's request shows, in order (`None`: not a judge's request).
fn shown(m: &[Message]) -> Option<Vec<i64>> {
    let [system, ask] = m else { return None };
    if system.content != JUDGE_PROMPT {
        return None;
    }
    let answer = |block: &str| block.split("answer: ").nth(1)?.split_whitespace().next()?.parse().ok();
    Some(ask.content.split("[Response ").skip(1).map(|b| answer(b).unwrap_or(-1)).collect())
}

/// A judge writing `verdict(answers shown)`.
fn judge(verdict: impl Fn(&[i64]) -> String + Send + Sync + 'static) -> ScriptedGenerator {
    ScriptedGenerator::new(menu()).with_reply(move |m| shown(m).map(|a| verdict(&a)))
}

/// Prefers 42, then the answers nearest it (the smaller on ties): right, and blind to order.
fn nearest_42(a: &[i64]) -> String {
    let mut order: Vec<usize> = (0..a.len()).collect();
    order.sort_by_key(|&i| ((a[i] - 42).abs(), a[i]));
    format!("[[{}]]", order.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>().join(", "))
}

fn solve(spec: &str, seed: u64, g: &ScriptedGenerator) -> Outcome {
    let spec: StrategySpec = spec.parse().unwrap();
    let sampling = SamplingParams { seed, ..SamplingParams::default() };
    block_on(spec.build(sampling).unwrap().solve(&problem_42(), &[Message::user("q")], &answer_ctx(g))).unwrap()
}

/// A seed where sc@6 on the menu answers 41 with all three answers among its samples.
fn seed() -> u64 {
    let plain = ScriptedGenerator::new(menu());
    (0..500)
        .find(|&s| {
            let o = solve("sc@6", s, &plain);
            o.answer.as_deref() == Some("41") && o.votes.len() == 3
        })
        .expect("a seed with three answers")
}

#[test]
fn verdicts_parse_or_count_as_failures() {
    for (reply, k, want) in [
        ("[[1]]", 2, Some(vec![0])),
        ("Response 2 is right. [[2]].", 2, Some(vec![1])),
        ("[[1]] on reflection [[2]]", 2, Some(vec![1])),
        ("2", 2, Some(vec![1])),
        ("[[Response 1]]", 2, Some(vec![0])),
        ("[[2, 3, 1]]", 3, Some(vec![1, 2, 0])),
        ("3 > 1", 3, Some(vec![2, 0])),
        ("", 2, None),
        ("both are fine", 2, None),
        ("[[3]]", 2, None),
        ("[[0]]", 2, None),
        ("[[1, 1]]", 2, None),
        ("[[1", 2, None),
        ("[[A]]", 2, None),
    ] {
        assert_eq!(parse_verdict(reply, k), want, "{reply:?}");
    }
}

#[test]
fn a_consistent_judge_picks_its_answer_over_the_bases_vote() {
    let seed = seed();
    let g = judge(nearest_42);
    let o = solve(r#"rank{base = "sc@6"}"#, seed, &g);
    assert_eq!(o.answer.as_deref(), Some("42"), "{o:?}");
    assert_eq!(o.candidates[o.chosen.unwrap()].answer.as_deref(), Some("42"));
    assert_eq!(o.candidates.len(), 6, "judgements are no candidates");
    // Three contestants: three pairs, each in both orders.
    let counts = |o: &Outcome, k: &str| o.counts.get(k).copied();
    assert_eq!((counts(&o, "judgements"), counts(&o, "judge_failures"), counts(&o, "judge_inconsistent")), (Some(6), Some(0), Some(0)));
    assert_eq!(counts(&o, "judge_fallback"), Some(0));
    // Usage: the base's samples and six verdicts (`[[1, 2]]`), two words each.
    assert_eq!((o.usage.completion, g.started()), (6 * 2 + 6 * 2, 6 + 6));

    let o = solve(r#"rank{base = "sc@6", mode = "listwise"}"#, seed, &g);
    assert_eq!((o.answer.as_deref(), counts(&o, "judgements")), (Some("42"), Some(2)));
}

#[test]
fn a_preference_counts_only_when_both_orders_agree() {
    let seed = seed();
    // Always the second response: without both orders the last contestant wins every pair
    // it is shown second in; with both orders every pair is a tie and the base's answer stays.
    let second = judge(|_| "[[2]]".into());
    let once = solve(r#"rank{base = "sc@6", both_orders = false}"#, seed, &second);
    assert_ne!(once.answer.as_deref(), Some("41"), "{once:?}");
    assert_eq!(once.counts["judgements"], 3);
    let both = solve(r#"rank{base = "sc@6"}"#, seed, &second);
    assert_eq!(both.answer.as_deref(), Some("41"), "{both:?}");
    assert_eq!((both.counts["judge_inconsistent"], both.counts["judge_failures"], both.counts["judge_fallback"]), (3, 0, 0));

    // Listwise, always the order shown: shown forwards and reversed, every place evens out.
    let as_shown = judge(|a| format!("[[{}]]", (1..=a.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")));
    let o = solve(r#"rank{base = "sc@6", mode = "listwise"}"#, seed, &as_shown);
    assert_eq!(o.answer.as_deref(), Some("41"), "{o:?}");
}

#[test]
fn malformed_judgements_are_counted_and_leave_the_bases_choice_when_all_fail() {
    let seed = seed();
    let base = solve("sc@6", seed, &ScriptedGenerator::new(menu()));
    let mumbler = judge(|_| "they both look fine to me".into());
    let o = solve(r#"rank{base = "sc@6"}"#, seed, &mumbler);
    assert_eq!((&o.answer, o.chosen, &o.votes), (&base.answer, base.chosen, &base.votes), "the base's decision, whole");
    assert_eq!((o.counts["judgements"], o.counts["judge_failures"], o.counts["judge_fallback"]), (6, 6, 1));
    assert_eq!(o.strategy, "rank");

    // Verdicts only on pairs showing 42: the other pair's two judgements fail, 42 still wins.
    let partial = judge(|a| match a.iter().position(|&x| x == 42) {
        Some(p) => format!("[[{}]]", p + 1),
        None => "no verdict".into(),
    });
    let o = solve(r#"rank{base = "sc@6"}"#, seed, &partial);
    assert_eq!((o.answer.as_deref(), o.counts["judge_failures"], o.counts["judge_fallback"]), (Some("42"), 2, 0));
}

#[test]
fn one_answer_needs_no_judge_and_the_budget_counts_every_judgement() {
    let g = ScriptedGenerator::new(vec![Choice::new("answer: 41", 1.0, -1.0)]);
    let o = solve(r#"rank{base = "sc@3"}"#, 0, &g);
    assert_eq!((o.answer.as_deref(), g.started(), o.counts["judgements"], o.counts["judge_fallback"]), (Some("41"), 3, 0, 0));

    let budget = |s: &str| s.parse::<StrategySpec>().unwrap().budget();
    assert_eq!(budget(r#"rank{base = "sc@6"}"#), 6 + 6 * 2, "four contestants: six pairs, both orders");
    assert_eq!(budget(r#"rank{base = "sc@6", both_orders = false, max_candidates = 3}"#), 6 + 3);
    assert_eq!(budget(r#"rank{base = "sc@6", mode = "listwise"}"#), 6 + 2);
    assert_eq!(budget(r#"rank{base = "sc@3"}"#), 3 + 3 * 2, "no more contestants than base samples");
    for (bad, field) in [("rank{max_candidates = 1}", "max_candidates"), ("rank{max_chars = 0}", "max_chars"), (r#"rank{base = "rank"}"#, "base")] {
        let e = bad.parse::<StrategySpec>().unwrap_err();
        assert!(matches!(&e, StrategyError::InvalidConfig { field: f, .. } if f == field), "{bad}: {e}");
    }
}
