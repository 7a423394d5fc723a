//! Where `solve` and `eval` draw samples: the in-process engine, or OpenAI-compatible
//! servers (`--upstream`, repeated for a fleet serving one model: requests go to a server
//! by their prompt, so repeats find it cached, and a failed call is retried on the next).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ponder_core::{Generator, Message};
use ponder_engine::Engine;
use ponder_eval::PromptTemplate;
use ponder_http::{EndpointConfig, HttpConfig, HttpGenerator};

use crate::common::{self, ModelArgs};

#[derive(Args, Debug, Clone, Default)]
pub struct UpstreamArgs {
    /// Generate through this OpenAI-compatible server (base URL with /v1, e.g. a
    /// llama-server) instead of the in-process engine; repeat for several servers of one model
    #[arg(long, value_name = "URL")]
    pub upstream: Vec<String>,
    /// The upstream's model name (default: the first it lists)
    #[arg(long)]
    pub upstream_model: Option<String>,
    /// Bearer key for the upstream
    #[arg(long, env = "PONDER_UPSTREAM_API_KEY", hide_env_values = true)]
    pub upstream_api_key: Option<String>,
    /// Retries of a failed upstream call, each on the next server [default: 2]
    #[arg(long, value_name = "N")]
    pub upstream_retries: Option<u32>,
}

impl UpstreamArgs {
    /// The HTTP backend's configuration, when `--upstream` is given.
    pub fn config(&self) -> Option<HttpConfig> {
        self.over(None)
    }

    /// `base` (a configuration file's upstream) with these flags over it: `--upstream`
    /// replaces its endpoints, the others replace what they name. `None` when neither
    /// names a server.
    pub fn over(&self, base: Option<HttpConfig>) -> Option<HttpConfig> {
        if self.upstream.is_empty() && base.is_none() {
            return None;
        }
        let mut cfg = base.unwrap_or_default();
        if !self.upstream.is_empty() {
            cfg.endpoints = self
                .upstream
                .iter()
                .map(|u| EndpointConfig { api_key: self.upstream_api_key.clone(), ..EndpointConfig::new(u.clone()) })
                .collect();
        }
        if self.upstream_model.is_some() {
            cfg.model = self.upstream_model.clone();
        }
        if let Some(r) = self.upstream_retries {
            cfg.retries = r;
        }
        Some(cfg)
    }

    /// What the run store records as the model: the upstream's servers, or the model flag.
    pub fn model_label(&self, model: &ModelArgs) -> String {
        match &self.upstream_model {
            _ if self.upstream.is_empty() => model.model.clone(),
            Some(m) => format!("{m} at {}", self.upstream.join(",")),
            None => format!("upstream {}", self.upstream.join(",")),
        }
    }
}

/// The backend samples come from.
pub enum Backend {
    Engine(Engine),
    Http(HttpGenerator),
}

impl Backend {
    /// The engine with the model of `model`, or a connection to every `--upstream`
    /// (each must answer; the model served is checked there).
    pub fn load(model: &ModelArgs, up: &UpstreamArgs, rt: &tokio::runtime::Runtime) -> Result<Backend> {
        match up.config() {
            Some(cfg) => {
                let g = rt.block_on(HttpGenerator::connect(cfg)).context("connecting to --upstream")?;
                Ok(Backend::Http(g))
            }
            None => Ok(Backend::Engine(model.load()?)),
        }
    }

    /// The reasoning markers the model's chat template writes; a server renders its own
    /// template, unseen, so over --upstream markers must be given.
    pub fn thinking_markers(&self) -> Option<ponder_core::reasoning::ThinkingMarkers> {
        match self {
            Backend::Engine(e) => e.thinking_markers(),
            Backend::Http(_) => None,
        }
    }

    pub fn generator(&self) -> &dyn Generator {
        match self {
            Backend::Engine(e) => e,
            Backend::Http(h) => h,
        }
    }

    pub fn shared(&self) -> Arc<dyn Generator> {
        match self {
            Backend::Engine(e) => Arc::new(e.clone()),
            Backend::Http(h) => Arc::new(h.clone()),
        }
    }

    /// `--prompt`, else the default for the dataset kind and model: a server renders chat
    /// itself, and its model name stands for the family.
    pub fn prompt_template(&self, spec: Option<&str>, kind: ponder_eval::Kind) -> Result<PromptTemplate> {
        match self {
            Backend::Engine(e) => common::prompt_template(spec, kind, e),
            Backend::Http(h) => match spec {
                Some(s) => Ok(PromptTemplate::resolve(s.trim())?),
                None => Ok(PromptTemplate::default_for(kind, true, &h.caps().model.to_lowercase())),
            },
        }
    }

    /// The exact prompt text the model sees: the engine's chat template, or the server's
    /// own rendering where it offers one; else the messages as JSON.
    pub fn render(&self, messages: &[Message], rt: &tokio::runtime::Runtime) -> String {
        let rendered = match self {
            Backend::Engine(e) => e.render(messages).ok(),
            Backend::Http(h) => rt.block_on(h.render(messages)).ok(),
        };
        rendered.unwrap_or_else(|| serde_json::to_string(messages).unwrap_or_default())
    }

    /// Fails for flags that need the in-process engine.
    pub fn check_engine_only(up: &UpstreamArgs, what: &str) -> Result<()> {
        if !up.upstream.is_empty() {
            bail!("{what} needs the in-process engine; it does not apply to --upstream");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_go_over_the_config_files_upstream_and_name_only_what_they_name() {
        let file = HttpConfig { retries: 0, timeout_ms: 7, ..HttpConfig::single("http://a/v1") };
        let none = UpstreamArgs::default();
        assert_eq!(none.config(), None, "no flag, no file: the engine");
        assert_eq!(none.over(Some(file.clone())), Some(file.clone()), "the file as written");
        let flags = UpstreamArgs {
            upstream: vec!["http://b/v1".into(), "http://c/v1".into()],
            upstream_retries: Some(3),
            ..UpstreamArgs::default()
        };
        let got = flags.over(Some(file)).unwrap();
        assert_eq!(got.endpoints.iter().map(|e| e.url.as_str()).collect::<Vec<_>>(), ["http://b/v1", "http://c/v1"]);
        assert_eq!((got.retries, got.timeout_ms, got.model), (3, 7, None), "the file's other rules stay");
        let retries_only = UpstreamArgs { upstream_retries: Some(1), ..UpstreamArgs::default() };
        assert_eq!(retries_only.over(Some(HttpConfig::single("http://a/v1"))).unwrap().endpoints[0].url, "http://a/v1");
        assert_eq!(flags.config().unwrap().retries, 3);
        assert_eq!(UpstreamArgs { upstream: vec!["http://b/v1".into()], ..UpstreamArgs::default() }.config().unwrap().retries, 2);
    }
}
