//! Verifiers: a pass/fail check of one complete candidate (unit tests, an exact checker),
//! used by verified resampling. Unlike a scorer, a verifier's "pass" can be wrong: its
//! false-positive rate caps the accuracy any number of samples can reach.

use async_trait::async_trait;

use crate::scorer::ScoreError;
use crate::outcome::Candidate;
use crate::{Problem, Usage};

/// A verifier's decision on one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub passed: bool,
    /// Why, in a few words (e.g. "failed test 3", "timeout").
    pub detail: String,
    pub usage: Usage,
}

#[async_trait]
pub trait Verifier: Send + Sync {
    fn name(&self) -> &str;
    async fn verify(&self, problem: &Problem, candidate: &Candidate) -> Result<Verification, ScoreError>;
}

/// Costs and rewards of the abstention trade-off ("Inference Scaling fLaws").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Utility {
    /// Reward of a correct answer.
    pub correct: f64,
    /// Cost of a wrong answer (subtracted).
    pub wrong: f64,
    /// Cost of abstaining (subtracted).
    pub abstain: f64,
    /// Cost of each sample drawn (subtracted).
    pub per_sample: f64,
}

/// Outcome probabilities of "draw until a sample passes, at most k" on one problem whose
/// samples are correct with probability `p`, for a verifier passing correct samples with
/// probability `tpr` and wrong ones with probability `fpr`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResampleOdds {
    pub correct: f64,
    pub wrong: f64,
    pub abstain: f64,
    pub expected_samples: f64,
}

pub fn resample_odds(p: f64, tpr: f64, fpr: f64, k: usize) -> ResampleOdds {
    let q = p * tpr + (1.0 - p) * fpr; // P(a sample passes)
    if q <= 0.0 {
        return ResampleOdds { correct: 0.0, wrong: 0.0, abstain: 1.0, expected_samples: k as f64 };
    }
    let none_pass = (1.0 - q).powi(k as i32);
    let some_pass = 1.0 - none_pass;
    ResampleOdds {
        correct: some_pass * p * tpr / q,
        wrong: some_pass * (1.0 - p) * fpr / q,
        abstain: none_pass,
        expected_samples: some_pass / q,
    }
}

/// Expected utility per problem of verified resampling with at most `k` samples, averaged
/// over problems whose per-sample success rates are `ps` (measured from a run).
pub fn expected_utility(ps: &[f64], tpr: f64, fpr: f64, u: &Utility, k: usize) -> f64 {
    if ps.is_empty() {
        return 0.0;
    }
    let total: f64 = ps
        .iter()
        .map(|&p| {
            let o = resample_odds(p, tpr, fpr, k);
            u.correct * o.correct - u.wrong * o.wrong - u.abstain * o.abstain - u.per_sample * o.expected_samples
        })
        .sum();
    total / ps.len() as f64
}

/// The k in `1..=max_k` with the highest expected utility (the smallest on ties).
pub fn best_k(ps: &[f64], tpr: f64, fpr: f64, u: &Utility, max_k: usize) -> (usize, f64) {
    let mut best = (1, expected_utility(ps, tpr, fpr, u, 1));
    for k in 2..=max_k.max(1) {
        let v = expected_utility(ps, tpr, fpr, u, k);
        if v > best.1 + 1e-12 {
            best = (k, v);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAY: Utility = Utility { correct: 1.0, wrong: 0.0, abstain: 0.0, per_sample: 0.0 };

    #[test]
    fn a_perfect_verifier_turns_coverage_into_accuracy() {
        // With tpr = 1 and fpr = 0, P(correct) is pass@k = 1 - (1 - p)^k.
        for (p, k) in [(0.1, 5), (0.5, 3), (0.9, 1)] {
            let o = resample_odds(p, 1.0, 0.0, k);
            assert!((o.correct - (1.0 - (1.0f64 - p).powi(k as i32))).abs() < 1e-12);
            assert_eq!(o.wrong, 0.0);
            assert!((o.correct + o.abstain - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn false_positives_cap_accuracy_whatever_k() {
        // Accuracy approaches p*tpr / q, not 1, as k grows.
        let (p, fpr) = (0.2, 0.1);
        let cap = p / (p + (1.0 - p) * fpr);
        let o = resample_odds(p, 1.0, fpr, 10_000);
        assert!((o.correct - cap).abs() < 1e-9, "{o:?} cap {cap}");
        assert!(o.correct < 0.72);
    }

    #[test]
    fn expensive_mistakes_make_the_best_k_small() {
        // A mix of easy and hopeless problems: more samples mostly buy false positives on
        // the hopeless ones.
        let ps = [0.9, 0.8, 0.0, 0.0, 0.0, 0.01];
        let careful = Utility { correct: 1.0, wrong: 4.0, abstain: 0.0, per_sample: 0.0 };
        let (k, _) = best_k(&ps, 1.0, 0.05, &careful, 100);
        assert!(k < 10, "k = {k}");
        // When mistakes cost nothing, more samples never hurt.
        let (k, _) = best_k(&ps, 1.0, 0.05, &PAY, 100);
        assert_eq!(k, 100);
    }

    #[test]
    fn probabilities_add_up() {
        for p in [0.0, 0.3, 1.0] {
            for fpr in [0.0, 0.2] {
                let o = resample_odds(p, 0.9, fpr, 7);
                assert!((o.correct + o.wrong + o.abstain - 1.0).abs() < 1e-12, "{o:?}");
            }
        }
    }
}
