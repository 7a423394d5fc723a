//! Tests of the step-level search strategies (beam, DVTS, particle filtering, particle
//! Gibbs, A*) on scripted step sessions with a scripted process scorer.
//!
//! `Recorder` wraps the scripted session and logs every call the strategy makes: that is
//! how budgets, prompt release of dropped branches and "finished particles are never
//! extended again" are checked from outside the strategies.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::executor::block_on;
use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, proptest, ProptestConfig};
use proptest::strategy::Strategy as _;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::smc::{ess, resample, softmax};
use super::*;
use crate::answer::Equivalence;
use crate::generator::{
    BranchId, GenError, Generator, GeneratorInfo, SampleRequest, SampleStream, SamplingParams, Step, StepParams,
    StepSession,
};
use crate::scorer::ScoreError;
use crate::testing::{Choice, ScriptedGenerator, ScriptedProcessScorer};
use crate::{Message, Problem, Usage};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Lower;

impl Equivalence for Lower {
    fn key(&self, answer: &str) -> String {
        answer.trim().to_lowercase()
    }
}

fn after_answer(text: &str) -> Option<String> {
    const MARK: &str = "answer: ";
    let at = text.rfind(MARK)?;
    let answer = text[at + MARK.len()..].trim();
    (!answer.is_empty()).then(|| answer.to_string())
}

fn messages() -> Vec<Message> {
    vec![Message::user("what is six times seven")]
}

fn problem() -> Problem {
    Problem {
        id: "test/1".into(),
        question: "what is six times seven".into(),
        gold: "42".into(),
        level: None,
        steps: Vec::new(),
    }
}

fn sampling(seed: u64) -> SamplingParams {
    SamplingParams { seed, ..SamplingParams::default() }
}

fn menu(items: &[(&str, f64)]) -> Vec<Choice> {
    items.iter().map(|&(t, w)| Choice::new(t, w, -1.0)).collect()
}

/// What the strategy did to its session.
#[derive(Debug, Default)]
struct Log {
    /// Branches of each `extend` call.
    extends: Vec<Vec<BranchId>>,
    /// Branches held but not extended, at each `extend` call.
    idle: Vec<usize>,
    /// Branches held in the session.
    alive: BTreeSet<BranchId>,
    /// Branches whose last step ended them (forks inherit it; a rollback clears it).
    finished: BTreeSet<BranchId>,
    /// Extensions of finished branches.
    violations: Vec<BranchId>,
}

/// A scripted generator whose sessions log every call.
#[derive(Clone)]
struct Recorder {
    inner: ScriptedGenerator,
    log: Arc<Mutex<Log>>,
}

impl Recorder {
    fn new(choices: Vec<Choice>) -> Self {
        Self { inner: ScriptedGenerator::new(choices), log: Arc::default() }
    }

    fn with<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.lock().expect("log lock"))
    }
}

#[async_trait]
impl Generator for Recorder {
    fn info(&self) -> GeneratorInfo {
        self.inner.info()
    }
    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        self.inner.sample(req).await
    }
    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        let inner = self.inner.open(messages, seed).await?;
        self.log.lock().expect("log lock").alive.insert(inner.root());
        Ok(Box::new(Recording { inner, log: self.log.clone() }))
    }
}

struct Recording {
    inner: Box<dyn StepSession>,
    log: Arc<Mutex<Log>>,
}

#[async_trait]
impl StepSession for Recording {
    fn root(&self) -> BranchId {
        self.inner.root()
    }
    async fn fork(&mut self, branch: BranchId, n: usize) -> Result<Vec<BranchId>, GenError> {
        let ids = self.inner.fork(branch, n).await?;
        let mut log = self.log.lock().expect("log lock");
        log.alive.extend(ids.iter().copied());
        if log.finished.contains(&branch) {
            log.finished.extend(ids.iter().copied());
        }
        Ok(ids)
    }
    async fn extend(&mut self, branches: &[BranchId], params: &StepParams) -> Result<Vec<Step>, GenError> {
        {
            let mut log = self.log.lock().expect("log lock");
            let bad: Vec<BranchId> = branches.iter().copied().filter(|b| log.finished.contains(b)).collect();
            log.violations.extend(bad);
            log.extends.push(branches.to_vec());
            let idle = log.alive.iter().filter(|b| !branches.contains(b)).count();
            log.idle.push(idle);
        }
        let steps = self.inner.extend(branches, params).await?;
        let mut log = self.log.lock().expect("log lock");
        log.finished.extend(steps.iter().filter(|s| s.is_final()).map(|s| s.branch));
        Ok(steps)
    }
    async fn rollback(&mut self, branch: BranchId, n_tokens: usize) -> Result<(), GenError> {
        self.inner.rollback(branch, n_tokens).await?;
        self.log.lock().expect("log lock").finished.remove(&branch);
        Ok(())
    }
    async fn release(&mut self, branches: &[BranchId]) -> Result<(), GenError> {
        self.inner.release(branches).await?;
        let mut log = self.log.lock().expect("log lock");
        for b in branches {
            log.alive.remove(b);
        }
        Ok(())
    }
    fn usage(&self) -> Usage {
        self.inner.usage()
    }
}

/// Every search knob in one bag, so a test can set any of them and run any search.
#[derive(Debug, Clone)]
struct SearchConfig {
    beam_width: usize,
    max_steps: usize,
    aggregate: crate::Aggregate,
    resampling: Resampling,
    ess_threshold: f64,
    pf_temperature: f64,
    final_pick: FinalPick,
    sweeps: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        let (pf, pg, beam) = (PfConfig::default(), PgConfig::default(), BeamConfig::default());
        SearchConfig {
            beam_width: beam.width,
            max_steps: beam.step.max_steps,
            aggregate: beam.step.aggregate,
            resampling: pf.resampling,
            ess_threshold: pf.ess_threshold,
            pf_temperature: pf.temperature,
            final_pick: pf.final_pick,
            sweeps: pg.sweeps,
        }
    }
}

impl SearchConfig {
    fn step(&self) -> StepConfig {
        StepConfig { max_steps: self.max_steps, aggregate: self.aggregate, ..StepConfig::default() }
    }
    fn pf(&self, n: usize) -> PfConfig {
        PfConfig {
            n,
            resampling: self.resampling,
            ess_threshold: self.ess_threshold,
            temperature: self.pf_temperature,
            final_pick: self.final_pick,
            step: self.step(),
        }
    }
    fn pg(&self, n: usize) -> PgConfig {
        let pf = self.pf(n);
        PgConfig {
            n,
            sweeps: self.sweeps,
            resampling: pf.resampling,
            ess_threshold: pf.ess_threshold,
            temperature: pf.temperature,
            final_pick: pf.final_pick,
            step: pf.step,
        }
    }
    /// The strategy `name` with these knobs, built directly (no spec checks: tests go
    /// outside the ranges a spec allows).
    fn build(&self, name: &str, n: usize, sampling: SamplingParams) -> Box<dyn Strategy> {
        let (width, step) = (self.beam_width, self.step());
        match name {
            "beam" => Box::new(BeamSearch { config: BeamConfig { n, width, step }, sampling }),
            "dvts" => Box::new(Dvts { config: DvtsConfig { n, width, step }, sampling }),
            "astar" => Box::new(AStar { config: AstarConfig { n, width, step }, sampling }),
            "pf" => Box::new(ParticleFilter { config: self.pf(n), sampling }),
            "pgibbs" => Box::new(ParticleGibbs { config: self.pg(n), sampling }),
            other => panic!("{other} is not a search strategy"),
        }
    }
}

fn search(width: usize) -> SearchConfig {
    SearchConfig { beam_width: width, max_steps: 12, ..SearchConfig::default() }
}

fn build(name: &str, n: usize, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
    StrategySpec::parse(name, Some(n))?.build(sampling)
}

fn ctx<'a>(generator: &'a dyn Generator, process: Option<&'a dyn crate::ProcessScorer>) -> Ctx<'a> {
    Ctx {
        generator,
        equivalence: &Lower,
        extract: &after_answer,
        scorer: None,
        process,
        verifier: None,
        thinking: None,
    }
}

fn solve(
    name: &str,
    budget: usize,
    seed: u64,
    config: &SearchConfig,
    generator: &dyn Generator,
    scorer: &ScriptedProcessScorer,
) -> Result<Outcome, StrategyError> {
    let s = config.build(name, budget, sampling(seed));
    block_on(s.solve(&problem(), &messages(), &ctx(generator, Some(scorer))))
}

fn traced_pf(
    budget: usize,
    seed: u64,
    config: &SearchConfig,
    generator: &dyn Generator,
    scorer: &ScriptedProcessScorer,
) -> Result<(Outcome, Vec<PfStep>), StrategyError> {
    let pf = ParticleFilter { config: config.pf(budget), sampling: sampling(seed) };
    block_on(pf.solve_traced(&problem(), &messages(), &ctx(generator, Some(scorer))))
}

fn traced_pgibbs(
    budget: usize,
    seed: u64,
    config: &SearchConfig,
    generator: &dyn Generator,
    scorer: &ScriptedProcessScorer,
) -> Result<(Outcome, Vec<PfStep>), StrategyError> {
    let pg = ParticleGibbs { config: config.pg(budget), sampling: sampling(seed) };
    block_on(pg.solve_traced(&problem(), &messages(), &ctx(generator, Some(scorer))))
}

/// A deterministic score in [0, 1] for any step text.
fn hashed(step: &str) -> f64 {
    let h = step.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (h % 1001) as f64 / 1000.0
}

const SEARCHES: [&str; 5] = ["beam", "dvts", "pf", "pgibbs", "astar"];

// ---------------------------------------------------------------------------------------
// Contract
// ---------------------------------------------------------------------------------------

#[test]
fn search_strategies_need_a_process_scorer() {
    let generator = ScriptedGenerator::new(menu(&[("a\n\nanswer: 42", 1.0)]));
    for name in SEARCHES {
        let s = build(name, 4, sampling(0)).expect("builds");
        let err = block_on(s.solve(&problem(), &messages(), &ctx(&generator, None))).unwrap_err();
        assert_eq!(err, StrategyError::NeedsProcessScorer(name.into()), "{name}");
    }
}

#[test]
fn specs_build_their_search_and_shape_it() {
    for name in SEARCHES {
        let s = build(name, 6, sampling(0)).expect("builds");
        assert_eq!((s.name(), s.budget()), (name, 6));
    }
    let beam = |n, width| BeamSearch { config: BeamConfig { n, width, ..BeamConfig::default() }, sampling: sampling(0) };
    let dvts = |n, width| Dvts { config: DvtsConfig { n, width, ..DvtsConfig::default() }, sampling: sampling(0) };
    assert_eq!(beam(7, 2).shape(), (2, 3));
    assert_eq!(beam(3, 8).shape(), (3, 1), "M is clamped to N");
    assert_eq!(dvts(16, 4).shape(), (4, 4));
    assert_eq!(dvts(2, 0).shape(), (1, 2), "M is at least 1");
}

#[test]
fn nan_and_out_of_range_step_scores_are_score_errors() {
    let generator = ScriptedGenerator::new(menu(&[("a\n\nb\n\nanswer: 42", 1.0)]));
    let nan = ScriptedProcessScorer::new(|step| if step.starts_with('b') { f64::NAN } else { 0.5 });
    let high = ScriptedProcessScorer::new(|_| 1.5);
    for name in SEARCHES {
        let err = solve(name, 4, 0, &search(2), &generator, &nan).unwrap_err();
        assert!(
            matches!(&err, StrategyError::Scorer(ScoreError::NonFinite { scorer, .. }) if scorer == "scripted"),
            "{name}: {err}"
        );
        let err = solve(name, 4, 0, &search(2), &generator, &high).unwrap_err();
        assert!(err.to_string().contains("outside [0, 1]"), "{name}: {err}");
    }
}

#[test]
fn pf_rejects_a_temperature_it_cannot_divide_by() {
    let generator = ScriptedGenerator::new(menu(&[("answer: 42", 1.0)]));
    let scorer = ScriptedProcessScorer::new(|_| 0.5);
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let config = SearchConfig { pf_temperature: t, ..search(2) };
        for name in ["pf", "pgibbs"] {
            let err = solve(name, 4, 0, &config, &generator, &scorer).unwrap_err();
            assert!(err.to_string().contains("temperature"), "{name} {t}: {err}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Search finds what the majority misses
// ---------------------------------------------------------------------------------------

/// Three chains; the wrong answer is three times as frequent as the right one.
fn misleading() -> Vec<Choice> {
    menu(&[
        ("guess big\n\nso answer: 41", 3.0),
        ("guess small\n\nso answer: 41", 3.0),
        ("work it out\n\nso answer: 42", 2.0),
    ])
}

/// Prefers the correct chain at every step.
fn perfect() -> ScriptedProcessScorer {
    ScriptedProcessScorer::new(|step| match step {
        s if s.contains("work") => 0.9,
        s if s.contains("42") => 0.95,
        s if s.contains("41") => 0.05,
        s if s.contains("guess") => 0.3,
        _ => 0.5,
    })
}

#[test]
fn search_with_a_good_scorer_finds_the_answer_the_majority_misses() {
    for seed in 0..8 {
        let generator = ScriptedGenerator::new(misleading());
        let sc = build("sc", 32, sampling(seed)).expect("builds");
        let majority = block_on(sc.solve(&problem(), &messages(), &ctx(&generator, None))).expect("sc solves");
        assert_eq!(majority.answer.as_deref(), Some("41"), "seed {seed}: the majority is wrong");
        for (name, budget, width) in
            [("beam", 32, 4), ("dvts", 32, 4), ("pf", 32, 4), ("pgibbs", 16, 4), ("astar", 64, 16)]
        {
            let scorer = perfect();
            let o = solve(name, budget, seed, &search(width), &generator, &scorer).expect("solves");
            assert_eq!(o.answer.as_deref(), Some("42"), "{name} seed {seed}: {o:?}");
            assert_eq!(o.chosen_text(), Some("work it out\n\nso answer: 42"), "{name}");
            assert_eq!(o.strategy, name);
            assert!(o.votes.is_empty() && o.n_failed == 0);
            assert_eq!(o.usage.scorer_passes, scorer.scored() as u64, "{name}: scorer usage is counted");
            let chosen = &o.candidates[o.chosen.expect("a pick")];
            assert_eq!(chosen.score, Some(0.95), "{name}: the candidate's score is its aggregated step score");
        }
    }
}

#[test]
fn astar_stops_at_the_first_finished_solution() {
    let generator = Recorder::new(misleading());
    let scorer = perfect();
    let o = solve("astar", 64, 3, &search(16), &generator, &scorer).expect("solves");
    assert_eq!(o.answer.as_deref(), Some("42"));
    // Root expansion (16) and the expansion of the best "work" partial (16).
    assert_eq!(scorer.scored(), 32);
    assert!(o.stopped_early, "32 of 64 scorings were spent");
    assert!(generator.with(|l| l.extends.iter().all(|e| e.len() <= 16)));
}

#[test]
fn astar_with_one_scoring_returns_the_best_partial() {
    let generator = ScriptedGenerator::new(misleading());
    let scorer = perfect();
    let o = solve("astar", 1, 0, &search(4), &generator, &scorer).expect("solves");
    assert_eq!(scorer.scored(), 1);
    assert_eq!(o.candidates.len(), 1, "one unfinished partial, returned as it stands");
    assert_eq!(o.chosen, Some(0));
    assert!(!o.stopped_early);
}

#[test]
fn searches_stop_after_max_steps() {
    let long = "one\n\ntwo\n\nthree\n\nfour\n\nfive\n\nanswer: 42";
    let config = SearchConfig { max_steps: 2, ..search(2) };
    for name in SEARCHES {
        let generator = Recorder::new(menu(&[(long, 1.0)]));
        let scorer = ScriptedProcessScorer::new(|_| 0.5);
        let o = solve(name, 4, 0, &config, &generator, &scorer).expect("solves");
        assert_eq!(o.answer, None, "{name}");
        if name == "astar" {
            // A* counts steps by depth: no partial grows past two steps.
            assert!(o.candidates.iter().all(|c| c.text == "one\n\ntwo\n\n" || c.text == "one\n\n"), "{o:?}");
            continue;
        }
        let sweeps = if name == "pgibbs" { config.sweeps } else { 1 };
        assert!(generator.with(|l| l.extends.len()) <= 2 * sweeps, "{name}");
        assert!(o.candidates.iter().all(|c| c.text == "one\n\ntwo\n\n"), "{name}: {o:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Particle filtering: finished particles are absorbing
// ---------------------------------------------------------------------------------------

/// A one-step chain that ends at once with a high score, beside long low-scored chains:
/// resampling copies the finished particle many times.
fn quick_finish() -> (Vec<Choice>, ScriptedProcessScorer) {
    let choices = menu(&[
        ("answer: 42", 1.0),
        ("slow a\n\nslow b\n\nslow c\n\nanswer: 41", 2.0),
        ("slow a\n\nslower b\n\nslow c\n\nanswer: 40", 2.0),
    ]);
    (choices, ScriptedProcessScorer::new(|step| if step.contains("42") { 0.99 } else { 0.2 }))
}

#[test]
fn finished_particles_are_never_resampled_back_into_the_running_set() {
    let (choices, scorer) = quick_finish();
    for seed in 0..10 {
        for pgibbs in [false, true] {
            let generator = Recorder::new(choices.clone());
            let config = SearchConfig { ess_threshold: 1.0, ..search(2) };
            let (o, trace) = if pgibbs {
                traced_pgibbs(8, seed, &config, &generator, &scorer)
            } else {
                traced_pf(8, seed, &config, &generator, &scorer)
            }
            .expect("solves");
            generator.with(|l| {
                assert!(l.violations.is_empty(), "seed {seed}: finished branches extended: {:?}", l.violations)
            });
            // One extend per step at most, never more branches than particles.
            generator.with(|l| assert!(l.extends.len() <= trace.len() && l.extends.iter().all(|e| e.len() <= 8)));
            if trace[0].finished.iter().any(|&f| f) {
                assert_eq!(o.answer.as_deref(), Some("42"), "seed {seed} pgibbs {pgibbs}");
                if !pgibbs && trace[0].resampled {
                    // The finished particle carried most of the weight: it now fills several
                    // slots, all of them still finished.
                    let copies = o.candidates.iter().filter(|c| c.answer.as_deref() == Some("42")).count();
                    assert!(copies >= 2, "seed {seed}: {trace:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Particle Gibbs keeps its reference
// ---------------------------------------------------------------------------------------

#[test]
fn pgibbs_keeps_the_previous_pick_as_reference() {
    let choices = menu(&[
        ("p\n\nq\n\nanswer: 1", 1.0),
        ("p\n\nr\n\nanswer: 2", 1.0),
        ("s\n\nt\n\nanswer: 3", 1.0),
        ("s\n\nu\n\nanswer: 4", 1.0),
    ]);
    for seed in 0..10 {
        let generator = Recorder::new(choices.clone());
        let scorer = ScriptedProcessScorer::new(hashed);
        let config = SearchConfig { sweeps: 3, aggregate: crate::Aggregate::Product, ..search(2) };
        let (o, trace) = traced_pgibbs(6, seed, &config, &generator, &scorer).expect("solves");
        generator.with(|l| assert!(l.violations.is_empty()));
        let sweeps: BTreeSet<usize> = trace.iter().map(|t| t.sweep).collect();
        assert_eq!(sweeps, BTreeSet::from([0, 1, 2]));
        for sweep in 1..3 {
            let prev = trace.iter().rfind(|t| t.sweep == sweep - 1).expect("a step");
            let here: Vec<&PfStep> = trace.iter().filter(|t| t.sweep == sweep).collect();
            // Argmax pick of the previous sweep: the best finished particle (all are finished).
            assert!(prev.finished.iter().all(|&f| f));
            let best = prev.scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let last = here.last().expect("a step");
            assert_eq!(last.scores[0], best, "sweep {sweep}: slot 0 holds the reference");
            assert!(last.finished[0]);
            // The reference's score never goes down between sweeps.
            let end = last
                .scores
                .iter()
                .zip(&last.finished)
                .filter(|(_, &f)| f)
                .map(|(s, _)| *s)
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(end >= best);
        }
        // Sweeps after the first extend at most N − 1 fresh particles.
        let first_sweep_steps = trace.iter().filter(|t| t.sweep == 0).count();
        assert!(generator.with(|l| l.extends[first_sweep_steps..].iter().all(|e| e.len() <= 5)));
        assert_eq!(
            o.candidates[o.chosen.expect("a pick")].score,
            Some(trace.last().expect("a step").scores.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        );
    }
}

// ---------------------------------------------------------------------------------------
// The resampling math
// ---------------------------------------------------------------------------------------

#[test]
fn softmax_and_ess_known_values() {
    let w = softmax(&[0.0, 0.0, 0.0, 0.0]);
    assert_eq!(w, vec![0.25; 4]);
    assert!((ess(&w) - 4.0).abs() < 1e-12);
    let w = softmax(&[1000.0, 0.0]);
    assert!((w[0] - 1.0).abs() < 1e-12 && w[1] < 1e-300);
    assert!((ess(&w) - 1.0).abs() < 1e-12);
    assert_eq!(softmax(&[f64::INFINITY, 1.0, f64::INFINITY]), vec![0.5, 0.0, 0.5]);
    assert_eq!(softmax(&[f64::NEG_INFINITY; 2]), vec![0.5, 0.5]);
    assert!(softmax(&[]).is_empty());
    assert_eq!(ess(&[]), 0.0);
    let x = smc::log_weight(0.9, 2.0);
    assert!((x - (9.0f64).ln() / 2.0).abs() < 1e-12);
    assert!(smc::log_weight(1.0, 1.0).is_finite() && smc::log_weight(0.0, 1.0).is_finite());
}

#[test]
fn resampling_handles_degenerate_weights() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for scheme in [Resampling::Multinomial, Resampling::Systematic] {
        assert!(resample(&[], 4, scheme, &mut rng).is_empty());
        assert!(resample(&[1.0], 0, scheme, &mut rng).is_empty());
        assert_eq!(resample(&[0.0, 1.0, 0.0], 5, scheme, &mut rng), vec![1; 5]);
        let all = resample(&[0.0, f64::NAN, -1.0], 30, scheme, &mut rng);
        assert!(all.iter().all(|&i| i < 3), "degenerate weights fall back to uniform");
        assert_eq!(resample(&[0.5, 0.5], 4, Resampling::Systematic, &mut rng), vec![0, 0, 1, 1]);
    }
}

fn arb_weights() -> impl proptest::strategy::Strategy<Value = Vec<f64>> {
    prop::collection::vec(prop::option::weighted(0.8, 0.0f64..10.0), 1..10)
        .prop_map(|xs| xs.into_iter().map(|x| x.unwrap_or(0.0)).collect::<Vec<f64>>())
        .prop_filter("some mass", |xs| xs.iter().sum::<f64>() > 1e-3)
        .prop_map(|xs| {
            let total: f64 = xs.iter().sum();
            xs.into_iter().map(|x| x / total).collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn systematic_counts_are_within_floor_and_ceil(weights in arb_weights(), n in 1usize..64, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let got = resample(&weights, n, Resampling::Systematic, &mut rng);
        prop_assert_eq!(got.len(), n);
        prop_assert!(got.windows(2).all(|w| w[0] <= w[1]), "ascending");
        for (i, w) in weights.iter().enumerate() {
            let count = got.iter().filter(|&&x| x == i).count() as f64;
            let expected = n as f64 * w;
            prop_assert!(count >= (expected - 1e-9).floor() && count <= (expected + 1e-9).ceil(),
                "index {} drawn {} times, n·w = {}", i, count, expected);
        }
    }

    #[test]
    fn multinomial_counts_match_in_expectation(weights in arb_weights(), seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = 20_000;
        let got = resample(&weights, n, Resampling::Multinomial, &mut rng);
        prop_assert_eq!(got.len(), n);
        for (i, w) in weights.iter().enumerate() {
            let count = got.iter().filter(|&&x| x == i).count() as f64;
            let expected = n as f64 * w;
            let sd = (n as f64 * w * (1.0 - w)).sqrt();
            prop_assert!(
                (count - expected).abs() <= 6.0 * sd + 1.0,
                "index {} drawn {} times, expected {}", i, count, expected
            );
            if *w == 0.0 {
                prop_assert_eq!(count, 0.0);
            }
        }
    }

    #[test]
    fn softmax_is_normalised(xs in prop::collection::vec(-50.0f64..50.0, 1..40)) {
        let w = softmax(&xs);
        prop_assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let e = ess(&w);
        prop_assert!(e >= 1.0 - 1e-9 && e <= xs.len() as f64 + 1e-9);
    }
}

// ---------------------------------------------------------------------------------------
// Properties of whole runs
// ---------------------------------------------------------------------------------------

/// 1–5 chains of 1–4 steps from a small pool (so chains share prefixes), each ending in an answer.
fn arb_chains() -> impl proptest::strategy::Strategy<Value = Vec<Choice>> {
    let chain = (prop::collection::vec(0usize..3, 0..4), 0usize..4, 0.1f64..5.0);
    prop::collection::vec(chain, 1..=5).prop_map(|chains| {
        chains
            .into_iter()
            .map(|(steps, answer, weight)| {
                let mut text: String = steps.iter().map(|s| format!("step {s}\n\n")).collect();
                text.push_str(&format!("so answer: {answer}"));
                Choice::new(text, weight, -1.0)
            })
            .collect()
    })
}

fn arb_resampling() -> impl proptest::strategy::Strategy<Value = Resampling> {
    prop::bool::ANY.prop_map(|s| if s { Resampling::Systematic } else { Resampling::Multinomial })
}

fn arb_aggregate() -> impl proptest::strategy::Strategy<Value = crate::Aggregate> {
    (0usize..4).prop_map(|i| crate::Aggregate::parse(crate::Aggregate::NAMES[i]).expect("a known name"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn pf_keeps_n_normalised_particles_and_never_extends_a_finished_one(
        choices in arb_chains(),
        n in 1usize..=12,
        seed in any::<u64>(),
        resampling in arb_resampling(),
        ess_threshold in 0.0f64..=1.2,
        temperature in 0.1f64..3.0,
        sample_pick in any::<bool>(),
        aggregate in arb_aggregate(),
    ) {
        let config = SearchConfig {
            resampling, ess_threshold, pf_temperature: temperature, aggregate,
            final_pick: if sample_pick { FinalPick::Sample } else { FinalPick::Argmax },
            ..search(2)
        };
        let scorer = ScriptedProcessScorer::new(hashed);
        let generator = Recorder::new(choices.clone());
        let (o, trace) = traced_pf(n, seed, &config, &generator, &scorer).expect("solves");
        prop_assert!(!trace.is_empty() && trace.len() <= config.max_steps);
        for step in &trace {
            prop_assert_eq!(step.weights.len(), n);
            prop_assert_eq!(step.scores.len(), n);
            prop_assert!((step.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            prop_assert!(step.ess >= 1.0 - 1e-9 && step.ess <= n as f64 + 1e-9);
            prop_assert_eq!(step.running, step.finished.iter().filter(|&&f| !f).count());
            let due = step.running > 0 && step.step < config.max_steps && step.ess < ess_threshold * n as f64;
            prop_assert_eq!(step.resampled, due);
        }
        let log_ok = generator.with(|l| {
            l.violations.is_empty()
                && l.extends.len() == trace.len()
                && l.extends.iter().all(|e| e.len() <= n)
                // Dropped and finished particles are released at once.
                && l.idle.iter().all(|&i| i == 0)
        });
        prop_assert!(log_ok);
        // Each step extends the particles left running by the previous one.
        let sizes = generator.with(|l| l.extends.iter().map(Vec::len).collect::<Vec<_>>());
        for (i, size) in sizes.into_iter().enumerate() {
            if i == 0 {
                prop_assert_eq!(size, n);
            } else if !trace[i - 1].resampled {
                prop_assert_eq!(size, trace[i - 1].running);
            }
        }
        prop_assert!(o.candidates.len() <= n && !o.candidates.is_empty());
        prop_assert!(o.chosen.is_some_and(|c| c < o.candidates.len()));
        prop_assert_eq!(o.usage.scorer_passes, scorer.scored() as u64);
        let again = traced_pf(n, seed, &config, &Recorder::new(choices), &ScriptedProcessScorer::new(hashed));
        let again = again.expect("solves");
        prop_assert_eq!(&again.0, &o);
        prop_assert_eq!(&again.1, &trace);
    }

    #[test]
    fn pgibbs_keeps_n_particles_and_never_extends_a_finished_one(
        choices in arb_chains(),
        n in 1usize..=8,
        sweeps in 1usize..=3,
        seed in any::<u64>(),
        resampling in arb_resampling(),
        ess_threshold in 0.0f64..=1.2,
        sample_pick in any::<bool>(),
    ) {
        let config = SearchConfig {
            resampling, ess_threshold, sweeps,
            final_pick: if sample_pick { FinalPick::Sample } else { FinalPick::Argmax },
            ..search(2)
        };
        let scorer = ScriptedProcessScorer::new(hashed);
        let generator = Recorder::new(choices.clone());
        let (o, trace) = traced_pgibbs(n, seed, &config, &generator, &scorer).expect("solves");
        prop_assert_eq!(trace.iter().map(|t| t.sweep).max(), Some(sweeps - 1));
        for step in &trace {
            prop_assert_eq!(step.weights.len(), n);
            prop_assert!((step.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        let ok = generator.with(|l| l.violations.is_empty() && l.extends.iter().all(|e| e.len() <= n && !e.is_empty()));
        prop_assert!(ok);
        prop_assert!(o.candidates.len() <= n && o.chosen.is_some());
        prop_assert_eq!(o.usage.scorer_passes, scorer.scored() as u64);
        let again = traced_pgibbs(n, seed, &config, &Recorder::new(choices), &ScriptedProcessScorer::new(hashed));
        let again = again.expect("solves");
        prop_assert_eq!(&again.0, &o);
    }

    #[test]
    fn beam_stays_within_its_width_and_frees_dropped_beams(
        choices in arb_chains(),
        n in 1usize..=16,
        width in 0usize..=6,
        seed in any::<u64>(),
        aggregate in arb_aggregate(),
    ) {
        let config = SearchConfig { aggregate, ..search(width) };
        let (m, k) = BeamSearch { config: BeamConfig { n, width: config.beam_width, step: config.step() }, sampling: sampling(seed) }.shape();
        prop_assert!(m >= 1 && m <= n && m * k <= n);
        let scorer = ScriptedProcessScorer::new(hashed);
        let generator = Recorder::new(choices.clone());
        let o = solve("beam", n, seed, &config, &generator, &scorer).expect("solves");
        let (extends, idle) = generator.with(|l| (l.extends.iter().map(Vec::len).collect::<Vec<_>>(), l.idle.clone()));
        prop_assert_eq!(extends[0], n);
        prop_assert!(extends[1..].iter().all(|&e| e <= m * k), "frontier {:?} above M·K = {}", extends, m * k);
        prop_assert!(idle.iter().all(|&i| i == 0), "branches held but not extended: {:?}", idle);
        prop_assert!(generator.with(|l| l.violations.is_empty()));
        prop_assert!(extends.len() <= config.max_steps);
        prop_assert!(o.chosen.is_some_and(|c| c < o.candidates.len()));
        let best = o.candidates.iter().filter_map(|c| c.score).fold(f64::NEG_INFINITY, f64::max);
        prop_assert_eq!(o.candidates[o.chosen.expect("a pick")].score, Some(best));
        prop_assert_eq!(o.usage.scorer_passes, scorer.scored() as u64);
        prop_assert_eq!(scorer.scored(), extends.iter().sum::<usize>(), "only new steps are scored");
        let again = solve("beam", n, seed, &config, &Recorder::new(choices), &ScriptedProcessScorer::new(hashed));
        let again = again.expect("solves");
        prop_assert_eq!(again, o);
    }

    #[test]
    fn dvts_stays_within_budget_with_one_result_per_subtree(
        choices in arb_chains(),
        n in 1usize..=16,
        width in 1usize..=6,
        seed in any::<u64>(),
    ) {
        let config = search(width);
        let (m, subtrees) = Dvts { config: DvtsConfig { n, width: config.beam_width, step: config.step() }, sampling: sampling(seed) }.shape();
        let scorer = ScriptedProcessScorer::new(hashed);
        let generator = Recorder::new(choices.clone());
        let o = solve("dvts", n, seed, &config, &generator, &scorer).expect("solves");
        let (extends, idle) = generator.with(|l| (l.extends.iter().map(Vec::len).collect::<Vec<_>>(), l.idle.clone()));
        prop_assert_eq!(extends[0], m * subtrees);
        prop_assert!(extends.iter().all(|&e| e <= m * subtrees && e <= n));
        prop_assert!(idle.iter().all(|&i| i == 0), "branches held but not extended: {:?}", idle);
        prop_assert!(o.candidates.len() <= subtrees && !o.candidates.is_empty());
        prop_assert_eq!(scorer.scored(), extends.iter().sum::<usize>());
        let again = solve("dvts", n, seed, &config, &Recorder::new(choices), &ScriptedProcessScorer::new(hashed));
        let again = again.expect("solves");
        prop_assert_eq!(again, o);
    }

    #[test]
    fn astar_never_spends_more_scorings_than_its_budget(
        choices in arb_chains(),
        n in 1usize..=24,
        width in 1usize..=6,
        seed in any::<u64>(),
        aggregate in arb_aggregate(),
    ) {
        let config = SearchConfig { aggregate, ..search(width) };
        let scorer = ScriptedProcessScorer::new(hashed);
        let generator = Recorder::new(choices.clone());
        let o = solve("astar", n, seed, &config, &generator, &scorer).expect("solves");
        prop_assert!(scorer.scored() <= n, "{} scorings for a budget of {}", scorer.scored(), n);
        prop_assert!(o.usage.scorer_passes <= n as u64);
        prop_assert!(generator.with(|l| l.violations.is_empty() && l.extends.iter().all(|e| e.len() <= width)));
        prop_assert!(o.chosen.is_some_and(|c| c < o.candidates.len()));
        let chosen = &o.candidates[o.chosen.expect("a pick")];
        // Early exactly when a finished solution came out of the queue with scorings left.
        prop_assert_eq!(o.stopped_early, scorer.scored() < n && chosen.finish == crate::FinishReason::Eos);
        let again = solve("astar", n, seed, &config, &Recorder::new(choices), &ScriptedProcessScorer::new(hashed));
        let again = again.expect("solves");
        prop_assert_eq!(again, o);
    }
}
