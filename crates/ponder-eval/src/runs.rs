//! A run's life before and around the [`runner`](crate::runner): its problems (first
//! `limit` of a dataset, ids unique), the plan of its units (one strategy per distinct
//! strategy, budget and seed; the units not yet stored), and reopening a stored run to
//! resume it (its configuration, the arguments it was started with, and a check that the
//! dataset still gives the same problems).

use std::collections::{BTreeSet, HashSet};

use ponder_core::strategy::{Strategy, StrategySpec};
use serde_json::{Map, Value};
use ponder_core::{Message, Problem, SamplingParams};

use crate::runner::{Job, RunConfig};
use crate::store::{RunInfo, Store, UnitKey};
use crate::tasks::jsonl::BadRow;
use crate::{fingerprint, load_with, Dataset, Error, LoadOptions};

/// One (strategy, budget, seed): what a row of `ponder eval`'s table shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Group {
    pub strategy: String,
    pub budget: usize,
    pub seed: u64,
}

impl Group {
    pub fn of(k: &UnitKey) -> Group {
        Group { strategy: k.strategy.clone(), budget: k.budget, seed: k.seed }
    }
}

/// A run's problems: the first `limit` of its dataset.
pub struct Problems {
    pub dataset: Dataset,
    pub problems: Vec<Problem>,
    /// Rows of a `jsonl:` file left out (`skip_bad_rows`), for the caller to report.
    pub skipped: Vec<BadRow>,
}

/// The first `limit` problems of `spec`; two problems with one id are an error (units are
/// keyed by it).
pub fn load_problems(spec: &str, seed: u64, options: LoadOptions, limit: usize) -> Result<Problems, Error> {
    let loaded = load_with(spec, seed, options)?;
    let problems: Vec<Problem> = loaded.dataset.problems.iter().take(limit).cloned().collect();
    let mut seen = BTreeSet::new();
    if let Some(p) = problems.iter().find(|p| !seen.insert(p.id.as_str())) {
        return Err(Error::DuplicateId { spec: spec.to_string(), id: p.id.clone() });
    }
    Ok(Problems { dataset: loaded.dataset, problems, skipped: loaded.skipped })
}

/// A stored run, reopened to resume.
pub struct Reopened {
    pub info: RunInfo,
    pub config: RunConfig,
    /// The `ponder eval` arguments it was started with (without the program and
    /// subcommand names), for the binary to parse again.
    pub argv: Vec<String>,
}

/// Run `id` of `store`, with its configuration and stored arguments.
pub fn reopen(store: &Store, id: i64) -> Result<Reopened, Error> {
    let info = store.run(id)?;
    let config = RunConfig::from_json(id, &info.config)?;
    let argv: Vec<String> = config
        .extra
        .get("argv")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .ok_or(Error::NoStoredArgs { id })?;
    Ok(Reopened { info, config, argv })
}

/// The problems of run `id` as its dataset gives them now; an error when they are not the
/// ones it was started on (the file or the generator changed).
pub fn load_resumed(id: i64, config: &RunConfig, options: LoadOptions) -> Result<Problems, Error> {
    let options = LoadOptions { skip_bad_rows: config.skip_bad_rows, ..options };
    let loaded = load_problems(&config.dataset, config.dataset_seed, options, config.limit)?;
    if fingerprint(&loaded.problems) != config.dataset_fingerprint {
        return Err(Error::DatasetChanged { id, dataset: config.dataset.clone() });
    }
    Ok(loaded)
}

/// The strategies of a run: one per distinct (strategy, budget, seed) of its
/// configuration; a strategy with a fixed budget (`single`) runs once per seed.
pub struct Plan {
    pub groups: Vec<(Group, Box<dyn Strategy>)>,
}

impl Plan {
    /// `sampling` is the run's, stop strings of its prompt template included; each seed
    /// of `config.seeds` replaces its seed. Each strategy of `config.strategies` is a
    /// shorthand spec whose budget is each of `config.budgets` unless it says `@N`;
    /// `defaults` fill the fields it leaves out ([`StrategySpec::parse_with`]: the CLI's
    /// search flags, `auto`'s policy). A configuration is keyed by the label of its spec as
    /// written (the defaults are the same for the whole run, and runs stored before specs
    /// existed keep their keys: `pf`, not `pf` with every flag spelled out) and its budget,
    /// so one given twice runs once.
    pub fn new(config: &RunConfig, sampling: &SamplingParams, defaults: &Map<String, Value>) -> Result<Plan, Error> {
        let mut groups: Vec<(Group, Box<dyn Strategy>)> = Vec::new();
        for &seed in &config.seeds {
            let sampling = SamplingParams { seed, ..sampling.clone() };
            // No budgets: each spec's own.
            let budgets: Vec<Option<usize>> =
                if config.budgets.is_empty() { vec![None] } else { config.budgets.iter().copied().map(Some).collect() };
            for name in &config.strategies {
                for &budget in &budgets {
                    let strategy_err = |e| Error::Strategy(Box::new(e));
                    let spec = StrategySpec::parse_with(name, budget, defaults).map_err(strategy_err)?;
                    let policy: Map<String, Value> = defaults.iter().filter(|(k, _)| *k == "policy").map(|(k, v)| (k.clone(), v.clone())).collect();
                    let written = StrategySpec::parse_with(name, budget, &policy).map_err(strategy_err)?;
                    let g = Group { strategy: written.label(), budget: spec.budget(), seed };
                    if !groups.iter().any(|(x, _)| *x == g) {
                        let s = spec.build(sampling.clone()).map_err(|e| Error::Strategy(Box::new(e)))?;
                        groups.push((g, s));
                    }
                }
            }
        }
        Ok(Plan { groups })
    }

    /// Every unit of the plan over `problems` (each put to the model as `rendered`) that
    /// is not in `stored`, group by group in problem order.
    pub fn jobs<'a>(&'a self, problems: &'a [Problem], rendered: &'a [Vec<Message>], stored: &HashSet<UnitKey>) -> Vec<Job<'a>> {
        let mut jobs = Vec::new();
        for (g, s) in &self.groups {
            for (p, messages) in problems.iter().zip(rendered) {
                let key = UnitKey { problem_id: p.id.clone(), strategy: g.strategy.clone(), budget: g.budget, seed: g.seed };
                if !stored.contains(&key) {
                    jobs.push(Job { key, problem: p, messages, strategy: s.as_ref() });
                }
            }
        }
        jobs
    }

    /// The plan's units over `n_problems` problems, stored or not.
    pub fn n_units(&self, n_problems: usize) -> usize {
        self.groups.len() * n_problems
    }

    pub fn group_keys(&self) -> Vec<Group> {
        self.groups.iter().map(|(g, _)| g.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(strategies: &[&str], budgets: &[usize], seeds: &[u64]) -> RunConfig {
        RunConfig {
            dataset: "arith:1:3".into(),
            dataset_seed: 0,
            limit: 3,
            skip_bad_rows: false,
            strategies: strategies.iter().map(|s| s.to_string()).collect(),
            budgets: budgets.to_vec(),
            seeds: seeds.to_vec(),
            scorer: "mean-logprob".into(),
            model: "m".into(),
            ctx: 4096,
            sampling: SamplingParams::default(),
            concurrency: 1,
            wrong_cost: 1.0,
            abstain_cost: 0.0,
            prompt: None,
            policy: None,
            dataset_fingerprint: String::new(),
            n_problems: 3,
            ponder_version: "test".into(),
            extra: Default::default(),
        }
    }

    #[test]
    fn fixed_budgets_run_once_and_stored_units_are_skipped() {
        let plan = Plan::new(&config(&["single", "sc", "sc@4"], &[2, 4], &[7, 8]), &SamplingParams::default(), &Map::new()).unwrap();
        let names: Vec<String> = plan.groups.iter().map(|(g, _)| format!("{}@{} s{}", g.strategy, g.budget, g.seed)).collect();
        assert_eq!(names, ["single@1 s7", "sc@2 s7", "sc@4 s7", "single@1 s8", "sc@2 s8", "sc@4 s8"]);
        let problems = load_problems("arith:1:3", 0, LoadOptions::default(), 3).unwrap().problems;
        let rendered: Vec<Vec<Message>> = problems.iter().map(|p| vec![Message::user(p.question.clone())]).collect();
        assert_eq!(plan.jobs(&problems, &rendered, &HashSet::new()).len(), plan.n_units(3));
        let stored: HashSet<UnitKey> = [UnitKey { problem_id: problems[1].id.clone(), strategy: "sc".into(), budget: 4, seed: 8 }].into();
        let jobs = plan.jobs(&problems, &rendered, &stored);
        assert_eq!(jobs.len(), 17);
        assert!(jobs.iter().all(|j| j.key != stored.iter().next().unwrap().clone()), "a stored unit runs again");
    }

    /// Runs stored before specs keyed `pf` with the search flags apart; they still do, and
    /// a spec's own parameters make a configuration of their own.
    #[test]
    fn issue13_units_are_keyed_by_the_spec_as_written() {
        let flags: Map<String, Value> = serde_json::from_value(serde_json::json!({"resampling": "systematic"})).unwrap();
        let c = config(&["pf", "pf{ess_threshold = 0.5}"], &[4], &[0]);
        let plan = Plan::new(&c, &SamplingParams::default(), &flags).unwrap();
        let keys: Vec<String> = plan.groups.iter().map(|(g, _)| format!("{}@{}", g.strategy, g.budget)).collect();
        assert_eq!(keys, ["pf@4", "pf{ ess_threshold = 0.5 }@4"]);
    }

    #[test]
    fn bad_plans_and_problem_sets_are_errors() {
        let none = Map::new();
        let e = Plan::new(&config(&["auto"], &[4], &[0]), &SamplingParams::default(), &none).err().unwrap();
        assert_eq!(e.to_string(), "strategy auto: policy is missing: give a policy file from `ponder plan` (--policy FILE)");
        assert!(Plan::new(&config(&["nope"], &[4], &[0]), &SamplingParams::default(), &none).is_err());
        let mut c = config(&["sc"], &[4], &[0]);
        c.dataset_fingerprint = "stale".into();
        let e = load_resumed(3, &c, LoadOptions::default()).err().unwrap();
        assert!(matches!(e, Error::DatasetChanged { id: 3, .. }), "{e}");
        c.dataset_fingerprint = fingerprint(&load_problems("arith:1:3", 0, LoadOptions::default(), 3).unwrap().problems);
        assert_eq!(load_resumed(3, &c, LoadOptions::default()).unwrap().problems.len(), 3);
    }
}
