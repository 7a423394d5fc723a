//! The run store's promises: one transaction per unit, no duplicates, clear errors on
//! files that are not stores.

use ponder_core::strategy::{Candidate, Outcome};
use ponder_eval::store::{Store, UnitKey, UnitRecord};
use ponder_eval::Error;

use super::*;

/// The usage every test unit reports, thinking tokens included.
fn stored_usage() -> Usage {
    Usage { prompt_computed: 10, prompt_reused: 31, completion: 99, scorer_passes: 3, wall_ms: 1001, unreported: 0, thinking: 40, thinking_uncounted: 1, dropped: 7 }
}

fn record(problem: &str, n: usize) -> UnitRecord {
    let candidates: Vec<Candidate> = (0..n)
        .map(|i| Candidate {
            index: i,
            text: format!("The answer is {i}."),
            answer: Some(i.to_string()),
            key: Some(i.to_string()),
            n_tokens: 4 + i,
            mean_logprob: Some(-0.5),
            finish: if i == 0 { FinishReason::Stop("\nQuestion:".into()) } else { FinishReason::Eos },
            score: Some(0.25 * i as f64),
        })
        .collect();
    let usage = stored_usage();
    UnitRecord {
        key: UnitKey { problem_id: problem.into(), strategy: "bon".into(), budget: n, seed: u64::MAX - 1 },
        outcome: Outcome {
            strategy: "bon".into(),
            answer: Some("1".into()),
            chosen: Some(1),
            candidates,
            votes: Vec::new(),
            usage,
            n_failed: 0,
            stopped_early: false,
            abstained: false,
            counts: Default::default(),
        },
        correct: true,
        candidates_correct: (0..n).map(|i| i == 1).collect(),
    }
}

#[test]
fn units_round_trip_once_with_exact_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite");
    let (d, problems) = dataset(3);
    let c = config(&d, &problems, &["bon"], &[3], &[0]);
    let mut store = Store::open_or_create(&path).unwrap();
    let run = store.create_run(&c.to_json(), "m", "arith:1", 135, &problems).unwrap();
    assert!(store.insert_unit(run, &record(&problems[0].id, 3)).unwrap());
    // The same unit again: refused, nothing added.
    assert!(!store.insert_unit(run, &record(&problems[0].id, 3)).unwrap());
    assert_eq!(store.counts(run).unwrap(), (1, 3));
    drop(store);

    let store = Store::open_existing(&path).unwrap();
    let info = store.run(run).unwrap();
    assert_eq!((info.status.as_str(), info.n_params, info.dataset.as_str()), ("running", 135, "arith:1"));
    assert_eq!(RunConfig::from_json(run, &info.config).unwrap(), c);
    let o = &store.outcomes(run).unwrap()[0];
    assert_eq!(o.key.seed, u64::MAX - 1, "seeds are stored bit for bit");
    assert_eq!(o.usage, stored_usage());
    let samples = store.samples(run).unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(samples.iter().map(|s| s.usage.prompt_computed).sum::<u64>(), 10);
    assert_eq!(samples.iter().map(|s| s.usage.prompt_reused).sum::<u64>(), 31);
    assert_eq!(samples.iter().map(|s| s.usage.wall_ms).sum::<u64>(), 1001);
    assert_eq!(samples.iter().map(|s| s.usage.completion).collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(samples[0].finish, "stop");
    assert_eq!(samples.iter().map(|s| s.correct).collect::<Vec<_>>(), [false, true, false]);
    assert_eq!(samples[2].score, Some(0.5));
    let ps = store.problems(run).unwrap();
    assert_eq!(ps.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), problems.iter().map(|p| p.id.as_str()).collect::<Vec<_>>());
    assert_eq!(ps[1].question.as_deref(), Some(problems[1].question.as_str()), "questions are stored with the run");
    assert_eq!(ps[1].prompt, None, "no prompt before the model ran");
    store.set_status(run, "complete").unwrap();
    assert_eq!(store.run(run).unwrap().status, "complete");
}

#[test]
fn prompts_are_stored_per_problem() {
    let (d, problems) = dataset(2);
    let c = config(&d, &problems, &["sc"], &[2], &[0]);
    let mut store = Store::in_memory().unwrap();
    let run = store.create_run(&c.to_json(), "m", "arith:1", 0, &problems).unwrap();
    let rendered: Vec<String> = problems.iter().map(|p| format!("<|user|>{}<|assistant|>", p.question)).collect();
    let rows: Vec<(&str, &str, &str)> =
        problems.iter().zip(&rendered).map(|(p, r)| (p.id.as_str(), p.question.as_str(), r.as_str())).collect();
    store.set_prompts(run, &rows).unwrap();
    let ps = store.problems(run).unwrap();
    assert_eq!(ps.iter().map(|p| p.prompt.clone().unwrap()).collect::<Vec<_>>(), rendered);
}

#[test]
fn a_version_1_store_is_upgraded_in_place_and_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        // The version-1 problems table, as ponder 0.1 wrote it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, updated TEXT NOT NULL,
                 config TEXT NOT NULL, model TEXT NOT NULL, dataset TEXT NOT NULL, status TEXT NOT NULL,
                 n_params INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE problems (run_id INTEGER NOT NULL REFERENCES runs(id), idx INTEGER NOT NULL,
                 problem_id TEXT NOT NULL, level INTEGER, gold TEXT NOT NULL, PRIMARY KEY (run_id, problem_id));
             INSERT INTO runs VALUES (1, 'a', 'a', '{}', 'm', 'gsm8k', 'complete', 0);
             INSERT INTO problems VALUES (1, 0, 'gsm8k/0', NULL, '18');
             INSERT INTO meta VALUES ('schema_version', '1');
             PRAGMA application_id = 1886282866;",
        )
        .unwrap();
    }
    let mut store = Store::open_existing(&path).unwrap();
    let ps = store.problems(1).unwrap();
    assert_eq!((ps[0].id.as_str(), ps[0].gold.as_str(), ps[0].question.as_deref()), ("gsm8k/0", "18", None));
    store.set_prompts(1, &[("gsm8k/0", "q", "p")]).unwrap();
    drop(store);
    let again = Store::open_existing(&path).unwrap();
    assert_eq!(again.problems(1).unwrap()[0].prompt.as_deref(), Some("p"), "the upgrade is kept");
}

/// A store of one run with one unit, taken back to an older schema by `downgrade` (SQL);
/// returns its directory, path, run id and problems.
fn old_store(downgrade: &str) -> (tempfile::TempDir, std::path::PathBuf, i64, Vec<ponder_core::Problem>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    let (d, problems) = dataset(2);
    let mut store = Store::open_or_create(&path).unwrap();
    let run = store.create_run(&config(&d, &problems, &["bon"], &[3], &[0]).to_json(), "m", "d", 0, &problems).unwrap();
    assert!(store.insert_unit(run, &record(&problems[0].id, 3)).unwrap());
    drop(store);
    rusqlite::Connection::open(&path).unwrap().execute_batch(downgrade).unwrap();
    (dir, path, run, problems)
}

fn schema_version(path: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0)).unwrap()
}

#[test]
fn a_version_2_store_gains_the_confidence_column_and_keeps_its_units() {
    // Version 2 as ponder wrote it: no confidence column, no thinking columns.
    let (_dir, path, run, problems) = old_store(
        "ALTER TABLE outcomes DROP COLUMN confidence; ALTER TABLE outcomes DROP COLUMN thinking;
         ALTER TABLE outcomes DROP COLUMN thinking_uncounted; ALTER TABLE outcomes DROP COLUMN dropped;
         ALTER TABLE outcomes DROP COLUMN unreported;
         UPDATE meta SET value = '2' WHERE key = 'schema_version';",
    );
    let mut store = Store::open_existing(&path).unwrap();
    let before = store.outcomes(run).unwrap();
    assert_eq!((before.len(), before[0].confidence), (1, None), "old units have no confidence");
    let mut voted = record(&problems[1].id, 3);
    voted.outcome.votes = ponder_core::strategy::tally(&voted.outcome.candidates[..2], false);
    assert!(store.insert_unit(run, &voted).unwrap());
    let after = store.outcomes(run).unwrap();
    assert_eq!(after[1].confidence, Some(0.5), "two classes of one vote each");
    assert_eq!(schema_version(&path), "5");
}

#[test]
fn a_version_3_store_gains_the_thinking_columns_and_keeps_its_units() {
    // Version 3 as ponder wrote it: no thinking columns.
    let (_dir, path, run, problems) = old_store(
        "ALTER TABLE outcomes DROP COLUMN thinking; ALTER TABLE outcomes DROP COLUMN thinking_uncounted;
         ALTER TABLE outcomes DROP COLUMN dropped; ALTER TABLE outcomes DROP COLUMN unreported; UPDATE meta SET value = '3' WHERE key = 'schema_version';",
    );
    let mut store = Store::open_existing(&path).unwrap();
    let before = store.outcomes(run).unwrap();
    assert_eq!((before.len(), before[0].usage.thinking), (1, 0), "old units thought nothing");
    let mut thought = record(&problems[1].id, 3);
    thought.outcome.usage.thinking = 17;
    thought.outcome.usage.thinking_uncounted = 2;
    assert!(store.insert_unit(run, &thought).unwrap());
    let after = store.outcomes(run).unwrap();
    assert_eq!((after[1].usage.thinking, after[1].usage.thinking_uncounted), (17, 2));
    assert_eq!(after[1].usage.completion, thought.outcome.usage.completion);
    assert_eq!(schema_version(&path), "5");
}

#[test]
fn a_version_4_store_gains_the_dropped_column_and_its_old_units_say_unknown() {
    // Version 4 as ponder wrote it: no dropped column.
    let (_dir, path, run, problems) =
        old_store("ALTER TABLE outcomes DROP COLUMN dropped; ALTER TABLE outcomes DROP COLUMN unreported; UPDATE meta SET value = '4' WHERE key = 'schema_version';");
    let mut store = Store::open_existing(&path).unwrap();
    assert_eq!(schema_version(&path), "5");
    let before = store.outcomes(run).unwrap();
    assert_eq!((before.len(), before[0].usage.dropped, before[0].dropped_unknown), (1, 0, true), "not stored, so unknown");
    let mut cut = record(&problems[1].id, 3);
    cut.outcome.usage.dropped = 11;
    assert!(store.insert_unit(run, &cut).unwrap());
    let after = store.outcomes(run).unwrap();
    assert_eq!((after[1].usage.dropped, after[1].dropped_unknown), (11, false));
    let counts = ponder_eval::analysis::Counts::of(after.iter().map(Into::into));
    assert_eq!((counts.usage.dropped, counts.n_dropped_unknown), (11, 1));
    drop(store);
    let again = Store::open_existing(&path).unwrap();
    assert_eq!(again.outcomes(run).unwrap()[1].usage.dropped, 11, "the upgrade is kept");
}

#[test]
fn a_version_4_store_gains_the_unreported_column_and_an_outcomes_lost_calls_are_kept() {
    // Version 4 as ponder wrote it: no unreported column (an outcome's lost calls were dropped).
    let (_dir, path, run, problems) =
        old_store("ALTER TABLE outcomes DROP COLUMN dropped; ALTER TABLE outcomes DROP COLUMN unreported; UPDATE meta SET value = '4' WHERE key = 'schema_version';");
    let mut store = Store::open_existing(&path).unwrap();
    assert_eq!(store.outcomes(run).unwrap()[0].usage.unreported, 0);
    let mut lost = record(&problems[1].id, 3);
    lost.outcome.usage.unreported = 2;
    assert!(store.insert_unit(run, &lost).unwrap());
    let after = store.outcomes(run).unwrap();
    assert_eq!(after[1].usage.unreported, 2, "a unit whose upstream lost two calls says so");
    assert!(!after[1].usage.is_exact());
    assert_eq!(schema_version(&path), "5");
}

#[test]
fn unknown_runs_missing_corrupt_and_foreign_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.sqlite");
    let missing = Store::open_existing(&path).err().unwrap();
    assert!(matches!(missing, Error::NoStore { .. }), "{missing}");
    assert!(!path.exists(), "reading never creates a store");

    let mut store = Store::open_or_create(&path).unwrap();
    let err = store.run(4).unwrap_err().to_string();
    assert!(err.contains("no run 4") && err.contains("holds no runs"), "{err}");
    let (d, problems) = dataset(1);
    let id = store.create_run(&config(&d, &problems, &["sc"], &[2], &[0]).to_json(), "m", "d", 0, &problems).unwrap();
    let err = store.run(99).unwrap_err().to_string();
    assert!(err.contains("no run 99") && err.contains(&format!("runs: {id}")), "{err}");

    let corrupt = dir.path().join("corrupt.sqlite");
    std::fs::write(&corrupt, b"this is not a database, just some text that goes on for a while".repeat(100)).unwrap();
    for r in [Store::open_existing(&corrupt), Store::open_or_create(&corrupt)] {
        let err = r.err().unwrap().to_string();
        assert!(err.contains("corrupt.sqlite is not a ponder run store"), "{err}");
    }

    let foreign = dir.path().join("foreign.sqlite");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada');").unwrap();
    drop(conn);
    let err = Store::open_existing(&foreign).err().unwrap().to_string();
    assert!(err.contains("foreign.sqlite is not a ponder run store") && err.contains("another program"), "{err}");
    // The foreign file is left as it was.
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);

    let err = Store::open_or_create(&dir.path().join("no/such/dir/runs.sqlite")).err().unwrap().to_string();
    assert!(err.contains("does not exist"), "{err}");
    let err = Store::open_existing(dir.path()).err().unwrap().to_string();
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn a_stored_configuration_that_does_not_parse_is_an_error() {
    let mut store = Store::in_memory().unwrap();
    let (_, problems) = dataset(1);
    let id = store.create_run("{\"dataset\": 3}", "m", "d", 0, &problems).unwrap();
    let err = ponder_eval::analysis::RunData::load(&store, id).unwrap_err().to_string();
    assert!(err.contains(&format!("run {id}: stored configuration is unreadable")), "{err}");
}
