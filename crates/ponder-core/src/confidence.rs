//! Trace confidence from per-token statistics, as DeepConf defines it (Fu et al., 2025,
//! "Deep Think with Confidence", §3.1).
//!
//! A token's confidence is minus the mean log-probability of the k most likely tokens
//! ([`crate::TokenStats::confidence`]). A *group* is a sliding window of consecutive tokens;
//! its confidence is the mean over the window. Whole traces are summarised by their
//! lowest group, the mean of their bottom fraction of groups, or their tail.

use std::collections::VecDeque;

use crate::TokenStats;

/// A token's statistics from the log-probabilities of the `k` most likely tokens that a
/// server returns (`top_logprobs`, untempered), for backends that cannot see the logits.
/// The confidence is exact for those k; the entropy sums only their terms, so it is a
/// lower bound of the full distribution's (each left-out term is positive).
pub fn stats_from_top(top: &[f32]) -> TokenStats {
    let finite: Vec<f64> = top.iter().filter(|x| x.is_finite()).map(|&x| f64::from(x)).collect();
    if finite.is_empty() {
        return TokenStats { confidence: 0.0, entropy: 0.0 };
    }
    let confidence = -finite.iter().sum::<f64>() / finite.len() as f64;
    let entropy = finite.iter().map(|&l| -l.exp() * l).sum::<f64>();
    TokenStats { confidence: confidence as f32, entropy: entropy.max(0.0) as f32 }
}

/// Where a trace stops under online termination: the index of the token whose group (the
/// last `window` tokens) first has a mean confidence under `threshold`, as the engine
/// stops it while generating. `None`: the trace runs to its own end.
pub fn first_low_group(conf: &[f32], window: usize, threshold: f32) -> Option<usize> {
    let mut g = GroupWindow::new(window);
    conf.iter().position(|&c| g.push(c).is_some_and(|m| m < threshold))
}

/// Group confidences: the mean over every window of `window` consecutive tokens, in
/// order. A trace shorter than one window is one group (its mean); empty gives none.
pub fn group_confidences(conf: &[f32], window: usize) -> Vec<f32> {
    let window = window.max(1);
    if conf.is_empty() {
        return Vec::new();
    }
    if conf.len() <= window {
        return vec![mean(conf)];
    }
    let mut out = Vec::with_capacity(conf.len() - window + 1);
    let mut g = GroupWindow::new(window);
    for &c in conf {
        if let Some(m) = g.push(c) {
            out.push(m);
        }
    }
    out
}

/// The lowest group confidence (DeepConf's "lowest group confidence").
pub fn lowest_group(conf: &[f32], window: usize) -> Option<f32> {
    group_confidences(conf, window).into_iter().reduce(f32::min)
}

/// The mean of the lowest `fraction` of group confidences ("bottom-10% group
/// confidence" at 0.1); at least one group.
pub fn bottom_groups(conf: &[f32], window: usize, fraction: f64) -> Option<f32> {
    let mut groups = group_confidences(conf, window);
    if groups.is_empty() {
        return None;
    }
    groups.sort_by(f32::total_cmp);
    let take = ((groups.len() as f64 * fraction.clamp(0.0, 1.0)).ceil() as usize).max(1);
    Some(mean(&groups[..take]))
}

/// The mean confidence of the last `tail` tokens ("tail confidence").
pub fn tail(conf: &[f32], tail: usize) -> Option<f32> {
    (!conf.is_empty()).then(|| mean(&conf[conf.len().saturating_sub(tail.max(1))..]))
}

/// The `q`-quantile (0..=1) of `values` by linear interpolation; the online threshold is
/// a percentile of the warm-up traces' lowest group confidences.
pub fn quantile(values: &[f32], q: f64) -> Option<f32> {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = (pos - lo as f64) as f32;
    Some(v[lo] + (v[hi] - v[lo]) * frac)
}

fn mean(xs: &[f32]) -> f32 {
    (xs.iter().map(|&x| f64::from(x)).sum::<f64>() / xs.len() as f64) as f32
}

/// A running group: push token confidences one at a time; once `window` tokens are in,
/// each push returns the current group's mean. What a backend checks while generating.
#[derive(Debug, Clone)]
pub struct GroupWindow {
    window: usize,
    values: VecDeque<f32>,
    sum: f64,
}

impl GroupWindow {
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        Self { window, values: VecDeque::with_capacity(window), sum: 0.0 }
    }

    /// Adds one token's confidence; the window's mean once it is full.
    pub fn push(&mut self, c: f32) -> Option<f32> {
        self.values.push_back(c);
        self.sum += f64::from(c);
        if self.values.len() > self.window {
            self.sum -= f64::from(self.values.pop_front().expect("longer than the window"));
        }
        if self.values.len() == self.window {
            Some((self.sum / self.window as f64) as f32)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stats_from_a_servers_top_logprobs() {
        let s = stats_from_top(&[-0.1, -2.5, f32::NEG_INFINITY]);
        assert!((s.confidence - 1.3).abs() < 1e-6, "mean of the finite ones: {s:?}");
        let h = -(-0.1f64).exp() * -0.1 - (-2.5f64).exp() * -2.5;
        assert!((f64::from(s.entropy) - h).abs() < 1e-6);
        assert_eq!(stats_from_top(&[]), TokenStats { confidence: 0.0, entropy: 0.0 });
    }

    #[test]
    fn online_termination_stops_at_the_first_low_group() {
        let c = [5.0, 5.0, 1.0, 1.0, 5.0];
        assert_eq!(first_low_group(&c, 2, 2.0), Some(3), "groups 5, 3, 1: the third ends at token 3");
        assert_eq!(first_low_group(&c, 2, 0.5), None);
        assert_eq!(first_low_group(&c, 9, 9.0), None, "no full window, no stop");
    }

    #[test]
    fn groups_slide_over_the_trace() {
        let c = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(group_confidences(&c, 2), vec![1.5, 2.5, 3.5]);
        assert_eq!(group_confidences(&c, 9), vec![2.5], "shorter than a window: one group");
        assert!(group_confidences(&[], 3).is_empty());
        assert_eq!(lowest_group(&c, 2), Some(1.5));
        assert_eq!(bottom_groups(&c, 2, 0.5), Some(2.0), "lowest two of three groups");
        assert_eq!(bottom_groups(&c, 2, 0.0), Some(1.5), "at least one group");
        assert_eq!(tail(&c, 2), Some(3.5));
        assert_eq!(tail(&c, 10), Some(2.5));
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert_eq!(quantile(&[f32::NAN], 0.5), None);
    }

    proptest! {
        #[test]
        fn the_running_window_agrees_with_the_batch_groups(
            conf in prop::collection::vec(0.0f32..30.0, 1..200), window in 1usize..40,
        ) {
            let mut g = GroupWindow::new(window);
            let running: Vec<f32> = conf.iter().filter_map(|&c| g.push(c)).collect();
            let batch = group_confidences(&conf, window);
            if conf.len() >= window {
                prop_assert_eq!(running.len(), batch.len());
                for (a, b) in running.iter().zip(&batch) {
                    prop_assert!((a - b).abs() < 1e-3, "{} vs {}", a, b);
                }
            } else {
                prop_assert!(running.is_empty());
            }
        }
    }
}
