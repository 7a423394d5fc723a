//! OpenAI-style errors: `{"error": {"message", "type", "param", "code"}}` with the right status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ponder_core::strategy::StrategyError;
use ponder_core::GenError;
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), param: None, code: None }
    }

    pub fn param(mut self, p: impl Into<String>) -> Self {
        self.param = Some(p.into());
        self
    }

    pub fn code(mut self, c: impl Into<String>) -> Self {
        self.code = Some(c.into());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
    }

    /// A generator error, as the gateway reports it. `upstream`: the backend is remote, so
    /// its failures are a bad gateway rather than our own.
    #[allow(unreachable_patterns)] // variants other crates may add later
    pub fn from_gen(e: &GenError, upstream: bool) -> Self {
        match e {
            GenError::InvalidRequest(m) => Self::invalid(m.clone()),
            GenError::PromptTooLong { .. } => Self::invalid(e.to_string()).param("messages").code("context_length_exceeded"),
            GenError::Unsupported(_) => Self::invalid(e.to_string()).code("unsupported"),
            GenError::UnknownBranch(_) => Self::internal(e.to_string()),
            GenError::Backend(_) if upstream => {
                Self::new(StatusCode::BAD_GATEWAY, "server_error", e.to_string()).code("upstream_error")
            }
            GenError::Backend(_) => Self::internal(e.to_string()).code("engine_error"),
            _ => Self::internal(e.to_string()),
        }
    }

    #[allow(unreachable_patterns)] // variants other crates may add later
    pub fn from_strategy(e: &StrategyError, upstream: bool) -> Self {
        match e {
            StrategyError::UnknownStrategy { .. } => Self::invalid(e.to_string()).param("ponder.strategy").code("unknown_strategy"),
            StrategyError::InvalidBudget(_) => Self::invalid(e.to_string()).param("ponder.budget").code("invalid_budget"),
            StrategyError::NeedsScorer(_) | StrategyError::NeedsProcessScorer(_) | StrategyError::NeedsVerifier(_) => {
                Self::invalid(e.to_string()).param("ponder.strategy").code("unsupported_strategy")
            }
            StrategyError::InsufficientCandidates { .. } => {
                let status = if upstream { StatusCode::BAD_GATEWAY } else { StatusCode::INTERNAL_SERVER_ERROR };
                Self::new(status, "server_error", e.to_string()).code("insufficient_candidates")
            }
            StrategyError::Generator(g) => Self::from_gen(g, upstream),
            StrategyError::Scorer(_) => Self::internal(e.to_string()).code("scorer_error"),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    /// 5xx details (engine or upstream messages, addresses) go to the log, not the client;
    /// the codes that say what happened without internals keep their message.
    fn into_response(self) -> Response {
        let mut e = self;
        if e.status.is_server_error() {
            tracing::error!(status = e.status.as_u16(), code = ?e.code, "{}", e.message);
            e = e.public();
        }
        (e.status, Json(e.body())).into_response()
    }
}

impl ApiError {
    /// What a client may see of this error.
    pub fn public(mut self) -> Self {
        if self.status.is_server_error() {
            let safe = matches!(self.code.as_deref(), Some("insufficient_candidates" | "timeout"));
            if !safe {
                self.message = match self.code.as_deref() {
                    Some("upstream_error") => "the upstream server failed; details are in the gateway's log".into(),
                    _ => "internal error; details are in the server's log".into(),
                };
            }
        }
        self
    }
}
