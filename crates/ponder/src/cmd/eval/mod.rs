//! `ponder eval`: strategies × budgets × seeds over a dataset, every unit stored in the run
//! store as it completes (`--resume RUN` continues a run), then a row of accuracy and cost
//! per strategy, budget and seed. Abstentions (verify-resample with no passing sample) are
//! counted apart from wrong answers. On code datasets, a verify-resample run also measures
//! its verifier (visible tests) against the truth (hidden tests) and picks the fLaws best k
//! for a stated utility.
//!
//! Flags, then calls, then the table: planning, resuming, counting, the verifier and
//! agreement analyses are ponder-eval's (`runs`, `summary`); what stays here is what a
//! terminal needs (progress, Ctrl-C, the table's text) and the engine's loading.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, Parser};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ponder_core::answer::AnswerPattern;
use ponder_core::scorer_spec::ScorerSpec;
use ponder_core::strategy::{Ctx, StrategySpec};
use ponder_core::SamplingParams;
use ponder_eval::analysis::{RunData, UnitCounts};
use ponder_eval::plan::{load_policy, policy_from_value, Policy};
use ponder_eval::runner::{self, Finish, RunConfig};
use ponder_eval::runs::{self, Group, Plan, Problems};
use ponder_eval::store::{self, Store, UnitRecord};
use ponder_eval::summary::{self, Summary};
use ponder_eval::LoadOptions;

use self::table::{print_agreement, print_legend, print_verifier, Table};
use crate::backend::{Backend, UpstreamArgs};
use crate::common::{self, ModelArgs, SamplingArgs, SearchArgs};

mod table;

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// gsm8k, math500, aime24, aime25, humaneval, mbpp, arith (level 2), arith:LEVEL (1-5),
    /// arith:LEVEL:COUNT, or jsonl:PATH (one {"id"?, "question", "answer", "level"?} per line)
    #[arg(long, short, default_value = "arith")]
    pub dataset: String,
    /// Use the first N problems
    #[arg(long, short, default_value_t = 50)]
    pub limit: usize,
    /// One or more strategy specs, comma-separated (`ponder strategies` lists them): a name,
    /// NAME@N, or NAME@N{TOML inline table}, e.g. 'sc,pf@8{resampling = "systematic"}', or
    /// @FILE (a TOML or JSON file of specs; read once, kept in the run).
    /// verify-resample on code datasets uses the visible tests as its verifier; auto needs --policy
    #[arg(long, short, default_value = "sc")]
    pub strategy: Vec<String>,
    /// Budgets N, one or more comma-separated, for each spec that does not say @N (single
    /// always draws one) [default: each strategy's own]
    #[arg(long, short, value_delimiter = ',')]
    pub budget: Vec<usize>,
    /// Run every strategy and budget with this many seeds: --seed, --seed + 1, ...
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    /// Outcome scorer for bon and weighted-bon: mean-logprob or checker (the dataset's own);
    /// or a process scorer (self-eval, step-check, prm, judge) for search strategies and, on
    /// whole candidates, for bon and weighted-bon
    #[arg(long, default_value = "mean-logprob")]
    pub scorer: String,
    /// Problems in flight at once (their samples share the engine's batches) [default: 4]
    #[arg(long)]
    pub concurrency: Option<usize>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub thinking: common::ThinkingArgs,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Cost of a wrong answer in the fLaws utility (a correct answer earns 1)
    #[arg(long, default_value_t = 1.0)]
    pub wrong_cost: f64,
    /// Cost of abstaining in the fLaws utility
    #[arg(long, default_value_t = 0.0)]
    pub abstain_cost: f64,
    /// Write per-problem records and the summary as JSON here
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The run store (SQLite) [default: $PONDER_HOME/ponder-runs.sqlite, else ./ponder-runs.sqlite]
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Keep the run in memory only (nothing written, no resume)
    #[arg(long, conflicts_with_all = ["store", "resume"])]
    pub no_store: bool,
    /// Continue run RUN of the store with its stored configuration: only the units not yet
    /// stored are run (--concurrency, --threads and --json may be given anew)
    #[arg(long, value_name = "RUN")]
    pub resume: Option<i64>,
    /// Policy file from `ponder plan`, for --strategy auto
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Skip rows of a jsonl: dataset that do not parse (each is reported) instead of failing
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Code datasets: run the programs without isolation when bubblewrap is unavailable
    /// (unsafe: they run with your privileges), as `ponder grade code` does. Not kept by
    /// --resume: give it again there
    #[arg(long)]
    pub allow_unsandboxed: bool,
    /// Run each unit alone on a freshly loaded engine (concurrency 1), so its samples depend
    /// only on (problem, strategy, budget, seed), not on what ran before it: a resumed run
    /// then reproduces an uninterrupted one token for token. Without it, samples are equal
    /// in distribution but not bit for bit (llama.cpp's float sums depend on batch
    /// composition and where sequences sit in the KV cache). Slower: one model load per unit
    #[arg(long)]
    pub deterministic: bool,
    /// Prompt template: math-fewshot, math-boxed, math-completion, code-chat, code-completion,
    /// or a TOML/JSON file (system, examples, user, stop) [default: by dataset and model].
    /// Stored with the run, whole, with every problem's rendered prompt (`ponder runs show`)
    #[arg(long)]
    pub prompt: Option<String>,
    /// Where the answer is in the text (a regular expression whose last match, its first
    /// group if any, is the answer) in place of the dataset's own rule; graded as the
    /// dataset grades answers
    #[arg(long, value_name = "REGEX")]
    pub answer_pattern: Option<AnswerPattern>,
}

/// Parses a stored argument list back into [`Args`] (resume).
#[derive(Parser)]
#[command(no_binary_name = true)]
struct StoredArgs {
    #[command(flatten)]
    args: Args,
}

const DEFAULT_CONCURRENCY: usize = 4;

pub fn run(a: Args) -> Result<()> {
    match a.resume {
        Some(id) => resume(a, id),
        None => fresh(a),
    }
}

/// Every flag that can be checked before loading anything.
struct Checked {
    sampling: SamplingParams,
    /// What the search flags and the policy fill in each spec.
    defaults: serde_json::Map<String, serde_json::Value>,
    scorer: ScorerSpec,
}

/// `stored_policy`: the policy a resumed run keeps inline (its file may be gone).
fn check(a: &Args, stored_policy: Option<Policy>) -> Result<Checked> {
    let sampling = a.sampling.params()?;
    let strategies = strategies(a)?;
    if strategies.is_empty() || strategies.iter().any(|s| s.is_empty()) {
        bail!("--strategy needs at least one strategy name");
    }
    let policy = match (&a.policy, stored_policy) {
        (_, Some(p)) => Some(p),
        (Some(path), None) => Some(load_policy(path)?),
        (None, None) => None,
    };
    let defaults = a.search.defaults(policy.as_ref())?;
    let scorer: ScorerSpec = a.scorer.parse()?;
    let mut specs = Vec::new();
    for s in &strategies {
        let budgets: Vec<Option<usize>> = if a.budget.is_empty() { vec![None] } else { a.budget.iter().copied().map(Some).collect() };
        for b in budgets {
            let spec = StrategySpec::parse_with(s, b, &defaults).map_err(|e| a.search.explain(e))?;
            common::check_needs(&spec, scorer)?;
            specs.push(spec);
        }
    }
    a.search.check_taken(&specs)?;
    if a.limit == 0 {
        bail!("--limit must be at least 1, got 0");
    }
    if a.concurrency == Some(0) {
        bail!("--concurrency must be at least 1, got 0");
    }
    if a.seeds == 0 {
        bail!("--seeds must be at least 1, got 0");
    }
    if a.deterministic {
        Backend::check_engine_only(&a.upstream, "--deterministic (a freshly loaded engine per unit)")?;
    }
    for (flag, cost) in [("--wrong-cost", a.wrong_cost), ("--abstain-cost", a.abstain_cost)] {
        if !cost.is_finite() {
            bail!("{flag} must be a finite number, got {cost}");
        }
    }
    Ok(Checked { sampling, defaults, scorer })
}

/// The specs of `--strategy`, each flag value split at its top-level commas.
fn strategies(a: &Args) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for s in a.strategy.iter().flat_map(|s| StrategySpec::split_list(s)) {
        out.extend(common::expand_spec_file(s)?);
    }
    Ok(out)
}

fn load_options(a: &Args) -> LoadOptions {
    LoadOptions { skip_bad_rows: a.skip_bad_rows, allow_unsandboxed: a.allow_unsandboxed }
}

/// Reports the rows a `jsonl:` dataset skipped.
fn warn_skipped(spec: &str, loaded: &Problems) {
    for bad in &loaded.skipped {
        eprintln!("ponder: warning: skipped {spec} line {}: {}", bad.line, bad.reason);
    }
}

fn store_path(a: &Args) -> PathBuf {
    a.store.clone().unwrap_or_else(store::default_path)
}

/// The eval arguments as typed, without the program and subcommand names.
fn argv() -> Result<Vec<String>> {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.into_string().map_err(|a| anyhow::anyhow!("argument {a:?} is not valid UTF-8")))
        .collect::<Result<_>>()?;
    let at = args.iter().position(|a| a == "eval").map_or(args.len(), |i| i + 1);
    Ok(args[at..].to_vec())
}

fn fresh(a: Args) -> Result<()> {
    let checked = check(&a, None)?;
    let loaded = runs::load_problems(&a.dataset, a.sampling.seed, load_options(&a), a.limit)?;
    warn_skipped(&a.dataset, &loaded);
    let mut extra = BTreeMap::new();
    extra.insert("argv".to_string(), serde_json::to_value(argv()?)?);
    let config = RunConfig {
        dataset: a.dataset.trim().to_string(),
        dataset_seed: a.sampling.seed,
        limit: a.limit,
        skip_bad_rows: a.skip_bad_rows,
        strategies: strategies(&a)?,
        budgets: a.budget.clone(),
        seeds: (0..a.seeds as u64).map(|i| a.sampling.seed.wrapping_add(i)).collect(),
        scorer: checked.scorer.to_string(),
        model: a.upstream.model_label(&a.model),
        ctx: a.model.ctx,
        sampling: checked.sampling.clone(),
        concurrency: a.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        wrong_cost: a.wrong_cost,
        abstain_cost: a.abstain_cost,
        prompt: a.prompt.as_deref().map(|p| ponder_eval::PromptTemplate::resolve(p.trim())).transpose()?,
        policy: checked.defaults.get("policy").cloned(),
        dataset_fingerprint: ponder_eval::fingerprint(&loaded.problems),
        n_problems: loaded.problems.len(),
        ponder_version: env!("CARGO_PKG_VERSION").to_string(),
        extra,
    };
    let mut store = if a.no_store { Store::in_memory()? } else { Store::open_or_create(&store_path(&a))? };
    let id = store.create_run(&config.to_json(), &config.model, &config.dataset, 0, &loaded.problems)?;
    println!("run {id} · store {}", store.path());
    go(store, id, a, config, checked, loaded)
}

/// What each upstream server answered in this session, and the tokens it reported: a
/// fleet's share of the work, to set beside each server's own counters.
fn print_upstreams(h: &ponder_http::HttpGenerator) {
    for s in h.endpoint_stats() {
        eprintln!(
            "upstream {} · answered {} · failed {} (lost {}, refused {}) · prompt {} computed, {} cached · completion {}",
            s.url, s.answered, s.failed, s.lost, s.refused, s.prompt_computed, s.prompt_reused, s.completion
        );
    }
}

fn resume(cli: Args, id: i64) -> Result<()> {
    let path = store_path(&cli);
    let store = Store::open_existing(&path)?;
    let runs::Reopened { info, config, argv } = runs::reopen(&store, id)?;
    let mut a = StoredArgs::try_parse_from(&argv)
        .map_err(|e| anyhow::anyhow!("run {id}: stored arguments no longer parse: {}", e.render().to_string().trim()))?
        .args;
    // The stored configuration decides what runs; the machine decides how (and where the
    // upstream servers are now).
    if !a.upstream.upstream.is_empty() || !cli.upstream.upstream.is_empty() {
        if !cli.upstream.upstream.is_empty() {
            a.upstream.upstream = cli.upstream.upstream.clone();
        }
        a.upstream.upstream_api_key = cli.upstream.upstream_api_key.clone().or(a.upstream.upstream_api_key);
        a.upstream.upstream_retries = cli.upstream.upstream_retries.or(a.upstream.upstream_retries);
    } else {
        a.model.model = config.model.clone();
    }
    a.model.ctx = config.ctx;
    a.model.threads = cli.model.threads;
    a.model.ubatch = cli.model.ubatch;
    a.allow_unsandboxed = cli.allow_unsandboxed;
    // The specs as stored: an `@FILE` was read when the run began.
    a.strategy = config.strategies.clone();
    a.concurrency = Some(cli.concurrency.unwrap_or(config.concurrency));
    a.json = cli.json.clone();
    a.resume = Some(id);
    a.store = Some(path);
    a.no_store = false;
    // The policy as stored, not the file (which may have changed or gone since).
    let stored_policy = config.policy.as_ref().map(policy_from_value).transpose()?;
    let checked = check(&a, stored_policy)?;
    let loaded = runs::load_resumed(id, &config, load_options(&a))?;
    warn_skipped(&config.dataset, &loaded);
    let (n_outcomes, n_samples) = store.counts(id)?;
    println!("resuming run {id} ({}; {n_outcomes} units and {n_samples} samples stored) · store {}", info.status, store.path());
    go(store, id, a, config, checked, loaded)
}

/// Loads the model, runs the missing units, prints the table.
fn go(mut store: Store, id: i64, a: Args, config: RunConfig, checked: Checked, loaded: Problems) -> Result<()> {
    let Checked { sampling, defaults, scorer } = checked;
    let Problems { dataset, problems, .. } = loaded;
    let rt = common::runtime()?;
    let backend = Backend::load(&a.model, &a.upstream, &rt)?;
    store.set_n_params(id, backend.generator().info().n_params)?;
    // The template is settled once, with the model known, and kept whole in the run.
    let mut config = config;
    let template = match config.prompt.clone() {
        Some(t) => t,
        None => {
            let t = backend.prompt_template(a.prompt.as_deref(), dataset.kind)?;
            config.prompt = Some(t.clone());
            store.set_config(id, &config.to_json())?;
            t
        }
    };
    let rendered: Vec<Vec<ponder_core::Message>> =
        problems.iter().map(|p| template.render(p)).collect::<Result<_, _>>()?;
    let shown: Vec<String> = rendered.iter().map(|m| backend.render(m, &rt)).collect();
    let rows: Vec<(&str, &str, &str)> =
        problems.iter().zip(&shown).map(|(p, s)| (p.id.as_str(), p.question.as_str(), s.as_str())).collect();
    store.set_prompts(id, &rows)?;
    println!("prompt template {}", template.name);
    let mut sampling = common::with_stops(sampling, &template);
    // Settled with the model known (its template may write the markers), kept in the run.
    sampling.thinking = a.thinking.resolve(backend.thinking_markers())?;
    if config.sampling.thinking != sampling.thinking {
        config.sampling.thinking = sampling.thinking.clone();
        store.set_config(id, &config.to_json())?;
    }
    let markers = sampling.thinking.as_ref().map(|t| t.markers.clone());
    let scorers =
        common::scorers(scorer, Some(dataset.checker.clone()), &a.search, &a.model, backend.shared(), common::prompt_fn(&template))?;

    let plan = Plan::new(&config, &sampling, &defaults).map_err(|e| match e {
        ponder_eval::Error::Strategy(e) => a.search.explain(*e),
        other => other.into(),
    })?;
    let jobs = plan.jobs(&problems, &rendered, &store.stored_units(id)?);
    let n_units = plan.n_units(problems.len());
    let seeds = config.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    println!(
        "dataset {} · {} problems · model {} · seed {} · {} of {} units to run",
        dataset.name,
        problems.len(),
        config.model,
        seeds,
        jobs.len(),
        n_units
    );

    // Rows print as their group completes; groups already complete print first.
    let mut table = Table::new(config.seeds.len() > 1, problems.len());
    for o in store.outcomes(id)? {
        table.done.entry(Group::of(&o.key)).or_default().push(UnitCounts::from(&o));
    }
    for (g, _) in &plan.groups {
        table.print_if_complete(g, None);
    }

    let bar = ProgressBar::with_draw_target(Some(jobs.len() as u64), ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} units · {per_sec} · eta {eta} {msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix("eval");
    let concurrency = if a.deterministic { 1 } else { a.concurrency.unwrap_or(DEFAULT_CONCURRENCY) };
    let mut stop = Box::pin(async {
        // If the handler cannot be installed, run to the end rather than stop at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    });
    // Test hook: pause after each stored unit, so a test can interrupt a run midway
    // (SIGINT, SIGKILL) without racing a fast machine to it.
    let unit_pause = std::env::var("PONDER_TEST_UNIT_PAUSE_MS").ok().and_then(|v| v.parse().ok()).filter(|&ms: &u64| ms > 0).map(std::time::Duration::from_millis);
    let mut on_stored = |rec: &UnitRecord| {
        if let Some(pause) = unit_pause {
            std::thread::sleep(pause);
        }
        bar.inc(1);
        let g = Group::of(&rec.key);
        table.done.entry(g.clone()).or_default().push(UnitCounts::from(rec));
        table.print_if_complete(&g, Some(&bar));
    };
    let by_pattern = |t: &str| a.answer_pattern.as_ref().and_then(|p| p.extract(t));
    let pattern = a.answer_pattern.is_some().then_some(&by_pattern as common::Extract<'_>);
    let result = if !a.deterministic {
        let ctx = Ctx { process: scorers.process.as_deref(), ..common::dataset_ctx(backend.generator(), &dataset, scorers.outcome.as_deref()) };
        let ctx = common::answer_rules(ctx, pattern, markers.as_ref());
        let r = rt.block_on(runner::execute(&mut store, id, jobs, dataset.checker.clone(), &ctx, concurrency, &mut stop, &mut on_stored));
        if let Backend::Http(h) = &backend {
            bar.suspend(|| print_upstreams(h));
        }
        r
    } else {
        // One fresh engine (and scorers) per unit.
        drop(scorers);
        drop(backend);
        let mut total = 0;
        let mut result = Ok(Finish::Done);
        for job in jobs {
            let engine = load_engine(&a)?;
            let scorers = common::scorers(
                scorer,
                Some(dataset.checker.clone()),
                &a.search,
                &a.model,
                std::sync::Arc::new(engine.clone()),
                common::prompt_fn(&template),
            )?;
            let ctx = Ctx { process: scorers.process.as_deref(), ..common::dataset_ctx(&engine, &dataset, scorers.outcome.as_deref()) };
            let ctx = common::answer_rules(ctx, pattern, markers.as_ref());
            let r = rt.block_on(runner::execute(&mut store, id, vec![job], dataset.checker.clone(), &ctx, 1, &mut stop, &mut on_stored));
            match r {
                Ok(Finish::Done) => total += 1,
                Ok(Finish::Interrupted { stored }) => {
                    result = Ok(Finish::Interrupted { stored: total + stored });
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        result
    };
    bar.finish_and_clear();
    match result {
        Ok(Finish::Done) => store.set_status(id, "complete")?,
        Ok(Finish::Interrupted { stored }) => {
            store.set_status(id, "interrupted")?;
            let (n, _) = store.counts(id)?;
            let resume = match &a.store {
                Some(p) if store.path() != ":memory:" => format!("ponder eval --resume {id} --store {}", p.display()),
                _ => format!("ponder eval --resume {id}"),
            };
            eprintln!("ponder: interrupted: {stored} units stored in this session, {n} of {n_units} in all; continue with `{resume}`");
            drop(store);
            std::process::exit(130);
        }
        Err(e) => {
            store.set_status(id, "failed")?;
            return Err(e).with_context(|| format!("run {id} stopped; stored units are kept (--resume {id} retries the rest)"));
        }
    }
    drop(rt);

    let data = RunData::load(&store, id)?;
    print_legend();
    let summaries = summary::summaries(&data, &plan.group_keys(), &problems, dataset.kind);
    for s in &summaries {
        if let Some(v) = &s.verifier {
            print_verifier(&s.strategy, v);
        }
    }
    print_agreement(&summaries, &dataset);
    if let Some(path) = &a.json {
        write_json(path, &summaries)?;
    }
    Ok(())
}

fn load_engine(a: &Args) -> Result<ponder_engine::Engine> {
    a.model.load()
}

fn write_json(path: &Path, summaries: &[Summary]) -> Result<()> {
    let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    serde_json::to_writer_pretty(&mut f, summaries)?;
    f.write_all(b"\n")?;
    println!("wrote {}", path.display());
    Ok(())
}
