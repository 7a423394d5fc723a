//! A stored run, loaded and summarised: accuracy and cost per strategy and budget (over
//! seeds), per seed, per difficulty level, and the scaling curves of its sample pools.
//! Everything the report and `ponder plan` show comes from here.
//!
//! Costs compare strategies as if each had run alone. One run evaluates several
//! strategies on the same engine, so a strategy that runs after another on the same
//! problem finds the prompt in the prefix cache and computes one token where the first
//! computed the whole prompt. [`RunData::standalone`] therefore counts at least one full
//! prefill of the prompt per unit (the prompt's length is read off the stored counts:
//! every sample of a request counts the prompt once, computed or reused), plus everything
//! generated; sharing *within* a unit (N samples on one prefill) stays credited. The raw
//! counts stay in `raw_usage`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ponder_core::Usage;
use serde::Serialize;

use crate::cost::{CostSummary, Prices};
use crate::curves::{self, CurveOptions, CurvePoint, Estimate, SampleView};
use crate::runner::RunConfig;
use crate::store::{OutcomeRow, ProblemRow, RunInfo, SampleRow, Store, UnitRecord};
use crate::Error;

/// What accuracy needs of one unit, however it was obtained (stored, or just run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitCounts {
    pub correct: bool,
    /// No answer given (verify-resample: no sample passed its verifier).
    pub abstained: bool,
    pub n_samples: usize,
    pub usage: Usage,
    /// `usage.dropped` was not stored (a unit stored before schema version 5).
    pub dropped_unknown: bool,
}

impl From<&OutcomeRow> for UnitCounts {
    fn from(o: &OutcomeRow) -> UnitCounts {
        UnitCounts { correct: o.correct, abstained: o.abstained, n_samples: o.n_samples, usage: o.usage, dropped_unknown: o.dropped_unknown }
    }
}

impl From<&UnitRecord> for UnitCounts {
    fn from(r: &UnitRecord) -> UnitCounts {
        let o = &r.outcome;
        UnitCounts { correct: r.correct, abstained: o.abstained, n_samples: o.candidates.len(), usage: o.usage, dropped_unknown: false }
    }
}

/// Correct, wrong and abstained units, samples and usage over a set of units: the one
/// accuracy computation behind `ponder eval`'s table and JSON and every [`GroupSummary`].
/// An abstention that a checker still calls correct counts as correct, so
/// `n = n_correct + n_wrong + n_abstained`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub n: usize,
    pub n_correct: usize,
    /// Answered and wrong.
    pub n_wrong: usize,
    pub n_abstained: usize,
    /// Samples drawn, summed over units.
    pub n_samples: usize,
    /// Usage as stored, summed over units.
    pub usage: Usage,
    /// Units whose dropped tokens were not stored: `usage.dropped` is then a lower bound.
    pub n_dropped_unknown: usize,
}

impl Counts {
    pub fn of(units: impl IntoIterator<Item = UnitCounts>) -> Counts {
        let mut c = Counts::default();
        for u in units {
            c.n += 1;
            c.n_samples += u.n_samples;
            c.usage += u.usage;
            c.n_dropped_unknown += usize::from(u.dropped_unknown);
            if u.correct {
                c.n_correct += 1;
            } else if u.abstained {
                c.n_abstained += 1;
            } else {
                c.n_wrong += 1;
            }
        }
        c
    }

    /// Correct units over all units; 0 without units.
    pub fn accuracy(&self) -> f64 {
        self.n_correct as f64 / self.n.max(1) as f64
    }

    /// Mean samples drawn per unit; 0 without units.
    pub fn mean_samples(&self) -> f64 {
        self.n_samples as f64 / self.n.max(1) as f64
    }
}

/// A run with everything stored for it.
#[derive(Debug, Clone)]
pub struct RunData {
    pub info: RunInfo,
    pub config: RunConfig,
    pub problems: Vec<ProblemRow>,
    pub outcomes: Vec<OutcomeRow>,
    pub samples: Vec<SampleRow>,
}

/// A (strategy, budget) pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Config {
    pub strategy: String,
    pub budget: usize,
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.strategy, self.budget)
    }
}

/// Accuracy and cost of one (strategy, budget), over all its seeds.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    pub config: Config,
    pub seeds: Vec<u64>,
    /// Units (problems × seeds) stored.
    pub n_units: usize,
    pub n_correct: usize,
    pub n_wrong: usize,
    pub n_abstained: usize,
    /// Mean correctness, with a bootstrap interval over problems.
    pub accuracy: Estimate,
    pub mean_samples: f64,
    pub stopped_early: usize,
    /// Cache-independent cost ([`RunData::standalone`]).
    pub cost: CostSummary,
    /// The counts as stored.
    pub raw_usage: Usage,
}

/// Accuracy of one (strategy, budget) on the problems of one level.
#[derive(Debug, Clone, Serialize)]
pub struct LevelSummary {
    pub config: Config,
    /// `None`: problems without a level.
    pub level: Option<u32>,
    pub n_units: usize,
    pub accuracy: Estimate,
}

/// Curves from the samples of one (strategy, budget), pooled over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct CurveSet {
    pub source: Config,
    /// Samples per problem (the smallest pool; curves run to this k).
    pub n: usize,
    pub points: Vec<CurvePoint>,
    /// Estimated computed tokens per problem at each point's k: one prefill of the prompt
    /// plus k mean generated tokens per sample.
    pub tokens_at_k: Vec<f64>,
    /// Coverage (unbiased pass@k) at every k = 1..=n.
    pub coverage: Vec<crate::coverage::CoverageAt>,
    /// Large Language Monkeys' law log c(k) ≈ a·k^b fitted to `coverage`.
    pub law: Option<crate::coverage::CoverageLaw>,
}

impl RunData {
    /// The run limited to problems `from..to` of its own order (a fit on one half, held-out
    /// checks on the other). Summaries, curves and plans of the result see only those.
    pub fn slice(&self, from: usize, to: usize) -> Result<RunData, Error> {
        let keep: std::collections::HashSet<&str> =
            self.problems.iter().filter(|p| (from..to).contains(&p.idx)).map(|p| p.id.as_str()).collect();
        if keep.is_empty() {
            return Err(Error::Insufficient(format!(
                "run {} has no problems {from}..{to} (it has {})",
                self.info.id,
                self.problems.len()
            )));
        }
        Ok(self.only(&keep))
    }

    /// The run limited to the problems with these ids.
    pub fn only(&self, ids: &std::collections::HashSet<&str>) -> RunData {
        RunData {
            info: self.info.clone(),
            config: self.config.clone(),
            problems: self.problems.iter().filter(|p| ids.contains(p.id.as_str())).cloned().collect(),
            outcomes: self.outcomes.iter().filter(|o| ids.contains(o.key.problem_id.as_str())).cloned().collect(),
            samples: self.samples.iter().filter(|s| ids.contains(s.key.problem_id.as_str())).cloned().collect(),
        }
    }

    pub fn load(store: &Store, id: i64) -> Result<RunData, Error> {
        let info = store.run(id)?;
        let config = RunConfig::from_json(id, &info.config)?;
        Ok(RunData { problems: store.problems(id)?, outcomes: store.outcomes(id)?, samples: store.samples(id)?, info, config })
    }

    /// Prompt tokens of one prefill of each problem's prompt: the smallest (prompt
    /// computed + reused) per sample over its units.
    pub fn prompt_lengths(&self) -> HashMap<&str, u64> {
        let mut out: HashMap<&str, u64> = HashMap::new();
        for o in self.outcomes.iter().filter(|o| o.n_samples > 0) {
            let per = (o.usage.prompt_computed + o.usage.prompt_reused) / o.n_samples as u64;
            let e = out.entry(o.key.problem_id.as_str()).or_insert(per);
            *e = (*e).min(per);
        }
        out
    }

    /// A unit's usage as if it had run alone: at least one full prefill of its prompt is
    /// counted as computed (moved from reused), the rest as stored.
    pub fn standalone(&self, o: &OutcomeRow, prompt_len: &HashMap<&str, u64>) -> Usage {
        let len = prompt_len.get(o.key.problem_id.as_str()).copied().unwrap_or(0);
        let total = o.usage.prompt_computed + o.usage.prompt_reused;
        let computed = o.usage.prompt_computed.max(len.min(total));
        Usage { prompt_computed: computed, prompt_reused: total - computed, ..o.usage }
    }

    pub fn level_of(&self) -> HashMap<&str, Option<u32>> {
        self.problems.iter().map(|p| (p.id.as_str(), p.level)).collect()
    }

    /// Every (strategy, budget) with stored outcomes, in the order the configuration
    /// names the strategies, then by budget.
    pub fn configs(&self) -> Vec<Config> {
        let set: BTreeSet<Config> =
            self.outcomes.iter().map(|o| Config { strategy: o.key.strategy.clone(), budget: o.key.budget }).collect();
        let rank = |s: &str| self.config.strategies.iter().position(|x| x == s).unwrap_or(usize::MAX);
        let mut v: Vec<Config> = set.into_iter().collect();
        v.sort_by(|a, b| rank(&a.strategy).cmp(&rank(&b.strategy)).then(a.strategy.cmp(&b.strategy)).then(a.budget.cmp(&b.budget)));
        v
    }

    fn outcomes_of<'a>(&'a self, c: &'a Config) -> impl Iterator<Item = &'a OutcomeRow> + 'a {
        self.outcomes.iter().filter(move |o| o.key.strategy == c.strategy && o.key.budget == c.budget)
    }

    /// Summary of one (strategy, budget) over the outcomes `keep` lets through.
    fn summarise(&self, c: &Config, prices: Option<&Prices>, keep: impl Fn(&OutcomeRow) -> bool, salt: u64) -> Option<GroupSummary> {
        let rows: Vec<&OutcomeRow> = self.outcomes_of(c).filter(|o| keep(o)).collect();
        if rows.is_empty() {
            return None;
        }
        let counts = Counts::of(rows.iter().map(|&o| UnitCounts::from(o)));
        // Per problem: mean correctness over its seeds; bootstrap over problems.
        let mut per_problem: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for o in &rows {
            let e = per_problem.entry(o.key.problem_id.as_str()).or_default();
            e.0 += f64::from(u8::from(o.correct));
            e.1 += 1;
        }
        let values: Vec<f64> = per_problem.values().map(|(s, n)| s / *n as f64).collect();
        let seeds: BTreeSet<u64> = rows.iter().map(|o| o.key.seed).collect();
        let lens = self.prompt_lengths();
        let usages: Vec<Usage> = rows.iter().map(|o| self.standalone(o, &lens)).collect();
        Some(GroupSummary {
            config: c.clone(),
            seeds: seeds.into_iter().collect(),
            n_units: counts.n,
            n_correct: counts.n_correct,
            n_wrong: counts.n_wrong,
            n_abstained: counts.n_abstained,
            accuracy: curves::bootstrap(&values, 1000, 0.95, salt),
            mean_samples: counts.mean_samples(),
            stopped_early: rows.iter().filter(|o| o.stopped_early).count(),
            cost: CostSummary::new(self.info.n_params, prices, &usages, counts.n_correct),
            raw_usage: counts.usage,
        })
    }

    /// Accuracy and cost per (strategy, budget), over seeds.
    pub fn summaries(&self, prices: Option<&Prices>) -> Vec<GroupSummary> {
        self.configs().iter().enumerate().filter_map(|(i, c)| self.summarise(c, prices, |_| true, i as u64)).collect()
    }

    /// The same for one seed.
    pub fn summary_for_seed(&self, c: &Config, seed: u64, prices: Option<&Prices>) -> Option<GroupSummary> {
        self.summarise(c, prices, |o| o.key.seed == seed, seed)
    }

    /// Accuracy per (strategy, budget) and level.
    pub fn levels(&self) -> Vec<LevelSummary> {
        let level_of = self.level_of();
        let mut levels: BTreeSet<Option<u32>> = self.problems.iter().map(|p| p.level).collect();
        if levels.is_empty() {
            levels.insert(None);
        }
        let mut out = Vec::new();
        for (i, c) in self.configs().iter().enumerate() {
            for level in &levels {
                let rows: Vec<&OutcomeRow> =
                    self.outcomes_of(c).filter(|o| level_of.get(o.key.problem_id.as_str()).copied().flatten() == *level).collect();
                if rows.is_empty() {
                    continue;
                }
                let values: Vec<f64> = rows.iter().map(|o| f64::from(u8::from(o.correct))).collect();
                out.push(LevelSummary {
                    config: c.clone(),
                    level: *level,
                    n_units: rows.len(),
                    accuracy: curves::bootstrap(&values, 1000, 0.95, i as u64 ^ u64::from(level.unwrap_or(0)) << 16),
                });
            }
        }
        out
    }

    /// Each problem's samples of `c`, pooled over seeds (indices of later seeds shifted so
    /// they stay distinct), in problem order. Problems without samples are left out.
    pub fn sample_pool(&self, c: &Config) -> Vec<Vec<SampleView>> {
        let mut by_problem: HashMap<&str, Vec<SampleView>> = HashMap::new();
        let seeds: Vec<u64> = self.config.seeds.clone();
        let stride = self.samples.iter().map(|s| s.index + 1).max().unwrap_or(1);
        for s in self.samples.iter().filter(|s| s.key.strategy == c.strategy && s.key.budget == c.budget) {
            let seed_pos = seeds.iter().position(|&x| x == s.key.seed).unwrap_or(seeds.len());
            by_problem.entry(s.key.problem_id.as_str()).or_default().push(SampleView {
                index: seed_pos * stride + s.index,
                key: s.answer_key.clone(),
                correct: s.correct,
                score: s.score,
            });
        }
        self.problems.iter().filter_map(|p| by_problem.remove(p.id.as_str())).collect()
    }

    /// Curves of every (strategy, budget) whose units drew at least two samples per
    /// problem; search and early-stopping strategies are reported at their budgets instead.
    pub fn curve_sets(&self, opts: &CurveOptions) -> Vec<CurveSet> {
        let mut out = Vec::new();
        for c in self.configs() {
            let pool = self.sample_pool(&c);
            // Curves need a full pool for every problem with outcomes.
            let n_problems = self.outcomes_of(&c).map(|o| o.key.problem_id.as_str()).collect::<BTreeSet<_>>().len();
            let full = self.outcomes_of(&c).all(|o| o.n_samples == c.budget && !o.stopped_early);
            let n = pool.iter().map(Vec::len).min().unwrap_or(0);
            if !full || n < 2 || pool.len() < n_problems {
                continue;
            }
            let rows: Vec<&OutcomeRow> = self.outcomes_of(&c).collect();
            let lens = self.prompt_lengths();
            let prompt = rows.iter().map(|o| self.standalone(o, &lens).prompt_computed as f64).sum::<f64>() / rows.len() as f64;
            let gen: Vec<u64> = self
                .samples
                .iter()
                .filter(|s| s.key.strategy == c.strategy && s.key.budget == c.budget)
                .map(|s| s.usage.completion)
                .collect();
            let per_sample = gen.iter().sum::<u64>() as f64 / gen.len().max(1) as f64;
            let points = curves::curves(&pool, opts);
            let tokens_at_k = points.iter().map(|p| prompt + p.k as f64 * per_sample).collect();
            let counts: Vec<(usize, usize)> = pool.iter().map(|p| (p.len(), p.iter().filter(|s| s.correct).count())).collect();
            let coverage = crate::coverage::coverage_curve(&counts, n, opts.n_boot, opts.level, opts.seed);
            let law = crate::coverage::fit(&coverage);
            out.push(CurveSet { source: c, n, points, tokens_at_k, coverage, law });
        }
        out
    }

    /// Units expected by the configuration that are not stored (0 for a complete run).
    pub fn n_missing(&self, expected_units: usize) -> usize {
        expected_units.saturating_sub(self.outcomes.len())
    }
}
