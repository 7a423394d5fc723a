//! What follows an anchor ("the answer is", "Answer:", "final answer is"): the answer
//! itself (a math span, a choice, a number with its unit, an expression), not the
//! sentence around it. A sentence of prose with no answer in it ("found by adding the
//! amounts") is no answer (issue 17), not a free-text vote class.

use super::scan::{connector_gap, floor_boundary, has_words, is_bare, last_math, math_spans, number_len, sentence_len};
use super::MAX_ANCHORED_BYTES;
use crate::math::units::is_known;

/// What an anchor is followed by.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Anchored {
    Answer(String),
    /// Words without an answer in them.
    Prose,
}

/// Words before a number that make it an operand, not a result: "found by adding 1".
const OPERAND_WORDS: &[&str] = &[
    "add", "adding", "added", "subtract", "subtracting", "subtracted", "multiply", "multiplying", "multiplied",
    "divide", "dividing", "divided", "by", "from", "plus", "minus", "times",
];

/// What follows an anchor: a math span right at its start, a choice letter, else the
/// answer stated in the anchor's sentence; `None` when nothing follows. Text answers and
/// [`Anchored::Prose`] are only read from a concluding sentence (no digit after it): "the
/// answer: first, we note .. 3 + 4 = 7" is working, not an answer.
pub(super) fn after_anchor(rest: &str) -> Option<Anchored> {
    let rest = &rest[..floor_boundary(rest, MAX_ANCHORED_BYTES)];
    let s = rest.trim_start_matches([' ', '\t', ':', '*']).trim_start();
    if let Some(ans) = leading_math(s) {
        return Some(Anchored::Answer(ans));
    }
    if let Some(letter) = choice_letter(s) {
        return Some(Anchored::Answer(letter));
    }
    let line_end = s.find('\n').unwrap_or(s.len());
    let line = &s[..line_end];
    let cut = sentence_len(line.as_bytes());
    let sentence = line[..cut].trim().trim_end_matches(['.', '*']).trim();
    if sentence.is_empty() {
        return None;
    }
    let concluding = !s[cut..].bytes().any(|b| b.is_ascii_digit());
    match answer_in(sentence, concluding) {
        Some(a) => Some(Anchored::Answer(a)),
        None => concluding.then_some(Anchored::Prose),
    }
}

/// The answer a sentence states, first match wins: the sentence itself if it has no
/// words (`2 * 18 = 36`, `5 and 7`) or is a number and its unit (`6 minutes`); the value
/// after its last `=` ("2 * 18 = 36, which is the total"); a short text (`Monday`); a
/// number that opens it ("3 (the red balls)"); its last math span; a short text before a
/// comma ("Monday, since .."); its only number, unless that is an operand ("found by
/// adding 1").
fn answer_in(sentence: &str, concluding: bool) -> Option<String> {
    if is_bare(sentence) || is_number_list(sentence) {
        return Some(sentence.to_string());
    }
    if let Some(n) = leading_number(sentence) {
        // `6 minutes`: the unit is part of the answer (`6 hours` would be another).
        let words = sentence[n.len()..].trim();
        if words.split_whitespace().count() <= 3 && is_known(words) {
            return Some(sentence.to_string());
        }
    }
    if let Some(eq) = sentence.rfind('=') {
        let tail = sentence[eq + 1..].trim_start();
        if let Some(m) = leading_math(tail) {
            return Some(m);
        }
        if let Some(n) = leading_number(tail) {
            return Some(n.to_string());
        }
    }
    if concluding && is_short_text(sentence) {
        return Some(sentence.to_string());
    }
    if let Some(n) = leading_number(sentence) {
        return Some(n.to_string());
    }
    if let Some(m) = last_math(sentence).filter(|m| !has_words(m)) {
        return Some(m);
    }
    // "Monday, since 10 days later is Monday": a short text, then its reason.
    if let Some((clause, _)) = sentence.split_once([',', ';']).filter(|_| concluding) {
        if is_short_text(clause.trim()) {
            return Some(clause.trim().to_string());
        }
    }
    sole_result(sentence)
}

/// Numbers joined by commas, "and", "or" (`5 and 7`).
fn is_number_list(s: &str) -> bool {
    let items = s.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty());
    let mut n_numbers = 0;
    for w in items {
        if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or") {
            continue;
        }
        let digits = w.strip_prefix('-').unwrap_or(w);
        if digits.is_empty()
            || number_len(digits.as_bytes()) != digits.len()
            || !digits.starts_with(|c: char| c.is_ascii_digit())
        {
            return false;
        }
        n_numbers += 1;
    }
    n_numbers >= 2
}

/// A few words without digits or markup: a text answer (`Monday`, `yes`, `New York`).
fn is_short_text(s: &str) -> bool {
    s.len() <= 40
        && s.split_whitespace().count() <= 3
        && s.chars().all(|c| c.is_alphabetic() || c.is_whitespace() || matches!(c, '-' | '\''))
}

/// The number at the start of `s` as written: sign, currency, digits, a `/b`, a percent.
fn leading_number(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut k = usize::from(b.first() == Some(&b'-'));
    if b[k..].starts_with(b"\\$") {
        k += 2;
    } else if b.get(k) == Some(&b'$') {
        k += 1;
    }
    let digits_at = k;
    if !b.get(k).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    k += number_len(&b[k..]);
    if b.get(k) == Some(&b'/') && b.get(k + 1).is_some_and(u8::is_ascii_digit) {
        k += 1 + number_len(&b[k + 1..]);
    }
    if b.get(k) == Some(&b'%') {
        k += 1;
    }
    // `12abc` is not a number followed by words.
    if b.get(k).is_some_and(u8::is_ascii_alphabetic) || k == digits_at {
        return None;
    }
    Some(&s[..k])
}

/// The one number in `s` that is not an operand; `None` if there are several.
fn sole_result(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut found: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        let end = i + number_len(&b[i..]);
        if found.is_some() {
            return None;
        }
        found = Some((i, end));
        i = end.max(i + 1);
    }
    let (start, end) = found?;
    let before = s[..start].trim_end_matches(['$', ' ']).rsplit(' ').next().unwrap_or("");
    let operand = OPERAND_WORDS.iter().any(|w| w.eq_ignore_ascii_case(before));
    let sign = usize::from(start > 0 && b[start - 1] == b'-');
    (!operand).then(|| s[start - sign..end].to_string())
}

/// A math span at the very start of `s`, joined with spans that "and"/"or"/"," connect.
pub(super) fn leading_math(s: &str) -> Option<String> {
    let spans = math_spans(s);
    let first = spans.first()?;
    if first.0 != 0 {
        return None;
    }
    let mut parts = vec![first.2.clone()];
    let mut end = first.1;
    for (st, e, content) in spans.iter().skip(1) {
        if !connector_gap(&s[end..*st]) {
            break;
        }
        parts.push(content.clone());
        end = *e;
    }
    Some(parts.join(", "))
}

/// `(B)`, `B.`, `B)` or a lone `B` (A–J) at the start of `s`.
fn choice_letter(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let (letter_at, needs_close) = if b.first() == Some(&b'(') { (1, true) } else { (0, false) };
    let l = *b.get(letter_at)?;
    if !(b'A'..=b'J').contains(&l) {
        return None;
    }
    let next = b.get(letter_at + 1).copied();
    let ok = if needs_close {
        next == Some(b')')
    } else {
        next.is_none_or(|c| matches!(c, b'.' | b')' | b',' | b' ' | b'\n' | b'*' | b':'))
    };
    // "A car travels..." is a sentence, not a choice: a lone capital then a lowercase word.
    let then_word = !needs_close && next == Some(b' ') && b.get(letter_at + 2).is_some_and(u8::is_ascii_lowercase);
    (ok && !then_word).then(|| (l as char).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rest: &str, expected: Option<&str>) {
        let got = match after_anchor(rest) {
            Some(Anchored::Answer(a)) => Some(a),
            _ => None,
        };
        assert_eq!(got.as_deref(), expected, "after anchor: {rest:?}");
    }

    #[test]
    fn answers_not_sentences() {
        check(" 2 * 18 = 36, which is lucas's total amount", Some("36"));
        check(" 6 minutes.", Some("6 minutes"));
        check(" Monday.", Some("Monday"));
        check(" 3 (the number of red balls)", Some("3"));
        check(" she needs 12 more stickers to fill the album", Some("12"));
        check(" The total cost is $120.", Some("120"));
        check(" $\\frac{1}{2}$ of the cake", Some("\\frac{1}{2}"));
        check(" (B)", Some("B"));
        check(" 5 and 7.", Some("5 and 7"));
        check(" 12 loaves.", Some("12"));
        check(" 25 miles per hour", Some("25 miles per hour"));
        check(" Monday, since 10 days later is Monday.", Some("Monday"));
    }

    #[test]
    fn prose_is_no_answer() {
        check(" found by adding 1", None);
        check(" found by subtracting 2 from 9", None);
        check(" It is found by adding 4 and 6", None);
        check(" found by adding the amounts", None);
        assert_eq!(after_anchor(" found by adding 1"), Some(Anchored::Prose));
        assert_eq!(after_anchor("   "), None);
        // Working, not a conclusion: no answer here, and the search goes on.
        assert_eq!(after_anchor(" first, we note that 3 + 4 = 7."), Some(Anchored::Answer("7".into())));
        assert_eq!(after_anchor(" let me think. So x = 5."), None);
    }
}
