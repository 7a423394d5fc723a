//! LaTeX commands in the lexer: names, accents and Greek letters, ignored markup, and the
//! `\text{..}`-like wrappers classified as units, words, separators or inline math.

use super::*;

/// Lexes the command `\name` whose name ends at `i`; returns the index after it.
pub(super) fn lex_command(
    name: &str,
    c: &[char],
    mut i: usize,
    out: &mut Vec<Token>,
    space: &mut bool,
    depth: u32,
) -> Result<usize, LexError> {
    let mut push = |tok: Tok, space: &mut bool| {
        out.push(Token { tok, space_before: *space });
        *space = false;
    };
    let rel = |op| Some(Tok::Rel(op));
    let simple = match name {
        "le" | "leq" | "leqslant" | "leqq" => rel(RelOp::Le),
        "ge" | "geq" | "geqslant" | "geqq" => rel(RelOp::Ge),
        "lt" => rel(RelOp::Lt),
        "gt" => rel(RelOp::Gt),
        "ne" | "neq" => rel(RelOp::Ne),
        "approx" | "simeq" | "thickapprox" => rel(RelOp::Approx),
        "equiv" | "coloneqq" => rel(RelOp::Eq),
        "in" => rel(RelOp::In),
        "notin" => rel(RelOp::NotIn),
        "pm" | "mp" => Some(Tok::PlusMinus),
        "cdot" | "times" | "ast" => Some(Tok::Star),
        "div" => Some(Tok::Slash),
        "cup" => Some(Tok::Cup),
        "cap" => Some(Tok::Cap),
        "setminus" | "backslash" => Some(Tok::SetMinus),
        "langle" => Some(Tok::LAngle),
        "rangle" => Some(Tok::RAngle),
        "lfloor" => Some(Tok::LFloor),
        "rfloor" => Some(Tok::RFloor),
        "lceil" => Some(Tok::LCeil),
        "rceil" => Some(Tok::RCeil),
        "vert" | "lvert" | "rvert" | "mid" => Some(Tok::Pipe),
        "lbrace" => Some(Tok::LSet),
        "rbrace" => Some(Tok::RSet),
        "lbrack" => Some(Tok::LBrack),
        "rbrack" => Some(Tok::RBrack),
        "prime" => Some(Tok::Prime),
        "colon" => Some(Tok::Colon),
        "dfrac" | "tfrac" | "cfrac" => Some(Tok::Cmd("frac")),
        "dbinom" | "tbinom" | "choose" => Some(Tok::Cmd("binom")),
        "infin" => Some(Tok::Cmd("infty")),
        "and" => Some(Tok::Sep),
        "land" | "wedge" | "lor" | "vee" => Some(Tok::Sep),
        "percent" => Some(Tok::Percent),
        _ => None,
    };
    if let Some(tok) = simple {
        push(tok, space);
        return Ok(i);
    }
    if let Some(cmd) = COMMANDS.iter().find(|k| **k == name) {
        push(Tok::Cmd(cmd), space);
        return Ok(i);
    }
    if IGNORED.contains(&name) {
        if name == "phantom" {
            // `\phantom{..}` takes space but prints nothing.
            if let Some((_, end)) = brace_arg(c, i) {
                return Ok(end);
            }
        }
        return Ok(i);
    }
    if GREEK.contains(&name) {
        push(Tok::Ident(name.to_string()), space);
        return Ok(i);
    }
    if name == "begin" || name == "end" {
        let Some((env, end)) = brace_arg(c, i) else { return Err(LexError) };
        let env: String = env.iter().collect::<String>().trim().trim_end_matches('*').to_string();
        i = end;
        if name == "begin" {
            if env == "array" || env == "tabular" {
                // The column spec `{cc}` is not content.
                if let Some((_, end)) = brace_arg(c, i) {
                    i = end;
                }
            }
            push(Tok::Begin(env), space);
        } else {
            push(Tok::End(env), space);
        }
        return Ok(i);
    }
    if MATH_WRAPPERS.contains(&name) {
        // The wrapper vanishes; its braces stay and group its content.
        return Ok(i);
    }
    if ACCENTS.contains(&name) {
        let (arg, end) = match brace_arg(c, i) {
            Some(found) => found,
            None => return Ok(i),
        };
        let text: String = arg.iter().filter(|ch| !ch.is_whitespace()).collect();
        push(Tok::Ident(format!("{name}{{{text}}}")), space);
        return Ok(end);
    }
    if TEXT_WRAPPERS.contains(&name) {
        let Some((arg, end)) = brace_arg(c, i) else { return Ok(i) };
        lex_text(name, arg, out, space, depth)?;
        return Ok(end);
    }
    if name == "pmod" || name == "bmod" || name == "mod" {
        // `\pmod{11}` is a remark on a congruence, not part of the value.
        if let Some((_, end)) = brace_arg(c, i) {
            return Ok(end);
        }
        return Ok(i);
    }
    if name == "emptyset" || name == "varnothing" {
        // The empty set is `\{\}`, however written.
        push(Tok::LSet, space);
        push(Tok::RSet, space);
        return Ok(i);
    }
    // Unknown command: an opaque symbol (`\zzz`).
    push(Tok::Ident(format!("\\{name}")), space);
    Ok(i)
}

/// `\text{..}` content: empty, a separator, a choice letter, math, or words.
fn lex_text(wrapper: &str, arg: &[char], out: &mut Vec<Token>, space: &mut bool, depth: u32) -> Result<(), LexError> {
    let text: String = arg.iter().collect();
    let trimmed = text.trim().trim_matches(',').trim();
    let mut push = |tok: Tok, space: &mut bool| {
        out.push(Token { tok, space_before: *space });
        *space = false;
    };
    if trimmed.is_empty() {
        return Ok(());
    }
    let lower = trimmed.to_ascii_lowercase();
    if matches!(lower.as_str(), "and" | "or" | ", and" | "and also") {
        push(Tok::Sep, space);
        return Ok(());
    }
    if matches!(lower.as_str(), "percent" | "percentage" | "pct") {
        push(Tok::Percent, space);
        return Ok(());
    }
    if text.starts_with(char::is_whitespace) && matches!(trimmed, "m" | "s" | "g" | "h" | "l" | "L") {
        // `7 \text{ m}`: a unit after a space, not the variable m.
        push(Tok::Word(trimmed.to_string()), space);
        return Ok(());
    }
    let inner = trimmed.strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or(trimmed);
    let mut letters = inner.chars();
    if let (Some(l), None) = (letters.next(), letters.next()) {
        if l.is_ascii_alphabetic() {
            push(Tok::Ident(l.to_string()), space);
            return Ok(());
        }
    }
    let has_word = has_word(trimmed);
    if wrapper == "mathrm" || wrapper == "operatorname" {
        if let Some(cmd) = COMMANDS.iter().find(|k| **k == trimmed) {
            push(Tok::Cmd(cmd), space);
            return Ok(());
        }
    }
    if !has_word {
        // `\text{13}`, `\mathrm{3x}`: math in a text font.
        return lex_into(arg, out, depth + 1);
    }
    push(Tok::Word(trimmed.split_whitespace().collect::<Vec<_>>().join(" ")), space);
    Ok(())
}

/// A run of two or more ASCII letters not forming a command.
fn has_word(s: &str) -> bool {
    let mut run = 0;
    let mut prev_backslash = false;
    for ch in s.chars() {
        if ch.is_ascii_alphabetic() {
            if !prev_backslash {
                run += 1;
                if run >= 2 {
                    return true;
                }
            }
        } else {
            run = 0;
            prev_backslash = ch == '\\';
        }
    }
    false
}
