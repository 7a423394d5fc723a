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

use std::path::{Path, PathBuf};

use ponder_core::strategy::Outcome;
use ponder_core::{Problem, Usage};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::Error;

mod schema;
mod units;

/// The store's file name when none is given: under `$PONDER_HOME` if set, else in the
/// current directory.
pub const DEFAULT_FILE: &str = "ponder-runs.sqlite";

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
    /// The winner's share of the vote, for voting strategies ([`ponder_core::Outcome::confidence`];
    /// `None` for other strategies and in runs stored before schema version 3).
    pub confidence: Option<f64>,
    /// Stored before schema version 5, which did not keep `usage.dropped` (then 0): its
    /// dropped tokens are unknown, not none.
    pub dropped_unknown: bool,
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

