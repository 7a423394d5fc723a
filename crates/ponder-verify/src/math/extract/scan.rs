//! Linear scanners over model output: case-insensitive search, sentences, math spans,
//! numbers as written, words.

/// The last `max` bytes of `text`, cut at a character boundary.
pub(super) fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// ASCII case-insensitive search for `needle` (lowercase ASCII) from the end.
pub(super) fn rfind_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).rev().find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

pub(super) fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

pub(super) fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Offset of the word "is" (not inside another word).
pub(super) fn find_word_is(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(1)).find(|&i| {
        b[i..i + 2].eq_ignore_ascii_case(b"is")
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && !b.get(i + 2).is_some_and(u8::is_ascii_alphanumeric)
    })
}

/// Bytes up to the end of the line or a full stop followed by whitespace or the end.
pub(super) fn sentence_len(bytes: &[u8]) -> usize {
    let mut in_math = false;
    for (k, &b) in bytes.iter().enumerate() {
        match b {
            b'$' => in_math = !in_math,
            b'\n' | b'\r' => return k,
            b'.' if !in_math && bytes.get(k + 1).is_none_or(u8::is_ascii_whitespace) => return k,
            _ => {}
        }
    }
    bytes.len()
}

/// `(start, end, content)` of math spans in order: `$$..$$` and `\[..\]` (multi-line),
/// `$..$` and `\(..\)` (one line).
pub(super) fn math_spans(text: &str) -> Vec<(usize, usize, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    // Positions from which a closer was searched and not found: later searches from
    // further right cannot succeed either.
    let mut no_display_dollar = usize::MAX;
    let mut no_bracket = usize::MAX;
    let mut i = 0;
    while i < b.len() {
        let escaped = i > 0 && b[i - 1] == b'\\';
        if b[i] == b'$' && !escaped && b.get(i + 1) == Some(&b'$') {
            if i + 2 < no_display_dollar {
                if let Some(off) = text[i + 2..].find("$$") {
                    let end = i + 2 + off;
                    out.push((i, end + 2, text[i + 2..end].to_string()));
                    i = end + 2;
                    continue;
                }
                no_display_dollar = i + 2;
            }
            i += 2;
            continue;
        }
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'[') && !escaped {
            if i + 2 < no_bracket {
                if let Some(off) = text[i + 2..].find("\\]") {
                    let end = i + 2 + off;
                    out.push((i, end + 2, text[i + 2..end].to_string()));
                    i = end + 2;
                    continue;
                }
                no_bracket = i + 2;
            }
            i += 2;
            continue;
        }
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'(') && !escaped {
            // One line: search up to the newline.
            let line_end = text[i..].find('\n').map_or(b.len(), |k| i + k);
            if let Some(off) = text[i + 2..line_end].find("\\)") {
                let end = i + 2 + off;
                out.push((i, end + 2, text[i + 2..end].to_string()));
                i = end + 2;
            } else {
                i = line_end;
            }
            continue;
        }
        if b[i] == b'$' && !escaped && !(i > 0 && b[i - 1].is_ascii_digit()) {
            let line_end = text[i + 1..].find('\n').map_or(b.len(), |k| i + 1 + k);
            let mut j = i + 1;
            let mut found = None;
            while j < line_end {
                if b[j] == b'$' && b[j - 1] != b'\\' {
                    found = Some(j);
                    break;
                }
                j += 1;
            }
            match found {
                Some(end) if end > i + 1 => {
                    out.push((i, end + 1, text[i + 1..end].to_string()));
                    i = end + 1;
                }
                Some(end) => i = end + 1,
                None => i = line_end,
            }
            continue;
        }
        i += 1;
    }
    out
}

/// Between two math spans: `, `, "and", "or", ", and".
pub(super) fn connector_gap(gap: &str) -> bool {
    let g = gap.trim().trim_start_matches(',').trim();
    g.is_empty() || g.eq_ignore_ascii_case("and") || g.eq_ignore_ascii_case("or")
}

/// Words allowed in a bare answer: units of percent.
pub(super) const BARE_WORDS: &[&str] = &["percent", "percentage", "pct"];

/// A run of three or more letters that is not a LaTeX command name nor an allowed word.
pub(super) fn has_words(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let is_command = start > 0 && b[start - 1] == b'\\';
            let word = &s[start..i];
            if !is_command && word.len() >= 3 && !BARE_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word)) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

/// Short, without words, and containing a digit or a command: an answer on its own.
pub(super) fn is_bare(s: &str) -> bool {
    s.len() <= 200 && !has_words(s) && s.bytes().any(|c| c.is_ascii_digit() || c == b'\\')
}

/// Rule 7: the last number, as written: `-1,234.5`, `1 000`, `2,74`, `2/3`, `28%`.
pub(super) fn last_number(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let mut best = None;
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        if !starts {
            i += 1;
            continue;
        }
        let glued = i > 0 && (b[i - 1].is_ascii_alphabetic() || b[i - 1] == b'_' || b[i - 1] == b'^');
        let mut end = i + number_len(&b[i..]);
        // A simple fraction `2/3`.
        if b.get(end) == Some(&b'/') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end += 1 + number_len(&b[end + 1..]);
        }
        if !glued {
            let start = i - sign_len(b, i);
            let pct = percent_len(&b[end..]);
            best = Some(&text[start..end + pct]);
        }
        i = end.max(i + 1);
    }
    best.map(str::trim)
}

/// Length of the number starting at `b[0]`: thousands groups (`,` or one space then three
/// digits), a decimal part (`.` or `,` then digits).
pub(super) fn number_len(b: &[u8]) -> usize {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut k = digits(0);
    if (1..=3).contains(&k) && b[0] != b'0' {
        while matches!(b.get(k), Some(b',' | b' '))
            && digits(k + 1) == 3
            && !b.get(k + 4).is_some_and(u8::is_ascii_digit)
        {
            k += 4;
        }
    }
    if matches!(b.get(k), Some(b'.' | b',')) && b.get(k + 1).is_some_and(u8::is_ascii_digit) {
        k += 1 + digits(k + 1);
    }
    k
}

pub(super) fn sign_len(b: &[u8], at: usize) -> usize {
    let is_sign =
        |before: usize| before == 0 || !matches!(b[before - 1], b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b')');
    usize::from(at >= 1 && b[at - 1] == b'-' && is_sign(at - 1))
}

pub(super) fn percent_len(b: &[u8]) -> usize {
    if b.first() == Some(&b'%') {
        return 1;
    }
    if b.starts_with(b"\\%") {
        return 2;
    }
    0
}

/// Rule 5: the last math span, with spans before it that connectors join.
pub(super) fn last_math(text: &str) -> Option<String> {
    let spans = math_spans(text);
    let (mut start, _, last) = spans.iter().rev().find(|s| !s.2.trim().is_empty())?.clone();
    let idx = spans.iter().rposition(|s| s.0 == start)?;
    let mut parts = vec![last];
    for (s, e, content) in spans[..idx].iter().rev() {
        if !connector_gap(&text[*e..start]) || content.trim().is_empty() {
            break;
        }
        parts.push(content.clone());
        start = *s;
        if parts.len() >= 16 {
            break;
        }
    }
    parts.reverse();
    Some(parts.join(", "))
}
