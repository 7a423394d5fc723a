//! Just enough Python lexing to cut a block of code into its top-level statements.
//!
//! The judge numbers tests by it, and ponder-eval flattens HumanEval's `def check(candidate)`
//! with it into separate test statements, so they can be split into visible and hidden
//! halves without running Python. It tracks strings (single, triple, escapes), comments,
//! brackets and backslash continuations; that is what decides where a logical line starts.
//! The vendored datasets are the test: every canonical solution must still pass its
//! flattened tests (ponder-eval's `code_datasets` tests).

/// Lexer state carried from one physical line to the next.
#[derive(Default)]
struct Scan {
    depth: usize,
    /// Open string: its quote byte and whether it is triple-quoted.
    string: Option<(u8, bool)>,
    /// The previous line ended with a backslash outside a string.
    continued: bool,
}

impl Scan {
    fn at_logical_line_start(&self) -> bool {
        self.depth == 0 && self.string.is_none() && !self.continued
    }

    fn feed(&mut self, line: &str) {
        self.feed_masked(line, &mut None);
    }

    /// Advances over `line`; when `code` is given, pushes the line with string contents
    /// and comments replaced by spaces (quotes kept), so keyword searches see code only.
    fn feed_masked(&mut self, line: &str, code: &mut Option<String>) {
        let b = line.as_bytes();
        let mut mask = vec![false; b.len()];
        self.continued = false;
        let mut escaped_newline = false;
        let mut i = 0;
        while i < b.len() {
            if let Some((q, triple)) = self.string {
                if b[i] == b'\\' {
                    escaped_newline = i + 1 == b.len();
                    mask[i..(i + 2).min(b.len())].fill(true);
                    i += 2;
                    continue;
                }
                if b[i] == q {
                    if !triple {
                        self.string = None;
                    } else if b[i..].starts_with(&[q, q, q]) {
                        self.string = None;
                        i += 3;
                        continue;
                    }
                } else {
                    mask[i] = true;
                }
                i += 1;
                continue;
            }
            match b[i] {
                b'#' => {
                    mask[i..].fill(true);
                    break;
                }
                q @ (b'\'' | b'"') => {
                    if b[i..].starts_with(&[q, q, q]) {
                        self.string = Some((q, true));
                        i += 3;
                        continue;
                    }
                    self.string = Some((q, false));
                }
                b'(' | b'[' | b'{' => self.depth += 1,
                b')' | b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                b'\\' if i + 1 == b.len() => self.continued = true,
                _ => {}
            }
            i += 1;
        }
        // A single-quoted string cannot span lines unless the newline is escaped.
        if matches!(self.string, Some((_, false))) && !escaped_newline {
            self.string = None;
        }
        if let Some(code) = code.as_mut() {
            // Masked and non-ASCII bytes become spaces: keywords are ASCII.
            code.extend(
                b.iter()
                    .zip(&mask)
                    .map(|(&c, &m)| if m || !c.is_ascii() { ' ' } else { c as char }),
            );
            code.push('\n');
        }
    }
}

/// A clause that continues the compound statement above it rather than starting one.
fn is_continuation_clause(code: &str) -> bool {
    ["else", "elif", "except", "finally"].iter().any(|kw| {
        code.strip_prefix(kw)
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
    })
}

/// Splits `src` into its top-level statements, each with its continuation lines and
/// indented body, at the indentation of the first code line. Blank and comment lines
/// before the first statement are dropped; trailing whitespace of each statement is trimmed.
pub fn statements(src: &str) -> Vec<String> {
    let lines: Vec<&str> = src.lines().collect();
    statement_spans(src)
        .into_iter()
        .map(|(first, end)| lines[first..end].join("\n"))
        .collect()
}

/// Line ranges `[first, end)` (indices into `src.lines()`) of the top-level statements
/// of [`statements`], without trailing blank or comment lines.
pub(crate) fn statement_spans(src: &str) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut base_indent: Option<usize> = None;
    let mut scan = Scan::default();
    let mut decorator_pending = false;
    for (idx, line) in src.lines().enumerate() {
        let code = line.trim_start();
        let indent = line.len() - code.len();
        let is_code = scan.at_logical_line_start() && !code.is_empty() && !code.starts_with('#');
        // Inside a string or brackets every line counts, even a blank one.
        let counts = !scan.at_logical_line_start() || (!code.is_empty() && !code.starts_with('#'));
        if is_code {
            let base = *base_indent.get_or_insert(indent);
            let starts_new = indent <= base && !is_continuation_clause(code) && !decorator_pending;
            if starts_new {
                spans.push((idx, idx + 1));
            }
            decorator_pending = indent <= base && code.starts_with('@');
        }
        if let (Some(span), true) = (spans.last_mut(), counts) {
            span.1 = idx + 1;
        }
        scan.feed(line);
    }
    spans
}

/// Removes `n` leading spaces from every line that has them (lines with fewer keep theirs).
pub fn dedent(src: &str, n: usize) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let spaces = line.len() - line.trim_start_matches(' ').len();
        out.push_str(&line[spaces.min(n)..]);
        out.push('\n');
    }
    out
}

/// Indentation (in bytes) of the first code line of `src`.
pub fn first_indent(src: &str) -> usize {
    src.lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map_or(0, |l| l.len() - l.trim_start().len())
}

/// Whether `keyword` occurs as a whole word in `src` outside strings and comments.
pub fn has_keyword(src: &str, keyword: &str) -> bool {
    let mut scan = Scan::default();
    let mut code = Some(String::with_capacity(src.len()));
    for line in src.lines() {
        scan.feed_masked(line, &mut code);
    }
    has_word(&code.unwrap_or_default(), keyword)
}

/// Whether `word` occurs in `code` with no identifier character on either side.
pub fn has_word(code: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(pos) = code[from..].find(word).map(|p| p + from) {
        let left_ok = !code[..pos].ends_with(is_word);
        let right_ok = !code[pos + word.len()..].starts_with(is_word);
        if left_ok && right_ok {
            return true;
        }
        from = pos + word.len();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, expected: &[&str]) {
        assert_eq!(statements(src), expected, "source:\n{src}");
    }

    #[test]
    fn splits_simple_statements() {
        check("a = 1\nb = 2\n", &["a = 1", "b = 2"]);
    }

    #[test]
    fn keeps_bracket_continuations_together() {
        check(
            "assert f([1,\n2]) == [\n 3]\nx = 1",
            &["assert f([1,\n2]) == [\n 3]", "x = 1"],
        );
    }

    #[test]
    fn keeps_compound_statements_together() {
        let src = "for i in range(3):\n    assert f(i)\n\n    # note\nelse:\n    pass\nassert g()";
        check(
            src,
            &[
                "for i in range(3):\n    assert f(i)\n\n    # note\nelse:\n    pass",
                "assert g()",
            ],
        );
    }

    #[test]
    fn triple_quoted_strings_hide_statement_starts() {
        let src = "x = '''\nassert no\n'''\ny = \"a\\\"b\"";
        check(src, &["x = '''\nassert no\n'''", "y = \"a\\\"b\""]);
    }

    #[test]
    fn backslash_continuation_and_decorators() {
        check(
            "assert a == \\\n  b\n@dec\ndef f():\n  pass\nz=1",
            &["assert a == \\\n  b", "@dec\ndef f():\n  pass", "z=1"],
        );
    }

    #[test]
    fn indented_block_uses_first_line_indent() {
        check(
            "    assert x\n    y = (1,\n2)\n",
            &["    assert x", "    y = (1,\n2)"],
        );
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        check("a = ')'  # (\nb = 1", &["a = ')'  # (", "b = 1"]);
    }

    #[test]
    fn keyword_outside_strings_only() {
        assert!(has_keyword("for x in y:\n    assert x", "assert"));
        assert!(!has_keyword("print('assert')  # assert", "assert"));
        assert!(!has_keyword("reassert(x)", "assert"));
    }

    #[test]
    fn dedent_removes_at_most_n() {
        assert_eq!(dedent("    a\n  b\n      c", 4), "a\nb\n  c\n");
    }
}
