//! Request bodies: OpenAI's chat and completions fields plus the `ponder` object, checked
//! field by field so that every mistake is a 4xx naming its parameter.
//!
//! Strategy and budget come from, in increasing precedence: the server's defaults, the
//! model prefix (`sc-16:smollm2-135m`, `adaptive-sc:smollm2-135m`), the `ponder` object,
//! whose `strategy` is a spec (ponder-core's `StrategySpec`): a shorthand string
//! (`"pf@8"`) or an object (`{"strategy": "pf", "n": 8, "resampling": "systematic"}`).

use axum::http::StatusCode;
use ponder_core::answer::AnswerPattern;
use ponder_core::reasoning::ThinkingRequest;
use ponder_core::scorer_spec::ScorerSpec;
use ponder_core::strategy::{StrategyError, StrategySpec};
use ponder_core::{GenError, Message, Role, SamplingParams, MAX_TOKEN_STATS_K};
use serde_json::{Map, Value};

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::tool_defs;

pub use crate::messages::messages;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

/// How progress events travel in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// SSE comment lines (`: ponder {...}`): every SSE parser skips them.
    Comments,
    /// Chunks with empty `choices` and a `ponder` field (visible to OpenAI clients as extra fields).
    Chunks,
    None,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    /// The model string as sent (echoed in responses).
    pub model: String,
    pub messages: Vec<Message>,
    pub stream: bool,
    /// Choices wanted (only `single` may give more than one).
    pub n: usize,
    pub sampling: SamplingParams,
    pub strategy: StrategySpec,
    pub scorer: ScorerSpec,
    pub return_candidates: bool,
    /// The request's own ceiling on budget x max_tokens.
    pub max_total_tokens: Option<u64>,
    /// Tool-call arguments that do not count when voting on arguments.
    pub ignore_arguments: Vec<String>,
    pub progress: ProgressMode,
    pub tools: Option<Value>,
    pub tool_choice: Option<Value>,
    pub logprobs: bool,
    /// Where the answer is in free text (`ponder.answer_pattern`): votes group on it
    /// instead of the built-in numeric and tool-call rules.
    pub answer_pattern: Option<AnswerPattern>,
    /// Reasoning spans (`ponder.think_markers`, `ponder.thinking_budget`,
    /// `ponder.answer_prefix`), resolved against the model's template when the request runs.
    pub thinking: ThinkingRequest,
    /// The upstream server this request asked for (`x-ponder-upstream`, where allowed).
    pub upstream: Option<usize>,
}

impl Request {
    /// Samples this request may draw at most.
    pub fn samples(&self) -> usize {
        self.strategy.budget()
    }

    /// The question, for scorers: the last user turn.
    pub fn question(&self) -> String {
        self.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.clone()).unwrap_or_default()
    }
}

pub(crate) fn invalid(msg: impl Into<String>, param: &str) -> ApiError {
    ApiError::invalid(msg).param(param)
}

fn opt_f32(o: &Map<String, Value>, key: &str, param: &str) -> Result<Option<f32>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .map(|x| Some(x as f32))
            .ok_or_else(|| invalid(format!("{param} must be a number, got {v}"), param)),
    }
}

fn opt_u64(o: &Map<String, Value>, key: &str, param: &str) -> Result<Option<u64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| invalid(format!("{param} must be a non-negative integer, got {v}"), param)),
    }
}

fn opt_bool(o: &Map<String, Value>, key: &str, param: &str) -> Result<Option<bool>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid(format!("{param} must be true or false, got {v}"), param)),
    }
}

pub(crate) fn opt_str<'a>(o: &'a Map<String, Value>, key: &str, param: &str) -> Result<Option<&'a str>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(invalid(format!("{param} must be a string, got {v}"), param)),
    }
}

/// Splits `STRATEGY[-BUDGET]:MODEL`; `None` when `model` is the served id itself.
pub fn model_prefix(model: &str, served: &str) -> Result<Option<(String, Option<usize>)>, ApiError> {
    if model == served {
        return Ok(None);
    }
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist. This server serves `{served}`, optionally prefixed STRATEGY[-BUDGET]: (e.g. `sc-16:{served}`)."),
        )
        .param("model")
        .code("model_not_found")
    };
    let (prefix, rest) = model.split_once(':').ok_or_else(not_found)?;
    if rest != served || prefix.is_empty() {
        return Err(not_found());
    }
    Ok(Some(match prefix.rsplit_once('-') {
        Some((s, b)) if !s.is_empty() && !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
            let budget = b.parse().map_err(|_| invalid(format!("budget {b:?} in the model prefix is too large"), "model"))?;
            (s.to_string(), Some(budget))
        }
        _ => (prefix.to_string(), None),
    }))
}

const PONDER_FIELDS: &[&str] = &["strategy", "budget", "max_total_tokens", "token_ceiling", "scorer", "return_candidates", "ignore_arguments",
    "progress", "answer_pattern", "think_markers", "thinking_budget", "answer_prefix"];

/// `ponder.think_markers`, `ponder.thinking_budget` and `ponder.answer_prefix` (issue 14).
fn thinking_request(p: &Map<String, Value>) -> Result<ThinkingRequest, ApiError> {
    let markers = opt_str(p, "think_markers", "ponder.think_markers")?.map(str::parse).transpose();
    let budget = opt_u64(p, "thinking_budget", "ponder.thinking_budget")?;
    let bad_budget = |t| invalid(format!("ponder.thinking_budget must be between 1 and {}, got {t}", u32::MAX), "ponder.thinking_budget");
    Ok(ThinkingRequest {
        markers: markers.map_err(|e: String| invalid(e, "ponder.think_markers"))?.unwrap_or_default(),
        budget: budget.map(|t| u32::try_from(t).ok().filter(|&t| t > 0).ok_or_else(|| bad_budget(t))).transpose()?,
        answer_prefix: opt_str(p, "answer_prefix", "ponder.answer_prefix")?.map(str::to_string),
    })
}

/// Parses and checks a request body (limits are checked by the caller).
pub fn parse(kind: Kind, body: &[u8], served: &str, cfg: &ServerConfig) -> Result<Request, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("We could not parse the JSON body of your request: {e}")).code("invalid_json"))?;
    let o = v.as_object().ok_or_else(|| ApiError::invalid("the request body must be a JSON object").code("invalid_json"))?;
    let model = match o.get("model") {
        Some(Value::String(m)) => m.clone(),
        None | Some(Value::Null) => return Err(invalid("'model' is a required property", "model").code("missing_required_parameter")),
        Some(other) => return Err(invalid(format!("model must be a string, got {other}"), "model")),
    };
    let d = &cfg.defaults;
    let (mut strategy, mut budget) = (d.strategy.clone(), d.budget);
    if let Some((s, b)) = model_prefix(&model, served)? {
        strategy = Value::String(s);
        budget = b.unwrap_or(budget);
    }
    let mut scorer = d.scorer.clone();
    let (mut return_candidates, mut max_total_tokens, mut ignore_arguments, mut progress) =
        (false, None, Vec::new(), ProgressMode::Comments);
    let mut answer_pattern = None;
    let mut thinking = ThinkingRequest::default();
    match o.get("ponder") {
        None | Some(Value::Null) => {}
        Some(Value::Object(p)) => {
            if let Some(k) = p.keys().find(|k| !PONDER_FIELDS.contains(&k.as_str())) {
                return Err(invalid(format!("unknown field ponder.{k} (known: {})", PONDER_FIELDS.join(", ")), &format!("ponder.{k}")));
            }
            match p.get("strategy") {
                None | Some(Value::Null) => {}
                Some(v @ (Value::String(_) | Value::Object(_))) => strategy = v.clone(),
                Some(_) => return Err(invalid("ponder.strategy must be a spec: a string (\"pf@8\") or an object", "ponder.strategy")),
            }
            if let Some(b) = opt_u64(p, "budget", "ponder.budget")? {
                budget = usize::try_from(b).unwrap_or(usize::MAX);
            }
            if let Some(s) = opt_str(p, "scorer", "ponder.scorer")? {
                scorer = s.to_string();
            }
            return_candidates = opt_bool(p, "return_candidates", "ponder.return_candidates")?.unwrap_or(false);
            max_total_tokens = opt_u64(p, "max_total_tokens", "ponder.max_total_tokens")?
                .or(opt_u64(p, "token_ceiling", "ponder.token_ceiling")?);
            if let Some(list) = p.get("ignore_arguments").filter(|v| !v.is_null()) {
                ignore_arguments = list
                    .as_array()
                    .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| invalid("ponder.ignore_arguments must be an array of strings", "ponder.ignore_arguments"))?;
            }
            if let Some(pat) = opt_str(p, "answer_pattern", "ponder.answer_pattern")? {
                answer_pattern = Some(pat.parse::<AnswerPattern>().map_err(|e| invalid(e, "ponder.answer_pattern"))?);
            }
            thinking = thinking_request(p)?;
            progress = match opt_str(p, "progress", "ponder.progress")? {
                None | Some("comments") => ProgressMode::Comments,
                Some("chunks") => ProgressMode::Chunks,
                Some("none") => ProgressMode::None,
                Some(other) => {
                    return Err(invalid(format!("ponder.progress must be comments, chunks or none, got {other:?}"), "ponder.progress"))
                }
            };
        }
        Some(_) => return Err(invalid("ponder must be an object", "ponder")),
    }
    let messages = match kind {
        Kind::Chat => messages(o.get("messages"), cfg.limits.max_messages)?,
        Kind::Completion => {
            let prompt = match o.get("prompt") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_string(),
                None | Some(Value::Null) => {
                    return Err(invalid("'prompt' is a required property", "prompt").code("missing_required_parameter"))
                }
                Some(_) => return Err(invalid("prompt must be a string (batches and token arrays are not supported)", "prompt")),
            };
            if prompt.is_empty() {
                return Err(invalid("prompt must not be empty", "prompt"));
            }
            vec![Message::user(prompt)]
        }
    };
    let max_tokens = opt_u64(o, "max_completion_tokens", "max_completion_tokens")?
        .or(opt_u64(o, "max_tokens", "max_tokens")?)
        .unwrap_or(u64::from(d.max_tokens));
    if max_tokens == 0 {
        return Err(invalid("max_tokens must be at least 1", "max_tokens"));
    }
    if max_tokens > u64::from(cfg.limits.max_tokens) {
        return Err(invalid(format!("max_tokens {max_tokens} is above this server's ceiling of {}", cfg.limits.max_tokens), "max_tokens")
            .code("max_tokens_too_large"));
    }
    let stop = match o.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("stop must be a string or an array of strings", "stop"))?,
        Some(_) => return Err(invalid("stop must be a string or an array of strings", "stop")),
    };
    if stop.len() > 16 || stop.iter().any(String::is_empty) {
        return Err(invalid("stop takes at most 16 non-empty strings", "stop"));
    }
    let sampling = SamplingParams {
        temperature: opt_f32(o, "temperature", "temperature")?.unwrap_or(d.temperature),
        top_p: opt_f32(o, "top_p", "top_p")?.unwrap_or(d.top_p),
        top_k: opt_u64(o, "top_k", "top_k")?.map_or(0, |k| k.min(u64::from(u32::MAX)) as u32),
        min_p: opt_f32(o, "min_p", "min_p")?.unwrap_or(0.0),
        seed: match o.get("seed") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().or_else(|| v.as_i64().map(|x| x as u64)).ok_or_else(|| invalid("seed must be an integer", "seed"))?,
        },
        max_tokens: max_tokens as u32,
        stop,
        ignore_eos: opt_bool(o, "ignore_eos", "ignore_eos")?.unwrap_or(false),
        ..SamplingParams::default()
    };
    check_sampling(&sampling)?;
    let n = opt_u64(o, "n", "n")?.unwrap_or(1);
    if n == 0 {
        return Err(invalid("n must be at least 1", "n"));
    }
    let mut strategy = StrategySpec::from_value(strategy, Some(budget)).map_err(|e| spec_error(&e))?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let n = match &mut strategy {
        // OpenAI's `n` is single's own: n independent samples, every one a choice.
        StrategySpec::Single(c) if n > 1 => {
            c.n = n;
            n
        }
        StrategySpec::Single(c) => c.n,
        other if n > 1 => {
            let name = other.name();
            return Err(invalid(format!("n = {n} needs strategy single (strategy {name} returns one answer; raise its budget instead)"), "n"));
        }
        _ => 1,
    };
    let scorer: ScorerSpec = scorer.parse().map_err(|e: ponder_core::scorer_spec::ScorerSpecError| invalid(e.to_string(), "ponder.scorer"))?;
    let samples = strategy.budget();
    if samples > cfg.limits.max_budget {
        return Err(invalid(
            format!("budget {samples} is above this server's ceiling of {} samples per request", cfg.limits.max_budget),
            if n > 1 { "n" } else { "ponder.budget" },
        )
        .code("budget_too_large"));
    }
    let tools = o.get("tools").filter(|t| !t.is_null()).cloned();
    if let Some(t) = &tools {
        tool_defs::check(t)?;
        ignore_arguments.extend(tool_defs::non_semantic(t));
    }
    let stream = opt_bool(o, "stream", "stream")?.unwrap_or(false);
    let (logprobs, top_logprobs) = logprobs(o, kind, strategy.name(), stream)?;
    let sampling = SamplingParams { top_logprobs, ..sampling };
    check_stream_options(o, stream)?;
    Ok(Request {
        kind,
        model,
        messages,
        stream,
        n,
        sampling,
        strategy,
        scorer,
        return_candidates,
        max_total_tokens,
        ignore_arguments,
        progress,
        tools,
        tool_choice: o.get("tool_choice").filter(|t| !t.is_null()).cloned(),
        logprobs,
        answer_pattern,
        thinking,
        upstream: None,
    })
}

/// A spec that does not parse or check, as a 400 naming the parameter: the field of the
/// spec (`ponder.strategy.ess_threshold`), else the spec or the budget. The message is
/// ponder-core's, the same the CLI and the config file give.
pub(crate) fn spec_error(e: &StrategyError) -> ApiError {
    match e {
        StrategyError::InvalidConfig { field, .. } => {
            invalid(e.to_string(), &format!("ponder.strategy.{field}")).code("invalid_strategy")
        }
        StrategyError::InvalidBudget(_) => invalid(e.to_string(), "ponder.budget").code("invalid_budget"),
        StrategyError::UnknownStrategy { .. } => invalid(e.to_string(), "ponder.strategy").code("unknown_strategy"),
        _ => invalid(e.to_string(), "ponder.strategy").code("invalid_strategy"),
    }
}

/// The sampling parameters' ranges (the generator contract's), each error naming its field.
fn check_sampling(s: &SamplingParams) -> Result<(), ApiError> {
    let Err(e) = s.validate() else { return Ok(()) };
    let message = match e {
        GenError::InvalidRequest(m) => m,
        other => other.to_string(),
    };
    // The field at fault is the one that fails alone on otherwise default parameters.
    let d = SamplingParams::default();
    let alone = [
        ("temperature", SamplingParams { temperature: s.temperature, ..d.clone() }),
        ("top_p", SamplingParams { top_p: s.top_p, ..d.clone() }),
        ("min_p", SamplingParams { min_p: s.min_p, ..d.clone() }),
        ("max_tokens", SamplingParams { max_tokens: s.max_tokens, ..d.clone() }),
    ];
    let param = alone.iter().find(|(_, p)| p.validate().is_err()).map(|(name, _)| *name);
    let e = ApiError::invalid(message);
    Err(match param {
        Some(p) => e.param(p),
        None => e,
    })
}

/// `logprobs` and how many most likely tokens to list at each position: chat takes
/// `logprobs: true` with `top_logprobs: 0..=20`, completions `logprobs: N`. Only for plain
/// sampling (a strategy answers with a chosen candidate whose token logprobs it does not
/// keep) and not streamed (the answer streams after the decision, in pieces of words).
fn logprobs(o: &Map<String, Value>, kind: Kind, strategy: &str, stream: bool) -> Result<(bool, u32), ApiError> {
    let (wanted, top, top_param) = match (o.get("logprobs"), kind) {
        (None | Some(Value::Null) | Some(Value::Bool(false)), _) => (false, None, "top_logprobs"),
        (Some(Value::Bool(true)), Kind::Chat) => (true, None, "top_logprobs"),
        (Some(Value::Bool(true)), Kind::Completion) => (true, Some(0), "logprobs"),
        (Some(Value::Number(n)), Kind::Completion) if n.is_u64() => (true, n.as_u64(), "logprobs"),
        (Some(v), Kind::Chat) => return Err(invalid(format!("logprobs must be true or false, got {v}"), "logprobs")),
        (Some(v), Kind::Completion) => return Err(invalid(format!("logprobs must be a non-negative integer, got {v}"), "logprobs")),
    };
    let top = match (kind, o.get("top_logprobs")) {
        (Kind::Chat, None | Some(Value::Null)) => 0,
        (Kind::Chat, Some(v)) => {
            let k = v.as_u64().ok_or_else(|| invalid(format!("top_logprobs must be an integer from 0 to {MAX_TOKEN_STATS_K}, got {v}"), "top_logprobs"))?;
            if !wanted {
                return Err(invalid("top_logprobs needs logprobs: true", "top_logprobs"));
            }
            k
        }
        (Kind::Completion, _) => top.unwrap_or(0),
    };
    if top > u64::from(MAX_TOKEN_STATS_K) {
        return Err(invalid(format!("{top_param} lists at most {MAX_TOKEN_STATS_K} tokens per position, got {top}"), top_param));
    }
    if wanted && strategy != "single" {
        return Err(invalid(
            format!("logprobs needs strategy single (plain sampling); strategy {strategy} answers with a chosen candidate whose token logprobs are not kept"),
            "logprobs",
        )
        .code("unsupported_parameter"));
    }
    if wanted && stream {
        return Err(invalid("logprobs are not streamed: the answer streams after the decision, in pieces of words; ask without stream", "logprobs")
            .code("unsupported_parameter"));
    }
    Ok((wanted, top as u32))
}

/// `stream_options` as OpenAI takes it: an object, only with `stream: true`. The usage
/// chunk is sent whatever `include_usage` says.
fn check_stream_options(o: &Map<String, Value>, stream: bool) -> Result<(), ApiError> {
    let so = match o.get("stream_options") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(so)) => so,
        Some(v) => return Err(invalid(format!("stream_options must be an object like {{\"include_usage\": true}}, got {v}"), "stream_options")),
    };
    if !stream {
        return Err(invalid("stream_options is only allowed when stream is true", "stream_options"));
    }
    for key in so.keys() {
        let param = format!("stream_options.{key}");
        if !matches!(key.as_str(), "include_usage" | "include_obfuscation") {
            return Err(invalid(format!("unknown field {param} (known: include_usage, include_obfuscation)"), &param));
        }
        opt_bool(so, key, &param)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chat(body: &str) -> Result<Request, ApiError> {
        parse(Kind::Chat, body.as_bytes(), "m", &ServerConfig::default())
    }

    #[test]
    fn strategy_from_prefix_and_body() {
        let r = parse_chat(r#"{"model":"sc-16:m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(r.strategy.to_string(), "sc@16");
        let r = parse_chat(r#"{"model":"adaptive-sc:m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(r.strategy.to_string(), "adaptive-sc@8");
        let r = parse_chat(r#"{"model":"sc-16:m","messages":[{"role":"user","content":"hi"}],"ponder":{"strategy":"bon","budget":3}}"#)
            .unwrap();
        assert_eq!(r.strategy.to_string(), "bon@3");
        // A whole spec, as an object or a shorthand; the budget fills `n` when it is left out.
        let r = parse_chat(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"ponder":{"strategy":{"strategy":"pf","resampling":"systematic"},"budget":4}}"#,
        )
        .unwrap();
        assert_eq!(r.strategy.to_string(), r#"pf@4{ resampling = "systematic" }"#);
        let r = parse_chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"ponder":{"strategy":"beam@6{width = 3}"}}"#).unwrap();
        assert_eq!(r.strategy.to_string(), "beam@6{ width = 3 }");
        let r = parse_chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"ponder":{"strategy":"single"},"n":3}"#).unwrap();
        assert_eq!((r.strategy.to_string().as_str(), r.n, r.samples()), ("single@3", 3, 3));
    }

    #[test]
    fn errors_name_their_parameter() {
        let cases = [
            (r#"{"model":"m"}"#, "messages", 400),
            (r#"{"model":"m","messages":[]}"#, "messages", 400),
            (r#"{"messages":[{"role":"user","content":"x"}]}"#, "model", 400),
            (r#"{"model":"other","messages":[{"role":"user","content":"x"}]}"#, "model", 404),
            (r#"{"model":"sc-65:m","messages":[{"role":"user","content":"x"}]}"#, "ponder.budget", 400),
            (r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#, "messages[0].role", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#, "temperature", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":999999}"#, "max_tokens", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"ponder":{"budgett":2}}"#, "ponder.budgett", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":3}"#, "n", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"ponder":{"strategy":{"strategy":"pf","ess_threshold":2}}}"#, "ponder.strategy.ess_threshold", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"ponder":{"strategy":"beam{widht = 2}"}}"#, "ponder.strategy", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"ponder":{"strategy":"nope"}}"#, "ponder.strategy", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"ponder":{"scorer":"nope"}}"#, "ponder.scorer", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}"#, "top_logprobs", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":-1}"#, "top_logprobs", 400),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":3}"#, "top_logprobs", 400),
            (r#"{"model":"single:m","messages":[{"role":"user","content":"x"}],"logprobs":true,"stream":true}"#, "logprobs", 400),
        ];
        for (body, param, status) in cases {
            let e = parse_chat(body).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {e:?}");
            assert_eq!(e.status.as_u16(), status, "{body}: {e:?}");
        }
        assert_eq!(parse_chat("{not json").unwrap_err().code.as_deref(), Some("invalid_json"));
        assert_eq!(parse_chat("[1]").unwrap_err().code.as_deref(), Some("invalid_json"));
    }

    #[test]
    fn top_logprobs_reach_the_sampling_parameters() {
        let r = parse_chat(r#"{"model":"single:m","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":5}"#).unwrap();
        assert_eq!((r.logprobs, r.sampling.top_logprobs), (true, 5));
        let r = parse_chat(r#"{"model":"single:m","messages":[{"role":"user","content":"x"}],"logprobs":true}"#).unwrap();
        assert_eq!((r.logprobs, r.sampling.top_logprobs), (true, 0));
        let completion = |body: &str| parse(Kind::Completion, body.as_bytes(), "m", &ServerConfig::default());
        let r = completion(r#"{"model":"single:m","prompt":"x","logprobs":3}"#).unwrap();
        assert_eq!((r.logprobs, r.sampling.top_logprobs), (true, 3));
        assert_eq!(completion(r#"{"model":"single:m","prompt":"x","logprobs":30}"#).unwrap_err().param.as_deref(), Some("logprobs"));
    }

    #[test]
    fn messages_keep_tool_fields() {
        let r = parse_chat(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"weather?"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{\"city\":\"Oslo\"}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"rain"}],
            "tools":[{"type":"function","function":{"name":"w","parameters":{"properties":{"city":{},"trace":{"x-ponder-non-semantic":true}}}}}]}"#,
        )
        .unwrap();
        assert_eq!(r.messages[0].content, "weather?");
        assert_eq!(r.messages[1].tool_calls[0].name, "w");
        assert_eq!(r.messages[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(r.ignore_arguments, vec!["trace".to_string()]);
    }
}
