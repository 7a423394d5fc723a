//! The run store's SQLite schema: the tables, the marks that make a file ours
//! (`application_id`, the schema version) and the upgrade of older stores.

use rusqlite::OptionalExtension;

use super::Store;
use crate::Error;

/// Marks a SQLite file as ours (`PRAGMA application_id`; "pndr").
const APPLICATION_ID: i64 = 0x706e_6472;
const SCHEMA_VERSION: i64 = 5;

/// Version 1 stores lacked the question and rendered prompt of each problem.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE problems ADD COLUMN question TEXT;
ALTER TABLE problems ADD COLUMN prompt TEXT;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
";

/// Version 2 stores lacked each outcome's confidence (the winner's share of the vote).
const ADD_CONFIDENCE: &str = "ALTER TABLE outcomes ADD COLUMN confidence REAL;";

/// Version 3 stores lacked each outcome's thinking tokens (issue 14): old units had no
/// reasoning markers, so 0 is their exact count.
const ADD_THINKING: &str = "
ALTER TABLE outcomes ADD COLUMN thinking INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outcomes ADD COLUMN thinking_uncounted INTEGER NOT NULL DEFAULT 0;
";

/// Version 4 stores lacked each outcome's dropped tokens (issue 14): old outcomes' are
/// unknown, stored as NULL, never as a guessed 0.
const ADD_DROPPED: &str = "ALTER TABLE outcomes ADD COLUMN dropped INTEGER;";
/// Version 4 stores lacked each outcome's count of calls whose usage never came (an HTTP
/// upstream lost with work in flight, issue 15). Their engine runs always reported; a run
/// over `--upstream` stored then may have lost some, which no one can say now: 0.
const ADD_UNREPORTED: &str = "ALTER TABLE outcomes ADD COLUMN unreported INTEGER NOT NULL DEFAULT 0;";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    config TEXT NOT NULL,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    status TEXT NOT NULL,
    n_params INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS problems (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    idx INTEGER NOT NULL,
    problem_id TEXT NOT NULL,
    level INTEGER,
    gold TEXT NOT NULL,
    question TEXT,
    prompt TEXT,
    PRIMARY KEY (run_id, problem_id)
);
CREATE TABLE IF NOT EXISTS outcomes (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    problem_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    budget INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    answer TEXT,
    correct INTEGER NOT NULL,
    abstained INTEGER NOT NULL,
    stopped_early INTEGER NOT NULL,
    n_samples INTEGER NOT NULL,
    n_failed INTEGER NOT NULL,
    chosen INTEGER,
    prompt_computed INTEGER NOT NULL,
    prompt_reused INTEGER NOT NULL,
    completion INTEGER NOT NULL,
    scorer_passes INTEGER NOT NULL,
    wall_ms INTEGER NOT NULL,
    created TEXT NOT NULL,
    confidence REAL,
    thinking INTEGER NOT NULL DEFAULT 0,
    thinking_uncounted INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER,
    unreported INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_id, problem_id, strategy, budget, seed)
);
CREATE TABLE IF NOT EXISTS samples (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    problem_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    budget INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    cand_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    answer TEXT,
    answer_key TEXT,
    correct INTEGER NOT NULL,
    score REAL,
    mean_logprob REAL,
    finish TEXT NOT NULL,
    prompt_computed INTEGER NOT NULL,
    prompt_reused INTEGER NOT NULL,
    completion INTEGER NOT NULL,
    scorer_passes INTEGER NOT NULL,
    wall_ms INTEGER NOT NULL,
    UNIQUE (run_id, problem_id, strategy, budget, seed, cand_index)
);
";

impl Store {
    /// Checks the file is ours (or empty, then makes it ours) and sets the journal mode.
    pub(super) fn init(&self) -> Result<(), Error> {
        let not_a_store = |reason: String| Error::NotAStore { path: self.path.clone(), reason };
        // The first read of a corrupt file fails here ("file is not a database").
        let app_id: i64 =
            self.conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(|e| not_a_store(e.to_string()))?;
        let n_tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))
            .map_err(|e| not_a_store(e.to_string()))?;
        if app_id != APPLICATION_ID && (n_tables > 0 || app_id != 0) {
            return Err(not_a_store(format!(
                "it is another program's SQLite database ({n_tables} tables, application id {app_id:#x})"
            )));
        }
        self.conn.busy_timeout(std::time::Duration::from_secs(10))?;
        if self.path != ":memory:" {
            let mode: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| not_a_store(e.to_string()))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!("run store {}: journal mode is {mode}, not WAL", self.path);
            }
            self.conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        }
        if app_id != APPLICATION_ID {
            self.conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA application_id = {APPLICATION_ID};
                 INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
                 COMMIT;"
            ))?;
        } else {
            let version: Option<String> = self
                .conn
                .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))
                .optional()
                .map_err(|e| not_a_store(e.to_string()))?;
            match version.as_deref().and_then(|v| v.parse::<i64>().ok()) {
                Some(SCHEMA_VERSION) => {}
                Some(v @ (1..=4)) => {
                    self.upgrade(v)?;
                    tracing::info!("run store {}: upgraded from schema version {v} to {SCHEMA_VERSION}", self.path);
                }
                Some(v) => return Err(not_a_store(format!("schema version {v}; this ponder reads version {SCHEMA_VERSION}"))),
                None => return Err(not_a_store("its schema version is missing".into())),
            }
        }
        Ok(())
    }

    /// Upgrades a store of schema version `from` in one transaction.
    fn upgrade(&self, from: i64) -> Result<(), Error> {
        let tx = self.conn.unchecked_transaction()?;
        if from == 1 {
            tx.execute_batch(MIGRATE_1_TO_2)?;
        }
        // Tables a store never made come whole, with every column; old ones get the new one.
        let had_outcomes: i64 =
            tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'outcomes'", [], |r| r.get(0))?;
        tx.execute_batch(SCHEMA)?;
        if had_outcomes > 0 {
            if from < 3 {
                tx.execute_batch(ADD_CONFIDENCE)?;
            }
            if from < 4 {
                tx.execute_batch(ADD_THINKING)?;
            }
            tx.execute_batch(ADD_DROPPED)?;
            tx.execute_batch(ADD_UNREPORTED)?;
        }
        tx.execute("UPDATE meta SET value = ?1 WHERE key = 'schema_version'", [SCHEMA_VERSION.to_string()])?;
        tx.commit()?;
        Ok(())
    }
}
