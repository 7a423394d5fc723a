//! Tool calls as text.
//!
//! A sample is text, so a candidate's tool calls travel inside it as
//! `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks (the Hermes/Qwen format that
//! many open models are trained to write). An HTTP backend whose server returns structured
//! `tool_calls` writes them in this form; the gateway parses them back out of the chosen
//! candidate, whichever backend produced it.

use ponder_core::ToolCall;
use serde_json::{json, Value};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

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
/// as the whole text counts as one call too (small models often drop the tags).
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
        let t = text.trim();
        if t.starts_with('{') && t.ends_with('}') {
            if let Some(c) = call_from_json(t, 0).filter(|_| has_arguments(t)) {
                return (String::new(), vec![c]);
            }
        }
    }
    (prose.trim().to_string(), calls)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
