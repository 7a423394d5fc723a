//! Strategy `auto`: applies a [`Policy`] from `ponder plan` (compute-optimal allocation,
//! Snell et al. 2024). Budget unit: the chosen bin's strategy's, probes included.
//! 1 draw the policy's probe samples
//! 2 measure their agreement (the size of the largest answer class) and look up the bin
//! 3 run the bin's strategy and budget on a generator that replays the probes: they are
//!   the very samples it would have drawn (a sample's seed depends only on the base seed
//!   and its index), so only the rest are asked of the backend ([`super::replay`]).
//! Fitting a policy is `ponder_eval::plan`'s job; its file is read there too.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::replay::Replay;
use super::spec::{ConfigError, Needs, StrategyConfig, StrategySpec};
use super::{Ctx, Outcome, Strategy, StrategyError};
use crate::generator::{SampleRequest, SamplingParams};
use crate::{Message, Problem};

/// `auto`'s configuration: the policy, inline (a spec file or a stored run then does not
/// depend on the policy file; the CLI fills it from `--policy FILE`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoConfig {
    pub policy: Option<Policy>,
}

impl StrategyConfig for AutoConfig {
    fn name(&self) -> &'static str {
        "auto"
    }
    fn about(&self) -> &'static str {
        "compute-optimal allocation (Snell et al. 2024): probe, bin by agreement, run the bin's strategy"
    }
    /// The most any bin may spend, probes included.
    fn budget(&self) -> usize {
        let Some(p) = &self.policy else { return 0 };
        p.specs().unwrap_or_default().iter().map(StrategySpec::budget).max().unwrap_or(0).max(p.probe)
    }
    fn budget_unit(&self) -> &'static str {
        "the chosen bin's unit (probe samples included)"
    }
    fn takes_budget(&self) -> bool {
        false
    }
    /// What any bin's strategy needs.
    fn needs(&self) -> Needs {
        let specs = self.policy.as_ref().and_then(|p| p.specs().ok()).unwrap_or_default();
        specs.iter().map(StrategySpec::needs).fold(Needs::default(), |a, b| Needs {
            scorer: a.scorer || b.scorer,
            process_scorer: a.process_scorer || b.process_scorer,
            session: a.session || b.session,
            verifier: a.verifier || b.verifier,
        })
    }
    fn validate(&self) -> Result<(), ConfigError> {
        let Some(p) = &self.policy else {
            return Err(ConfigError {
                field: "policy".into(),
                message: "is missing: give a policy file from `ponder plan` (--policy FILE)".into(),
            });
        };
        p.validate().map_err(|message| ConfigError { field: "policy".into(), message })
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        let policy = self.policy.clone().ok_or_else(|| StrategyError::InvalidConfig {
            strategy: "auto".into(),
            field: "policy".into(),
            message: "is missing".into(),
        })?;
        Ok(Box::new(Auto::new(policy, sampling)?))
    }
}

/// What strategy `auto` does: probe, find the bin, spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Format version (1).
    pub version: u32,
    /// Samples drawn first; their agreement (the size of the largest answer class, 0..=probe)
    /// picks the bin.
    pub probe: usize,
    /// Covering 0..=probe without gaps or overlaps, in order.
    pub bins: Vec<PolicyBin>,
    /// Where the policy was fitted, and what it promised there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted: Option<Fitted>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyBin {
    /// Agreement range, inclusive: the largest class among the probes has this many samples.
    pub min_agree: usize,
    pub max_agree: usize,
    pub strategy: String,
    pub budget: usize,
    /// Units of the fitting run in this bin, and what the choice achieved on them.
    #[serde(default)]
    pub n_units: usize,
    #[serde(default)]
    pub accuracy: f64,
    #[serde(default)]
    pub tokens_per_unit: f64,
}

impl PolicyBin {
    /// Its strategy: `strategy` is a shorthand, `budget` its `n` unless it says `@N`.
    pub fn spec(&self) -> Result<StrategySpec, StrategyError> {
        StrategySpec::parse(&self.strategy, Some(self.budget))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fitted {
    pub run: i64,
    pub dataset: String,
    pub model: String,
    pub n_units: usize,
    pub accuracy: f64,
    pub tokens_per_unit: f64,
    /// The best single strategy and budget of the run, for comparison.
    pub baseline: String,
    pub baseline_accuracy: f64,
    pub baseline_tokens_per_unit: f64,
    /// 1 − policy tokens / baseline tokens.
    pub savings: f64,
}

impl Policy {
    /// Checks the bins cover 0..=probe in order and name usable strategies.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!("unsupported version {} (this ponder reads version 1)", self.version));
        }
        if self.probe == 0 {
            return Err("probe must be at least 1".into());
        }
        let mut next = 0;
        for b in &self.bins {
            if b.min_agree != next || b.max_agree < b.min_agree {
                return Err(format!("bins must cover agreement 0..={} in order; bin {}..={} does not follow", self.probe, b.min_agree, b.max_agree));
            }
            if b.budget == 0 {
                return Err(format!("bin {}..={}: budget must be at least 1", b.min_agree, b.max_agree));
            }
            match b.spec() {
                Ok(StrategySpec::Auto(_)) => {
                    return Err(format!("bin {}..={}: strategy auto cannot be used inside a policy", b.min_agree, b.max_agree))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("bin {}..={}: {e}", b.min_agree, b.max_agree)),
            }
            next = b.max_agree + 1;
        }
        if next != self.probe + 1 {
            return Err(format!("bins must cover agreement 0..={}", self.probe));
        }
        Ok(())
    }

    /// The bins' strategies, in bin order.
    pub fn specs(&self) -> Result<Vec<StrategySpec>, StrategyError> {
        self.bins.iter().map(PolicyBin::spec).collect()
    }

    /// The bin for `agree` (clamped to 0..=probe).
    pub fn bin_for(&self, agree: usize) -> &PolicyBin {
        let agree = agree.min(self.probe);
        self.bins.iter().find(|b| (b.min_agree..=b.max_agree).contains(&agree)).unwrap_or_else(|| &self.bins[self.bins.len() - 1])
    }
}

/// The size of the largest answer class among `keys` (samples without an answer count for none).
pub fn agreement<'a>(keys: impl IntoIterator<Item = Option<&'a str>>) -> usize {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for k in keys.into_iter().flatten() {
        *counts.entry(k).or_default() += 1;
    }
    counts.values().copied().max().unwrap_or(0)
}

/// The `auto` strategy.
pub struct Auto {
    policy: Policy,
    sampling: SamplingParams,
    /// One per policy bin.
    strategies: Vec<Box<dyn Strategy>>,
}

impl Auto {
    /// Builds the bins' strategies, so a policy naming an unknown strategy fails here,
    /// before any model work.
    pub fn new(policy: Policy, sampling: SamplingParams) -> Result<Auto, StrategyError> {
        let strategies = policy.specs()?.iter().map(|s| s.build(sampling.clone())).collect::<Result<_, _>>()?;
        Ok(Auto { policy, sampling, strategies })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

#[async_trait]
impl Strategy for Auto {
    fn name(&self) -> &str {
        "auto"
    }

    /// The most samples any bin may draw, probes included.
    fn budget(&self) -> usize {
        self.strategies.iter().map(|s| s.budget()).max().unwrap_or(0).max(self.policy.probe)
    }

    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let req = SampleRequest { messages: messages.to_vec(), n: self.policy.probe, params: self.sampling.clone(), first_index: 0 };
        let probes = ctx.generator.sample(req).await?.collect().await?;
        let keys: Vec<Option<String>> = probes
            .samples
            .iter()
            .map(|s| ctx.answer_of(&s.text).map(|a| ctx.equivalence.key(&a)))
            .collect();
        let agree = agreement(keys.iter().map(|k| k.as_deref()));
        let bin = self.policy.bin_for(agree);
        let at = self.policy.bins.iter().position(|b| std::ptr::eq(b, bin)).unwrap_or(0);
        let strategy = &self.strategies[at];
        tracing::debug!(problem = %problem.id, agree, strategy = strategy.name(), budget = strategy.budget(), "auto picked");
        let replay = Replay {
            inner: ctx.generator,
            messages: messages.to_vec(),
            params: self.sampling.clone(),
            probes: probes.samples,
        };
        let sub = Ctx { generator: &replay, ..*ctx };
        let mut outcome = strategy.solve(problem, messages, &sub).await?;
        outcome.usage = probes.usage + outcome.usage;
        outcome.n_failed += probes.failures.len();
        outcome.strategy = format!("auto:{}@{}", strategy.name(), strategy.budget());
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{extract_answer, NumericEquivalence};
    use crate::testing::{Choice, ScriptedGenerator};

    fn bin(lo: usize, hi: usize, s: &str, b: usize) -> PolicyBin {
        PolicyBin { min_agree: lo, max_agree: hi, strategy: s.into(), budget: b, n_units: 0, accuracy: 0.0, tokens_per_unit: 0.0 }
    }

    fn problem() -> Problem {
        Problem { id: "p".into(), question: "what is two plus two".into(), gold: "4".into(), level: None, steps: Vec::new() }
    }

    fn run(g: &ScriptedGenerator, policy: Policy) -> Outcome {
        let auto = Auto::new(policy, SamplingParams::default()).unwrap();
        let ctx = Ctx { generator: g, equivalence: &NumericEquivalence, extract: &extract_answer, scorer: None, process: None, verifier: None, thinking: None };
        let p = problem();
        let messages = vec![Message::user(p.question.clone())];
        futures::executor::block_on(auto.solve(&p, &messages, &ctx)).unwrap()
    }

    #[test]
    fn unanimous_probes_take_the_cheap_bin_and_split_ones_spend_more() {
        let policy = Policy { version: 1, probe: 4, bins: vec![bin(0, 3, "sc", 12), bin(4, 4, "single", 1)], fitted: None };
        // Always the same answer: 4 of 4 agree, so `single`, which reuses probe 0.
        let same = ScriptedGenerator::new(vec![Choice::new("so The answer is 4.", 1.0, -0.1)]);
        let o = run(&same, policy.clone());
        assert_eq!(o.strategy, "auto:single@1");
        assert_eq!(o.answer.as_deref(), Some("4"));
        assert_eq!(same.started(), 4, "only the probes were generated");
        // Split answers: sc at 12 reuses the 4 probes and draws 8 more.
        let split = ScriptedGenerator::new(vec![
            Choice::new("The answer is 4.", 1.0, -0.1),
            Choice::new("The answer is 5.", 1.0, -0.1),
            Choice::new("The answer is 6.", 1.0, -0.1),
        ]);
        let o = run(&split, policy);
        assert!(o.strategy.starts_with("auto:sc@12"), "{}", o.strategy);
        assert_eq!(o.candidates.len(), 12);
        assert_eq!(split.started(), 12, "probes were reused, not redrawn");
        let idx: Vec<usize> = o.candidates.iter().map(|c| c.index).collect();
        assert_eq!(idx, (0..12).collect::<Vec<_>>());
        // Usage: probes once plus the 8 new samples (one word each here is 4 words).
        assert_eq!(o.usage.completion, 12 * 4);
    }

    #[test]
    fn replayed_samples_equal_fresh_ones() {
        let g = ScriptedGenerator::new(vec![
            Choice::new("The answer is 4.", 1.0, -0.1),
            Choice::new("The answer is 5.", 1.0, -0.2),
        ]);
        let policy = Policy { version: 1, probe: 3, bins: vec![bin(0, 3, "sc", 8)], fitted: None };
        let auto = run(&g, policy);
        let fresh = ScriptedGenerator::new(vec![
            Choice::new("The answer is 4.", 1.0, -0.1),
            Choice::new("The answer is 5.", 1.0, -0.2),
        ]);
        let sc = StrategySpec::parse("sc@8", None).unwrap().build(SamplingParams::default()).unwrap();
        let ctx = Ctx { generator: &fresh, equivalence: &NumericEquivalence, extract: &extract_answer, scorer: None, process: None, verifier: None, thinking: None };
        let p = problem();
        let plain = futures::executor::block_on(sc.solve(&p, &[Message::user(p.question.clone())], &ctx)).unwrap();
        assert_eq!(auto.candidates, plain.candidates);
        assert_eq!(auto.answer, plain.answer);
    }
}
