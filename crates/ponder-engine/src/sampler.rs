//! Per-sequence token sampling from raw logits: temperature, top-k, top-p, min-p and a
//! seeded RNG per sequence, so a sample's tokens never depend on what else is in the batch.
//!
//! Written here rather than with llama.cpp's sampler chain because every sample needs the
//! chosen token's log-probability under the untempered distribution, and one RNG per
//! sequence that forks deterministically.

use ponder_core::SamplingParams;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The chosen token and its log-probability under softmax(logits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Picked {
    pub token: usize,
    pub logprob: f32,
}

/// Picks the next token. `logits` must be non-empty.
pub fn pick(logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> Picked {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let token = if params.is_greedy() { argmax(logits) } else { sample(logits, max, params, rng) };
    Picked { token, logprob: logits[token] - log_z }
}

fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

fn sample(logits: &[f32], max: f32, params: &SamplingParams, rng: &mut ChaCha8Rng) -> usize {
    let inv_t = 1.0 / params.temperature;
    let weight = |l: f32| ((l - max) * inv_t).exp();
    if params.top_k == 0 && params.top_p >= 1.0 && params.min_p <= 0.0 {
        // Plain temperature sampling: two passes over the logits, no allocation.
        let total: f32 = logits.iter().map(|&l| weight(l)).sum();
        let mut x = rng.gen::<f32>() * total;
        for (i, &l) in logits.iter().enumerate() {
            let w = weight(l);
            if x < w {
                return i;
            }
            x -= w;
        }
        return argmax(logits);
    }
    // (token, probability before normalisation), most likely first once truncated.
    let mut cand: Vec<(usize, f32)> = logits.iter().enumerate().map(|(i, &l)| (i, weight(l))).collect();
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn params(t: f32) -> SamplingParams {
        SamplingParams { temperature: t, ..SamplingParams::default() }
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

/// Log-probabilities of `tokens` under the untempered distribution of `logits`.
pub fn log_probs_of(logits: &[f32], tokens: &[llama_cpp_2::token::LlamaToken]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    tokens
        .iter()
        .map(|t| logits.get(t.0 as usize).map_or(f32::NEG_INFINITY, |&l| l - log_z))
        .collect()
}
