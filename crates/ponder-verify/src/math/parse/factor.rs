//! The tightly binding end of the grammar: products (`*`, `/`, implicit `2x`, mixed
//! numbers `2 1/2`), unary signs, powers (right-associative), postfix operators (`!`,
//! `%`, subscripts) and primaries (numbers, names, commands, brackets).

use super::*;

impl Parser {
    pub(super) fn term(&mut self) -> PResult<Node> {
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
    pub(super) fn starts_implicit(&self, t: &Tok) -> bool {
        match t {
            Tok::Num(_) | Tok::Ident(_) | Tok::LParen | Tok::LBrace | Tok::LFloor | Tok::LCeil | Tok::LAngle => true,
            Tok::Begin(_) => true,
            Tok::Cmd(_) => true,
            Tok::Pipe => self.abs_depth == 0,
            _ => false,
        }
    }

    pub(super) fn unary(&mut self) -> PResult<Node> {
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

    pub(super) fn power(&mut self) -> PResult<Node> {
        let primary = self.primary()?;
        self.power_from(primary)
    }

    /// A power whose base's primary has been parsed: postfix operators, then `^`.
    pub(super) fn power_from(&mut self, primary: Node) -> PResult<Node> {
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
    pub(super) fn pow_operand(&mut self) -> PResult<Node> {
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
    pub(super) fn pow_arg(&mut self) -> PResult<Node> {
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

    pub(super) fn postfix_ops(&mut self, mut node: Node) -> PResult<Node> {
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
    pub(super) fn subscript(&mut self) -> PResult<String> {
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

    pub(super) fn primary(&mut self) -> PResult<Node> {
        self.enter()?;
        let node = self.primary_inner()?;
        self.leave();
        self.node(node)
    }

    pub(super) fn primary_inner(&mut self) -> PResult<Node> {
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

    pub(super) fn bracketed(&mut self, open: char) -> PResult<Node> {
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

    pub(super) fn closer(&self) -> Option<char> {
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
