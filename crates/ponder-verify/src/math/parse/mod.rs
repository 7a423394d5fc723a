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
mod factor;
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
}

fn into_items(n: Node) -> Vec<Node> {
    match n {
        Node::List { items, .. } => items,
        other => vec![other],
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
