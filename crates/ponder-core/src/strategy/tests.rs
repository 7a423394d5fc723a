//! Strategy tests on the scripted generator: `build`, voting, adaptive stopping, best-of-N,
//! the scorer contract, partial failure, and the scripted step-wise session.
//!
//! Answers are extracted and keyed by the small rules below, not by `crate::answer`, so
//! these tests do not move when the numeric grader changes. Expected results come from an
//! oracle fed by the generator's own sample stream (`reference`), never from the strategy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::executor::block_on;
use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, proptest, ProptestConfig};
// Named apart: proptest's `Strategy` would clash with ours.
use proptest::strategy::Strategy as _;

use super::Strategy;
use super::*;
use crate::answer::Equivalence;
use crate::generator::{FinishReason, GenError, Generator, Sample, SampleRequest, SamplingParams, StepParams};
use crate::scorer::{CheckerScorer, MeanLogprob, OutcomeScorer, ScoreError, Scores};
use crate::testing::{Choice, ScriptedGenerator};
use crate::{GoldChecker, Message, Problem, Usage};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Trimmed lowercase keys: enough equivalence to group answers here.
#[derive(Debug, Clone, Copy, Default)]
struct Lower;

impl Equivalence for Lower {
    fn key(&self, answer: &str) -> String {
        answer.trim().to_lowercase()
    }
}

/// The text after the last "answer: ", if it is not blank.
fn after_answer(text: &str) -> Option<String> {
    const MARK: &str = "answer: ";
    let at = text.rfind(MARK)?;
    let answer = text[at + MARK.len()..].trim();
    (!answer.is_empty()).then(|| answer.to_string())
}

fn key_of(text: &str) -> Option<String> {
    after_answer(text).map(|a| Lower.key(&a))
}

const PROMPT: &str = "what is six times seven";

fn messages() -> Vec<Message> {
    vec![Message::user(PROMPT)]
}

fn problem(gold: &str) -> Problem {
    Problem { id: "test/1".into(), question: PROMPT.into(), gold: gold.into(), level: None, steps: Vec::new() }
}

fn sampling(seed: u64) -> SamplingParams {
    SamplingParams { seed, ..SamplingParams::default() }
}

/// Menu with every choice at logprob -1.
fn menu(items: &[(&str, f64)]) -> Vec<Choice> {
    items.iter().map(|&(t, w)| Choice::new(t, w, -1.0)).collect()
}

fn menu_lp(items: &[(&str, f64, f32)]) -> Vec<Choice> {
    items.iter().map(|&(t, w, lp)| Choice::new(t, w, lp)).collect()
}

fn ctx<'a>(generator: &'a ScriptedGenerator, scorer: Option<&'a dyn OutcomeScorer>) -> Ctx<'a> {
    Ctx {
        generator,
        equivalence: &Lower,
        extract: &after_answer,
        scorer,
        process: None,
        verifier: None,
        thinking: None,
    }
}

/// The samples `n` draws under `seed` on a fresh generator, read straight off its stream.
fn reference(choices: &[Choice], n: usize, seed: u64) -> Vec<Sample> {
    let generator = ScriptedGenerator::new(choices.to_vec());
    let req = SampleRequest { messages: messages(), n, params: sampling(seed), first_index: 0 };
    block_on(async {
        // The request is valid (default sampling, n >= 1 in every caller) and the scripted
        // stream always ends with its usage, so neither step can fail.
        generator.sample(req).await.expect("valid request").collect().await.expect("usage reported")
    })
    .samples
}

/// Oracle for self-consistency: the most frequent key; ties go to the class whose first
/// member has the lowest index. Returns (answer as first written, its count).
fn majority(samples: &[Sample]) -> Option<(String, usize)> {
    // (key, first answer, count, first index), in order of first appearance.
    let mut classes: Vec<(String, String, usize, usize)> = Vec::new();
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.index);
    for s in sorted {
        let Some(answer) = after_answer(&s.text) else { continue };
        let key = Lower.key(&answer);
        match classes.iter_mut().find(|c| c.0 == key) {
            Some(c) => c.2 += 1,
            None => classes.push((key, answer, 1, s.index)),
        }
    }
    let mut best: Option<&(String, String, usize, usize)> = None;
    for c in &classes {
        if best.is_none_or(|b| c.2 > b.2) {
            best = Some(c);
        }
    }
    best.map(|c| (c.1.clone(), c.2))
}

/// Answer key → number of samples.
fn key_counts(samples: &[Sample]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in samples {
        if let Some(k) = key_of(&s.text) {
            *out.entry(k).or_insert(0) += 1;
        }
    }
    out
}

fn run_on(
    name: &str,
    budget: usize,
    seed: u64,
    generator: &ScriptedGenerator,
    scorer: Option<&dyn OutcomeScorer>,
    gold: &str,
) -> Result<Outcome, StrategyError> {
    let strategy = build(name, budget, sampling(seed)).expect("a known strategy with budget >= 1 builds");
    // verify-resample passes nothing, so it draws its whole budget like the others.
    let verifier = AcceptAnswers(Vec::new());
    let ctx = Ctx { verifier: Some(&verifier), ..ctx(generator, scorer) };
    block_on(strategy.solve(&problem(gold), &messages(), &ctx))
}

fn run(
    name: &str,
    budget: usize,
    seed: u64,
    choices: &[Choice],
    scorer: Option<&dyn OutcomeScorer>,
) -> Result<Outcome, StrategyError> {
    run_on(name, budget, seed, &ScriptedGenerator::new(choices.to_vec()), scorer, "42")
}

fn solve_adaptive(s: &AdaptiveSelfConsistency, generator: &ScriptedGenerator) -> Result<Outcome, StrategyError> {
    block_on(s.solve(&problem("42"), &messages(), &ctx(generator, None)))
}

fn completion_of(o: &Outcome) -> u64 {
    o.candidates.iter().map(|c| c.n_tokens as u64).sum()
}

fn answered(o: &Outcome) -> usize {
    o.candidates.iter().filter(|c| c.answer.is_some()).count()
}

/// Scores each candidate by its answer, and reports one scorer pass per candidate.
struct ByAnswer(fn(Option<&str>) -> f64);

#[async_trait]
impl OutcomeScorer for ByAnswer {
    fn name(&self) -> &str {
        "by-answer"
    }
    async fn score(&self, _problem: &Problem, candidates: &[Candidate]) -> Result<Scores, ScoreError> {
        let values = candidates.iter().map(|c| (self.0)(c.answer.as_deref())).collect();
        Ok(Scores { values, usage: Usage { scorer_passes: candidates.len() as u64, ..Usage::default() } })
    }
}

/// Breaks the scorer contract: `bad` at position `at`, 0.5 elsewhere.
struct BadAt {
    at: usize,
    bad: f64,
}

#[async_trait]
impl OutcomeScorer for BadAt {
    fn name(&self) -> &str {
        "bad-at"
    }
    async fn score(&self, _problem: &Problem, candidates: &[Candidate]) -> Result<Scores, ScoreError> {
        let values = (0..candidates.len()).map(|i| if i == self.at { self.bad } else { 0.5 }).collect();
        Ok(Scores { values, usage: Usage::default() })
    }
}

/// Breaks the scorer contract: returns `n_candidates + delta` scores.
struct Miscount(isize);

#[async_trait]
impl OutcomeScorer for Miscount {
    fn name(&self) -> &str {
        "miscount"
    }
    async fn score(&self, _problem: &Problem, candidates: &[Candidate]) -> Result<Scores, ScoreError> {
        let n = (candidates.len() as isize + self.0).max(0) as usize;
        Ok(Scores { values: vec![0.5; n], usage: Usage::default() })
    }
}

// ---------------------------------------------------------------------------------------
// build
// ---------------------------------------------------------------------------------------

/// Every strategy but `auto` (it needs a policy; tested in `auto.rs`).
fn strategies() -> Vec<&'static str> {
    StrategySpec::names().iter().copied().filter(|n| *n != "auto").collect()
}

fn build(name: &str, budget: usize, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
    StrategySpec::parse(name, Some(budget))?.build(sampling)
}

#[test]
fn build_rejects_unknown_name_listing_known_ones() {
    let err = build("beam-of-dreams", 4, sampling(0)).err().expect("an unknown name must not build");
    let StrategyError::UnknownStrategy { name, known } = &err else { panic!("expected UnknownStrategy, got {err:?}") };
    assert_eq!(name, "beam-of-dreams");
    let listed: Vec<&str> = known.split(", ").collect();
    assert_eq!(listed, StrategySpec::names());
    let message = err.to_string();
    assert!(message.contains("\"beam-of-dreams\""), "{message}");
    for s in StrategySpec::names() {
        assert!(message.contains(s), "{message} should list {s}");
    }
}

#[test]
fn build_rejects_zero_budget() {
    for name in strategies() {
        // `single` takes no budget from the caller; `@0` says n = 0 all the same.
        let err = build(&format!("{name}@0"), 4, sampling(0)).err().unwrap_or_else(|| panic!("{name} built with n = 0"));
        if StrategySpec::default_of(name).is_ok_and(|s| s.config().base().is_some()) {
            // A layer's budget also counts its base's: n = 0 is a bad field (or, for a layer
            // without rounds, an unknown one), not a zero budget.
            assert!(matches!(&err, StrategyError::InvalidConfig { field, .. } if field == "n") || matches!(&err, StrategyError::BadSpec(m) if m.contains("unknown field `n`")), "{name}: {err}");
            continue;
        }
        assert_eq!(err, StrategyError::InvalidBudget(0), "{name}");
        assert_eq!(err.to_string(), "budget must be at least 1, got 0");
    }
}

#[test]
fn build_knows_each_listed_strategy_and_its_budget() {
    for expected in ["single", "sc", "adaptive-sc", "bon", "weighted-bon"] {
        assert!(strategies().contains(&expected), "{expected} missing from the spec");
    }
    for name in strategies() {
        for budget in [1, 7, 32] {
            let s = build(name, budget, sampling(0)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.name(), name);
            // A layer: its own calls plus its base's, whatever the caller's budget (revise:
            // two rounds on one sample; critique: a critique and a revision on one sample;
            // fuse: one fusion of sc@4; rank: six pairs of four, both orders, on sc@4).
            let want = match name {
                "single" => 1,
                "revise" | "critique" => 3,
                "fuse" => 5,
                "rank" => 16,
                _ => budget,
            };
            assert_eq!(s.budget(), want, "{name} with budget {budget}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Self-consistency
// ---------------------------------------------------------------------------------------

#[test]
fn sc_majority_answer_wins() {
    let choices = menu(&[("so the answer: 7", 6.0), ("then answer: 8", 3.0), ("thus answer: 9", 1.0)]);
    let mut checked = 0;
    for seed in 0..20 {
        let samples = reference(&choices, 15, seed);
        let counts = key_counts(&samples);
        let max = *counts.values().max().expect("every text has an answer");
        if counts.values().filter(|&&c| c == max).count() > 1 {
            continue; // ties have their own test
        }
        let (want, count) = majority(&samples).expect("answers exist");
        let o = run("sc", 15, seed, &choices, None).expect("sc solves");
        assert_eq!(o.answer.as_deref(), Some(want.as_str()), "seed {seed}");
        assert_eq!(o.votes[0].count, count, "seed {seed}");
        let chosen = &o.candidates[o.chosen.expect("an answer was chosen")];
        assert_eq!(chosen.key.as_deref(), Some(Lower.key(&want).as_str()), "chosen text carries the answer");
        assert!(!o.stopped_early);
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} seeds without a tie");
}

#[test]
fn sc_ties_go_to_the_class_seen_first() {
    // Keys "a" < "b" < "c" in map order, so a tally that ignored the first index would
    // always pick "a" among tied classes; the seeds below include ties where it must not.
    let choices = menu(&[("answer: c", 1.0), ("answer: a", 1.0), ("answer: b", 1.0), ("no idea", 1.0)]);
    let (mut ties, mut ties_not_first_in_map_order) = (0, 0);
    for seed in 0..300 {
        let samples = reference(&choices, 6, seed);
        let counts = key_counts(&samples);
        let Some(&max) = counts.values().max() else { continue };
        let tied: Vec<&String> = counts.iter().filter(|(_, &c)| c == max).map(|(k, _)| k).collect();
        if tied.len() < 2 {
            continue;
        }
        let (want, _) = majority(&samples).expect("answers exist");
        let o = run("sc", 6, seed, &choices, None).expect("sc solves");
        assert_eq!(o.answer.as_deref(), Some(want.as_str()), "seed {seed}, tied {tied:?}");
        let first_of = |k: &str| samples.iter().find(|s| key_of(&s.text).as_deref() == Some(k)).map(|s| s.index);
        assert_eq!(o.votes[0].first_index, first_of(&want).expect("winner occurs"), "seed {seed}");
        assert_eq!(o.candidates[o.chosen.expect("chosen")].index, o.votes[0].first_index, "seed {seed}");
        ties += 1;
        if &want != tied[0] {
            ties_not_first_in_map_order += 1;
        }
    }
    assert!(ties >= 10, "only {ties} tied seeds");
    assert!(ties_not_first_in_map_order >= 3, "only {ties_not_first_in_map_order} informative ties");
}

#[test]
fn sc_candidates_without_an_answer_do_not_vote() {
    // The answerless text is the most frequent: if it voted (say under an empty key) it would win.
    let choices = menu(&[("i give up", 5.0), ("answer: 3", 2.0), ("answer: 4", 1.0)]);
    let silent = |samples: &[Sample]| samples.iter().filter(|s| key_of(&s.text).is_none()).count();
    let seed = (0..500)
        .find(|&seed| {
            let samples = reference(&choices, 12, seed);
            key_counts(&samples).values().all(|&c| c < silent(&samples))
        })
        .expect("a seed where the answerless text is the plurality");
    let samples = reference(&choices, 12, seed);
    let n_silent = silent(&samples);
    let o = run("sc", 12, seed, &choices, None).expect("sc solves");
    assert_eq!(o.answer, majority(&samples).map(|(a, _)| a));
    assert!(o.answer.is_some());
    for c in &o.candidates {
        assert_eq!(c.answer.is_none(), c.text == "i give up");
        assert_eq!(c.key.is_none(), c.answer.is_none());
    }
    assert!(o.votes.iter().all(|v| !v.key.is_empty() && !v.answer.is_empty()));
    assert_eq!(o.votes.iter().map(|v| v.count).sum::<usize>(), 12 - n_silent);
    assert_eq!(o.votes.iter().map(|v| v.count).sum::<usize>(), answered(&o));
}

#[test]
fn sc_without_any_answer_returns_none() {
    let o = run("sc", 5, 0, &menu(&[("hmm", 1.0), ("no clue at all", 1.0)]), None).expect("sc solves");
    assert_eq!(o.answer, None);
    assert!(o.votes.is_empty());
    assert_eq!(o.candidates.len(), 5);
}

#[test]
fn sc_votes_sum_to_answered_and_usage_is_exact() {
    let choices = menu(&[
        ("a short one answer: 1", 1.0),
        ("a much longer chain of thought that ends with answer: 2", 1.0),
        ("answer: 3", 1.0),
        ("nothing", 1.0),
    ]);
    for seed in 0..10 {
        let samples = reference(&choices, 9, seed);
        let o = run("sc", 9, seed, &choices, None).expect("sc solves");
        assert_eq!(o.votes.iter().map(|v| v.count).sum::<usize>(), answered(&o), "seed {seed}");
        assert_eq!(o.usage.completion, completion_of(&o), "seed {seed}");
        let words: u64 = samples.iter().map(|s| s.text.split_whitespace().count() as u64).sum();
        assert_eq!(o.usage.completion, words, "seed {seed}: a scripted token is a word");
        assert_eq!(o.usage.prompt_computed, PROMPT.split_whitespace().count() as u64, "one request, one prefill");
        let texts: Vec<&str> = o.candidates.iter().map(|c| c.text.as_str()).collect();
        let want: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, want, "seed {seed}: candidates are the samples in index order");
    }
}

#[test]
fn sc_equivalent_answers_vote_together() {
    let choices = menu(&[("answer: SEVEN", 1.0), ("answer: seven", 1.0), ("answer: eight", 1.5)]);
    let seed = 4;
    let samples = reference(&choices, 12, seed);
    let n_seven = samples.iter().filter(|s| s.text.to_lowercase() == "answer: seven").count();
    let n_eight = samples.len() - n_seven;
    let o = run("sc", 12, seed, &choices, None).expect("sc solves");
    let seven = o.votes.iter().find(|v| v.key == "seven").expect("a seven class");
    assert_eq!(seven.count, n_seven);
    assert_eq!(o.votes.len(), if n_eight > 0 { 2 } else { 1 });
    // The class shows the spelling of its first member.
    let first = samples.iter().find(|s| s.text.to_lowercase() == "answer: seven").expect("a seven sample");
    assert_eq!(seven.answer, after_answer(&first.text).expect("has answer"));
}

#[test]
fn sc_is_a_function_of_the_seed() {
    let choices = menu(&[
        ("answer: 1", 1.0),
        ("answer: 2", 1.0),
        ("so answer: 3", 1.0),
        ("maybe answer: 4", 1.0),
        ("surely answer: 5", 1.0),
    ]);
    let a = run("sc", 16, 99, &choices, None).expect("sc solves");
    let b = run("sc", 16, 99, &choices, None).expect("sc solves");
    assert_eq!(a, b);
    let c = run("sc", 16, 100, &choices, None).expect("sc solves");
    let texts = |o: &Outcome| o.candidates.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
    assert_ne!(texts(&a), texts(&c));
}

// ---------------------------------------------------------------------------------------
// Adaptive self-consistency
// ---------------------------------------------------------------------------------------

fn lopsided() -> Vec<Choice> {
    menu(&[("clearly answer: 7", 1000.0), ("oddly answer: 8", 1.0)])
}

#[test]
fn adaptive_sc_stops_early_on_a_clear_majority() {
    let choices = lopsided();
    let seed = 3;
    let head = reference(&choices, 4, seed);
    assert!(head.iter().all(|s| key_of(&s.text).as_deref() == Some("7")), "precondition: four 7s first");
    let generator = ScriptedGenerator::new(choices.clone());
    let o = run_on("adaptive-sc", 16, seed, &generator, None, "42").expect("adaptive-sc solves");
    assert!(o.stopped_early);
    // Four unanimous votes pass 0.95 (three do not), and the second round never starts.
    assert_eq!(o.candidates.len(), 4);
    assert_eq!(generator.started(), 4);
    assert_eq!(o.answer.as_deref(), Some("7"));
    let full = run("sc", 16, seed, &choices, None).expect("sc solves");
    assert_eq!(o.answer, full.answer);
    assert_eq!(o.usage.completion, completion_of(&o));
}

#[test]
fn adaptive_sc_cancels_the_samples_still_running() {
    let choices = lopsided();
    let seed = 3;
    // One round as large as the budget: the stop falls mid-round, so the rest must be cancelled.
    let s = AdaptiveSelfConsistency { round_size: 16, ..AdaptiveSelfConsistency::new(16, sampling(seed)) };
    let generator = ScriptedGenerator::new(choices.clone());
    let o = solve_adaptive(&s, &generator).expect("adaptive-sc solves");
    assert!(o.stopped_early);
    assert_eq!(o.candidates.len(), 4);
    assert_eq!(generator.started(), 4, "the 12 samples after the stop were started anyway");
    assert_eq!(o.usage.completion, completion_of(&o));
    assert_eq!(o.answer, run("sc", 16, seed, &choices, None).expect("sc solves").answer);
}

#[test]
fn adaptive_sc_uses_the_whole_budget_on_an_even_split() {
    let choices = menu(&[("answer: heads", 1.0), ("answer: tails", 1.0)]);
    // Budget 10 with rounds of 4: 4 + 4 + 2, so a last round that overdrew would show.
    let budget = 10;
    let never_decided = |samples: &[Sample]| {
        (1..=samples.len()).all(|k| {
            let mut counts: Vec<usize> = key_counts(&samples[..k]).into_values().collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let (v1, v2) = (counts[0], counts.get(1).copied().unwrap_or(0));
            leader_stays_probability(v1, v2) < 0.95
        })
    };
    let seeds: Vec<u64> = (0..200).filter(|&seed| never_decided(&reference(&choices, budget, seed))).take(5).collect();
    assert!(!seeds.is_empty(), "no seed keeps the vote open");
    for seed in seeds {
        let generator = ScriptedGenerator::new(choices.clone());
        let o = run_on("adaptive-sc", budget, seed, &generator, None, "42").expect("adaptive-sc solves");
        assert!(!o.stopped_early, "seed {seed}");
        assert_eq!(o.candidates.len(), budget, "seed {seed}");
        assert_eq!(generator.started(), budget, "seed {seed}");
        let indices: Vec<usize> = o.candidates.iter().map(|c| c.index).collect();
        assert_eq!(indices, (0..budget).collect::<Vec<_>>(), "seed {seed}: rounds continue the numbering");
        let full = run("sc", budget, seed, &choices, None).expect("sc solves");
        assert_eq!(o.answer, full.answer, "seed {seed}");
        assert_eq!(o.votes, full.votes, "seed {seed}");
    }
}

#[test]
fn adaptive_sc_is_not_early_when_the_stop_falls_on_the_last_sample() {
    // Sample 0 fails; samples 1..=4 agree. Round 1 (0..4) has three votes (P = 0.9375),
    // round 2 is sample 4 alone, whose fourth vote passes 0.95: the budget is spent.
    let generator = ScriptedGenerator::new(menu(&[("answer: 5", 1.0)])).failing(vec![0]);
    let o = run_on("adaptive-sc", 5, 0, &generator, None, "42").expect("adaptive-sc solves");
    assert_eq!(generator.started(), 5);
    assert_eq!(o.candidates.len(), 4);
    assert_eq!(o.n_failed, 1);
    assert_eq!(o.answer.as_deref(), Some("5"));
    assert!(!o.stopped_early, "all 5 samples of the budget were drawn, yet stopped_early is set");
}

// ---------------------------------------------------------------------------------------
// Best-of-N and weighted best-of-N
// ---------------------------------------------------------------------------------------

#[test]
fn bon_with_mean_logprob_picks_the_most_likely_candidate_earliest_first() {
    // The frequent answer is the least likely; "2" and "5" tie at the top.
    let choices =
        menu_lp(&[("long winded answer: 1", 5.0, -2.0), ("answer: 2", 1.0, -0.25), ("answer: 5", 1.0, -0.25)]);
    let mut checked = 0;
    for seed in 0..100 {
        let samples = reference(&choices, 10, seed);
        let top: Vec<usize> = samples.iter().filter(|s| s.token_logprobs[0] == -0.25).map(|s| s.index).collect();
        // Informative seeds only: a real tie, and the winner is not simply position 0.
        if top.len() < 2 || top[0] == 0 {
            continue;
        }
        let o = run("bon", 10, seed, &choices, Some(&MeanLogprob)).expect("bon solves");
        let chosen = o.chosen.expect("bon always chooses");
        assert_eq!(o.candidates[chosen].index, top[0], "seed {seed}");
        assert_eq!(o.answer, after_answer(&samples[top[0]].text), "seed {seed}");
        assert!(o.votes.is_empty());
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} informative seeds");
}

#[test]
fn bon_and_weighted_bon_need_a_scorer() {
    for name in ["bon", "weighted-bon"] {
        let generator = ScriptedGenerator::new(menu(&[("answer: 1", 1.0)]));
        let err = run_on(name, 4, 0, &generator, None, "42").expect_err("no scorer, no best-of-N");
        assert_eq!(err, StrategyError::NeedsScorer(name.into()));
        assert_eq!(err.to_string(), format!("strategy {name} needs a scorer"));
        assert_eq!(generator.started(), 0, "{name} drew samples it could not score");
    }
}

/// Finds a seed whose `n` samples satisfy `ok`, given (count of "1", count of "2").
fn seed_where(choices: &[Choice], n: usize, ok: impl Fn(usize, usize) -> bool) -> u64 {
    (0..500)
        .find(|&seed| {
            let counts = key_counts(&reference(choices, n, seed));
            let get = |k: &str| counts.get(k).copied().unwrap_or(0);
            ok(get("1"), get("2"))
        })
        .expect("some seed satisfies the precondition")
}

#[test]
fn weighted_bon_lets_a_rarer_answer_with_more_total_score_win() {
    let choices = menu(&[("answer: 1", 3.0), ("answer: 2", 1.0)]);
    let score: fn(Option<&str>) -> f64 = |a| match a {
        Some("1") => 0.1,
        Some("2") => 1.0,
        _ => 0.0,
    };
    // "1" is more frequent, yet 0.1 * n1 < 1.0 * n2.
    let seed = seed_where(&choices, 12, |n1, n2| n2 > 0 && n1 > n2 && 0.1 * (n1 as f64) < n2 as f64);
    let counts = key_counts(&reference(&choices, 12, seed));
    let (n1, n2) = (counts["1"], counts["2"]);
    let o = run("weighted-bon", 12, seed, &choices, Some(&ByAnswer(score))).expect("weighted-bon solves");
    assert_eq!(o.answer.as_deref(), Some("2"));
    assert_eq!(o.votes[0].count, n2);
    assert!((o.votes[0].weight - n2 as f64).abs() < 1e-9);
    assert!((o.votes[1].weight - 0.1 * n1 as f64).abs() < 1e-9);
    assert_eq!(o.candidates[o.chosen.expect("chosen")].answer.as_deref(), Some("2"));
    assert_eq!(o.usage.scorer_passes, 12, "the scorer's usage is added");
    assert_eq!(o.usage.completion, completion_of(&o));
    assert_eq!(run("sc", 12, seed, &choices, None).expect("sc solves").answer.as_deref(), Some("1"));
}

#[test]
fn weighted_bon_lets_a_frequent_answer_outweigh_a_higher_single_score() {
    let choices = menu(&[("answer: 1", 3.0), ("answer: 2", 1.0)]);
    let score: fn(Option<&str>) -> f64 = |a| match a {
        Some("1") => 0.5,
        Some("2") => 1.0,
        _ => 0.0,
    };
    let seed = seed_where(&choices, 12, |n1, n2| n2 > 0 && 0.5 * (n1 as f64) > n2 as f64);
    let o = run("weighted-bon", 12, seed, &choices, Some(&ByAnswer(score))).expect("weighted-bon solves");
    assert_eq!(o.answer.as_deref(), Some("1"));
    // Plain best-of-N takes the single best score instead.
    let best = run("bon", 12, seed, &choices, Some(&ByAnswer(score))).expect("bon solves");
    assert_eq!(best.answer.as_deref(), Some("2"));
    assert_eq!(best.usage.scorer_passes, 12);
}

#[test]
fn bon_with_the_checker_scorer_finds_the_correct_candidate() {
    let choices = menu(&[("answer: 13", 10.0), ("answer: 42", 1.0)]);
    let checker = CheckerScorer(Arc::new(GoldChecker(Lower)));
    let seed = (0..500)
        .find(|&seed| {
            let samples = reference(&choices, 8, seed);
            key_of(&samples[0].text).as_deref() == Some("13")
                && samples.iter().any(|s| key_of(&s.text).as_deref() == Some("42"))
        })
        .expect("a seed where 42 appears, but not first");
    let generator = ScriptedGenerator::new(choices.clone());
    let o = run_on("bon", 8, seed, &generator, Some(&checker), "42").expect("bon solves");
    assert_eq!(o.answer.as_deref(), Some("42"));
    assert_eq!(o.candidates[o.chosen.expect("chosen")].score, Some(1.0));
    for c in &o.candidates {
        assert_eq!(c.score, Some(if c.answer.as_deref() == Some("42") { 1.0 } else { 0.0 }));
    }
    assert_eq!(run("sc", 8, seed, &choices, None).expect("sc solves").answer.as_deref(), Some("13"));
    // With no correct candidate every score is 0 and the first candidate stands.
    let none = run_on("bon", 8, seed, &ScriptedGenerator::new(choices), Some(&checker), "99").expect("bon solves");
    assert_eq!(none.chosen, Some(0));
}

#[test]
fn checker_scorer_without_gold_is_a_scorer_error() {
    let checker = CheckerScorer(Arc::new(GoldChecker(Lower)));
    for name in ["bon", "weighted-bon"] {
        for gold in ["", "   "] {
            let generator = ScriptedGenerator::new(menu(&[("answer: 1", 1.0)]));
            let err = run_on(name, 3, 0, &generator, Some(&checker), gold).expect_err("no gold, no checker");
            let StrategyError::Scorer(ScoreError::Unavailable { scorer, problem, .. }) = &err else {
                panic!("{name}: expected Scorer(Unavailable), got {err:?}")
            };
            assert_eq!(scorer, "checker");
            assert_eq!(problem, "test/1");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The scorer contract
// ---------------------------------------------------------------------------------------

#[test]
fn non_finite_scores_are_errors_naming_the_candidate() {
    let choices = menu(&[("answer: 1", 1.0), ("answer: 2", 1.0)]);
    for name in ["bon", "weighted-bon"] {
        for (at, bad) in [(2, f64::NAN), (0, f64::INFINITY), (4, f64::NEG_INFINITY)] {
            let err = run(name, 5, 0, &choices, Some(&BadAt { at, bad })).expect_err("a non-finite score must fail");
            let StrategyError::Scorer(ScoreError::NonFinite { scorer, index, value }) = &err else {
                panic!("{name}: expected Scorer(NonFinite), got {err:?}")
            };
            assert_eq!(scorer, "bad-at");
            assert_eq!(*index, at, "{name}");
            assert!(value.is_nan() == bad.is_nan() && (bad.is_nan() || *value == bad));
            assert!(err.to_string().contains(&format!("candidate {at}")), "{err}");
        }
    }
}

#[test]
fn a_wrong_number_of_scores_is_an_error() {
    let choices = menu(&[("answer: 1", 1.0)]);
    for name in ["bon", "weighted-bon"] {
        for delta in [-1isize, 1, -5] {
            let err = run(name, 5, 0, &choices, Some(&Miscount(delta))).expect_err("a miscount must fail");
            assert_eq!(
                err,
                StrategyError::Scorer(ScoreError::WrongCount {
                    scorer: "miscount".into(),
                    expected: 5,
                    got: (5 + delta) as usize
                }),
                "{name}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Partial failure
// ---------------------------------------------------------------------------------------

#[test]
fn sc_decides_from_the_survivors() {
    let choices = menu(&[("answer: 1", 1.0), ("answer: 2", 1.0), ("answer: 3", 1.0)]);
    let failing = vec![0, 1, 2];
    let n = 9;
    // A seed where dropping the failed samples changes the majority, so ignoring the
    // failures (or counting them) would show.
    let seed = (0..500)
        .find(|&seed| {
            let all = reference(&choices, n, seed);
            let kept: Vec<Sample> = all.iter().filter(|s| !failing.contains(&s.index)).cloned().collect();
            majority(&all).map(|m| m.0) != majority(&kept).map(|m| m.0)
        })
        .expect("a seed where the failures matter");
    let survivors: Vec<Sample> =
        reference(&choices, n, seed).into_iter().filter(|s| !failing.contains(&s.index)).collect();
    let generator = ScriptedGenerator::new(choices).failing(failing.clone());
    let o = run_on("sc", n, seed, &generator, None, "42").expect("sc solves from survivors");
    assert_eq!(o.n_failed, failing.len());
    assert_eq!(o.candidates.iter().map(|c| c.index).collect::<Vec<_>>(), (3..n).collect::<Vec<_>>());
    assert_eq!(o.answer, majority(&survivors).map(|m| m.0));
    assert_eq!(o.votes.iter().map(|v| v.count).sum::<usize>(), n - failing.len());
    assert_eq!(o.usage.completion, completion_of(&o));
}

#[test]
fn scored_strategies_decide_from_the_survivors() {
    let choices = menu_lp(&[("answer: 1", 1.0, -1.0), ("answer: 2", 1.0, -0.5)]);
    for name in ["bon", "weighted-bon", "adaptive-sc"] {
        let generator = ScriptedGenerator::new(choices.clone()).failing(vec![1, 3]);
        let o = run_on(name, 6, 5, &generator, Some(&MeanLogprob), "42").expect("survivors decide");
        assert_eq!(o.n_failed, 2, "{name}");
        assert!(o.candidates.iter().all(|c| c.index != 1 && c.index != 3), "{name}");
        assert_eq!(o.candidates.len() + o.n_failed, generator.started(), "{name}");
        assert!(o.chosen.is_some_and(|i| i < o.candidates.len()), "{name}");
    }
}

#[test]
fn every_sample_failing_is_insufficient_candidates() {
    let budget = 6;
    // Search strategies draw through step sessions (their failures are tested in search_tests).
    for name in strategies().into_iter().filter(|n| !StrategySpec::default_of(n).is_ok_and(|s| s.needs().session)) {
        let generator = ScriptedGenerator::new(menu(&[("answer: 1", 1.0)])).failing((0..budget).collect());
        let err = run_on(name, budget, 0, &generator, Some(&MeanLogprob), "42").expect_err("nothing to decide from");
        // A layer fails with its base (revise, critique: one sample; fuse, rank: sc@4).
        let base = StrategySpec::default_of(name).ok().and_then(|s| s.config().base().map(StrategySpec::budget));
        let attempted = if name == "single" { 1 } else { base.unwrap_or(budget) };
        assert!(matches!(&err, StrategyError::InsufficientCandidates { attempted: a, .. } if *a == attempted), "{name}: {err}");
        assert!(err.to_string().contains("insufficient_candidates"));
        assert_eq!(generator.started(), attempted, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

/// A menu of 1–5 texts: answers from a small pool (so classes collide), some answerless,
/// with 0–3 filler words so token counts differ.
fn arb_menu() -> impl proptest::strategy::Strategy<Value = Vec<Choice>> {
    prop::collection::vec((0usize..5, 0.05f64..10.0, -5.0f32..0.0, 0usize..4), 1..=5).prop_map(|items| {
        items
            .into_iter()
            .map(|(answer, weight, logprob, filler)| {
                let words = "so we get".split(' ').take(filler).collect::<Vec<_>>().join(" ");
                let text = if answer == 4 { format!("{words} no idea") } else { format!("{words} answer: {answer}") };
                Choice::new(text.trim().to_string(), weight, logprob)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn sc_tallies_add_up(
        choices in arb_menu(),
        budget in 1usize..=32,
        seed in any::<u64>(),
        fail in prop::collection::vec(prop::bool::weighted(0.2), 32),
    ) {
        let failing: Vec<usize> = (0..budget).filter(|&i| fail[i]).collect();
        let generator = ScriptedGenerator::new(choices.clone()).failing(failing.clone());
        let result = run_on("sc", budget, seed, &generator, None, "42");
        if failing.len() == budget {
            let attempted = match result {
                Err(StrategyError::InsufficientCandidates { attempted, .. }) => attempted,
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(attempted, budget);
            return Ok(());
        }
        let o = result.expect("some sample survived");
        prop_assert!(o.candidates.len() <= budget);
        prop_assert_eq!(o.candidates.len() + o.n_failed, budget);
        prop_assert_eq!(o.n_failed, failing.len());
        let indices: BTreeSet<usize> = o.candidates.iter().map(|c| c.index).collect();
        prop_assert_eq!(indices.len(), o.candidates.len());
        prop_assert!(indices.iter().all(|i| !failing.contains(i) && *i < budget));
        prop_assert_eq!(o.votes.iter().map(|v| v.count).sum::<usize>(), answered(&o));
        prop_assert_eq!(o.answer.clone(), o.votes.first().map(|v| v.answer.clone()));
        prop_assert_eq!(o.answer.is_some(), answered(&o) > 0);
        if let Some(top) = o.votes.first() {
            let max = o.votes.iter().map(|v| v.count).max().expect("votes are not empty");
            prop_assert_eq!(top.count, max);
            let members = o.candidates.iter().filter(|c| c.key.as_deref() == Some(top.key.as_str())).count();
            prop_assert_eq!(members, top.count);
        }
        prop_assert_eq!(o.usage.completion, completion_of(&o));
    }

    #[test]
    fn adaptive_sc_stays_within_budget(
        choices in arb_menu(),
        budget in 1usize..=32,
        round_size in 1usize..=8,
        seed in any::<u64>(),
    ) {
        let s = AdaptiveSelfConsistency { round_size, ..AdaptiveSelfConsistency::new(budget, sampling(seed)) };
        let generator = ScriptedGenerator::new(choices);
        let o = solve_adaptive(&s, &generator).expect("no sample fails");
        prop_assert!(generator.started() <= budget);
        prop_assert!(o.candidates.len() <= budget);
        // Cancelled scripted samples never start, so usage is exactly the candidates' tokens.
        prop_assert_eq!(o.candidates.len(), generator.started());
        prop_assert_eq!(o.usage.completion, completion_of(&o));
        prop_assert_eq!(o.stopped_early, o.candidates.len() < budget);
        prop_assert_eq!(o.votes.iter().map(|v| v.count).sum::<usize>(), answered(&o));
        prop_assert_eq!(o.answer.clone(), o.votes.first().map(|v| v.answer.clone()));
    }

    #[test]
    fn single_draws_exactly_one(choices in arb_menu(), seed in any::<u64>()) {
        let generator = ScriptedGenerator::new(choices.clone());
        let o = run_on("single", 8, seed, &generator, None, "42").expect("single solves");
        prop_assert_eq!(generator.started(), 1);
        prop_assert_eq!(o.candidates.len(), 1);
        prop_assert_eq!(o.candidates[0].index, 0);
        prop_assert_eq!(o.chosen, Some(0));
        prop_assert_eq!(&o.answer, &o.candidates[0].answer);
        prop_assert_eq!(o.candidates[0].text.clone(), reference(&choices, 1, seed)[0].text.clone());
    }
}

// ---------------------------------------------------------------------------------------
// The scripted step-wise session
// ---------------------------------------------------------------------------------------

fn steps_params(delimiter: Option<&str>) -> StepParams {
    StepParams { delimiter: delimiter.map(String::from), ..StepParams::default() }
}

#[test]
fn step_session_splits_on_the_delimiter() {
    let generator = ScriptedGenerator::new(menu(&[("first step\n\nsecond step\n\nthe answer: 4", 1.0)]));
    block_on(async {
        let mut session = generator.open(&messages(), 0).await.expect("opens");
        let root = session.root();
        let params = steps_params(Some("\n\n"));
        let mut got = Vec::new();
        for _ in 0..3 {
            let mut steps = session.extend(&[root], &params).await.expect("extends");
            assert_eq!(steps.len(), 1);
            got.push(steps.remove(0));
        }
        let texts: Vec<&str> = got.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["first step\n\n", "second step\n\n", "the answer: 4"]);
        assert!(got.iter().all(|s| s.branch == root));
        assert_eq!(got.iter().map(|s| s.n_tokens).collect::<Vec<_>>(), [2, 2, 3]);
        assert_eq!(got[0].finish, FinishReason::StepEnd);
        assert_eq!(got[1].finish, FinishReason::StepEnd);
        assert!(got[2].is_final() && got[2].finish != FinishReason::StepEnd);
        assert!(got.iter().all(|s| s.token_logprobs.len() == s.n_tokens));
        let usage = session.usage();
        assert_eq!(usage.completion, 7);
        assert_eq!(usage.prompt_computed, PROMPT.split_whitespace().count() as u64);
    });
}

#[test]
fn step_session_final_step_may_end_with_the_delimiter() {
    let generator = ScriptedGenerator::new(menu(&[("one\n\ntwo\n\n", 1.0)]));
    block_on(async {
        let mut session = generator.open(&messages(), 0).await.expect("opens");
        let root = session.root();
        let params = steps_params(Some("\n\n"));
        let a = session.extend(&[root], &params).await.expect("extends");
        let b = session.extend(&[root], &params).await.expect("extends");
        assert_eq!((a[0].text.as_str(), &a[0].finish), ("one\n\n", &FinishReason::StepEnd));
        assert_eq!(b[0].text, "two\n\n");
        assert!(b[0].is_final(), "nothing follows the last delimiter");
    });
}

#[test]
fn step_session_without_a_delimiter_returns_the_rest() {
    let generator = ScriptedGenerator::new(menu(&[("first step\n\nthe answer: 4", 1.0)]));
    block_on(async {
        let mut session = generator.open(&messages(), 0).await.expect("opens");
        let root = session.root();
        let steps = session.extend(&[root], &steps_params(None)).await.expect("extends");
        assert_eq!(steps[0].text, "first step\n\nthe answer: 4");
        assert!(steps[0].is_final());
        assert_eq!(steps[0].n_tokens, 5);
    });
}

#[test]
fn step_session_forks_continue_where_the_parent_stands() {
    let texts = ["shared start\n\nleft turn\n\nanswer: 1", "shared start\n\nright turn\n\nanswer: 2"];
    let generator = ScriptedGenerator::new(menu(&[(texts[0], 1.0), (texts[1], 1.0)]));
    block_on(async {
        let mut session = generator.open(&messages(), 7).await.expect("opens");
        let root = session.root();
        let params = steps_params(Some("\n\n"));
        let first = session.extend(&[root], &params).await.expect("extends");
        assert_eq!(first[0].text, "shared start\n\n");
        let children = session.fork(root, 16).await.expect("forks");
        assert_eq!(children.len(), 16);
        let distinct: BTreeSet<_> = children.iter().chain([&root]).collect();
        assert_eq!(distinct.len(), 17, "fork ids are fresh");
        let mut done: Vec<String> = vec![first[0].text.clone(); children.len()];
        let mut live: Vec<usize> = (0..children.len()).collect();
        while !live.is_empty() {
            let ids: Vec<_> = live.iter().map(|&i| children[i]).collect();
            let steps = session.extend(&ids, &params).await.expect("extends");
            assert_eq!(steps.iter().map(|s| s.branch).collect::<Vec<_>>(), ids, "results in the order given");
            for (&i, s) in live.iter().zip(&steps) {
                done[i].push_str(&s.text);
            }
            live = live.into_iter().zip(&steps).filter(|(_, s)| !s.is_final()).map(|(i, _)| i).collect();
        }
        for text in &done {
            assert!(texts.contains(&text.as_str()), "fork produced {text:?}");
        }
        let endings: BTreeSet<&String> = done.iter().collect();
        assert_eq!(endings.len(), 2, "16 forks with their own seeds all took one turn");
        // The parent is still there and goes on from its own first step.
        let next = session.extend(&[root], &params).await.expect("the parent survives forking");
        assert!(next[0].text == "left turn\n\n" || next[0].text == "right turn\n\n");
        assert_eq!(session.fork(999, 1).await, Err(GenError::UnknownBranch(999)));
    });
}

#[test]
fn step_session_released_branches_become_unknown() {
    let generator = ScriptedGenerator::new(menu(&[("a b\n\nc d", 1.0)]));
    block_on(async {
        let mut session = generator.open(&messages(), 0).await.expect("opens");
        let root = session.root();
        let params = steps_params(Some("\n\n"));
        let ids = session.fork(root, 2).await.expect("forks");
        let (gone, kept) = (ids[0], ids[1]);
        session.release(&[gone]).await.expect("releases");
        assert_eq!(session.extend(&[gone], &params).await, Err(GenError::UnknownBranch(gone)));
        assert_eq!(session.fork(gone, 1).await, Err(GenError::UnknownBranch(gone)));
        assert_eq!(session.rollback(gone, 0).await, Err(GenError::UnknownBranch(gone)));
        assert_eq!(session.release(&[gone]).await, Err(GenError::UnknownBranch(gone)));
        let steps = session.extend(&[kept], &params).await.expect("the other branch lives on");
        assert_eq!(steps[0].text, "a b\n\n");
        session.release(&[kept, root]).await.expect("releases both");
        assert_eq!(session.extend(&[root], &params).await, Err(GenError::UnknownBranch(root)));
    });
}

#[test]
fn step_session_rollback_keeps_the_first_n_tokens() {
    // Tokens are words: after "one two\n\nthree four\n\n" (4 tokens), keeping 3 leaves
    // "four" and "five" (2 tokens) to generate again.
    let generator = ScriptedGenerator::new(menu(&[("one two\n\nthree four\n\nfive", 1.0)]));
    block_on(async {
        let mut session = generator.open(&messages(), 0).await.expect("opens");
        let root = session.root();
        let params = steps_params(Some("\n\n"));
        for _ in 0..2 {
            session.extend(&[root], &params).await.expect("extends");
        }
        session.rollback(root, 3).await.expect("rolls back");
        let mut rest = Vec::new();
        loop {
            let step = session.extend(&[root], &params).await.expect("extends").remove(0);
            let last = step.is_final();
            rest.push(step);
            if last {
                break;
            }
        }
        let regenerated: usize = rest.iter().map(|s| s.n_tokens).sum();
        let text: String = rest.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(text.split_whitespace().collect::<Vec<_>>(), ["four", "five"], "regenerated {text:?}");
        assert_eq!(regenerated, 2);
    });
}

// ---------------------------------------------------------------------------------------
// verify-resample
// ---------------------------------------------------------------------------------------

/// Passes candidates whose answer is in `accept`.
struct AcceptAnswers(Vec<&'static str>);

#[async_trait]
impl crate::verifier::Verifier for AcceptAnswers {
    fn name(&self) -> &str {
        "accept"
    }
    async fn verify(
        &self,
        _problem: &Problem,
        candidate: &Candidate,
    ) -> Result<crate::verifier::Verification, ScoreError> {
        let passed = candidate.answer.as_deref().is_some_and(|a| self.0.contains(&a));
        Ok(crate::verifier::Verification { passed, detail: String::new(), usage: Usage::default() })
    }
}

fn vctx<'a>(generator: &'a ScriptedGenerator, verifier: &'a AcceptAnswers) -> Ctx<'a> {
    Ctx { verifier: Some(verifier), ..ctx(generator, None) }
}

#[test]
fn verify_resample_returns_the_first_passing_sample_and_cancels_the_rest() {
    let choices = menu(&[("answer: 41", 3.0), ("answer: 42", 1.0)]);
    for seed in 0..20 {
        let generator = ScriptedGenerator::new(choices.clone());
        let verifier = AcceptAnswers(vec!["42"]);
        let s = VerifiedResampling { max_samples: 16, sampling: sampling(seed), round_size: 16 };
        let o = block_on(s.solve(&problem("42"), &messages(), &vctx(&generator, &verifier))).unwrap();
        let first_pass = reference(&choices, 16, seed).iter().position(|s| s.text.ends_with("42"));
        match first_pass {
            Some(i) => {
                assert_eq!(o.answer.as_deref(), Some("42"));
                assert!(!o.abstained);
                assert_eq!(o.candidates.len(), i + 1, "seed {seed}");
                assert_eq!(generator.started(), i + 1, "later samples were not cancelled");
                assert_eq!(o.usage.scorer_passes, (i + 1) as u64);
            }
            None => assert!(o.abstained && o.answer.is_none()),
        }
    }
}

#[test]
fn verify_resample_abstains_when_nothing_passes() {
    let generator = ScriptedGenerator::new(menu(&[("answer: 41", 1.0), ("answer: 40", 1.0)]));
    let verifier = AcceptAnswers(vec!["42"]);
    let s = VerifiedResampling { max_samples: 6, sampling: sampling(1), round_size: 4 };
    let o = block_on(s.solve(&problem("42"), &messages(), &vctx(&generator, &verifier))).unwrap();
    assert!(o.abstained);
    assert_eq!(o.answer, None);
    assert_eq!(o.candidates.len(), 6);
    assert!(!o.stopped_early);
}

#[test]
fn verify_resample_needs_a_verifier() {
    let generator = ScriptedGenerator::new(menu(&[("answer: 42", 1.0)]));
    let s = build("verify-resample", 4, sampling(0)).unwrap();
    let err = block_on(s.solve(&problem("42"), &messages(), &ctx(&generator, None))).unwrap_err();
    assert_eq!(err, StrategyError::NeedsVerifier("verify-resample".into()));
}

// ---------------------------------------------------------------------------------------
// Abstention by confidence
// ---------------------------------------------------------------------------------------

#[test]
fn a_voting_strategy_abstains_when_its_winner_holds_too_little_of_the_vote() {
    let choices = menu(&[("answer: 7", 4.0), ("answer: 8", 3.0), ("answer: 9", 3.0), ("no idea", 1.0)]);
    let (mut abstained, mut answered_seeds) = (0, 0);
    for seed in 0..30 {
        let samples = reference(&choices, 9, seed);
        let counts = key_counts(&samples);
        let voted: usize = counts.values().sum();
        let share = *counts.values().max().expect("answers exist") as f64 / voted as f64;
        let spec: StrategySpec = "sc@9{abstain_below = 0.5}".parse().unwrap();
        let generator = ScriptedGenerator::new(choices.clone());
        let o = block_on(spec.build(sampling(seed)).unwrap().solve(&problem("7"), &messages(), &ctx(&generator, None))).unwrap();
        let plain = run("sc", 9, seed, &choices, None).unwrap();
        assert_eq!(o.confidence(), Some(share), "seed {seed}: the leader's share of the answered samples");
        assert_eq!(o.votes, plain.votes, "seed {seed}: the vote is the same, only the decision differs");
        if share < 0.5 {
            assert!(o.abstained && o.answer.is_none() && o.chosen.is_none(), "seed {seed}: {o:?}");
            abstained += 1;
        } else {
            assert_eq!((o.answer.clone(), o.abstained), (plain.answer, false), "seed {seed}");
            answered_seeds += 1;
        }
    }
    assert!(abstained >= 5 && answered_seeds >= 5, "both sides of the threshold: {abstained} abstained, {answered_seeds} answered");
}

#[test]
fn the_leaders_share_is_of_weight_when_weights_are_positive_else_of_votes() {
    let vote = |key: &str, count, weight| Vote { answer: key.into(), key: key.into(), count, weight, first_index: 0 };
    assert_eq!(leader_share(&[vote("a", 1, 3.0), vote("b", 3, 1.0)]), Some(0.75));
    assert_eq!(leader_share(&[vote("a", 1, -0.1), vote("b", 3, -2.0)]), Some(0.25), "log-probabilities: by count");
    assert_eq!(leader_share(&[]), None);
}

#[test]
fn abstain_below_is_a_share_and_only_voting_strategies_take_it() {
    for bad in ["sc{abstain_below = 1.5}", "deepconf{abstain_below = -0.1}"] {
        let e = bad.parse::<StrategySpec>().unwrap_err();
        assert!(matches!(&e, StrategyError::InvalidConfig { field, .. } if field == "abstain_below"), "{bad}: {e}");
    }
    for voting in ["sc", "adaptive-sc", "deepconf", "weighted-bon", "rpc"] {
        let spec: StrategySpec = format!("{voting}{{abstain_below = 0.6}}").parse().unwrap();
        assert_eq!(spec.config().abstain_below(), Some(0.6), "{voting}");
    }
    for other in ["single", "bon", "verify-resample", "beam", "pf"] {
        assert!(format!("{other}{{abstain_below = 0.6}}").parse::<StrategySpec>().is_err(), "{other} does not vote");
    }
}

/// Issue 14: votes read the text after the reasoning span. A "42" the model only
/// considered while thinking, or wrote in a span it never closed, gets no vote; the "7"
/// after the span does. The candidates keep their whole text.
#[test]
fn issue_14_votes_read_only_the_text_after_the_thinking_span() {
    let choices = menu(&[
        ("<think>answer: 42</think>answer: 7", 1.0),
        ("<think>answer: 42 or so", 2.0),
    ]);
    let markers = crate::reasoning::ThinkingMarkers::default();
    let thinking = crate::reasoning::Thinking::new(markers.clone());
    let params = SamplingParams {
        thinking: Some(thinking),
        ..sampling(3)
    };
    let samples = block_on(async {
        let req = SampleRequest {
            messages: messages(),
            n: 8,
            params: params.clone(),
            first_index: 0,
        };
        // Valid request; the scripted stream always reports usage.
        ScriptedGenerator::new(choices.clone())
            .sample(req)
            .await
            .expect("valid request")
            .collect()
            .await
            .expect("usage")
    });
    let generator = ScriptedGenerator::new(choices.clone());
    let sc = SelfConsistency {
        n_samples: 8,
        sampling: params,
    };
    let outcome = block_on(sc.solve(
        &problem("7"),
        &messages(),
        &Ctx {
            thinking: Some(&markers),
            ..ctx(&generator, None)
        },
    ))
    .unwrap();
    let closed = samples
        .samples
        .iter()
        .filter(|s| s.text.contains("</think>"))
        .count();
    assert!(
        closed > 0 && closed < 8,
        "the seed draws both choices: {closed} closed of 8"
    );
    assert_eq!(outcome.answer.as_deref(), Some("7"));
    assert_eq!(
        outcome.votes.iter().map(|v| v.count).sum::<usize>(),
        closed,
        "unclosed spans have no answer"
    );
    assert!(outcome
        .candidates
        .iter()
        .all(|c| c.text.starts_with("<think>answer: 42")));
    // Thinking counts the words inside spans ("answer:" "42" in each; "or" "so" too when open).
    let expected: u64 = samples
        .samples
        .iter()
        .map(|s| if s.text.contains("</think>") { 2 } else { 4 })
        .sum();
    assert_eq!(
        (outcome.usage.thinking, samples.usage.thinking),
        (expected, expected)
    );
    // Without the markers the same samples vote on what was only thought.
    let blind = block_on(sc.solve(&problem("7"), &messages(), &ctx(&generator, None))).unwrap();
    assert_ne!(blind.answer.as_deref(), Some("7"));
}
