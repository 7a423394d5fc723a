//! Multiple-choice answers: `\text{(B)}`, `(B)`, `B)`, `\textbf{(B)}\ 15`, and a bare `B`
//! facing one of those.
//!
//! Two choices are equal when their letters are; a choice that also gives its option's
//! value (`\textbf{(D)}\ 24`) answers, and is answered by, that value (`24`). Sets of
//! choices (`A, C` vs `C, A`) are lists of letters and need nothing here.

use super::normalize::unwrap_text_commands;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Choice {
    /// `A` to `J`.
    pub letter: char,
    /// The option's content after the letter (`15` in `\textbf{(B)}\ 15`), if given.
    pub value: Option<String>,
    /// Marked as a choice (brackets or a text wrapper), not a lone capital that could be a
    /// variable or a point.
    pub marked: bool,
}

/// The choice `cleaned` (a normalised answer) stands for, if it is one.
pub(crate) fn choice(cleaned: &str) -> Option<Choice> {
    if cleaned.len() > 4096 {
        return None;
    }
    let wrapped = cleaned.trim_start().starts_with('\\');
    let unwrapped = unwrap_text_commands(cleaned);
    let t = unwrapped.trim();
    let b = t.as_bytes();
    let is_letter = |c: Option<&u8>| c.is_some_and(|c| (b'A'..=b'J').contains(c));
    let (letter_at, rest_at) = if b.first() == Some(&b'(') && is_letter(b.get(1)) && b.get(2) == Some(&b')') {
        (1, 3)
    } else if is_letter(b.first()) && b.get(1) == Some(&b')') {
        (0, 2)
    } else if is_letter(b.first()) && b.len() == 1 {
        return Some(Choice { letter: b[0] as char, value: None, marked: wrapped });
    } else {
        return None;
    };
    let rest = t[rest_at..].trim();
    let another = rest.as_bytes().windows(3).any(|w| w[0] == b'(' && is_letter(w.get(1)) && w[2] == b')');
    if another {
        // `(C) and (D)`: several choices, a list.
        return None;
    }
    let value = (!rest.is_empty()).then(|| rest.to_string());
    Some(Choice { letter: b[letter_at] as char, value, marked: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(answer: &str, expected: Option<(char, Option<&str>)>) {
        let got = choice(answer).map(|c| (c.letter, c.value));
        let expected = expected.map(|(l, v)| (l, v.map(str::to_string)));
        assert_eq!(got, expected, "answer: {answer:?}");
    }

    #[test]
    fn shapes() {
        check("\\text{(B)}", Some(('B', None)));
        check("(B)", Some(('B', None)));
        check("B)", Some(('B', None)));
        check("B", Some(('B', None)));
        check("\\textbf{(B)} 15", Some(('B', Some("15"))));
        check("\\text{(B) }\\frac{1}{2}", Some(('B', Some("\\frac{1}{2}"))));
        check("(A, B)", None);
        check("x", None);
        check("K", None);
        check("(C) and (D)", None);
    }
}
