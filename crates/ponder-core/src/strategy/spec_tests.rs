//! Specs: every surface reads the same type; printing and parsing round-trip (proptest
//! over generated specs, through the shorthand, JSON and TOML); errors name the field.

use proptest::prelude::{any, prop, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig};
use proptest::strategy::Strategy as _;
use serde_json::json;

use super::*;
use crate::process::Aggregate;
use crate::strategy::search::StepConfig;
use crate::strategy::smc::{FinalPick, Resampling};
use crate::strategy::{CritiqueConfig, FuseConfig, Keep, RankConfig, RankMode, ReviseConfig};
use crate::strategy::{AdaptiveItcConfig, DeepConfConfig, DeepConfMode, ItcMode, ItcSelect, Pruning, RpcConfig};

fn check(input: &str, expected: &str) {
    let spec = StrategySpec::parse(input, Some(8)).unwrap_or_else(|e| panic!("{input}: {e}"));
    assert_eq!(spec.to_string(), expected, "{input}");
}

#[test]
fn shorthand_reads_todays_cli_forms() {
    check("sc", "sc@8");
    check("sc@16", "sc@16");
    check("single", "single");
    check("single@4", "single@4");
    check("pf@8", "pf@8");
    check("pf", "pf@8");
    check("adaptive-sc@12", "adaptive-sc@12");
    check(" beam @ 16 ", "beam@16");
    check(r#"pf@8{resampling = "systematic"}"#, r#"pf@8{ resampling = "systematic" }"#);
    check("beam@16{width=2, step={max_steps=9}}", "beam@16{ step = { max_steps = 9 }, width = 2 }");
    // A field at its default is not printed.
    check("dvts@4{width = 4}", "dvts@4");
    // The budget comes from `@N` before the caller's.
    assert_eq!(StrategySpec::parse("sc@3", Some(8)).unwrap().budget(), 3);
    assert_eq!(StrategySpec::parse("sc", None).unwrap(), StrategySpec::Sc(ScConfig::default()));
}

#[test]
fn names_are_serdes_and_every_config_says_its_own() {
    let names = StrategySpec::names();
    assert_eq!(
        names,
        ["single", "sc", "adaptive-sc", "deepconf", "rpc", "adaptive-itc", "think-exit", "bon", "weighted-bon", "verify-resample", "beam", "dvts", "pf", "pgibbs", "astar", "revise", "critique", "fuse", "rank", "auto"]
    );
    for (spec, name) in StrategySpec::all().iter().zip(names) {
        assert_eq!(spec.name(), *name, "the config's name is its serde tag");
        assert_eq!(spec.to_json()["strategy"], json!(name));
    }
    assert_eq!(StrategySpec::all().len(), names.len(), "every strategy has defaults for every field");
}

#[test]
fn capabilities_replace_the_lists() {
    let with = |f: fn(&StrategySpec) -> bool| -> Vec<&'static str> {
        StrategySpec::all().iter().filter(|s| f(s)).map(StrategySpec::name).collect()
    };
    assert_eq!(with(|s| s.needs().process_scorer), ["beam", "dvts", "pf", "pgibbs", "astar"]);
    assert_eq!(with(|s| s.needs().session), ["adaptive-itc", "think-exit", "beam", "dvts", "pf", "pgibbs", "astar"]);
    assert_eq!(with(|s| s.needs().verifier), ["verify-resample"]);
    assert_eq!(with(|s| s.needs().scorer), ["bon", "weighted-bon"]);
    assert_eq!(with(|s| s.config().base().is_some()), ["revise", "critique", "fuse", "rank"]);
    // Layers reuse probes through their base (by default `single`), not on a search base.
    let reusing = ["single", "sc", "adaptive-sc", "rpc", "bon", "weighted-bon", "verify-resample", "revise", "critique", "fuse", "rank"];
    assert_eq!(with(StrategySpec::reuses_probes), reusing);
    assert!(!StrategySpec::parse(r#"revise@1{ base = "beam@4" }"#, None).unwrap().reuses_probes());
    assert_eq!(with(|s| s.config().probe_source()), ["sc", "rpc", "bon", "weighted-bon"]);
}

#[test]
fn errors_name_the_field_the_same_way_from_every_form() {
    let want = "strategy pf: ess_threshold must be in [0, 1], got 2";
    let short = StrategySpec::parse("pf@8{ess_threshold = 2}", None).unwrap_err();
    let json = StrategySpec::from_value(json!({"strategy": "pf", "n": 8, "ess_threshold": 2.0}), None).unwrap_err();
    let toml_value: toml::Value = toml::from_str("strategy = \"pf\"\nn = 8\ness_threshold = 2.0").unwrap();
    let from_toml = StrategySpec::from_value(serde_json::to_value(toml_value).unwrap(), None).unwrap_err();
    for e in [&short, &json, &from_toml] {
        assert_eq!(e.to_string(), want);
        assert!(matches!(e, StrategyError::InvalidConfig { field, .. } if field == "ess_threshold"), "{e:?}");
    }
    let nested = StrategySpec::parse("beam@4{step = {max_steps = 0}}", None).unwrap_err();
    assert_eq!(nested.to_string(), "strategy beam: step.max_steps must be at least 1, got 0");
    let unknown = StrategySpec::parse("beam@4{widht = 2}", None).unwrap_err().to_string();
    assert!(unknown.starts_with("bad strategy spec: unknown field `widht`, expected one of"), "{unknown}");
    let same = StrategySpec::from_value(json!({"strategy": "beam", "widht": 2}), None).unwrap_err().to_string();
    assert_eq!(unknown, same);
    let name = StrategySpec::parse("nope@3", None).unwrap_err().to_string();
    assert!(name.starts_with("unknown strategy \"nope\" (known: single, sc,"), "{name}");
    assert_eq!(StrategySpec::parse("sc@0", None).unwrap_err(), StrategyError::InvalidBudget(0));
    assert!(StrategySpec::parse("sc@x", None).unwrap_err().to_string().contains("whole number"));
    assert!(StrategySpec::parse("single@2{n = 3", None).unwrap_err().to_string().contains("TOML inline table"));
    let auto = StrategySpec::parse("auto", Some(8)).unwrap_err().to_string();
    assert!(auto.starts_with("strategy auto: policy is missing"), "{auto}");
}

#[test]
fn defaults_fill_only_the_fields_a_strategy_has_and_never_override() {
    let defaults: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(json!({"width": 2, "ess_threshold": 0.5, "step": {"max_steps": 3}})).unwrap();
    let beam = StrategySpec::parse_with("beam@8{width = 4}", None, &defaults).unwrap();
    assert_eq!(beam.to_string(), "beam@8{ step = { max_steps = 3 } }", "width stays the spec's own");
    let pf = StrategySpec::parse_with("pf", Some(6), &defaults).unwrap();
    assert_eq!(pf.to_string(), "pf@6{ ess_threshold = 0.5, step = { max_steps = 3 } }");
    assert_eq!(StrategySpec::parse_with("sc", Some(6), &defaults).unwrap().to_string(), "sc@6");
}

#[test]
fn lists_split_at_top_level_commas_only() {
    assert_eq!(StrategySpec::split_list("single,sc"), ["single", "sc"]);
    assert_eq!(
        StrategySpec::split_list(r#"sc, pf@8{resampling = "systematic", step = {delimiter = ",", max_steps = 3}},bon"#),
        ["sc", r#"pf@8{resampling = "systematic", step = {delimiter = ",", max_steps = 3}}"#, "bon"]
    );
}

fn arb_step() -> impl proptest::strategy::Strategy<Value = StepConfig> {
    let aggregate = prop_oneof![Just(Aggregate::Last), Just(Aggregate::Min), Just(Aggregate::Product), Just(Aggregate::Mean)];
    (prop::sample::select(vec!["\n\n", "\n", "", ", {}@\"'"]), 1u32..512, 1usize..64, aggregate).prop_map(
        |(delimiter, max_step_tokens, max_steps, aggregate)| StepConfig {
            delimiter: delimiter.into(),
            max_step_tokens,
            max_steps,
            aggregate,
        },
    )
}

fn arb_smc() -> impl proptest::strategy::Strategy<Value = (Resampling, f64, f64, FinalPick, StepConfig)> {
    (
        prop_oneof![Just(Resampling::Multinomial), Just(Resampling::Systematic)],
        0.0f64..=1.0,
        0.01f64..10.0,
        prop_oneof![Just(FinalPick::Argmax), Just(FinalPick::Sample)],
        arb_step(),
    )
}

/// Every strategy but `auto` (a policy is data of its own), with every field varied.
fn arb_spec() -> impl proptest::strategy::Strategy<Value = StrategySpec> {
    let n = 1usize..256;
    let abstain = || proptest::option::of(0.0f64..=1.0);
    prop_oneof![
        n.clone().prop_map(|n| StrategySpec::Single(SingleConfig { n })),
        (n.clone(), abstain()).prop_map(|(n, abstain_below)| StrategySpec::Sc(ScConfig { n, abstain_below })),
        (n.clone(), 0.01f64..=1.0, 1usize..16, abstain()).prop_map(|(n, threshold, round_size, abstain_below)| {
            StrategySpec::AdaptiveSc(AdaptiveScConfig { n, threshold, round_size, abstain_below })
        }),
        (n.clone(), any::<bool>(), 0.01f64..=1.0, 1usize..64, 1u32..=20, any::<Option<u8>>(), 0.01f64..=1.0, 1usize..16, abstain())
            .prop_map(|(n, online, keep, window, top_k, warmup, consensus, round_size, abstain_below)| {
                let mode = if online { DeepConfMode::Online } else { DeepConfMode::Offline };
                let warmup = warmup.map(|w| (usize::from(w) % n) + 1);
                StrategySpec::Deepconf(DeepConfConfig { n, mode, keep, window, top_k, warmup, consensus, round_size, abstain_below })
            }),
        (n.clone(), any::<bool>()).prop_map(|(n, prune)| {
            StrategySpec::Rpc(RpcConfig { n, pruning: if prune { Pruning::TwoMeans } else { Pruning::None }, abstain_below: None })
        }),
        (n.clone(), any::<bool>(), 0.01f64..=1.0, 1usize..16, 1u32..512, 0.01f64..=1.0, any::<bool>(), "[a-z ?]{1,12}")
            .prop_map(|(n, prune, threshold, round_size, prune_after, keep, vote, question)| {
                let mode = if prune { ItcMode::Prune } else { ItcMode::DrawMore };
                let select = if vote { ItcSelect::Vote } else { ItcSelect::Best };
                StrategySpec::AdaptiveItc(AdaptiveItcConfig { n, mode, threshold, round_size, prune_after, keep, select, question })
            }),
        (n.clone(), 1u32..512, 1usize..8, 0.0f64..=1.0, 1u32..64).prop_map(|(n, every, agree, threshold, probe_tokens)| {
            StrategySpec::ThinkExit(ThinkExitConfig { n, every, agree, threshold, probe_tokens })
        }),
        n.clone().prop_map(|n| StrategySpec::Bon(BonConfig { n })),
        (n.clone(), abstain()).prop_map(|(n, abstain_below)| StrategySpec::WeightedBon(WeightedBonConfig { n, abstain_below })),
        (n.clone(), 1usize..16).prop_map(|(n, round_size)| StrategySpec::VerifyResample(VerifyResampleConfig { n, round_size })),
        (n.clone(), 1usize..9, arb_step()).prop_map(|(n, width, step)| StrategySpec::Beam(BeamConfig { n, width, step })),
        (n.clone(), 1usize..9, arb_step()).prop_map(|(n, width, step)| StrategySpec::Dvts(DvtsConfig { n, width, step })),
        (n.clone(), 1usize..9, arb_step()).prop_map(|(n, width, step)| StrategySpec::Astar(AstarConfig { n, width, step })),
        (n.clone(), arb_smc()).prop_map(|(n, (resampling, ess_threshold, temperature, final_pick, step))| {
            StrategySpec::Pf(PfConfig { n, resampling, ess_threshold, temperature, final_pick, step })
        }),
        (n, 1usize..5, arb_smc()).prop_map(|(n, sweeps, (resampling, ess_threshold, temperature, final_pick, step))| {
            StrategySpec::Pg(PgConfig { n, sweeps, resampling, ess_threshold, temperature, final_pick, step })
        }),
        // Layered: a revision chain on a sampled base.
        (1usize..8, 1usize..32, prop_oneof![Just(Keep::Last), Just(Keep::Vote), Just(Keep::Best)], "[a-z ]{1,20}")
            .prop_filter("a prompt with a word", |t| !t.3.trim().is_empty())
            .prop_map(|(n, base_n, keep, prompt)| {
                let base = Box::new(StrategySpec::Sc(ScConfig { n: base_n, abstain_below: None }));
                StrategySpec::Revise(ReviseConfig { n, base, keep, prompt })
            }),
        (1usize..8, arb_base(), arb_keep(), arb_prompt(), arb_prompt(), arb_prompt()).prop_map(
            |(n, base, keep, critic_system, critic_prompt, prompt)| {
                StrategySpec::Critique(CritiqueConfig { n, base, keep, critic_system, critic_prompt, prompt })
            }
        ),
        (1usize..4, 1usize..6, arb_base(), 1usize..5000, arb_prompt())
            .prop_map(|(layers, width, base, max_chars, prompt)| StrategySpec::Fuse(FuseConfig { layers, width, base, max_chars, prompt })),
        (arb_base(), any::<bool>(), any::<bool>(), 2usize..9, 1usize..5000, arb_prompt()).prop_map(
            |(base, listwise, both_orders, max_candidates, max_chars, prompt)| {
                let mode = if listwise { RankMode::Listwise } else { RankMode::Pairwise };
                StrategySpec::Rank(RankConfig { base, mode, both_orders, max_candidates, max_chars, prompt })
            }
        ),
    ]
}

fn arb_keep() -> impl proptest::strategy::Strategy<Value = Keep> {
    prop_oneof![Just(Keep::Last), Just(Keep::Vote), Just(Keep::Best)]
}

/// A prompt with a word in it (quotes and braces included: they must survive nesting).
fn arb_prompt() -> impl proptest::strategy::Strategy<Value = String> {
    "[a-z \"{}',]{1,20}".prop_filter("a prompt with a word", |p| !p.trim().is_empty())
}

/// A base for a layer: a plain spec, or itself a layer (a base nested two deep).
fn arb_base() -> impl proptest::strategy::Strategy<Value = Box<StrategySpec>> {
    let sc = (1usize..32, proptest::option::of(0.0f64..=1.0)).prop_map(|(n, abstain_below)| StrategySpec::Sc(ScConfig { n, abstain_below }));
    let layered = (1usize..4, 1usize..8, arb_keep(), arb_prompt()).prop_map(|(n, base_n, keep, prompt)| {
        let base = Box::new(StrategySpec::Sc(ScConfig { n: base_n, abstain_below: None }));
        StrategySpec::Revise(ReviseConfig { n, base, keep, prompt })
    });
    prop_oneof![sc, (1usize..4).prop_map(|n| StrategySpec::Single(SingleConfig { n })), layered].prop_map(Box::new)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn print_then_parse_is_the_same_spec(spec in arb_spec(), budget in any::<Option<u8>>()) {
        spec.validate().expect("generated specs are valid");
        let budget = budget.map(|b| usize::from(b) + 1);
        // The shorthand, whatever budget the caller offers.
        prop_assert_eq!(&StrategySpec::parse(&spec.to_string(), budget).expect("shorthand parses"), &spec);
        // JSON, and the label plus the budget (how a run's store keys it).
        let json = serde_json::to_string(&spec).expect("serialises");
        prop_assert_eq!(&StrategySpec::from_value(serde_json::from_str(&json).unwrap(), budget).expect("JSON parses"), &spec);
        if spec.config().takes_budget() {
            prop_assert_eq!(&StrategySpec::parse(&spec.label(), Some(spec.budget())).expect("label parses"), &spec);
        }
        // TOML, as `ponder serve --config` reads a table.
        let toml_text = toml::to_string(&spec).expect("TOML serialises");
        let table: toml::Value = toml::from_str(&toml_text).expect("TOML parses");
        prop_assert_eq!(&StrategySpec::from_value(serde_json::to_value(table).unwrap(), budget).expect("TOML spec"), &spec);
        let direct: StrategySpec = toml::from_str(&toml_text).expect("serde reads TOML straight");
        prop_assert_eq!(&direct, &spec);
    }
}
