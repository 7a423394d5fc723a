//! What a finished request answers: the chosen candidate (with the vote on tool-call
//! arguments), OpenAI's `usage` and `logprobs` objects, and the `ponder` field.

use ponder_core::answer::tools::{self, ToolEquivalence, TOOL_PREFIX};
use ponder_core::answer::NumericEquivalence;
use ponder_core::strategy::Outcome;
use ponder_core::{FinishReason, ToolCall, TopLogprob, Usage};
use serde_json::{json, Map, Value};

use crate::app::now;
use crate::request::{Kind, Request};

/// Answers are numbers (the v1 rules) unless a candidate calls tools: then its answer is
/// `tool:NAMES` and strategies vote on the tool names first.
pub(crate) use ponder_core::answer::tools::extract_with_tools as extract;

/// The gateway's answer rules: tool answers as written, numbers by value.
pub(crate) const EQUIVALENCE: ToolEquivalence<NumericEquivalence> = ToolEquivalence(NumericEquivalence);

pub(crate) fn openai_usage(u: &Usage) -> Value {
    let prompt = u.prompt_computed + u.prompt_reused;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.completion,
        "total_tokens": prompt + u.completion,
        "prompt_tokens_details": { "cached_tokens": u.prompt_reused },
        // OpenAI's field for thinking tokens; left out when some went uncounted (issue 14).
        "completion_tokens_details": (u.thinking_uncounted == 0).then(|| json!({ "reasoning_tokens": u.thinking })),
    })
}

/// Each candidate's chosen-token logprobs and token bytes (plain sampling).
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenLogprobs {
    pub logprobs: Vec<f32>,
    /// Empty when the backend reports no tokens.
    pub bytes: Vec<Vec<u8>>,
    /// The most likely tokens at each position, when asked for.
    pub top: Vec<Vec<TopLogprob>>,
}

/// The outcome, and each candidate's token logprobs where known (plain sampling).
pub(crate) type Ran = (Outcome, Vec<TokenLogprobs>);

/// What the response says: the chosen candidate, its tool calls, and the argument vote.
pub(crate) struct Decision {
    pub pos: Option<usize>,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: &'static str,
    pub stop_reason: Option<String>,
    pub tool_vote: Option<Value>,
}

/// When a voting strategy picked a tool name, the arguments are voted on among the
/// candidates that called that tool (ignoring non-semantic arguments); ties go to the
/// earliest sample.
pub(crate) fn decide(o: &Outcome, ignore: &[String], id: &str) -> Decision {
    let mut pos = o.chosen.filter(|&p| p < o.candidates.len());
    let mut tool_vote = None;
    let chosen_answer = pos.and_then(|p| o.candidates[p].answer.clone());
    if let Some(names) = chosen_answer.filter(|a| a.starts_with(TOOL_PREFIX) && !o.votes.is_empty()) {
        let vote = tools::vote_arguments(&o.candidates, &names, ignore);
        if vote.chosen.is_some() {
            pos = vote.chosen;
        }
        tool_vote = Some(json!({
            "tool": names.trim_start_matches(TOOL_PREFIX),
            "arguments": vote.votes.iter().map(|v| json!({ "arguments": v.key, "count": v.count })).collect::<Vec<_>>(),
            "ignored": ignore,
        }));
    }
    let Some(p) = pos else {
        return Decision { pos: None, content: String::new(), tool_calls: Vec::new(), finish_reason: "stop", stop_reason: None, tool_vote };
    };
    let c = &o.candidates[p];
    let (prose, mut calls) = tools::parse(&c.text);
    for (i, call) in calls.iter_mut().enumerate() {
        call.id = format!("call_{}_{i}", id.rsplit('-').next().unwrap_or("0"));
    }
    let (content, finish_reason) = if calls.is_empty() {
        (c.text.clone(), if c.finish == FinishReason::Length { "length" } else { "stop" })
    } else {
        (prose, "tool_calls")
    };
    let stop_reason = match &c.finish {
        FinishReason::Stop(s) => Some(s.clone()),
        _ => None,
    };
    Decision { pos: Some(p), content, tool_calls: calls, finish_reason, stop_reason, tool_vote }
}

pub(crate) fn ponder_field(o: &Outcome, req: &Request, d: &Decision) -> Value {
    let mut v = json!({
        "strategy": o.strategy,
        "budget": req.samples(),
        "answer": o.answer,
        "chosen": d.pos.map(|p| o.candidates[p].index),
        "votes": o.votes,
        "n_samples": o.candidates.len() + o.n_failed,
        "n_candidates": o.candidates.len(),
        "n_failed": o.n_failed,
        "stopped_early": o.stopped_early,
        "abstained": o.abstained,
        "confidence": o.confidence(),
        "usage": o.usage,
        "scores": o.candidates.iter().map(|c| c.score).collect::<Vec<_>>(),
    });
    if !o.counts.is_empty() {
        v["counts"] = json!(o.counts);
    }
    if req.return_candidates {
        v["candidates"] = json!(o.candidates);
    }
    if let Some(t) = &d.tool_vote {
        v["tool_vote"] = t.clone();
    }
    v
}

pub(crate) fn tool_calls_json(calls: &[ToolCall], with_index: bool) -> Value {
    Value::Array(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut v = json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments } });
                if with_index {
                    v["index"] = json!(i);
                }
                v
            })
            .collect(),
    )
}

/// OpenAI's logprobs object. A token split inside a UTF-8 character shows as U+FFFD in
/// `token`; `bytes` (chat) holds its exact bytes.
pub(crate) fn logprobs_json(kind: Kind, t: &TokenLogprobs) -> Value {
    let known = t.bytes.len() == t.logprobs.len();
    let token = |i: usize| known.then(|| String::from_utf8_lossy(&t.bytes[i]).into_owned());
    let top = |i: usize| t.top.get(i).map(Vec::as_slice).unwrap_or_default();
    match kind {
        Kind::Chat => json!({ "content": t.logprobs.iter().enumerate().map(|(i, x)| json!({
            "token": token(i).unwrap_or_default(),
            "logprob": x,
            "bytes": known.then(|| &t.bytes[i]),
            "top_logprobs": top(i).iter().map(|a| json!({
                "token": String::from_utf8_lossy(&a.bytes),
                "logprob": a.logprob,
                "bytes": a.bytes,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>() }),
        Kind::Completion => {
            let tokens: Option<Vec<String>> = (0..t.logprobs.len()).map(token).collect();
            let offsets = tokens.as_ref().map(|ts| {
                ts.iter()
                    .scan(0usize, |at, s| {
                        let start = *at;
                        *at += s.len();
                        Some(start)
                    })
                    .collect::<Vec<_>>()
            });
            // The legacy shape: per position a map from token text to log-probability.
            let tops = (!t.top.is_empty()).then(|| {
                (0..t.logprobs.len())
                    .map(|i| top(i).iter().map(|a| (String::from_utf8_lossy(&a.bytes).into_owned(), json!(a.logprob))).collect::<Map<_, _>>())
                    .collect::<Vec<_>>()
            });
            json!({ "tokens": tokens, "token_logprobs": t.logprobs, "top_logprobs": tops, "text_offset": offsets })
        }
    }
}

/// The full (non-streaming) response body.
pub(crate) fn response_body(o: &Outcome, req: &Request, id: &str, logprobs: &[TokenLogprobs]) -> Value {
    let d = decide(o, &req.ignore_arguments, id);
    let lp = |i: usize| {
        if req.logprobs {
            logprobs.get(i).map_or(Value::Null, |l| logprobs_json(req.kind, l))
        } else {
            Value::Null
        }
    };
    let choices: Vec<Value> = if req.n > 1 {
        o.candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let finish = if c.finish == FinishReason::Length { "length" } else { "stop" };
                let stop_reason = match &c.finish {
                    FinishReason::Stop(s) => json!(s),
                    _ => Value::Null,
                };
                match req.kind {
                    Kind::Chat => json!({ "index": i, "message": { "role": "assistant", "content": c.text }, "logprobs": lp(i), "finish_reason": finish, "stop_reason": stop_reason }),
                    Kind::Completion => json!({ "index": i, "text": c.text, "logprobs": lp(i), "finish_reason": finish, "stop_reason": stop_reason }),
                }
            })
            .collect()
    } else {
        let l = d.pos.map_or(Value::Null, lp);
        match req.kind {
            Kind::Chat => {
                let mut message = json!({ "role": "assistant", "content": d.content });
                if !d.tool_calls.is_empty() {
                    message["tool_calls"] = tool_calls_json(&d.tool_calls, false);
                    if d.content.is_empty() {
                        message["content"] = Value::Null;
                    }
                }
                vec![json!({ "index": 0, "message": message, "logprobs": l, "finish_reason": d.finish_reason, "stop_reason": d.stop_reason })]
            }
            Kind::Completion => {
                vec![json!({ "index": 0, "text": d.content, "logprobs": l, "finish_reason": d.finish_reason, "stop_reason": d.stop_reason })]
            }
        }
    };
    json!({
        "id": id,
        "object": if req.kind == Kind::Chat { "chat.completion" } else { "text_completion" },
        "created": now(),
        "model": req.model,
        "choices": choices,
        "usage": openai_usage(&o.usage),
        "ponder": ponder_field(o, req, &d),
    })
}

#[cfg(test)]
mod tests {
    use ponder_core::answer::Equivalence;
    use ponder_core::strategy::{self, Candidate};

    use super::*;

    fn cand(index: usize, text: &str) -> Candidate {
        let answer = extract(text);
        let key = answer.as_deref().map(|a| EQUIVALENCE.key(a));
        Candidate { index, text: text.into(), answer, key, n_tokens: 1, mean_logprob: None, finish: FinishReason::Eos, score: None }
    }

    fn call(name: &str, args: &str) -> String {
        format!("<tool_call>{{\"name\": \"{name}\", \"arguments\": {args}}}</tool_call>")
    }

    fn vote(candidates: Vec<Candidate>) -> Outcome {
        let votes = strategy::tally(&candidates, false);
        let chosen = votes.first().and_then(|v| candidates.iter().position(|c| c.index == v.first_index));
        Outcome {
            strategy: "sc".into(),
            answer: votes.first().map(|v| v.answer.clone()),
            chosen,
            candidates,
            votes,
            usage: Usage::default(),
            n_failed: 0,
            stopped_early: false,
            abstained: false,
            counts: Default::default(),
        }
    }

    #[test]
    fn tool_name_first_then_arguments() {
        let o = vote(vec![
            cand(0, &call("search", r#"{"q": "a", "id": 1}"#)),
            cand(1, &call("calc", r#"{"x": 1}"#)),
            cand(2, &call("search", r#"{"q": "b", "id": 2}"#)),
            cand(3, &call("search", r#"{"id": 3, "q": "b"}"#)),
            cand(4, &call("calc", r#"{"x": 1}"#)),
        ]);
        assert_eq!(o.answer.as_deref(), Some("tool:search"));
        // "id" is non-semantic: q=b wins 2 to 1, and its earliest member is returned.
        let d = decide(&o, &["id".into()], "chatcmpl-x-1");
        assert_eq!(d.pos, Some(2));
        assert_eq!(d.finish_reason, "tool_calls");
        assert_eq!(d.tool_calls[0].name, "search");
        assert_eq!(d.tool_vote.as_ref().unwrap()["arguments"][0]["count"], 2);
        // Counting "id", every argument set is different: the earliest wins.
        let d = decide(&o, &[], "chatcmpl-x-1");
        assert_eq!(d.pos, Some(0));
    }

    #[test]
    fn text_answers_keep_the_strategys_choice() {
        let o = vote(vec![cand(0, "The answer is 5."), cand(1, &call("f", "{}")), cand(2, "It is 5")]);
        let d = decide(&o, &[], "id");
        assert_eq!(d.pos, Some(0));
        assert!(d.tool_calls.is_empty() && d.tool_vote.is_none());
        assert_eq!(d.content, "The answer is 5.");
    }

    #[test]
    fn usage_maps_to_openai_fields() {
        let u = Usage { prompt_computed: 10, prompt_reused: 30, completion: 7, ..Usage::default() };
        let v = openai_usage(&u);
        assert_eq!(v["prompt_tokens"], 40);
        assert_eq!(v["completion_tokens"], 7);
        assert_eq!(v["total_tokens"], 47);
        assert_eq!(v["prompt_tokens_details"]["cached_tokens"], 30);
        assert_eq!(v["completion_tokens_details"]["reasoning_tokens"], 0);
        let thought = openai_usage(&Usage {
            completion: 7,
            thinking: 5,
            ..Usage::default()
        });
        assert_eq!(thought["completion_tokens_details"]["reasoning_tokens"], 5);
        let unknown = openai_usage(&Usage {
            thinking: 5,
            thinking_uncounted: 1,
            ..Usage::default()
        });
        assert!(unknown["completion_tokens_details"].is_null(), "{unknown}");
    }
}
