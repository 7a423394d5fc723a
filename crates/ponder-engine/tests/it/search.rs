//! Step-level search on the engine: probes, forced text, reward-model scoring, and what
//! particle filtering costs with and without KV sharing.

use super::*;
use ponder_core::process::{Partial, ProcessScorer, SelfEval, StepCheck};
use ponder_core::strategy::{Ctx, PfConfig, StepConfig, StrategySpec};
use ponder_core::answer::NumericEquivalence;
use ponder_engine::prm::{PrmFormat, TokenPrm};

fn step(max: u32) -> StepParams {
    StepParams { sampling: greedy(max), delimiter: None, max_step_tokens: max, max_total_tokens: 256 }
}

#[test]
fn probes_score_branches_without_changing_them() {
    let engine = smol(uncached());
    let prompt = engine.tokenize(&engine.render(&question()).unwrap());
    let suffix = "\nIs this correct? Answer:";
    let cands = vec![" Yes".to_string(), " No".to_string()];
    let (probed, direct, after, plain) = block(async {
        let mut s = engine.open_tokens(prompt.clone(), 1).await?;
        let b = s.fork(s.root(), 2).await?;
        s.extend(&b, &step(6)).await?;
        let before = s.usage();
        let (probed, usage) = s.probe(&b, suffix, &cands).await?;
        // The probe reports its own cost and leaves the session's usage alone.
        assert_eq!(s.usage(), before);
        assert_eq!(usage.scorer_passes, 2);
        let suffix_len = engine.model().vocab().tokenize(suffix.as_bytes(), false, true).len() as u64;
        // Each probe computes the suffix and the branch's one pending token, nothing more.
        assert_eq!(usage.prompt_computed, 2 * (suffix_len + 1), "{usage:?}");
        let mut direct = Vec::new();
        for &br in &b {
            let mut toks = s.tokens(br).await?;
            toks.extend(engine.model().vocab().tokenize(suffix.as_bytes(), false, true));
            let c: Vec<_> = cands.iter().map(|c| engine.first_token(c).unwrap()).collect();
            direct.push(engine.score_next(vec![toks], c).await?.0.remove(0));
        }
        let after = s.extend(&b, &step(8)).await?;
        // The same session without the probe continues identically.
        let mut t = engine.open_tokens(prompt.clone(), 1).await?;
        let tb = t.fork(t.root(), 2).await?;
        t.extend(&tb, &step(6)).await?;
        let plain = t.extend(&tb, &step(8)).await?;
        Ok::<_, GenError>((probed, direct, after, plain))
    })
    .unwrap();
    for (p, d) in probed.iter().zip(&direct) {
        assert_eq!(p.len(), 2);
        for (x, y) in p.iter().zip(d) {
            assert!(x.is_finite() && *x <= 0.0);
            // llama.cpp's quantized kernels give slightly different logits for the same
            // sequence in differently composed batches (about 0.1 measured here).
            assert!((x - y).abs() < 0.3, "probe {p:?} vs direct {d:?}");
        }
    }
    let texts = |v: &[ponder_core::Step]| v.iter().map(|s| s.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&after), texts(&plain));
}

#[test]
fn appended_text_continues_like_a_prompt_that_had_it() {
    let engine = smol(uncached());
    let prompt = engine.tokenize(&engine.render(&question()).unwrap());
    let forced = "Tom has 3 apples.";
    let (a, b) = block(async {
        let mut s = engine.open_tokens(prompt.clone(), 1).await?;
        let root = s.root();
        s.append(root, forced).await?;
        let a = s.extend(&[root], &step(12)).await?;
        let mut whole = prompt.clone();
        whole.extend(engine.model().vocab().tokenize(forced.as_bytes(), false, true));
        let mut t = engine.open_tokens(whole, 1).await?;
        let tr = t.root();
        let b = t.extend(&[tr], &step(12)).await?;
        Ok::<_, GenError>((a, b))
    })
    .unwrap();
    assert_eq!(a[0].text, b[0].text);
}

fn partials(steps: &[Vec<String>]) -> Vec<Partial<'_>> {
    steps.iter().enumerate().map(|(i, s)| Partial { branch: i as u64, steps: s, finished: false }).collect()
}

#[test]
fn token_prm_scores_in_one_batch_and_reuses_earlier_steps() {
    // Any GGUF causal LM can serve as a token-probability PRM; SmolLM2 stands in here.
    let engine = smol(EngineConfig { prefix_cache_entries: 32, ..config() });
    let prm = TokenPrm::new(engine.clone(), PrmFormat::default()).unwrap();
    let p = arith_problem();
    let one = vec![vec!["Tom starts with 3 apples.".to_string()], vec!["He has 3 + 4 = 8 apples.".to_string()]];
    let two: Vec<Vec<String>> =
        one.iter().map(|s| vec![s[0].clone(), "The answer is 7.".to_string()]).collect();
    let first = block(prm.score_steps(&p, &partials(&one), None)).unwrap();
    let second = block(prm.score_steps(&p, &partials(&two), None)).unwrap();
    for s in first.values.iter().chain(&second.values) {
        assert!((0.0..=1.0).contains(s));
    }
    assert_eq!(first.usage.scorer_passes, 2);
    // The second call extends the first call's texts: the prefix cache supplies them.
    assert!(second.usage.prompt_reused > 0, "{:?}", second.usage);
    let fmt = PrmFormat::default();
    let full: u64 = two.iter().map(|s| engine.tokenize(&fmt.layout(&p.question, s)).len() as u64).sum();
    assert!(second.usage.prompt_computed < full / 2, "{:?} of {full}", second.usage);
    // Scoring is deterministic.
    let again = block(prm.score_steps(&p, &partials(&two), None)).unwrap();
    for (a, b) in again.values.iter().zip(&second.values) {
        assert!((a - b).abs() < 1e-4);
    }
}

#[test]
fn a_partial_longer_than_the_prm_context_is_a_clear_error() {
    let engine = smol(EngineConfig { n_ctx: 512, ..config() });
    let prm = TokenPrm::new(engine.clone(), PrmFormat::default()).unwrap();
    let long = vec![vec!["three apples and four more ".repeat(200)]];
    let err = block(prm.score_steps(&arith_problem(), &partials(&long), None)).unwrap_err();
    assert!(err.to_string().contains("context"), "{err}");
    // The engine is still usable.
    let ok = block(prm.score_steps(&arith_problem(), &partials(&[vec!["3 + 4 = 7".into()]]), None));
    assert!(ok.is_ok());
}

#[test]
fn self_evaluation_probes_the_policy_model() {
    let engine = smol(uncached());
    let scorer = SelfEval::default();
    let (scores, usage) = block(async {
        let mut s = engine.open(&question(), 3).await?;
        let b = s.fork(s.root(), 3).await?;
        let steps = s.extend(&b, &step(10)).await?;
        let texts: Vec<Vec<String>> = steps.iter().map(|st| vec![st.text.clone()]).collect();
        let parts: Vec<Partial<'_>> =
            b.iter().zip(&texts).map(|(&branch, t)| Partial { branch, steps: t, finished: false }).collect();
        let got = scorer.score_steps(&arith_problem(), &parts, Some(s.as_mut())).await.unwrap();
        Ok::<_, GenError>((got.values, got.usage))
    })
    .unwrap();
    assert_eq!(scores.len(), 3);
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    assert_eq!(usage.scorer_passes, 3);
}

/// 16 particles, 8 steps of 8 tokens: forks share KV, so almost nothing is prefilled twice.
/// The same algorithm forced to re-prefill every branch at every step (a smaller run here;
/// `ponder bench search` measures the full one) recomputes whole prefixes.
#[test]
fn particle_filtering_recomputes_little_on_the_engine() {
    let engine = smol(EngineConfig { n_ctx: 8192, ..uncached() });
    let prompt_len = engine.tokenize(&engine.render(&question()).unwrap()).len() as u64;
    let run = |g: &Engine, particles: usize, steps: usize, step_tokens: u32| {
        let step = StepConfig { delimiter: String::new(), max_step_tokens: step_tokens, max_steps: steps, ..StepConfig::default() };
        let total = step_tokens * steps as u32;
        let sampling = SamplingParams { ignore_eos: true, ..sampled(5, total) };
        let pf = StrategySpec::Pf(PfConfig { n: particles, step, ..PfConfig::default() }).build(sampling).unwrap();
        let ctx = Ctx {
            generator: g,
            equivalence: &NumericEquivalence,
            extract: &ponder_core::answer::extract_answer,
            scorer: None,
            process: Some(&StepCheck),
            verifier: None,
            thinking: None,
        };
        block(pf.solve(&arith_problem(), &question(), &ctx)).unwrap().usage
    };
    let u = run(&engine, 16, 8, 8);
    assert_eq!(u.completion, 16 * 64, "{u:?}");
    let recomputed = u.prompt_computed - prompt_len;
    assert!(recomputed as f64 <= 1.2 * u.completion as f64, "recomputed {recomputed} for {} generated: {u:?}", u.completion);
    assert_eq!(engine_stats_live(&engine), 0, "every particle is freed");
    let naive = run(&engine.reprefilling(), 4, 3, 4);
    assert_eq!(naive.completion, 4 * 12);
    // Every particle pays the prompt again at every step.
    assert!(naive.prompt_computed >= 4 * 3 * prompt_len, "{naive:?}");
}

