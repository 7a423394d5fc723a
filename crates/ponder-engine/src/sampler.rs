//! Per-sequence token sampling from raw logits: temperature, top-k, top-p, min-p and a
//! seeded RNG per sequence, so a sample's tokens never depend on what else is in the batch.
//!
//! Written here rather than with llama.cpp's sampler chain because every sample needs the
//! chosen token's log-probability under the untempered distribution, and one RNG per
//! sequence that forks deterministically.
//!
//! Cost matters: the actor samples every sequence of a step while llama.cpp's threads wait,
//! and Qwen's vocabulary has 152k entries. The passes over the logits are written lane-wise
//! (16 independent accumulators) so they vectorise, `exp` is a polynomial accurate to about
//! one ulp that vectorises too, and the weights are written once with per-block sums, so
//! the draw walks 600 block sums and one block instead of recomputing 76k exponentials.
//! `ponder bench engine` reports the cost per token.

use ponder_core::SamplingParams;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The chosen token and its log-probability under softmax(logits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Picked {
    pub token: usize,
    pub logprob: f32,
}

/// Independent accumulators per pass: enough for two AVX2 registers of f32.
const LANES: usize = 16;
/// Weights per block sum: the draw scans block sums, then one block.
const BLOCK: usize = 256;

/// Scratch buffers reused across picks, so sampling allocates nothing per token.
#[derive(Debug, Default)]
pub struct Sampler {
    weights: Vec<f32>,
    block_sums: Vec<f32>,
}

/// Picks the next token with a throwaway [`Sampler`]. `logits` must be non-empty.
pub fn pick(logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> Picked {
    Sampler::default().pick(logits, params, rng)
}

impl Sampler {
    /// Picks the next token. `logits` must be non-empty.
    pub fn pick(&mut self, logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> Picked {
        let max = max_of(logits);
        if params.is_greedy() {
            let token = argmax(logits);
            return Picked { token, logprob: logits[token] - log_partition(logits, max) };
        }
        let inv_t = 1.0 / params.temperature;
        let total = self.fill_weights(logits, max, inv_t);
        let plain = params.top_k == 0 && params.top_p >= 1.0 && params.min_p <= 0.0;
        let token = if plain {
            self.draw(total, rng.gen::<f32>()).unwrap_or_else(|| argmax(logits))
        } else {
            self.truncated(params, total, rng)
        };
        // At temperature 1 the weights are already the untempered ones.
        let log_z = if inv_t == 1.0 { max + total.ln() } else { log_partition(logits, max) };
        Picked { token, logprob: logits[token] - log_z }
    }

    /// Writes exp((l - max) / T) for every logit, with a sum per block; returns the total.
    fn fill_weights(&mut self, logits: &[f32], max: f32, inv_t: f32) -> f32 {
        self.weights.resize(logits.len(), 0.0);
        self.block_sums.clear();
        for (l, w) in logits.chunks(BLOCK).zip(self.weights.chunks_mut(BLOCK)) {
            let mut acc = [0f32; LANES];
            let mut lc = l.chunks_exact(LANES);
            let mut wc = w.chunks_exact_mut(LANES);
            for (li, wi) in (&mut lc).zip(&mut wc) {
                for k in 0..LANES {
                    let e = exp_nonpositive((li[k] - max) * inv_t);
                    wi[k] = e;
                    acc[k] += e;
                }
            }
            let mut sum: f32 = acc.iter().sum();
            for (li, wi) in lc.remainder().iter().zip(wc.into_remainder()) {
                *wi = exp_nonpositive((li - max) * inv_t);
                sum += *wi;
            }
            self.block_sums.push(sum);
        }
        self.block_sums.iter().sum()
    }

    /// The token at which the running sum of weights passes `u * total`.
    fn draw(&self, total: f32, u: f32) -> Option<usize> {
        let mut x = u * total;
        for (b, &s) in self.block_sums.iter().enumerate() {
            if x < s {
                let start = b * BLOCK;
                for (i, &w) in self.weights[start..(start + BLOCK).min(self.weights.len())].iter().enumerate() {
                    if x < w {
                        return Some(start + i);
                    }
                    x -= w;
                }
                // Rounding inside the block: its last token with any weight.
                return self.weights[start..(start + BLOCK).min(self.weights.len())]
                    .iter()
                    .rposition(|&w| w > 0.0)
                    .map(|i| start + i);
            }
            x -= s;
        }
        None
    }

    /// Top-k, min-p and top-p over the weights already written (summing to `total`), then a
    /// draw among the rest.
    fn truncated(&self, params: &SamplingParams, total: f32, rng: &mut ChaCha8Rng) -> usize {
        // Tokens that cannot survive are left out before anything is sorted: under min-p's
        // floor (the top weight is exp(0) = 1), and, without top-k, under the weight below
        // which all tokens together hold less than 1 - top_p of the mass, so the nucleus,
        // the smallest most-likely prefix holding top_p, never reaches them.
        let min_floor = params.min_p.max(0.0);
        let mut floor = min_floor;
        if params.top_p < 1.0 && params.top_k == 0 {
            let kept: f32 =
                if min_floor > 0.0 { self.weights.iter().filter(|&&w| w >= min_floor).sum() } else { total };
            floor = floor.max((1.0 - params.top_p) * kept / self.weights.len() as f32);
        }
        // (token, probability before normalisation), most likely first once truncated.
        let mut cand: Vec<(usize, f32)> =
            self.weights.iter().copied().enumerate().filter(|&(_, w)| w >= floor).collect();
        let by_prob_desc = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let k = params.top_k as usize;
        if k > 0 && k < cand.len() {
            cand.select_nth_unstable_by(k - 1, by_prob_desc);
            cand.truncate(k);
        }
        if params.min_p > 0.0 {
            // The top token has weight exp(0) = 1 after subtracting the max logit.
            let floor = params.min_p * cand.iter().map(|c| c.1).fold(0.0, f32::max);
            cand.retain(|c| c.1 >= floor);
        }
        if params.top_p < 1.0 {
            cand.sort_unstable_by(by_prob_desc);
            let total: f32 = cand.iter().map(|c| c.1).sum();
            let mut acc = 0.0;
            let mut keep = cand.len();
            for (i, c) in cand.iter().enumerate() {
                acc += c.1;
                if acc >= params.top_p * total {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep);
        }
        let total: f32 = cand.iter().map(|c| c.1).sum();
        let mut x = rng.gen::<f32>() * total;
        for &(i, p) in &cand {
            if x < p {
                return i;
            }
            x -= p;
        }
        // Rounding can leave x just above the last weight.
        cand.last().map_or(0, |c| c.0)
    }
}

/// DeepConf's statistics of the untempered distribution of `logits`: minus the mean
/// log-probability of the `k` most likely tokens, and the entropy. Two passes: one
/// lane-wise for the partition function and entropy, one that keeps the top `k` logits
/// (almost every logit is rejected by one comparison with the current k-th).
pub fn token_stats(logits: &[f32], k: usize) -> ponder_core::TokenStats {
    let max = max_of(logits);
    // With w = exp(l - max) and Z = Σw: H = ln Z - Σ w·(l - max) / Z.
    let mut zs = [0f32; LANES];
    let mut ws = [0f32; LANES];
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..LANES {
            let d = c[j] - max;
            let w = exp_nonpositive(d);
            zs[j] += w;
            // exp underflows to 0 below -87; 0·(-inf) would be NaN for masked logits.
            ws[j] += if w > 0.0 { w * d } else { 0.0 };
        }
    }
    let mut z: f32 = zs.iter().sum();
    let mut wd: f32 = ws.iter().sum();
    for &l in rest {
        let w = exp_nonpositive(l - max);
        z += w;
        if w > 0.0 {
            wd += w * (l - max);
        }
    }
    let log_z = max + z.ln();
    let entropy = (z.ln() - wd / z).max(0.0);

    let k = k.clamp(1, logits.len());
    // Ascending, so top[0] is the bar a logit must clear.
    let mut top: Vec<f32> = Vec::with_capacity(k + 1);
    for &l in logits {
        // A masked token (-inf) has no log-probability to average.
        if (top.len() == k && l <= top[0]) || l == f32::NEG_INFINITY {
            continue;
        }
        let at = top.partition_point(|&t| t < l);
        top.insert(at, l);
        if top.len() > k {
            top.remove(0);
        }
    }
    let mean_logprob = top.iter().map(|&l| f64::from(l - log_z)).sum::<f64>() / top.len().max(1) as f64;
    ponder_core::TokenStats { confidence: -mean_logprob as f32, entropy }
}

/// log Σ exp(l), given the largest logit.
fn log_partition(logits: &[f32], max: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] += exp_nonpositive(c[k] - max);
        }
    }
    let sum: f32 = acc.iter().sum::<f32>() + rest.iter().map(|&l| exp_nonpositive(l - max)).sum::<f32>();
    max + sum.ln()
}

fn max_of(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] = acc[k].max(c[k]);
        }
    }
    acc.iter().chain(rest).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// The first index of the largest logit (0 when none is above -inf).
fn argmax(xs: &[f32]) -> usize {
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut at = [usize::MAX; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    let rest_from = xs.len() - rest.len();
    for (c, chunk) in chunks.enumerate() {
        for k in 0..LANES {
            // Strictly greater: within a lane the earlier index wins a tie.
            if chunk[k] > best[k] {
                best[k] = chunk[k];
                at[k] = c * LANES + k;
            }
        }
    }
    let lanes = best.into_iter().zip(at).filter(|&(_, i)| i != usize::MAX);
    let tail = rest.iter().copied().zip(rest_from..).filter(|&(v, _)| v > f32::NEG_INFINITY);
    let mut winner: Option<(f32, usize)> = None;
    for (v, i) in lanes.chain(tail) {
        let better = match winner {
            None => true,
            Some((w, j)) => v > w || (v == w && i < j),
        };
        if better {
            winner = Some((v, i));
        }
    }
    winner.map_or(0, |(_, i)| i)
}

/// exp(x) for x ≤ 0 (a logit minus the largest one), to about one ulp; 0 below -87, where
/// f32's exp underflows. Cody–Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, and a degree-6
/// polynomial for exp(r). n is rounded by adding 1.5·2²³ (its low mantissa bits are then n)
/// rather than by a float-to-int conversion, and there are no branches: a loop over it
/// vectorises, about 3.5 times faster than one with `floor` and `as i32` on AVX2.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const SHIFT: f32 = 12_582_912.0;
    let xc = if x < -87.0 { -87.0 } else { x };
    let t = xc * LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n sits in t's low mantissa bits as a two's-complement integer: shifted up, it is the
    // exponent field of 2^n once the bias is added.
    let scale = f32::from_bits((t.to_bits() << 23).wrapping_add(127 << 23));
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// Log-probabilities of `tokens` under the untempered distribution of `logits`.
pub fn log_probs_of(logits: &[f32], tokens: &[llama_cpp_2::token::LlamaToken]) -> Vec<f32> {
    let log_z = log_partition(logits, max_of(logits));
    tokens.iter().map(|t| logits.get(t.0 as usize).map_or(f32::NEG_INFINITY, |&l| l - log_z)).collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// The statistics computed the slow, obvious way in f64.
    fn reference_stats(logits: &[f32], k: usize) -> (f64, f64) {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        let log_z = max + z.ln();
        let entropy: f64 = logits
            .iter()
            .map(|&l| {
                let lp = l as f64 - log_z;
                if lp.exp() > 0.0 { -lp.exp() * lp } else { 0.0 }
            })
            .sum();
        let mut sorted: Vec<f64> = logits.iter().map(|&l| l as f64 - log_z).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let conf = -sorted[..k.min(sorted.len())].iter().sum::<f64>() / k.min(sorted.len()) as f64;
        (conf, entropy)
    }

    #[test]
    fn token_stats_match_the_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (n, k, spread) in [(5usize, 20usize, 1.0f32), (1000, 20, 4.0), (152_064, 20, 6.0), (49_152, 5, 2.0)] {
            let logits: Vec<f32> = (0..n).map(|_| rng.gen::<f32>() * spread * 4.0 - spread).collect();
            let got = token_stats(&logits, k);
            let (conf, ent) = reference_stats(&logits, k);
            assert!((got.confidence as f64 - conf).abs() < 1e-3 * conf.abs().max(1.0), "n {n}: {} vs {conf}", got.confidence);
            assert!((got.entropy as f64 - ent).abs() < 1e-3 * ent.max(1.0), "n {n}: {} vs {ent}", got.entropy);
        }
        // A peaked distribution is confident and has low entropy; a flat one the opposite.
        let mut peaked = vec![0.0f32; 1000];
        peaked[3] = 30.0;
        let flat = vec![0.0f32; 1000];
        let (p, f) = (token_stats(&peaked, 20), token_stats(&flat, 20));
        assert!(p.confidence > f.confidence && p.entropy < f.entropy, "{p:?} {f:?}");
        assert!((f.entropy - (1000f32).ln()).abs() < 1e-3 && (f.confidence - (1000f32).ln()).abs() < 1e-3, "{f:?}");
        // Masked logits (-inf) neither poison the sums nor enter the top k.
        let mut masked = vec![f32::NEG_INFINITY; 100];
        masked[0] = 1.0;
        masked[1] = 1.0;
        let m = token_stats(&masked, 20);
        assert!(m.entropy.is_finite() && (m.entropy - 2f32.ln()).abs() < 1e-4, "{m:?}");
        assert!((m.confidence - 2f32.ln()).abs() < 1e-4, "only the two finite tokens count: {m:?}");
    }

    fn params(t: f32) -> SamplingParams {
        SamplingParams { temperature: t, ..SamplingParams::default() }
    }

    #[test]
    fn fast_exp_matches_libm() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_731;
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-88.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn passes_agree_with_serial_scans() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for n in [1, 15, 16, 17, 255, 256, 257, 4099] {
            let logits: Vec<f32> = (0..n).map(|_| rng.gen_range(-30.0..30.0)).collect();
            let serial_max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max_of(&logits), serial_max);
            let serial_arg = logits.iter().position(|&l| l == serial_max).unwrap_or(0);
            assert_eq!(argmax(&logits), serial_arg, "n={n}");
            let serial_lz = serial_max + logits.iter().map(|&l| (l - serial_max).exp()).sum::<f32>().ln();
            assert!((log_partition(&logits, serial_max) - serial_lz).abs() < 1e-4, "n={n}");
        }
        // Ties go to the first index, across lanes and the remainder.
        let mut tied = vec![0.0f32; 40];
        tied[33] = 2.0;
        tied[5] = 2.0;
        assert_eq!(argmax(&tied), 5);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
    }

    #[test]
    fn greedy_picks_argmax_with_exact_logprob() {
        let logits = [1.0, 3.0, 2.0];
        let p = pick(&logits, &params(0.0), &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(p.token, 1);
        let z: f32 = logits.iter().map(|l: &f32| l.exp()).sum();
        assert!((p.logprob - (3.0f32.exp() / z).ln()).abs() < 1e-5);
    }

    #[test]
    fn tempered_logprob_is_the_untempered_one() {
        let logits: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_z = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
        for t in [0.5, 1.0, 1.3] {
            let p = pick(&logits, &params(t), &mut rng);
            assert!((p.logprob - (logits[p.token] - log_z)).abs() < 1e-4, "t={t}");
        }
    }

    #[test]
    fn top_k_one_is_greedy() {
        let logits = [0.5, 0.1, 0.9, 0.2];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let p = SamplingParams { top_k: 1, ..params(1.5) };
            assert_eq!(pick(&logits, &p, &mut rng).token, 2);
        }
    }

    #[test]
    fn min_p_and_top_p_exclude_unlikely_tokens() {
        let logits = [5.0, 5.0, -5.0, -5.0];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            assert!(pick(&logits, &SamplingParams { min_p: 0.1, ..params(1.0) }, &mut rng).token < 2);
            assert!(pick(&logits, &SamplingParams { top_p: 0.9, ..params(1.0) }, &mut rng).token < 2);
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let logits = [0.0, (3.0f32).ln()]; // p = 0.25, 0.75
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let ones = (0..4000).filter(|_| pick(&logits, &params(1.0), &mut rng).token == 1).count();
        assert!((2800..3200).contains(&ones), "{ones}");
    }

    #[test]
    fn a_large_vocabulary_follows_the_distribution_across_blocks() {
        // Mass on four tokens in different blocks (and the remainder), the rest negligible.
        let mut logits = vec![-40.0f32; 151_936];
        for (i, p) in [(3usize, 0.1f32), (700, 0.2), (90_000, 0.3), (151_935, 0.4)] {
            logits[i] = p.ln();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut sampler = Sampler::default();
        let mut counts = std::collections::HashMap::new();
        let n = 20_000;
        for _ in 0..n {
            *counts.entry(sampler.pick(&logits, &params(1.0), &mut rng).token).or_insert(0usize) += 1;
        }
        for (i, p) in [(3usize, 0.1f64), (700, 0.2), (90_000, 0.3), (151_935, 0.4)] {
            let got = counts.get(&i).copied().unwrap_or(0) as f64 / n as f64;
            // Four standard errors of a binomial proportion.
            let tol = 4.0 * (p * (1.0 - p) / n as f64).sqrt();
            assert!((got - p).abs() < tol, "token {i}: {got} vs {p}");
        }
        assert_eq!(counts.values().sum::<usize>(), n);
        assert!(counts.len() <= 5, "negligible tokens drawn: {counts:?}");
    }

    #[test]
    fn prefiltered_top_p_keeps_exactly_the_nucleus() {
        // Against a full sort of every token: the same nucleus, so the same draws.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let logits: Vec<f32> = (0..5000).map(|_| rng.gen_range(-6.0f32..6.0)).collect();
        for (top_p, min_p) in [(0.9f32, 0.0f32), (0.5, 0.0), (0.95, 0.01), (0.999, 0.0)] {
            let params = SamplingParams { top_p, min_p, ..params(0.8) };
            let mut s = Sampler::default();
            let max = max_of(&logits);
            let total = s.fill_weights(&logits, max, 1.0 / 0.8);
            let mut full: Vec<(usize, f32)> =
                s.weights.iter().copied().enumerate().filter(|&(_, w)| w >= min_p).collect();
            full.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let kept: f32 = full.iter().map(|c| c.1).sum();
            let mut acc = 0.0;
            let nucleus: std::collections::HashSet<usize> = full
                .iter()
                .take_while(|c| {
                    let inside = acc < top_p * kept;
                    acc += c.1;
                    inside
                })
                .map(|c| c.0)
                .collect();
            let mut draws = ChaCha8Rng::seed_from_u64(3);
            for _ in 0..300 {
                let t = s.truncated(&params, total, &mut draws);
                assert!(nucleus.contains(&t), "top_p {top_p}: token {t} outside the nucleus of {}", nucleus.len());
            }
        }
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20).map(|_| pick(&logits, &params(1.0), &mut rng).token).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}
