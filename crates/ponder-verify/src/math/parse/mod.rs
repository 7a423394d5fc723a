//! Recursive-descent parser from tokens to an answer tree, with explicit depth and size
//! limits.
//!
//! Precedence, loosest first:
//! `;` segments, `,`/"and" lists, relations (`=`, `<`, `\in`), ratios (`a:b`), set
//! operations (`\cup`), sums (`+`, `-`, `\pm`), products (`*`, `/`, implicit `2x`), unary
//! signs, powers (right-associative), postfix (`!`, `%`, subscripts), primaries.
//!
//! Brackets build [`Node::Group`]: `(a)` is just `a`, `(a, b)` a tuple or open interval,
//! `[a, b)` a half-open interval. `\{..\}` (and `{a, b}` with a comma) is a set.

use super::lex::{RelOp, Tok, Token};

mod command;
mod number;

use super::limits::{MAX_DEPTH, MAX_ITEMS, MAX_NODES};
use super::units;
use number::alt_number;
pub(crate) use number::{number, number_text, Num};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Const {
    Pi,
    E,
    Inf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Log10,
    Exp,
    Sqrt,
    Abs,
    Floor,
    Ceil,
    Min,
    Max,
    Gcd,
    Lcm,
    Det,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Num(Num),
    Const(Const),
    Var(String),
    Neg(Box<Node>),
    /// `±x` inside a sum: expands to `x` and `-x`.
    PlusMinus(Box<Node>),
    Add(Vec<Node>),
    Mul(Vec<Node>),
    Div(Box<Node>, Box<Node>),
    Pow(Box<Node>, Box<Node>),
    Func(Func, Vec<Node>),
    /// `\log_b x`
    Log(Box<Node>, Box<Node>),
    /// `\sqrt[n]{x}`
    Root(Box<Node>, Box<Node>),
    Factorial(Box<Node>),
    Binom(Box<Node>, Box<Node>),
    Percent(Box<Node>),
    /// Bracketed items: a tuple, a point, an interval.
    Group {
        open: char,
        close: char,
        items: Vec<Node>,
    },
    Set(Vec<Node>),
    /// Items separated by commas, semicolons or "and". `alt` is the reading of a tight
    /// `1,234` or `2,74` as one number (thousands separators or a decimal comma).
    List {
        items: Vec<Node>,
        alt: Option<Num>,
    },
    Matrix(Vec<Vec<Node>>),
    Union(Vec<Node>),
    /// Other set operations (`\cap`, `\setminus`): compared as written.
    SetOp(&'static str, Vec<Node>),
    Ratio(Vec<Node>),
    Relation {
        parts: Vec<Node>,
        ops: Vec<RelOp>,
    },
    Text(String),
}

#[derive(Debug)]
pub(crate) struct ParseError;

type PResult<T> = Result<T, ParseError>;

#[cfg(test)]
pub(crate) fn parse(tokens: Vec<Token>) -> PResult<Node> {
    parse_with_units(tokens).map(|(node, _)| node)
}

/// The answer tree, and the canonical units written after its values (`6 \text{ min}` →
/// `minute`; see the `units` module), which the tree leaves out.
pub(crate) fn parse_with_units(tokens: Vec<Token>) -> PResult<(Node, Vec<String>)> {
    let mut p = Parser { toks: tokens, pos: 0, depth: 0, nodes: 0, abs_depth: 0, in_matrix: false, units: Vec::new() };
    if p.toks.is_empty() {
        return Err(ParseError);
    }
    let node = p.seq()?;
    if p.pos != p.toks.len() {
        return Err(ParseError);
    }
    Ok((node, p.units))
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: u32,
    nodes: u32,
    abs_depth: u32,
    in_matrix: bool,
    /// Canonical units of the items, in order.
    units: Vec<String>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn space_before(&self, k: usize) -> bool {
        self.toks.get(self.pos + k).is_some_and(|t| t.space_before)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok) -> PResult<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(ParseError)
        }
    }

    fn node(&mut self, n: Node) -> PResult<Node> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(ParseError);
        }
        Ok(n)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError);
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// A closing token or the end: where a sequence stops.
    fn at_stop(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(
                Tok::RParen
                    | Tok::RBrack
                    | Tok::RBrace
                    | Tok::RSet
                    | Tok::RAngle
                    | Tok::RFloor
                    | Tok::RCeil
                    | Tok::End(_)
                    | Tok::Amp
            )
        ) || (self.in_matrix && self.peek() == Some(&Tok::RowSep))
    }

    /// Segments separated by `;`.
    fn seq(&mut self) -> PResult<Node> {
        let mut segments = vec![self.segment()?];
        while self.peek() == Some(&Tok::Semi) {
            self.bump();
            if self.at_stop() {
                break;
            }
            segments.push(self.segment()?);
            if segments.len() > MAX_ITEMS {
                return Err(ParseError);
            }
        }
        if segments.len() == 1 {
            // Cannot fail: one element.
            return Ok(segments.pop().unwrap());
        }
        self.node(Node::List { items: segments, alt: None })
    }

    /// Items separated by `,`, "and", "or", or (outside matrices) `\\`.
    fn segment(&mut self) -> PResult<Node> {
        while self.eat(&Tok::Sep) {}
        let mut items = vec![self.item()?];
        let mut tight = true;
        loop {
            match self.peek() {
                Some(Tok::Comma) => {
                    tight &= !self.space_before(0) && !self.space_before(1);
                    self.bump();
                    while self.eat(&Tok::Sep) {}
                }
                Some(Tok::Sep) => {
                    tight = false;
                    while self.eat(&Tok::Sep) {}
                }
                Some(Tok::RowSep) if !self.in_matrix => {
                    tight = false;
                    self.bump();
                }
                _ => break,
            }
            if self.at_stop() || self.peek() == Some(&Tok::Semi) {
                break;
            }
            items.push(self.item()?);
            if items.len() > MAX_ITEMS {
                return Err(ParseError);
            }
        }
        if items.len() == 1 {
            // Cannot fail: one element.
            return Ok(items.pop().unwrap());
        }
        let alt = if tight { alt_number(&items) } else { None };
        self.node(Node::List { items, alt })
    }

    /// A relation, then any trailing unit words (`15 \text{cm}^2`): left out of the tree,
    /// their canonical unit recorded.
    fn item(&mut self) -> PResult<Node> {
        let node = self.relation()?;
        let mut words = String::new();
        while let Some(Tok::Word(w)) = self.peek() {
            if !words.is_empty() {
                words.push(' ');
            }
            words.push_str(w);
            self.bump();
            if self.eat(&Tok::Caret) {
                let exp = self.pow_arg()?;
                words.push('^');
                words.push_str(&match exp {
                    Node::Num(n) => number_text(&n),
                    _ => "?".to_string(),
                });
            }
            if words.len() > 256 {
                return Err(ParseError);
            }
        }
        if let Some(unit) = units::canonical(&words) {
            if self.units.len() < MAX_ITEMS {
                self.units.push(unit);
            }
        }
        Ok(node)
    }

    fn relation(&mut self) -> PResult<Node> {
        let first = self.ratio()?;
        let mut parts = vec![first];
        let mut ops = Vec::new();
        while let Some(Tok::Rel(op)) = self.peek() {
            let op = *op;
            self.bump();
            parts.push(self.ratio()?);
            ops.push(op);
            if ops.len() > MAX_ITEMS {
                return Err(ParseError);
            }
        }
        if ops.is_empty() {
            // Cannot fail: one element.
            return Ok(parts.pop().unwrap());
        }
        self.node(Node::Relation { parts, ops })
    }

    fn ratio(&mut self) -> PResult<Node> {
        let first = self.set_expr()?;
        if self.peek() != Some(&Tok::Colon) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(&Tok::Colon) {
            parts.push(self.set_expr()?);
            if parts.len() > MAX_ITEMS {
                return Err(ParseError);
            }
        }
        self.node(Node::Ratio(parts))
    }

    fn set_expr(&mut self) -> PResult<Node> {
        let first = self.additive()?;
        let op = match self.peek() {
            Some(Tok::Cup) => "∪",
            Some(Tok::Cap) => "∩",
            Some(Tok::SetMinus) => "∖",
            _ => return Ok(first),
        };
        let mut parts = vec![first];
        while matches!(self.peek(), Some(Tok::Cup | Tok::Cap | Tok::SetMinus)) {
            let this = match self.bump() {
                Some(Tok::Cup) => "∪",
                Some(Tok::Cap) => "∩",
                _ => "∖",
            };
            if this != op {
                return Err(ParseError);
            }
            parts.push(self.additive()?);
            if parts.len() > MAX_ITEMS {
                return Err(ParseError);
            }
        }
        if op == "∪" {
            self.node(Node::Union(parts))
        } else {
            self.node(Node::SetOp(op, parts))
        }
    }

    fn additive(&mut self) -> PResult<Node> {
        let mut terms = Vec::new();
        let mut first = true;
        loop {
            let sign = match self.peek() {
                Some(Tok::Plus) => Some(1),
                Some(Tok::Minus) => Some(-1),
                Some(Tok::PlusMinus) => Some(0),
                _ => None,
            };
            match sign {
                Some(s) => {
                    self.bump();
                    // `2 + -3`: further signs belong to the term.
                    let t = self.term()?;
                    let t = match s {
                        1 => t,
                        -1 => self.node(Node::Neg(Box::new(t)))?,
                        _ => self.node(Node::PlusMinus(Box::new(t)))?,
                    };
                    terms.push(t);
                }
                None if first => terms.push(self.term()?),
                None => break,
            }
            first = false;
            if terms.len() > MAX_ITEMS {
                return Err(ParseError);
            }
        }
        if terms.len() == 1 {
            // Cannot fail: one element.
            return Ok(terms.pop().unwrap());
        }
        self.node(Node::Add(terms))
    }

    fn term(&mut self) -> PResult<Node> {
        let mut factors = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(Tok::Star) => {
                    self.bump();
                    factors.push(self.unary()?);
                }
                Some(Tok::Slash) => {
                    self.bump();
                    let d = self.unary()?;
                    // Cannot fail: `factors` starts non-empty and only grows.
                    let n = factors.pop().unwrap();
                    factors.push(self.node(Node::Div(Box::new(n), Box::new(d)))?);
                }
                Some(Tok::Cmd("frac")) if factors.len() == 1 && is_integer_literal(unsigned(&factors[0])) => {
                    // `15\frac{39}{40}` is a mixed number when the fraction is proper; a
                    // percent sign after it applies to the whole (`33\frac{1}{3}\%`).
                    let frac = self.primary()?;
                    if is_proper_fraction(&frac) && self.peek() != Some(&Tok::Caret) {
                        // Cannot fail: checked `factors.len() == 1`.
                        let whole = factors.pop().unwrap();
                        let number = self.postfix_ops(mixed(whole, frac))?;
                        factors.push(number);
                    } else {
                        let factor = self.power_from(frac)?;
                        factors.push(factor);
                    }
                }
                Some(t) if self.starts_implicit(t) => factors.push(self.power()?),
                _ => break,
            }
            if factors.len() > MAX_ITEMS {
                return Err(ParseError);
            }
        }
        if factors.len() == 1 {
            // Cannot fail: one element.
            return Ok(factors.pop().unwrap());
        }
        self.node(Node::Mul(factors))
    }

    /// Whether `t` can begin a factor of an implicit product (`2x`, `3\sqrt2`, `(a)(b)`).
    fn starts_implicit(&self, t: &Tok) -> bool {
        match t {
            Tok::Num(_) | Tok::Ident(_) | Tok::LParen | Tok::LBrace | Tok::LFloor | Tok::LCeil | Tok::LAngle => true,
            Tok::Begin(_) => true,
            Tok::Cmd(_) => true,
            Tok::Pipe => self.abs_depth == 0,
            _ => false,
        }
    }

    fn unary(&mut self) -> PResult<Node> {
        let wrap: fn(Node) -> Node = match self.peek() {
            Some(Tok::Minus) => |n| Node::Neg(Box::new(n)),
            Some(Tok::Plus) => |n| n,
            Some(Tok::PlusMinus) => |n| Node::PlusMinus(Box::new(n)),
            _ => return self.power(),
        };
        self.bump();
        self.enter()?;
        let inner = self.unary()?;
        self.leave();
        self.node(wrap(inner))
    }

    fn power(&mut self) -> PResult<Node> {
        let primary = self.primary()?;
        self.power_from(primary)
    }

    /// A power whose base's primary has been parsed: postfix operators, then `^`.
    fn power_from(&mut self, primary: Node) -> PResult<Node> {
        let base = self.postfix_ops(primary)?;
        let node = if self.eat(&Tok::Caret) {
            let exp = self.pow_operand()?;
            let node = self.node(Node::Pow(Box::new(base), Box::new(exp)))?;
            self.postfix_ops(node)?
        } else {
            base
        };
        Ok(node)
    }

    /// The exponent after `^`, itself possibly raised: `2^3^2` is `2^(3^2)`.
    fn pow_operand(&mut self) -> PResult<Node> {
        let base = self.pow_arg()?;
        if !self.eat(&Tok::Caret) {
            return Ok(base);
        }
        self.enter()?;
        let exp = self.pow_operand()?;
        self.leave();
        self.node(Node::Pow(Box::new(base), Box::new(exp)))
    }

    /// One exponent: `{..}`, a signed atom, a number, a name, a command.
    fn pow_arg(&mut self) -> PResult<Node> {
        self.enter()?;
        let node = match self.peek() {
            Some(Tok::Minus) => {
                self.bump();
                let inner = self.pow_arg()?;
                self.node(Node::Neg(Box::new(inner)))?
            }
            Some(Tok::Plus) => {
                self.bump();
                self.pow_arg()?
            }
            Some(Tok::LBrace) => {
                self.bump();
                let inner = self.seq()?;
                self.expect(&Tok::RBrace)?;
                inner
            }
            _ => {
                let atom = self.primary()?;
                self.postfix_ops(atom)?
            }
        };
        self.leave();
        Ok(node)
    }

    fn postfix_ops(&mut self, mut node: Node) -> PResult<Node> {
        loop {
            match self.peek() {
                Some(Tok::Bang) => {
                    self.bump();
                    node = self.node(Node::Factorial(Box::new(node)))?;
                }
                Some(Tok::Percent) => {
                    self.bump();
                    node = self.node(Node::Percent(Box::new(node)))?;
                }
                Some(Tok::Prime) => {
                    self.bump();
                    if let Node::Var(name) = &mut node {
                        name.push('\'');
                    }
                }
                Some(Tok::Underscore) => {
                    self.bump();
                    let sub = self.subscript()?;
                    node = match node {
                        Node::Var(name) => Node::Var(format!("{name}_{sub}")),
                        // `204_5`: a numeral in base 5, kept as an opaque symbol.
                        Node::Num(n) => Node::Var(format!("{}_{sub}", number_text(&n))),
                        other => other,
                    };
                }
                _ => return Ok(node),
            }
        }
    }

    /// A subscript as text: `{37}`, `1`, `n`, `{n-k-1}`.
    fn subscript(&mut self) -> PResult<String> {
        if self.eat(&Tok::LBrace) {
            let mut text = String::new();
            let mut level = 0usize;
            loop {
                match self.bump() {
                    None => return Err(ParseError),
                    Some(Tok::RBrace) if level == 0 => break,
                    Some(t) => {
                        match t {
                            Tok::LBrace => level += 1,
                            Tok::RBrace => level -= 1,
                            _ => {}
                        }
                        text.push_str(&token_text(&t));
                    }
                }
                if text.len() > 256 {
                    return Err(ParseError);
                }
            }
            return Ok(text);
        }
        match self.bump() {
            Some(Tok::Num(n)) => {
                // `x_12` in LaTeX subscripts only the `1`; keep the rest as a factor.
                let mut chars = n.chars();
                let first = chars.next().ok_or(ParseError)?;
                let rest: String = chars.collect();
                if !rest.is_empty() && !rest.starts_with('.') {
                    self.pos -= 1;
                    self.toks[self.pos].tok = Tok::Num(rest);
                }
                Ok(first.to_string())
            }
            Some(t @ (Tok::Ident(_) | Tok::Cmd(_))) => Ok(token_text(&t)),
            _ => Err(ParseError),
        }
    }

    fn primary(&mut self) -> PResult<Node> {
        self.enter()?;
        let node = self.primary_inner()?;
        self.leave();
        self.node(node)
    }

    fn primary_inner(&mut self) -> PResult<Node> {
        let Some(tok) = self.bump() else { return Err(ParseError) };
        match tok {
            Tok::Num(lit) => Ok(Node::Num(number(&lit)?)),
            Tok::Ident(name) => Ok(match name.as_str() {
                "e" => Node::Const(Const::E),
                _ => Node::Var(name),
            }),
            Tok::LParen | Tok::LBrack => self.bracketed(if tok == Tok::LParen { '(' } else { '[' }),
            Tok::LAngle => {
                let inner = self.seq()?;
                self.expect(&Tok::RAngle)?;
                Ok(Node::Group { open: '(', close: ')', items: into_items(inner) })
            }
            Tok::LBrace => {
                if self.eat(&Tok::RBrace) {
                    return Ok(Node::Set(Vec::new()));
                }
                let inner = self.seq()?;
                self.expect(&Tok::RBrace)?;
                // `{1, 3}` written without `\{` is still a set; `{x+1}` is grouping.
                Ok(match inner {
                    Node::List { items, .. } => Node::Set(items),
                    other => other,
                })
            }
            Tok::LSet => {
                if self.eat(&Tok::RSet) {
                    return Ok(Node::Set(Vec::new()));
                }
                let inner = self.seq()?;
                self.expect(&Tok::RSet)?;
                Ok(Node::Set(into_items(inner)))
            }
            Tok::Pipe => {
                self.abs_depth += 1;
                let inner = self.additive()?;
                self.abs_depth -= 1;
                self.expect(&Tok::Pipe)?;
                Ok(Node::Func(Func::Abs, vec![inner]))
            }
            Tok::LFloor => {
                let inner = self.additive()?;
                self.expect(&Tok::RFloor)?;
                Ok(Node::Func(Func::Floor, vec![inner]))
            }
            Tok::LCeil => {
                let inner = self.additive()?;
                self.expect(&Tok::RCeil)?;
                Ok(Node::Func(Func::Ceil, vec![inner]))
            }
            Tok::Begin(env) => self.environment(&env),
            Tok::Word(w) => {
                let mut text = w;
                while let Some(Tok::Word(next)) = self.peek() {
                    text.push(' ');
                    text.push_str(next);
                    self.bump();
                    if text.len() > 4096 {
                        return Err(ParseError);
                    }
                }
                Ok(Node::Text(text.to_lowercase()))
            }
            Tok::Cmd(cmd) => self.command(cmd),
            _ => Err(ParseError),
        }
    }

    fn bracketed(&mut self, open: char) -> PResult<Node> {
        if let Some(close) = self.closer() {
            self.bump();
            return Ok(Node::Group { open, close, items: Vec::new() });
        }
        let saved_abs = self.abs_depth;
        self.abs_depth = 0;
        let inner = self.seq()?;
        self.abs_depth = saved_abs;
        let close = self.closer().ok_or(ParseError)?;
        self.bump();
        Ok(match inner {
            Node::List { items, .. } => Node::Group { open, close, items },
            other if (open == '(') == (close == ')') => other,
            other => Node::Group { open, close, items: vec![other] },
        })
    }

    fn closer(&self) -> Option<char> {
        match self.peek() {
            Some(Tok::RParen) => Some(')'),
            Some(Tok::RBrack) => Some(']'),
            _ => None,
        }
    }
}

fn unsigned(n: &Node) -> &Node {
    match n {
        Node::Neg(x) => x,
        other => other,
    }
}

fn is_integer_literal(n: &Node) -> bool {
    matches!(n, Node::Num(x) if !x.is_decimal && x.value.is_integer())
}

fn is_proper_fraction(n: &Node) -> bool {
    match n {
        Node::Div(a, b) => match (a.as_ref(), b.as_ref()) {
            (Node::Num(a), Node::Num(b)) => !a.is_decimal && !b.is_decimal && a.value < b.value,
            _ => false,
        },
        _ => false,
    }
}

/// `w a/b` → `w + a/b`, `-w a/b` → `-(w + a/b)`.
fn mixed(whole: Node, frac: Node) -> Node {
    match whole {
        Node::Neg(w) => Node::Neg(Box::new(Node::Add(vec![*w, frac]))),
        w => Node::Add(vec![w, frac]),
    }
}

fn into_items(n: Node) -> Vec<Node> {
    match n {
        Node::List { items, .. } => items,
        other => vec![other],
    }
}

fn token_text(t: &Tok) -> String {
    match t {
        Tok::Num(s) | Tok::Ident(s) | Tok::Word(s) => s.clone(),
        Tok::Cmd(c) => (*c).to_string(),
        Tok::Plus => "+".into(),
        Tok::Minus => "-".into(),
        Tok::Comma => ",".into(),
        Tok::Star => "*".into(),
        Tok::Slash => "/".into(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::LBrace => "{".into(),
        Tok::RBrace => "}".into(),
        Tok::Caret => "^".into(),
        Tok::Underscore => "_".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use num_rational::BigRational;

    use super::super::lex::lex;
    use super::*;

    fn p(s: &str) -> Node {
        parse(lex(s).unwrap()).unwrap_or_else(|_| panic!("parse {s:?}"))
    }

    fn fails(s: &str) {
        assert!(lex(s).map_err(|_| ParseError).and_then(parse).is_err(), "{s:?} should not parse");
    }

    #[test]
    fn shapes() {
        assert!(matches!(p("\\frac12"), Node::Div(..)));
        assert!(matches!(p("(1, 2)"), Node::Group { open: '(', close: ')', .. }));
        assert!(matches!(p("[0, 1)"), Node::Group { open: '[', close: ')', .. }));
        assert!(matches!(p("(x+1)"), Node::Add(_)));
        assert!(matches!(p("\\{1, 2\\}"), Node::Set(_)));
        assert!(matches!(p("1, 2"), Node::List { .. }));
        assert!(matches!(p("x \\le 3"), Node::Relation { .. }));
        assert!(matches!(p("(0,1) \\cup (2, \\infty)"), Node::Union(_)));
        assert!(matches!(p("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"), Node::Matrix(_)));
        assert!(matches!(p("2\\sin b \\cos a"), Node::Mul(_)));
        assert!(matches!(p("7:32"), Node::Ratio(_)));
    }

    #[test]
    fn alt_numbers() {
        let Node::List { alt: Some(n), .. } = p("1,234") else { panic!() };
        assert_eq!(n.value, BigRational::from_integer(1234.into()));
        let Node::List { alt: Some(n), .. } = p("2,74") else { panic!() };
        assert_eq!(n.value, BigRational::new(274.into(), 100.into()));
        let Node::List { alt: None, .. } = p("1, 234") else { panic!() };
    }

    #[test]
    fn rejects() {
        fails("(1, 2");
        fails("1 +");
        fails(&"(".repeat(1000));
        fails("\\frac{1}");
    }
}
