//! Rewrites of answer trees before comparison: unwrapping `(x)`, reducing chained
//! equalities, expanding `\pm`, evaluating matrix arithmetic, and recognising names.

use super::eval::free_vars;
use super::lex::RelOp;
use super::limits::MAX_PLUS_MINUS;
use super::parse::{Const, Node};

/// `(x)`, `{x}`, a one-item list or a 1×1 matrix is `x` (but `{∅}` stays a set).
pub(crate) fn unwrap(mut n: &Node) -> &Node {
    loop {
        n = match n {
            Node::Group { open: '(', close: ')', items } | Node::Group { open: '[', close: ']', items }
                if items.len() == 1 =>
            {
                &items[0]
            }
            Node::List { items, .. } if items.len() == 1 => &items[0],
            // `\{\emptyset\}` is not the empty set.
            Node::Set(items) if items.len() == 1 && !matches!(&items[0], Node::Set(inner) if inner.is_empty()) => {
                &items[0]
            }
            Node::Matrix(rows) if rows.len() == 1 && rows[0].len() == 1 => &rows[0][0],
            _ => return n,
        };
    }
}

/// `a = b = c` (three or more parts, all `=` or `≈`) is its last value after an `=`, or its
/// last value if only `≈` joins them: `x = 5+5+1 = 1/3 ≈ 0.33` is `1/3`. So is `a = b`
/// when neither side has a variable (`2 \cdot 7 = 14`: a computation and its result).
pub(crate) fn reduce_chain(n: &Node) -> &Node {
    let Node::Relation { parts, ops } = n else { return n };
    if !ops.iter().all(|o| matches!(o, RelOp::Eq | RelOp::Approx)) {
        return n;
    }
    if parts.len() == 2 {
        let mut vars = Vec::new();
        free_vars(n, &mut vars);
        let numeric_side = |p: &Node| is_scalar(p) && !matches!(p, Node::Text(_));
        return if vars.is_empty() && ops[0] == RelOp::Eq && parts.iter().all(numeric_side) { &parts[1] } else { n };
    }
    match ops.iter().rposition(|o| *o == RelOp::Eq) {
        Some(k) => &parts[k + 1],
        None => &parts[parts.len() - 1],
    }
}

/// A left-hand side that names the answer rather than constrains it: `x`, `x_1`, `f(x)`,
/// `|AB|`, `(p, q)`, `A:B`, `\frac{NO}{BO}`. No numbers outside subscripts, no `+`, `-`, `^`.
pub(crate) fn name_like(n: &Node) -> bool {
    match n {
        Node::Var(_) => true,
        Node::Const(Const::E) => true,
        Node::Mul(items) | Node::Ratio(items) => items.iter().all(name_like),
        Node::Group { items, .. } => !items.is_empty() && items.iter().all(name_like),
        Node::Func(super::parse::Func::Abs, items) => items.iter().all(name_like),
        Node::Div(a, b) => name_like(a) && name_like(b),
        _ => false,
    }
}

/// A single value (ratios included: they compare as values): not a collection, a
/// relation or text.
pub(crate) fn is_scalar(n: &Node) -> bool {
    !matches!(
        n,
        Node::List { .. }
            | Node::Set(_)
            | Node::Group { .. }
            | Node::Matrix(_)
            | Node::Union(_)
            | Node::SetOp(..)
            | Node::Relation { .. }
            | Node::Text(_)
    )
}

pub(crate) fn has_pm(n: &Node) -> bool {
    match n {
        Node::PlusMinus(_) => true,
        Node::Neg(x) | Node::Factorial(x) | Node::Percent(x) => has_pm(x),
        Node::Div(a, b) | Node::Pow(a, b) | Node::Root(a, b) => has_pm(a) || has_pm(b),
        Node::Add(items) | Node::Mul(items) | Node::Func(_, items) => items.iter().any(has_pm),
        Node::Relation { parts, .. } => parts.iter().any(has_pm),
        _ => false,
    }
}

/// All sign choices of the `±` in `n` (each `±` chosen independently; at most
/// 2^[`MAX_PLUS_MINUS`] variants, beyond which the first `±` signs stay as `+`).
pub(crate) fn expand_pm(n: &Node) -> Vec<Node> {
    let mut out = vec![n.clone()];
    for _ in 0..MAX_PLUS_MINUS {
        let mut next = Vec::new();
        let mut changed = false;
        for v in &out {
            match split_first_pm(v) {
                Some((plus, minus)) => {
                    next.push(plus);
                    next.push(minus);
                    changed = true;
                }
                None => next.push(v.clone()),
            }
        }
        out = next;
        if !changed {
            break;
        }
    }
    out
}

/// `n` with its first `±x` replaced by `x` and by `-x`.
fn split_first_pm(n: &Node) -> Option<(Node, Node)> {
    fn go(n: &Node, sign: bool) -> Option<Node> {
        let rebuild = |items: &Vec<Node>, f: fn(Vec<Node>) -> Node| -> Option<Node> {
            for (k, item) in items.iter().enumerate() {
                if let Some(new) = go(item, sign) {
                    let mut items = items.clone();
                    items[k] = new;
                    return Some(f(items));
                }
            }
            None
        };
        match n {
            Node::PlusMinus(x) => Some(if sign { (**x).clone() } else { Node::Neg(x.clone()) }),
            Node::Neg(x) => go(x, sign).map(|x| Node::Neg(Box::new(x))),
            Node::Add(items) => rebuild(items, Node::Add),
            Node::Mul(items) => rebuild(items, Node::Mul),
            Node::Div(a, b) => match go(a, sign) {
                Some(a) => Some(Node::Div(Box::new(a), b.clone())),
                None => go(b, sign).map(|b| Node::Div(a.clone(), Box::new(b))),
            },
            Node::Pow(a, b) => match go(a, sign) {
                Some(a) => Some(Node::Pow(Box::new(a), b.clone())),
                None => go(b, sign).map(|b| Node::Pow(a.clone(), Box::new(b))),
            },
            Node::Func(f, items) => {
                for (k, item) in items.iter().enumerate() {
                    if let Some(new) = go(item, sign) {
                        let mut items = items.clone();
                        items[k] = new;
                        return Some(Node::Func(*f, items));
                    }
                }
                None
            }
            Node::Relation { parts, ops } => {
                for (k, item) in parts.iter().enumerate() {
                    if let Some(new) = go(item, sign) {
                        let mut parts = parts.clone();
                        parts[k] = new;
                        return Some(Node::Relation { parts, ops: ops.clone() });
                    }
                }
                None
            }
            _ => None,
        }
    }
    Some((go(n, true)?, go(n, false)?))
}

/// The value of a matrix expression (`A + B`, `2A`, `AB`) as one matrix of cell
/// expressions, if `n` is one; `None` for anything else.
pub(crate) fn matrix_value(n: &Node) -> Option<Node> {
    fn mat(n: &Node, depth: u32) -> Option<Vec<Vec<Node>>> {
        if depth > 8 {
            return None;
        }
        match n {
            Node::Matrix(rows) => Some(rows.clone()),
            Node::Group { open: '(', close: ')', items } if items.len() == 1 => mat(&items[0], depth + 1),
            Node::Neg(x) => Some(map(mat(x, depth + 1)?, |c| Node::Neg(Box::new(c)))),
            Node::Add(items) => {
                let mut acc: Option<Vec<Vec<Node>>> = None;
                for item in items {
                    let m = mat(item, depth + 1)?;
                    acc = Some(match acc {
                        None => m,
                        Some(a) => zip(a, m, |x, y| Node::Add(vec![x, y]))?,
                    });
                }
                acc
            }
            Node::Mul(items) => {
                let mut acc: Option<Vec<Vec<Node>>> = None;
                let mut scalars = Vec::new();
                for item in items {
                    match mat(item, depth + 1) {
                        Some(m) => {
                            acc = Some(match acc {
                                None => m,
                                Some(a) => product(&a, &m)?,
                            })
                        }
                        None => scalars.push(item.clone()),
                    }
                }
                let m = acc?;
                if scalars.is_empty() {
                    return Some(m);
                }
                Some(map(m, |c| {
                    let mut f = scalars.clone();
                    f.push(c);
                    Node::Mul(f)
                }))
            }
            _ => None,
        }
    }
    fn map(m: Vec<Vec<Node>>, f: impl Fn(Node) -> Node) -> Vec<Vec<Node>> {
        m.into_iter().map(|r| r.into_iter().map(&f).collect()).collect()
    }
    fn zip(a: Vec<Vec<Node>>, b: Vec<Vec<Node>>, f: impl Fn(Node, Node) -> Node) -> Option<Vec<Vec<Node>>> {
        if a.len() != b.len() || a.first().map(Vec::len) != b.first().map(Vec::len) {
            return None;
        }
        Some(a.into_iter().zip(b).map(|(r, s)| r.into_iter().zip(s).map(|(x, y)| f(x, y)).collect()).collect())
    }
    fn product(a: &[Vec<Node>], b: &[Vec<Node>]) -> Option<Vec<Vec<Node>>> {
        let inner = a.first()?.len();
        if inner != b.len() || a.len() * inner * b.first()?.len() > 4096 {
            return None;
        }
        let cols = b[0].len();
        Some(
            a.iter()
                .map(|row| {
                    (0..cols)
                        .map(|j| Node::Add((0..inner).map(|k| Node::Mul(vec![row[k].clone(), b[k][j].clone()])).collect()))
                        .collect()
                })
                .collect(),
        )
    }
    match n {
        Node::Matrix(_) => None,
        Node::Add(_) | Node::Mul(_) | Node::Neg(_) => mat(n, 0).map(Node::Matrix),
        _ => None,
    }
}
