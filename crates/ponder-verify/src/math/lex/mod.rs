//! Tokens of a normalised answer: LaTeX commands, ASCII operators, numbers, words.
//!
//! One left-to-right pass. `\text{..}`-like wrappers are classified here (a unit or a
//! word, a separator such as "and", or math to lex inline), so the parser never sees raw
//! text. Every token records whether whitespace preceded it: `1,234` and `1, 234` differ.

use super::limits::{MAX_DEPTH, MAX_TOKENS};

mod command;
use command::lex_command;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A decimal literal as written, digits and at most one `.` (`12`, `0.5`, `.5`).
    Num(String),
    /// A one-letter name, a Greek letter, or an unknown command used as a symbol.
    Ident(String),
    /// A command with its own grammar (`frac`, `sqrt`, `sin`, `pi`, `infty`, `pm`, ...).
    Cmd(&'static str),
    /// A word of text: a unit (`cm`) or a text answer (`Evelyn`).
    Word(String),
    /// "and" / "or" between list items.
    Sep,
    LParen,
    RParen,
    LBrack,
    RBrack,
    LBrace,
    RBrace,
    /// `\{`
    LSet,
    /// `\}`
    RSet,
    LAngle,
    RAngle,
    LFloor,
    RFloor,
    LCeil,
    RCeil,
    Pipe,
    Plus,
    Minus,
    PlusMinus,
    Star,
    Slash,
    Caret,
    Underscore,
    Bang,
    Percent,
    Prime,
    Comma,
    Semi,
    Colon,
    Amp,
    /// `\\`
    RowSep,
    Rel(RelOp),
    Cup,
    Cap,
    SetMinus,
    Begin(String),
    End(String),
    /// Anything else: the parser rejects it.
    Other(char),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RelOp {
    Eq,
    Approx,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
}

impl RelOp {
    pub(crate) fn flipped(self) -> RelOp {
        match self {
            RelOp::Lt => RelOp::Gt,
            RelOp::Le => RelOp::Ge,
            RelOp::Gt => RelOp::Lt,
            RelOp::Ge => RelOp::Le,
            other => other,
        }
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            RelOp::Eq => "=",
            RelOp::Approx => "≈",
            RelOp::Ne => "≠",
            RelOp::Lt => "<",
            RelOp::Le => "≤",
            RelOp::Gt => ">",
            RelOp::Ge => "≥",
            RelOp::In => "∈",
            RelOp::NotIn => "∉",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Whitespace came just before this token.
    pub space_before: bool,
}

#[derive(Debug)]
pub(crate) struct LexError;

/// Commands the parser knows, by their canonical name.
const COMMANDS: &[&str] = &[
    "frac", "sqrt", "binom", "pi", "infty", "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos",
    "arctan", "sinh", "cosh", "tanh", "ln", "log", "lg", "exp", "min", "max", "gcd", "lcm", "det",
];

/// Wrappers whose argument is math in another font: lexed inline.
const MATH_WRAPPERS: &[&str] = &[
    "mathbf", "mathit", "mathsf", "mathcal", "mathbb", "mathscr", "mathfrak", "boldsymbol", "bm", "boxed", "fbox",
    "mathnormal", "underline",
];

/// Wrappers whose argument is text: classified as a word, a separator, a letter or math.
const TEXT_WRAPPERS: &[&str] =
    &["text", "textbf", "textit", "textrm", "textnormal", "textsf", "texttt", "mbox", "hbox", "emph", "mathrm", "operatorname"];

/// Accents: the argument becomes one name (`\overline{AB}` is the segment AB).
const ACCENTS: &[&str] =
    &["overline", "bar", "vec", "hat", "widehat", "tilde", "widetilde", "overrightarrow", "overleftrightarrow", "dot", "ddot", "overarc", "arc"];

const GREEK: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi", "omega", "Gamma",
    "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega", "ell",
];

/// Commands that vanish: spacing and sizing.
const IGNORED: &[&str] = &[
    "left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "quad", "qquad",
    "limits", "nolimits", "displaystyle", "textstyle", "scriptstyle", "circ", "degree", "dots", "ldots", "cdots",
    "mathstrut", "strut", "hline", "cline", "centering", "noindent", "nonumber", "notag", "hfill", "phantom",
];

pub(crate) fn lex(s: &str) -> Result<Vec<Token>, LexError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    lex_into(&chars, &mut out, 0)?;
    Ok(out)
}

fn lex_into(c: &[char], out: &mut Vec<Token>, depth: u32) -> Result<(), LexError> {
    if depth > 8 {
        return Err(LexError);
    }
    let mut i = 0;
    let mut space = false;
    while i < c.len() {
        if out.len() > MAX_TOKENS {
            return Err(LexError);
        }
        let ch = c[i];
        if ch.is_whitespace() {
            space = true;
            i += 1;
            continue;
        }
        let mut push = |tok: Tok, space: &mut bool| {
            out.push(Token { tok, space_before: *space });
            *space = false;
        };
        if ch == '.' {
            // `.\overline{3}`: a repeating decimal without its integer part.
            if let Some((rep, end)) = repetend(c, i + 1) {
                push(Tok::Num(format!(".({rep})")), &mut space);
                i = end;
                continue;
            }
        }
        if ch.is_ascii_digit() || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < c.len() && c[i].is_ascii_digit() {
                i += 1;
            }
            let mut point = i < c.len() && c[i] == '.';
            let fraction = point && c.get(i + 1).is_some_and(char::is_ascii_digit);
            if fraction {
                i += 1;
                while i < c.len() && c[i].is_ascii_digit() {
                    i += 1;
                }
                point = false;
            }
            // `0.\overline{3}`, `0.1\overline{6}`: the written digits, then the repetend.
            let rep_at = if point { i + 1 } else { i };
            if let Some((rep, end)) = repetend(c, rep_at).filter(|_| point || c[start..i].contains(&'.')) {
                let written: String = c[start..i].iter().collect();
                let dot = if point { "." } else { "" };
                push(Tok::Num(format!("{written}{dot}({rep})")), &mut space);
                i = end;
                continue;
            }
            if !fraction && point && !c.get(i + 1).is_some_and(|d| d.is_alphabetic()) {
                // `5.` is 5; `5.x` is not a number followed by x.
                i += 1;
                push(Tok::Num(c[start..i - 1].iter().collect()), &mut space);
                continue;
            }
            push(Tok::Num(c[start..i].iter().collect()), &mut space);
            continue;
        }
        if ch.is_ascii_alphabetic() {
            // "and" / "or" standing alone join list items; other letters are names.
            let run = c[i..].iter().take_while(|d| d.is_ascii_alphabetic()).count();
            let word: String = c[i..i + run].iter().collect();
            if matches!(word.as_str(), "and" | "or" | "AND" | "OR") {
                push(Tok::Sep, &mut space);
                i += run;
                continue;
            }
            push(Tok::Ident(ch.to_string()), &mut space);
            i += 1;
            continue;
        }
        if ch.is_alphabetic() {
            // Non-ASCII letters (other scripts): a word of text.
            let start = i;
            while i < c.len() && c[i].is_alphabetic() && !c[i].is_ascii() {
                i += 1;
            }
            push(Tok::Word(c[start..i].iter().collect()), &mut space);
            continue;
        }
        if ch == '\\' {
            let name_start = i + 1;
            let mut j = name_start;
            while j < c.len() && c[j].is_ascii_alphabetic() {
                j += 1;
            }
            if j == name_start {
                // A symbol command: `\{`, `\}`, `\\`, `\%`, `\|`, `\,`.
                let sym = c.get(name_start).copied();
                i = name_start + usize::from(sym.is_some());
                match sym {
                    Some('{') => push(Tok::LSet, &mut space),
                    Some('}') => push(Tok::RSet, &mut space),
                    Some('\\') => push(Tok::RowSep, &mut space),
                    Some('%') => push(Tok::Percent, &mut space),
                    Some('|') => push(Tok::Pipe, &mut space),
                    Some(',' | '!' | ';' | ':' | ' ' | '$' | '>') | None => {}
                    Some(other) => push(Tok::Other(other), &mut space),
                }
                continue;
            }
            let name: String = c[name_start..j].iter().collect();
            i = j;
            i = lex_command(&name, c, i, out, &mut space, depth)?;
            continue;
        }
        i += 1;
        let next = c.get(i).copied();
        let tok = match ch {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBrack,
            ']' => Tok::RBrack,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '|' => Tok::Pipe,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' if next == Some('*') => {
                i += 1;
                Tok::Caret
            }
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '^' => Tok::Caret,
            '_' => Tok::Underscore,
            '!' if next == Some('=') => {
                i += 1;
                Tok::Rel(RelOp::Ne)
            }
            '!' => Tok::Bang,
            '%' => Tok::Percent,
            '\'' => Tok::Prime,
            ',' => Tok::Comma,
            ';' => Tok::Semi,
            ':' if next == Some('=') => {
                i += 1;
                Tok::Rel(RelOp::Eq)
            }
            ':' => Tok::Colon,
            '&' => Tok::Amp,
            '=' if next == Some('=') => {
                i += 1;
                Tok::Rel(RelOp::Eq)
            }
            '=' if next == Some('<') => {
                i += 1;
                Tok::Rel(RelOp::Le)
            }
            '=' => Tok::Rel(RelOp::Eq),
            '<' if next == Some('=') => {
                i += 1;
                Tok::Rel(RelOp::Le)
            }
            '<' => Tok::Rel(RelOp::Lt),
            '>' if next == Some('=') => {
                i += 1;
                Tok::Rel(RelOp::Ge)
            }
            '>' => Tok::Rel(RelOp::Gt),
            '≤' => Tok::Rel(RelOp::Le),
            '≥' => Tok::Rel(RelOp::Ge),
            '≠' => Tok::Rel(RelOp::Ne),
            '≈' => Tok::Rel(RelOp::Approx),
            '∈' => Tok::Rel(RelOp::In),
            '∪' => Tok::Cup,
            '∩' => Tok::Cap,
            '±' => Tok::PlusMinus,
            '×' | '·' | '⋅' => Tok::Star,
            '÷' => Tok::Slash,
            '−' | '–' => Tok::Minus,
            'π' => Tok::Cmd("pi"),
            '∞' => Tok::Cmd("infty"),
            '√' => Tok::Cmd("sqrt"),
            '²' => {
                push(Tok::Caret, &mut space);
                Tok::Num("2".into())
            }
            '³' => {
                push(Tok::Caret, &mut space);
                Tok::Num("3".into())
            }
            '°' | '$' | '~' => continue,
            '.' => continue,
            other => Tok::Other(other),
        };
        push(tok, &mut space);
    }
    Ok(())
}

/// The repeating digits of `\overline{3}` (or `\bar`, `\dot`) at `i`, and the index
/// after it.
fn repetend(c: &[char], i: usize) -> Option<(String, usize)> {
    if c.get(i) != Some(&'\\') {
        return None;
    }
    let name_len = c[i + 1..].iter().take_while(|d| d.is_ascii_alphabetic()).count();
    let name: String = c[i + 1..i + 1 + name_len].iter().collect();
    if !matches!(name.as_str(), "overline" | "bar" | "dot") {
        return None;
    }
    let (arg, end) = brace_arg(c, i + 1 + name_len)?;
    let digits: String = arg.iter().filter(|d| !d.is_whitespace()).collect();
    let ok = (1..=64).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then_some((digits, end))
}

/// The content of a `{..}` argument starting at `i` (after spaces), and the index after it.
pub(crate) fn brace_arg(c: &[char], mut i: usize) -> Option<(&[char], usize)> {
    while i < c.len() && c[i] == ' ' {
        i += 1;
    }
    if c.get(i) != Some(&'{') {
        return None;
    }
    let start = i + 1;
    let mut level = 0usize;
    while i < c.len() {
        match c[i] {
            '\\' => i += 1,
            '{' => level += 1,
            '}' => {
                level -= 1;
                if level == 0 {
                    return Some((&c[start..i], i + 1));
                }
            }
            _ => {}
        }
        if level > MAX_DEPTH as usize * 4 {
            return None;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_and_commands() {
        assert_eq!(toks("1.5"), vec![Tok::Num("1.5".into())]);
        assert_eq!(toks("5."), vec![Tok::Num("5".into())]);
        assert_eq!(toks("\\dfrac12"), vec![Tok::Cmd("frac"), Tok::Num("12".into())]);
        assert_eq!(toks("x\\le 3"), vec![Tok::Ident("x".into()), Tok::Rel(RelOp::Le), Tok::Num("3".into())]);
        assert_eq!(toks(">="), vec![Tok::Rel(RelOp::Ge)]);
        assert_eq!(toks("0.\\overline{3}"), vec![Tok::Num("0.(3)".into())]);
        assert_eq!(toks("0.1\\overline{6}"), vec![Tok::Num("0.1(6)".into())]);
        assert_eq!(toks(".\\overline{12}"), vec![Tok::Num(".(12)".into())]);
        assert_eq!(toks("\\overline{AB}"), vec![Tok::Ident("overline{AB}".into())]);
        assert_eq!(toks("\\emptyset"), vec![Tok::LSet, Tok::RSet]);
    }

    #[test]
    fn text_wrappers() {
        assert_eq!(toks("\\text{ cm}"), vec![Tok::Word("cm".into())]);
        assert_eq!(toks("\\text{ m}"), vec![Tok::Word("m".into())]);
        assert_eq!(toks("\\text{ and }"), vec![Tok::Sep]);
        assert_eq!(toks("\\text{(C)}"), vec![Tok::Ident("C".into())]);
        assert_eq!(toks("\\text{13}"), vec![Tok::Num("13".into())]);
        assert_eq!(toks("\\mathrm{e}"), vec![Tok::Ident("e".into())]);
    }
}
