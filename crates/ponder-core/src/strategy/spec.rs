//! [`StrategySpec`]: a strategy as data. One enum, one variant per strategy, each carrying
//! its own configuration type (defined, with its defaults, in the strategy's file). Every
//! surface parses this one type: the CLI shorthand (`sc@16`, `pf@8{resampling="systematic"}`),
//! JSON (the gateway's `ponder.strategy`, stored runs), TOML (`ponder serve --config`) and
//! plan policies; so a bad spec gives the same message everywhere.
//!
//! Nothing here lists the strategies: the names come from serde's own variant list, and
//! each capability is asked of the variant's configuration ([`StrategyConfig`]).

use std::fmt;
use std::str::FromStr;

use serde::de::value::MapDeserializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::adaptive_itc::AdaptiveItcConfig;
use super::adaptive_sc::AdaptiveScConfig;
use super::astar::AstarConfig;
use super::auto::AutoConfig;
use super::beam::BeamConfig;
use super::best_of_n::BonConfig;
use super::critique::CritiqueConfig;
use super::deepconf::DeepConfConfig;
use super::dvts::DvtsConfig;
use super::fuse::FuseConfig;
use super::particle_filter::PfConfig;
use super::particle_gibbs::PgConfig;
use super::rank::RankConfig;
use super::revise::ReviseConfig;
use super::rpc::RpcConfig;
use super::self_consistency::ScConfig;
use super::single::SingleConfig;
use super::think_exit::ThinkExitConfig;
use super::verified_resampling::VerifyResampleConfig;
use super::weighted_best_of_n::WeightedBonConfig;
use super::{Strategy, StrategyError};
use crate::generator::SamplingParams;

/// A strategy and its configuration. Serialised internally tagged:
/// `{"strategy": "pf", "n": 8, "resampling": "systematic"}`; fields left out take the
/// configuration type's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "kebab-case")]
pub enum StrategySpec {
    Single(SingleConfig),
    Sc(ScConfig),
    AdaptiveSc(AdaptiveScConfig),
    Deepconf(DeepConfConfig),
    Rpc(RpcConfig),
    AdaptiveItc(AdaptiveItcConfig),
    ThinkExit(ThinkExitConfig),
    Bon(BonConfig),
    WeightedBon(WeightedBonConfig),
    VerifyResample(VerifyResampleConfig),
    Beam(BeamConfig),
    Dvts(DvtsConfig),
    Pf(PfConfig),
    #[serde(rename = "pgibbs")]
    Pg(PgConfig),
    Astar(AstarConfig),
    Revise(ReviseConfig),
    Critique(CritiqueConfig),
    Fuse(FuseConfig),
    Rank(RankConfig),
    Auto(AutoConfig),
}

/// What a strategy needs from its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Needs {
    /// An outcome scorer (`Ctx::scorer`).
    pub scorer: bool,
    /// A process scorer (`Ctx::process`).
    pub process_scorer: bool,
    /// Step-wise sessions from the generator (`Generator::open`).
    pub session: bool,
    /// A verifier (`Ctx::verifier`).
    pub verifier: bool,
}

/// A configuration field that fails its check: `field` as written in specs (nested
/// fields dotted: `step.max_steps`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn check(ok: bool, field: &str, message: impl FnOnce() -> String) -> Result<(), ConfigError> {
        if ok {
            Ok(())
        } else {
            Err(ConfigError { field: field.into(), message: message() })
        }
    }
}

/// What every strategy's configuration type says about itself. A new strategy implements
/// this next to its algorithm and adds its variant to [`StrategySpec`].
pub trait StrategyConfig {
    /// Its tag in specs (checked against serde's in the tests).
    fn name(&self) -> &'static str;
    /// One line for `ponder strategies`: the paper and what it does.
    fn about(&self) -> &'static str;
    /// Most units of its budget it may spend (`n`).
    fn budget(&self) -> usize;
    /// What one unit of `budget` is.
    fn budget_unit(&self) -> &'static str;
    /// A plain name (`sc`, no `@N`) takes the caller's budget (`--budget`) as its `n`;
    /// a layer's spec says its rounds and its base, and a caller's budget changes neither.
    fn takes_budget(&self) -> bool {
        self.base().is_none()
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    /// Its samples are samples 0.. of one request, so `auto`'s probes are its first
    /// samples and cost nothing extra. A layer runs its base first on the same messages
    /// and sampling, so it reuses them where its base does.
    fn reuses_probes(&self) -> bool {
        self.base().is_some_and(StrategySpec::reuses_probes)
    }
    /// It draws all of its `n` samples plainly, so `plan` can read probes from a run of it.
    fn probe_source(&self) -> bool {
        false
    }
    /// A voting strategy's `abstain_below`: it answers nothing when its winner holds
    /// less of the vote (`None`: it always answers, or does not vote).
    fn abstain_below(&self) -> Option<f64> {
        None
    }
    /// A layered strategy's base spec (it prints whole, as its own shorthand).
    fn base(&self) -> Option<&StrategySpec> {
        None
    }
    /// Checks every field; the error names the field.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
    /// The strategy, for a validated configuration.
    fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError>;
}

/// The `n` of a budget: at least 1. The message is the one every surface gives.
pub(crate) fn check_n(n: usize) -> Result<(), ConfigError> {
    ConfigError::check(n >= 1, "n", || format!("must be at least 1, got {n}"))
}

impl StrategySpec {
    /// The variant's configuration, where every capability is asked.
    pub fn config(&self) -> &dyn StrategyConfig {
        match self {
            Self::Single(c) => c,
            Self::Sc(c) => c,
            Self::AdaptiveSc(c) => c,
            Self::Deepconf(c) => c,
            Self::Rpc(c) => c,
            Self::AdaptiveItc(c) => c,
            Self::ThinkExit(c) => c,
            Self::Bon(c) => c,
            Self::WeightedBon(c) => c,
            Self::VerifyResample(c) => c,
            Self::Beam(c) => c,
            Self::Dvts(c) => c,
            Self::Pf(c) => c,
            Self::Pg(c) => c,
            Self::Astar(c) => c,
            Self::Revise(c) => c,
            Self::Critique(c) => c,
            Self::Fuse(c) => c,
            Self::Rank(c) => c,
            Self::Auto(c) => c,
        }
    }

    pub fn name(&self) -> &'static str {
        self.config().name()
    }

    pub fn budget(&self) -> usize {
        self.config().budget()
    }

    pub fn needs(&self) -> Needs {
        self.config().needs()
    }

    pub fn reuses_probes(&self) -> bool {
        self.config().reuses_probes()
    }

    /// Every strategy's name, in declaration order (serde's own list of the variants).
    pub fn names() -> &'static [&'static str] {
        variant_names()
    }

    /// Strategy `name` with every field at its default.
    pub fn default_of(name: &str) -> Result<StrategySpec, StrategyError> {
        if !Self::names().contains(&name) {
            return Err(StrategyError::UnknownStrategy { name: name.into(), known: Self::names().join(", ") });
        }
        let mut obj = Map::new();
        obj.insert("strategy".into(), Value::String(name.into()));
        serde_json::from_value(Value::Object(obj)).map_err(|e| StrategyError::BadSpec(e.to_string()))
    }

    /// Every strategy at its defaults.
    pub fn all() -> Vec<StrategySpec> {
        Self::names().iter().filter_map(|n| Self::default_of(n).ok()).collect()
    }

    /// Checks every field (the error names it).
    pub fn validate(&self) -> Result<(), StrategyError> {
        let c = self.config();
        match c.validate() {
            Ok(()) => Ok(()),
            // Kept as its own variant: the gateway answers it with `invalid_budget`.
            Err(e) if e.field == "n" && c.budget() == 0 => Err(StrategyError::InvalidBudget(0)),
            Err(e) => Err(StrategyError::InvalidConfig { strategy: c.name().into(), field: e.field, message: e.message }),
        }
    }

    /// Validates, then builds the strategy (abstaining under `abstain_below` where set).
    pub fn build(&self, sampling: SamplingParams) -> Result<Box<dyn Strategy>, StrategyError> {
        self.validate()?;
        let inner = self.config().build(sampling)?;
        Ok(match self.config().abstain_below() {
            Some(below) => Box::new(super::abstain::Abstaining { inner, below }),
            None => inner,
        })
    }

    /// A spec from JSON (or anything serde reads into a `Value`: TOML too): a shorthand
    /// string or an object. `budget` becomes `n` when the spec leaves it out and the
    /// strategy takes a budget. Validated.
    pub fn from_value(v: Value, budget: Option<usize>) -> Result<StrategySpec, StrategyError> {
        let mut obj = match v {
            Value::String(s) => return Self::parse(&s, budget),
            Value::Object(obj) => obj,
            other => return Err(StrategyError::BadSpec(format!("a strategy is a name or an object, got {other}"))),
        };
        let name = match obj.get("strategy") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(StrategyError::BadSpec(format!("field `strategy` must be a string, got {other}"))),
            None => return Err(StrategyError::BadSpec("missing field `strategy`".into())),
        };
        let default = Self::default_of(&name)?;
        if let Some(b) = budget.filter(|_| default.config().takes_budget()) {
            obj.entry("n").or_insert(Value::from(b));
        }
        let spec: StrategySpec =
            serde_json::from_value(Value::Object(obj)).map_err(|e| StrategyError::BadSpec(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// The CLI shorthand `NAME[@N][{TOML inline table}]`: `sc`, `sc@16`,
    /// `pf@8{resampling = "systematic", step = {max_steps = 20}}`. Without `@N`, `budget`
    /// is `n` (else the type's default). Validated.
    pub fn parse(s: &str, budget: Option<usize>) -> Result<StrategySpec, StrategyError> {
        Self::parse_with(s, budget, &Map::new())
    }

    /// [`parse`](Self::parse), with `defaults` for the fields the shorthand leaves out:
    /// each applies only to strategies that have that field (nested objects merge field
    /// by field). The CLI's search flags and `--policy` arrive this way.
    pub fn parse_with(s: &str, budget: Option<usize>, defaults: &Map<String, Value>) -> Result<StrategySpec, StrategyError> {
        let mut obj = Self::shorthand(s)?;
        if let Some(Value::String(name)) = obj.get("strategy") {
            if let Ok(Value::Object(known)) = serde_json::to_value(Self::default_of(name)?) {
                merge_known(&mut obj, defaults, &known);
            }
        }
        Self::from_value(Value::Object(obj), budget)
    }

    /// The shorthand as the object it stands for (not yet checked).
    fn shorthand(s: &str) -> Result<Map<String, Value>, StrategyError> {
        let s = s.trim();
        let (head, table) = match s.find('{') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let (name, n) = match head.split_once('@') {
            Some((name, n)) => {
                let n: usize = n
                    .trim()
                    .parse()
                    .map_err(|_| StrategyError::BadSpec(format!("the budget after @ must be a whole number, got {n:?}")))?;
                (name.trim(), Some(n))
            }
            None => (head.trim(), None),
        };
        let mut obj = match table {
            Some(t) => {
                let parsed: toml::Table = toml::from_str(&format!("x = {t}"))
                    .map_err(|e| StrategyError::BadSpec(format!("parameters {t} are not a TOML inline table: {}", e.message())))?;
                match parsed.get("x").map(serde_json::to_value) {
                    Some(Ok(Value::Object(o))) => o,
                    _ => return Err(StrategyError::BadSpec(format!("parameters {t} are not a TOML inline table"))),
                }
            }
            None => Map::new(),
        };
        obj.insert("strategy".into(), Value::String(name.into()));
        if let Some(n) = n {
            obj.insert("n".into(), Value::from(n));
        }
        Ok(obj)
    }

    /// Splits a comma-separated list of shorthands, leaving commas inside `{...}` and
    /// quotes alone (`--strategy 'sc,pf@8{resampling = "systematic", step = {max_steps = 9}}'`).
    pub fn split_list(s: &str) -> Vec<&str> {
        let (mut out, mut depth, mut quote, mut start) = (Vec::new(), 0usize, None::<char>, 0);
        for (i, ch) in s.char_indices() {
            match (quote, ch) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(ch),
                (None, '{') => depth += 1,
                (None, '}') => depth = depth.saturating_sub(1),
                (None, ',') if depth == 0 => {
                    out.push(s[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(s[start..].trim());
        out
    }

    /// The fields that differ from the strategy's defaults, `n` apart.
    fn changed(&self) -> Map<String, Value> {
        let (Ok(Value::Object(mine)), Ok(default)) = (serde_json::to_value(self), Self::default_of(self.name())) else {
            return Map::new();
        };
        let Ok(Value::Object(base)) = serde_json::to_value(default) else { return Map::new() };
        let mut changed = diff(mine, &base, &["strategy", "n"]);
        // A nested spec prints whole, as its own shorthand (a partial diff would lose its name).
        if let (Some(base), Some(b)) = (self.config().base(), changed.get_mut("base")) {
            *b = Value::String(base.to_string());
        }
        changed
    }

    /// The shorthand without `@N` (what a run's table and store key a configuration by,
    /// beside its budget). `auto` is just `auto`: a run holds one policy.
    pub fn label(&self) -> String {
        let changed = self.changed();
        if changed.is_empty() || matches!(self, Self::Auto(_)) {
            return self.name().to_string();
        }
        format!("{}{}", self.name(), inline_table(changed))
    }

    /// JSON with every field, defaults included (`ponder strategies --json`).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Adds to `obj` the fields of `defaults` that `known` has and `obj` lacks, recursing
/// into objects.
fn merge_known(obj: &mut Map<String, Value>, defaults: &Map<String, Value>, known: &Map<String, Value>) {
    for (k, v) in defaults {
        match (known.get(k), v) {
            (Some(Value::Object(known_sub)), Value::Object(sub)) => {
                let entry = obj.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(target) = entry {
                    merge_known(target, sub, known_sub);
                }
            }
            (Some(_), v) => {
                obj.entry(k.clone()).or_insert_with(|| v.clone());
            }
            (None, _) => {}
        }
    }
}

/// Fields of `mine` not equal in `base` (recursing into objects), except `skip`.
fn diff(mine: Map<String, Value>, base: &Map<String, Value>, skip: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in mine {
        if skip.contains(&k.as_str()) {
            continue;
        }
        match (v, base.get(&k)) {
            (Value::Object(m), Some(Value::Object(b))) => {
                let d = diff(m, b, &[]);
                if !d.is_empty() {
                    out.insert(k, Value::Object(d));
                }
            }
            (v, Some(b)) if &v == b => {}
            (v, _) => {
                out.insert(k, v);
            }
        }
    }
    out
}

/// A TOML inline table: `{ resampling = "systematic" }`.
fn inline_table(fields: Map<String, Value>) -> String {
    match toml::Value::try_from(Value::Object(fields)) {
        Ok(v) => v.to_string(),
        Err(e) => format!("{{ unprintable = {:?} }}", e.to_string()),
    }
}

/// The canonical shorthand: `NAME[@N][{changed fields}]`; `FromStr` reads it back.
impl fmt::Display for StrategySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.config();
        let n_of = |s: &StrategySpec| serde_json::to_value(s).ok().and_then(|v| v.get("n").and_then(Value::as_u64));
        let default_n = Self::default_of(c.name()).ok().and_then(|d| n_of(&d));
        f.write_str(c.name())?;
        // `@N` is the `n` field (a layered spec's budget also counts its base's).
        if let Some(n) = n_of(self) {
            if c.takes_budget() || Some(n) != default_n {
                write!(f, "@{n}")?;
            }
        }
        let changed = self.changed();
        if !changed.is_empty() {
            f.write_str(&inline_table(changed))?;
        }
        Ok(())
    }
}

/// The shorthand with the type's default budget for a plain name.
impl FromStr for StrategySpec {
    type Err = StrategyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, None)
    }
}

/// serde's list of [`StrategySpec`]'s variants: deserialising an unknown tag with an error
/// type that keeps the `expected` list serde passes to `unknown_variant`.
fn variant_names() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Expected(&'static [&'static str]);
    impl fmt::Display for Expected {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Expected {}
    impl serde::de::Error for Expected {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Expected(&[])
        }
        fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
            Expected(expected)
        }
    }
    let probe = MapDeserializer::<_, Expected>::new([("strategy", "\u{0}")].into_iter());
    match StrategySpec::deserialize(probe) {
        Err(Expected(names)) => names,
        Ok(_) => &[],
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
