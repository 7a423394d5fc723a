//! Scaling curves from one run: with N samples per problem, the expected accuracy at every
//! k = 1, 2, 4, …, N of
//!
//! - **pass@k** (coverage: any of k samples right), by the unbiased estimator
//!   1 − C(n−c, k)/C(n, k) (Chen et al. 2021), computed as a product so it never overflows;
//! - **maj@k** (self-consistency over k samples), **best-of-k** (the best-scored of k) and
//!   **weighted@k** (answer classes ranked by their summed scores), by averaging the
//!   selection's correctness over random size-k subsets of each problem's samples
//!   (seeded), or over all subsets when there are few;
//!
//! with bootstrap confidence intervals over problems. Selections follow the strategies'
//! own rules (`ponder_core::strategy::tally`): classes by weight, then count, then the
//! class seen first; best-of-k takes the first highest score in index order.

use rand::seq::index::sample as sample_indices;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// One sample of one problem, as the curves need it.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleView {
    /// Index in the request (the tie-breaker: lower came first).
    pub index: usize,
    /// Equivalence-class key of the answer; `None` without an answer.
    pub key: Option<String>,
    pub correct: bool,
    pub score: Option<f64>,
}

/// How subsets of samples become one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// Largest answer class (self-consistency).
    Majority,
    /// Highest-scored sample (best-of-N).
    BestScore,
    /// Answer class with the highest summed score (weighted best-of-N).
    WeightedVote,
}

/// A mean with a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

/// All metrics at one k.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    pub k: usize,
    pub pass: Estimate,
    pub maj: Estimate,
    /// Present when the samples have scores.
    pub best: Option<Estimate>,
    pub weighted: Option<Estimate>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveOptions {
    /// Random subsets per problem and k.
    pub n_subsets: usize,
    /// Enumerate every subset instead when there are at most this many.
    pub exact_up_to: usize,
    /// Bootstrap resamples over problems.
    pub n_boot: usize,
    /// Confidence level of the intervals.
    pub level: f64,
    pub seed: u64,
}

impl Default for CurveOptions {
    fn default() -> Self {
        Self { n_subsets: 1000, exact_up_to: 1000, n_boot: 1000, level: 0.95, seed: 0 }
    }
}

/// 1, 2, 4, … up to `n`, with `n` itself last when it is not a power of two.
pub fn ks(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut k = 1;
    while k <= n {
        out.push(k);
        k *= 2;
    }
    if n > 0 && out.last() != Some(&n) {
        out.push(n);
    }
    out
}

/// Unbiased pass@k from `n` samples of which `c` are correct: 1 − C(n−c, k)/C(n, k),
/// as 1 − ∏_{i=n−c+1}^{n} (1 − k/i). `k` must be at most `n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(k >= 1 && k <= n && c <= n, "pass_at_k needs 1 <= k <= n and c <= n (n {n}, c {c}, k {k})");
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n).map(|i| 1.0 - k as f64 / i as f64).product::<f64>()
}

/// Number of size-k subsets of n, saturating at `u128::MAX`.
pub fn n_choose_k(n: usize, k: usize) -> u128 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut r: u128 = 1;
    for i in 0..k {
        r = match r.checked_mul((n - i) as u128) {
            Some(x) => x / (i as u128 + 1),
            None => return u128::MAX,
        };
    }
    r
}

/// A problem's samples with answer keys interned, ready for fast selection.
struct Interned {
    key: Vec<Option<usize>>,
    correct: Vec<bool>,
    score: Vec<f64>,
    n_keys: usize,
}

fn intern(samples: &[SampleView]) -> Interned {
    let mut order: Vec<&SampleView> = samples.iter().collect();
    order.sort_by_key(|s| s.index);
    let mut names: Vec<&str> = Vec::new();
    let key = order
        .iter()
        .map(|s| {
            s.key.as_deref().map(|k| match names.iter().position(|n| *n == k) {
                Some(p) => p,
                None => {
                    names.push(k);
                    names.len() - 1
                }
            })
        })
        .collect();
    Interned {
        key,
        correct: order.iter().map(|s| s.correct).collect(),
        score: order.iter().map(|s| s.score.unwrap_or(f64::NAN)).collect(),
        n_keys: names.len(),
    }
}

/// Whether the selection over the samples at positions `subset` (ascending = index
/// order) is correct.
fn select(p: &Interned, subset: &[usize], selector: Selector, scratch: &mut Vec<(f64, usize, usize)>) -> bool {
    match selector {
        Selector::BestScore => {
            let mut best = subset[0];
            let score = |i: usize| if p.score[i].is_nan() { f64::NEG_INFINITY } else { p.score[i] };
            for &i in &subset[1..] {
                if score(i) > score(best) {
                    best = i;
                }
            }
            p.correct[best]
        }
        Selector::Majority | Selector::WeightedVote => {
            // (weight, count, first position) per class.
            scratch.clear();
            scratch.resize(p.n_keys, (0.0, 0, usize::MAX));
            for &i in subset {
                if let Some(k) = p.key[i] {
                    let e = &mut scratch[k];
                    e.0 += if selector == Selector::Majority {
                        1.0
                    } else if p.score[i].is_nan() {
                        0.0
                    } else {
                        p.score[i]
                    };
                    e.1 += 1;
                    e.2 = e.2.min(i);
                }
            }
            let mut best: Option<(f64, usize, usize)> = None;
            for &e in scratch.iter().filter(|e| e.1 > 0) {
                let better = match best {
                    None => true,
                    Some(b) => e.0.total_cmp(&b.0).then(e.1.cmp(&b.1)).then(b.2.cmp(&e.2)).is_gt(),
                };
                if better {
                    best = Some(e);
                }
            }
            best.is_some_and(|(_, _, first)| p.correct[first])
        }
    }
}

/// Expected correctness of `selector` over every size-k subset of `samples`.
pub fn exact_selection(samples: &[SampleView], k: usize, selector: Selector) -> f64 {
    let p = intern(samples);
    let n = samples.len();
    assert!(k >= 1 && k <= n, "k must be in 1..=n");
    let mut subset: Vec<usize> = (0..k).collect();
    let mut scratch = Vec::new();
    let (mut hits, mut total) = (0u64, 0u64);
    loop {
        hits += u64::from(select(&p, &subset, selector, &mut scratch));
        total += 1;
        // Next combination in lexicographic order.
        let mut i = k;
        loop {
            if i == 0 {
                return hits as f64 / total as f64;
            }
            i -= 1;
            if subset[i] < n - k + i {
                break;
            }
        }
        subset[i] += 1;
        for j in i + 1..k {
            subset[j] = subset[j - 1] + 1;
        }
    }
}

/// Mean correctness of `selector` over `n_subsets` random size-k subsets of `samples`.
pub fn sampled_selection(samples: &[SampleView], k: usize, selector: Selector, n_subsets: usize, rng: &mut impl Rng) -> f64 {
    let p = intern(samples);
    sampled_interned(&p, k, selector, n_subsets, rng)
}

fn sampled_interned(p: &Interned, k: usize, selector: Selector, n_subsets: usize, rng: &mut impl Rng) -> f64 {
    let n = p.key.len();
    assert!(k >= 1 && k <= n, "k must be in 1..=n");
    let mut scratch = Vec::new();
    let mut subset = Vec::with_capacity(k);
    let mut hits = 0u64;
    for _ in 0..n_subsets.max(1) {
        subset.clear();
        subset.extend(sample_indices(rng, n, k));
        subset.sort_unstable();
        hits += u64::from(select(p, &subset, selector, &mut scratch));
    }
    hits as f64 / n_subsets.max(1) as f64
}

/// The mean of `values` and its percentile bootstrap interval (resampling the values
/// with replacement `n_boot` times).
pub fn bootstrap(values: &[f64], n_boot: usize, level: f64, seed: u64) -> Estimate {
    if values.is_empty() {
        return Estimate { mean: f64::NAN, lo: f64::NAN, hi: f64::NAN };
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    if values.len() == 1 || n_boot == 0 {
        return Estimate { mean, lo: mean, hi: mean };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..n_boot)
        .map(|_| (0..values.len()).map(|_| values[rng.gen_range(0..values.len())]).sum::<f64>() / values.len() as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    let at = |q: f64| means[((q * (n_boot - 1) as f64).round() as usize).min(n_boot - 1)];
    Estimate { mean, lo: at(tail).min(mean), hi: at(1.0 - tail).max(mean) }
}

/// The curves over `problems` (each a problem's samples) at k = [`ks`] of the smallest
/// sample count. Best-of-k and weighted@k are computed when every sample has a score.
/// Empty when some problem has no samples.
pub fn curves(problems: &[Vec<SampleView>], opts: &CurveOptions) -> Vec<CurvePoint> {
    let n_min = problems.iter().map(Vec::len).min().unwrap_or(0);
    if n_min == 0 {
        return Vec::new();
    }
    let scored = problems.iter().flatten().all(|s| s.score.is_some_and(f64::is_finite));
    let interned: Vec<Interned> = problems.iter().map(|p| intern(p)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut out = Vec::new();
    for (ki, k) in ks(n_min).into_iter().enumerate() {
        let boot = |values: &[f64], salt: u64| {
            bootstrap(values, opts.n_boot, opts.level, opts.seed ^ (ki as u64) << 8 ^ salt)
        };
        let pass: Vec<f64> = problems
            .iter()
            .map(|p| pass_at_k(p.len(), p.iter().filter(|s| s.correct).count(), k))
            .collect();
        let mut per = |selector: Selector| -> Vec<f64> {
            problems
                .iter()
                .zip(&interned)
                .map(|(raw, p)| {
                    if n_choose_k(raw.len(), k) <= opts.exact_up_to as u128 {
                        exact_selection(raw, k, selector)
                    } else {
                        sampled_interned(p, k, selector, opts.n_subsets, &mut rng)
                    }
                })
                .collect()
        };
        let maj = per(Selector::Majority);
        let (best, weighted) = if scored {
            (Some(per(Selector::BestScore)), Some(per(Selector::WeightedVote)))
        } else {
            (None, None)
        };
        out.push(CurvePoint {
            k,
            pass: boot(&pass, 1),
            maj: boot(&maj, 2),
            best: best.map(|v| boot(&v, 3)),
            weighted: weighted.map(|v| boot(&v, 4)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(index: usize, key: Option<&str>, correct: bool, score: Option<f64>) -> SampleView {
        SampleView { index, key: key.map(str::to_string), correct, score }
    }

    /// pass@k by brute force: the fraction of size-k subsets with a correct sample.
    fn pass_brute(n: usize, c: usize, k: usize) -> f64 {
        let samples: Vec<SampleView> = (0..n).map(|i| s(i, Some(&i.to_string()), i < c, Some(if i < c { 1.0 } else { 0.0 }))).collect();
        // Best-of-k with score = correctness is right iff any sample is right.
        exact_selection(&samples, k, Selector::BestScore)
    }

    #[test]
    fn pass_at_k_matches_the_closed_form_and_brute_force() {
        let binom = |n: usize, k: usize| n_choose_k(n, k) as f64;
        for n in 1..=12 {
            for c in 0..=n {
                for k in 1..=n {
                    let closed = 1.0 - binom(n - c, k) / binom(n, k);
                    let got = pass_at_k(n, c, k);
                    assert!((got - closed).abs() < 1e-12, "n {n} c {c} k {k}: {got} vs {closed}");
                    assert!((got - pass_brute(n, c, k)).abs() < 1e-12, "n {n} c {c} k {k}");
                }
            }
        }
        // Hand-made: 2 of 5 right; pass@1 = 0.4, pass@2 = 1 - C(3,2)/C(5,2) = 0.7, pass@4 = 1.
        assert!((pass_at_k(5, 2, 1) - 0.4).abs() < 1e-12);
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 2, 4), 1.0);
        assert_eq!(pass_at_k(5, 0, 5), 0.0);
        // Stable where the binomials overflow f64.
        let big = pass_at_k(2000, 3, 1000);
        assert!((big - (1.0 - (1000.0 * 999.0 * 998.0) / (2000.0 * 1999.0 * 1998.0))).abs() < 1e-12, "{big}");
    }

    #[test]
    fn ks_are_powers_of_two_then_n() {
        assert_eq!(ks(1), [1]);
        assert_eq!(ks(8), [1, 2, 4, 8]);
        assert_eq!(ks(12), [1, 2, 4, 8, 12]);
        assert!(ks(0).is_empty());
    }

    #[test]
    fn selections_follow_the_strategies_rules() {
        // Classes a (2 votes, low scores) and b (1 vote, high score): majority a, best b,
        // weighted a (0.5 + 0.5 > 0.9).
        let p = [s(0, Some("a"), false, Some(0.5)), s(1, Some("b"), true, Some(0.9)), s(2, Some("a"), false, Some(0.5))];
        assert_eq!(exact_selection(&p, 3, Selector::Majority), 0.0);
        assert_eq!(exact_selection(&p, 3, Selector::BestScore), 1.0);
        assert_eq!(exact_selection(&p, 3, Selector::WeightedVote), 0.0);
        // A tie goes to the class seen first (lowest index), whatever the input order.
        let tie = [s(3, Some("x"), false, None), s(1, Some("y"), true, None)];
        assert_eq!(exact_selection(&tie, 2, Selector::Majority), 1.0);
        // No answers at all: wrong.
        let none = [s(0, None, false, None), s(1, None, false, None)];
        assert_eq!(exact_selection(&none, 2, Selector::Majority), 0.0);
        // k = 1 majority is the mean correctness of answered samples.
        let q = [s(0, Some("a"), true, None), s(1, Some("b"), false, None), s(2, None, false, None), s(3, Some("a"), true, None)];
        assert_eq!(exact_selection(&q, 1, Selector::Majority), 0.5);
    }

    /// The voting rules agree with ponder-core's `tally` on random data.
    #[test]
    fn majority_and_weighted_agree_with_the_strategies_tally() {
        use ponder_core::strategy::{tally, Candidate};
        use ponder_core::FinishReason;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..300 {
            let n = rng.gen_range(1..9);
            let samples: Vec<SampleView> = (0..n)
                .map(|i| {
                    let key = rng.gen_range(0..4);
                    let key = (key < 3).then(|| key.to_string());
                    let correct = key.as_deref() == Some("0");
                    s(i, key.as_deref(), correct, Some(f64::from(rng.gen_range(-3i32..4)) / 2.0))
                })
                .collect();
            let candidates: Vec<Candidate> = samples
                .iter()
                .map(|x| Candidate {
                    index: x.index,
                    text: String::new(),
                    answer: x.key.clone(),
                    key: x.key.clone(),
                    n_tokens: 1,
                    mean_logprob: None,
                    finish: FinishReason::Eos,
                    score: x.score,
                })
                .collect();
            for (sel, weighted) in [(Selector::Majority, false), (Selector::WeightedVote, true)] {
                let want = tally(&candidates, weighted).first().is_some_and(|v| v.key == "0");
                assert_eq!(exact_selection(&samples, n, sel) == 1.0, want, "{samples:?} {sel:?}");
            }
        }
    }

    #[test]
    fn subsampling_matches_exact_enumeration() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for case in 0..20 {
            let n = rng.gen_range(3..11);
            let samples: Vec<SampleView> = (0..n)
                .map(|i| {
                    let key = rng.gen_range(0..3).to_string();
                    let correct = key == "0";
                    s(i, Some(&key), correct, Some(rng.gen::<f64>()))
                })
                .collect();
            for k in 1..=n {
                for sel in [Selector::Majority, Selector::BestScore, Selector::WeightedVote] {
                    let exact = exact_selection(&samples, k, sel);
                    let mut r = ChaCha8Rng::seed_from_u64(case);
                    let approx = sampled_selection(&samples, k, sel, 4000, &mut r);
                    // 4000 draws: standard error at most 0.008.
                    assert!((exact - approx).abs() < 0.035, "case {case} n {n} k {k} {sel:?}: exact {exact} vs {approx}");
                }
            }
        }
    }

    #[test]
    fn curves_end_at_the_full_sample_selection_and_intervals_bracket_means() {
        let problems: Vec<Vec<SampleView>> = (0..30)
            .map(|p| {
                (0..8)
                    .map(|i| {
                        let key = ((p * 7 + i * 3) % 4).to_string();
                        let correct = key == "1";
                        s(i, Some(&key), correct, Some(((p + i) % 5) as f64))
                    })
                    .collect()
            })
            .collect();
        let opts = CurveOptions { n_subsets: 200, exact_up_to: 0, ..CurveOptions::default() };
        let c = curves(&problems, &opts);
        assert_eq!(c.iter().map(|p| p.k).collect::<Vec<_>>(), [1, 2, 4, 8]);
        let last = c.last().unwrap();
        let exact_maj: f64 =
            problems.iter().map(|p| exact_selection(p, 8, Selector::Majority)).sum::<f64>() / problems.len() as f64;
        assert!((last.maj.mean - exact_maj).abs() < 1e-12);
        for p in &c {
            for e in [Some(p.pass), Some(p.maj), p.best, p.weighted].into_iter().flatten() {
                assert!(e.lo <= e.mean && e.mean <= e.hi, "{p:?}");
            }
            // Coverage bounds every selection (up to the subsampling's noise).
            assert!(p.pass.mean + 0.05 >= p.maj.mean.max(p.best.unwrap().mean).max(p.weighted.unwrap().mean));
        }
        // Pass@k never falls as k grows.
        assert!(c.windows(2).all(|w| w[1].pass.mean >= w[0].pass.mean));
        // Same seed, same curves.
        assert_eq!(c, curves(&problems, &opts));
    }
}
