//! Final-answer extraction (v1).
//!
//! Rules, first match wins:
//! 1 the last `\boxed{..}` or `\fbox{..}` (nested braces kept)
//! 2 the last `#### X` (GSM8K), the rest of its line
//! 3 the last "the answer is X" / "final answer: X" / "answer: X": the answer its sentence
//!   states (see [`stated_answer`]), not the whole sentence
//! 4 the last number (`-1,234.5`, `.5`).
//!
//! A sentence after "answer" that states no answer ("Answer: found by adding 1") means the
//! sample has no answer: rule 4 is not tried, so prose never becomes a vote class and no
//! stray number is taken for the answer (issue 17).
//!
//! Every rule is a single pass over the bytes, so a long or hostile output costs linear time.
//! Case-insensitive matching is ASCII-only on purpose: lowercasing Unicode can change byte
//! lengths and so shift every offset after it.

use super::equivalence::numeric_value;

/// The final answer in `text`, if any, trimmed.
pub fn extract_answer(text: &str) -> Option<String> {
    if let Some(a) = last_boxed(text).or_else(|| last_hashes(text)) {
        return Some(a.to_string());
    }
    match last_answer_phrase(text) {
        Some(Stated::Answer(a)) => Some(a.to_string()),
        Some(Stated::Prose) => None,
        None => last_number(text).map(str::to_string),
    }
}

/// What the sentence after an "answer" anchor holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stated<'a> {
    Answer(&'a str),
    /// Words with no answer in them.
    Prose,
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

/// The answer stated after the last `answer is` / `answer:` (so also "the answer is",
/// "final answer:") that states one; [`Stated::Prose`] if the anchors found state none.
fn last_answer_phrase(text: &str) -> Option<Stated<'_>> {
    // From the end: the last match usually wins at once. Prose sends the search on to
    // earlier anchors, at most MAX_ANCHORS of them, each sentence read to at most
    // MAX_SENTENCE_BYTES: linear time on any input.
    const MAX_ANCHORS: usize = 8;
    const MAX_SENTENCE_BYTES: usize = 1024;
    let bytes = text.as_bytes();
    let mut prose = None;
    let mut n_anchors = 0;
    for i in (0..bytes.len().saturating_sub(5)).rev() {
        let Some(start) = answer_start(bytes, i) else { continue };
        let window = &bytes[start..bytes.len().min(start + MAX_SENTENCE_BYTES)];
        let mut end = start + sentence_len(window);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let sentence = clean(&text[start..end]);
        if sentence.is_empty() {
            continue;
        }
        // Text answers and prose count only in a concluding sentence (no digit after it):
        // "the answer: first, we note .. 3 + 4 = 7" is working, not an answer.
        let concluding = !bytes[end..].iter().any(u8::is_ascii_digit);
        match stated_answer(sentence, concluding).filter(|a| !a.is_empty()) {
            Some(a) => return Some(Stated::Answer(a)),
            None if concluding => prose = Some(Stated::Prose),
            None => {}
        }
        n_anchors += 1;
        if n_anchors >= MAX_ANCHORS {
            break;
        }
    }
    prose
}

/// Words before a number that make it an operand, not a result ("found by adding 1").
const OPERAND_WORDS: &[&str] = &[
    "add", "adding", "added", "subtract", "subtracting", "subtracted", "multiply", "multiplying", "multiplied",
    "divide", "dividing", "divided", "by", "from", "plus", "minus", "times",
];

/// The answer a sentence after "answer" states, first match wins: the sentence if it is
/// a number (`12 marbles`, `$18`, `x = 5`); the number after its last `=` ("2 * 18 = 36,
/// which is the total"); a choice `(B)`; the sentence if it has no words (`3x + 2`) or is
/// a short text (`Paris`); the number that opens it ("3 (the red balls)"); a short text
/// before a comma ("Paris, the capital"); its only number, unless that is an operand.
/// Text answers are taken from a `concluding` sentence only. `None`: no answer in it.
fn stated_answer(sentence: &str, concluding: bool) -> Option<&str> {
    if numeric_value(sentence).is_some() {
        return Some(sentence);
    }
    if let Some(eq) = sentence.rfind('=') {
        if let Some(n) = leading_number(sentence[eq + 1..].trim_start()) {
            return Some(n);
        }
    }
    if let Some(letter) = choice(sentence) {
        return Some(letter);
    }
    if !has_words(sentence) || (concluding && is_short_text(sentence)) {
        return Some(sentence);
    }
    if let Some(n) = leading_number(sentence) {
        return Some(n);
    }
    // "Paris, the capital of France": a short text, then a remark.
    if let Some((clause, _)) = sentence.split_once([',', ';']).filter(|_| concluding) {
        if is_short_text(clause.trim()) {
            return Some(clause.trim());
        }
    }
    sole_result(sentence)
}

/// `(B)` or `B` alone (A–J): the letter.
fn choice(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or(s);
    (inner.len() == 1 && inner.bytes().all(|b| (b'A'..=b'J').contains(&b))).then_some(inner)
}

/// A run of three or more ASCII letters that is not a LaTeX command nor the `and` of a
/// list (`5 and 7`).
fn has_words(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let run = b[i..].iter().take_while(|c| c.is_ascii_alphabetic()).count();
        let is_and = b[i..i + run].eq_ignore_ascii_case(b"and");
        if run >= 3 && !is_and && !(i > 0 && b[i - 1] == b'\\') {
            return true;
        }
        i += run.max(1);
    }
    false
}

/// A few words without digits or markup: a text answer (`Paris`, `yes`, `New York`).
fn is_short_text(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.split_whitespace().count() <= 3
        && s.chars().all(|c| c.is_alphabetic() || c.is_whitespace() || matches!(c, '-' | '\''))
}

/// The number that opens `s` (sign and currency included), if a word does not continue it.
fn leading_number(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let sign = usize::from(b.first() == Some(&b'-'));
    let currency = if b[sign..].starts_with(b"\\$") { 2 } else { usize::from(b.get(sign) == Some(&b'$')) };
    let at = sign + currency;
    if !b.get(at).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let end = at + number_len(&b[at..]);
    (!b.get(end).is_some_and(u8::is_ascii_alphabetic)).then(|| &s[..end])
}

/// The one number in `s`, unless it is an operand; `None` if there are several.
fn sole_result(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut found = None;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        if found.is_some() {
            return None;
        }
        let end = i + number_len(&b[i..]);
        found = Some((i - sign_len(b, i), end));
        i = end.max(i + 1);
    }
    let (start, end) = found?;
    let before = s[..start].trim_end_matches(['$', ' ']).rsplit(' ').next().unwrap_or("");
    let operand = OPERAND_WORDS.iter().any(|w| w.eq_ignore_ascii_case(before));
    (!operand).then(|| &s[start..end])
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
        // An empty clause before a comma is no answer (found by the property test below).
        check(r"answer is ,answer\boxed", None);
    }

    #[test]
    fn hashes() {
        check("She makes 9 * 2 = $18\n#### 18", Some("18"));
        check("#### 1,234\nthanks 7", Some("1,234"));
        check("#### 1\n#### 2.", Some("2"));
        check("#### 3\n####\n", Some("3"));
    }

    /// Issue 17: the answer itself, not the sentence; prose with no answer is no answer.
    #[test]
    fn regression_issue_17_stated_answers() {
        check("Answer: 2 * 18 = 36, which is lucas's total amount", Some("36"));
        check("So 9 + 1 = 10.\nAnswer: found by adding 1", None);
        check("Answer: It is found by adding 4 and 6", None);
        check("Answer: she needs 12 more stickers", Some("12"));
        check("Answer: 3 (the number of red balls)", Some("3"));
        check("The answer is (B).", Some("B"));
        check("The answer is Paris.", Some("Paris"));
        check("The answer is Paris, the capital of France.", Some("Paris"));
        check("To find the answer: first, we add. So 3 + 4 = 7", Some("7"));
        check("The answer is 3x + 2.", Some("3x + 2"));
        check("The answer is 5 and 7.", Some("5 and 7"));
        check("The answer is 7. Again, the answer is found by adding 1", Some("7"));
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
        for unit in
            ["\\boxed{", "#", "answer: $$ ", "answer is ", "1,", "-", "{", "answer:**", "\\boxed ", "Answer: found by adding 1 and "]
        {
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
