//! LaTeX wrappers removed from answers (`\text{..}`, `\boxed{..}`): the one implementation
//! that both the v1 numeric rules and ponder-verify's math grader use.

/// `\text{a \textbf{b}}` → `a b` for every command in `wrappers` followed by a `{` group,
/// in one pass: a stack remembers which `{` belonged to a wrapper so its `}` is dropped
/// too. Other commands are copied whole, so `\{` and `\}` never count as braces. Linear
/// in the input on any input, unbalanced braces included.
pub fn unwrap_wrappers(s: &str, wrappers: &[&str]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut wrapper_braces: Vec<bool> = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            let name_len = rest[1..].bytes().take_while(u8::is_ascii_alphabetic).count();
            let name = &rest[1..1 + name_len];
            let after = &rest[1 + name_len..];
            let spaces = after.len() - after.trim_start_matches(' ').len();
            if wrappers.contains(&name) && after[spaces..].starts_with('{') {
                wrapper_braces.push(true);
                rest = &after[spaces + 1..];
                continue;
            }
            // Copy the whole command so `\{` or `\}` does not count as a brace.
            let len = if name_len == 0 { 1 + rest[1..].chars().next().map_or(0, char::len_utf8) } else { 1 + name_len };
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        match c {
            '{' => wrapper_braces.push(false),
            '}' if wrapper_braces.pop() == Some(true) => {
                rest = &rest[1..];
                continue;
            }
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: &str) {
        assert_eq!(unwrap_wrappers(input, &["text", "textbf", "boxed"]), expected, "input: {input:?}");
    }

    #[test]
    fn wrappers_go_and_their_braces_with_them() {
        check("\\text{a \\textbf{b}}", "a b");
        check("\\text {5}", "5");
        check("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}");
        // Not a wrapper: copied whole, its braces kept.
        check("\\mathrm{x}", "\\mathrm{x}");
        // Escaped braces are not groups.
        check("\\text{\\{1\\}}", "\\{1\\}");
        // Unbalanced input neither panics nor loses text.
        check("\\text{5", "5");
        check("5}}", "5}}");
        check("\\", "\\");
        check("\\é", "\\é");
    }
}
