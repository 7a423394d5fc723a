//! Strategies that read the model's own signals, on the engine: RPC's path probabilities
//! and adaptive-ITC's self-evaluation probe (each probe a scorer pass, pruned samples freed).

use super::*;
use ponder_core::answer::{extract_answer, NumericEquivalence};
use ponder_core::strategy::{AdaptiveItcConfig, Ctx, ItcMode, Outcome, RpcConfig, StrategySpec};

fn solve(engine: &Engine, spec: StrategySpec, max_tokens: u32) -> Outcome {
    let ctx = Ctx {
        generator: engine,
        equivalence: &NumericEquivalence,
        extract: &extract_answer,
        scorer: None,
        process: None,
        verifier: None,
        thinking: None,
    };
    let strategy = spec.build(sampled(4, max_tokens)).unwrap();
    block(strategy.solve(&arith_problem(), &question(), &ctx)).unwrap()
}

#[test]
fn rpc_weighs_each_path_by_its_probability_under_the_engine() {
    let engine = smol(config());
    let out = solve(&engine, StrategySpec::Rpc(RpcConfig { n: 4, ..RpcConfig::default() }), 48);
    assert_eq!(out.candidates.len(), 4);
    for c in &out.candidates {
        let p = c.score.expect("every path has a probability");
        assert!((p - c.mean_logprob.unwrap().exp()).abs() < 1e-12 && p > 0.0 && p <= 1.0, "{c:?}");
    }
    let mass: f64 = out.votes.iter().map(|v| v.weight).sum();
    assert!(mass <= out.candidates.iter().map(|c| c.score.unwrap()).sum::<f64>() + 1e-12);
    assert_eq!(out.usage.completion, out.candidates.iter().map(|c| c.n_tokens as u64).sum::<u64>());
}

#[test]
fn adaptive_itc_probes_the_policy_model_and_frees_pruned_samples() {
    // No prefix cache: it would keep the prompt's cells once the session closes.
    let engine = smol(uncached());
    // Threshold 1: the probe never settles it, so every sample is drawn and probed.
    let draw = AdaptiveItcConfig { n: 3, threshold: 1.0, ..AdaptiveItcConfig::default() };
    let out = solve(&engine, StrategySpec::AdaptiveItc(draw), 32);
    assert_eq!((out.candidates.len(), out.usage.scorer_passes), (3, 3), "{:?}", out.usage);
    assert!(out.candidates.iter().all(|c| c.score.is_some_and(|p| (0.0..=1.0).contains(&p))));

    let prune = AdaptiveItcConfig { n: 4, mode: ItcMode::Prune, prune_after: 8, keep: 0.5, ..AdaptiveItcConfig::default() };
    let out = solve(&engine, StrategySpec::AdaptiveItc(prune), 32);
    assert_eq!(out.candidates.len(), 4);
    let pruned: Vec<_> = out.candidates.iter().filter(|c| c.score.is_none()).collect();
    assert_eq!(pruned.len(), 2, "{:?}", out.candidates);
    assert!(pruned.iter().all(|c| c.n_tokens <= 8 && c.answer.is_none()), "{pruned:?}");
    assert_eq!(out.usage.scorer_passes, 4 + 2, "every partial, then the survivors");
    assert_eq!(out.usage.completion, out.candidates.iter().map(|c| c.n_tokens as u64).sum::<u64>());
    assert_eq!(engine_stats_live(&engine), 0, "every branch is freed");
}
