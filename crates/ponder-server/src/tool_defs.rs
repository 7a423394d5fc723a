//! A request's `tools`, checked as OpenAI checks them: a non-empty array of
//! `{"type": "function", "function": {"name", "description"?, "parameters"?, "strict"?}}`,
//! every mistake a 400 naming its place (`tools[0].function.name`).

use serde_json::{Map, Value};

use crate::error::ApiError;

fn invalid(msg: impl Into<String>, param: &str) -> ApiError {
    ApiError::invalid(msg).param(param)
}

fn missing(param: &str) -> ApiError {
    invalid(format!("'{param}' is a required property"), param).code("missing_required_parameter")
}

/// OpenAI's rule for function names.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks `tools` (present and not null).
pub fn check(tools: &Value) -> Result<(), ApiError> {
    let list = tools.as_array().ok_or_else(|| invalid(format!("tools must be an array of tool definitions, got {tools}"), "tools"))?;
    if list.is_empty() {
        return Err(invalid("tools must not be an empty array (leave it out instead)", "tools"));
    }
    for (i, t) in list.iter().enumerate() {
        let p = format!("tools[{i}]");
        let o = t.as_object().ok_or_else(|| {
            invalid(format!("{p} must be an object like {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}, got {t}"), &p)
        })?;
        match o.get("type") {
            None | Some(Value::Null) => return Err(missing(&format!("{p}.type"))),
            Some(Value::String(s)) if s == "function" => {}
            Some(other) => return Err(invalid(format!("{p}.type must be \"function\", got {other}"), &format!("{p}.type"))),
        }
        let f = match o.get("function") {
            None | Some(Value::Null) => return Err(missing(&format!("{p}.function"))),
            Some(Value::Object(f)) => f,
            Some(other) => return Err(invalid(format!("{p}.function must be an object, got {other}"), &format!("{p}.function"))),
        };
        function(f, &format!("{p}.function"))?;
    }
    Ok(())
}

fn function(f: &Map<String, Value>, p: &str) -> Result<(), ApiError> {
    match f.get("name") {
        None | Some(Value::Null) => return Err(missing(&format!("{p}.name"))),
        Some(Value::String(n)) if valid_name(n) => {}
        Some(other) => {
            return Err(invalid(
                format!("{p}.name must be 1 to 64 letters, digits, underscores or dashes, got {other}"),
                &format!("{p}.name"),
            ))
        }
    }
    let field = |key: &str, ok: fn(&Value) -> bool, what: &str| match f.get(key) {
        Some(v) if !v.is_null() && !ok(v) => Err(invalid(format!("{p}.{key} must be {what}, got {v}"), &format!("{p}.{key}"))),
        _ => Ok(()),
    };
    field("description", Value::is_string, "a string")?;
    field("parameters", Value::is_object, "a JSON Schema object")?;
    field("strict", Value::is_boolean, "true or false")
}

/// Parameters a tool's JSON schema marks `"x-ponder-non-semantic": true`.
pub fn non_semantic(tools: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for t in tools.as_array().into_iter().flatten() {
        let props = t.pointer("/function/parameters/properties").and_then(Value::as_object);
        for (name, schema) in props.into_iter().flatten() {
            if schema.get("x-ponder-non-semantic").and_then(Value::as_bool) == Some(true) {
                out.push(name.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn check_err(tools: Value, param: &str) {
        let e = check(&tools).expect_err("a bad tools array");
        assert_eq!(e.param.as_deref(), Some(param), "{e:?}");
        assert_eq!(e.status.as_u16(), 400);
    }

    #[test]
    fn each_mistake_names_its_place() {
        check_err(json!("x"), "tools");
        check_err(json!([]), "tools");
        check_err(json!([1]), "tools[0]");
        check_err(json!([{ "function": { "name": "f" } }]), "tools[0].type");
        check_err(json!([{ "type": "retrieval", "function": { "name": "f" } }]), "tools[0].type");
        check_err(json!([{ "type": "function" }]), "tools[0].function");
        check_err(json!([{ "type": "function", "function": {} }]), "tools[0].function.name");
        check_err(json!([{ "type": "function", "function": { "name": "get weather" } }]), "tools[0].function.name");
        check_err(json!([{ "type": "function", "function": { "name": "f", "parameters": "oops" } }]), "tools[0].function.parameters");
        check_err(json!([{ "type": "function", "function": { "name": "f", "description": 3 } }]), "tools[0].function.description");
        let ok = json!({ "type": "function", "function": { "name": "get_weather-2", "parameters": { "type": "object" } } });
        check_err(json!([ok, { "type": "function", "function": { "name": "f", "strict": "yes" } }]), "tools[1].function.strict");
        assert!(check(&json!([ok, { "type": "function", "function": { "name": "f", "description": null } }])).is_ok());
    }
}
