//! API keys and per-key token budgets. A request reserves its worst case before any
//! generation (so concurrent requests cannot overspend a key together); each piece of work
//! is charged as the backend reports it, out of that reservation, and the rest of the
//! reservation goes back when the request ends, however it ends (see `settle`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};

use crate::config::KeyConfig;
use crate::error::ApiError;

#[derive(Debug, Default)]
struct Account {
    budget: Option<u64>,
    used: u64,
    reserved: u64,
}

#[derive(Debug, Default)]
pub struct Keys {
    accounts: Mutex<HashMap<String, Account>>,
    open: bool,
}

impl Keys {
    pub fn new(keys: &[KeyConfig]) -> Keys {
        let accounts = keys.iter().map(|k| (k.key.clone(), Account { budget: k.token_budget, ..Account::default() })).collect();
        Keys { accounts: Mutex::new(accounts), open: keys.is_empty() }
    }

    /// The caller's key, checked; `None` when the server has no keys. Only
    /// `Authorization: Bearer KEY` is read (the scheme's case does not matter), and the key
    /// is compared as sent: a key padded with spaces is not the key.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        if self.open {
            return Ok(None);
        }
        let unauthorized = |m: String| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", m).code("invalid_api_key");
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("You didn't provide an API key (Authorization: Bearer KEY).".into()))?;
        let key = match value.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key,
            Some((scheme, _)) => {
                return Err(unauthorized(format!("the Authorization header must be `Bearer KEY`, got the scheme {scheme:?}")))
            }
            None => return Err(unauthorized("the Authorization header must be `Bearer KEY`, got a value without the Bearer scheme".into())),
        };
        if key.is_empty() || key.trim() != key {
            return Err(unauthorized("the API key is empty or padded with whitespace; send it exactly as issued".into()));
        }
        let known = self.accounts.lock().map(|a| a.contains_key(key)).unwrap_or(false);
        if !known {
            return Err(unauthorized("Incorrect API key provided.".into()));
        }
        Ok(Some(key.to_string()))
    }

    /// Reserves `tokens` of the key's budget; fails with 429 when it does not fit.
    pub fn reserve(self: &Arc<Self>, key: Option<&str>, tokens: u64) -> Result<Reservation, ApiError> {
        let Some(key) = key else { return Ok(Reservation { keys: None, key: String::new(), left: AtomicU64::new(0) }) };
        let mut accounts = self.accounts.lock().map_err(|_| ApiError::internal("key table poisoned"))?;
        let acc = accounts.get_mut(key).ok_or_else(|| ApiError::internal("unknown key"))?;
        if let Some(budget) = acc.budget {
            let left = budget.saturating_sub(acc.used + acc.reserved);
            if tokens > left {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "insufficient_quota",
                    format!("this request may use up to {tokens} tokens but the key has {left} of its {budget} left"),
                )
                .code("insufficient_quota"));
            }
        }
        acc.reserved += tokens;
        Ok(Reservation { keys: Some(self.clone()), key: key.to_string(), left: AtomicU64::new(tokens) })
    }

    /// Tokens a key has spent so far.
    pub fn used(&self, key: &str) -> Option<u64> {
        self.accounts.lock().ok()?.get(key).map(|a| a.used)
    }

    /// Tokens a key's requests in flight still hold in reserve.
    pub fn reserved(&self, key: &str) -> Option<u64> {
        self.accounts.lock().ok()?.get(key).map(|a| a.reserved)
    }
}

/// A key's reserved worst case. [`Reservation::charge`] moves tokens from it to the key's
/// use as the work is done (beyond it once it is spent); dropping it releases the rest.
pub struct Reservation {
    keys: Option<Arc<Keys>>,
    key: String,
    /// Tokens still held back; changed only under the key table's lock.
    left: AtomicU64,
}

impl Reservation {
    pub fn charge(&self, tokens: u64) {
        let Some(keys) = &self.keys else { return };
        if let Ok(mut a) = keys.accounts.lock() {
            if let Some(acc) = a.get_mut(&self.key) {
                let left = self.left.load(Ordering::Relaxed);
                let held = tokens.min(left);
                self.left.store(left - held, Ordering::Relaxed);
                acc.reserved = acc.reserved.saturating_sub(held);
                acc.used += tokens;
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(keys) = self.keys.take() else { return };
        let left = *self.left.get_mut();
        if let Ok(mut a) = keys.accounts.lock() {
            if let Some(acc) = a.get_mut(&self.key) {
                acc.reserved = acc.reserved.saturating_sub(left);
            }
        };
    }
}
