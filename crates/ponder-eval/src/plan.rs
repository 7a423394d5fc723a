//! Compute-optimal allocation (Snell et al. 2024): bin problems by difficulty, measured by
//! how much the first few ("probe") samples agree, and pick per bin the strategy and
//! budget that a stored run found best, under a total compute budget. The result is a
//! [`Policy`] file that strategy `auto` (`ponder_core::strategy::Auto`) applies at answer time:
//! draw the probe samples, look up the bin, then spend its budget (reusing the probes).
//!
//! Costs are computed tokens (prompt computed + generated) per unit, as if each strategy
//! had run alone ([`RunData::standalone`]: one full prompt prefill per unit). For a
//! strategy that draws samples of the same request (`sc`, `bon`, ...), the probes are its
//! first samples and cost nothing extra when its budget is at least the probe count; for
//! any other strategy the probes are paid on top. Accuracy and cost are measured on the
//! run the policy is fitted on (in-sample): check it with `ponder eval --strategy auto`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ponder_core::strategy::StrategySpec;
use serde::Serialize;

use crate::analysis::{Config, RunData};
use crate::store::{OutcomeRow, SampleRow};
use crate::Error;

pub use ponder_core::strategy::{agreement, Fitted, Policy, PolicyBin};

/// Probe samples per problem by default.
pub const DEFAULT_PROBE: usize = 4;

/// Reads and checks a policy file.
pub fn load_policy(path: &Path) -> Result<Policy, Error> {
    let bad = |reason: String| Error::Policy { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let p: Policy = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    p.validate().map_err(bad)?;
    Ok(p)
}

/// The policy a run stored inline.
pub fn policy_from_value(v: &serde_json::Value) -> Result<Policy, Error> {
    let bad = |reason: String| Error::Policy { path: "(stored with the run)".into(), reason };
    let p: Policy = serde_json::from_value(v.clone()).map_err(|e| bad(e.to_string()))?;
    p.validate().map_err(bad)?;
    Ok(p)
}

/// What a stored configuration name is capable of, by its spec (false for a name this
/// ponder no longer reads).
fn capable(c: &Config, f: impl Fn(&StrategySpec) -> bool) -> bool {
    StrategySpec::parse(&c.strategy, Some(c.budget)).is_ok_and(|s| f(&s))
}

/// How to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    pub probe: usize,
    /// Bins with fewer units are merged into a neighbour.
    pub min_bin_units: usize,
    /// Cheapest allocation reaching this accuracy; default: the best single strategy's.
    pub target_accuracy: Option<f64>,
    /// Or: the most accurate allocation within this many tokens per unit.
    pub max_tokens_per_problem: Option<f64>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self { probe: DEFAULT_PROBE, min_bin_units: 5, target_accuracy: None, max_tokens_per_problem: None }
    }
}

/// One point of the accuracy/cost frontier of allocations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrontierPoint {
    pub accuracy: f64,
    pub tokens_per_unit: f64,
    /// Per bin, the chosen configuration.
    pub choice: Vec<String>,
}

/// A fitted policy with the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub policy: Policy,
    /// The configuration the probes were read from.
    pub probe_source: String,
    /// Every single configuration: (name, accuracy, tokens per unit).
    pub singles: Vec<(String, f64, f64)>,
    pub frontier: Vec<FrontierPoint>,
}

/// Per (problem, seed) unit: correctness and cost of each configuration.
struct UnitData {
    agree: usize,
    probe_tokens: f64,
    /// Per configuration: (correct, tokens).
    results: Vec<(bool, f64)>,
}

/// Fits a policy on a stored run.
pub fn fit(run: &RunData, opts: &PlanOptions) -> Result<Plan, Error> {
    let p = opts.probe;
    let lens = run.prompt_lengths();
    let tokens = |o: &OutcomeRow| run.standalone(o, &lens).computed_tokens() as f64;
    if p == 0 {
        return Err(Error::Insufficient("--probe must be at least 1".into()));
    }
    let configs: Vec<Config> = run.configs().into_iter().filter(|c| c.strategy != "auto").collect();
    // The probe source: a sampling strategy whose units all drew at least `p` samples.
    let by_unit: HashMap<(&str, &str, usize, u64), &OutcomeRow> = run
        .outcomes
        .iter()
        .map(|o| ((o.key.problem_id.as_str(), o.key.strategy.as_str(), o.key.budget, o.key.seed), o))
        .collect();
    let source = configs
        .iter()
        .filter(|c| capable(c, |s| s.config().probe_source()) && c.budget >= p)
        .find(|c| run.outcomes.iter().filter(|o| o.key.strategy == c.strategy && o.key.budget == c.budget).all(|o| o.n_samples >= p))
        .cloned()
        .ok_or_else(|| {
            Error::Insufficient(format!(
                "plan needs a run with {} at a budget of at least the probe count ({p}); this run has: {}",
                StrategySpec::all().iter().filter(|s| s.config().probe_source()).map(StrategySpec::name).collect::<Vec<_>>().join(", "),
                configs.iter().map(Config::to_string).collect::<Vec<_>>().join(", ")
            ))
        })?;
    let mut probe_samples: HashMap<(&str, u64), Vec<&SampleRow>> = HashMap::new();
    for s in run.samples.iter().filter(|s| s.key.strategy == source.strategy && s.key.budget == source.budget && s.index < p) {
        probe_samples.entry((s.key.problem_id.as_str(), s.key.seed)).or_default().push(s);
    }
    // Units: (problem, seed) pairs of the source that every configuration has too.
    let mut units: Vec<UnitData> = Vec::new();
    let mut kept: Vec<&Config> = configs.iter().collect();
    let source_units: Vec<&OutcomeRow> =
        run.outcomes.iter().filter(|o| o.key.strategy == source.strategy && o.key.budget == source.budget).collect();
    // A configuration is usable only if it covers every source unit.
    kept.retain(|c| {
        source_units.iter().all(|u| by_unit.contains_key(&(u.key.problem_id.as_str(), c.strategy.as_str(), c.budget, u.key.seed)))
    });
    for u in &source_units {
        let probes = probe_samples.get(&(u.key.problem_id.as_str(), u.key.seed)).cloned().unwrap_or_default();
        let agree = agreement(probes.iter().map(|s| s.answer_key.as_deref()));
        let probe_tokens =
            run.standalone(u, &lens).prompt_computed as f64 + probes.iter().map(|s| s.usage.completion as f64).sum::<f64>();
        let results = kept
            .iter()
            .map(|c| {
                let o = by_unit[&(u.key.problem_id.as_str(), c.strategy.as_str(), c.budget, u.key.seed)];
                (o.correct, tokens(o))
            })
            .collect();
        units.push(UnitData { agree, probe_tokens, results });
    }
    if units.is_empty() || kept.is_empty() {
        return Err(Error::Insufficient("the run has no complete units to plan from".into()));
    }
    let n = units.len() as f64;
    let auto_cost = |u: &UnitData, ci: usize| {
        let c = kept[ci];
        let t = u.results[ci].1;
        if capable(c, StrategySpec::reuses_probes) {
            t.max(u.probe_tokens)
        } else {
            t + u.probe_tokens
        }
    };

    // Bins: one per agreement level, then merge small ones into their smaller neighbour.
    let mut bins: Vec<(usize, usize, usize)> = (0..=p).map(|a| (a, a, units.iter().filter(|u| u.agree == a).count())).collect();
    loop {
        if bins.len() <= 1 {
            break;
        }
        let (i, _) = bins.iter().enumerate().min_by_key(|(_, b)| b.2).expect("bins is not empty");
        if bins[i].2 >= opts.min_bin_units {
            break;
        }
        let j = if i == 0 {
            1
        } else if i == bins.len() - 1 || bins[i - 1].2 <= bins[i + 1].2 {
            i - 1
        } else {
            i + 1
        };
        let (lo, hi) = (i.min(j), i.max(j));
        bins[lo] = (bins[lo].0, bins[hi].1, bins[lo].2 + bins[hi].2);
        bins.remove(hi);
    }
    let bin_of = |a: usize| bins.iter().position(|b| (b.0..=b.1).contains(&a)).expect("bins cover 0..=p");
    // Per bin and configuration: (correct count, total tokens).
    let mut table = vec![vec![(0usize, 0.0f64); kept.len()]; bins.len()];
    for u in &units {
        let b = bin_of(u.agree);
        for (ci, cell) in table[b].iter_mut().enumerate() {
            cell.0 += usize::from(u.results[ci].0);
            cell.1 += auto_cost(u, ci);
        }
    }

    // Single configurations (no probing), the baseline.
    let singles: Vec<(String, usize, f64)> = (0..kept.len())
        .map(|ci| {
            let correct = units.iter().filter(|u| u.results[ci].0).count();
            let cost = units.iter().map(|u| u.results[ci].1).sum::<f64>();
            (kept[ci].to_string(), correct, cost)
        })
        .collect();
    let (bi, _) = singles
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .expect("at least one configuration");
    let baseline = &singles[bi];

    // Allocations: every choice per bin when few, else a Lagrangian sweep.
    let n_combos = (kept.len() as f64).powi(bins.len() as i32);
    let mut allocations: Vec<(usize, f64, Vec<usize>)> = Vec::new();
    if n_combos <= 200_000.0 {
        let mut choice = vec![0usize; bins.len()];
        loop {
            let correct = choice.iter().enumerate().map(|(b, &c)| table[b][c].0).sum();
            let cost = choice.iter().enumerate().map(|(b, &c)| table[b][c].1).sum();
            allocations.push((correct, cost, choice.clone()));
            let mut i = 0;
            loop {
                if i == bins.len() {
                    break;
                }
                choice[i] += 1;
                if choice[i] < kept.len() {
                    break;
                }
                choice[i] = 0;
                i += 1;
            }
            if i == bins.len() {
                break;
            }
        }
    } else {
        let max_cost = table.iter().flatten().map(|x| x.1).fold(1.0, f64::max);
        for step in 0..=400 {
            let lambda = if step == 0 { 0.0 } else { 10f64.powf(-8.0 + step as f64 * 0.02) / max_cost.max(1.0) * 1e4 };
            let choice: Vec<usize> = (0..bins.len())
                .map(|b| {
                    (0..kept.len())
                        .max_by(|&x, &y| {
                            let vx = table[b][x].0 as f64 - lambda * table[b][x].1;
                            let vy = table[b][y].0 as f64 - lambda * table[b][y].1;
                            vx.total_cmp(&vy).then(table[b][y].1.total_cmp(&table[b][x].1))
                        })
                        .expect("configurations")
                })
                .collect();
            let correct = choice.iter().enumerate().map(|(b, &c)| table[b][c].0).sum();
            let cost = choice.iter().enumerate().map(|(b, &c)| table[b][c].1).sum();
            allocations.push((correct, cost, choice));
        }
    }
    // The frontier: cheapest first, each more accurate than the last.
    allocations.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
    let mut frontier: Vec<&(usize, f64, Vec<usize>)> = Vec::new();
    for a in &allocations {
        if frontier.last().is_none_or(|f| a.0 > f.0) {
            frontier.push(a);
        }
    }
    let pick = if let Some(max) = opts.max_tokens_per_problem {
        frontier.iter().rev().find(|a| a.1 / n <= max + 1e-9).copied().ok_or_else(|| {
            Error::Insufficient(format!("no allocation spends at most {max} tokens per problem (cheapest: {:.0})", frontier[0].1 / n))
        })?
    } else {
        let target = opts.target_accuracy.map_or(baseline.1 as f64, |t| t * n - 1e-9);
        frontier.iter().find(|a| a.0 as f64 >= target).copied().unwrap_or_else(|| frontier[frontier.len() - 1])
    };
    let name_of = |choice: &[usize]| choice.iter().map(|&c| kept[c].to_string()).collect::<Vec<_>>();
    let policy_bins: Vec<PolicyBin> = bins
        .iter()
        .zip(&pick.2)
        .enumerate()
        .map(|(b, (&(lo, hi, count), &c))| PolicyBin {
            min_agree: lo,
            max_agree: hi,
            strategy: kept[c].strategy.clone(),
            budget: kept[c].budget,
            n_units: count,
            accuracy: if count > 0 { table[b][c].0 as f64 / count as f64 } else { 0.0 },
            tokens_per_unit: if count > 0 { table[b][c].1 / count as f64 } else { 0.0 },
        })
        .collect();
    let policy = Policy {
        version: 1,
        probe: p,
        bins: policy_bins,
        fitted: Some(Fitted {
            run: run.info.id,
            dataset: run.config.dataset.clone(),
            model: run.config.model.clone(),
            n_units: units.len(),
            accuracy: pick.0 as f64 / n,
            tokens_per_unit: pick.1 / n,
            baseline: baseline.0.clone(),
            baseline_accuracy: baseline.1 as f64 / n,
            baseline_tokens_per_unit: baseline.2 / n,
            savings: if baseline.2 > 0.0 { 1.0 - pick.1 / baseline.2 } else { 0.0 },
        }),
    };
    Ok(Plan {
        policy,
        probe_source: source.to_string(),
        singles: singles.iter().map(|(name, c, t)| (name.clone(), *c as f64 / n, t / n)).collect(),
        frontier: frontier
            .iter()
            .map(|a| FrontierPoint { accuracy: a.0 as f64 / n, tokens_per_unit: a.1 / n, choice: name_of(&a.2) })
            .collect(),
    })
}

/// Counts units per configuration; used to explain which configurations a plan could use.
pub fn coverage(run: &RunData) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in &run.outcomes {
        *m.entry(format!("{}@{}", o.key.strategy, o.key.budget)).or_default() += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(lo: usize, hi: usize, s: &str, b: usize) -> PolicyBin {
        PolicyBin { min_agree: lo, max_agree: hi, strategy: s.into(), budget: b, n_units: 0, accuracy: 0.0, tokens_per_unit: 0.0 }
    }

    #[test]
    fn policies_must_cover_every_agreement_level() {
        let good = Policy { version: 1, probe: 4, bins: vec![bin(0, 2, "sc", 16), bin(3, 4, "single", 1)], fitted: None };
        good.validate().unwrap();
        assert_eq!(good.bin_for(1).strategy, "sc");
        assert_eq!(good.bin_for(4).strategy, "single");
        assert_eq!(good.bin_for(9).strategy, "single");
        let gap = Policy { bins: vec![bin(0, 1, "sc", 16), bin(3, 4, "single", 1)], ..good.clone() };
        assert!(gap.validate().unwrap_err().contains("cover"));
        let short = Policy { bins: vec![bin(0, 3, "sc", 16)], ..good.clone() };
        assert!(short.validate().is_err());
        let auto = Policy { bins: vec![bin(0, 4, "auto", 16)], ..good.clone() };
        assert!(auto.validate().is_err());
        let zero = Policy { probe: 0, bins: vec![bin(0, 0, "sc", 1)], ..good };
        assert!(zero.validate().is_err());
    }

    /// Issue 13: `plan` is generic over the specs a run stored, so a layered stack is one
    /// more configuration. 20 problems: on 10 the four probe samples of `sc@4` agree and its
    /// answer is right; on the other 10 they split 2-1-1, `sc@4` is wrong and revising its
    /// answer once is right, for twice the tokens. The plan must revise exactly there.
    #[test]
    fn plan_picks_a_revision_stack_where_the_probes_disagree() {
        use crate::store::{OutcomeRow, ProblemRow, RunInfo, SampleRow, UnitKey};
        use ponder_core::Usage;

        let revise = StrategySpec::parse(r#"revise@1{ base = "sc@4" }"#, None).unwrap();
        let (rev_label, rev_budget) = (revise.label(), revise.budget());
        let key = |i: usize, strategy: &str, budget: usize| UnitKey { problem_id: format!("p{i}"), strategy: strategy.into(), budget, seed: 0 };
        let usage = |completion: u64| Usage { prompt_computed: 10, completion, ..Usage::default() };
        let outcome = |key: UnitKey, correct: bool, n_samples: usize, completion: u64| OutcomeRow {
            key, answer: Some("1".into()), correct, abstained: false, stopped_early: false, n_samples, n_failed: 0, chosen: Some(0),
            usage: usage(completion), confidence: None, dropped_unknown: false,
        };
        let (mut outcomes, mut samples, mut problems) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..20 {
            let easy = i < 10;
            problems.push(ProblemRow { idx: i, id: format!("p{i}"), level: None, gold: "1".into(), question: None, prompt: None });
            outcomes.push(outcome(key(i, "sc", 4), easy, 4, 400));
            outcomes.push(outcome(key(i, &rev_label, rev_budget), true, 5, 800));
            let answers = if easy { ["1", "1", "1", "1"] } else { ["2", "2", "3", "1"] };
            for (index, a) in answers.iter().enumerate() {
                samples.push(SampleRow {
                    key: key(i, "sc", 4), index, text: a.to_string(), answer: Some(a.to_string()), answer_key: Some(a.to_string()),
                    correct: *a == "1", score: None, mean_logprob: None, finish: "eos".into(), usage: usage(100),
                });
            }
        }
        let config: crate::runner::RunConfig = serde_json::from_value(serde_json::json!({
            "dataset": "test", "dataset_seed": 0, "limit": 20, "skip_bad_rows": false, "strategies": ["sc", rev_label],
            "budgets": [], "seeds": [0], "scorer": "mean-logprob", "model": "m", "ctx": 4096,
            "sampling": ponder_core::SamplingParams::default(), "concurrency": 1, "wrong_cost": 0.0, "abstain_cost": 0.0,
            "dataset_fingerprint": "", "n_problems": 20, "ponder_version": "test",
        }))
        .unwrap();
        let info = RunInfo {
            id: 1, created: String::new(), updated: String::new(), config: String::new(), model: "m".into(), dataset: "test".into(),
            status: "complete".into(), n_params: 0,
        };
        let run = RunData { info, config, problems, outcomes, samples };
        let plan = fit(&run, &PlanOptions { probe: 4, min_bin_units: 1, target_accuracy: Some(1.0), max_tokens_per_problem: None }).unwrap();
        assert_eq!(plan.probe_source, "sc@4");
        assert_eq!(plan.policy.bin_for(4).strategy, "sc", "{:?}", plan.policy);
        assert_eq!(plan.policy.bin_for(2).strategy, rev_label, "{:?}", plan.policy);
        // Spending only where it pays: all right, for less than revising everything costs.
        let all_revise = plan.singles.iter().find(|s| s.0.starts_with("revise")).expect("revise is a single configuration");
        let chosen = plan.frontier.iter().find(|f| f.accuracy >= 1.0).expect("a point at full accuracy");
        assert!(chosen.tokens_per_unit < all_revise.2, "{chosen:?} vs {all_revise:?}");
    }

    #[test]
    fn agreement_is_the_largest_class() {
        assert_eq!(agreement([Some("1"), Some("2"), Some("1"), None]), 2);
        assert_eq!(agreement([None, None]), 0);
        assert_eq!(agreement(Vec::<Option<&str>>::new()), 0);
    }
}
