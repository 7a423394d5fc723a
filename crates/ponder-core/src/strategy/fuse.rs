//! Fusion (mixture-of-agents, Wang et al. 2024, arXiv:2406.04692; the fuser of Archon,
//! Saad-Falcon et al. 2024, arXiv:2409.15254): a model reads K candidate answers and
//! writes one, optionally in layers. Budget unit: fusions, `(layers − 1) × width + 1`,
//! plus the base's own budget.
//! 1 run the base spec (default `sc@4`); its candidates are the proposals
//! 2 show the model the distinct proposals (one per extracted answer, then one per text
//!   for those without; the base's choice first), numbered and each cut to its last
//!   `max_chars` characters, in its system prompt before the conversation; draw `width`
//!   fusions, or one in the last layer
//! 3 each later layer fuses the distinct fusions of the layer below
//! 4 answer with the last fusion's extracted answer; when it has none (or no fusion came),
//!   the base's decision stands, counted as `fuse_fallback`.
//! Every proposal and fusion stays in the outcome, the fusions after the base's samples.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::layer::{self, Layer, non_empty, after_base, distinct, numbered, spec_or_shorthand, under_system, validate_base};
use super::spec::{ConfigError, Needs, StrategyConfig, StrategySpec};
use super::{candidate, decided, position_of, Candidate, Ctx, Outcome, ScConfig, Strategy, StrategyError};
use crate::generator::{SampleRequest, SamplingParams};
use crate::{Message, Problem};

/// The fuser's system prompt, before the numbered responses (mixture-of-agents'
/// aggregate-and-synthesize prompt, shortened).
pub const FUSE_PROMPT: &str = "You are given several responses to the user's latest question. \
    Some may be wrong. Evaluate them critically and write one response that is correct and complete: \
    do not just copy one of them. Give the final answer in the format the question asks for.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FuseConfig {
    /// Fusion layers; each after the first fuses the fusions of the one below.
    pub layers: usize,
    /// Fusions drawn in every layer but the last (which draws one).
    pub width: usize,
    /// The strategy whose candidates the first layer fuses (a spec or its shorthand).
    #[serde(deserialize_with = "spec_or_shorthand")]
    pub base: Box<StrategySpec>,
    /// Characters of each response shown (its end).
    pub max_chars: usize,
    /// The fuser's system prompt.
    pub prompt: String,
}

impl Default for FuseConfig {
    fn default() -> Self {
        Self {
            layers: 1,
            width: 3,
            base: Box::new(StrategySpec::Sc(ScConfig { n: 4, abstain_below: None })),
            max_chars: 2000,
            prompt: FUSE_PROMPT.into(),
        }
    }
}

impl FuseConfig {
    /// Fusions drawn in layer `layer` (0-based).
    fn draws(&self, layer: usize) -> usize {
        if layer + 1 == self.layers {
            1
        } else {
            self.width
        }
    }

    fn fusions(&self) -> usize {
        (0..self.layers).map(|l| self.draws(l)).sum()
    }
}

impl StrategyConfig for FuseConfig {
    fn name(&self) -> &'static str {
        "fuse"
    }
    fn about(&self) -> &'static str {
        "fusion (mixture-of-agents; Archon's fuser): the model reads the base's distinct candidates and writes one answer, in layers"
    }
    fn budget(&self) -> usize {
        self.fusions() + self.base.budget()
    }
    fn budget_unit(&self) -> &'static str {
        "fusions ((layers - 1) x width + 1) + the base's budget"
    }
    fn needs(&self) -> Needs {
        self.base.needs()
    }
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [("layers", self.layers), ("width", self.width), ("max_chars", self.max_chars)] {
            ConfigError::check(v >= 1, field, || format!("must be at least 1, got {v}"))?;
        }
        non_empty("prompt", &self.prompt)?;
        validate_base(&self.base, self.name(), "layers")
    }
    fn base(&self) -> Option<&StrategySpec> {
        Some(&self.base)
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        layer::build(self, &self.base, sampling)
    }
}

pub type Fuse = Layer<FuseConfig>;

impl Layer<FuseConfig> {
    /// Step 2: the fuser's request over `shown`.
    fn fusion_request(&self, messages: &[Message], shown: &[&Candidate], n: usize, first_index: usize) -> SampleRequest {
        let system = format!("{}\n\n{}", self.config.prompt, numbered(shown.iter().copied(), self.config.max_chars));
        SampleRequest { messages: under_system(&system, messages), n, params: self.sampling.clone(), first_index }
    }
}

#[async_trait]
impl Strategy for Layer<FuseConfig> {
    fn name(&self) -> &str {
        "fuse"
    }
    fn budget(&self) -> usize {
        self.config.budget()
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let base = self.base.solve(problem, messages, ctx).await?;
        let (mut usage, mut n_failed, mut next) = (base.usage, base.n_failed, after_base(&base, self.base.budget()));
        let mut fusions: Vec<Candidate> = Vec::new();
        let mut below: &[Candidate] = &base.candidates;
        let mut lead = base.chosen.and_then(|i| base.candidates.get(i));
        let mut last = None;
        for layer in 0..self.config.layers {
            let draws = self.config.draws(layer);
            let req = self.fusion_request(messages, &distinct(below, lead), draws, next);
            let got = ctx.generator.sample(req).await?.collect().await?;
            (usage, n_failed, next) = (usage + got.usage, n_failed + got.failures.len(), next + draws);
            let start = fusions.len();
            fusions.extend(got.samples.into_iter().map(|s| candidate(s, ctx)));
            if fusions.len() == start {
                break; // nothing to fuse further
            }
            below = &fusions[start..];
            lead = None;
            last = (layer + 1 == self.config.layers).then(|| fusions[start].index);
        }
        let fused = last.filter(|&i| fusions.iter().any(|c| c.index == i && c.answer.is_some()));
        let mut counts = base.counts.clone();
        *counts.entry("fusions".into()).or_default() += fusions.len();
        *counts.entry("fuse_fallback".into()).or_default() += usize::from(fused.is_none());
        let mut candidates = base.candidates.clone();
        candidates.extend(fusions);
        let outcome = match fused {
            Some(i) => {
                let chosen = position_of(&candidates, i);
                decided(self.name(), candidates, Vec::new(), chosen, (usage, n_failed, false))
            }
            // The base's decision, whole (its vote and abstention), with every sample kept.
            None => Outcome { strategy: self.name().into(), candidates, usage, n_failed, ..base },
        };
        Ok(Outcome { counts, ..outcome })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    use futures::executor::block_on;

    use super::*;
    use crate::testing::{answer_ctx, problem_42, Choice, ScriptedGenerator};

    type Log = Arc<Mutex<Vec<Vec<String>>>>;

    /// The base draws from 41, 42 and a text without an answer; the fuser (recognised by
    /// its prompt) logs the responses it is shown and writes `reply(k shown)`.
    fn fuser(log: Log, reply: fn(usize) -> String) -> ScriptedGenerator {
        let menu = vec![Choice::new("answer: 41", 2.0, -1.0), Choice::new("answer: 42", 1.0, -1.0), Choice::new("no idea", 1.0, -1.0)];
        ScriptedGenerator::new(menu).with_reply(move |m: &[Message]| {
            let list = m.first()?.content.strip_prefix(FUSE_PROMPT)?;
            let shown: Vec<String> =
                list.split("[Response ").skip(1).map(|b| b.split_once("]\n").map_or("", |x| x.1).trim().to_string()).collect();
            let k = shown.len();
            log.lock().unwrap().push(shown);
            Some(reply(k))
        })
    }

    fn solve(spec: &str, g: &ScriptedGenerator) -> Outcome {
        let spec: StrategySpec = spec.parse().unwrap();
        block_on(spec.build(SamplingParams::default()).unwrap().solve(&problem_42(), &[Message::user("q")], &answer_ctx(g))).unwrap()
    }

    #[test]
    fn the_fuser_reads_each_distinct_answer_once_the_bases_choice_first() {
        let log = Log::default();
        let g = fuser(log.clone(), |k| format!("fused {k} answer: 42"));
        let o = solve("fuse", &g);
        let base = &o.candidates[..4];
        let answers: BTreeSet<_> = base.iter().filter_map(|c| c.key.clone()).collect();
        let blanks: BTreeSet<_> = base.iter().filter(|c| c.key.is_none()).map(|c| c.text.clone()).collect();
        let shown = log.lock().unwrap()[0].clone();
        assert_eq!(shown.len(), answers.len() + blanks.len(), "{shown:?} from {base:?}");
        assert!(shown.len() < 4, "four samples of three texts repeat one: {shown:?}");
        assert_eq!(shown.iter().collect::<BTreeSet<_>>().len(), shown.len());
        let alone = solve("sc@4", &g);
        assert_eq!(Some(shown[0].as_str()), alone.chosen_text(), "the base's choice leads");
        assert_eq!(o.answer.as_deref(), Some("42"));
        assert_eq!(o.candidates[o.chosen.unwrap()].text, format!("fused {} answer: 42", shown.len()));
        assert_eq!((o.counts["fusions"], o.counts["fuse_fallback"]), (1, 0));
    }

    #[test]
    fn later_layers_fuse_the_fusions_below_and_usage_sums_every_layer() {
        let log = Log::default();
        let g = fuser(log.clone(), |k| format!("fused {k} answer: 42"));
        let o = solve("fuse{layers = 3, width = 2}", &g);
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 3, "one request a layer");
        // Layers 2 and 3 read the two identical fusions below them once.
        assert_eq!((log[1].len(), log[2].len()), (1, 1));
        assert!(log[1][0].starts_with("fused ") && log[2][0] == "fused 1 answer: 42", "{log:?}");
        let indices: Vec<usize> = o.candidates.iter().map(|c| c.index).collect();
        assert_eq!(indices, [0, 1, 2, 3, 4, 5, 6, 7, 8], "2 + 2 + 1 fusions after the base's four samples");
        assert_eq!((o.chosen, o.counts["fusions"]), (Some(8), 5));
        let spec: StrategySpec = "fuse{layers = 3, width = 2}".parse().unwrap();
        assert_eq!((spec.budget(), g.started()), (4 + 5, 9));
        let tokens = o.candidates.iter().map(|c| c.n_tokens as u64).sum::<u64>();
        assert_eq!(o.usage.completion, tokens, "every sample is a candidate here");
    }

    #[test]
    fn an_unextractable_or_failed_fusion_leaves_the_bases_decision() {
        let base = solve("sc@4", &fuser(Log::default(), |_| String::new()));
        let o = solve("fuse", &fuser(Log::default(), |_| "they are all good".into()));
        assert_eq!((&o.answer, o.chosen, &o.votes), (&base.answer, base.chosen, &base.votes));
        assert_eq!((o.candidates.len(), o.counts["fuse_fallback"]), (5, 1), "the fusion stays in the outcome");

        let failing = fuser(Log::default(), |_| "answer: 42".into()).failing(vec![4]);
        let o = solve("fuse", &failing);
        assert_eq!((&o.answer, o.n_failed, o.counts["fuse_fallback"], o.counts["fusions"]), (&base.answer, 1, 1, 0));
    }

    #[test]
    fn responses_are_cut_and_bad_fields_named() {
        let log = Log::default();
        solve("fuse{max_chars = 3}", &fuser(log.clone(), |_| "answer: 42".into()));
        assert!(log.lock().unwrap()[0].iter().all(|t| t.starts_with('…') && t.chars().count() <= 4 || t.chars().count() <= 3));
        for (bad, field) in [("fuse{layers = 0}", "layers"), ("fuse{width = 0}", "width"), ("fuse{max_chars = 0}", "max_chars"), (r#"fuse{base = "fuse"}"#, "base")] {
            let e = bad.parse::<StrategySpec>().unwrap_err();
            assert!(matches!(&e, StrategyError::InvalidConfig { field: f, .. } if f == field), "{bad}: {e}");
        }
        assert_eq!(r#"fuse{base = "sc@8", width = 2}"#.parse::<StrategySpec>().unwrap().to_string(), r#"fuse{ base = "sc@8", width = 2 }"#);
    }
}
