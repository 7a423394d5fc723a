//! Equivalence of two parsed answers, gold first.
//!
//! Order of decisions: text answers; `±` expanded into alternatives; chained equalities
//! reduced to their last value; equations, assignments (`x = 3`), membership
//! (`x \in [1,2]`) and inequalities; collections (lists and sets unordered, tuples and
//! intervals ordered with matching brackets, matrices cell by cell); scalars (exact
//! rationals, else floating point at seeded random points).
//!
//! Asymmetries (gold vs pred):
//! - an inequality gold (`x > 2`) accepts an interval pred (`(2, \infty)`), but an interval
//!   gold rejects an inequality pred unless [`GraderOptions::interval_accepts_inequality`]:
//!   a question that asks for interval notation wants it;
//! - a percent on one side only (`50\%` vs `0.5` or `50`) matches either reading;
//! - a decimal gold accepts an exact pred it rounds; a decimal pred does not answer an
//!   exact gold unless [`GraderOptions::rounded_pred_decimals`].

use num_rational::BigRational;
use num_traits::{Signed, Zero};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::eval::{exact, free_vars, numeric, to_f64, Budget, Exhausted};
use super::lex::RelOp;
use super::limits::MAX_ITEMS;
use super::parse::{Const, Func, Node, Num};
use super::render::text;
use super::rewrite::{expand_pm, has_pm, is_scalar, matrix_value, name_like, reduce_chain, unwrap};
use super::{GraderOptions, Reason};

mod relations;
use relations::{is_relation, relations};
pub(crate) use relations::is_assignment;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub equal: bool,
    pub reason: Reason,
}

impl Outcome {
    fn yes(reason: Reason) -> Outcome {
        Outcome { equal: true, reason }
    }

    fn no(reason: Reason) -> Outcome {
        Outcome { equal: false, reason }
    }
}

type R = Result<Outcome, Exhausted>;

/// Sample points: one assignment of a value to each variable per point.
type Points = Vec<Vec<(String, f64)>>;

pub(crate) struct Ctx<'o> {
    pub opts: &'o GraderOptions,
    pub budget: Budget,
    /// Sample points already drawn, by variable list (the same few lists recur across
    /// the items of a list).
    points: Vec<(Vec<String>, Points)>,
}

impl<'o> Ctx<'o> {
    pub(crate) fn new(opts: &'o GraderOptions) -> Ctx<'o> {
        Ctx { opts, budget: Budget::new(opts.max_steps), points: Vec::new() }
    }

    /// Seeded sample points for `vars` (drawn once per list of names and check).
    fn sample_points(&mut self, vars: &[String]) -> Result<Points, Exhausted> {
        // Setting up a numeric comparison costs work too, found or not.
        self.budget.spend(8 + 2 * vars.len() as u64)?;
        if let Some((_, pts)) = self.points.iter().find(|(v, _)| v == vars) {
            return Ok(pts.clone());
        }
        let pts = sample_points(self.opts, vars);
        if self.points.len() < 32 {
            self.points.push((vars.to_vec(), pts.clone()));
        }
        Ok(pts)
    }
}

/// Whether `pred` answers what `gold` asks.
pub(crate) fn answers(cx: &mut Ctx, gold: &Node, pred: &Node) -> R {
    cx.budget.spend(1)?;
    let g = unwrap(gold);
    let p = unwrap(pred);
    if let (Node::Text(a), Node::Text(b)) = (g, p) {
        return Ok(if a == b { Outcome::yes(Reason::SameText) } else { Outcome::no(Reason::Different) });
    }
    if matches!(g, Node::Text(_)) || matches!(p, Node::Text(_)) {
        return Ok(Outcome::no(Reason::ShapeMismatch));
    }
    if has_pm(g) || has_pm(p) {
        let gs = alternatives(g);
        let ps = alternatives(p);
        if gs.len() > 1 || ps.len() > 1 {
            return unordered(cx, &gs, &ps);
        }
    }
    let g = reduce_chain(g);
    let p = reduce_chain(p);
    if is_relation(g) || is_relation(p) {
        return relations(cx, g, p);
    }
    let g = matrix_value(g).map_or_else(|| std::borrow::Cow::Borrowed(g), std::borrow::Cow::Owned);
    let p = matrix_value(p).map_or_else(|| std::borrow::Cow::Borrowed(p), std::borrow::Cow::Owned);
    collections(cx, &g, &p)
}

/// Lists, sets, tuples, intervals, unions, matrices; else scalars.
fn collections(cx: &mut Ctx, g: &Node, p: &Node) -> R {
    use Node::{Group, List, Matrix, Set, Union};
    match (g, p) {
        (List { items: a, .. } | Set(a), List { items: b, .. } | Set(b)) => unordered(cx, a, b),
        (Union(a), Union(b)) => unordered(cx, a, b),
        (Group { open: o1, close: c1, items: a }, Group { open: o2, close: c2, items: b }) => {
            if o1 != o2 || c1 != c2 {
                return Ok(Outcome::no(Reason::ShapeMismatch));
            }
            ordered(cx, a, b)
        }
        // A tuple against a list or set compares in written order (so `(1, 3)` matches
        // `\{1, 3\}` and `(3, 1)` does not).
        (Group { items: a, .. }, List { items: b, alt: None } | Set(b))
        | (List { items: a, alt: None } | Set(a), Group { items: b, .. }) => ordered(cx, a, b),
        (Matrix(a), Matrix(b)) => {
            if a.len() != b.len() || a.first().map(Vec::len) != b.first().map(Vec::len) {
                return Ok(Outcome::no(Reason::ShapeMismatch));
            }
            let a: Vec<&Node> = a.iter().flatten().collect();
            let b: Vec<&Node> = b.iter().flatten().collect();
            ordered_refs(cx, &a, &b)
        }
        // A column or row vector against a tuple.
        (Matrix(m), Group { open: '(', items, .. }) | (Group { open: '(', items, .. }, Matrix(m))
            if m.len() == 1 || m.iter().all(|r| r.len() == 1) =>
        {
            let flat: Vec<&Node> = m.iter().flatten().collect();
            let items: Vec<&Node> = items.iter().collect();
            if matches!(g, Matrix(_)) {
                ordered_refs(cx, &flat, &items)
            } else {
                ordered_refs(cx, &items, &flat)
            }
        }
        (List { alt: Some(alt), .. }, other) if is_scalar(other) => scalar(cx, &Node::Num(alt.clone()), other),
        (other, List { alt: Some(alt), .. }) if is_scalar(other) => scalar(cx, other, &Node::Num(alt.clone())),
        // The same value written several ways (`\boxed{15\frac{39}{40}}, or \boxed{\frac{639}{40}}`).
        (List { items, .. } | Set(items), other) | (other, List { items, .. } | Set(items))
            if is_scalar(other) && !items.is_empty() && items.len() <= 4 =>
        {
            let mut reason = Reason::SameText;
            for item in items {
                let o = if matches!(g, List { .. } | Set(_)) {
                    answers(cx, item, other)?
                } else {
                    answers(cx, other, item)?
                };
                if !o.equal {
                    return Ok(Outcome::no(Reason::ShapeMismatch));
                }
                reason = weaker(reason, o.reason);
            }
            Ok(Outcome::yes(reason))
        }
        _ if is_scalar(g) && is_scalar(p) => scalar(cx, g, p),
        _ => {
            if text(g) == text(p) {
                Ok(Outcome::yes(Reason::SameText))
            } else {
                Ok(Outcome::no(Reason::ShapeMismatch))
            }
        }
    }
}

fn ordered(cx: &mut Ctx, a: &[Node], b: &[Node]) -> R {
    let a: Vec<&Node> = a.iter().collect();
    let b: Vec<&Node> = b.iter().collect();
    ordered_refs(cx, &a, &b)
}

fn ordered_refs(cx: &mut Ctx, a: &[&Node], b: &[&Node]) -> R {
    if a.len() != b.len() {
        return Ok(Outcome::no(Reason::ShapeMismatch));
    }
    let mut reason = Reason::SameText;
    for (x, y) in a.iter().zip(b) {
        let o = answers(cx, x, y)?;
        if !o.equal {
            return Ok(o);
        }
        reason = weaker(reason, o.reason);
    }
    Ok(Outcome::yes(reason))
}

/// Multiset equality: each gold item matched to a distinct pred item (greedy, in order;
/// `±` items count as their two values).
fn unordered(cx: &mut Ctx, a: &[Node], b: &[Node]) -> R {
    let a = expand_items(a);
    let b = expand_items(b);
    if a.len() != b.len() {
        return Ok(Outcome::no(Reason::ShapeMismatch));
    }
    if a.len() > MAX_ITEMS {
        return Ok(Outcome::no(Reason::TooLarge));
    }
    let mut used = vec![false; b.len()];
    let mut reason = Reason::SameText;
    'gold: for x in &a {
        let mut first_miss = None;
        for (j, y) in b.iter().enumerate() {
            if used[j] {
                continue;
            }
            let o = answers(cx, x, y)?;
            if o.equal {
                used[j] = true;
                reason = weaker(reason, o.reason);
                continue 'gold;
            }
            first_miss.get_or_insert(o);
        }
        return Ok(first_miss.map_or(Outcome::no(Reason::ShapeMismatch), |o| Outcome::no(o.reason)));
    }
    Ok(Outcome::yes(reason))
}

/// The values an answer stands for: a list's items, or the sign choices of a `±`.
fn alternatives(n: &Node) -> Vec<Node> {
    match n {
        Node::List { items, .. } | Node::Set(items) => expand_items(items),
        other => expand_pm(other),
    }
}

/// Items with `±` expanded and written duplicates dropped: answer lists are read as sets
/// (`(3,17,3,7)` listed twice is one solution).
fn expand_items(items: &[Node]) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        let item = unwrap(item);
        let variants = if has_pm(item) { expand_pm(item) } else { vec![item.clone()] };
        for v in variants {
            let t = text(&v);
            if !seen.contains(&t) {
                seen.push(t);
                out.push(v);
            }
        }
        if out.len() > MAX_ITEMS {
            break;
        }
    }
    out
}

/// The least certain of two reasons for "equal": numeric beats rounded beats exact.
fn weaker(a: Reason, b: Reason) -> Reason {
    let rank = |r: Reason| match r {
        Reason::SameText => 0,
        Reason::Exact => 1,
        Reason::Numeric => 2,
        Reason::Rounded => 3,
        _ => 4,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Two single values.
fn scalar(cx: &mut Ctx, g: &Node, p: &Node) -> R {
    match (g, p) {
        (Node::Percent(x), Node::Percent(y)) => return scalar(cx, x, y),
        (Node::Percent(x), other) | (other, Node::Percent(x)) if !matches!(other, Node::Percent(_)) => {
            // `50\%` against `50` or `0.5`: either reading.
            let gold_is_pct = matches!(g, Node::Percent(_));
            let o = if gold_is_pct { scalar(cx, x, other)? } else { scalar(cx, other, x)? };
            if o.equal {
                return Ok(o);
            }
            if !cx.opts.percent_matches_fraction {
                return Ok(o);
            }
            let frac = Node::Div(x.clone(), Box::new(Node::Num(int(100))));
            return if gold_is_pct { scalar(cx, &frac, other) } else { scalar(cx, other, &frac) };
        }
        (Node::Ratio(a), Node::Ratio(b)) if a.len() == 2 && b.len() == 2 && nonzero(cx, a)? && nonzero(cx, b)? => {
            // `2:4` and `1:2` are the same ratio: a·d = b·c.
            let lhs = Node::Mul(vec![a[0].clone(), b[1].clone()]);
            let rhs = Node::Mul(vec![a[1].clone(), b[0].clone()]);
            let o = value(cx, &lhs, &rhs)?;
            if o.equal {
                return Ok(o);
            }
            return ordered(cx, a, b);
        }
        (Node::Ratio(a), Node::Ratio(b)) => return ordered(cx, a, b),
        (Node::Ratio(_), _) | (_, Node::Ratio(_)) => return Ok(Outcome::no(Reason::ShapeMismatch)),
        _ => {}
    }
    value(cx, g, p)
}

/// Every part is an exact non-zero number (`12:00` is a time, not a ratio).
fn nonzero(cx: &mut Ctx, parts: &[Node]) -> Result<bool, Exhausted> {
    for part in parts {
        match exact(part, &mut cx.budget)? {
            Some(v) if !v.is_zero() => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

fn int(n: i64) -> Num {
    Num { value: BigRational::from_integer(n.into()), decimals: 0, is_decimal: false, int_digits: 0 }
}

/// Equality of values: exact when both are rational, else numeric.
fn value(cx: &mut Ctx, g: &Node, p: &Node) -> R {
    cx.budget.spend(4)?;
    let mut vars = Vec::new();
    free_vars(g, &mut vars);
    free_vars(p, &mut vars);
    if vars.is_empty() {
        let a = exact(g, &mut cx.budget)?;
        let b = exact(p, &mut cx.budget)?;
        if let (Some(a), Some(b)) = (&a, &b) {
            if a == b {
                return Ok(Outcome::yes(Reason::Exact));
            }
            if let Some(k) = rounding_places(cx.opts, g, p) {
                // |a - b| <= 1/2 * 10^-k, exactly.
                let half_ulp = BigRational::new(1.into(), num_bigint::BigInt::from(10u32).pow(k) * 2);
                if (a - b).abs() <= half_ulp {
                    return Ok(Outcome::yes(Reason::Rounded));
                }
            }
            // A decimal of six or more places within the tolerance (`0.0833333333333333`
            // for `\frac{1}{12}`) is that value written to precision; a shorter one is a
            // rounding (`0.33`), and integers and fractions must match exactly.
            let tol = BigRational::from_float(cx.opts.rel_tol).unwrap_or_else(BigRational::zero);
            if decimal_places(g).max(decimal_places(p)) >= 6 && (a - b).abs() <= tol * a.abs().max(b.abs()) {
                return Ok(Outcome::yes(Reason::Numeric));
            }
            return Ok(Outcome::no(Reason::Different));
        }
        let x = match a {
            Some(v) => to_f64(&v),
            None => numeric(g, &[], &mut cx.budget)?,
        };
        let y = match b {
            Some(v) => to_f64(&v),
            None => numeric(p, &[], &mut cx.budget)?,
        };
        if is_infinity(g) && is_infinity(p) {
            return Ok(if x == y { Outcome::yes(Reason::Exact) } else { Outcome::no(Reason::Different) });
        }
        if !x.is_finite() || !y.is_finite() {
            return Ok(Outcome::no(Reason::Undecided));
        }
        if close(x, y, cx.opts.rel_tol) {
            return Ok(Outcome::yes(Reason::Numeric));
        }
        if let Some(k) = rounding_places(cx.opts, g, p) {
            if (x - y).abs() <= 0.5 * 10f64.powi(k as i32).recip() * (1.0 + 1e-9) {
                return Ok(Outcome::yes(Reason::Rounded));
            }
        }
        return Ok(Outcome::no(Reason::Different));
    }
    if vars.len() > 16 {
        return Ok(Outcome::no(Reason::TooLarge));
    }
    let mut valid = 0;
    for env in cx.sample_points(&vars)? {
        let x = numeric(g, &env, &mut cx.budget)?;
        let y = numeric(p, &env, &mut cx.budget)?;
        if !x.is_finite() || !y.is_finite() {
            continue;
        }
        if !close(x, y, cx.opts.rel_tol) {
            return Ok(Outcome::no(Reason::Different));
        }
        valid += 1;
    }
    Ok(if valid >= 2 { Outcome::yes(Reason::Numeric) } else { Outcome::no(Reason::Undecided) })
}

/// `\infty`, `+\infty`, `-\infty` (an overflow to infinity is not one).
fn is_infinity(n: &Node) -> bool {
    match n {
        Node::Const(Const::Inf) => true,
        Node::Neg(x) => is_infinity(x),
        _ => false,
    }
}

/// The places of a decimal literal, possibly negated; 0 for anything else.
fn decimal_places(n: &Node) -> u32 {
    match n {
        Node::Num(x) if x.is_decimal => x.decimals,
        Node::Neg(inner) => decimal_places(inner),
        _ => 0,
    }
}

/// Decimal places `k` when exactly one side is a decimal literal with enough places
/// (`min_rounded_decimals` for the gold, `rounded_pred_decimals` for the pred): that side
/// may be the other rounded to `k` places.
fn rounding_places(opts: &GraderOptions, g: &Node, p: &Node) -> Option<u32> {
    let places = |n: &Node| match n {
        Node::Num(x) if x.is_decimal => Some(x.decimals),
        Node::Neg(inner) => match inner.as_ref() {
            Node::Num(x) if x.is_decimal => Some(x.decimals),
            _ => None,
        },
        _ => None,
    };
    let enough = |k: u32, min: Option<u32>| min.is_some_and(|m| k >= m) && k <= 40;
    match (places(g), places(p)) {
        (Some(k), None) if enough(k, opts.min_rounded_decimals) => Some(k),
        (None, Some(k)) if enough(k, opts.rounded_pred_decimals) => Some(k),
        _ => None,
    }
}

pub(crate) fn close(a: f64, b: f64, rel_tol: f64) -> bool {
    (a - b).abs() <= rel_tol * a.abs().max(b.abs()) + 1e-12
}

/// Seeded sample points: positive values in [0.3, 3) for most, negative ones for some, so
/// `|x|` and `x` differ while `\sqrt{x}` stays defined at most points.
fn sample_points(opts: &GraderOptions, vars: &[String]) -> Points {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    (0..opts.n_points.max(2))
        .map(|k| {
            vars.iter()
                .map(|v| {
                    let mag = rng.gen_range(0.3..3.0);
                    let x = if k % 3 == 2 { -mag } else { mag };
                    (v.clone(), x)
                })
                .collect()
        })
        .collect()
}
