//! The run store: every evaluation run, its configuration, its problems, each unit's
//! outcome and every candidate sample, in one SQLite file (WAL journal).
//!
//! A *unit* is one (problem, strategy, budget, seed). A unit's outcome and all its samples
//! are written in one transaction as soon as the unit completes, so a process killed at
//! any point leaves whole units or nothing; UNIQUE constraints make a unit impossible to
//! store twice. Committed transactions survive the process being killed (WAL with
//! `synchronous = NORMAL` may lose the last ones only on an operating-system crash).
//!
//! Per-sample token counts: `completion` is the sample's own; the prompt counts, scorer
//! passes and wall time of a unit are counted by the backend per request, not per sample,
//! so each sample row carries an even share of its unit's totals (the shares add up to
//! the unit's exact totals, which its outcome row keeps).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ponder_core::strategy::Outcome;
use ponder_core::{Problem, Usage};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::Error;

/// The store's file name when none is given: under `$PONDER_HOME` if set, else in the
/// current directory.
pub const DEFAULT_FILE: &str = "ponder-runs.sqlite";

/// Marks a SQLite file as ours (`PRAGMA application_id`; "pndr").
const APPLICATION_ID: i64 = 0x706e_6472;
const SCHEMA_VERSION: i64 = 2;

/// Version 1 stores lacked the question and rendered prompt of each problem.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE problems ADD COLUMN question TEXT;
ALTER TABLE problems ADD COLUMN prompt TEXT;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
";

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

/// One (problem, strategy, budget, seed): what the store keeps one outcome of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitKey {
    pub problem_id: String,
    pub strategy: String,
    pub budget: usize,
    pub seed: u64,
}

/// A run's row.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub id: i64,
    pub created: String,
    pub updated: String,
    /// The full configuration as JSON ([`crate::runner::RunConfig`]).
    pub config: String,
    pub model: String,
    pub dataset: String,
    /// `running`, `interrupted`, `failed` or `complete`. A process killed outright leaves
    /// `running`.
    pub status: String,
    /// Model parameters, for FLOPs estimates; 0 when unknown.
    pub n_params: u64,
}

/// A problem of a run, in dataset order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemRow {
    pub idx: usize,
    pub id: String,
    pub level: Option<u32>,
    pub gold: String,
    /// The question as the dataset gives it (`None` in runs stored before version 2).
    pub question: Option<String>,
    /// The exact prompt the model saw: the chat template applied to the rendered messages,
    /// or the messages as JSON where the backend renders them (`None` before the model ran).
    pub prompt: Option<String>,
}

/// A unit's outcome with its exact usage.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    pub key: UnitKey,
    pub answer: Option<String>,
    pub correct: bool,
    pub abstained: bool,
    pub stopped_early: bool,
    pub n_samples: usize,
    pub n_failed: usize,
    pub chosen: Option<usize>,
    pub usage: Usage,
}

/// One candidate of a unit.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRow {
    pub key: UnitKey,
    /// The sample's index in its request sequence (fixes its seed).
    pub index: usize,
    pub text: String,
    pub answer: Option<String>,
    /// Equivalence-class key of `answer`.
    pub answer_key: Option<String>,
    pub correct: bool,
    pub score: Option<f64>,
    pub mean_logprob: Option<f64>,
    pub finish: String,
    /// `completion` is exact; the rest is this sample's share of its unit's totals.
    pub usage: Usage,
}

/// A completed unit, graded, ready to store.
#[derive(Debug, Clone)]
pub struct UnitRecord {
    pub key: UnitKey,
    pub outcome: Outcome,
    /// Whether the chosen answer is correct.
    pub correct: bool,
    /// Per candidate, in `outcome.candidates` order.
    pub candidates_correct: Vec<bool>,
}

/// An open run store.
pub struct Store {
    conn: Connection,
    path: String,
}

/// `$PONDER_HOME/ponder-runs.sqlite` when `PONDER_HOME` is set, else `./ponder-runs.sqlite`.
pub fn default_path() -> PathBuf {
    match std::env::var_os("PONDER_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join(DEFAULT_FILE),
        _ => PathBuf::from(DEFAULT_FILE),
    }
}

fn i(x: u64) -> i64 {
    // Seeds and counts are stored bit for bit; u64 values above i64::MAX come back intact.
    x as i64
}

fn u(x: i64) -> u64 {
    x as u64
}

impl Store {
    /// Opens the store at `path`, creating it (and its schema) if the file does not exist.
    pub fn open_or_create(path: &Path) -> Result<Store, Error> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(Error::StoreOpen {
                    path: path.display().to_string(),
                    reason: format!("directory {} does not exist", parent.display()),
                });
            }
        }
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)
    }

    /// Opens an existing store; a missing file is [`Error::NoStore`].
    pub fn open_existing(path: &Path) -> Result<Store, Error> {
        if !path.exists() {
            return Err(Error::NoStore { path: path.display().to_string() });
        }
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// A store in memory (nothing written to disk; `ponder eval --no-store`).
    pub fn in_memory() -> Result<Store, Error> {
        let conn = Connection::open_in_memory()?;
        let store = Store { conn, path: ":memory:".into() };
        store.init()?;
        Ok(store)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Store, Error> {
        let shown = path.display().to_string();
        if path.is_dir() {
            return Err(Error::StoreOpen { path: shown, reason: "it is a directory".into() });
        }
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| Error::StoreOpen { path: shown.clone(), reason: e.to_string() })?;
        let store = Store { conn, path: shown };
        store.init()?;
        Ok(store)
    }

    /// Checks the file is ours (or empty, then makes it ours) and sets the journal mode.
    fn init(&self) -> Result<(), Error> {
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
                Some(1) => {
                    self.conn.execute_batch(&format!("BEGIN; {MIGRATE_1_TO_2} COMMIT;"))?;
                    tracing::info!("run store {}: upgraded to schema version {SCHEMA_VERSION}", self.path);
                }
                Some(v) => return Err(not_a_store(format!("schema version {v}; this ponder reads version {SCHEMA_VERSION}"))),
                None => return Err(not_a_store("its schema version is missing".into())),
            }
        }
        Ok(())
    }

    /// The file this store lives in (`:memory:` for an in-memory store).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Creates a run with `status = running` and its problems; returns its id.
    pub fn create_run(&mut self, config_json: &str, model: &str, dataset: &str, n_params: u64, problems: &[Problem]) -> Result<i64, Error> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO runs (created, updated, config, model, dataset, status, n_params)
             VALUES (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?1, ?2, ?3, 'running', ?4)",
            params![config_json, model, dataset, i(n_params)],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut stmt = tx.prepare(
                "INSERT INTO problems (run_id, idx, problem_id, level, gold, question) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (idx, p) in problems.iter().enumerate() {
                stmt.execute(params![id, idx as i64, p.id, p.level, p.gold, p.question])?;
            }
        }
        tx.commit()?;
        Ok(id)
    }

    /// The run with this id, or [`Error::UnknownRun`] listing the runs there are.
    pub fn run(&self, id: i64) -> Result<RunInfo, Error> {
        let row = self
            .conn
            .query_row(
                "SELECT id, created, updated, config, model, dataset, status, n_params FROM runs WHERE id = ?1",
                [id],
                run_info,
            )
            .optional()?;
        match row {
            Some(r) => Ok(r),
            None => {
                let known: Vec<String> = self.runs()?.iter().map(|r| r.id.to_string()).collect();
                Err(Error::UnknownRun { id, path: self.path.clone(), known: known.join(", ") })
            }
        }
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunInfo>, Error> {
        let mut stmt =
            self.conn.prepare("SELECT id, created, updated, config, model, dataset, status, n_params FROM runs ORDER BY id")?;
        let rows = stmt.query_map([], run_info)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn set_status(&self, id: i64, status: &str) -> Result<(), Error> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, updated = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?1",
            params![id, status],
        )?;
        Ok(())
    }

    /// Records the model's parameter count (known once the model is loaded).
    pub fn set_n_params(&self, id: i64, n_params: u64) -> Result<(), Error> {
        self.conn.execute("UPDATE runs SET n_params = ?2 WHERE id = ?1", params![id, i(n_params)])?;
        Ok(())
    }

    /// The run's problems in dataset order.
    pub fn problems(&self, run: i64) -> Result<Vec<ProblemRow>, Error> {
        let mut stmt = self.conn.prepare(
            "SELECT idx, problem_id, level, gold, question, prompt FROM problems WHERE run_id = ?1 ORDER BY idx",
        )?;
        let rows = stmt
            .query_map([run], |r| {
                Ok(ProblemRow {
                    idx: r.get::<_, i64>(0)? as usize,
                    id: r.get(1)?,
                    level: r.get(2)?,
                    gold: r.get(3)?,
                    question: r.get(4)?,
                    prompt: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Records each problem's question and the exact prompt the model was given, as
    /// `(problem id, question, prompt)`, in one transaction.
    pub fn set_prompts(&mut self, run: i64, prompts: &[(&str, &str, &str)]) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare("UPDATE problems SET question = ?3, prompt = ?4 WHERE run_id = ?1 AND problem_id = ?2")?;
            for (id, question, prompt) in prompts {
                stmt.execute(params![run, id, question, prompt])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces a run's stored configuration (a default settled once the model is loaded).
    pub fn set_config(&self, id: i64, config_json: &str) -> Result<(), Error> {
        self.conn.execute("UPDATE runs SET config = ?2 WHERE id = ?1", params![id, config_json])?;
        Ok(())
    }

    /// The units of `run` already stored.
    pub fn stored_units(&self, run: i64) -> Result<HashSet<UnitKey>, Error> {
        let mut stmt = self.conn.prepare("SELECT problem_id, strategy, budget, seed FROM outcomes WHERE run_id = ?1")?;
        let rows = stmt.query_map([run], unit_key)?.collect::<Result<HashSet<_>, _>>()?;
        Ok(rows)
    }

    /// Stores a unit's outcome and all its candidates in one transaction. Returns `false`
    /// (and stores nothing) when the unit was already stored.
    pub fn insert_unit(&mut self, run: i64, rec: &UnitRecord) -> Result<bool, Error> {
        let tx = self.conn.transaction()?;
        let k = &rec.key;
        let o = &rec.outcome;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO outcomes (run_id, problem_id, strategy, budget, seed, answer, correct, abstained,
                 stopped_early, n_samples, n_failed, chosen, prompt_computed, prompt_reused, completion, scorer_passes,
                 wall_ms, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            params![
                run,
                k.problem_id,
                k.strategy,
                k.budget as i64,
                i(k.seed),
                o.answer,
                rec.correct,
                o.abstained,
                o.stopped_early,
                o.candidates.len() as i64,
                o.n_failed as i64,
                o.chosen.map(|c| c as i64),
                i(o.usage.prompt_computed),
                i(o.usage.prompt_reused),
                i(o.usage.completion),
                i(o.usage.scorer_passes),
                i(o.usage.wall_ms),
            ],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        {
            let mut stmt = tx.prepare(
                "INSERT INTO samples (run_id, problem_id, strategy, budget, seed, cand_index, text, answer, answer_key,
                     correct, score, mean_logprob, finish, prompt_computed, prompt_reused, completion, scorer_passes, wall_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?;
            let n = o.candidates.len() as u64;
            let share = |total: u64, j: u64| total / n + u64::from(j < total % n);
            for (j, c) in o.candidates.iter().enumerate() {
                let j = j as u64;
                let finish = serde_json::to_value(&c.finish)
                    .ok()
                    .and_then(|v| match v {
                        serde_json::Value::String(s) => Some(s),
                        other => other.as_object().and_then(|m| m.keys().next().cloned()),
                    })
                    .unwrap_or_default();
                stmt.execute(params![
                    run,
                    k.problem_id,
                    k.strategy,
                    k.budget as i64,
                    i(k.seed),
                    c.index as i64,
                    c.text,
                    c.answer,
                    c.key,
                    rec.candidates_correct.get(j as usize).copied().unwrap_or(false),
                    c.score.filter(|s| s.is_finite()),
                    c.mean_logprob.filter(|s| s.is_finite()),
                    finish,
                    i(share(o.usage.prompt_computed, j)),
                    i(share(o.usage.prompt_reused, j)),
                    c.n_tokens as i64,
                    i(share(o.usage.scorer_passes, j)),
                    i(share(o.usage.wall_ms, j)),
                ])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// Every outcome of `run`, in problem order, then strategy, budget, seed.
    pub fn outcomes(&self, run: i64) -> Result<Vec<OutcomeRow>, Error> {
        let mut stmt = self.conn.prepare(
            "SELECT o.problem_id, o.strategy, o.budget, o.seed, o.answer, o.correct, o.abstained, o.stopped_early,
                    o.n_samples, o.n_failed, o.chosen, o.prompt_computed, o.prompt_reused, o.completion,
                    o.scorer_passes, o.wall_ms
             FROM outcomes o LEFT JOIN problems p ON p.run_id = o.run_id AND p.problem_id = o.problem_id
             WHERE o.run_id = ?1 ORDER BY p.idx, o.strategy, o.budget, o.seed",
        )?;
        let rows = stmt
            .query_map([run], |r| {
                Ok(OutcomeRow {
                    key: unit_key(r)?,
                    answer: r.get(4)?,
                    correct: r.get(5)?,
                    abstained: r.get(6)?,
                    stopped_early: r.get(7)?,
                    n_samples: r.get::<_, i64>(8)? as usize,
                    n_failed: r.get::<_, i64>(9)? as usize,
                    chosen: r.get::<_, Option<i64>>(10)?.map(|c| c as usize),
                    usage: usage_at(r, 11)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Every sample of `run`, in problem order, then strategy, budget, seed, index.
    pub fn samples(&self, run: i64) -> Result<Vec<SampleRow>, Error> {
        let mut stmt = self.conn.prepare(
            "SELECT s.problem_id, s.strategy, s.budget, s.seed, s.cand_index, s.text, s.answer, s.answer_key, s.correct,
                    s.score, s.mean_logprob, s.finish, s.prompt_computed, s.prompt_reused, s.completion,
                    s.scorer_passes, s.wall_ms
             FROM samples s LEFT JOIN problems p ON p.run_id = s.run_id AND p.problem_id = s.problem_id
             WHERE s.run_id = ?1 ORDER BY p.idx, s.strategy, s.budget, s.seed, s.cand_index",
        )?;
        let rows = stmt
            .query_map([run], |r| {
                Ok(SampleRow {
                    key: unit_key(r)?,
                    index: r.get::<_, i64>(4)? as usize,
                    text: r.get(5)?,
                    answer: r.get(6)?,
                    answer_key: r.get(7)?,
                    correct: r.get(8)?,
                    score: r.get(9)?,
                    mean_logprob: r.get(10)?,
                    finish: r.get(11)?,
                    usage: usage_at(r, 12)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Counts of (outcomes, samples) stored for `run`.
    pub fn counts(&self, run: i64) -> Result<(u64, u64), Error> {
        let n_outcomes: i64 = self.conn.query_row("SELECT count(*) FROM outcomes WHERE run_id = ?1", [run], |r| r.get(0))?;
        let n_samples: i64 = self.conn.query_row("SELECT count(*) FROM samples WHERE run_id = ?1", [run], |r| r.get(0))?;
        Ok((u(n_outcomes), u(n_samples)))
    }
}

fn run_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunInfo> {
    Ok(RunInfo {
        id: r.get(0)?,
        created: r.get(1)?,
        updated: r.get(2)?,
        config: r.get(3)?,
        model: r.get(4)?,
        dataset: r.get(5)?,
        status: r.get(6)?,
        n_params: u(r.get(7)?),
    })
}

fn unit_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<UnitKey> {
    Ok(UnitKey {
        problem_id: r.get(0)?,
        strategy: r.get(1)?,
        budget: r.get::<_, i64>(2)? as usize,
        seed: u(r.get(3)?),
    })
}

fn usage_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Usage> {
    Ok(Usage {
        prompt_computed: u(r.get(at)?),
        prompt_reused: u(r.get(at + 1)?),
        completion: u(r.get(at + 2)?),
        scorer_passes: u(r.get(at + 3)?),
        wall_ms: u(r.get(at + 4)?),
    })
}
