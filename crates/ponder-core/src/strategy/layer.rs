//! What the layered strategies (revise, critique, fuse, rank) share: a nested base spec,
//! written as an object or as its shorthand and checked with its fields named under
//! `base.`; sample indices after the base's, so no layer repeats a base sample's seed; the
//! distinct candidates a fuser or judge reads, each cut to a length; and the conversation
//! a second role (critic, fuser) answers under its own system prompt.

use serde::{Deserialize, Deserializer};

use super::spec::{ConfigError, StrategySpec};
use super::{tally, Candidate, Outcome, Strategy, StrategyError};
use crate::generator::SamplingParams;
use crate::{Message, Role};

/// A layered strategy, built: its base built, its configuration, and the sampling every
/// layer draws with (`Revise`, `Critique`, `Fuse` and `Rank` are this type).
pub struct Layer<C> {
    pub(super) base: Box<dyn Strategy>,
    pub(super) config: C,
    pub(super) sampling: SamplingParams,
}

/// Builds a layer on `base` (built first).
pub(super) fn build<C: Clone>(config: &C, base: &StrategySpec, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError>
where
    Layer<C>: Strategy + 'static,
{
    Ok(Box::new(Layer { base: base.build(sampling.clone())?, config: config.clone(), sampling }))
}

/// A prompt field's check: it must say something.
pub(super) fn non_empty(field: &str, text: &str) -> Result<(), ConfigError> {
    ConfigError::check(!text.trim().is_empty(), field, || "must not be empty".into())
}

/// A nested spec as an object or as the CLI shorthand (`base = "sc@4"`); its errors say
/// they are the base's (serde names no field for them).
pub(super) fn spec_or_shorthand<'de, D: Deserializer<'de>>(d: D) -> Result<Box<StrategySpec>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let spec = match v {
        serde_json::Value::String(s) => StrategySpec::parse(&s, None),
        other => StrategySpec::from_value(other, None),
    };
    spec.map(Box::new).map_err(|e| serde::de::Error::custom(format!("base: {e}")))
}

/// Checks a base spec: not the layer's own strategy again (`instead` says what to raise),
/// and every field of its own, named `base.FIELD`.
pub(super) fn validate_base(base: &StrategySpec, layer: &str, instead: &str) -> Result<(), ConfigError> {
    ConfigError::check(base.name() != layer, "base", || format!("is itself a {layer}; raise {instead} instead"))?;
    base.validate().map_err(|e| match e {
        StrategyError::InvalidConfig { field, message, .. } => ConfigError { field: format!("base.{field}"), message },
        other => ConfigError { field: "base".into(), message: other.to_string() },
    })
}

/// The first sample index after the base's samples (and after its whole budget, so a
/// layer's seeds never repeat a base sample's, drawn or not).
pub(super) fn after_base(base: &Outcome, base_budget: usize) -> usize {
    base.candidates.iter().map(|c| c.index + 1).max().unwrap_or(0).max(base_budget)
}

/// One candidate per answer, the most voted first (ties: the earliest), then the
/// candidates without an answer, one per text. With `first` (the base's chosen
/// candidate), its answer leads.
pub(super) fn distinct<'c>(candidates: &'c [Candidate], first: Option<&Candidate>) -> Vec<&'c Candidate> {
    let by_index = |i: usize| candidates.iter().find(|c| c.index == i);
    let mut out: Vec<&Candidate> = tally(candidates, false).iter().filter_map(|v| by_index(v.first_index)).collect();
    if let Some(lead) = first.and_then(|f| out.iter().position(|c| f.key.is_some() && c.key == f.key)) {
        let c = out.remove(lead);
        out.insert(0, c);
    }
    for c in candidates.iter().filter(|c| c.key.is_none()) {
        if !out.iter().any(|o| o.key.is_none() && o.text.trim() == c.text.trim()) {
            out.push(c);
        }
    }
    out
}

/// The last `max_chars` characters of `text`, marked when cut: a solution's final answer
/// sits at its end, so the end is what a reader must see.
pub(super) fn clip(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    let n = text.chars().count();
    if n <= max_chars {
        return text.to_string();
    }
    let tail: String = text.chars().skip(n - max_chars).collect();
    format!("…{tail}")
}

/// Candidates as a fuser or judge reads them, numbered from 1: `[Response i]`, then the
/// text cut to `max_chars`.
pub(super) fn numbered<'c>(shown: impl IntoIterator<Item = &'c Candidate>, max_chars: usize) -> String {
    let blocks: Vec<String> = shown.into_iter().enumerate().map(|(i, c)| format!("[Response {}]\n{}", i + 1, clip(&c.text, max_chars))).collect();
    blocks.join("\n\n")
}

/// `conversation` answered under `system`: it leads the system prompt, the conversation's
/// own system prompt (the task's format rules) follows it.
pub(super) fn under_system(system: &str, conversation: &[Message]) -> Vec<Message> {
    let own: Vec<&str> = conversation.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
    let prompt = std::iter::once(system).chain(own).collect::<Vec<_>>().join("\n\n");
    std::iter::once(Message::system(prompt)).chain(conversation.iter().filter(|m| m.role != Role::System).cloned()).collect()
}

/// The question a judge reads: the conversation's last user turn.
pub(super) fn question(conversation: &[Message]) -> &str {
    conversation.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::FinishReason;

    fn cand(index: usize, text: &str, answer: Option<&str>) -> Candidate {
        Candidate {
            index,
            text: text.into(),
            answer: answer.map(Into::into),
            key: answer.map(Into::into),
            n_tokens: 1,
            mean_logprob: None,
            finish: FinishReason::Eos,
            score: None,
        }
    }

    #[test]
    fn distinct_keeps_one_per_answer_most_voted_first_then_unanswered_texts() {
        let cs = [cand(0, "a 1", Some("1")), cand(1, "b 2", Some("2")), cand(2, "c 2", Some("2")), cand(3, "x", None), cand(4, " x ", None), cand(5, "y", None)];
        let texts = |v: Vec<&Candidate>| v.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
        assert_eq!(texts(distinct(&cs, None)), ["b 2", "a 1", "x", "y"]);
        assert_eq!(texts(distinct(&cs, Some(&cs[0]))), ["a 1", "b 2", "x", "y"], "the base's choice leads");
    }

    #[test]
    fn responses_are_numbered_from_one_and_clipped() {
        let cs = [cand(0, "abc", None), cand(1, "defgh", None)];
        assert_eq!(numbered(&cs, 3), "[Response 1]\nabc\n\n[Response 2]\n…fgh");
    }

    #[test]
    fn clip_keeps_the_end() {
        assert_eq!(clip(" short ", 10), "short");
        assert_eq!(clip("abcdefgh", 3), "…fgh");
        assert_eq!(clip("ééééé", 2), "…éé", "characters, not bytes");
    }

    #[test]
    fn a_second_role_leads_the_system_prompt() {
        let m = under_system("judge", &[Message::system("format"), Message::user("q")]);
        assert_eq!((m[0].content.as_str(), m[1].content.as_str(), m.len()), ("judge\n\nformat", "q", 2));
        assert_eq!(question(&m), "q");
    }
}
