//! The runner, resume, curves and plans on a scripted generator.

use ponder_eval::analysis::{Config, RunData};
use ponder_core::strategy::Auto;
use ponder_eval::curves::CurveOptions;
use ponder_eval::plan::{self, PlanOptions};

use super::*;

/// What two runs must agree on: every outcome and every sample (wall time aside).
fn contents(store: &Store, run: i64) -> (Vec<String>, Vec<String>) {
    let outcomes = store
        .outcomes(run)
        .unwrap()
        .into_iter()
        .map(|o| format!("{:?} {:?} {} {} {} {:?} {:?}", o.key, o.answer, o.correct, o.abstained, o.n_samples, o.chosen, o.usage))
        .collect();
    let samples = store
        .samples(run)
        .unwrap()
        .into_iter()
        .map(|s| format!("{:?} {} {:?} {:?} {} {:?} {:?}", s.key, s.index, s.text, s.answer_key, s.correct, s.score, s.usage))
        .collect();
    (outcomes, samples)
}

#[test]
fn an_interrupted_and_resumed_run_equals_an_uninterrupted_one() {
    let (d, problems) = dataset(6);
    let g = generator(&problems);
    let c = config(&d, &problems, &["sc", "bon", "single"], &[4, 8], &[0, 1]);
    // sc and bon at 2 budgets, single once: 5 groups × 2 seeds × 6 problems.
    let n_units = 5 * 2 * 6;
    let n_samples = 2 * 6 * (2 * (4 + 8) + 1);

    let mut a = Store::in_memory().unwrap();
    let ra = a.create_run(&c.to_json(), "scripted", &d.name, 0, &problems).unwrap();
    let first = run_units(&mut a, ra, &c, &d, &problems, &g, Some(7));
    let Finish::Interrupted { stored } = first else { panic!("expected an interruption, got {first:?}") };
    assert!((7..n_units).contains(&stored), "{stored}");
    assert_eq!(a.counts(ra).unwrap().0, stored as u64, "whole units only");
    // Interrupt the resumed run too, then finish.
    let second = run_units(&mut a, ra, &c, &d, &problems, &g, Some(5));
    assert!(matches!(second, Finish::Interrupted { .. }), "{second:?}");
    assert_eq!(run_units(&mut a, ra, &c, &d, &problems, &g, None), Finish::Done);
    // Nothing left: a further resume runs nothing.
    assert_eq!(run_units(&mut a, ra, &c, &d, &problems, &g, None), Finish::Done);
    assert_eq!(a.counts(ra).unwrap(), (n_units as u64, n_samples as u64));

    let mut b = Store::in_memory().unwrap();
    let rb = b.create_run(&c.to_json(), "scripted", &d.name, 0, &problems).unwrap();
    assert_eq!(run_units(&mut b, rb, &c, &d, &problems, &g, None), Finish::Done);
    assert_eq!(contents(&a, ra), contents(&b, rb));

    // The summaries agree too, and count every unit once.
    let (da, db) = (RunData::load(&a, ra).unwrap(), RunData::load(&b, rb).unwrap());
    let acc = |d: &RunData| d.summaries(None).iter().map(|s| (s.config.to_string(), s.n_units, s.n_correct, s.cost.usage)).collect::<Vec<_>>();
    assert_eq!(acc(&da), acc(&db));
    assert_eq!(acc(&da).iter().map(|x| x.1).sum::<usize>(), n_units);
}

#[test]
fn curves_at_full_k_equal_the_strategies_own_outcomes() {
    let (d, problems) = dataset(12);
    let g = generator(&problems);
    let c = config(&d, &problems, &["sc", "bon", "weighted-bon"], &[8], &[3]);
    let mut store = Store::in_memory().unwrap();
    let run = store.create_run(&c.to_json(), "scripted", &d.name, 0, &problems).unwrap();
    assert_eq!(run_units(&mut store, run, &c, &d, &problems, &g, None), Finish::Done);
    let data = RunData::load(&store, run).unwrap();
    let summaries = data.summaries(None);
    let accuracy = |s: &str| summaries.iter().find(|x| x.config.strategy == s).unwrap().accuracy.mean;
    let sets = data.curve_sets(&CurveOptions::default());
    // bon's samples are scored; sc's are not (same samples: same seed).
    let bon = sets.iter().find(|s| s.source == Config { strategy: "bon".into(), budget: 8 }).unwrap();
    let sc = sets.iter().find(|s| s.source.strategy == "sc").unwrap();
    assert!(sc.points[0].best.is_none());
    let last = bon.points.last().unwrap();
    assert_eq!(last.k, 8);
    assert!((last.maj.mean - accuracy("sc")).abs() < 1e-12, "maj@8 {} vs sc {}", last.maj.mean, accuracy("sc"));
    assert!((last.best.unwrap().mean - accuracy("bon")).abs() < 1e-12);
    assert!((last.weighted.unwrap().mean - accuracy("weighted-bon")).abs() < 1e-12);
    assert!(last.pass.mean >= accuracy("sc") && last.pass.mean >= accuracy("bon"));
    // pass@1 is the mean per-sample correctness.
    let per_sample = data.samples.iter().filter(|s| s.key.strategy == "bon").filter(|s| s.correct).count() as f64
        / data.samples.iter().filter(|s| s.key.strategy == "bon").count() as f64;
    assert!((bon.points[0].pass.mean - per_sample).abs() < 1e-12);
    assert_eq!(bon.tokens_at_k.len(), bon.points.len());
    assert!(bon.tokens_at_k.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn a_fitted_policy_is_what_auto_does_on_the_same_run() {
    let (d, problems) = dataset(16);
    let g = generator(&problems);
    let c = config(&d, &problems, &["single", "sc"], &[2, 4, 8], &[0]);
    let mut store = Store::in_memory().unwrap();
    let run = store.create_run(&c.to_json(), "scripted", &d.name, 0, &problems).unwrap();
    assert_eq!(run_units(&mut store, run, &c, &d, &problems, &g, None), Finish::Done);
    let data = RunData::load(&store, run).unwrap();
    let fitted = plan::fit(&data, &PlanOptions { probe: 2, min_bin_units: 2, ..PlanOptions::default() }).unwrap();
    let policy = fitted.policy.clone();
    policy.validate().unwrap();
    let f = policy.fitted.clone().unwrap();
    // At least as accurate as the best single configuration, for no more compute.
    assert!(f.accuracy >= f.baseline_accuracy - 1e-12, "{f:?}");
    assert!(f.tokens_per_unit <= f.baseline_tokens_per_unit + 1e-9, "{f:?}");
    assert!(!fitted.frontier.is_empty());
    assert!(fitted.frontier.windows(2).all(|w| w[1].accuracy > w[0].accuracy && w[1].tokens_per_unit >= w[0].tokens_per_unit));

    // Run `auto` with the policy on the same problems and seed: same accuracy as fitted.
    let auto = Auto::new(policy.clone(), SamplingParams { seed: 0, ..SamplingParams::default() }).unwrap();
    let mut c2 = c.clone();
    c2.strategies = vec!["auto".into()];
    let run2 = store.create_run(&c2.to_json(), "scripted", &d.name, 0, &problems).unwrap();
    let template = PromptTemplate::builtin("math-fewshot").unwrap();
    let messages: Vec<Vec<Message>> = problems.iter().map(|p| template.render(p).unwrap()).collect();
    let jobs: Vec<Job<'_>> = problems
        .iter()
        .zip(&messages)
        .map(|(p, messages)| Job {
            key: UnitKey { problem_id: p.id.clone(), strategy: "auto".into(), budget: auto.budget(), seed: 0 },
            problem: p,
            messages,
            strategy: &auto,
        })
        .collect();
    let ctx = Ctx {
        generator: &g,
        equivalence: &NumericEquivalence,
        extract: &d.extract,
        scorer: None,
        process: None,
        verifier: None,
        thinking: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let done = rt
        .block_on(runner::execute(&mut store, run2, jobs, d.checker.clone(), &ctx, 2, std::future::pending(), |_| {}))
        .unwrap();
    assert_eq!(done, Finish::Done);
    let auto_data = RunData::load(&store, run2).unwrap();
    let s = &auto_data.summaries(None)[0];
    assert!((s.accuracy.mean - f.accuracy).abs() < 1e-12, "auto {} vs fitted {}", s.accuracy.mean, f.accuracy);
}

#[test]
fn plans_need_a_sampling_strategy_with_enough_samples() {
    let (d, problems) = dataset(4);
    let g = generator(&problems);
    let c = config(&d, &problems, &["single"], &[1], &[0]);
    let mut store = Store::in_memory().unwrap();
    let run = store.create_run(&c.to_json(), "scripted", &d.name, 0, &problems).unwrap();
    run_units(&mut store, run, &c, &d, &problems, &g, None);
    let data = RunData::load(&store, run).unwrap();
    let err = plan::fit(&data, &PlanOptions::default()).unwrap_err().to_string();
    assert!(err.contains("plan needs a run with sc, rpc, bon, weighted-bon at a budget"), "{err}");
}
