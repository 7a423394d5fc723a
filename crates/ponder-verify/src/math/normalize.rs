//! Presentation removed before parsing: wrappers, spacing, units, degrees, currency.
//!
//! Each step is one linear pass (`str::replace` or a scan), so normalising costs O(n) on
//! any input. What the lexer can do on its own (`\text{..}`, `\left`) it does; this file
//! handles what needs a look at the whole string (surrounding `$..$`, a whole `\boxed{}`,
//! trailing unit words, `1 000`).

/// The answer with presentation removed; the input to the lexer.
pub(crate) fn clean(answer: &str) -> String {
    let mut s = map_unicode(answer);
    s = fix_doubled_backslashes(&s);
    s = strip_surrounding(&s);
    // Thousands groups written `14{,}916` or `11,\!111`: a tight comma.
    for (from, to) in [(" {, }", ","), ("{, }", ","), (" {,}", ","), ("{,}", ","), (",\\! ", ","), (",\\!", ",")] {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s = remove_degrees(&s);
    // Protect `\\` (a row break) so `\\ ` is not read as `\ ` (a space).
    const ROW: &str = "\u{E000}";
    let protected = s.contains("\\\\");
    if protected {
        s = s.replace("\\\\", ROW);
    }
    for (from, to) in [
        ("\\!", ""),
        ("\\,", " "),
        ("\\;", " "),
        ("\\:", " "),
        ("\\ ", " "),
        ("\\quad", " "),
        ("\\qquad", " "),
        ("\\$", ""),
        ("\\left.", ""),
        ("\\right.", ""),
        ("\\%", "%"),
        ("\\displaystyle", ""),
    ] {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    if protected {
        s = s.replace(ROW, "\\\\");
    }
    s = percent_words(&s);
    s = strip_surrounding(&s);
    s = strip_trailing_words(&s);
    s = join_space_thousands(&s);
    s
}

/// The normalised text used to decide "same answer as written": wrappers unwrapped,
/// whitespace removed; lowercased when it is plain words.
pub(crate) fn canonical_text(cleaned: &str) -> String {
    let unwrapped = unwrap_text_commands(cleaned);
    let mut out: String = unwrapped.chars().filter(|c| !c.is_whitespace()).collect();
    for (from, to) in [("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", "")] {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    if !out.contains('\\') && !out.bytes().any(|b| b.is_ascii_digit()) {
        out = out.to_lowercase();
    }
    // `(C)` and `C`: a choice letter in parentheses.
    if out.len() == 3 && out.starts_with('(') && out.ends_with(')') && out.as_bytes()[1].is_ascii_alphabetic() {
        out = out[1..2].to_string();
    }
    out
}

fn map_unicode(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '−' | '–' | '—' => out.push('-'),
            '×' | '·' | '⋅' => out.push_str("\\cdot "),
            '÷' => out.push_str("\\div "),
            '≤' | '⩽' => out.push_str("\\le "),
            '≥' | '⩾' => out.push_str("\\ge "),
            '≠' => out.push_str("\\ne "),
            'π' => out.push_str("\\pi "),
            '∞' => out.push_str("\\infty "),
            '√' => out.push_str("\\sqrt"),
            '∪' => out.push_str("\\cup "),
            '±' => out.push_str("\\pm "),
            '°' => out.push_str("^\\circ"),
            '\u{a0}' | '\u{2009}' | '\u{202f}' => out.push(' '),
            '€' | '£' | '¥' | '₹' => {}
            '∅' => out.push_str("\\emptyset "),
            // The Arabic decimal and thousands separators.
            '\u{66b}' => out.push('.'),
            '\u{66c}' => out.push(','),
            c => out.push(ascii_digit(c).unwrap_or(c)),
        }
    }
    out
}

/// The ASCII digit of a decimal digit in another script: Arabic-Indic (`٤٢`), Extended
/// Arabic-Indic (Persian, `۴۲`), Devanagari, Bengali, fullwidth (`４２`).
pub(crate) fn ascii_digit(c: char) -> Option<char> {
    const ZEROS: [u32; 5] = [0x660, 0x6f0, 0x966, 0x9e6, 0xff10];
    let code = c as u32;
    let zero = ZEROS.iter().find(|z| (**z..**z + 10).contains(&code))?;
    char::from_digit(code - zero, 10)
}

/// Commands written with a doubled backslash (`\\frac`, from over-escaped JSON or raw
/// strings) when the name is one we know; a real `\\` line break followed by such a name
/// does not occur in answers.
fn fix_doubled_backslashes(s: &str) -> String {
    if !s.contains("\\\\") {
        return s.to_string();
    }
    const KNOWN: &[&str] = &[
        "frac", "dfrac", "tfrac", "left", "right", "boxed", "text", "sqrt", "le", "leq", "ge", "geq", "neq", "ne",
        "pi", "cdot", "times", "infty", "cup", "in", "pm", "mathrm", "circ", "quad", "mbox",
    ];
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i + 1 < b.len() {
        if b[i] == b'\\' && b[i + 1] == b'\\' {
            let name_start = i + 2;
            let name_len = b[name_start..].iter().take_while(|c| c.is_ascii_alphabetic()).count();
            let name = &s[name_start..name_start + name_len];
            if name_len > 0 && KNOWN.contains(&name) {
                out.push_str(&s[last..i]);
                last = i + 1;
            }
            i = name_start + name_len;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[last..]);
    out
}

fn remove_degrees(s: &str) -> String {
    let mut s = s.to_string();
    for from in ["^{\\circ}", "^\\circ", "^{\\circ }", "^{ \\circ}", "^{\\degree}", "\\degree", "^\\circ{}"] {
        if s.contains(from) {
            s = s.replace(from, "");
        }
    }
    s
}

/// `28 percent`, `28 pct` → `28%`.
fn percent_words(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    if !(lower.contains("percent") || lower.contains("pct")) {
        return s.to_string();
    }
    let mut out = s.to_string();
    for w in ["\\text{ percent}", "\\text{percent}", "percentage", "percent", "Percent", "pct"] {
        if out.contains(w) {
            out = out.replace(w, "%");
        }
    }
    out
}

/// Surrounding `$..$`, `\(..\)`, `\[..\]`, a whole `\boxed{..}`, `**`, a leading `=` and
/// trailing punctuation, until none is left.
pub(crate) fn strip_surrounding(s: &str) -> String {
    let mut cur: &str = s;
    loop {
        let before = cur.len();
        cur = cur.trim().trim_end_matches(['.', ';']).trim();
        for (open, close) in [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")] {
            if cur.len() >= open.len() + close.len() && cur.starts_with(open) && cur.ends_with(close) {
                cur = &cur[open.len()..cur.len() - close.len()];
            }
        }
        if let Some(rest) = cur.strip_prefix('=') {
            cur = rest;
        }
        for cmd in ["\\boxed", "\\fbox"] {
            if let Some(rest) = cur.strip_prefix(cmd) {
                let rest = rest.trim_start();
                if rest.starts_with('{') && matching_close(rest) == Some(rest.len() - 1) {
                    cur = &rest[1..rest.len() - 1];
                }
            }
        }
        if cur.len() == before {
            break;
        }
    }
    // A trailing comma: `1, 2,` is `1, 2`.
    cur.trim_end_matches(',').trim().to_string()
}

/// Index of the `}` matching the `{` at index 0.
fn matching_close(s: &str) -> Option<usize> {
    let mut level = 0usize;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'{' => level += 1,
            b'}' => {
                level = level.checked_sub(1)?;
                if level == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Up to three trailing words of two or more letters after a number or a closing bracket
/// (`5 apples`, `12 sq ft`, `6 only`): filler is dropped, and a unit is kept as
/// `\text{ ..}`, so `6 minutes` and `6 hours` stay apart (issue 17) while the lexer does
/// not read `minutes` as a product of letters.
fn strip_trailing_words(s: &str) -> String {
    let full = s.trim_end();
    let mut cur = full;
    for _ in 0..3 {
        let Some(at) = cur.rfind(char::is_whitespace) else { break };
        let word = &cur[at..].trim();
        let head = cur[..at].trim_end();
        let is_word = word.len() >= 2 && word.chars().all(|c| c.is_ascii_alphabetic() || c == '.');
        let head_ok = head.ends_with(|c: char| c.is_ascii_digit() || matches!(c, '}' | ')' | '%' | ']'));
        if !is_word || !head_ok || word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") {
            break;
        }
        cur = head;
    }
    let words = full[cur.len()..].trim();
    if words.is_empty() || super::units::is_filler(words) {
        return cur.to_string();
    }
    format!("{cur} \\text{{ {}}}", words.trim_end_matches('.'))
}

/// `1 000 000` → `1000000` when the whole answer is one such number.
fn join_space_thousands(s: &str) -> String {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let groups: Vec<&str> = int.split(' ').collect();
    if groups.len() < 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || !(1..=3).contains(&groups[0].len())
        || !groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
        || !groups[1..].iter().all(|g| g.len() == 3)
    {
        return s.to_string();
    }
    s.replace(' ', "")
}

/// `\text{X}` → `X` for every text-like wrapper (ponder-core's one implementation, with
/// the grader's longer list of wrappers).
pub(crate) fn unwrap_text_commands(s: &str) -> String {
    const WRAPPERS: &[&str] =
        &["text", "textbf", "textit", "textrm", "textnormal", "mathrm", "mathbf", "mbox", "boxed", "fbox", "operatorname"];
    ponder_core::answer::unwrap_wrappers(s, WRAPPERS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(clean(input), expected, "input: {input:?}");
    }

    #[test]
    fn wrappers_and_spacing() {
        check("$\\boxed{\\frac{1}{3}}$", "\\frac{1}{3}");
        check("\\(5\\).", "5");
        check("90^\\circ", "90");
        check("90^{\\circ}", "90");
        check("11,\\! 111,\\! 100", "11,111,100");
        check("14{,}916", "14,916");
        check("\\$1,000", "1,000");
        check("1 000", "1000");
        check("5 apples", "5 \\text{ apples}");
        check("6 only", "6");
        check("28 percent", "28 %");
        check("\\\\frac{1}{2}", "\\frac{1}{2}");
    }

    #[test]
    fn canonical() {
        assert_eq!(canonical_text("\\text{Evelyn}"), "evelyn");
        assert_eq!(canonical_text("(C)"), "c");
        assert_eq!(canonical_text("x + 1"), "x+1");
    }
}
