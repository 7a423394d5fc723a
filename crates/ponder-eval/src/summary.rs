//! Per (strategy, budget, seed) of a stored run: the records and summary that
//! `ponder eval --json` writes (counted by [`Counts`], as the table is), the verifier
//! measurement of `verify-resample` on code datasets ([`verifier_report`]), and how often
//! strategies that ran on the same problems agree ([`agreement`]).

use std::collections::{BTreeSet, HashMap};

use ponder_core::answer::Equivalence;
use ponder_core::verifier::Utility;
use ponder_core::{Problem, Usage};
use serde::Serialize;

use crate::analysis::{Counts, RunData, UnitCounts};
use crate::flaws::{verifier_report, VerifierReport};
use crate::runs::Group;
use crate::store::OutcomeRow;
use crate::Kind;

/// One problem's unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub id: String,
    pub gold: String,
    pub answer: Option<String>,
    pub correct: bool,
    /// No answer given (verify-resample: no sample passed the verifier); not wrong.
    pub abstained: bool,
    /// The winner's share of the vote (voting strategies; what `abstain_below` compares).
    pub confidence: Option<f64>,
    pub n_samples: usize,
    pub usage: Usage,
}

/// One (strategy, budget, seed) of a run, with its records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub run: i64,
    pub strategy: String,
    pub budget: usize,
    pub seed: u64,
    pub n_problems: usize,
    pub n_correct: usize,
    /// Answered and wrong; `n_problems = n_correct + n_wrong + n_abstained`.
    pub n_wrong: usize,
    pub n_abstained: usize,
    pub accuracy: f64,
    pub mean_samples: f64,
    pub usage: Usage,
    /// Wall time summed over problems (they overlap when run concurrently).
    pub elapsed_s: f64,
    /// verify-resample on a code dataset: the verifier measured against the hidden tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verifier: Option<VerifierReport>,
    pub records: Vec<Record>,
}

/// The summary of each group over `problems`, from the store, in `groups` order. On a code
/// dataset (`kind`), `verify-resample` groups also measure their verifier, under the
/// run's own costs of a wrong answer and of abstaining.
pub fn summaries(data: &RunData, groups: &[Group], problems: &[Problem], kind: Kind) -> Vec<Summary> {
    let by_key: HashMap<(&str, &str, usize, u64), &OutcomeRow> = data
        .outcomes
        .iter()
        .map(|o| ((o.key.problem_id.as_str(), o.key.strategy.as_str(), o.key.budget, o.key.seed), o))
        .collect();
    let utility =
        Utility { correct: 1.0, wrong: data.config.wrong_cost, abstain: data.config.abstain_cost, per_sample: 0.0 };
    groups
        .iter()
        .map(|g| {
            let units: Vec<(&Problem, &OutcomeRow)> = problems
                .iter()
                .filter_map(|p| by_key.get(&(p.id.as_str(), g.strategy.as_str(), g.budget, g.seed)).map(|&o| (p, o)))
                .collect();
            let counts = Counts::of(units.iter().map(|&(_, o)| UnitCounts::from(o)));
            let records = units
                .into_iter()
                .map(|(p, o)| Record {
                    id: p.id.clone(),
                    gold: p.gold.clone(),
                    answer: o.answer.clone(),
                    correct: o.correct,
                    abstained: o.abstained,
                    confidence: o.confidence,
                    n_samples: o.n_samples,
                    usage: o.usage,
                })
                .collect();
            let verifier = (kind == Kind::Code && g.strategy == "verify-resample")
                .then(|| verifier_report(data, g, problems, &utility));
            Summary {
                run: data.info.id,
                strategy: g.strategy.clone(),
                budget: g.budget,
                seed: g.seed,
                n_problems: counts.n,
                n_correct: counts.n_correct,
                n_wrong: counts.n_wrong,
                n_abstained: counts.n_abstained,
                accuracy: counts.accuracy(),
                mean_samples: counts.mean_samples(),
                usage: counts.usage,
                elapsed_s: counts.usage.wall_ms as f64 / 1000.0,
                verifier,
                records,
            }
        })
        .collect()
}

/// How often two strategies gave the same answer on the problems both ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Labels: the strategy, `@budget` where a strategy ran at several budgets, ` sSEED`
    /// where the run has several seeds.
    pub a: String,
    pub b: String,
    pub n_same: usize,
    pub n_problems: usize,
    /// Where one side stopped early, whether it still reached the other's answer.
    pub early: Vec<EarlyAgreement>,
}

/// Agreement on the problems where `early` stopped before its budget and `full` did not.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyAgreement {
    pub early: String,
    pub full: String,
    pub n_stopped: usize,
    /// Samples `early` drew on those problems, on average.
    pub mean_samples: f64,
    pub n_same: usize,
}

/// Same-answer rates between strategies that ran on the same problems with the same seed
/// (at the same budget, or against `single`), in summary order; two answers agree when
/// `equivalence` says so, two abstentions agree too.
pub fn agreement(summaries: &[Summary], equivalence: &dyn Equivalence) -> Vec<Agreement> {
    let same = |x: &Record, y: &Record| match (&x.answer, &y.answer) {
        (Some(p), Some(q)) => equivalence.equivalent(p, q),
        (None, None) => true,
        _ => false,
    };
    let multi_seed = summaries.iter().map(|s| s.seed).collect::<BTreeSet<_>>().len() > 1;
    let label = |s: &Summary| {
        let mut l = s.strategy.clone();
        if summaries.iter().filter(|x| x.strategy == s.strategy && x.seed == s.seed).count() > 1 {
            l = format!("{l}@{}", s.budget);
        }
        if multi_seed {
            l = format!("{l} s{}", s.seed);
        }
        l
    };
    let mut out = Vec::new();
    for (i, a) in summaries.iter().enumerate() {
        for b in &summaries[i + 1..] {
            if a.seed != b.seed || !(a.budget == b.budget || a.strategy == "single" || b.strategy == "single") {
                continue;
            }
            let pairs: Vec<(&Record, &Record)> = a.records.iter().zip(&b.records).filter(|(x, y)| x.id == y.id).collect();
            if pairs.is_empty() {
                continue;
            }
            let mut agreement = Agreement {
                a: label(a),
                b: label(b),
                n_same: pairs.iter().filter(|(x, y)| same(x, y)).count(),
                n_problems: pairs.len(),
                early: Vec::new(),
            };
            for (early, full, flip) in [(a, b, false), (b, a, true)] {
                let drawn = |x: &Record, y: &Record| if flip { y.n_samples } else { x.n_samples };
                let stopped: Vec<&(&Record, &Record)> = pairs.iter().filter(|(x, y)| drawn(x, y) < early.budget).collect();
                if early.budget > 1 && full.mean_samples >= full.budget as f64 && !stopped.is_empty() {
                    agreement.early.push(EarlyAgreement {
                        early: label(early),
                        full: label(full),
                        n_stopped: stopped.len(),
                        mean_samples: stopped.iter().map(|(x, y)| drawn(x, y)).sum::<usize>() as f64 / stopped.len() as f64,
                        n_same: stopped.iter().filter(|(x, y)| same(x, y)).count(),
                    });
                }
            }
            out.push(agreement);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_core::answer::NumericEquivalence;

    fn record(id: &str, answer: Option<&str>, n_samples: usize) -> Record {
        Record {
            id: id.into(),
            gold: "1".into(),
            answer: answer.map(str::to_string),
            correct: answer == Some("1"),
            abstained: answer.is_none(),
            confidence: None,
            n_samples,
            usage: Usage::default(),
        }
    }

    fn summary(strategy: &str, budget: usize, records: Vec<Record>) -> Summary {
        let mean_samples = records.iter().map(|r| r.n_samples as f64).sum::<f64>() / records.len() as f64;
        Summary {
            run: 1,
            strategy: strategy.into(),
            budget,
            seed: 0,
            n_problems: records.len(),
            n_correct: 0,
            n_wrong: 0,
            n_abstained: 0,
            accuracy: 0.0,
            mean_samples,
            usage: Usage::default(),
            elapsed_s: 0.0,
            verifier: None,
            records,
        }
    }

    #[test]
    fn agreement_pairs_same_budgets_and_single_and_looks_at_early_stops() {
        let sc = summary("sc", 4, vec![record("a", Some("1"), 4), record("b", Some("2"), 4), record("c", None, 4)]);
        let asc = summary("adaptive-sc", 4, vec![record("a", Some("1.0"), 2), record("b", Some("3"), 4), record("c", None, 3)]);
        let single = summary("single", 1, vec![record("a", Some("2"), 1), record("b", Some("2"), 1), record("c", Some("1"), 1)]);
        let other = summary("sc", 8, vec![record("a", Some("1"), 8)]);
        let got = agreement(&[sc, asc, single, other], &NumericEquivalence);
        let pairs: Vec<(&str, &str, usize, usize)> =
            got.iter().map(|g| (g.a.as_str(), g.b.as_str(), g.n_same, g.n_problems)).collect();
        // sc@4 and sc@8 are not compared with each other, each is with single.
        assert_eq!(
            pairs,
            [("sc@4", "adaptive-sc", 2, 3), ("sc@4", "single", 1, 3), ("adaptive-sc", "single", 0, 3), ("single", "sc@8", 0, 1)]
        );
        // adaptive-sc stopped early on a and c, and agreed with sc on both.
        assert_eq!(
            got[0].early,
            [EarlyAgreement { early: "adaptive-sc".into(), full: "sc@4".into(), n_stopped: 2, mean_samples: 2.5, n_same: 2 }]
        );
        // sc drew its whole budget everywhere; single's budget is 1, so it never stops early.
        assert!(got[1].early.is_empty());
        assert_eq!(
            got[2].early,
            [EarlyAgreement { early: "adaptive-sc".into(), full: "single".into(), n_stopped: 2, mean_samples: 2.5, n_same: 0 }]
        );
    }
}
