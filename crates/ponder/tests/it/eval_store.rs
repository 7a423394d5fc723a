//! The evaluation harness end to end on the real model: the run store, SIGKILL and
//! resume, reports, plans and `auto`, and the errors of bad stores and datasets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ponder_eval::store::Store;

use super::*;

/// What must not differ between an interrupted-and-resumed run and an uninterrupted one:
/// every unit's outcome and every sample's text, answer and grade.
type Contents = (BTreeMap<String, String>, BTreeMap<String, String>);

fn contents(path: &Path, run: i64) -> Contents {
    let store = Store::open_existing(path).unwrap();
    let mut outcomes = BTreeMap::new();
    for o in store.outcomes(run).unwrap() {
        let key = format!("{}|{}|{}|{}", o.key.problem_id, o.key.strategy, o.key.budget, o.key.seed);
        let value = format!("{:?} {} {} {} {}", o.answer, o.correct, o.abstained, o.n_samples, o.usage.completion);
        assert!(outcomes.insert(key.clone(), value).is_none(), "unit {key} stored twice");
    }
    let mut samples = BTreeMap::new();
    for s in store.samples(run).unwrap() {
        let key = format!("{}|{}|{}|{}|{}", s.key.problem_id, s.key.strategy, s.key.budget, s.key.seed, s.index);
        let value = format!("{:?} {:?} {} {:?}", s.text, s.answer, s.correct, s.score);
        assert!(samples.insert(key.clone(), value).is_none(), "sample {key} stored twice");
    }
    (outcomes, samples)
}

/// `pause_ms`: the eval's test hook that waits after each stored unit, so the test can
/// see a partly stored run and kill it before it finishes, however fast the machine.
fn spawn(args: &[&str], pause_ms: u32) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ponder"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("PONDER_THREADS", "1")
        .env("PONDER_MODEL", FAST_MODEL)
        .env("PONDER_TEST_UNIT_PAUSE_MS", pause_ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ponder starts")
}

/// The acceptance test at a size that runs in about a minute on two cores: `sc` and `bon`
/// at budget 4 on 3 generated problems (the full-size run, 50 problems at budget 16, is
/// in README.md). One run is killed with SIGKILL once it has stored some units, then
/// resumed; another runs uninterrupted; the two stores must hold the same units, each
/// once, with the same samples and metrics. `--deterministic` runs each unit on a fresh
/// engine, so samples do not depend on which units ran before them in the same process.
#[test]
fn eval_killed_with_sigkill_and_resumed_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let (killed, whole) = (dir.path().join("killed.sqlite"), dir.path().join("whole.sqlite"));
    let args = |store: &Path| -> Vec<String> {
        [
            "eval", "--dataset", "arith:1:3", "--strategy", "sc,bon", "--budget", "4", "--max-tokens", "48", "--deterministic",
            "--store", store.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (n_units, n_samples) = (2 * 3, 2 * 3 * 4);
    let whole_args = args(&whole);
    let mut reference = spawn(&whole_args.iter().map(String::as_str).collect::<Vec<_>>(), 0);
    let killed_args = args(&killed);
    let mut victim = spawn(&killed_args.iter().map(String::as_str).collect::<Vec<_>>(), 1500);

    // Kill it once at least two units are stored, and before it is done.
    let started = Instant::now();
    loop {
        assert!(victim.try_wait().unwrap().is_none(), "the run finished before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(240), "no units stored within 240 s");
        if killed.exists() {
            if let Ok(store) = Store::open_existing(&killed) {
                if store.runs().map(|r| !r.is_empty()).unwrap_or(false) && store.counts(1).unwrap().0 >= 2 {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let store = Store::open_existing(&killed).unwrap();
    let (stored, _) = store.counts(1).unwrap();
    assert!((2..n_units as u64).contains(&stored), "{stored} units stored when killed");
    assert_eq!(store.run(1).unwrap().status, "running", "a killed process cannot mark its run");
    drop(store);

    let o = ponder(&["eval", "--resume", "1", "--store", killed.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("resuming run 1") && out.contains(&format!("{} of {n_units} units to run", n_units as u64 - stored)), "{out}");
    assert!(out.contains("sc ") && out.contains("bon ") && out.contains("/3 ("), "{out}");
    // Resuming a complete run runs nothing and changes nothing.
    let before = contents(&killed, 1);
    let o = ponder(&["eval", "--resume", "1", "--store", killed.to_str().unwrap()]);
    assert!(o.status.success() && stdout(&o).contains(&format!("0 of {n_units} units to run")), "{}", stdout(&o));
    assert_eq!(contents(&killed, 1), before);

    assert!(reference.wait().unwrap().success(), "the uninterrupted run failed");
    let (a, b) = (contents(&killed, 1), contents(&whole, 1));
    assert_eq!((a.0.len(), a.1.len()), (n_units, n_samples), "one record per expected unit and sample");
    assert_eq!(a, b, "resumed and uninterrupted runs differ");
    // And so do the metrics computed from the two stores.
    let metrics = |p: &Path| {
        let store = Store::open_existing(p).unwrap();
        let data = ponder_eval::analysis::RunData::load(&store, 1).unwrap();
        data.summaries(None).iter().map(|s| (s.config.to_string(), s.n_correct, s.n_units, s.cost.usage.completion)).collect::<Vec<_>>()
    };
    assert_eq!(metrics(&killed), metrics(&whole));
    let status = Store::open_existing(&killed).unwrap().run(1).unwrap().status;
    assert_eq!(status, "complete");
}

#[test]
fn report_plan_and_auto_on_a_stored_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.sqlite");
    let s = store.to_str().unwrap();
    let o = ponder(&[
        "eval", "--dataset", "arith:1:3", "--strategy", "single,sc", "--budget", "2,4", "--max-tokens", "40", "--store", s,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("run 1 · store"), "{}", stdout(&o));
    // single once, sc at two budgets.
    assert_eq!(Store::open_existing(&store).unwrap().counts(1).unwrap().0, 3 * 3);

    let out = dir.path().join("report");
    let o = ponder(&["report", "1", "--store", s, "--out", out.to_str().unwrap(), "--subsets", "200"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let plot_svg = format!("<svg width=\"{}\"", ponder_eval::report::plots::WIDTH);
    assert_eq!(html.matches(&plot_svg).count(), 4, "four inline plots (sc votes: risk–coverage too)");
    for f in ["report.md", "summary.csv", "curves.csv", "levels.csv", "risk.csv"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(stdout(&o).contains("tokens/pass"), "{}", stdout(&o));

    let policy = dir.path().join("policy.json");
    let o = ponder(&["plan", "1", "--store", s, "--out", policy.to_str().unwrap(), "--probe", "2", "--min-bin", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("less compute") && stdout(&o).contains("best single"), "{}", stdout(&o));
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&policy).unwrap()).unwrap();
    assert_eq!(p["probe"], 2);

    let o = ponder(&[
        "eval", "--dataset", "arith:1:3", "--strategy", "auto", "--policy", policy.to_str().unwrap(), "--max-tokens", "40",
        "--store", s,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("run 2") && stdout(&o).contains("auto"), "{}", stdout(&o));
    assert_eq!(Store::open_existing(&store).unwrap().counts(2).unwrap().0, 3);

    // Two runs overlaid.
    let o = ponder(&["report", "1", "--compare", "2", "--store", s, "--out", out.to_str().unwrap(), "--subsets", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("compared with 2"));
}

#[test]
fn bad_stores_unknown_runs_and_missing_policies_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, "not a database at all ".repeat(200)).unwrap();
    let g = garbage.to_str().unwrap();
    assert_fails_with(&ponder(&["eval", "--dataset", "arith:1:1", "--store", g]), "garbage.sqlite is not a ponder run store");
    assert_fails_with(&ponder(&["report", "1", "--store", g]), "is not a ponder run store");
    assert_fails_with(&ponder(&["eval", "--resume", "1", "--store", g]), "is not a ponder run store");

    let foreign = dir.path().join("foreign.sqlite");
    if write_foreign_database(&foreign) {
        assert_fails_with(&ponder(&["plan", "1", "--store", foreign.to_str().unwrap()]), "another program's SQLite database");
    } else {
        eprintln!("python3 with sqlite3 is missing: the foreign-database case is covered by ponder-eval's store tests only");
    }

    let empty = dir.path().join("empty.sqlite");
    drop(Store::open_or_create(&empty).unwrap());
    let e = empty.to_str().unwrap();
    assert_fails_with(&ponder(&["eval", "--resume", "7", "--store", e]), "no run 7");
    assert_fails_with(&ponder(&["report", "7", "--store", e]), "no run 7");
    assert_fails_with(&ponder(&["plan", "7", "--store", e]), "no run 7");
    let missing = dir.path().join("missing.sqlite");
    assert_fails_with(&ponder(&["report", "1", "--store", missing.to_str().unwrap()]), "no run store at");
    assert!(!missing.exists(), "reading commands never create a store");

    assert_fails_with(&ponder(&["eval", "--strategy", "auto", "--store", e]), "strategy auto: policy is missing: give a policy file from `ponder plan` (--policy FILE)");
    let bad_policy = dir.path().join("policy.json");
    std::fs::write(&bad_policy, r#"{"version": 1, "probe": 4, "bins": [{"min_agree": 0, "max_agree": 2, "strategy": "sc", "budget": 8}]}"#).unwrap();
    assert_fails_with(
        &ponder(&["eval", "--strategy", "auto", "--policy", bad_policy.to_str().unwrap(), "--store", e]),
        "bins must cover agreement 0..=4",
    );
    assert_fails_with(&ponder(&["eval", "--seeds", "0", "--store", e]), "--seeds must be at least 1");
    // None of these made a run.
    assert!(Store::open_existing(&empty).unwrap().runs().unwrap().is_empty());
}

/// Writes an SQLite database of another program (with Python's sqlite3, which the model
/// downloads need anyway); false when Python cannot.
fn write_foreign_database(path: &Path) -> bool {
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('CREATE TABLE people (name TEXT)')\nc.commit()\n";
    Command::new("python3").arg("-c").arg(script).arg(path).status().map(|s| s.success()).unwrap_or(false)
}

#[test]
fn jsonl_datasets_name_bad_rows_and_skip_them_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qa.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"id": "q1", "question": "Sam has 3 apples and buys 2 more. How many apples does Sam have?", "answer": 5}"#,
            "\n",
            r#"{"id": "q2", "question": "What is 4 plus 4?"}"#,
            "\n"
        ),
    )
    .unwrap();
    let spec = format!("jsonl:{}", path.display());
    let store = dir.path().join("runs.sqlite");
    let s = store.to_str().unwrap();
    let o = ponder(&["eval", "--dataset", &spec, "--strategy", "single", "--budget", "1", "--store", s]);
    assert_fails_with(&o, "line 2: missing field `answer`");
    assert!(stderr(&o).contains("--skip-bad-rows"), "{}", stderr(&o));
    assert!(!store.exists(), "a bad dataset fails before the store is made");

    let o = ponder(&[
        "eval", "--dataset", &spec, "--strategy", "single", "--budget", "1", "--max-tokens", "24", "--store", s, "--skip-bad-rows",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("skipped") && stderr(&o).contains("line 2"), "{}", stderr(&o));
    assert!(stdout(&o).contains("/1 ("), "{}", stdout(&o));

    std::fs::write(&path, "{\"question\": \"q\", \"answer\": \"1\"}\n{broken\n").unwrap();
    assert_fails_with(&ponder(&["eval", "--dataset", &spec, "--store", s]), "line 2: not valid JSON");
}

#[test]
fn ctrl_c_stops_cleanly_marks_the_run_and_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs.sqlite");
    let s = store.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ponder"))
        .args(["eval", "--dataset", "arith:1:3", "--strategy", "sc", "--budget", "2", "--max-tokens", "32", "--concurrency", "1"])
        .args(["--store", s])
        .env("PONDER_THREADS", "1")
        .env("PONDER_MODEL", FAST_MODEL)
        .env("PONDER_TEST_UNIT_PAUSE_MS", "1500")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be interrupted");
        assert!(started.elapsed() < Duration::from_secs(240), "no unit stored within 240 s");
        let n = Store::open_existing(&store).ok().and_then(|st| st.counts(1).ok()).map_or(0, |c| c.0);
        if n >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "stderr: {err}");
    assert!(err.contains("ponder: interrupted") && err.contains("--resume 1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let st = Store::open_existing(&store).unwrap();
    assert_eq!(st.run(1).unwrap().status, "interrupted");
    let (n, samples) = st.counts(1).unwrap();
    assert_eq!(samples, 2 * n, "whole units only");
    drop(st);

    let o = ponder(&["eval", "--resume", "1", "--store", s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st = Store::open_existing(&store).unwrap();
    assert_eq!(st.counts(1).unwrap(), (3, 6));
    assert_eq!(st.run(1).unwrap().status, "complete");
}
