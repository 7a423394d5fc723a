//! Sequential Monte Carlo over reasoning steps: the machinery particle filtering and
//! particle Gibbs share (Puri et al. 2025, arXiv:2502.01618; conditional SMC after Andrieu,
//! Doucet & Holenstein 2010). A *sweep* is one particle-filtering run, optionally beside a
//! reference trajectory; [`softmax`], [`ess`] and [`resample`] are the weighting math.
//!
//! A sweep over N particles:
//! 1 fork the prompt into N particles (N − 1 beside a reference)
//! 2 extend every unfinished particle by one step (one batch) and score the new steps
//! 3 log-weight of each particle = logit(aggregated score clamped to [1e-6, 1 - 1e-6]) /
//!   `temperature` (the PRM score read as a likelihood); weights = softmax over all N
//!   particles, finished ones included
//! 4 if the effective sample size 1/Σw² falls below `ess_threshold`·N, draw N ancestors
//!   (multinomial or systematic, ChaCha8 seeded by `derive_seed(seed, step)`): an
//!   unfinished ancestor drawn c times goes on as itself plus c−1 forks (KV shared); a
//!   finished ancestor is absorbing: each copy stays in the finished pool and is never
//!   extended or forked again; particles drawn zero times are released at once
//! 5 repeat from 2 until every particle finished or after `max_steps` steps
//!
//! [`pick`]: among the finished particles (all particles when none finished), the one with
//! the highest weight (`FinalPick::Argmax`) or one drawn by weight (`FinalPick::Sample`).

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::search::{Searcher, StepConfig};
use super::spec::ConfigError;
use super::{StrategyError, Track};
use crate::generator::{derive_seed, BranchId, GenError};

/// How the particles are redrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    /// N independent draws from the weights.
    #[default]
    Multinomial,
    /// One uniform offset, N evenly spaced points (lower variance).
    Systematic,
}

/// How the answer is picked among the finished particles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinalPick {
    /// The particle with the highest weight.
    #[default]
    Argmax,
    /// A particle drawn in proportion to its weight (the paper's posterior sample).
    Sample,
}

/// The knobs of one SMC run, as particle filtering and particle Gibbs configure it.
#[derive(Debug, Clone, PartialEq)]
pub struct Smc {
    pub resampling: Resampling,
    /// Resample only when the effective sample size falls below this fraction of N
    /// (1.0: every step).
    pub ess_threshold: f64,
    /// Softmax temperature on the log-weights.
    pub temperature: f64,
    pub final_pick: FinalPick,
    pub step: StepConfig,
}

impl Smc {
    /// The defaults of both SMC strategies.
    pub fn standard() -> Smc {
        Smc {
            resampling: Resampling::Multinomial,
            ess_threshold: 1.0,
            temperature: 1.0,
            final_pick: FinalPick::Argmax,
            step: StepConfig::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let (e, t) = (self.ess_threshold, self.temperature);
        ConfigError::check((0.0..=1.0).contains(&e), "ess_threshold", || format!("must be in [0, 1], got {e}"))?;
        ConfigError::check(t.is_finite() && t > 0.0, "temperature", || format!("must be a finite number > 0, got {t}"))?;
        self.step.validate()
    }

    /// What a sweep cannot run without, for a strategy built directly rather than from a
    /// spec: a temperature the log-weights can be divided by.
    pub(crate) fn check(&self) -> Result<(), StrategyError> {
        let t = self.temperature;
        if t.is_finite() && t > 0.0 {
            Ok(())
        } else {
            Err(GenError::InvalidRequest(format!("temperature must be a finite number > 0, got {t}")).into())
        }
    }
}

/// One step of a particle-filtering sweep, for tests and reports.
#[derive(Debug, Clone, PartialEq)]
pub struct PfStep {
    /// Particle Gibbs sweep (0 for particle filtering).
    pub sweep: usize,
    /// 1 for the first step.
    pub step: usize,
    /// Aggregated score of each of the N particles, in slot order.
    pub scores: Vec<f64>,
    /// Which particles are finished, in slot order.
    pub finished: Vec<bool>,
    /// Normalised weights of all N particles, finished ones included, in slot order.
    pub weights: Vec<f64>,
    /// Effective sample size of `weights`.
    pub ess: f64,
    /// Particles not finished after this step's extension.
    pub running: usize,
    /// Whether the particles were resampled after this step.
    pub resampled: bool,
}

/// A particle's log-weight: the logit of its score (clamped away from 0 and 1) over the
/// temperature.
pub fn log_weight(score: f64, temperature: f64) -> f64 {
    let p = score.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln() / temperature
}

/// Normalised exponentials of `xs`, computed stably. `+∞` entries share all the mass;
/// when nothing is finite and above `-∞` the weights are uniform.
pub fn softmax(xs: &[f64]) -> Vec<f64> {
    let max = xs.iter().copied().filter(|x| !x.is_nan()).fold(f64::NEG_INFINITY, f64::max);
    let raw: Vec<f64> = if max == f64::INFINITY {
        xs.iter().map(|&x| if x == f64::INFINITY { 1.0 } else { 0.0 }).collect()
    } else if max == f64::NEG_INFINITY {
        vec![1.0; xs.len()]
    } else {
        xs.iter().map(|&x| if x.is_nan() { 0.0 } else { (x - max).exp() }).collect()
    };
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|w| w / total).collect()
}

/// Effective sample size 1/Σw² of normalised weights (N for uniform weights, 1 when one
/// particle holds all the mass); 0 for no weights.
pub fn ess(weights: &[f64]) -> f64 {
    let sq: f64 = weights.iter().map(|w| w * w).sum();
    if sq > 0.0 {
        1.0 / sq
    } else {
        0.0
    }
}

/// `n` ancestor indices drawn in proportion to `weights`, in ascending order. Non-finite or
/// negative weights count as 0; when no weight is positive every index is equally likely.
/// Multinomial: `n` independent draws. Systematic: one uniform offset u, points (i + u)/n;
/// index i is then drawn floor(n·wᵢ) or ceil(n·wᵢ) times.
pub fn resample<R: Rng + ?Sized>(weights: &[f64], n: usize, scheme: Resampling, rng: &mut R) -> Vec<usize> {
    if weights.is_empty() || n == 0 {
        return Vec::new();
    }
    let mut clean: Vec<f64> = weights.iter().map(|&w| if w.is_finite() && w > 0.0 { w } else { 0.0 }).collect();
    if !clean.iter().sum::<f64>().is_normal() {
        clean = vec![1.0; weights.len()];
    }
    let cum: Vec<f64> = clean
        .iter()
        .scan(0.0, |acc, &w| {
            *acc += w;
            Some(*acc)
        })
        .collect();
    let total = cum[cum.len() - 1];
    // Never past the last index with mass, whatever rounding does at the top end.
    let last = clean.iter().rposition(|&w| w > 0.0).unwrap_or(0);
    let find = |u: f64| cum.partition_point(|&c| c <= u).min(last);
    let mut out: Vec<usize> = match scheme {
        Resampling::Multinomial => (0..n).map(|_| find(rng.gen::<f64>() * total)).collect(),
        Resampling::Systematic => {
            let u = rng.gen::<f64>();
            (0..n).map(|i| find((i as f64 + u) / n as f64 * total)).collect()
        }
    };
    out.sort_unstable();
    out
}


/// The weights of all particles.
pub(crate) fn weights(particles: &[Track], smc: &Smc) -> Vec<f64> {
    let logs: Vec<f64> =
        particles.iter().map(|p| log_weight(p.score(smc.step.aggregate), smc.temperature)).collect();
    softmax(&logs)
}

/// The RNG stream of step `step` of sweep `sweep` (step 0: the final pick).
pub(crate) fn rng_for(seed: u64, sweep: usize, step: usize, smc: &Smc) -> ChaCha8Rng {
    let stream = (sweep as u64).wrapping_mul(smc.step.steps() as u64 + 1).wrapping_add(step as u64);
    ChaCha8Rng::seed_from_u64(derive_seed(seed, stream))
}

/// One particle-filtering run.
pub(crate) struct Sweep<'r> {
    pub n: usize,
    /// Sweep number, for seeds and the trace.
    pub index: usize,
    /// Particle Gibbs: the previous sweep's pick. It holds slot 0 and is never resampled
    /// away; at step t it stands as its first t steps with their (reused) scores, and
    /// copies of that prefix are forks of its branch rolled back to it.
    pub reference: Option<&'r Track>,
    /// Use the root branch as a particle (it is not needed afterwards).
    pub consume_root: bool,
}

/// Runs one sweep; returns the final particles (N slots) and their weights.
pub(crate) async fn sweep(
    s: &mut Searcher<'_>,
    smc: &Smc,
    seed: u64,
    sweep: Sweep<'_>,
    trace: &mut Vec<PfStep>,
) -> Result<(Vec<Track>, Vec<f64>), StrategyError> {
    let r = usize::from(sweep.reference.is_some());
    let n = sweep.n.max(r);
    let fresh = n - r;
    let root = s.root();
    let mut particles: Vec<Track> = sweep.reference.iter().map(|t| t.prefix(0)).collect();
    if fresh > 0 {
        particles.extend(if sweep.consume_root { s.expand(root, fresh).await? } else { s.fork(&root, fresh).await? });
    }
    for step in 1..=smc.step.steps() {
        s.advance(&mut particles[r..]).await?;
        if let Some(reference) = sweep.reference {
            particles[0] = reference.prefix(step);
        }
        let w = weights(&particles, smc);
        let e = ess(&w);
        let running = particles.iter().filter(|p| !p.is_finished()).count();
        let resampled = running > 0 && step < smc.step.steps() && e < smc.ess_threshold * n as f64;
        trace.push(PfStep {
            sweep: sweep.index,
            step,
            scores: particles.iter().map(|p| p.score(smc.step.aggregate)).collect(),
            finished: particles.iter().map(Track::is_finished).collect(),
            weights: w.clone(),
            ess: e,
            running,
            resampled,
        });
        if resampled {
            let mut rng = rng_for(seed, sweep.index, step, smc);
            let mut ancestors = resample(&w, fresh, smc.resampling, &mut rng);
            if r == 1 {
                // Conditional SMC: the reference keeps its slot whatever is drawn.
                ancestors.insert(0, 0);
            }
            particles = regenerate(s, particles, &ancestors, r == 1).await?;
        }
        // Done when nothing runs, also when resampling drew finished particles only.
        if particles.iter().all(Track::is_finished) {
            break;
        }
    }
    // The last step's weights, or those of its copies when a last resampling drew only finished particles.
    let w = weights(&particles, smc);
    Ok((particles, w))
}

/// The particle set after resampling: `ancestors` (ascending) name the old slots copied.
async fn regenerate(
    s: &mut Searcher<'_>,
    old: Vec<Track>,
    ancestors: &[usize],
    has_reference: bool,
) -> Result<Vec<Track>, StrategyError> {
    let mut new = Vec::with_capacity(ancestors.len());
    let mut i = 0;
    while i < ancestors.len() {
        let a = ancestors[i];
        let count = ancestors[i..].iter().take_while(|&&x| x == a).count();
        i += count;
        let p = &old[a];
        if p.is_finished() {
            // Absorbing: a finished particle is never forked or extended again.
            new.extend(std::iter::repeat_n(p.clone(), count));
        } else if has_reference && a == 0 {
            // The reference's branch holds its whole text: its prefix copies are forks rolled back.
            new.push(p.clone());
            for c in s.fork(p, count - 1).await? {
                s.rollback(c.branch, c.n_tokens).await?;
                new.push(c);
            }
        } else {
            new.extend(s.expand(p.clone(), count).await?);
        }
    }
    let kept: HashSet<BranchId> = new.iter().map(|p| p.branch).collect();
    s.release(old.iter().map(|p| p.branch).filter(|b| !kept.contains(b))).await?;
    Ok(new)
}

/// The answer pool (finished particles, else all) and the pick's position in it.
pub(crate) fn pick(
    particles: Vec<Track>,
    weights: &[f64],
    how: FinalPick,
    rng: &mut ChaCha8Rng,
) -> (Vec<Track>, Option<usize>) {
    let any_finished = particles.iter().any(Track::is_finished);
    let (pool, w): (Vec<Track>, Vec<f64>) =
        particles.into_iter().zip(weights.iter().copied()).filter(|(p, _)| !any_finished || p.is_finished()).unzip();
    let chosen = match how {
        FinalPick::Argmax => {
            let mut best: Option<usize> = None;
            for (i, &x) in w.iter().enumerate() {
                if best.is_none_or(|b| x > w[b]) {
                    best = Some(i);
                }
            }
            best
        }
        FinalPick::Sample => resample(&w, 1, Resampling::Multinomial, rng).first().copied(),
    };
    (pool, chosen)
}

