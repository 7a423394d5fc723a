//! Tool calls as answers.
//!
//! A sample is text, so a candidate's tool calls travel inside it as
//! `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks (the Hermes/Qwen format that
//! many open models are trained to write); an HTTP backend whose server returns structured
//! `tool_calls` writes them in this form. A text that calls tools answers `tool:NAMES`, so
//! voting strategies vote on the tool first; among the candidates that called the winning
//! tools, [`vote_arguments`] votes on their arguments in canonical form
//! ([`canonical_arguments`]), with the same vote counter ([`tally`]) as every strategy.

use serde_json::{json, Value};

use super::{extract_answer, Equivalence};
use crate::outcome::{tally, Candidate, Vote};
use crate::{FinishReason, ToolCall};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// What the answer of a text that calls tools starts with: `tool:get_weather,search`.
pub const TOOL_PREFIX: &str = "tool:";

/// The text form of `calls`, one block per call.
pub fn encode(calls: &[ToolCall]) -> String {
    calls
        .iter()
        .map(|c| {
            let args: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| Value::String(c.arguments.clone()));
            format!("{OPEN}\n{}\n{CLOSE}", json!({ "name": c.name, "arguments": args }))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Splits `text` into its prose and the tool calls it holds. A block that does not parse as
/// a call (no name) is left in the prose. A bare JSON object `{"name": …, "arguments": …}`
/// as the whole text counts as one call too, also inside one Markdown code fence (small
/// models often drop the tags: Qwen2.5-Coder 0.5B and 1.5B write one or the other).
pub fn parse(text: &str) -> (String, Vec<ToolCall>) {
    let mut prose = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        // An unclosed last block runs to the end (generation may stop at the stop string).
        let (inner, next) = match after.find(CLOSE) {
            Some(end) => (&after[..end], &after[end + CLOSE.len()..]),
            None => (after, ""),
        };
        match call_from_json(inner.trim(), calls.len()) {
            Some(c) => {
                prose.push_str(&rest[..start]);
                calls.push(c);
            }
            None => prose.push_str(&rest[..start + OPEN.len() + inner.len()]),
        }
        rest = next;
    }
    prose.push_str(rest);
    if calls.is_empty() {
        let t = unfenced(text.trim());
        if t.starts_with('{') && t.ends_with('}') {
            if let Some(c) = call_from_json(t, 0).filter(|_| has_arguments(t)) {
                return (String::new(), vec![c]);
            }
        }
    }
    (prose.trim().to_string(), calls)
}

/// The body of a text that is one Markdown code fence (```` ```json … ``` ````), else the text.
fn unfenced(t: &str) -> &str {
    let Some(body) = t.strip_prefix("```").and_then(|b| b.strip_suffix("```")) else { return t };
    // The info string (`json`) runs to the first newline; a fence inside is not one block.
    match body.split_once('\n') {
        Some((info, inner)) if !info.contains('`') && !inner.contains("```") => inner.trim(),
        _ => t,
    }
}

fn has_arguments(json_text: &str) -> bool {
    serde_json::from_str::<Value>(json_text).is_ok_and(|v| v.get("arguments").or_else(|| v.get("parameters")).is_some())
}

fn call_from_json(s: &str, n: usize) -> Option<ToolCall> {
    let v: Value = serde_json::from_str(s).ok()?;
    let name = v.get("name")?.as_str()?.trim();
    if name.is_empty() {
        return None;
    }
    let args = v.get("arguments").or_else(|| v.get("parameters")).cloned().unwrap_or_else(|| json!({}));
    let arguments = match args {
        Value::String(s) => s,
        other => other.to_string(),
    };
    Some(ToolCall { id: format!("call_{n}"), name: name.to_string(), arguments })
}

/// A canonical form of a call's arguments for voting: keys sorted, the `ignore`d argument
/// names dropped (top level), numbers and strings as JSON writes them. Arguments that are
/// not JSON are compared as trimmed text.
pub fn canonical_arguments(arguments: &str, ignore: &[String]) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut map)) => {
            for k in ignore {
                map.remove(k);
            }
            canonical(&Value::Object(map))
        }
        Ok(other) => canonical(&other),
        Err(_) => arguments.trim().to_string(),
    }
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys.iter().map(|k| format!("{}:{}", json!(k), canonical(&m[*k]))).collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// `tool:NAMES` when `text` calls tools (names in call order, comma-separated), else `None`.
pub fn tool_answer(text: &str) -> Option<String> {
    let (_, calls) = parse(text);
    (!calls.is_empty()).then(|| format!("{TOOL_PREFIX}{}", calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(",")))
}

/// The v1 extraction ([`extract_answer`]) for texts that call no tools; `tool:NAMES` for
/// those that do.
pub fn extract_with_tools(text: &str) -> Option<String> {
    tool_answer(text).or_else(|| extract_answer(text))
}

/// Tool answers (`tool:NAMES`) are keyed as written; any other answer by the inner rules.
#[derive(Debug, Default, Clone, Copy)]
pub struct ToolEquivalence<E>(pub E);

impl<E: Equivalence> Equivalence for ToolEquivalence<E> {
    fn key(&self, answer: &str) -> String {
        if answer.starts_with(TOOL_PREFIX) {
            answer.to_string()
        } else {
            self.0.key(answer)
        }
    }
}

/// The second stage of the tool vote: among the candidates whose answer is `tools` (a
/// `tool:NAMES` answer), one vote per distinct argument set in canonical form (the
/// `ignore`d, non-semantic arguments left out), best first, ties to the earliest sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgumentVote {
    /// Each vote's `answer` and `key` are the calls' canonical arguments, `|`-separated.
    pub votes: Vec<Vote>,
    /// Position in the candidates of the winning set's earliest candidate; `None` when no
    /// candidate answered `tools`.
    pub chosen: Option<usize>,
}

/// Votes on the arguments of the candidates that answered `tools` (see [`ArgumentVote`]).
pub fn vote_arguments(candidates: &[Candidate], tools: &str, ignore: &[String]) -> ArgumentVote {
    let keyed: Vec<Candidate> = candidates
        .iter()
        .filter(|c| c.answer.as_deref() == Some(tools))
        .map(|c| {
            let (_, calls) = parse(&c.text);
            let key = calls.iter().map(|k| canonical_arguments(&k.arguments, ignore)).collect::<Vec<_>>().join("|");
            Candidate {
                index: c.index,
                text: String::new(),
                answer: Some(key.clone()),
                key: Some(key),
                n_tokens: c.n_tokens,
                mean_logprob: None,
                finish: FinishReason::Eos,
                score: None,
            }
        })
        .collect();
    let votes = tally(&keyed, false);
    let chosen = votes.first().and_then(|v| candidates.iter().position(|c| c.index == v.first_index));
    ArgumentVote { votes, chosen }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::NumericEquivalence;

    #[test]
    fn round_trip() {
        let calls = vec![ToolCall { id: "x".into(), name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() }];
        let text = format!("Let me check.\n{}", encode(&calls));
        let (prose, got) = parse(&text);
        assert_eq!(prose, "Let me check.");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "get_weather");
        assert_eq!(canonical_arguments(&got[0].arguments, &[]), r#"{"city":"Paris"}"#);
    }

    #[test]
    fn bad_blocks_stay_prose_and_bare_json_counts() {
        let (prose, calls) = parse("<tool_call>not json</tool_call> hi");
        assert!(calls.is_empty());
        assert!(prose.contains("not json"));
        let (_, calls) = parse(r#" {"name": "f", "arguments": {"a": 1}} "#);
        assert_eq!(calls[0].name, "f");
        let (_, calls) = parse(r#"{"name": "Bob"}"#);
        assert!(calls.is_empty(), "an object without arguments is not a call");
        // One fenced block as the whole text, as Qwen2.5-Coder writes it; not two blocks,
        // not a fence with prose around it.
        let (prose, calls) = parse("```json\n{\n  \"name\": \"f\",\n  \"arguments\": {\"a\": 1}\n}\n```");
        assert_eq!((prose.as_str(), calls[0].name.as_str()), ("", "f"));
        let (_, calls) = parse("```\n{\"name\": \"f\", \"arguments\": {}}\n```");
        assert_eq!(calls.len(), 1);
        for text in [
            "```json\n{\"name\": \"f\", \"arguments\": {}}\n```\n```json\n{}\n```",
            "Call:\n```json\n{\"name\": \"f\", \"arguments\": {}}\n```",
            "```json {\"name\": \"f\", \"arguments\": {}}```",
        ] {
            assert!(parse(text).1.is_empty(), "{text:?}");
        }
        let (_, calls) = parse("<tool_call>{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}");
        assert_eq!(calls[0].arguments, r#"{"a":1}"#);
    }

    #[test]
    fn canonical_ignores_order_and_non_semantic_arguments() {
        let a = canonical_arguments(r#"{"b": 2, "a": 1, "request_id": "x1"}"#, &["request_id".into()]);
        let b = canonical_arguments(r#"{"a":1,"b":2,"request_id":"y2"}"#, &["request_id".into()]);
        assert_eq!(a, b);
        assert_ne!(a, canonical_arguments(r#"{"a":1,"b":3}"#, &[]));
    }

    fn call(name: &str, args: &str) -> String {
        format!("<tool_call>{{\"name\": \"{name}\", \"arguments\": {args}}}</tool_call>")
    }

    fn cand(index: usize, text: &str) -> Candidate {
        let answer = extract_with_tools(text);
        let key = answer.as_deref().map(|a| ToolEquivalence(NumericEquivalence).key(a));
        Candidate { index, text: text.into(), answer, key, n_tokens: 1, mean_logprob: None, finish: FinishReason::Eos, score: None }
    }

    #[test]
    fn answers_name_the_tools_and_keep_the_numeric_rules_otherwise() {
        assert_eq!(extract_with_tools(&call("f", "{}")).as_deref(), Some("tool:f"));
        let two = format!("{}\n{}", call("a", "{}"), call("b", "{}"));
        assert_eq!(extract_with_tools(&two).as_deref(), Some("tool:a,b"));
        assert_eq!(extract_with_tools("The answer is 1,234.").as_deref(), Some("1,234"));
        let eq = ToolEquivalence(NumericEquivalence);
        assert_eq!(eq.key("tool:a,b"), "tool:a,b");
        assert_eq!(eq.key("1,234"), eq.key("1234"));
    }

    #[test]
    fn arguments_are_voted_among_the_winning_tools_callers() {
        let candidates = vec![
            cand(0, &call("search", r#"{"q": "a", "id": 1}"#)),
            cand(1, &call("calc", r#"{"x": 1}"#)),
            cand(2, &call("search", r#"{"q": "b", "id": 2}"#)),
            cand(3, &call("search", r#"{"id": 3, "q": "b"}"#)),
            cand(4, &call("calc", r#"{"x": 1}"#)),
        ];
        let v = vote_arguments(&candidates, "tool:search", &["id".into()]);
        assert_eq!(v.chosen, Some(2));
        assert_eq!(v.votes.iter().map(|v| (v.key.as_str(), v.count)).collect::<Vec<_>>(), [(r#"{"q":"b"}"#, 2), (r#"{"q":"a"}"#, 1)]);
        // Every argument set different: the earliest sample wins the tie.
        let v = vote_arguments(&candidates, "tool:search", &[]);
        assert_eq!((v.chosen, v.votes.len()), (Some(0), 3));
        assert_eq!(vote_arguments(&candidates, "tool:other", &[]), ArgumentVote { votes: Vec::new(), chosen: None });
    }
}
