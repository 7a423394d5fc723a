//! Units in the run store: each stored with all its candidates in one transaction, and
//! read back as outcome and sample rows.

use std::collections::HashSet;

use ponder_core::Usage;
use rusqlite::params;

use super::{i, u, OutcomeRow, SampleRow, Store, UnitKey, UnitRecord};
use crate::Error;

impl Store {
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
                 wall_ms, confidence, thinking, thinking_uncounted, dropped, unreported, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
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
                o.confidence(),
                i(o.usage.thinking),
                i(o.usage.thinking_uncounted),
                i(o.usage.dropped),
                i(o.usage.unreported),
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
                    o.scorer_passes, o.wall_ms, o.confidence, o.thinking, o.thinking_uncounted, o.dropped, o.unreported
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
                    usage: Usage {
                        thinking: u(r.get(17)?),
                        thinking_uncounted: u(r.get(18)?),
                        dropped: r.get::<_, Option<i64>>(19)?.map_or(0, u),
                        unreported: u(r.get(20)?),
                        ..usage_at(r, 11)?
                    },
                    dropped_unknown: r.get::<_, Option<i64>>(19)?.is_none(),
                    confidence: r.get(16)?,
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
        // Stored per outcome only (a sample's share of a lost call is not known).
        unreported: 0,
        // Stored per outcome only (a candidate does not carry its thinking tokens).
        thinking: 0,
        thinking_uncounted: 0,
        dropped: 0,
    })
}
