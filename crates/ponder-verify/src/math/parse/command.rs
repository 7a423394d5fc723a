//! Commands with their own grammar (`\frac`, `\sqrt`, `\log_b`, `\sin^2`, `\min(..)`)
//! and matrix environments.

use num_traits::One;

use super::{into_items, number, Const, Func, Node, PResult, ParseError, Parser};
use crate::math::lex::Tok;
use crate::math::limits::MAX_ITEMS;

impl Parser {
    pub(super) fn command(&mut self, cmd: &'static str) -> PResult<Node> {
        match cmd {
            "pi" => Ok(Node::Const(Const::Pi)),
            "infty" => Ok(Node::Const(Const::Inf)),
            "frac" => {
                let n = self.macro_arg()?;
                let d = self.macro_arg()?;
                Ok(Node::Div(Box::new(n), Box::new(d)))
            }
            "binom" => {
                let n = self.macro_arg()?;
                let k = self.macro_arg()?;
                Ok(Node::Binom(Box::new(n), Box::new(k)))
            }
            "sqrt" => {
                if self.eat(&Tok::LBrack) {
                    let index = self.seq()?;
                    self.expect(&Tok::RBrack)?;
                    let x = self.macro_arg()?;
                    return Ok(Node::Root(Box::new(index), Box::new(x)));
                }
                let x = self.macro_arg()?;
                Ok(Node::Func(Func::Sqrt, vec![x]))
            }
            "log" | "lg" => {
                let base = if self.eat(&Tok::Underscore) { Some(self.macro_arg()?) } else { None };
                let (arg, power) = self.function_arg()?;
                let node = match (base, cmd) {
                    (Some(b), _) => Node::Log(Box::new(b), Box::new(arg)),
                    (None, "lg") => Node::Func(Func::Log10, vec![arg]),
                    // `\log` without a base: natural, as in most of the literature the
                    // graded answers come from; both sides are read alike either way.
                    (None, _) => Node::Func(Func::Ln, vec![arg]),
                };
                Ok(apply_power(node, power))
            }
            name => {
                let f = match name {
                    "sin" => Func::Sin,
                    "cos" => Func::Cos,
                    "tan" => Func::Tan,
                    "sec" => Func::Sec,
                    "csc" => Func::Csc,
                    "cot" => Func::Cot,
                    "arcsin" => Func::Asin,
                    "arccos" => Func::Acos,
                    "arctan" => Func::Atan,
                    "sinh" => Func::Sinh,
                    "cosh" => Func::Cosh,
                    "tanh" => Func::Tanh,
                    "ln" => Func::Ln,
                    "exp" => Func::Exp,
                    "min" => Func::Min,
                    "max" => Func::Max,
                    "gcd" => Func::Gcd,
                    "lcm" => Func::Lcm,
                    "det" => Func::Det,
                    _ => return Err(ParseError),
                };
                // `\sin^{-1}` is the inverse, `\sin^2 x` the square of the value.
                let mut power = None;
                let mut f = f;
                if self.eat(&Tok::Caret) {
                    let p = self.pow_arg()?;
                    let inverse = matches!(&p, Node::Neg(inner) if is_one(inner));
                    match (inverse, f) {
                        (true, Func::Sin) => f = Func::Asin,
                        (true, Func::Cos) => f = Func::Acos,
                        (true, Func::Tan) => f = Func::Atan,
                        _ => power = Some(p),
                    }
                }
                let args = if matches!(f, Func::Min | Func::Max | Func::Gcd | Func::Lcm) {
                    if self.peek() != Some(&Tok::LParen) {
                        return Err(ParseError);
                    }
                    self.bump();
                    let inner = self.seq()?;
                    self.expect(&Tok::RParen)?;
                    into_items(inner)
                } else {
                    let (arg, p2) = self.function_arg()?;
                    power = power.or(p2);
                    vec![arg]
                };
                Ok(apply_power(Node::Func(f, args), power))
            }
        }
    }

    /// A function's argument: `(..)`, `{..}`, or an implicit product up to the next
    /// function (`\sin 2x \cos a` is `sin(2x)·cos(a)`). Also a power written after the
    /// parenthesised argument: `\sin(x)^2`.
    fn function_arg(&mut self) -> PResult<(Node, Option<Node>)> {
        let arg = match self.peek() {
            Some(Tok::LParen) => {
                self.bump();
                let inner = self.seq()?;
                self.expect(&Tok::RParen)?;
                inner
            }
            Some(Tok::LBrace) => {
                self.bump();
                let inner = self.seq()?;
                self.expect(&Tok::RBrace)?;
                inner
            }
            _ => {
                let mut factors = vec![self.power()?];
                while let Some(t) = self.peek() {
                    let is_function =
                        matches!(t, Tok::Cmd(c) if !matches!(*c, "pi" | "infty" | "frac" | "sqrt" | "binom"));
                    if is_function || !self.starts_implicit(t) || matches!(t, Tok::LParen) {
                        break;
                    }
                    factors.push(self.power()?);
                    if factors.len() > MAX_ITEMS {
                        return Err(ParseError);
                    }
                }
                if factors.len() == 1 {
                    // Cannot fail: one element.
                    factors.pop().unwrap()
                } else {
                    Node::Mul(factors)
                }
            }
        };
        let power = if self.eat(&Tok::Caret) { Some(self.pow_operand()?) } else { None };
        Ok((arg, power))
    }

    /// One argument of `\frac`, `\sqrt`, `\binom`: `{..}`, or a single token, so
    /// `\frac12` is one half and `\sqrt2x` is `√2·x`.
    fn macro_arg(&mut self) -> PResult<Node> {
        match self.peek() {
            Some(Tok::LBrace) => {
                self.bump();
                let inner = self.seq()?;
                self.expect(&Tok::RBrace)?;
                Ok(inner)
            }
            Some(Tok::Num(lit)) => {
                let lit = lit.clone();
                let mut chars = lit.chars();
                // Cannot fail: number tokens are non-empty.
                let first = chars.next().unwrap();
                let rest: String = chars.collect();
                if rest.is_empty() || first == '.' {
                    self.bump();
                    return self.node(Node::Num(number(&lit)?));
                }
                self.toks[self.pos].tok = Tok::Num(rest);
                self.toks[self.pos].space_before = false;
                self.node(Node::Num(number(&first.to_string())?))
            }
            Some(Tok::Minus) => {
                self.bump();
                self.enter()?;
                let inner = self.macro_arg()?;
                self.leave();
                self.node(Node::Neg(Box::new(inner)))
            }
            _ => self.primary(),
        }
    }

    pub(super) fn environment(&mut self, env: &str) -> PResult<Node> {
        let matrix = matches!(
            env,
            "pmatrix" | "bmatrix" | "Bmatrix" | "vmatrix" | "Vmatrix" | "matrix" | "smallmatrix" | "array"
        );
        if !matrix {
            return Err(ParseError);
        }
        let saved = self.in_matrix;
        self.in_matrix = true;
        let mut rows: Vec<Vec<Node>> = Vec::new();
        let mut row = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::End(_)) => {
                    self.bump();
                    break;
                }
                Some(Tok::RowSep) => {
                    self.bump();
                    rows.push(std::mem::take(&mut row));
                    continue;
                }
                Some(Tok::Amp) => {
                    self.bump();
                    continue;
                }
                None => return Err(ParseError),
                _ => {}
            }
            row.push(self.relation()?);
            if row.len() > MAX_ITEMS || rows.len() > MAX_ITEMS {
                return Err(ParseError);
            }
        }
        if !row.is_empty() {
            rows.push(row);
        }
        self.in_matrix = saved;
        rows.retain(|r| !r.is_empty());
        let width = rows.first().map_or(0, Vec::len);
        if width == 0 || rows.iter().any(|r| r.len() != width) {
            return Err(ParseError);
        }
        if env == "vmatrix" || env == "Vmatrix" {
            return Ok(Node::Func(Func::Det, vec![Node::Matrix(rows)]));
        }
        Ok(Node::Matrix(rows))
    }
}

fn apply_power(node: Node, power: Option<Node>) -> Node {
    match power {
        Some(p) => Node::Pow(Box::new(node), Box::new(p)),
        None => node,
    }
}

fn is_one(n: &Node) -> bool {
    matches!(n, Node::Num(num) if num.value.is_one())
}
