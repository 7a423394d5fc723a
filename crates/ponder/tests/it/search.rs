//! Step-level search from the command line, on both real models, and its bad input.

use super::*;

const SEARCH: [&str; 5] = ["beam", "dvts", "pf", "pgibbs", "astar"];

#[test]
fn every_search_strategy_solves_with_self_evaluation_on_smollm2() {
    for s in SEARCH {
        let o = ponder(&[
            "solve", "Tom has 3 apples and buys 4 more. How many apples does he have?", "--strategy", s, "--budget", "2",
            "--scorer", "self-eval", "--max-tokens", "32", "--max-step-tokens", "16",
        ]);
        assert!(o.status.success(), "{s}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("answer:") && out.contains("scorer passes"), "{s}: {out}");
        // Self-evaluation probes the policy model: its passes are counted.
        assert!(!out.contains("scorer passes 0 "), "{s}: {out}");
    }
}

#[test]
fn every_search_strategy_evaluates_with_the_step_checker_on_gemma() {
    let o = ponder(&[
        "eval", "--model", "gemma3-270m", "--dataset", "arith:1:1", "--limit", "1", "--strategy", &SEARCH.join(","),
        "--budget", "2", "--scorer", "step-check", "--max-tokens", "48", "--max-step-tokens", "24", "--no-store",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for s in SEARCH {
        assert!(out.lines().any(|l| l.starts_with(s)), "no row for {s}:\n{out}");
    }
}

#[test]
fn a_gguf_model_serves_as_token_probability_prm() {
    let o = ponder(&[
        "solve", "What is 2 + 3?", "--strategy", "pf", "--budget", "2", "--scorer", "prm", "--prm-model", "smollm2-135m",
        "--max-tokens", "32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("answer:"));
}

#[test]
fn search_input_errors_are_clear() {
    assert_fails_with(&ponder(&["solve", "2+2?", "--strategy", "beam"]), "needs a process scorer");
    assert_fails_with(&ponder(&["solve", "2+2?", "--strategy", "pf", "--scorer", "prm"]), "--prm-model");
    assert_fails_with(
        &ponder(&["solve", "2+2?", "--strategy", "pf", "--scorer", "prm", "--prm-model", "/nonexistent/prm.gguf"]),
        "/nonexistent/prm.gguf",
    );
    assert_fails_with(&ponder(&["solve", "2+2?", "--strategy", "pf", "--scorer", "step-check"]), "--steps");
    assert_fails_with(&ponder(&["solve", "2+2?", "--strategy", "pf", "--aggregate", "max"]), "--aggregate");
    assert_fails_with(&ponder(&["solve", "2+2?", "--strategy", "pf", "--ess-threshold", "2"]), "--ess-threshold");
}
