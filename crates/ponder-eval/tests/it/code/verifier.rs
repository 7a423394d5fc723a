//! HumanEval/MBPP behind ponder-core's contracts, with real bubblewrap: the visible-tests
//! verifier, the hidden-tests checker, and verified resampling driven by scripted texts.

use std::sync::{Arc, OnceLock};

use futures::executor::block_on;
use ponder_core::strategy::{Candidate, Ctx, Strategy, VerifiedResampling};
use ponder_core::testing::{Choice, ScriptedGenerator};
use ponder_core::verifier::Verifier;
use ponder_core::{derive_seed, Checker, FinishReason, Message, Problem, SamplingParams};
use ponder_eval::tasks::code::{code_problems, hidden_tests_checker, visible_tests_verifier, CodeProblem};
use ponder_verify::code::{extract_code, CodeEquivalence, Limits, Pool, SandboxChecker, SandboxVerifier};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::datasets::perturbed;
use super::sandbox;

fn pool() -> Arc<Pool> {
    static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
    Arc::clone(POOL.get_or_init(|| Arc::new(Pool::new(sandbox(), 2))))
}

fn verifier() -> SandboxVerifier {
    visible_tests_verifier(pool(), Limits::default())
}

fn checker() -> SandboxChecker {
    hidden_tests_checker(pool(), Limits::default())
}

fn problem(id: &str) -> (Problem, &'static CodeProblem) {
    let code = &code_problems()[id];
    let p = Problem { id: id.into(), question: code.prompt.clone(), gold: id.into(), level: None, steps: Vec::new() };
    (p, code)
}

/// A chat model's reply around `code`.
fn reply(code: &str) -> String {
    format!("Here is the function:\n```python\n{code}\n```\nIt checks every pair.")
}

fn candidate(text: String) -> Candidate {
    Candidate {
        index: 0,
        answer: extract_code(&text),
        key: None,
        n_tokens: 1,
        mean_logprob: None,
        finish: FinishReason::Eos,
        text,
        score: None,
    }
}

#[test]
fn sandbox_verifier_passes_canonical_and_fails_perturbed_on_visible_tests() {
    for id in ["humaneval/HumanEval/0", "humaneval/HumanEval/10", "mbpp/11"] {
        let (p, code) = problem(id);
        let good = block_on(verifier().verify(&p, &candidate(reply(&code.reference_solution)))).unwrap();
        assert!(good.passed, "{id}: {good:?}");
        let bad = block_on(verifier().verify(&p, &candidate(reply(&perturbed(code))))).unwrap();
        assert!(!bad.passed, "{id}: {bad:?}");
        assert!(bad.detail.starts_with("failed test"), "{id}: {bad:?}");
    }
    // A HumanEval completion: the body only, continued from the prompt.
    let (p, code) = problem("humaneval/HumanEval/0");
    let body = code.reference_solution.strip_prefix(code.prompt.as_str()).unwrap();
    assert!(block_on(verifier().verify(&p, &candidate(body.to_string()))).unwrap().passed);
    let no_code = block_on(verifier().verify(&p, &candidate("```python\n```".into()))).unwrap();
    assert!(!no_code.passed && no_code.detail == "no code", "{no_code:?}");
}

#[test]
fn hidden_checker_passes_canonical_and_fails_perturbed() {
    for id in ["humaneval/HumanEval/0", "mbpp/11"] {
        let (p, code) = problem(id);
        let c = checker();
        assert!(c.is_correct(&p, extract_code(&reply(&code.reference_solution)).as_deref()), "{id}");
        assert!(!c.is_correct(&p, extract_code(&reply(&perturbed(code))).as_deref()), "{id}");
        assert!(!c.is_correct(&p, None), "{id}");
    }
    let unknown = Problem { id: "gsm8k/1".into(), question: String::new(), gold: "3".into(), level: None, steps: vec![] };
    assert!(!checker().is_correct(&unknown, Some("print(3)")));
}

/// The scripted generator's pick for sample `index` (see `ScriptedGenerator::pick`): true
/// when it is the canonical text, weighted 1 against the perturbed text's 3.
fn picks_canonical(seed: u64, index: usize) -> bool {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, index as u64)).gen::<f64>() * 4.0 >= 3.0
}

#[test]
fn verify_resample_returns_the_first_sample_passing_the_sandbox_and_cancels_the_rest() {
    let (p, code) = problem("humaneval/HumanEval/0");
    let (good, bad) = (reply(&code.reference_solution), reply(&perturbed(code)));
    let choices = vec![Choice::new(bad, 3.0, -1.0), Choice::new(good.clone(), 1.0, -1.0)];
    let verifier = verifier();
    let max_samples = 8;
    let mut seen_late_pass = false;
    for seed in 0..4 {
        let generator = ScriptedGenerator::new(choices.clone());
        let ctx = Ctx {
            generator: &generator,
            equivalence: &CodeEquivalence,
            extract: &extract_code,
            scorer: None,
            process: None,
            verifier: Some(&verifier),
            thinking: None,
        };
        let s = VerifiedResampling {
            max_samples,
            sampling: SamplingParams { seed, ..SamplingParams::default() },
            round_size: max_samples,
        };
        let o = block_on(s.solve(&p, &[Message::user(p.question.clone())], &ctx)).unwrap();
        match (0..max_samples).position(|i| picks_canonical(seed, i)) {
            Some(first) => {
                seen_late_pass |= first > 0;
                assert!(!o.abstained, "seed {seed}");
                assert_eq!(o.chosen, Some(first), "seed {seed}");
                assert_eq!(o.answer, extract_code(&good), "seed {seed}");
                assert_eq!(o.candidates.len(), first + 1, "seed {seed}");
                assert_eq!(generator.started(), first + 1, "seed {seed}: later samples were not cancelled");
                let scores: Vec<f64> = o.candidates.iter().map(|c| c.score.unwrap()).collect();
                assert_eq!(scores.last(), Some(&1.0));
                assert!(scores[..first].iter().all(|&s| s == 0.0), "seed {seed}: {scores:?}");
                assert!(checker().is_correct(&p, o.answer.as_deref()));
            }
            None => assert!(o.abstained && o.answer.is_none() && o.candidates.len() == max_samples),
        }
    }
    assert!(seen_late_pass, "pick seeds where a perturbed sample comes first");
}
