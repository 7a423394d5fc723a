//! `ponder serve`: the OpenAI-compatible gateway, on the in-process engine or an upstream.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use ponder_http::HttpGenerator;
use ponder_server::{AppState, Backend, ServerConfig};

use crate::backend::UpstreamArgs;
use crate::common::{self, ModelArgs};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the address is printed)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// TOML file with defaults, limits, API keys, upstream and reward model (see ponder-server's config docs)
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Upstream servers (replacing the config file's endpoints), their model, key and retries
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// Accept only requests with this key (repeat for several; adds to the config's keys)
    #[arg(long, env = "PONDER_API_KEY")]
    pub api_key: Vec<String>,
    /// Default strategy spec for requests that name none (`sc`, `pf@8`, `ponder strategies` lists them)
    #[arg(long)]
    pub strategy: Option<String>,
    /// Default budget for requests that name none
    #[arg(long)]
    pub budget: Option<usize>,
    /// The model id clients use (default: the model's name)
    #[arg(long)]
    pub served_model: Option<String>,
}

fn model_name(model: &str) -> String {
    let p = std::path::Path::new(model);
    if model.ends_with(".gguf") {
        p.file_stem().map_or_else(|| model.to_string(), |s| s.to_string_lossy().into_owned())
    } else {
        model.to_string()
    }
}

pub fn run(a: Args) -> Result<()> {
    let mut cfg = match &a.config {
        Some(p) => ServerConfig::load(p).map_err(anyhow::Error::msg)?,
        None => ServerConfig::default(),
    };
    cfg.keys.extend(a.api_key.iter().map(|k| ponder_server::config::KeyConfig { key: k.clone(), token_budget: None }));
    if let Some(s) = &a.strategy {
        cfg.defaults.strategy = serde_json::Value::String(s.clone());
    }
    if let Some(b) = a.budget {
        cfg.defaults.budget = b;
    }
    cfg.upstream = a.upstream.over(cfg.upstream.take());
    if let Some(m) = &a.served_model {
        cfg.model = Some(m.clone());
    }
    cfg.validate().map_err(anyhow::Error::msg).context("server configuration")?;
    let rt = common::runtime()?;
    rt.block_on(async move {
        let (backend, name) = match cfg.upstream.clone() {
            Some(up) => {
                let g = HttpGenerator::connect(up).await?;
                let name = g.caps().model.clone();
                (Backend::Http(g), name)
            }
            None => (Backend::Engine(a.model.load()?), model_name(&a.model.model)),
        };
        let model = cfg.model.clone().unwrap_or(name);
        let listener = tokio::net::TcpListener::bind(&a.listen).await.with_context(|| format!("binding {}", a.listen))?;
        let addr = listener.local_addr()?;
        let info = backend.info();
        let state = Arc::new(AppState::new(backend, model.clone(), cfg).map_err(anyhow::Error::msg)?);
        eprintln!("ponder: serving {model} ({}) on http://{addr}/v1", info.backend);
        ponder_server::serve(listener, state, shutdown()).await.context("serving")?;
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
