//! Verified resampling with an imperfect verifier ("Inference Scaling fLaws", Stroebl et al.
//! 2024), measured on a run's stored samples instead of drawn again.
//!
//! Each stored candidate of a code run is checked twice: by the problem's visible tests
//! (the verifier a user has) and by its hidden tests (the truth, already stored). Drawing
//! "until a sample passes the verifier, at most k" is then replayed in sample order: the
//! samples of one (problem, seed) are the draws, seeded per index exactly as a
//! `verify-resample` run would draw them. From the same verdicts come each problem's
//! false-positive rate (visible pass among hidden fails), accuracy, wrong answers and
//! abstentions at every k, and the k that maximises utility when a wrong answer costs a
//! multiple of an abstention. The paper's claims: false positives cap accuracy whatever k
//! is, and with costly wrong answers the best k is small.
//!
//! A `verify-resample` run measures its verifier as it goes: every candidate it drew has
//! its verifier verdict stored as its score, and its hidden-test verdict as its
//! correctness. [`verifier_report`] reads both off the store, with no sandbox.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use ponder_core::strategy::Candidate;
use ponder_core::verifier::{best_k, expected_utility, Utility};
use ponder_core::{FinishReason, Problem};
use serde::Serialize;

use crate::analysis::RunData;
use crate::curves::{bootstrap, pass_at_k, Estimate};
use crate::runs::Group;
use crate::{Dataset, Error};

/// How often a `verify-resample` run's verifier (visible tests) agreed with the truth
/// (hidden tests), over every candidate drawn, and the k that maximises expected utility
/// given those rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifierReport {
    pub n_candidates: usize,
    /// Candidates passing the visible tests / the hidden tests / both.
    pub n_visible_pass: usize,
    pub n_hidden_pass: usize,
    pub n_both_pass: usize,
    /// P(visible pass | hidden fail): the rate `resample_odds` takes. `None` without any
    /// wrong candidate.
    pub false_positive_rate: Option<f64>,
    /// P(visible pass | hidden pass). `None` without any correct candidate.
    pub true_positive_rate: Option<f64>,
    /// Fraction of visible-passing candidates that fail the hidden tests (what a user of
    /// the verifier sees). `None` when nothing passed.
    pub wrong_among_passing: Option<f64>,
    /// Per-problem fraction of drawn candidates passing the hidden tests. Biased low on
    /// problems that stopped early at a pass: a later sample might have failed.
    pub success_rates: Vec<f64>,
    pub utility: UtilityReport,
    /// The k in 1..=[`MAX_K`] with the highest expected utility, at the measured rates (an
    /// unmeasured rate is taken as tpr 1, fpr 0).
    pub best_k: usize,
    pub best_k_utility: f64,
    /// Expected utility at the run's own budget.
    pub budget_utility: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UtilityReport {
    pub correct: f64,
    pub wrong_cost: f64,
    pub abstain_cost: f64,
}

/// Largest k searched by [`verifier_report`].
pub const MAX_K: usize = 100;

/// Compares the verifier's verdicts (the candidates' scores: 1 = visible tests pass) of
/// group `g` with the truth (each candidate graded on the hidden tests when stored), over
/// `problems`, and runs the fLaws analysis under `utility`.
pub fn verifier_report(data: &RunData, g: &Group, problems: &[Problem], utility: &Utility) -> VerifierReport {
    let mut by_problem: HashMap<&str, Vec<(bool, bool)>> = HashMap::new();
    for s in data.samples.iter().filter(|s| s.key.strategy == g.strategy && s.key.budget == g.budget && s.key.seed == g.seed) {
        by_problem.entry(s.key.problem_id.as_str()).or_default().push((s.score == Some(1.0), s.correct));
    }
    let verdicts: Vec<Vec<(bool, bool)>> = problems.iter().map(|p| by_problem.remove(p.id.as_str()).unwrap_or_default()).collect();
    let all: Vec<(bool, bool)> = verdicts.iter().flatten().copied().collect();
    let count = |f: fn(&(bool, bool)) -> bool| all.iter().filter(|v| f(v)).count();
    let n_visible_pass = count(|v| v.0);
    let n_hidden_pass = count(|v| v.1);
    let n_both_pass = count(|v| v.0 && v.1);
    let ratio = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
    let false_positive_rate = ratio(n_visible_pass - n_both_pass, all.len() - n_hidden_pass);
    let true_positive_rate = ratio(n_both_pass, n_hidden_pass);
    let success_rates: Vec<f64> =
        verdicts.iter().map(|v| ratio(v.iter().filter(|x| x.1).count(), v.len()).unwrap_or(0.0)).collect();
    let (tpr, fpr) = (true_positive_rate.unwrap_or(1.0), false_positive_rate.unwrap_or(0.0));
    let (best_k, best_k_utility) = best_k(&success_rates, tpr, fpr, utility, MAX_K);
    VerifierReport {
        n_candidates: all.len(),
        n_visible_pass,
        n_hidden_pass,
        n_both_pass,
        false_positive_rate,
        true_positive_rate,
        wrong_among_passing: ratio(n_visible_pass - n_both_pass, n_visible_pass),
        budget_utility: expected_utility(&success_rates, tpr, fpr, utility, g.budget),
        success_rates,
        utility: UtilityReport { correct: utility.correct, wrong_cost: utility.wrong, abstain_cost: utility.abstain },
        best_k,
        best_k_utility,
    }
}

/// One candidate's two verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    /// Passes the visible tests (the verifier).
    pub visible: bool,
    /// Passes the hidden tests (the truth).
    pub hidden: bool,
}

/// One problem's draws, in sample-index order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemDraws {
    pub id: String,
    pub draws: Vec<Verdicts>,
}

/// Per problem: how often its samples are right, and how often the verifier lies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemRates {
    pub id: String,
    pub n: usize,
    pub success_rate: f64,
    /// Visible pass among hidden fails; `None` when no sample failed the hidden tests.
    pub false_positive_rate: Option<f64>,
}

/// Replayed verified resampling at one k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResamplePoint {
    pub k: usize,
    pub correct: Estimate,
    pub wrong: Estimate,
    pub abstain: Estimate,
    /// Coverage (pass@k) from the same samples, the ceiling a perfect verifier reaches.
    pub coverage: Estimate,
    pub mean_samples: f64,
}

/// The best k for one cost of a wrong answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BestK {
    /// Cost of a wrong answer as a multiple of an abstention's.
    pub wrong_over_abstain: f64,
    pub wrong_cost: f64,
    pub abstain_cost: f64,
    pub k: usize,
    pub utility: f64,
    /// Utility at the largest k measured, for comparison.
    pub utility_at_max_k: f64,
}

/// Everything the analysis reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlawsReport {
    pub n_problems: usize,
    pub n_candidates: usize,
    /// Over all candidates: visible pass among hidden fails, and visible pass among hidden passes.
    pub false_positive_rate: Option<f64>,
    pub true_positive_rate: Option<f64>,
    /// Mean per-sample success rate (what a single sample scores).
    pub single_sample_accuracy: f64,
    pub problems: Vec<ProblemRates>,
    pub curve: Vec<ResamplePoint>,
    pub best_k: Vec<BestK>,
}

/// A correct answer earns 1; an abstention costs this; a wrong answer costs a multiple of it.
pub const ABSTAIN_COST: f64 = 0.5;
/// The multiples of [`ABSTAIN_COST`] a wrong answer costs in [`FlawsReport::best_k`].
pub const WRONG_MULTIPLES: [f64; 3] = [1.0, 2.0, 4.0];

/// What happened when drawing until the verifier passes, at most `k` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    Correct(usize),
    Wrong(usize),
    Abstain(usize),
}

fn replay(draws: &[Verdicts], k: usize) -> Replay {
    for (i, d) in draws.iter().take(k).enumerate() {
        if d.visible {
            return if d.hidden { Replay::Correct(i + 1) } else { Replay::Wrong(i + 1) };
        }
    }
    Replay::Abstain(k.min(draws.len()))
}

/// The analysis over problems whose draws are given in index order; curves run to the
/// smallest number of draws. `seed` fixes the bootstrap.
pub fn analyse(problems: &[ProblemDraws], seed: u64) -> FlawsReport {
    let all: Vec<Verdicts> = problems.iter().flat_map(|p| p.draws.iter().copied()).collect();
    let count = |f: &dyn Fn(&Verdicts) -> bool| all.iter().filter(|v| f(v)).count();
    let ratio = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
    let hidden_fail = count(&|v| !v.hidden);
    let rates: Vec<ProblemRates> = problems
        .iter()
        .map(|p| {
            let n = p.draws.len();
            let fails = p.draws.iter().filter(|v| !v.hidden).count();
            ProblemRates {
                id: p.id.clone(),
                n,
                success_rate: ratio(n - fails, n).unwrap_or(0.0),
                false_positive_rate: ratio(p.draws.iter().filter(|v| v.visible && !v.hidden).count(), fails),
            }
        })
        .collect();
    let n_max = problems.iter().map(|p| p.draws.len()).min().unwrap_or(0);
    let curve: Vec<ResamplePoint> = (1..=n_max)
        .map(|k| {
            let outcomes: Vec<Replay> = problems.iter().map(|p| replay(&p.draws, k)).collect();
            let share = |f: &dyn Fn(&Replay) -> bool| -> Vec<f64> {
                outcomes.iter().map(|o| if f(o) { 1.0 } else { 0.0 }).collect()
            };
            let boot = |v: &[f64], salt: u64| bootstrap(v, 1000, 0.95, seed ^ (k as u64) << 8 ^ salt);
            let coverage: Vec<f64> =
                problems.iter().map(|p| pass_at_k(p.draws.len(), p.draws.iter().filter(|v| v.hidden).count(), k)).collect();
            let drawn = outcomes.iter().map(|o| match o {
                Replay::Correct(n) | Replay::Wrong(n) | Replay::Abstain(n) => *n as f64,
            });
            ResamplePoint {
                k,
                correct: boot(&share(&|o| matches!(o, Replay::Correct(_))), 1),
                wrong: boot(&share(&|o| matches!(o, Replay::Wrong(_))), 2),
                abstain: boot(&share(&|o| matches!(o, Replay::Abstain(_))), 3),
                coverage: boot(&coverage, 4),
                mean_samples: drawn.sum::<f64>() / outcomes.len().max(1) as f64,
            }
        })
        .collect();
    let best_k = WRONG_MULTIPLES
        .iter()
        .filter_map(|&m| {
            let (wrong_cost, abstain_cost) = (m * ABSTAIN_COST, ABSTAIN_COST);
            let utility = |p: &ResamplePoint| p.correct.mean - wrong_cost * p.wrong.mean - abstain_cost * p.abstain.mean;
            // The smallest k on ties: fewer samples for the same utility.
            let best = curve.iter().fold(None::<&ResamplePoint>, |b, p| match b {
                Some(b) if utility(b) + 1e-12 >= utility(p) => Some(b),
                _ => Some(p),
            })?;
            Some(BestK {
                wrong_over_abstain: m,
                wrong_cost,
                abstain_cost,
                k: best.k,
                utility: utility(best),
                utility_at_max_k: curve.last().map_or(f64::NAN, utility),
            })
        })
        .collect();
    FlawsReport {
        n_problems: problems.len(),
        n_candidates: all.len(),
        false_positive_rate: ratio(count(&|v| v.visible && !v.hidden), hidden_fail),
        true_positive_rate: ratio(count(&|v| v.visible && v.hidden), all.len() - hidden_fail),
        single_sample_accuracy: rates.iter().map(|r| r.success_rate).sum::<f64>() / rates.len().max(1) as f64,
        problems: rates,
        curve,
        best_k,
    }
}

/// Runs the dataset's verifier (visible tests) on every stored candidate of `strategy` in
/// `run`, `concurrency` checks at a time, and pairs each verdict with the stored hidden-test
/// verdict. One sequence of draws per (problem, seed), in index order.
pub async fn gather(run: &RunData, dataset: &Dataset, strategy: &str, concurrency: usize) -> Result<Vec<ProblemDraws>, Error> {
    let Some(verifier) = dataset.verifier.clone() else {
        return Err(Error::Insufficient(format!("dataset {} has no verifier (visible tests)", dataset.name)));
    };
    let problems: BTreeMap<&str, &Problem> = dataset.problems.iter().map(|p| (p.id.as_str(), p)).collect();
    let rows: Vec<_> = run.samples.iter().filter(|s| s.key.strategy == strategy).collect();
    if rows.is_empty() {
        return Err(Error::Insufficient(format!("run {} has no samples of strategy {strategy}", run.info.id)));
    }
    let checks = futures::stream::iter(rows.iter().map(|s| {
        let verifier = verifier.clone();
        let problem = problems.get(s.key.problem_id.as_str()).copied();
        async move {
            let Some(problem) = problem else {
                return Err(Error::Insufficient(format!("problem {} is not in dataset {}", s.key.problem_id, dataset.name)));
            };
            // The verifier reads the candidate's answer (its code), falling back to its text.
            let candidate = Candidate {
                index: s.index,
                text: s.text.clone(),
                answer: s.answer.clone(),
                key: s.answer_key.clone(),
                n_tokens: s.usage.completion as usize,
                mean_logprob: s.mean_logprob,
                finish: FinishReason::Eos,
                score: s.score,
            };
            let v = verifier.verify(problem, &candidate).await.map_err(|e| Error::Insufficient(e.to_string()))?;
            Ok(((s.key.problem_id.clone(), s.key.seed, s.index), Verdicts { visible: v.passed, hidden: s.correct }))
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    let mut by_draw: BTreeMap<(String, u64), BTreeMap<usize, Verdicts>> = BTreeMap::new();
    for c in checks {
        let ((problem, seed, index), v) = c?;
        by_draw.entry((problem, seed)).or_default().insert(index, v);
    }
    // Dataset order, then seed.
    let order: BTreeMap<&str, usize> = run.problems.iter().map(|p| (p.id.as_str(), p.idx)).collect();
    let mut out: Vec<(usize, u64, ProblemDraws)> = by_draw
        .into_iter()
        .map(|((id, seed), draws)| {
            let at = order.get(id.as_str()).copied().unwrap_or(usize::MAX);
            let name = if run.config.seeds.len() > 1 { format!("{id}#{seed}") } else { id };
            (at, seed, ProblemDraws { id: name, draws: draws.into_values().collect() })
        })
        .collect();
    out.sort_by_key(|(at, seed, _)| (*at, *seed));
    Ok(out.into_iter().map(|(_, _, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(visible: bool, hidden: bool) -> Verdicts {
        Verdicts { visible, hidden }
    }

    fn problem(id: &str, draws: &[(bool, bool)]) -> ProblemDraws {
        ProblemDraws { id: id.into(), draws: draws.iter().map(|&(a, b)| v(a, b)).collect() }
    }

    #[test]
    fn replay_takes_the_first_visible_pass_within_k() {
        let d = [v(false, true), v(true, false), v(true, true)];
        assert_eq!(replay(&d, 1), Replay::Abstain(1));
        assert_eq!(replay(&d, 2), Replay::Wrong(2));
        assert_eq!(replay(&d, 3), Replay::Wrong(2));
        assert_eq!(replay(&[v(false, false); 2], 5), Replay::Abstain(2));
    }

    #[test]
    fn rates_curve_and_best_k_follow_the_draws() {
        let problems = [
            // A false positive comes first: resampling answers wrong from k = 1.
            problem("fp", &[(true, false), (true, true), (false, false), (true, true)]),
            // Only the third draw passes: abstain until k = 3.
            problem("late", &[(false, false), (false, false), (true, true), (false, false)]),
            // Never passes the visible tests though one draw is right.
            problem("strict", &[(false, true), (false, false), (false, false), (false, false)]),
        ];
        let r = analyse(&problems, 0);
        assert_eq!((r.n_problems, r.n_candidates), (3, 12));
        // 8 hidden fails, 1 of them passes the visible tests; 4 hidden passes, 3 visible.
        assert_eq!(r.false_positive_rate, Some(1.0 / 8.0));
        assert_eq!(r.true_positive_rate, Some(3.0 / 4.0));
        assert_eq!(r.problems[0].false_positive_rate, Some(0.5));
        assert_eq!(r.problems[1].success_rate, 0.25);
        let at = |k: usize| r.curve[k - 1];
        assert_eq!(r.curve.len(), 4);
        assert!((at(1).correct.mean - 0.0).abs() < 1e-12 && (at(1).wrong.mean - 1.0 / 3.0).abs() < 1e-12);
        assert!((at(3).correct.mean - 1.0 / 3.0).abs() < 1e-12 && (at(3).abstain.mean - 1.0 / 3.0).abs() < 1e-12);
        // Coverage counts "strict", which the verifier never lets through: the cap.
        assert!((at(4).coverage.mean - 1.0).abs() < 1e-12 && at(4).correct.mean < at(4).coverage.mean);
        assert!((at(2).mean_samples - (1.0 + 2.0 + 2.0) / 3.0).abs() < 1e-12);
        // Utility: k = 1 gives -wrong/3 - abstain*2/3; k = 3 gives 1/3 - wrong/3 - abstain/3.
        assert_eq!(r.best_k.len(), 3);
        for b in &r.best_k {
            assert_eq!(b.k, 3, "{b:?}");
            let expect = 1.0 / 3.0 - b.wrong_cost / 3.0 - b.abstain_cost / 3.0;
            assert!((b.utility - expect).abs() < 1e-12, "{b:?}");
        }
    }
}
