//! Canonical text of answer trees (for names, duplicates and messages) and voting keys.

use num_traits::Zero;

use super::compare::{is_assignment, Ctx};
use super::eval::{exact, free_vars, numeric, Exhausted};
use super::lex::RelOp;
use super::limits::MAX_ITEMS;
use super::parse::{number_text, Const, Node};
use super::rewrite::{expand_pm, has_pm, is_scalar, name_like, reduce_chain, unwrap};

/// A canonical rendering of a node: for names (`f(x)` vs `f(x)`), keys and messages.
/// Capped at 4 kB.
pub(crate) fn text(n: &Node) -> String {
    let mut out = String::new();
    write(n, &mut out);
    out
}

fn write(n: &Node, out: &mut String) {
    if out.len() > 4096 {
        return;
    }
    let list = |items: &[Node], sep: &str, out: &mut String| {
        for (k, item) in items.iter().enumerate() {
            if k > 0 {
                out.push_str(sep);
            }
            write(item, out);
        }
    };
    match n {
        Node::Num(x) => {
            if x.value.is_integer() || !x.is_decimal {
                out.push_str(&x.value.to_string());
            } else {
                out.push_str(&number_text(x));
            }
        }
        Node::Const(Const::Pi) => out.push('π'),
        Node::Const(Const::E) => out.push('e'),
        Node::Const(Const::Inf) => out.push('∞'),
        Node::Var(v) => out.push_str(v),
        Node::Neg(x) => {
            out.push_str("-(");
            write(x, out);
            out.push(')');
        }
        Node::PlusMinus(x) => {
            out.push_str("±(");
            write(x, out);
            out.push(')');
        }
        Node::Add(items) => {
            out.push('(');
            list(items, "+", out);
            out.push(')');
        }
        Node::Mul(items) => {
            out.push('(');
            list(items, "*", out);
            out.push(')');
        }
        Node::Div(a, b) => {
            out.push('(');
            write(a, out);
            out.push_str(")/(");
            write(b, out);
            out.push(')');
        }
        Node::Pow(a, b) => {
            out.push('(');
            write(a, out);
            out.push_str(")^(");
            write(b, out);
            out.push(')');
        }
        Node::Func(f, items) => {
            out.push_str(&format!("{f:?}("));
            list(items, ",", out);
            out.push(')');
        }
        Node::Log(b, x) => {
            out.push_str("log_(");
            write(b, out);
            out.push_str(")(");
            write(x, out);
            out.push(')');
        }
        Node::Root(k, x) => {
            out.push_str("root_(");
            write(k, out);
            out.push_str(")(");
            write(x, out);
            out.push(')');
        }
        Node::Factorial(x) => {
            out.push('(');
            write(x, out);
            out.push_str(")!");
        }
        Node::Binom(a, b) => {
            out.push_str("binom(");
            write(a, out);
            out.push(',');
            write(b, out);
            out.push(')');
        }
        Node::Percent(x) => {
            out.push('(');
            write(x, out);
            out.push_str(")%");
        }
        Node::Group { open, close, items } => {
            out.push(*open);
            list(items, ",", out);
            out.push(*close);
        }
        Node::Set(items) => {
            out.push('{');
            list(items, ",", out);
            out.push('}');
        }
        Node::List { items, .. } => list(items, ",", out),
        Node::Matrix(rows) => {
            out.push('[');
            for (k, r) in rows.iter().enumerate() {
                if k > 0 {
                    out.push(';');
                }
                list(r, ",", out);
            }
            out.push(']');
        }
        Node::Union(items) => list(items, "∪", out),
        Node::SetOp(op, items) => list(items, op, out),
        Node::Ratio(items) => list(items, ":", out),
        Node::Relation { parts, ops } => {
            for (k, part) in parts.iter().enumerate() {
                if k > 0 {
                    out.push_str(ops[k - 1].symbol());
                }
                write(part, out);
            }
        }
        Node::Text(t) => out.push_str(t),
    }
}

/// A canonical key for voting: equal keys mean equivalent answers (the converse need not
/// hold). Exact values by their reduced fraction, other constants by 10 significant
/// digits, sets and lists sorted.
pub(crate) fn key(cx: &mut Ctx, n: &Node) -> Result<String, Exhausted> {
    cx.budget.spend(1)?;
    let n = reduce_chain(unwrap(n));
    if let Node::Relation { parts, ops } = n {
        if is_assignment(parts, ops) || (ops == &[RelOp::In] && name_like(&parts[0])) {
            return key(cx, &parts[1]);
        }
        return Ok(text(n));
    }
    if has_pm(n) {
        let mut keys = Vec::new();
        for v in expand_pm(n) {
            keys.push(key(cx, &v)?);
        }
        keys.sort();
        return Ok(format!("{{{}}}", keys.join(",")));
    }
    Ok(match n {
        Node::Percent(x) => key(cx, x)?,
        Node::List { items, .. } | Node::Set(items) => {
            let mut keys = Vec::new();
            for item in items.iter().take(MAX_ITEMS) {
                keys.push(key(cx, item)?);
            }
            keys.sort();
            format!("{{{}}}", keys.join(","))
        }
        Node::Group { open, close, items } => {
            let mut keys = Vec::new();
            for item in items.iter().take(MAX_ITEMS) {
                keys.push(key(cx, item)?);
            }
            format!("{open}{}{close}", keys.join(","))
        }
        n if is_scalar(n) && !matches!(n, Node::Ratio(_)) => {
            let mut vars = Vec::new();
            free_vars(n, &mut vars);
            if !vars.is_empty() {
                text(n)
            } else if let Some(v) = exact(n, &mut cx.budget)? {
                if v.is_integer() {
                    v.to_integer().to_string()
                } else {
                    format!("{}/{}", v.numer(), v.denom())
                }
            } else {
                let x = numeric(n, &[], &mut cx.budget)?;
                if x.is_finite() {
                    if x.is_zero() {
                        "0".to_string()
                    } else {
                        format!("{x:.9e}")
                    }
                } else {
                    text(n)
                }
            }
        }
        n => text(n),
    })
}
