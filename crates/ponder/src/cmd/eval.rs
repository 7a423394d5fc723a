//! `ponder eval`: strategies × budgets × seeds over a dataset, every unit stored in the run
//! store as it completes (`--resume RUN` continues a run), then a row of accuracy and cost
//! per strategy, budget and seed. Abstentions (verify-resample with no passing sample) are
//! counted apart from wrong answers. On code datasets, a verify-resample run also measures
//! its verifier (visible tests) against the truth (hidden tests) and picks the fLaws best k
//! for a stated utility.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, Parser};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ponder_core::answer::Equivalence;
use ponder_core::strategy::{Ctx, SearchConfig, Strategy};
use ponder_core::verifier::{best_k, expected_utility, Utility};
use ponder_core::{Generator, Problem, SamplingParams, Usage};
use ponder_eval::analysis::RunData;
use ponder_eval::auto::Auto;
use ponder_eval::plan::Policy;
use ponder_eval::runner::{self, Finish, Job, RunConfig};
use ponder_eval::store::{self, Store, UnitKey, UnitRecord};
use ponder_eval::{Dataset, Kind, LoadOptions};
use serde::Serialize;

use crate::common::{self, ModelArgs, SamplingArgs, SearchArgs};

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// gsm8k, math500, aime24, aime25, humaneval, mbpp, arith (level 2), arith:LEVEL (1-5),
    /// arith:LEVEL:COUNT, or jsonl:PATH (one {"id"?, "question", "answer", "level"?} per line)
    #[arg(long, short, default_value = "arith")]
    pub dataset: String,
    /// Use the first N problems
    #[arg(long, short, default_value_t = 50)]
    pub limit: usize,
    /// One or more strategies, comma-separated: single, sc, adaptive-sc, bon, weighted-bon,
    /// verify-resample (code datasets: the visible tests are its verifier), the search
    /// strategies, or auto (needs --policy)
    #[arg(long, short, default_value = "sc", value_delimiter = ',')]
    pub strategy: Vec<String>,
    /// Samples per problem, one or more comma-separated (single always draws one)
    #[arg(long, short, default_value = "8", value_delimiter = ',')]
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
    pub sampling: SamplingArgs,
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
}

/// Parses a stored argument list back into [`Args`] (resume).
#[derive(Parser)]
#[command(no_binary_name = true)]
struct StoredArgs {
    #[command(flatten)]
    args: Args,
}

const DEFAULT_CONCURRENCY: usize = 4;

#[derive(Serialize)]
struct Record {
    id: String,
    gold: String,
    answer: Option<String>,
    correct: bool,
    /// No answer given (verify-resample: no sample passed the verifier); not wrong.
    abstained: bool,
    n_samples: usize,
    usage: Usage,
}

#[derive(Serialize)]
struct Summary {
    run: i64,
    strategy: String,
    budget: usize,
    seed: u64,
    n_problems: usize,
    n_correct: usize,
    /// Answered and wrong; `n_problems = n_correct + n_wrong + n_abstained`.
    n_wrong: usize,
    n_abstained: usize,
    accuracy: f64,
    mean_samples: f64,
    usage: Usage,
    /// Wall time summed over problems (they overlap when run concurrently).
    elapsed_s: f64,
    /// verify-resample on a code dataset: the verifier measured against the hidden tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    verifier: Option<VerifierReport>,
    records: Vec<Record>,
}

/// How often the verifier (visible tests) agreed with the truth (hidden tests), over every
/// candidate drawn, and the k that maximises expected utility given those rates.
#[derive(Serialize)]
struct VerifierReport {
    n_candidates: usize,
    /// Candidates passing the visible tests / the hidden tests / both.
    n_visible_pass: usize,
    n_hidden_pass: usize,
    n_both_pass: usize,
    /// P(visible pass | hidden fail): the rate `resample_odds` takes. `None` without any
    /// wrong candidate.
    false_positive_rate: Option<f64>,
    /// P(visible pass | hidden pass). `None` without any correct candidate.
    true_positive_rate: Option<f64>,
    /// Fraction of visible-passing candidates that fail the hidden tests (what a user of
    /// the verifier sees). `None` when nothing passed.
    wrong_among_passing: Option<f64>,
    /// Per-problem fraction of drawn candidates passing the hidden tests. Biased low on
    /// problems that stopped early at a pass: a later sample might have failed.
    success_rates: Vec<f64>,
    utility: UtilityReport,
    /// The k in 1..=MAX_K with the highest expected utility, at the measured rates (an
    /// unmeasured rate is taken as tpr 1, fpr 0).
    best_k: usize,
    best_k_utility: f64,
    /// Expected utility at the run's own budget.
    budget_utility: f64,
}

#[derive(Serialize)]
struct UtilityReport {
    correct: f64,
    wrong_cost: f64,
    abstain_cost: f64,
}

/// Largest k searched by the fLaws analysis.
const MAX_K: usize = 100;

/// One (strategy, budget, seed): what a row of the table shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Group {
    strategy: String,
    budget: usize,
    seed: u64,
}

impl Group {
    fn of(k: &UnitKey) -> Group {
        Group { strategy: k.strategy.clone(), budget: k.budget, seed: k.seed }
    }
}

pub fn run(a: Args) -> Result<()> {
    match a.resume {
        Some(id) => resume(a, id),
        None => fresh(a),
    }
}

/// The strategy factory: `auto` from the policy, the rest by name.
pub fn build_strategy(
    name: &str,
    budget: usize,
    sampling: &SamplingParams,
    search: &SearchConfig,
    policy: Option<&Policy>,
) -> Result<Box<dyn Strategy>> {
    if name == "auto" {
        let Some(policy) = policy else {
            bail!("strategy auto needs --policy FILE (written by `ponder plan`)");
        };
        let auto = Auto::new(policy.clone(), sampling.clone(), |n, b, s| common::strategy_with(n, b, s, search))?;
        return Ok(Box::new(auto));
    }
    common::strategy_with(name, budget, sampling, search)
}

/// Checks every flag that can be checked before loading anything.
struct Checked {
    sampling: SamplingParams,
    search: SearchConfig,
    policy: Option<Policy>,
}

/// `stored_policy`: the policy a resumed run keeps inline (its file may be gone).
fn check(a: &Args, stored_policy: Option<Policy>) -> Result<Checked> {
    let sampling = a.sampling.params()?;
    let search = a.search.config()?;
    if a.strategy.is_empty() || a.strategy.iter().any(|s| s.trim().is_empty()) {
        bail!("--strategy needs at least one strategy name");
    }
    if a.budget.is_empty() {
        bail!("--budget needs at least one value");
    }
    let policy = match (&a.policy, stored_policy) {
        (_, Some(p)) => Some(p),
        (Some(path), None) => Some(Policy::load(path)?),
        (None, None) => None,
    };
    for s in &a.strategy {
        for &b in &a.budget {
            build_strategy(s.trim(), b, &sampling, &search, policy.as_ref())?;
        }
    }
    common::check_scorer(&a.scorer)?;
    if a.limit == 0 {
        bail!("--limit must be at least 1, got 0");
    }
    if a.concurrency == Some(0) {
        bail!("--concurrency must be at least 1, got 0");
    }
    if a.seeds == 0 {
        bail!("--seeds must be at least 1, got 0");
    }
    for (flag, cost) in [("--wrong-cost", a.wrong_cost), ("--abstain-cost", a.abstain_cost)] {
        if !cost.is_finite() {
            bail!("{flag} must be a finite number, got {cost}");
        }
    }
    Ok(Checked { sampling, search, policy })
}

fn load_dataset(spec: &str, seed: u64, skip_bad_rows: bool, limit: usize) -> Result<(Dataset, Vec<Problem>)> {
    let loaded = ponder_eval::load_with(spec, seed, LoadOptions { skip_bad_rows, ..LoadOptions::default() })?;
    for bad in &loaded.skipped {
        eprintln!("ponder: warning: skipped {spec} line {}: {}", bad.line, bad.reason);
    }
    let problems: Vec<Problem> = loaded.dataset.problems.iter().take(limit).cloned().collect();
    let mut seen = BTreeSet::new();
    if let Some(p) = problems.iter().find(|p| !seen.insert(p.id.as_str())) {
        bail!("dataset {spec}: problem id {:?} appears twice; ids must be unique", p.id);
    }
    Ok((loaded.dataset, problems))
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
    let (dataset, problems) = load_dataset(&a.dataset, a.sampling.seed, a.skip_bad_rows, a.limit)?;
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("argv".to_string(), serde_json::to_value(argv()?)?);
    let config = RunConfig {
        dataset: a.dataset.trim().to_string(),
        dataset_seed: a.sampling.seed,
        limit: a.limit,
        skip_bad_rows: a.skip_bad_rows,
        strategies: a.strategy.iter().map(|s| s.trim().to_string()).collect(),
        budgets: a.budget.clone(),
        seeds: (0..a.seeds as u64).map(|i| a.sampling.seed.wrapping_add(i)).collect(),
        scorer: a.scorer.clone(),
        model: a.model.model.clone(),
        ctx: a.model.ctx,
        sampling: checked.sampling.clone(),
        concurrency: a.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        wrong_cost: a.wrong_cost,
        abstain_cost: a.abstain_cost,
        prompt: a.prompt.as_deref().map(|p| ponder_eval::PromptTemplate::resolve(p.trim())).transpose()?,
        policy: checked.policy.as_ref().map(serde_json::to_value).transpose()?,
        dataset_fingerprint: ponder_eval::fingerprint(&problems),
        n_problems: problems.len(),
        ponder_version: env!("CARGO_PKG_VERSION").to_string(),
        extra,
    };
    let mut store = if a.no_store { Store::in_memory()? } else { Store::open_or_create(&store_path(&a))? };
    let id = store.create_run(&config.to_json(), &config.model, &config.dataset, 0, &problems)?;
    println!("run {id} · store {}", store.path());
    go(store, id, a, config, checked, dataset, problems)
}

fn resume(cli: Args, id: i64) -> Result<()> {
    let path = store_path(&cli);
    let store = Store::open_existing(&path)?;
    let info = store.run(id)?;
    let config = RunConfig::from_json(id, &info.config)?;
    let argv: Vec<String> = config
        .extra
        .get("argv")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .with_context(|| format!("run {id} has no stored arguments to resume with"))?;
    let mut a = StoredArgs::try_parse_from(&argv)
        .map_err(|e| anyhow::anyhow!("run {id}: stored arguments no longer parse: {}", e.render().to_string().trim()))?
        .args;
    // The stored configuration decides what runs; the machine decides how.
    a.model.model = config.model.clone();
    a.model.ctx = config.ctx;
    a.model.threads = cli.model.threads;
    a.model.ubatch = cli.model.ubatch;
    a.concurrency = Some(cli.concurrency.unwrap_or(config.concurrency));
    a.json = cli.json.clone();
    a.resume = Some(id);
    a.store = Some(path);
    a.no_store = false;
    // The policy as stored, not the file (which may have changed or gone since).
    let stored_policy = config.policy.as_ref().map(Policy::from_value).transpose()?;
    let checked = check(&a, stored_policy)?;
    let (dataset, problems) = load_dataset(&config.dataset, config.dataset_seed, config.skip_bad_rows, config.limit)?;
    if ponder_eval::fingerprint(&problems) != config.dataset_fingerprint {
        return Err(ponder_eval::Error::DatasetChanged { id, dataset: config.dataset.clone() }.into());
    }
    let (n_outcomes, n_samples) = store.counts(id)?;
    println!("resuming run {id} ({}; {n_outcomes} units and {n_samples} samples stored) · store {}", info.status, store.path());
    go(store, id, a, config, checked, dataset, problems)
}

/// Loads the model, runs the missing units, prints the table.
fn go(mut store: Store, id: i64, a: Args, config: RunConfig, checked: Checked, dataset: Dataset, problems: Vec<Problem>) -> Result<()> {
    let Checked { sampling, search, policy } = checked;
    let engine = load_engine(&a)?;
    store.set_n_params(id, engine.info().n_params)?;
    // The template is settled once, with the model known, and kept whole in the run.
    let mut config = config;
    let template = match config.prompt.clone() {
        Some(t) => t,
        None => {
            let t = common::prompt_template(a.prompt.as_deref(), dataset.kind, &engine)?;
            config.prompt = Some(t.clone());
            store.set_config(id, &config.to_json())?;
            t
        }
    };
    let rendered: Vec<Vec<ponder_core::Message>> =
        problems.iter().map(|p| template.render(p)).collect::<Result<_, _>>()?;
    let shown: Vec<String> = rendered
        .iter()
        .map(|m| engine.render(m).unwrap_or_else(|_| serde_json::to_string(m).unwrap_or_default()))
        .collect();
    let rows: Vec<(&str, &str, &str)> =
        problems.iter().zip(&shown).map(|(p, s)| (p.id.as_str(), p.question.as_str(), s.as_str())).collect();
    store.set_prompts(id, &rows)?;
    println!("prompt template {}", template.name);
    let sampling = common::with_stops(sampling, &template);
    let scorers =
        common::scorers(&a.scorer, Some(dataset.checker.clone()), &a.search, &a.model, &engine, common::prompt_fn(&template))?;

    // Strategies per (name, budget, seed); a strategy with a fixed budget runs once.
    let mut groups: Vec<(Group, Box<dyn Strategy>)> = Vec::new();
    for &seed in &config.seeds {
        let sampling = SamplingParams { seed, ..sampling.clone() };
        for name in &config.strategies {
            for &budget in &config.budgets {
                let s = build_strategy(name, budget, &sampling, &search, policy.as_ref())?;
                let g = Group { strategy: s.name().to_string(), budget: s.budget(), seed };
                if !groups.iter().any(|(x, _)| *x == g) {
                    groups.push((g, s));
                }
            }
        }
    }
    let stored = store.stored_units(id)?;
    let mut jobs = Vec::new();
    for (g, s) in &groups {
        for (p, messages) in problems.iter().zip(&rendered) {
            let key = UnitKey { problem_id: p.id.clone(), strategy: g.strategy.clone(), budget: g.budget, seed: g.seed };
            if !stored.contains(&key) {
                jobs.push(Job { key, problem: p, messages, strategy: s.as_ref() });
            }
        }
    }
    let seeds = config.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    println!(
        "dataset {} · {} problems · model {} · seed {} · {} of {} units to run",
        dataset.name,
        problems.len(),
        config.model,
        seeds,
        jobs.len(),
        groups.len() * problems.len()
    );

    // Rows print as their group completes; groups already complete print first.
    let multi_seed = config.seeds.len() > 1;
    let mut done: HashMap<Group, Vec<Done>> = HashMap::new();
    for o in store.outcomes(id)? {
        done.entry(Group::of(&o.key)).or_default().push(Done {
            correct: o.correct,
            abstained: o.abstained,
            n_samples: o.n_samples,
            usage: o.usage,
        });
    }
    let mut printed_header = false;
    let mut print_if_complete = |g: &Group, done: &HashMap<Group, Vec<Done>>, bar: Option<&ProgressBar>| {
        let rows = done.get(g).map_or(&[][..], Vec::as_slice);
        if rows.len() == problems.len() {
            let line = row(g, rows, multi_seed);
            let mut print = || {
                if !printed_header {
                    println!("{}", header());
                    printed_header = true;
                }
                println!("{line}");
            };
            match bar {
                Some(b) => b.suspend(print),
                None => print(),
            }
        }
    };
    for (g, _) in &groups {
        print_if_complete(g, &done, None);
    }

    let bar = ProgressBar::with_draw_target(Some(jobs.len() as u64), ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} units · {per_sec} · eta {eta} {msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix("eval");
    let rt = common::runtime()?;
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
        done.entry(g.clone()).or_default().push(Done {
            correct: rec.correct,
            abstained: rec.outcome.abstained,
            n_samples: rec.outcome.candidates.len(),
            usage: rec.outcome.usage,
        });
        print_if_complete(&g, &done, Some(&bar));
    };
    let result = if !a.deterministic {
        let ctx = Ctx { process: scorers.process.as_deref(), ..common::dataset_ctx(&engine, &dataset, scorers.outcome.as_deref()) };
        rt.block_on(runner::execute(&mut store, id, jobs, dataset.checker.clone(), &ctx, concurrency, &mut stop, &mut on_stored))
    } else {
        // One fresh engine (and scorers) per unit.
        drop(scorers);
        drop(engine);
        let mut total = 0;
        let mut result = Ok(Finish::Done);
        for job in jobs {
            let engine = load_engine(&a)?;
            let scorers = common::scorers(
                &a.scorer,
                Some(dataset.checker.clone()),
                &a.search,
                &a.model,
                &engine,
                common::prompt_fn(&template),
            )?;
            let ctx = Ctx { process: scorers.process.as_deref(), ..common::dataset_ctx(&engine, &dataset, scorers.outcome.as_deref()) };
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
            eprintln!(
                "ponder: interrupted: {stored} units stored in this session, {n} of {} in all; continue with `{resume}`",
                groups.len() * problems.len()
            );
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
    let summaries = summaries(&data, &groups.iter().map(|(g, _)| g.clone()).collect::<Vec<_>>(), &problems, &dataset, &a);
    for s in &summaries {
        if let Some(v) = &s.verifier {
            print_verifier(&s.strategy, v);
        }
    }
    print_agreement(&summaries, dataset.equivalence.as_ref());
    if let Some(path) = &a.json {
        write_json(path, &summaries)?;
    }
    Ok(())
}

fn load_engine(a: &Args) -> Result<ponder_engine::Engine> {
    let cfg = a.model.engine_config();
    let path = a.model.resolve()?;
    ponder_engine::Engine::load(&path, cfg).with_context(|| format!("loading model {}", path.display()))
}

fn write_json(path: &Path, summaries: &[Summary]) -> Result<()> {
    let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    serde_json::to_writer_pretty(&mut f, summaries)?;
    f.write_all(b"\n")?;
    println!("wrote {}", path.display());
    Ok(())
}

/// What a row needs of a unit.
struct Done {
    correct: bool,
    abstained: bool,
    n_samples: usize,
    usage: Usage,
}

fn header() -> String {
    format!(
        "{:<15} {:>6} {:>16} {:>6} {:>8} {:>9} {:>11} {:>10} {:>10} {:>9}",
        "strategy", "budget", "accuracy", "wrong", "abstain", "samples", "completion", "prompt", "reused", "wall s"
    )
}

fn row(g: &Group, rows: &[Done], multi_seed: bool) -> String {
    let n = rows.len();
    let n_correct = rows.iter().filter(|r| r.correct).count();
    let n_abstained = rows.iter().filter(|r| r.abstained && !r.correct).count();
    let usage: Usage = rows.iter().map(|r| r.usage).sum();
    let name = if multi_seed { format!("{} s{}", g.strategy, g.seed) } else { g.strategy.clone() };
    format!(
        "{:<15} {:>6} {:>16} {:>6} {:>8} {:>9.2} {:>11} {:>10} {:>10} {:>9.1}",
        name,
        g.budget,
        format!("{}/{} ({:.1}%)", n_correct, n, 100.0 * n_correct as f64 / n.max(1) as f64),
        n - n_correct - n_abstained,
        n_abstained,
        rows.iter().map(|r| r.n_samples as f64).sum::<f64>() / n.max(1) as f64,
        usage.completion,
        usage.prompt_computed,
        usage.prompt_reused,
        usage.wall_ms as f64 / 1000.0
    )
}

fn print_legend() {
    println!(
        "(wrong: answered and wrong; abstain: no answer given; samples: mean drawn per problem; \
         completion/prompt/reused: tokens summed over all problems; wall s: summed over problems)"
    );
}

/// Per (strategy, budget, seed), the JSON summary with its records, from the store.
fn summaries(data: &RunData, groups: &[Group], problems: &[Problem], dataset: &Dataset, a: &Args) -> Vec<Summary> {
    let by_key: HashMap<(&str, &str, usize, u64), &ponder_eval::store::OutcomeRow> = data
        .outcomes
        .iter()
        .map(|o| ((o.key.problem_id.as_str(), o.key.strategy.as_str(), o.key.budget, o.key.seed), o))
        .collect();
    groups
        .iter()
        .map(|g| {
            let records: Vec<Record> = problems
                .iter()
                .filter_map(|p| by_key.get(&(p.id.as_str(), g.strategy.as_str(), g.budget, g.seed)).map(|o| (p, o)))
                .map(|(p, o)| Record {
                    id: p.id.clone(),
                    gold: p.gold.clone(),
                    answer: o.answer.clone(),
                    correct: o.correct,
                    abstained: o.abstained,
                    n_samples: o.n_samples,
                    usage: o.usage,
                })
                .collect();
            let n = records.len().max(1);
            let n_correct = records.iter().filter(|r| r.correct).count();
            let n_abstained = records.iter().filter(|r| r.abstained && !r.correct).count();
            let usage: Usage = records.iter().map(|r| r.usage).sum();
            let verifier = (dataset.kind == Kind::Code && g.strategy == "verify-resample").then(|| {
                let utility = Utility { correct: 1.0, wrong: a.wrong_cost, abstain: a.abstain_cost, per_sample: 0.0 };
                verifier_report(data, g, problems, &utility)
            });
            Summary {
                run: data.info.id,
                strategy: g.strategy.clone(),
                budget: g.budget,
                seed: g.seed,
                n_problems: records.len(),
                n_correct,
                n_wrong: records.len() - n_correct - n_abstained,
                n_abstained,
                accuracy: n_correct as f64 / n as f64,
                mean_samples: records.iter().map(|r| r.n_samples as f64).sum::<f64>() / n as f64,
                usage,
                elapsed_s: usage.wall_ms as f64 / 1000.0,
                verifier,
                records,
            }
        })
        .collect()
}

/// Compares the verifier's verdicts (the candidates' scores: 1 = visible tests pass) with
/// the truth (each candidate graded on the hidden tests when stored), and runs the fLaws
/// analysis.
fn verifier_report(data: &RunData, g: &Group, problems: &[Problem], utility: &Utility) -> VerifierReport {
    let mut by_problem: HashMap<&str, Vec<(bool, bool)>> = HashMap::new();
    for s in data.samples.iter().filter(|s| s.key.strategy == g.strategy && s.key.budget == g.budget && s.key.seed == g.seed) {
        by_problem.entry(s.key.problem_id.as_str()).or_default().push((s.score == Some(1.0), s.correct));
    }
    let verdicts: Vec<Vec<(bool, bool)>> = problems.iter().map(|p| by_problem.remove(p.id.as_str()).unwrap_or_default()).collect();
    let all: Vec<(bool, bool)> = verdicts.iter().flatten().copied().collect();
    let count = |f: fn(&(bool, bool)) -> bool| all.iter().filter(|v| f(v)).count();
    let n_visible_pass = count(|v| v.0);
    let n_hidden_pass = count(|v| v.1);
    let n_both_pass = count(|v| v.0 && v.1);
    let ratio = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
    let false_positive_rate = ratio(n_visible_pass - n_both_pass, all.len() - n_hidden_pass);
    let true_positive_rate = ratio(n_both_pass, n_hidden_pass);
    let success_rates: Vec<f64> = verdicts
        .iter()
        .map(|v| ratio(v.iter().filter(|x| x.1).count(), v.len()).unwrap_or(0.0))
        .collect();
    let (tpr, fpr) = (true_positive_rate.unwrap_or(1.0), false_positive_rate.unwrap_or(0.0));
    let (best_k, best_k_utility) = best_k(&success_rates, tpr, fpr, utility, MAX_K);
    VerifierReport {
        n_candidates: all.len(),
        n_visible_pass,
        n_hidden_pass,
        n_both_pass,
        false_positive_rate,
        true_positive_rate,
        wrong_among_passing: ratio(n_visible_pass - n_both_pass, n_visible_pass),
        budget_utility: expected_utility(&success_rates, tpr, fpr, utility, g.budget),
        success_rates,
        utility: UtilityReport { correct: utility.correct, wrong_cost: utility.wrong, abstain_cost: utility.abstain },
        best_k,
        best_k_utility,
    }
}

fn print_verifier(strategy: &str, v: &VerifierReport) {
    let rate = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{r:.3}"));
    println!(
        "verifier ({strategy}, visible tests vs hidden): {} candidates, {} pass visible, {} pass hidden, {} both · \
         false-positive rate {} · true-positive rate {} · wrong among passing {}",
        v.n_candidates,
        v.n_visible_pass,
        v.n_hidden_pass,
        v.n_both_pass,
        rate(v.false_positive_rate),
        rate(v.true_positive_rate),
        rate(v.wrong_among_passing)
    );
    println!(
        "fLaws best k (correct +{}, wrong -{}, abstain -{}): k = {} (expected utility {:.3}; {:.3} at this budget)",
        v.utility.correct, v.utility.wrong_cost, v.utility.abstain_cost, v.best_k, v.best_k_utility, v.budget_utility
    );
}

/// Same-answer rates between strategies that ran on the same problems with the same seed
/// (at the same budget, or against `single`).
fn print_agreement(summaries: &[Summary], equivalence: &dyn Equivalence) {
    let same = |x: &Record, y: &Record| match (&x.answer, &y.answer) {
        (Some(p), Some(q)) => equivalence.equivalent(p, q),
        (None, None) => true,
        _ => false,
    };
    let multi_seed = summaries.iter().map(|s| s.seed).collect::<BTreeSet<_>>().len() > 1;
    let label = |s: &Summary| {
        let mut l = s.strategy.clone();
        if summaries.iter().filter(|x| x.strategy == s.strategy && x.seed == s.seed).count() > 1 {
            l = format!("{l}@{}", s.budget);
        }
        if multi_seed {
            l = format!("{l} s{}", s.seed);
        }
        l
    };
    for (i, a) in summaries.iter().enumerate() {
        for b in &summaries[i + 1..] {
            if a.seed != b.seed || !(a.budget == b.budget || a.strategy == "single" || b.strategy == "single") {
                continue;
            }
            let pairs: Vec<(&Record, &Record)> = a.records.iter().zip(&b.records).filter(|(x, y)| x.id == y.id).collect();
            if pairs.is_empty() {
                continue;
            }
            let n_same = pairs.iter().filter(|(x, y)| same(x, y)).count();
            println!("agreement {} vs {}: {}/{} problems with the same answer", label(a), label(b), n_same, pairs.len());
            // Where one side stopped early, did it still reach the other's answer?
            for (early, full, flip) in [(a, b, false), (b, a, true)] {
                let stopped: Vec<&(&Record, &Record)> =
                    pairs.iter().filter(|(x, y)| if flip { y.n_samples < early.budget } else { x.n_samples < early.budget }).collect();
                if early.budget > 1 && full.mean_samples >= full.budget as f64 && !stopped.is_empty() {
                    let n = stopped.iter().filter(|(x, y)| same(x, y)).count();
                    let drawn: usize = stopped.iter().map(|(x, y)| if flip { y.n_samples } else { x.n_samples }).sum();
                    println!(
                        "  where {} stopped early ({} problems, {:.1} samples each): same answer as {} on {}/{}",
                        label(early),
                        stopped.len(),
                        drawn as f64 / stopped.len() as f64,
                        label(full),
                        n,
                        stopped.len()
                    );
                }
            }
        }
    }
}
