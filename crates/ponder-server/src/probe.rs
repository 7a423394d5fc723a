//! `POST /v1/ponder/probe {prompts, suffix, candidates}`: for each prompt, the
//! log-probabilities of each candidate's first token after `suffix` (self-evaluation over
//! HTTP). A probe prefills its prompts, so it is charged to the key like any generation:
//! its worst case is reserved first (429 when the key cannot cover it), and each prompt's
//! work is charged as it finishes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use ponder_core::{GenError, Generator};
use serde_json::{json, Value};

use crate::app::{read_body, AppState};
use crate::backend::Backend;
use crate::error::ApiError;
use crate::response::openai_usage;
use crate::settle::Meter;

/// Most candidates per probe.
const MAX_CANDIDATES: usize = 16;

struct Probe {
    prompts: Vec<String>,
    suffix: String,
    candidates: Vec<String>,
}

pub(crate) async fn probe(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Result<Json<Value>, ApiError> {
    let key = st.keys.authenticate(&headers)?;
    let bytes = read_body(&headers, body, st.config.limits.max_body_bytes).await?;
    let p = parse(&bytes, st.config.limits.max_budget * 4)?;
    let worst = worst_case(&st.backend, &p)?;
    let meter = Meter::new(st.keys.reserve(key.as_deref(), worst)?, st.metrics.clone());
    let upstream = st.backend.is_upstream();
    // On its own task: a probe whose client leaves still ends, and is charged, as it finishes.
    let backend = st.backend.clone();
    let task = tokio::spawn(async move { backend.probe(&p.prompts, &p.suffix, &p.candidates, &meter).await });
    let (lps, usage) = task
        .await
        .map_err(|e| ApiError::internal(format!("the probe's task failed: {e}")))?
        .map_err(|e| match e {
            GenError::PromptTooLong { .. } => ApiError::from_gen(&e, upstream).param("prompts"),
            _ => ApiError::from_gen(&e, upstream),
        })?;
    let lps: Vec<Vec<Value>> = lps.iter().map(|r| r.iter().map(|x| if x.is_finite() { json!(x) } else { json!(-1e30) }).collect()).collect();
    Ok(Json(json!({ "logprobs": lps, "usage": openai_usage(&usage), "ponder": { "usage": usage } })))
}

/// The body, every field checked and named when wrong.
fn parse(bytes: &[u8], max_prompts: usize) -> Result<Probe, ApiError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("invalid JSON: {e}")).code("invalid_json"))?;
    let strings = |key: &str, max: usize| -> Result<Vec<String>, ApiError> {
        let bad = |m: String| ApiError::invalid(m).param(key);
        let list = match v.get(key) {
            None | Some(Value::Null) => {
                return Err(bad(format!("'{key}' is a required property")).code("missing_required_parameter"))
            }
            Some(Value::Array(a)) => a,
            Some(other) => return Err(bad(format!("{key} must be an array of strings, got {other}"))),
        };
        if list.is_empty() || list.len() > max {
            return Err(bad(format!("{key} must hold 1 to {max} strings, got {}", list.len())));
        }
        list.iter()
            .enumerate()
            .map(|(i, x)| match x.as_str() {
                Some("") => Err(ApiError::invalid(format!("{key}[{i}] is empty")).param(format!("{key}[{i}]"))),
                Some(s) => Ok(s.to_string()),
                None => Err(ApiError::invalid(format!("{key}[{i}] must be a string, got {x}")).param(format!("{key}[{i}]"))),
            })
            .collect()
    };
    let prompts = strings("prompts", max_prompts)?;
    let candidates = strings("candidates", MAX_CANDIDATES)?;
    let suffix = match v.get("suffix") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(ApiError::invalid(format!("suffix must be a string, got {other}")).param("suffix")),
    };
    Ok(Probe { prompts, suffix, candidates })
}

/// The most a probe can be charged. Per prompt of P tokens and a suffix of S: the session
/// counts its cached prefix as reused, the probe counts it again and computes the rest of
/// P + S, so at most 2P + S. An upstream's tokens are unknown here: a token holds at least
/// one byte, so bytes bound them.
fn worst_case(backend: &Backend, p: &Probe) -> Result<u64, ApiError> {
    match backend {
        Backend::Engine(e) => {
            for (j, c) in p.candidates.iter().enumerate() {
                e.first_token(c).map_err(|err| ApiError::from_gen(&err, false).param(format!("candidates[{j}]")))?;
            }
            let suffix = e.model().vocab().tokenize(p.suffix.as_bytes(), false, true).len() as u64;
            let context = e.info().context_len as u64;
            let mut worst = 0u64;
            for (i, prompt) in p.prompts.iter().enumerate() {
                let n = e.tokenize(prompt).len() as u64;
                if n + suffix >= context {
                    let err = GenError::PromptTooLong { prompt_tokens: (n + suffix) as usize, context: context as usize };
                    return Err(ApiError::from_gen(&err, false).param(format!("prompts[{i}]")));
                }
                worst = worst.saturating_add(2 * n + suffix);
            }
            Ok(worst)
        }
        Backend::Http(_) | Backend::Generator(_) => {
            let suffix = p.suffix.len() as u64 + 1;
            Ok(p.prompts.iter().map(|x| 2 * (x.len() as u64 + 1) + suffix).fold(0, u64::saturating_add))
        }
    }
}
