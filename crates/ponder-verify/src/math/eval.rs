//! Values of answer trees: exact rationals where the arithmetic stays rational and small,
//! floating point at sample points otherwise.
//!
//! Exact arithmetic is capped at [`MAX_BITS`] per numerator and denominator, and a power's
//! size is estimated before it is computed, so `10^{10^{10}}` is declined in O(1) instead
//! of allocating. Every node visited costs one unit of the check's [`Budget`].

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::limits::MAX_BITS;
use super::parse::{Const, Func, Node};

/// Work left for one check.
#[derive(Debug)]
pub(crate) struct Budget {
    left: u64,
}

/// The check ran out of work units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exhausted;

impl Budget {
    pub(crate) fn new(steps: u64) -> Budget {
        Budget { left: steps }
    }

    pub(crate) fn spend(&mut self, n: u64) -> Result<(), Exhausted> {
        self.left = self.left.checked_sub(n).ok_or(Exhausted)?;
        Ok(())
    }
}

/// The exact rational value of a variable-free node, if its arithmetic stays rational and
/// within [`MAX_BITS`].
pub(crate) fn exact(node: &Node, b: &mut Budget) -> Result<Option<BigRational>, Exhausted> {
    b.spend(1)?;
    let v = match node {
        Node::Num(n) => Some(n.value.clone()),
        Node::Neg(x) => exact(x, b)?.map(|v| -v),
        Node::Add(items) => {
            let mut acc = BigRational::zero();
            for item in items {
                let Some(v) = exact(item, b)? else { return Ok(None) };
                acc += v;
                if too_big(&acc) {
                    return Ok(None);
                }
            }
            Some(acc)
        }
        Node::Mul(items) => {
            let mut acc = BigRational::one();
            for item in items {
                let Some(v) = exact(item, b)? else { return Ok(None) };
                acc *= v;
                if too_big(&acc) {
                    return Ok(None);
                }
            }
            Some(acc)
        }
        Node::Div(n, d) => {
            let (Some(n), Some(d)) = (exact(n, b)?, exact(d, b)?) else { return Ok(None) };
            if d.is_zero() {
                None
            } else {
                Some(n / d)
            }
        }
        Node::Pow(base, e) => {
            let (Some(base), Some(e)) = (exact(base, b)?, exact(e, b)?) else { return Ok(None) };
            pow(&base, &e)
        }
        Node::Func(Func::Sqrt, args) if args.len() == 1 => match exact(&args[0], b)? {
            Some(x) => root(&x, 2),
            None => None,
        },
        Node::Root(index, x) => {
            let (Some(n), Some(x)) = (exact(index, b)?, exact(x, b)?) else { return Ok(None) };
            match small_int(&n) {
                Some(n) if (2..=64).contains(&n) => root(&x, n as u32),
                _ => None,
            }
        }
        Node::Func(Func::Abs, args) if args.len() == 1 => exact(&args[0], b)?.map(|v| v.abs()),
        Node::Func(Func::Floor, args) if args.len() == 1 => exact(&args[0], b)?.map(|v| v.floor()),
        Node::Func(Func::Ceil, args) if args.len() == 1 => exact(&args[0], b)?.map(|v| v.ceil()),
        Node::Func(f @ (Func::Min | Func::Max), args) if !args.is_empty() => {
            let mut best: Option<BigRational> = None;
            for a in args {
                let Some(v) = exact(a, b)? else { return Ok(None) };
                best = Some(match best {
                    None => v,
                    Some(cur) if (*f == Func::Min) == (v < cur) => v,
                    Some(cur) => cur,
                });
            }
            best
        }
        Node::Func(f @ (Func::Gcd | Func::Lcm), args) if !args.is_empty() => {
            let mut acc: Option<BigInt> = None;
            for a in args {
                let Some(v) = exact(a, b)? else { return Ok(None) };
                if !v.is_integer() {
                    return Ok(None);
                }
                let v = v.to_integer();
                b.spend(64)?;
                acc = Some(match acc {
                    None => v.abs(),
                    Some(cur) if *f == Func::Gcd => gcd(cur, v.abs()),
                    Some(cur) => {
                        let g = gcd(cur.clone(), v.abs());
                        if g.is_zero() {
                            g
                        } else {
                            cur * v.abs() / g
                        }
                    }
                });
            }
            acc.map(BigRational::from_integer)
        }
        Node::Factorial(x) => match exact(x, b)?.as_ref().and_then(small_int) {
            Some(n) if (0..=300).contains(&n) => {
                b.spend(n as u64)?;
                let mut acc = BigInt::one();
                for k in 2..=n {
                    acc *= k;
                }
                Some(BigRational::from_integer(acc))
            }
            _ => None,
        },
        Node::Binom(n, k) => {
            let (Some(n), Some(k)) = (exact(n, b)?, exact(k, b)?) else { return Ok(None) };
            match (small_int(&n), small_int(&k)) {
                (Some(n), Some(k)) if (0..=100_000).contains(&n) && (0..=1000).contains(&k) => {
                    if k > n {
                        Some(BigRational::zero())
                    } else {
                        b.spend(k as u64)?;
                        let mut acc = BigInt::one();
                        for j in 0..k {
                            acc = acc * (n - j) / (j + 1);
                        }
                        Some(BigRational::from_integer(acc))
                    }
                }
                _ => None,
            }
        }
        Node::Percent(x) => exact(x, b)?.map(|v| v / BigRational::from_integer(100.into())),
        _ => None,
    };
    Ok(v.filter(|v| !too_big(v)))
}

fn is_even(x: &BigInt) -> bool {
    (x % 2u32).is_zero()
}

fn gcd(mut a: BigInt, mut b: BigInt) -> BigInt {
    // Euclid on values of at most MAX_BITS bits: at most ~6000 iterations.
    while !b.is_zero() {
        let r = &a % &b;
        a = b;
        b = r;
    }
    a
}

fn too_big(v: &BigRational) -> bool {
    v.numer().bits() > MAX_BITS || v.denom().bits() > MAX_BITS
}

fn small_int(v: &BigRational) -> Option<i64> {
    if v.is_integer() {
        v.to_integer().to_i64()
    } else {
        None
    }
}

/// `base^e` when the result is rational and small: integer exponents whose result size is
/// estimated first, and `p/q` exponents of perfect `q`-th powers.
fn pow(base: &BigRational, e: &BigRational) -> Option<BigRational> {
    if base.is_zero() {
        return if e.is_positive() { Some(BigRational::zero()) } else { None };
    }
    if base.is_one() {
        return Some(BigRational::one());
    }
    if e.is_zero() {
        return Some(BigRational::one());
    }
    let (p, q) = (e.numer(), e.denom());
    let q = q.to_u32().filter(|q| *q <= 64)?;
    let base = if q == 1 { base.clone() } else { root(base, q)? };
    if base.abs().is_one() {
        let p_even = is_even(p);
        return Some(if base.is_negative() && !p_even { -BigRational::one() } else { BigRational::one() });
    }
    let p = p.to_i64()?;
    let bits = base.numer().bits().max(base.denom().bits());
    if bits.checked_mul(p.unsigned_abs())? > MAX_BITS {
        return None;
    }
    // Cannot truncate: |p| * bits <= MAX_BITS, so |p| fits in u32.
    let mag = p.unsigned_abs() as u32;
    let r = BigRational::new(base.numer().pow(mag), base.denom().pow(mag));
    Some(if p < 0 { r.recip() } else { r })
}

/// The exact `n`-th root of a rational, if it is rational (odd roots of negatives too).
fn root(x: &BigRational, n: u32) -> Option<BigRational> {
    if x.is_negative() {
        return if n % 2 == 1 { root(&-x, n).map(|r| -r) } else { None };
    }
    let num = int_root(x.numer(), n)?;
    let den = int_root(x.denom(), n)?;
    Some(BigRational::new(num, den))
}

fn int_root(x: &BigInt, n: u32) -> Option<BigInt> {
    let r = x.nth_root(n);
    (r.pow(n) == *x).then_some(r)
}

/// A rational as the nearest `f64` (also for numbers beyond `f64`'s integer range).
pub(crate) fn to_f64(v: &BigRational) -> f64 {
    if let (Some(n), Some(d)) = (v.numer().to_f64(), v.denom().to_f64()) {
        if n.is_finite() && d.is_finite() {
            return n / d;
        }
    }
    // Scale both to at most 1000 bits so each converts, then divide.
    let shift = |x: &BigInt| x.bits().saturating_sub(1000);
    let (sn, sd) = (shift(v.numer()), shift(v.denom()));
    let n = (v.numer() >> sn).to_f64().unwrap_or(f64::NAN);
    let d = (v.denom() >> sd).to_f64().unwrap_or(f64::NAN);
    let e = sn as f64 - sd as f64;
    (n / d) * 2f64.powf(e)
}

/// Values of the free variables at one sample point.
pub(crate) type Env<'a> = &'a [(String, f64)];

/// The floating-point value of `node` with variables from `env` (NaN where undefined).
pub(crate) fn numeric(node: &Node, env: Env, b: &mut Budget) -> Result<f64, Exhausted> {
    b.spend(1)?;
    Ok(match node {
        Node::Num(n) => to_f64(&n.value),
        Node::Const(Const::Pi) => std::f64::consts::PI,
        Node::Const(Const::E) => std::f64::consts::E,
        Node::Const(Const::Inf) => f64::INFINITY,
        Node::Var(name) => env.iter().find(|(n, _)| n == name).map_or(f64::NAN, |(_, v)| *v),
        Node::Neg(x) => -numeric(x, env, b)?,
        Node::Add(items) => {
            let mut acc = 0.0;
            for item in items {
                acc += numeric(item, env, b)?;
            }
            acc
        }
        Node::Mul(items) => {
            let mut acc = 1.0;
            for item in items {
                acc *= numeric(item, env, b)?;
            }
            acc
        }
        Node::Div(n, d) => numeric(n, env, b)? / numeric(d, env, b)?,
        Node::Pow(base, e) => {
            let x = numeric(base, env, b)?;
            let y = numeric(e, env, b)?;
            if x < 0.0 && y.fract() != 0.0 {
                // A real odd root of a negative base: `(-8)^{1/3}` is -2.
                match exact(e, b)? {
                    Some(r) if !is_even(r.denom()) => {
                        let m = (-x).powf(y);
                        if !is_even(r.numer()) {
                            -m
                        } else {
                            m
                        }
                    }
                    _ => f64::NAN,
                }
            } else if x == 0.0 && y == 0.0 {
                // `0^0` is undefined, not 1 (issue 17).
                f64::NAN
            } else {
                x.powf(y)
            }
        }
        Node::Root(index, x) => {
            let n = numeric(index, env, b)?;
            let x = numeric(x, env, b)?;
            if x < 0.0 && n.fract() == 0.0 && (n as i64) % 2 != 0 {
                -(-x).powf(1.0 / n)
            } else {
                x.powf(1.0 / n)
            }
        }
        Node::Log(base, x) => numeric(x, env, b)?.ln() / numeric(base, env, b)?.ln(),
        Node::Func(f, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(numeric(a, env, b)?);
            }
            apply(*f, &vals)
        }
        Node::Factorial(x) => {
            let n = numeric(x, env, b)?;
            if n.fract() == 0.0 && (0.0..=170.0).contains(&n) {
                (2..=n as u32).map(f64::from).product()
            } else {
                f64::NAN
            }
        }
        Node::Binom(n, k) => {
            let n = numeric(n, env, b)?;
            let k = numeric(k, env, b)?;
            if k.fract() == 0.0 && (0.0..=1000.0).contains(&k) {
                (0..k as u32).map(|j| (n - f64::from(j)) / f64::from(j + 1)).product()
            } else {
                f64::NAN
            }
        }
        Node::Percent(x) => numeric(x, env, b)? / 100.0,
        _ => f64::NAN,
    })
}

fn apply(f: Func, v: &[f64]) -> f64 {
    let x = v.first().copied().unwrap_or(f64::NAN);
    match f {
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Sec => 1.0 / x.cos(),
        Func::Csc => 1.0 / x.sin(),
        Func::Cot => 1.0 / x.tan(),
        Func::Asin => x.asin(),
        Func::Acos => x.acos(),
        Func::Atan => x.atan(),
        Func::Sinh => x.sinh(),
        Func::Cosh => x.cosh(),
        Func::Tanh => x.tanh(),
        Func::Ln => x.ln(),
        Func::Log10 => x.log10(),
        Func::Exp => x.exp(),
        Func::Sqrt => x.sqrt(),
        Func::Abs => x.abs(),
        Func::Floor => x.floor(),
        Func::Ceil => x.ceil(),
        Func::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
        Func::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Func::Gcd | Func::Lcm | Func::Det => f64::NAN,
    }
}

/// Free variables of `node`, in first-seen order.
pub(crate) fn free_vars(node: &Node, out: &mut Vec<String>) {
    let mut visit = |n: &Node| free_vars(n, out);
    match node {
        Node::Var(name) => {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        Node::Num(_) | Node::Const(_) | Node::Text(_) => {}
        Node::Neg(x) | Node::PlusMinus(x) | Node::Factorial(x) | Node::Percent(x) => visit(x),
        Node::Div(a, c) | Node::Pow(a, c) | Node::Log(a, c) | Node::Root(a, c) | Node::Binom(a, c) => {
            visit(a);
            visit(c);
        }
        Node::Add(items)
        | Node::Mul(items)
        | Node::Func(_, items)
        | Node::Set(items)
        | Node::Union(items)
        | Node::SetOp(_, items)
        | Node::Ratio(items)
        | Node::Group { items, .. }
        | Node::List { items, .. } => items.iter().for_each(visit),
        Node::Relation { parts, .. } => parts.iter().for_each(visit),
        Node::Matrix(rows) => rows.iter().flatten().for_each(visit),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{lex::lex, parse::parse};
    use super::*;

    fn node(s: &str) -> Node {
        parse(lex(s).unwrap()).unwrap()
    }

    fn ex(s: &str) -> Option<String> {
        exact(&node(s), &mut Budget::new(1_000_000)).unwrap().map(|v| v.to_string())
    }

    #[test]
    fn exact_values() {
        assert_eq!(ex("\\frac{1}{2}+\\frac13").as_deref(), Some("5/6"));
        assert_eq!(ex("2^{10}").as_deref(), Some("1024"));
        assert_eq!(ex("8^{2/3}").as_deref(), Some("4"));
        assert_eq!(ex("\\sqrt{\\frac{9}{4}}").as_deref(), Some("3/2"));
        assert_eq!(ex("5!").as_deref(), Some("120"));
        assert_eq!(ex("\\binom{5}{2}").as_deref(), Some("10"));
        assert_eq!(ex("\\sqrt{2}"), None);
        assert_eq!(ex("10^{10^{10}}"), None);
        assert_eq!(ex("1^{10^{10}}").as_deref(), Some("1"));
        assert_eq!(ex("(-8)^{1/3}").as_deref(), Some("-2"));
    }

    #[test]
    fn numeric_values() {
        let mut b = Budget::new(1_000_000);
        let v = numeric(&node("\\sin^2 x + \\cos^2 x"), &[("x".into(), 0.7)], &mut b).unwrap();
        assert!((v - 1.0).abs() < 1e-12);
        let v = numeric(&node("\\sqrt[3]{-8}"), &[], &mut b).unwrap();
        assert!((v + 2.0).abs() < 1e-12);
    }
}
