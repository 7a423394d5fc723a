//! Relations compared: equations (up to a nonzero factor), assignments (`x = 3`),
//! membership (`x \in [1,2]`) and inequalities, read as the intervals they describe.

use super::*;

pub(super) fn is_relation(n: &Node) -> bool {
    matches!(n, Node::Relation { .. })
}

pub(super) fn relations(cx: &mut Ctx, g: &Node, p: &Node) -> R {
    let g_rel = as_relation(g);
    let p_rel = as_relation(p);
    match (g_rel, p_rel) {
        (Some((gp, gops)), Some((pp, pops))) => {
            let g_eq = is_assignment(gp, gops);
            let p_eq = is_assignment(pp, pops);
            if gops.len() == 1 && pops.len() == 1 && matches!(gops[0], RelOp::Eq | RelOp::Approx) && gops == pops {
                // Two equations: same left side → compare values; else the same solution
                // set (proportional `lhs - rhs`); else, if both name their value, the values.
                if text(&gp[0]) == text(&pp[0]) {
                    return answers(cx, &gp[1], &pp[1]);
                }
                if proportional(cx, gp, gops[0], pp, pops[0])? {
                    return Ok(Outcome::yes(Reason::Numeric));
                }
                if g_eq && p_eq && (!matches!(gp[0], Node::Var(_)) || !matches!(pp[0], Node::Var(_))) {
                    return answers(cx, &gp[1], &pp[1]);
                }
                return Ok(Outcome::no(Reason::Different));
            }
            if gops == [RelOp::In] && pops == [RelOp::In] {
                return answers(cx, &gp[1], &pp[1]);
            }
            if gops == [RelOp::In] && name_like(&gp[0]) {
                return answers(cx, &gp[1], p);
            }
            if pops == [RelOp::In] && name_like(&pp[0]) {
                return answers(cx, g, &pp[1]);
            }
            if g_eq && !is_inequality(pops) {
                return answers(cx, &gp[1], p);
            }
            if p_eq && !is_inequality(gops) {
                return answers(cx, g, &pp[1]);
            }
            if is_inequality(gops) && is_inequality(pops) {
                if let (Some((gv, gi)), Some((pv, pi))) = (intervals(cx, gp, gops)?, intervals(cx, pp, pops)?) {
                    if gv == pv {
                        return answers(cx, &gi, &pi);
                    }
                }
                if gops.len() == 1 && pops.len() == 1 && proportional(cx, gp, gops[0], pp, pops[0])? {
                    return Ok(Outcome::yes(Reason::Numeric));
                }
                return Ok(Outcome::no(Reason::Different));
            }
            Ok(Outcome::no(Reason::ShapeMismatch))
        }
        (Some((gp, gops)), None) => {
            if is_assignment(gp, gops) {
                return answers(cx, &gp[1], p);
            }
            if gops == [RelOp::In] && name_like(&gp[0]) {
                return answers(cx, &gp[1], p);
            }
            if is_inequality(gops) {
                if let Some((_, gi)) = intervals(cx, gp, gops)? {
                    return answers(cx, &gi, p);
                }
            }
            Ok(Outcome::no(Reason::ShapeMismatch))
        }
        (None, Some((pp, pops))) => {
            if is_assignment(pp, pops) {
                return answers(cx, g, &pp[1]);
            }
            if pops == [RelOp::In] && name_like(&pp[0]) {
                return answers(cx, g, &pp[1]);
            }
            if is_inequality(pops) && cx.opts.interval_accepts_inequality {
                if let Some((_, pi)) = intervals(cx, pp, pops)? {
                    return answers(cx, g, &pi);
                }
            }
            Ok(Outcome::no(Reason::ShapeMismatch))
        }
        (None, None) => collections(cx, g, p),
    }
}

pub(super) fn as_relation(n: &Node) -> Option<(&[Node], &[RelOp])> {
    match n {
        Node::Relation { parts, ops } => Some((parts, ops)),
        _ => None,
    }
}

/// `name = value` (or `≈`).
pub(crate) fn is_assignment(parts: &[Node], ops: &[RelOp]) -> bool {
    ops.len() == 1 && matches!(ops[0], RelOp::Eq | RelOp::Approx) && name_like(&parts[0])
}

pub(super) fn is_inequality(ops: &[RelOp]) -> bool {
    !ops.is_empty() && ops.iter().all(|o| matches!(o, RelOp::Lt | RelOp::Le | RelOp::Gt | RelOp::Ge | RelOp::Ne))
}

/// Whether `a op b` and `c op' d` have the same solutions, by `lhs - rhs` being
/// proportional at sample points: by a positive factor for the same inequality, a
/// negative one for the flipped inequality, any non-zero one for `=` and `≠`.
pub(super) fn proportional(cx: &mut Ctx, gp: &[Node], gop: RelOp, pp: &[Node], pop: RelOp) -> Result<bool, Exhausted> {
    let sign = if gop == pop {
        if matches!(gop, RelOp::Eq | RelOp::Ne | RelOp::Approx) {
            0
        } else {
            1
        }
    } else if gop.flipped() == pop {
        -1
    } else {
        return Ok(false);
    };
    let diff = |parts: &[Node]| Node::Add(vec![parts[0].clone(), Node::Neg(Box::new(parts[1].clone()))]);
    let (f, h) = (diff(gp), diff(pp));
    let mut vars = Vec::new();
    free_vars(&f, &mut vars);
    free_vars(&h, &mut vars);
    if vars.is_empty() || vars.len() > 12 {
        return Ok(false);
    }
    let mut ratio: Option<f64> = None;
    let mut valid = 0;
    for env in cx.sample_points(&vars)? {
        let a = numeric(&f, &env, &mut cx.budget)?;
        let b = numeric(&h, &env, &mut cx.budget)?;
        if !a.is_finite() || !b.is_finite() {
            continue;
        }
        let scale = 1e-9;
        if a.abs() < scale && b.abs() < scale {
            continue;
        }
        if a.abs() < scale || b.abs() < scale {
            return Ok(false);
        }
        let r = a / b;
        if (sign > 0 && r < 0.0) || (sign < 0 && r > 0.0) {
            return Ok(false);
        }
        match ratio {
            None => ratio = Some(r),
            Some(r0) if !close(r, r0, cx.opts.rel_tol) => return Ok(false),
            Some(_) => {}
        }
        valid += 1;
    }
    Ok(valid >= 2)
}

/// An inequality in one name as intervals: `x > 2` → `(2, ∞)`, `-1 ≤ x < 3` → `[-1, 3)`,
/// `x ≠ 0` → `(-∞, 0) ∪ (0, ∞)`. Returns the name's text and the interval node.
pub(super) fn intervals(cx: &mut Ctx, parts: &[Node], ops: &[RelOp]) -> Result<Option<(String, Node)>, Exhausted> {
    let is_const = |n: &Node| {
        let mut v = Vec::new();
        free_vars(n, &mut v);
        v.is_empty()
    };
    cx.budget.spend(1)?;
    let inf = || Node::Const(Const::Inf);
    let neg_inf = || Node::Neg(Box::new(Node::Const(Const::Inf)));
    let group = |lo: Node, lo_closed: bool, hi: Node, hi_closed: bool| Node::Group {
        open: if lo_closed { '[' } else { '(' },
        close: if hi_closed { ']' } else { ')' },
        items: vec![lo, hi],
    };
    let found = match (parts, ops) {
        ([a, b], [op]) => {
            let (var, c, op) = if name_like(a) && is_const(b) {
                (a, b, *op)
            } else if name_like(b) && is_const(a) {
                (b, a, op.flipped())
            } else {
                return Ok(None);
            };
            let node = match op {
                RelOp::Lt => group(neg_inf(), false, c.clone(), false),
                RelOp::Le => group(neg_inf(), false, c.clone(), true),
                RelOp::Gt => group(c.clone(), false, inf(), false),
                RelOp::Ge => group(c.clone(), true, inf(), false),
                RelOp::Ne => {
                    Node::Union(vec![group(neg_inf(), false, c.clone(), false), group(c.clone(), false, inf(), false)])
                }
                _ => return Ok(None),
            };
            (var, node)
        }
        ([a, v, b], [o1, o2]) if name_like(v) && is_const(a) && is_const(b) => {
            let up = |o: &RelOp| matches!(o, RelOp::Lt | RelOp::Le);
            let down = |o: &RelOp| matches!(o, RelOp::Gt | RelOp::Ge);
            let node = if up(o1) && up(o2) {
                group(a.clone(), *o1 == RelOp::Le, b.clone(), *o2 == RelOp::Le)
            } else if down(o1) && down(o2) {
                group(b.clone(), *o2 == RelOp::Ge, a.clone(), *o1 == RelOp::Ge)
            } else {
                return Ok(None);
            };
            (v, node)
        }
        _ => return Ok(None),
    };
    match found {
        (Node::Func(Func::Abs, args), node) if args.len() == 1 && name_like(&args[0]) => {
            Ok(abs_preimage(cx, &node)?.map(|n| (text(&args[0]), n)))
        }
        (var, node) => Ok(Some((text(var), node))),
    }
}

/// `{x : |x| ∈ I}` for an interval `I`: `1 ≤ |z| ≤ 3/2` is `[-3/2, -1] ∪ [1, 3/2]`, `|x| < 2`
/// is `(-2, 2)`. `None` when the bounds are not exact or the set is every number.
pub(super) fn abs_preimage(cx: &mut Ctx, interval: &Node) -> Result<Option<Node>, Exhausted> {
    let Node::Group { open, close, items } = interval else { return Ok(None) };
    let [lo, hi] = items.as_slice() else { return Ok(None) };
    let (lo_closed, hi_closed) = (*open == '[', *close == ']');
    let neg = |n: &Node| Node::Neg(Box::new(n.clone()));
    let inf = || Node::Const(Const::Inf);
    let group = |lo: Node, lo_closed: bool, hi: Node, hi_closed: bool| Node::Group {
        open: if lo_closed { '[' } else { '(' },
        close: if hi_closed { ']' } else { ')' },
        items: vec![lo, hi],
    };
    // Whether 0 lies below the interval, so it has two mirrored halves.
    let two_halves = if is_infinity(lo) {
        false
    } else {
        match exact(lo, &mut cx.budget)? {
            Some(v) => v.is_positive() || (v.is_zero() && !lo_closed),
            None => return Ok(None),
        }
    };
    Ok(Some(match (two_halves, is_infinity(hi)) {
        (false, true) => return Ok(None),
        (false, false) => group(neg(hi), hi_closed, hi.clone(), hi_closed),
        (true, true) => {
            Node::Union(vec![group(neg(&inf()), false, neg(lo), lo_closed), group(lo.clone(), lo_closed, inf(), false)])
        }
        (true, false) => Node::Union(vec![
            group(neg(hi), hi_closed, neg(lo), lo_closed),
            group(lo.clone(), lo_closed, hi.clone(), hi_closed),
        ]),
    }))
}
