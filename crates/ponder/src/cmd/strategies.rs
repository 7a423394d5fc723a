//! `ponder strategies`: every strategy with its parameters, their defaults and its budget
//! unit, read from the spec types themselves (nothing here lists strategies), and the
//! scorers `--scorer` accepts.

use anyhow::Result;
use clap::Args as ClapArgs;
use ponder_core::scorer_spec::ScorerSpec;
use ponder_core::strategy::StrategySpec;
use serde_json::{json, Value};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Print JSON: {"strategies": [{name, about, budget_unit, takes_budget, needs, reuses_probes, parameters, example}], "scorers": [...]}
    #[arg(long)]
    pub json: bool,
}

/// One strategy as `--json` lists it.
fn describe(spec: &StrategySpec) -> Value {
    let c = spec.config();
    let mut parameters = spec.to_json();
    if let Some(p) = parameters.as_object_mut() {
        p.remove("strategy");
    }
    json!({
        "name": c.name(),
        "about": c.about(),
        "budget_unit": c.budget_unit(),
        "takes_budget": c.takes_budget(),
        "needs": c.needs(),
        "reuses_probes": c.reuses_probes(),
        "parameters": parameters,
        "example": spec.to_string(),
    })
}

pub fn run(a: Args) -> Result<()> {
    let all = StrategySpec::all();
    if a.json {
        let scorers: Vec<Value> = ScorerSpec::names()
            .iter()
            .filter_map(|n| n.parse::<ScorerSpec>().ok())
            .map(|s| json!({ "name": s.name(), "process": s.is_process() }))
            .collect();
        let out = json!({ "strategies": all.iter().map(describe).collect::<Vec<_>>(), "scorers": scorers });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("Spec forms: NAME, NAME@N, NAME@N{{TOML inline table}} (CLI); {{\"strategy\": NAME, ...}} (JSON, TOML).");
    println!("A plain NAME takes --budget as N where it has one; left-out parameters take the defaults below.\n");
    for spec in &all {
        let d = describe(spec);
        println!("{}  —  {}", spec.name(), spec.config().about());
        println!("  budget unit: {}", spec.config().budget_unit());
        let needs = spec.needs();
        let wants: Vec<&str> = [
            (needs.scorer, "an outcome scorer"),
            (needs.process_scorer, "a process scorer"),
            (needs.session, "step-wise sessions"),
            (needs.verifier, "a verifier"),
        ]
        .iter()
        .filter(|(w, _)| *w)
        .map(|(_, s)| *s)
        .collect();
        if !wants.is_empty() {
            println!("  needs: {}", wants.join(", "));
        }
        if let Some(params) = d["parameters"].as_object().filter(|p| !p.is_empty()) {
            let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            println!("  parameters: {}", shown.join(", "));
        }
        println!();
    }
    println!("scorers: {}", ScorerSpec::names().join(", "));
    Ok(())
}
