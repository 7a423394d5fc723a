//! Final-answer extraction (v1).
//!
//! Rules, first match wins:
//! 1 the last `\boxed{..}` or `\fbox{..}` (nested braces kept)
//! 2 the last `#### X` (GSM8K), the rest of its line
//! 3 the last "the answer is X" / "final answer: X" / "answer: X", the rest of the sentence
//! 4 the last number (`-1,234.5`, `.5`).
//!
//! Every rule is a single pass over the bytes, so a long or hostile output costs linear time.
//! Case-insensitive matching is ASCII-only on purpose: lowercasing Unicode can change byte
//! lengths and so shift every offset after it.

/// The final answer in `text`, if any, trimmed.
pub fn extract_answer(text: &str) -> Option<String> {
    last_boxed(text)
        .or_else(|| last_hashes(text))
        .or_else(|| last_answer_phrase(text))
        .or_else(|| last_number(text))
        .map(str::to_string)
}

/// Content of the last `\boxed{..}` / `\fbox{..}`; `\boxed 5` (no braces) takes one token.
fn last_boxed(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let closing = matching_braces(bytes);
    let mut best: Option<&str> = None;
    let mut i = 0;
    while let Some(off) = text[i..].find('\\') {
        let at = i + off;
        i = at + 1;
        let rest = &text[at + 1..];
        let Some(cmd_len) = ["boxed", "fbox"].iter().find(|c| rest.starts_with(**c)).map(|c| c.len()) else {
            continue;
        };
        let after = at + 1 + cmd_len;
        if bytes.get(after).is_some_and(u8::is_ascii_alphabetic) {
            continue; // another command, e.g. `\boxedfoo`
        }
        let open = after + count_spaces(&bytes[after..]);
        let content = match bytes.get(open) {
            Some(b'{') => match closing[open] {
                Some(close) => &text[open + 1..close],
                None => continue,
            },
            Some(_) if open > after => {
                let len = text[open..].find(|c: char| c.is_whitespace() || c == '$').unwrap_or(text.len() - open);
                &text[open..open + len]
            }
            _ => continue,
        };
        let content = content.trim();
        if !content.is_empty() {
            best = Some(content);
        }
    }
    best
}

/// For each `{`, the index of its matching `}` (one stack pass).
fn matching_braces(bytes: &[u8]) -> Vec<Option<usize>> {
    let mut closing = vec![None; bytes.len()];
    let mut stack = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' => stack.push(i),
            b'}' => {
                if let Some(open) = stack.pop() {
                    closing[open] = Some(i);
                }
            }
            _ => {}
        }
    }
    closing
}

fn count_spaces(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| **b == b' ' || **b == b'\t').count()
}

/// The rest of the line after the last `####` with something after it.
fn last_hashes(text: &str) -> Option<&str> {
    // Line by line from the end, so a run of `#` is never rescanned (`rfind` then trimming
    // forward over a long run would be quadratic).
    text.rsplit('\n').find_map(|line| {
        let at = line.rfind("####")?;
        Some(clean(line[at..].trim_start_matches('#'))).filter(|a| !a.is_empty())
    })
}

/// The sentence after the last `answer is` / `answer:` (so also "the answer is", "final answer:").
fn last_answer_phrase(text: &str) -> Option<&str> {
    // From the end: the last match usually wins at once, and a match before it reaches
    // into the later one's text, so at most two sentences are scanned.
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5)).rev().find_map(|i| {
        let start = answer_start(bytes, i)?;
        Some(clean(&text[start..start + sentence_len(&bytes[start..])])).filter(|a| !a.is_empty())
    })
}

/// Where the answer begins if `bytes[i..]` opens with `answer` then `:` or `is`.
fn answer_start(bytes: &[u8], i: usize) -> Option<usize> {
    if !bytes[i..].get(..6)?.eq_ignore_ascii_case(b"answer") || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
        return None;
    }
    let mut j = i + 6;
    j += bytes[j..].iter().take_while(|b| matches!(b, b' ' | b'\t' | b'*')).count();
    if bytes.get(j) == Some(&b':') {
        j += 1;
    } else if bytes.get(j..j + 2).is_some_and(|w| w.eq_ignore_ascii_case(b"is"))
        && !bytes.get(j + 2).is_some_and(u8::is_ascii_alphanumeric)
    {
        j += 2;
        if bytes.get(j) == Some(&b':') {
            j += 1;
        }
    } else {
        return None;
    }
    // "The answer is:\n42" puts the answer on the next line.
    Some(j + bytes[j..].iter().take_while(|b| b.is_ascii_whitespace()).count())
}

/// Bytes up to the end of the line or a full stop followed by whitespace or the end
/// (so `3.5` stays whole).
fn sentence_len(bytes: &[u8]) -> usize {
    for (k, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' | b'\r' => return k,
            b'.' if bytes.get(k + 1).is_none_or(u8::is_ascii_whitespace) => return k,
            _ => {}
        }
    }
    bytes.len()
}

/// Trims whitespace, trailing full stops, `**` bold markers and a surrounding `$..$`.
fn clean(mut s: &str) -> &str {
    loop {
        let before = s.len();
        s = s.trim().trim_end_matches('.');
        s = s.strip_prefix("**").unwrap_or(s);
        s = s.strip_suffix("**").unwrap_or(s);
        if s.len() >= 2 && s.starts_with('$') && s.ends_with('$') {
            s = &s[1..s.len() - 1];
        }
        if s.len() == before {
            return s;
        }
    }
}

/// The last number: optional sign, digits with optional thousands groups, optional decimals.
fn last_number(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut best = None;
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit()
            || (bytes[i] == b'.'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()));
        if !starts {
            i += 1;
            continue;
        }
        let end = i + number_len(&bytes[i..]);
        best = Some(&text[i - sign_len(bytes, i)..end]);
        i = end;
    }
    best.map(str::trim)
}

/// Length of the number starting at `bytes[0]` (a digit, or `.` then a digit).
fn number_len(bytes: &[u8]) -> usize {
    let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut k = digits(0);
    if (1..=3).contains(&k) {
        // Thousands groups: `,` then exactly three digits.
        while bytes.get(k) == Some(&b',') && digits(k + 1) == 3 {
            k += 4;
        }
    }
    if bytes.get(k) == Some(&b'.') && bytes.get(k + 1).is_some_and(u8::is_ascii_digit) {
        k += 1 + digits(k + 1);
    }
    k
}

/// Bytes of a minus sign (`-` or U+2212) just before `at`, if it is a sign rather than
/// an operator (`10-3` is a subtraction, `= -3` a negative number).
fn sign_len(bytes: &[u8], at: usize) -> usize {
    let is_sign_context = |before: usize| {
        before == 0 || !matches!(bytes[before - 1], b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b')' | b']' | b'}')
    };
    if at >= 1 && bytes[at - 1] == b'-' && is_sign_context(at - 1) {
        1
    } else if at >= 3 && &bytes[at - 3..at] == "\u{2212}".as_bytes() && is_sign_context(at - 3) {
        3
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: Option<&str>) {
        assert_eq!(extract_answer(input).as_deref(), expected, "input: {input:?}");
    }

    #[test]
    fn boxed() {
        check(r"so \boxed{5}", Some("5"));
        check(r"\boxed{1} then \boxed{\frac{3}{4}} done", Some(r"\frac{3}{4}"));
        check(r"\fbox{7}", Some("7"));
        check(r"$\boxed {12}$", Some("12"));
        check(r"\boxed 9$", Some("9"));
        check(r"\boxed{ } and \boxed{3}", Some("3"));
        check(r"\boxed{3} then \boxed{", Some("3"));
        check(r"The answer is 4. \boxed{5}", Some("5"));
        check(r"\boxedx{3} 8", Some("8"));
    }

    #[test]
    fn hashes() {
        check("She makes 9 * 2 = $18\n#### 18", Some("18"));
        check("#### 1,234\nthanks 7", Some("1,234"));
        check("#### 1\n#### 2.", Some("2"));
        check("#### 3\n####\n", Some("3"));
    }

    #[test]
    fn answer_phrase() {
        check("3 + 4 = 7. The answer is 7.", Some("7"));
        check("the answer is 3.5. Then 9", Some("3.5"));
        check("The answer is 12 marbles.", Some("12 marbles"));
        check("Final Answer: $\\frac{1}{2}$", Some("\\frac{1}{2}"));
        check("**Answer:** 42", Some("42"));
        check("The answer is **42**.", Some("42"));
        check("ANSWER IS 5\nnext", Some("5"));
        check("The answer is:\n42", Some("42"));
        check("The answer is $18.", Some("$18"));
        check("answer is 1. Now the answer is 2.", Some("2"));
        check("answers is 9 and 4", Some("4"));
        check("the answer isn't 3, it is 4", Some("4"));
        check("The answer is.", None);
    }

    #[test]
    fn last_number() {
        check("we get 3 then 4", Some("4"));
        check("total 1,234,567 apples", Some("1,234,567"));
        check("x = -5", Some("-5"));
        check("x = \u{2212}5", Some("\u{2212}5"));
        check("10-3", Some("3"));
        check("it is 0.25.", Some("0.25"));
        check("about .5 cup", Some(".5"));
        check("pairs 1, 2", Some("2"));
        check("weird 1,23", Some("23"));
        check("1234,567", Some("567"));
        check("no numbers here", None);
        check("", None);
    }

    #[test]
    fn regression_unicode_offsets() {
        check("İİİ answer: ß 5", Some("ß 5"));
        check("é\u{2212}", None);
    }

    /// Each input would take minutes if any rule rescanned the text per match.
    #[test]
    fn adversarial_inputs_take_linear_time() {
        let n = 200_000;
        for unit in ["\\boxed{", "#", "answer: $$ ", "answer is ", "1,", "-", "{", "answer:**", "\\boxed "] {
            let text = unit.repeat(n / unit.len());
            let _ = extract_answer(&text);
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = extract_answer(&s);
        }

        #[test]
        fn never_panics_near_markers(parts in prop::collection::vec(
            prop_oneof![
                Just(r"\boxed".to_string()), Just("{".to_string()), Just("}".to_string()),
                Just("####".to_string()), Just("answer".to_string()), Just(" is ".to_string()),
                Just(":".to_string()), Just("-".to_string()), Just("\u{2212}".to_string()),
                Just(".".to_string()), Just(",".to_string()), Just("$".to_string()),
                Just("**".to_string()), "[0-9]{1,4}", "\\PC{0,3}",
            ], 0..40)) {
            let s = parts.concat();
            if let Some(a) = extract_answer(&s) {
                prop_assert_eq!(a.trim(), a.as_str());
                prop_assert!(!a.is_empty());
            }
        }

        #[test]
        fn the_answer_is_wins_over_later_numbers(n in 0u64..1_000_000, m in 0u64..1000) {
            let text = format!("Step 1: 3 + 4 = 7.\nThe answer is {n}.\n(checked {m} times)");
            prop_assert_eq!(extract_answer(&text), Some(n.to_string()));
        }
    }
}
