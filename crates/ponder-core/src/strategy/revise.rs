//! Sequential revision (Snell et al. 2024, "Scaling LLM Test-Time Compute Optimally…", §6):
//! the model rewrites its previous answer, given it, for `n` rounds, on top of any base
//! strategy. Budget unit: n revisions, plus the base's own budget.
//! 1 run the base spec (default: one sample) and take its chosen answer
//! 2 show the model the conversation with that answer as its own turn, then ask it to
//!   check and correct it; its reply is the next answer in the chain
//! 3 repeat n times; answer with the last revision, a majority over the chain (`vote`,
//!   which Snell et al. found better than the last on their revision model), or the chain
//!   member the outcome scorer rates highest (`best`, their verifier-selected variant).

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};

use super::spec::{check_n, ConfigError, Needs, StrategyConfig, StrategySpec};
use super::{best_index, candidate, decided, position_of, score, tally, Ctx, Outcome, Strategy, StrategyError};
use crate::generator::{SampleRequest, SamplingParams};
use crate::{Message, Problem};

/// Which member of the revision chain answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// The last revision.
    #[default]
    Last,
    /// A majority vote over the base's answer and every revision.
    Vote,
    /// The member the outcome scorer rates highest.
    Best,
}

/// The request for each revision: after the previous answer, as the user's turn.
pub const REVISE_PROMPT: &str = "Check your answer above step by step. If you find a mistake, correct it. \
    Then give the complete final answer again, in the same format.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviseConfig {
    /// Revision rounds.
    pub n: usize,
    /// The strategy whose answer the first revision starts from (a spec or its shorthand).
    #[serde(deserialize_with = "spec_or_shorthand")]
    pub base: Box<StrategySpec>,
    pub keep: Keep,
    /// What the model is asked after each previous answer.
    pub prompt: String,
}

impl Default for ReviseConfig {
    fn default() -> Self {
        Self { n: 2, base: Box::new(StrategySpec::default_of("single").expect("single exists")), keep: Keep::Last, prompt: REVISE_PROMPT.into() }
    }
}

/// A nested spec as an object or as the CLI shorthand (`base = "sc@4"`).
fn spec_or_shorthand<'de, D: Deserializer<'de>>(d: D) -> Result<Box<StrategySpec>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let spec = match v {
        serde_json::Value::String(s) => StrategySpec::parse(&s, None),
        other => StrategySpec::from_value(other, None),
    };
    spec.map(Box::new).map_err(serde::de::Error::custom)
}

impl StrategyConfig for ReviseConfig {
    fn name(&self) -> &'static str {
        "revise"
    }
    fn about(&self) -> &'static str {
        "sequential revision (Snell et al. 2024): the model corrects its previous answer n times, on top of a base spec"
    }
    fn budget(&self) -> usize {
        self.n + self.base.budget()
    }
    fn budget_unit(&self) -> &'static str {
        "revisions (n) + the base's budget"
    }
    /// Its spec says its rounds and its base; a caller's `--budget` changes neither.
    fn takes_budget(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        let base = self.base.needs();
        Needs { scorer: base.scorer || self.keep == Keep::Best, ..base }
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_n(self.n)?;
        ConfigError::check(!self.prompt.trim().is_empty(), "prompt", || "must not be empty".into())?;
        ConfigError::check(!matches!(*self.base, StrategySpec::Revise(_)), "base", || {
            "is itself a revise; raise n instead".into()
        })?;
        self.base.validate().map_err(|e| match e {
            StrategyError::InvalidConfig { field, message, .. } => ConfigError { field: format!("base.{field}"), message },
            other => ConfigError { field: "base".into(), message: other.to_string() },
        })
    }
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        Ok(Box::new(Revise { base: self.base.build(sampling.clone())?, config: self.clone(), sampling }))
    }
}

pub struct Revise {
    base: Box<dyn Strategy>,
    config: ReviseConfig,
    sampling: SamplingParams,
}

#[async_trait]
impl Strategy for Revise {
    fn name(&self) -> &str {
        "revise"
    }
    fn budget(&self) -> usize {
        self.config.n + self.base.budget()
    }
    async fn solve(&self, problem: &Problem, messages: &[Message], ctx: &Ctx<'_>) -> Result<Outcome, StrategyError> {
        let base = self.base.solve(problem, messages, ctx).await?;
        let mut usage = base.usage;
        let first = base.chosen.or((!base.candidates.is_empty()).then_some(0));
        let Some(first) = first.map(|i| base.candidates[i].clone()) else {
            return Err(StrategyError::InsufficientCandidates(self.base.budget()));
        };
        // Revisions are samples after the base's, so their seeds differ from every base sample.
        let next = base.candidates.iter().map(|c| c.index + 1).max().unwrap_or(0).max(self.base.budget());
        let mut chain = vec![first];
        for round in 0..self.config.n {
            let previous = &chain.last().expect("the chain starts with the base's answer").text;
            let mut conversation = messages.to_vec();
            conversation.push(Message::assistant(previous.clone()));
            conversation.push(Message::user(self.config.prompt.clone()));
            let req = SampleRequest { messages: conversation, n: 1, params: self.sampling.clone(), first_index: next + round };
            let got = ctx.generator.sample(req).await?.collect().await?;
            usage += got.usage;
            match got.samples.into_iter().next() {
                Some(s) => chain.push(candidate(s, ctx)),
                // A failed revision ends the chain: what it has is kept.
                None => break,
            }
        }
        let n_failed = base.n_failed + (self.config.n + 1 - chain.len());
        if self.config.keep == Keep::Best {
            usage += score(problem, &mut chain, ctx, self.name()).await?;
        }
        let (votes, speaker) = match self.config.keep {
            Keep::Last => (Vec::new(), chain.last().map(|c| c.index)),
            Keep::Vote => {
                let votes = tally(&chain, false);
                let first = votes.first().map(|v| v.first_index);
                (votes, first.or(chain.last().map(|c| c.index)))
            }
            Keep::Best => (Vec::new(), best_index(&chain).map(|i| chain[i].index)),
        };
        // Every sample stays in the outcome: the base's (its chosen one heads the chain) and
        // the revisions.
        let mut candidates = base.candidates;
        let mut chain = chain.into_iter();
        let head = chain.next().expect("the chain starts with the base's answer");
        if let Some(p) = position_of(&candidates, head.index) {
            candidates[p] = head; // scored, under keep = best
        }
        candidates.extend(chain);
        let chosen = speaker.and_then(|i| position_of(&candidates, i));
        Ok(decided(self.name(), candidates, votes, chosen, (usage, n_failed, false)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::executor::block_on;

    use super::*;
    use crate::scorer::CheckerScorer;
    use crate::testing::{answer_ctx, problem_42, Choice, ExactAnswers, ScriptedGenerator};
    use crate::GoldChecker;

    /// Base answers "answer: 41"; each revision of "answer: N" writes "so answer: N", and
    /// of "so answer: N" writes "answer: N+1" — but only when asked with the revise prompt
    /// after the previous answer as the model's own turn.
    fn reviser() -> ScriptedGenerator {
        ScriptedGenerator::new(vec![Choice::new("answer: 41", 1.0, -1.0)]).with_reply(|m: &[Message]| {
            let [.., prev, ask] = m else { return None };
            if ask.content != REVISE_PROMPT || prev.role != crate::Role::Assistant {
                return None;
            }
            let n: i64 = prev.content.rsplit_once("answer: ")?.1.parse().ok()?;
            Some(if prev.content.starts_with("so ") { format!("answer: {}", n + 1) } else { format!("so answer: {n}") })
        })
    }

    fn solve(spec: &str, ctx: &Ctx<'_>) -> Outcome {
        let spec: StrategySpec = spec.parse().unwrap();
        let strategy = spec.build(SamplingParams::default()).unwrap();
        block_on(strategy.solve(&problem_42(), &[Message::user("q")], ctx)).unwrap()
    }

    #[test]
    fn each_round_revises_the_previous_answer_and_the_last_one_answers() {
        let g = reviser();
        let o = solve("revise@3", &answer_ctx(&g));
        let texts: Vec<&str> = o.candidates.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["answer: 41", "so answer: 41", "answer: 42", "so answer: 42"]);
        assert_eq!((o.answer.as_deref(), o.chosen), (Some("42"), Some(3)));
        let indices: Vec<usize> = o.candidates.iter().map(|c| c.index).collect();
        assert_eq!(indices, [0, 1, 2, 3], "revisions are samples after the base's");
        // Usage is every layer's: one base sample and three revisions, word-tokens each.
        assert_eq!(o.usage.completion, 2 + 3 + 2 + 3);
        assert_eq!(g.started(), 4);
    }

    #[test]
    fn keep_vote_takes_the_chains_majority_and_keep_best_the_scorers_favourite() {
        let g = reviser();
        let o = solve(r#"revise@2{keep = "vote"}"#, &answer_ctx(&g));
        assert_eq!(o.answer.as_deref(), Some("41"), "41, 41, 42: {o:?}");
        assert_eq!((o.votes[0].count, o.votes[1].count), (2, 1));

        let checker = CheckerScorer(Arc::new(GoldChecker(ExactAnswers)));
        let ctx = Ctx { scorer: Some(&checker), ..answer_ctx(&g) };
        let o = solve(r#"revise@2{keep = "best"}"#, &ctx);
        assert_eq!(o.answer.as_deref(), Some("42"), "the gold answer scores 1: {o:?}");
        let scores: Vec<Option<f64>> = o.candidates.iter().map(|c| c.score).collect();
        assert_eq!(scores, [Some(0.0), Some(0.0), Some(1.0)], "every chain member scored");
        let e = block_on(r#"revise@2{keep = "best"}"#.parse::<StrategySpec>().unwrap().build(SamplingParams::default()).unwrap().solve(
            &problem_42(),
            &[Message::user("q")],
            &answer_ctx(&g),
        ))
        .unwrap_err();
        assert!(matches!(e, StrategyError::NeedsScorer(_)), "{e}");
    }

    #[test]
    fn the_base_may_be_any_spec_and_its_samples_stay_in_the_outcome() {
        let g = reviser();
        let o = solve(r#"revise@1{base = "sc@3"}"#, &answer_ctx(&g));
        assert_eq!(o.candidates.len(), 4, "three base samples, one revision");
        assert_eq!(o.candidates[3].index, 3);
        assert_eq!(o.answer.as_deref(), Some("41"));
        assert_eq!(o.candidates[o.chosen.unwrap()].text, "so answer: 41");
        let spec: StrategySpec = r#"revise@2{base = "sc@3"}"#.parse().unwrap();
        assert_eq!(spec.budget(), 5);
        let round_trip: StrategySpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(round_trip, spec);
    }

    #[test]
    fn bad_bases_are_named() {
        for (bad, field) in [(r#"revise{base = {strategy = "sc", n = 0}}"#, "budget"), (r#"revise{base = "revise"}"#, "base")] {
            let e = bad.parse::<StrategySpec>().unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
        let e = r#"revise{prompt = " "}"#.parse::<StrategySpec>().unwrap_err().to_string();
        assert!(e.contains("prompt"), "{e}");
    }
}
