//! Flags and set-up shared by the subcommands.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ponder_core::answer::{extract_answer, NumericEquivalence};
use ponder_core::process::{Aggregate, ProcessScorer, PromptFn};
use ponder_core::reasoning::{MarkersChoice, Thinking, ThinkingMarkers, ThinkingRequest};
use ponder_core::scorer::OutcomeScorer;
use ponder_core::scorer_spec::{ScorerEnv, ScorerModels, ScorerSpec, Scorers};
use ponder_core::strategy::{Ctx, FinalPick, Policy, Resampling, StrategyError, StrategySpec};
use serde_json::{Map, Value};
use ponder_engine::judge::Judge;
use ponder_engine::prm::{PrmFormat, TokenPrm};
use ponder_core::{Checker, Generator, SamplingParams};
use ponder_engine::{Engine, EngineConfig};
use ponder_eval::PromptTemplate;
use ponder_models::{Fetcher, ModelRef};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A registry name (see `ponder models list`), a path to a .gguf file, or hf:ORG/REPO/FILE.gguf
    #[arg(long, short, env = "PONDER_MODEL", default_value = ponder_models::DEFAULT_MODEL)]
    pub model: String,
    /// KV-cache cells shared by all parallel sequences (samples, branches, requests). One
    /// sequence's prompt and completion never exceed the model's training context, however
    /// large this is (SmolLM2: 8192); the default leaves room for many samples at once
    #[arg(long, default_value_t = 16384)]
    pub ctx: u32,
    /// CPU threads (default: all cores)
    #[arg(long, env = "PONDER_THREADS")]
    pub threads: Option<i32>,
    /// Most tokens llama.cpp computes in one pass (its micro-batch)
    #[arg(long, env = "PONDER_UBATCH", default_value_t = 512)]
    pub ubatch: u32,
}

impl ModelArgs {
    pub fn engine_config(&self) -> EngineConfig {
        let mut cfg = EngineConfig { n_ctx: self.ctx, n_ubatch: self.ubatch.max(1), ..EngineConfig::default() };
        if let Some(t) = self.threads {
            cfg.n_threads = t;
        }
        cfg
    }

    /// The model file, fetched into the cache first if it is a registry name not yet pulled.
    pub fn resolve(&self) -> Result<std::path::PathBuf> {
        let r = ponder_models::parse_ref(&self.model)?;
        let mut fetcher = Fetcher::from_env()?;
        fetcher.allow_download = true;
        if let ModelRef::Named(spec) = &r {
            if fetcher.cached(spec).is_none() {
                eprintln!("ponder: model {} is not in the cache yet; pulling it", spec.name);
            }
        }
        Ok(fetcher.resolve(&r)?)
    }

    pub fn load(&self) -> Result<Engine> {
        let path = self.resolve()?;
        Engine::load(&path, self.engine_config()).with_context(|| format!("loading model {}", path.display()))
    }
}

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// 0 is greedy
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// 0 turns top-k off
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most tokens per sample
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
}

impl SamplingArgs {
    pub fn params(&self) -> Result<SamplingParams> {
        let p = SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            seed: self.seed,
            max_tokens: self.max_tokens,
            ..SamplingParams::default()
        };
        p.validate()?;
        Ok(p)
    }
}

/// An answer extractor, as `Ctx::extract` holds it.
pub type Extract<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// `ctx` reading answers by the user's `--answer-pattern` (when given) and only after the
/// reasoning spans of `markers` (when known).
pub fn answer_rules<'a>(ctx: Ctx<'a>, pattern: Option<Extract<'a>>, markers: Option<&'a ThinkingMarkers>) -> Ctx<'a> {
    Ctx { extract: pattern.unwrap_or(ctx.extract), thinking: markers, ..ctx }
}

/// Reasoning spans (issue 14): where a model's thinking is, and how long it may think.
#[derive(Args, Debug, Clone)]
pub struct ThinkingArgs {
    /// Reasoning markers, so that answers are read after the thinking and thinking tokens
    /// are counted apart: OPEN,CLOSE (e.g. '<think>,</think>'), none, or auto (the
    /// `<think>` markers when the model's chat template writes them; none over --upstream)
    #[arg(long, value_name = "OPEN,CLOSE|none|auto", default_value = "auto")]
    pub think_markers: MarkersChoice,
    /// End thinking after T tokens: the close marker and --answer-prefix are forced in and
    /// the model answers (in-process engine only)
    #[arg(long, value_name = "T")]
    pub thinking_budget: Option<u32>,
    /// The text forced after the close marker when --thinking-budget ends thinking (\n is a
    /// newline) [default: "\n\nFinal answer: "]
    #[arg(long, value_name = "TEXT")]
    pub answer_prefix: Option<String>,
}

impl ThinkingArgs {
    /// What samples are asked to do with spans, given the markers the model's template
    /// writes (`detected`).
    pub fn resolve(&self, detected: Option<ThinkingMarkers>) -> Result<Option<Thinking>> {
        let asked = ThinkingRequest {
            markers: self.think_markers.clone(),
            budget: self.thinking_budget,
            answer_prefix: self.answer_prefix.as_deref().map(unescape),
        };
        asked
            .resolve(detected)
            .map_err(|e| anyhow::anyhow!("{e} (--think-markers)"))
    }
}

/// A flag's value as the spec field's type reads it (serde), naming the flag when it does not.
fn serde_flag<T: serde::de::DeserializeOwned + serde::Serialize>(flag: &str, s: Option<&str>) -> Result<Option<Value>> {
    let Some(s) = s else { return Ok(None) };
    let v: T = serde_json::from_value(Value::String(s.to_string())).with_context(|| format!("{flag} {s:?}"))?;
    Ok(Some(serde_json::to_value(v)?))
}

/// Flags of the step-level search strategies and their process scorers. Each search flag
/// fills the field of that name in every strategy spec that has it and does not set it
/// itself; left out, the spec type's default holds (`ponder strategies` lists them).
#[derive(Args, Debug, Clone)]
pub struct SearchArgs {
    /// Ends a step in search strategies (\n is a newline); empty: steps end only at --max-step-tokens [spec: step.delimiter]
    #[arg(long)]
    pub delimiter: Option<String>,
    /// Most tokens in one step [spec: step.max_step_tokens]
    #[arg(long)]
    pub max_step_tokens: Option<u32>,
    /// beam/dvts/astar: children per kept beam (M) [spec: width]
    #[arg(long)]
    pub beam_width: Option<usize>,
    /// Most steps of a search [spec: step.max_steps]
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// How a branch's step scores become one: last, min, product, mean [spec: step.aggregate]
    #[arg(long)]
    pub aggregate: Option<String>,
    /// pf/pgibbs resampling: multinomial or systematic [spec: resampling]
    #[arg(long)]
    pub resampling: Option<String>,
    /// pf/pgibbs: resample only when the effective sample size falls below this fraction of the particles [spec: ess_threshold]
    #[arg(long)]
    pub ess_threshold: Option<f64>,
    /// pf/pgibbs: softmax temperature on the particles' log-weights [spec: temperature]
    #[arg(long)]
    pub pf_temperature: Option<f64>,
    /// pf/pgibbs final answer: argmax (highest weight) or sample (drawn by weight) [spec: final_pick]
    #[arg(long)]
    pub final_pick: Option<String>,
    /// pgibbs: sweeps (total particles spent = budget x sweeps) [spec: sweeps]
    #[arg(long)]
    pub sweeps: Option<usize>,
    /// Voting strategies (sc, adaptive-sc, deepconf, weighted-bon, rpc): answer nothing when the
    /// winner holds less than this share of the vote, 0 to 1 [spec: abstain_below]
    #[arg(long, value_name = "SHARE")]
    pub abstain_below: Option<f64>,
    /// GGUF causal LM used as token-probability PRM for --scorer prm (registry name, path or hf:)
    #[arg(long)]
    pub prm_model: Option<String>,
    /// PRM layout: tag written after each step
    #[arg(long, default_value = " ки")]
    pub prm_step_tag: String,
    /// PRM token meaning a good step
    #[arg(long, default_value = "+")]
    pub prm_good: String,
    /// PRM token meaning a bad step
    #[arg(long, default_value = "-")]
    pub prm_bad: String,
    /// Self-evaluation question appended to a partial solution (\n is a newline)
    #[arg(long)]
    pub self_eval_question: Option<String>,
    /// Instruct model (registry name, path or hf:) that judges solutions for --scorer judge:
    /// p(Yes) to a question after the problem and the solution, through its chat template
    #[arg(long)]
    pub judge_model: Option<String>,
    /// The question the judge answers Yes or No (\n is a newline)
    #[arg(long)]
    pub judge_question: Option<String>,
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

impl SearchArgs {
    /// The flags given, as (flag, spec field path, value).
    fn given(&self) -> Result<Vec<(&'static str, &'static str, Value)>> {
        let mut out = Vec::new();
        let mut add = |flag, field, v: Option<Value>| {
            if let Some(v) = v {
                out.push((flag, field, v));
            }
        };
        add("--delimiter", "step.delimiter", self.delimiter.as_deref().map(|d| Value::from(unescape(d))));
        add("--max-step-tokens", "step.max_step_tokens", self.max_step_tokens.map(Value::from));
        add("--beam-width", "width", self.beam_width.map(Value::from));
        add("--max-steps", "step.max_steps", self.max_steps.map(Value::from));
        add("--aggregate", "step.aggregate", serde_flag::<Aggregate>("--aggregate", self.aggregate.as_deref())?);
        add("--resampling", "resampling", serde_flag::<Resampling>("--resampling", self.resampling.as_deref())?);
        add("--ess-threshold", "ess_threshold", self.ess_threshold.map(Value::from));
        add("--pf-temperature", "temperature", self.pf_temperature.map(Value::from));
        add("--final-pick", "final_pick", serde_flag::<FinalPick>("--final-pick", self.final_pick.as_deref())?);
        add("--sweeps", "sweeps", self.sweeps.map(Value::from));
        add("--abstain-below", "abstain_below", self.abstain_below.map(Value::from));
        Ok(out)
    }

    /// The fields the flags (and `--policy`, for `auto`) fill in each spec.
    pub fn defaults(&self, policy: Option<&Policy>) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        for (_, field, v) in self.given()? {
            match field.split_once('.') {
                Some((outer, inner)) => {
                    let sub = out.entry(outer.to_string()).or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(sub) = sub {
                        sub.insert(inner.to_string(), v);
                    }
                }
                None => {
                    out.insert(field.to_string(), v);
                }
            }
        }
        if let Some(p) = policy {
            out.insert("policy".into(), serde_json::to_value(p)?);
        }
        Ok(out)
    }

    /// `--abstain-below` needs a strategy that votes: said, rather than ignored.
    pub fn check_taken<'a>(&self, specs: impl IntoIterator<Item = &'a StrategySpec>) -> Result<()> {
        if self.abstain_below.is_some() && !specs.into_iter().any(|s| s.config().abstain_below().is_some()) {
            bail!("--abstain-below applies to voting strategies (sc, adaptive-sc, deepconf, weighted-bon, rpc); none was given");
        }
        Ok(())
    }

    /// Says which flag set a field a spec rejects.
    pub fn explain(&self, e: StrategyError) -> anyhow::Error {
        let flag = match &e {
            StrategyError::InvalidConfig { field, .. } => {
                self.given().ok().and_then(|g| g.into_iter().find(|(_, f, _)| f == field)).map(|(flag, ..)| flag)
            }
            _ => None,
        };
        match flag {
            Some(flag) => anyhow::anyhow!("{e} (set by {flag})"),
            None => e.into(),
        }
    }

    /// Strategy `s` (a shorthand) at `budget`, with these flags and `policy` filling the
    /// fields it leaves out.
    pub fn spec(&self, s: &str, budget: usize, policy: Option<&Policy>) -> Result<StrategySpec> {
        StrategySpec::parse_with(s, Some(budget), &self.defaults(policy)?).map_err(|e| self.explain(e))
    }

    /// Loads the reward model first, so a PRM that fails to load ends the command before
    /// any generation.
    pub fn prm(&self, model: &ModelArgs) -> Result<TokenPrm> {
        let Some(name) = &self.prm_model else {
            bail!("--scorer prm needs --prm-model (a GGUF causal LM used as a token-probability PRM)");
        };
        let args = ModelArgs { model: name.clone(), ..model.clone() };
        let mut engine_cfg = args.engine_config();
        // Each partial joins the PRM's prefix cache so the next step reuses it.
        engine_cfg.prefix_cache_entries = 128;
        let path = args.resolve().with_context(|| format!("the PRM model {name:?}"))?;
        let engine = Engine::load(&path, engine_cfg).with_context(|| format!("loading the PRM model {}", path.display()))?;
        let format = PrmFormat {
            step_tag: self.prm_step_tag.clone(),
            good: self.prm_good.clone(),
            bad: self.prm_bad.clone(),
            ..PrmFormat::default()
        };
        TokenPrm::new(engine, format).map_err(|e| anyhow::anyhow!("the PRM model cannot be used: {e}"))
    }

    /// Loads the judge model first, so a judge that fails to load ends the command before
    /// any generation.
    pub fn judge(&self, model: &ModelArgs) -> Result<Judge> {
        let Some(name) = &self.judge_model else {
            bail!("--scorer judge needs --judge-model (an instruct model, e.g. qwen2.5-coder-1.5b)");
        };
        let args = ModelArgs { model: name.clone(), ..model.clone() };
        let mut engine_cfg = args.engine_config();
        engine_cfg.prefix_cache_entries = 128;
        let path = args.resolve().with_context(|| format!("the judge model {name:?}"))?;
        let engine =
            Engine::load(&path, engine_cfg).with_context(|| format!("loading the judge model {}", path.display()))?;
        let question = self.judge_question.as_deref().map_or(ponder_engine::judge::DEFAULT_QUESTION.to_string(), unescape);
        Judge::new(engine, question).map_err(|e| anyhow::anyhow!("the judge model cannot be used: {e}"))
    }
}

/// The model-backed scorers the CLI can load: a PRM and a judge, by flag.
struct CliModels<'a> {
    search: &'a SearchArgs,
    model: &'a ModelArgs,
}

impl ScorerModels for CliModels<'_> {
    fn prm(&self) -> std::result::Result<Arc<dyn ProcessScorer>, String> {
        self.search.prm(self.model).map(|p| Arc::new(p) as Arc<dyn ProcessScorer>).map_err(|e| format!("{e:#}"))
    }
    fn judge(&self) -> std::result::Result<Arc<dyn ProcessScorer>, String> {
        self.search.judge(self.model).map(|j| Arc::new(j) as Arc<dyn ProcessScorer>).map_err(|e| format!("{e:#}"))
    }
}

/// Builds the scorers through ponder-core's one builder: an outcome scorer, or a process
/// scorer that search strategies use step by step and outcome strategies use on whole
/// candidates.
pub fn scorers(
    spec: ScorerSpec,
    checker: Option<Arc<dyn Checker>>,
    search: &SearchArgs,
    model: &ModelArgs,
    generator: Arc<dyn Generator>,
    prompt: PromptFn,
) -> Result<Scorers> {
    let env = ScorerEnv {
        checker,
        generator,
        prompt,
        self_eval_question: search.self_eval_question.as_deref().map(unescape),
    };
    Ok(spec.build(&env, &CliModels { search, model })?)
}

/// Fails before any model loads when the strategy needs a process scorer `--scorer` is not.
pub fn check_needs(spec: &StrategySpec, scorer: ScorerSpec) -> Result<()> {
    if spec.needs().process_scorer && !scorer.is_process() {
        return Err(StrategyError::NeedsProcessScorer(spec.name().into()).into());
    }
    Ok(())
}

pub static EQUIVALENCE: NumericEquivalence = NumericEquivalence;

/// A strategy context with the v1 numeric answer rules.
pub fn ctx<'a>(generator: &'a dyn Generator, scorer: Option<&'a dyn OutcomeScorer>) -> Ctx<'a> {
    Ctx {
        generator,
        equivalence: &EQUIVALENCE,
        extract: &extract_answer,
        scorer,
        process: None,
        verifier: None,
        thinking: None,
    }
}

/// A strategy context with a dataset's own answer rules and verifier (code: visible tests).
pub fn dataset_ctx<'a>(
    generator: &'a dyn Generator,
    dataset: &'a ponder_eval::Dataset,
    scorer: Option<&'a dyn OutcomeScorer>,
) -> Ctx<'a> {
    Ctx {
        generator,
        equivalence: dataset.equivalence.as_ref(),
        extract: &dataset.extract,
        scorer,
        process: None,
        verifier: dataset.verifier.as_deref(),
        thinking: None,
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the async runtime")
}

pub fn fmt_usage(u: &ponder_core::Usage) -> String {
    // Thinking tokens are part of the completion; shown only when a sample had markers.
    let thinking = match (u.thinking, u.thinking_uncounted) {
        (0, 0) => String::new(),
        (n, 0) => format!(" (thinking {n})"),
        (n, k) => format!(" (thinking at least {n}: {k} samples uncounted)"),
    };
    // Tokens of samples or branches stopped before their end; shown only when there were some.
    let thinking = match u.dropped {
        0 => thinking,
        n => format!("{thinking} (dropped {n})"),
    };
    format!(
        "prompt computed {} · prompt reused {} · completion {}{thinking} · scorer passes {} · wall {:.2} s",
        u.prompt_computed,
        u.prompt_reused,
        u.completion,
        u.scorer_passes,
        u.wall_ms as f64 / 1000.0
    )
}

/// Adds the prompt template's stop strings (a base model would go on to invent the next question).
pub fn with_stops(mut sampling: SamplingParams, template: &PromptTemplate) -> SamplingParams {
    sampling.stop.extend(template.stop.iter().cloned());
    sampling
}

/// The model's architecture from its GGUF (`qwen2`, `llama`, `gemma3`), or "" if it has none.
pub fn model_family(engine: &Engine) -> String {
    engine.model().meta_val_str("general.architecture").unwrap_or_default()
}

/// `--prompt` (a built-in name or a file), else the default for the dataset kind and model.
pub fn prompt_template(spec: Option<&str>, kind: ponder_eval::Kind, engine: &Engine) -> Result<PromptTemplate> {
    match spec {
        Some(s) => Ok(PromptTemplate::resolve(s.trim())?),
        None => Ok(PromptTemplate::default_for(kind, engine.format().has_template(), &model_family(engine))),
    }
}

/// The template as the function process scorers re-render problems with. The template was
/// checked when it was resolved; a problem it still cannot render falls back to the bare
/// question, loudly.
pub fn prompt_fn(template: &PromptTemplate) -> ponder_core::process::PromptFn {
    let template = template.clone();
    Arc::new(move |p| {
        template.render(p).unwrap_or_else(|e| {
            tracing::error!(problem = %p.id, error = %e, "prompt template failed; using the bare question");
            vec![ponder_core::Message::user(p.question.clone())]
        })
    })
}

/// `@FILE` in a strategy list: the specs a file holds (`ponder search-stacks` and people
/// write them), as shorthands. A TOML file is one spec table (`strategy = "pf"`, …) or
/// `strategies = [...]`; a JSON file one spec object, a shorthand string, or a list.
/// Anything else passes through.
pub fn expand_spec_file(entry: &str) -> Result<Vec<String>> {
    let Some(path) = entry.trim().strip_prefix('@') else { return Ok(vec![entry.to_string()]) };
    let text = std::fs::read_to_string(path).with_context(|| format!("--strategy @{path}: reading the spec file"))?;
    let v: Value = if path.ends_with(".json") {
        serde_json::from_str(&text).with_context(|| format!("--strategy @{path}: not JSON"))?
    } else {
        let t: toml::Table = toml::from_str(&text).with_context(|| format!("--strategy @{path}: not TOML"))?;
        let v = serde_json::to_value(t)?;
        v.get("strategies").cloned().unwrap_or(v)
    };
    let items = match v {
        Value::Array(items) => items,
        one => vec![one],
    };
    if items.is_empty() {
        bail!("--strategy @{path}: the file holds no spec");
    }
    items
        .into_iter()
        .map(|item| {
            let spec = match item {
                Value::String(s) => StrategySpec::parse(&s, None),
                other => StrategySpec::from_value(other, None),
            };
            spec.map(|s| s.to_string()).with_context(|| format!("--strategy @{path}"))
        })
        .collect()
}
