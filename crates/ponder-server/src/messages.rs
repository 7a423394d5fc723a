//! A request's `messages`: OpenAI's roles, text content (a string or text parts), tool calls
//! and tool results, each mistake a 400 naming the message and field.

use ponder_core::{Message, Role, ToolCall};
use serde_json::Value;

use crate::error::ApiError;
use crate::request::{invalid, opt_str};

/// A message's text: a string, null, or an array of text parts.
fn content(v: Option<&Value>, param: &str) -> Result<String, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => out.push_str(t),
                    _ => {
                        return Err(invalid(
                            "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported",
                            &format!("{param}[{j}]"),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(invalid(format!("content must be a string or an array of text parts, got {other}"), param)),
    }
}

fn tool_calls(v: Option<&Value>, param: &str) -> Result<Vec<ToolCall>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let arr = v.as_array().ok_or_else(|| invalid("tool_calls must be an array", param))?;
    arr.iter()
        .enumerate()
        .map(|(j, c)| {
            let p = format!("{param}[{j}]");
            let f = c.get("function").ok_or_else(|| invalid("a tool call needs a function", &p))?;
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| invalid("a tool call needs function.name", &p))?;
            let arguments = match f.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => "{}".into(),
                Some(other) => other.to_string(),
            };
            let id = c.get("id").and_then(Value::as_str).unwrap_or("").to_string();
            Ok(ToolCall { id, name: name.to_string(), arguments })
        })
        .collect()
}

/// The conversation, at most `max` messages.
pub fn messages(v: Option<&Value>, max: usize) -> Result<Vec<Message>, ApiError> {
    let arr = match v {
        None | Some(Value::Null) => {
            return Err(invalid("'messages' is a required property", "messages").code("missing_required_parameter"))
        }
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid("messages must be an array", "messages")),
    };
    if arr.is_empty() {
        return Err(invalid("messages must not be empty", "messages"));
    }
    if arr.len() > max {
        return Err(invalid(format!("at most {max} messages per request, got {}", arr.len()), "messages"));
    }
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let p = format!("messages[{i}]");
            let o = m.as_object().ok_or_else(|| invalid("a message must be an object", &p))?;
            let role = match o.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("tool" | "function") => Role::Tool,
                Some(other) => return Err(invalid(format!("unknown role {other:?}"), &format!("{p}.role"))),
                None => return Err(invalid("a message needs a role", &format!("{p}.role"))),
            };
            let mut msg = Message::new(role, content(o.get("content"), &format!("{p}.content"))?);
            msg.tool_calls = tool_calls(o.get("tool_calls"), &format!("{p}.tool_calls"))?;
            msg.tool_call_id = opt_str(o, "tool_call_id", &format!("{p}.tool_call_id"))?.map(str::to_string);
            msg.name = opt_str(o, "name", &format!("{p}.name"))?.map(str::to_string);
            Ok(msg)
        })
        .collect()
}
