//! Issue 11's pipelines in miniature on the real Qwen2.5-Coder models and the real sandbox:
//! the models solve one question each; coverage and the fLaws replay on HumanEval; GSM8K
//! strategies with the 1.5B as judge, a plan fitted on half the problems and `auto` on the
//! other half; search against best-of-N under the judge. Counts, structure and usage are
//! asserted, never accuracy (BENCHMARKS.md has the full-size runs).

use std::path::Path;

use ponder_eval::store::Store;
use serde_json::Value;

use super::*;

const SMALL: &str = "qwen2.5-coder-0.5b";
const LARGE: &str = "qwen2.5-coder-1.5b";

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", stdout(o), stderr(o));
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
    stdout(o)
}

/// The run id `ponder eval` printed first ("run N · store ...").
fn run_id(out: &str) -> i64 {
    let line = out.lines().find(|l| l.starts_with("run ")).unwrap_or_else(|| panic!("no run line in {out}"));
    line[4..].split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn both_qwen_models_solve_a_question() {
    for model in [SMALL, LARGE] {
        let out = ok(&ponder(&[
            "solve", "What is 17 + 25? Give only the number.", "--model", model, "--strategy", "single", "--temperature", "0",
            "--max-tokens", "24", "--json",
        ]));
        let o: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{model}: {e}: {out}"));
        let candidates = o["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 1, "{model}");
        let n_tokens = candidates[0]["n_tokens"].as_u64().unwrap();
        assert!(n_tokens > 0 && n_tokens <= 24, "{model}: {n_tokens}");
        assert_eq!(o["usage"]["completion"].as_u64(), Some(n_tokens), "{model}");
        assert!(o["usage"]["prompt_computed"].as_u64().unwrap() > 10, "{model}: the chat template and question are prefilled");
    }
}

#[test]
fn humaneval_coverage_and_flaws_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.sqlite");
    let s = store.to_str().unwrap();
    // N = 4 samples of the 0.5B on 3 problems, graded by the hidden tests in the sandbox.
    let out = ok(&ponder(&[
        "eval", "--dataset", "humaneval", "--limit", "3", "--model", SMALL, "--strategy", "sc", "--budget", "4",
        "--max-tokens", "160", "--store", s,
    ]));
    let run = run_id(&out);
    let db = Store::open_existing(&store).unwrap();
    let samples = db.samples(run).unwrap();
    assert_eq!((db.outcomes(run).unwrap().len(), samples.len()), (3, 12));
    let outcomes = db.outcomes(run).unwrap();
    let generated: u64 = samples.iter().map(|x| x.usage.completion).sum();
    assert_eq!(outcomes.iter().map(|o| o.usage.completion).sum::<u64>(), generated, "usage adds up");
    // The questions and the exact prompts are stored with the run.
    let shown: Value = serde_json::from_str(&ok(&ponder(&["runs", "show", &run.to_string(), "--store", s, "--json"]))).unwrap();
    assert_eq!(shown["config"]["prompt"]["name"], "code-chat");
    for p in shown["problems"].as_array().unwrap() {
        let (q, prompt) = (p["question"].as_str().unwrap(), p["prompt"].as_str().unwrap());
        assert!(q.contains("def ") && prompt.contains("<|im_start|>") && prompt.contains(q.trim_end()), "{p}");
    }

    // Coverage at every k and the fitted law, in the report.
    let report = dir.path().join("report");
    ok(&ponder(&["report", &run.to_string(), "--store", s, "--out", report.to_str().unwrap()]));
    let coverage = std::fs::read_to_string(report.join("coverage.csv")).unwrap();
    let ks: Vec<&str> = coverage.lines().skip(1).map(|l| l.split(',').nth(3).unwrap()).collect();
    assert_eq!(ks, ["1", "2", "3", "4"], "{coverage}");
    assert!(std::fs::read_to_string(report.join("report.md")).unwrap().contains("Coverage law"));

    // The 1.5B's single sample on the same problems, as the reference.
    let out = ok(&ponder(&[
        "eval", "--dataset", "humaneval", "--limit", "3", "--model", LARGE, "--strategy", "single", "--temperature", "0",
        "--max-tokens", "160", "--store", s,
    ]));
    let reference = run_id(&out);
    let flaws_dir = dir.path().join("flaws");
    let out = ok(&ponder(&[
        "flaws", &run.to_string(), "--reference", &reference.to_string(), "--store", s, "--out", flaws_dir.to_str().unwrap(),
    ]));
    assert!(out.contains("false-positive rate"), "{out}");
    let f = json(&flaws_dir.join("flaws.json"));
    assert_eq!((f["report"]["n_problems"].as_u64(), f["report"]["n_candidates"].as_u64()), (Some(3), Some(12)));
    let curve = f["report"]["curve"].as_array().unwrap();
    assert_eq!(curve.len(), 4);
    for p in curve {
        let sum = ["correct", "wrong", "abstain"].iter().map(|m| p[m]["mean"].as_f64().unwrap()).sum::<f64>();
        assert!((sum - 1.0).abs() < 1e-9, "every problem is answered right, wrong or not at all: {p}");
    }
    assert_eq!(f["report"]["best_k"].as_array().unwrap().len(), 3);
    assert_eq!(f["reference"]["report"]["n_candidates"].as_u64(), Some(3));
    assert!(std::fs::read_to_string(flaws_dir.join("flaws.svg")).unwrap().starts_with("<svg"));
}

#[test]
fn gsm8k_judge_plan_and_held_out_auto_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.sqlite");
    let s = store.to_str().unwrap();
    let out = ok(&ponder(&[
        "eval", "--dataset", "gsm8k", "--limit", "4", "--model", SMALL, "--strategy", "single,sc,adaptive-sc,weighted-bon,bon",
        "--budget", "2", "--scorer", "judge", "--judge-model", LARGE, "--max-tokens", "64", "--store", s,
    ]));
    let run = run_id(&out);
    let db = Store::open_existing(&store).unwrap();
    let outcomes = db.outcomes(run).unwrap();
    assert_eq!(outcomes.len(), 4 * 5);
    for o in &outcomes {
        let judged = matches!(o.key.strategy.as_str(), "bon" | "weighted-bon");
        // The judge scores every candidate once; nothing else calls a scorer.
        assert_eq!(o.usage.scorer_passes, if judged { o.n_samples as u64 } else { 0 }, "{:?}", o.key);
        assert!(o.n_samples <= o.key.budget && o.usage.completion > 0, "{:?}", o.key);
    }
    drop(db);

    // Fit on the first two problems, run `auto` on the other two, compare on those two.
    let policy = dir.path().join("policy.json");
    let out = ok(&ponder(&[
        "plan", &run.to_string(), "--store", s, "--problems", "0..2", "--probe", "2", "--min-bin", "1", "--out",
        policy.to_str().unwrap(),
    ]));
    assert!(out.contains("fitting on problems 0..2"), "{out}");
    let out = ok(&ponder(&[
        "eval", "--dataset", "gsm8k[2..4]", "--model", SMALL, "--strategy", "auto", "--policy", policy.to_str().unwrap(),
        "--max-tokens", "64", "--store", s,
    ]));
    let auto = run_id(&out);
    let db = Store::open_existing(&store).unwrap();
    let held_out: Vec<String> = db.outcomes(auto).unwrap().into_iter().map(|o| o.key.problem_id).collect();
    assert_eq!(held_out.len(), 2);
    assert!(held_out.iter().all(|id| id == "gsm8k/2" || id == "gsm8k/3"), "{held_out:?}");
    let report = dir.path().join("held-out");
    ok(&ponder(&[
        "report", &auto.to_string(), "--compare", &run.to_string(), "--same-problems", "--store", s, "--out",
        report.to_str().unwrap(),
    ]));
    let summary = std::fs::read_to_string(report.join("summary.csv")).unwrap();
    for line in summary.lines().skip(1) {
        assert_eq!(line.split(',').nth(4), Some("2"), "every row covers the two held-out problems: {line}");
    }
}

#[test]
fn search_against_best_of_n_under_the_judge() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.sqlite");
    let s = store.to_str().unwrap();
    let out = ok(&ponder(&[
        "eval", "--dataset", "gsm8k", "--limit", "2", "--model", SMALL, "--strategy", "bon,pf", "--budget", "2",
        "--scorer", "judge", "--judge-model", LARGE, "--max-tokens", "64", "--max-step-tokens", "32", "--max-steps", "3",
        "--store", s,
    ]));
    let run = run_id(&out);
    let db = Store::open_existing(&store).unwrap();
    let outcomes = db.outcomes(run).unwrap();
    assert_eq!(outcomes.len(), 4);
    for o in &outcomes {
        assert!(o.usage.scorer_passes >= 2, "every candidate or step is judged: {:?} {:?}", o.key, o.usage);
        assert!(o.usage.completion > 0 && o.usage.prompt_computed > 0, "{:?}", o.usage);
    }
    let pf = outcomes.iter().filter(|o| o.key.strategy == "pf").map(|o| o.usage.scorer_passes).sum::<u64>();
    let bon = outcomes.iter().filter(|o| o.key.strategy == "bon").map(|o| o.usage.scorer_passes).sum::<u64>();
    assert_eq!(bon, 4, "best-of-2 judges 2 candidates per problem");
    assert!(pf >= bon, "particle filtering judges every step of every particle: {pf} vs {bon}");
}

/// Issue 14: `think-exit` on a real model. With one probe enough and any answer counted,
/// the first probe inside the span ends it: the forced close and answer prefix are in the
/// sample after its first 4 tokens, the probe is a scorer pass, and the answer is read.
#[test]
fn issue_14_think_exit_ends_the_span_at_the_first_probe_that_settles() {
    let question = "What is 17*23? Reply in the form: <think>your step-by-step reasoning</think> then the answer.";
    let out = ok(&ponder(&[
        "solve", question, "--model", SMALL, "--temperature", "0", "--max-tokens", "40", "--show-samples", "--json",
        "--think-markers", "<think>,</think>", "--strategy", "think-exit@1{every = 4, agree = 1, threshold = 0.0}",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let text = v["candidates"][0]["text"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(text.starts_with("<think>") && text.contains("</think>\n\nFinal answer: "), "{text:?}");
    assert_eq!((v["usage"]["scorer_passes"].as_u64(), v["stopped_early"].as_bool()), (Some(1), Some(true)), "{v}");
    assert!(v["answer"].is_string(), "{v}");
    assert!(v["usage"]["thinking"].as_u64().is_some_and(|t| (1..4).contains(&t)), "{v}");
}

/// Issue 14: `solve` with reasoning markers and a thinking budget prints the answer read
/// after the span and the thinking tokens apart; without markers a budget is refused.
#[test]
fn issue_14_solve_with_a_thinking_budget_prints_the_answer_and_thinking_tokens() {
    let question = "What is 17*23? Reply in the form: <think>your step-by-step reasoning</think> then the answer.";
    let common = [
        "solve",
        question,
        "--model",
        SMALL,
        "--strategy",
        "single",
        "--temperature",
        "0",
        "--max-tokens",
        "40",
    ];
    let out = ok(&ponder(
        &[
            &common[..],
            &[
                "--think-markers",
                "<think>,</think>",
                "--thinking-budget",
                "8",
                "--show-samples",
            ],
        ]
        .concat(),
    ));
    assert!(out.contains("</think>\n\nFinal answer: "), "{out}");
    let answer = out
        .lines()
        .find_map(|l| l.strip_prefix("answer: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_ne!(answer, "(none)", "{out}");
    let usage = out
        .lines()
        .find(|l| l.starts_with("usage: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(usage.contains("(thinking 8)"), "{usage}");
    // The JSON outcome carries the count in its usage.
    let json_out = ok(&ponder(
        &[
            &common[..],
            &[
                "--think-markers",
                "<think>,</think>",
                "--thinking-budget",
                "8",
                "--json",
            ],
        ]
        .concat(),
    ));
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["usage"]["thinking"], 8, "{v}");
    // Qwen2.5-Coder's template writes no markers, so `auto` finds none to budget.
    let o = ponder(&[&common[..], &["--thinking-budget", "8"]].concat());
    assert!(
        !o.status.success() && stderr(&o).contains("needs reasoning markers"),
        "{}",
        stderr(&o)
    );
}
