//! The final answer in a model output.
//!
//! Rules, first match wins:
//! 1 "The final answer is X. I hope it is correct." (the Minerva format a prompt asked for)
//! 2 the last `\boxed{..}` / `\fbox{..}` (nested braces), joined with boxes just before it
//!   when only a connector separates them (`\boxed{1} and \boxed{2}` → `1, 2`)
//! 3 "final answer ... is X" (within 100 bytes)
//! 4 "answer: X" / "answer is X" / `#### X` (GSM8K)
//! 5 the last math span (`$..$`, `$$..$$`, `\(..\)`, `\[..\]`), joined with spans just
//!   before it when "and", "or" or a comma separates them
//! 6 the whole text, if it is short and has no words (a bare answer like `1,000.99`)
//! 7 the last number (`-1,234.5`, `2/3`, `28%`), not glued to a letter before it.
//!
//! After an anchor (rules 1, 3, 4) the answer is the math span that starts it, a choice
//! letter (`(B)`), the sentence if it has no words, or else the sentence's last number.
//!
//! Every rule is a linear pass: a scan that fails remembers where, so a hostile output
//! costs O(n), not O(n²).

use super::limits::MAX_OUTPUT_BYTES;

/// How far after an anchor ("answer:") the answer is looked for.
const MAX_ANCHORED_BYTES: usize = 4096;

/// How many "answer" phrases are tried, from the last one back.
const MAX_ANCHOR_TRIES: usize = 8;

/// The final answer in `text`, trimmed; `None` if there is nothing answer-like.
pub fn extract(text: &str) -> Option<String> {
    let text = tail(text, MAX_OUTPUT_BYTES);
    let answer = minerva(text)
        .or_else(|| boxed(text))
        .or_else(|| final_answer_is(text))
        .or_else(|| answer_phrase(text))
        .or_else(|| hashes(text))
        .or_else(|| bare(text))
        .or_else(|| last_math_or_number(text))?;
    let answer = answer.trim().to_string();
    (!answer.is_empty()).then_some(answer)
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> &str {
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
fn rfind_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).rev().find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Rule 1: "final answer is X. I hope" (X a math span or the text up to "I hope").
fn minerva(text: &str) -> Option<String> {
    let at = rfind_ci(text, "final answer is")?;
    let rest = &text[at + "final answer is".len()..];
    let hope = find_ci(rest, "i hope")?;
    if hope > 300 {
        return None;
    }
    after_anchor(&rest[..hope])
}

/// Rule 2: the last box, with boxes just before it that a connector joins.
fn boxed(text: &str) -> Option<String> {
    let boxes = all_boxes(text);
    let (mut start, _, last) = boxes.last()?.clone();
    let mut parts = vec![last];
    for (s, e, content) in boxes.iter().rev().skip(1) {
        if !joinable_gap(&text[*e..start]) {
            break;
        }
        parts.push(content.clone());
        start = *s;
        if parts.len() >= 16 {
            break;
        }
    }
    parts.reverse();
    // The same answer boxed twice in a row is one answer.
    parts.dedup();
    Some(parts.join(", "))
}

/// `(start, end, content)` of every `\boxed{..}` / `\fbox{..}`, in order.
fn all_boxes(text: &str) -> Vec<(usize, usize, String)> {
    let bytes = text.as_bytes();
    // Candidate `{` after each `\boxed`, then one stack pass that records only their
    // matches: memory in the number of boxes, not the length of the text.
    let mut openers = Vec::new();
    let mut from = 0;
    while let Some(off) = text[from..].find('\\') {
        let at = from + off;
        from = at + 1;
        let rest = &text[at + 1..];
        if let Some(cmd) = ["boxed", "fbox"].iter().find(|c| rest.starts_with(**c)) {
            let after = at + 1 + cmd.len();
            let open = after + bytes[after..].iter().take_while(|b| **b == b' ').count();
            if bytes.get(open) == Some(&b'{') {
                openers.push(open);
            }
        }
    }
    let mut closing: Vec<Option<usize>> = vec![None; openers.len()];
    let mut stack = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' => stack.push(i),
            b'}' => {
                if let Some(open) = stack.pop() {
                    if let Ok(k) = openers.binary_search(&open) {
                        closing[k] = Some(i);
                    }
                }
            }
            _ => {}
        }
    }
    let close_of = |open: usize| openers.binary_search(&open).ok().and_then(|k| closing[k]);
    let mut out = Vec::new();
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
            continue;
        }
        let open = after + bytes[after..].iter().take_while(|b| **b == b' ').count();
        let (content, end) = match bytes.get(open) {
            Some(b'{') => match close_of(open) {
                Some(close) => (&text[open + 1..close], close + 1),
                None => continue,
            },
            Some(_) if open > after => {
                // `\boxed 5`: one token.
                let len = text[open..].find(|c: char| c.is_whitespace() || c == '$').unwrap_or(text.len() - open);
                (&text[open..open + len], open + len)
            }
            _ => continue,
        };
        let content = content.trim();
        if !content.is_empty() {
            // `\boxed{\boxed{5}}` and `\\boxed`: the outer start is the backslash run.
            let start = at - text[..at].bytes().rev().take_while(|b| *b == b'\\').count();
            out.push((start, end, content.to_string()));
        }
        i = i.max(at + 1);
    }
    // A box inside another: keep the outer one only.
    let mut kept: Vec<(usize, usize, String)> = Vec::new();
    for b in out {
        if kept.last().is_some_and(|k| b.0 < k.1) {
            continue;
        }
        kept.push(b);
    }
    kept
}

/// Between two boxes: only punctuation, math delimiters and spacing, or a short text with
/// "and" / "or" in it (`\boxed{1} papers and \boxed{2}`).
fn joinable_gap(gap: &str) -> bool {
    if gap.len() > 60 {
        return false;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    for c in gap.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c.to_ascii_lowercase());
        } else {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            if c == '\\' {
                word.push('\\');
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let filler = |w: &str| matches!(w, "\\quad" | "\\qquad" | "\\text" | "\\" | "\\mbox" | "\\textbf" | "\\textrm");
    let words: Vec<&str> = words.iter().map(String::as_str).filter(|w| !filler(w)).collect();
    words.is_empty() || words.iter().any(|w| matches!(*w, "and" | "or"))
}

/// Rule 3: "final answer ... is X", the "is" within 100 bytes of the last "final answer"
/// and before the end of its sentence.
fn final_answer_is(text: &str) -> Option<String> {
    let at = rfind_ci(text, "final answer")?;
    let rest = &text[at + "final answer".len()..];
    let window = &rest[..floor_boundary(rest, 100)];
    let sentence_end = sentence_len(window.as_bytes());
    let is_at = find_word_is(&window[..sentence_end])?;
    after_anchor(&rest[is_at + 2..])
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Offset of the word "is" (not inside another word).
fn find_word_is(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(1)).find(|&i| {
        b[i..i + 2].eq_ignore_ascii_case(b"is")
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && !b.get(i + 2).is_some_and(u8::is_ascii_alphanumeric)
    })
}

/// Rule 4: the last "answer" followed by `:` or "is".
fn answer_phrase(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    let mut tries = 0;
    // From the end; each miss moves left, so the scan is linear.
    while let Some(i) = rfind_ci(&text[..end], "answer") {
        end = i;
        tries += 1;
        if tries > MAX_ANCHOR_TRIES {
            return None;
        }
        if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
            continue;
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
            continue;
        }
        if let Some(a) = after_anchor(&text[j..]) {
            return Some(a);
        }
    }
    None
}

/// `#### X` (GSM8K): the rest of the line after the last `####`.
fn hashes(text: &str) -> Option<String> {
    text.rsplit('\n').find_map(|line| {
        let at = line.rfind("####")?;
        let a = line[at..].trim_start_matches('#').trim().trim_end_matches('.').trim();
        (!a.is_empty()).then(|| a.to_string())
    })
}

/// What follows an anchor: a math span right at its start, a choice letter, the sentence
/// if it is bare, or the sentence's last math span or number.
fn after_anchor(rest: &str) -> Option<String> {
    let rest = &rest[..floor_boundary(rest, MAX_ANCHORED_BYTES)];
    let s = rest.trim_start_matches([' ', '\t', ':', '*']).trim_start();
    if let Some(ans) = leading_math(s) {
        return Some(ans);
    }
    if let Some(letter) = choice_letter(s) {
        return Some(letter);
    }
    let line_end = s.find('\n').unwrap_or(s.len());
    let line = &s[..line_end];
    let sentence = line[..sentence_len(line.as_bytes())].trim().trim_end_matches(['.', '*']).trim();
    if sentence.is_empty() {
        return None;
    }
    if is_bare(sentence) {
        return Some(sentence.to_string());
    }
    if let Some(m) = last_math(sentence) {
        if !has_words(&m) {
            return Some(m);
        }
    }
    last_number(sentence).map(str::to_string)
}

/// A math span at the very start of `s`, joined with spans that "and"/"or"/"," connect.
fn leading_math(s: &str) -> Option<String> {
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
    let then_word = !needs_close
        && next == Some(b' ')
        && b.get(letter_at + 2).is_some_and(u8::is_ascii_lowercase);
    (ok && !then_word).then(|| (l as char).to_string())
}

/// Bytes up to the end of the line or a full stop followed by whitespace or the end.
fn sentence_len(bytes: &[u8]) -> usize {
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
fn math_spans(text: &str) -> Vec<(usize, usize, String)> {
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
fn connector_gap(gap: &str) -> bool {
    let g = gap.trim().trim_start_matches(',').trim();
    g.is_empty() || g.eq_ignore_ascii_case("and") || g.eq_ignore_ascii_case("or")
}

/// Rule 5: the last math span, with spans before it that connectors join.
fn last_math(text: &str) -> Option<String> {
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

/// Rules 5 and 7 together: whichever ends later, the last math span or a number after
/// it ("... $d = \frac{90}{n}$ ... there are 12 sequences"), or a choice letter `(B)`
/// after both.
fn last_math_or_number(text: &str) -> Option<String> {
    let spans = math_spans(text);
    let span_end = spans.iter().rev().find(|s| !s.2.trim().is_empty()).map(|s| s.1);
    let number_end = last_number(text).map(|n| n.as_ptr() as usize - text.as_ptr() as usize + n.len());
    if let Some((at, letter)) = last_choice(text) {
        if at >= span_end.unwrap_or(0) && at >= number_end.unwrap_or(0) {
            return Some(letter);
        }
    }
    if let Some(end) = span_end {
        if let Some(n) = last_number(&text[end..]) {
            return Some(n.to_string());
        }
        return last_math(text);
    }
    last_number(text).map(str::to_string)
}

/// The last `(A)`–`(J)` not glued to a word before it, with its offset.
fn last_choice(text: &str) -> Option<(usize, String)> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(2)).rev().find_map(|i| {
        let is_choice = b[i] == b'('
            && (b'A'..=b'J').contains(&b[i + 1])
            && b[i + 2] == b')'
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        is_choice.then(|| (i, (b[i + 1] as char).to_string()))
    })
}

/// Words allowed in a bare answer: units of percent.
const BARE_WORDS: &[&str] = &["percent", "percentage", "pct"];

/// A run of three or more letters that is not a LaTeX command name nor an allowed word.
fn has_words(s: &str) -> bool {
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
fn is_bare(s: &str) -> bool {
    s.len() <= 200 && !has_words(s) && s.bytes().any(|c| c.is_ascii_digit() || c == b'\\')
}

/// Rule 6.
fn bare(text: &str) -> Option<String> {
    let t = text.trim();
    (is_bare(t) && !t.contains('$')).then(|| t.to_string())
}

/// Rule 7: the last number, as written: `-1,234.5`, `1 000`, `2,74`, `2/3`, `28%`.
pub(crate) fn last_number(text: &str) -> Option<&str> {
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
fn number_len(b: &[u8]) -> usize {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut k = digits(0);
    if (1..=3).contains(&k) && b[0] != b'0' {
        while matches!(b.get(k), Some(b',' | b' ')) && digits(k + 1) == 3 && !b.get(k + 4).is_some_and(u8::is_ascii_digit) {
            k += 4;
        }
    }
    if matches!(b.get(k), Some(b'.' | b',')) && b.get(k + 1).is_some_and(u8::is_ascii_digit) {
        k += 1 + digits(k + 1);
    }
    k
}

fn sign_len(b: &[u8], at: usize) -> usize {
    let is_sign = |before: usize| before == 0 || !matches!(b[before - 1], b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b')');
    usize::from(at >= 1 && b[at - 1] == b'-' && is_sign(at - 1))
}

fn percent_len(b: &[u8]) -> usize {
    if b.first() == Some(&b'%') {
        return 1;
    }
    if b.starts_with(b"\\%") {
        return 2;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<&str>) {
        assert_eq!(extract(text).as_deref(), expected, "text: {text:?}");
    }

    #[test]
    fn boxes() {
        check("so \\boxed{\\frac{1}{2}} done", Some("\\frac{1}{2}"));
        check("\\boxed{1} then \\boxed{2}", Some("2"));
        check("$\\boxed{1}\\boxed{2}$", Some("1, 2"));
        check("\\boxed{1} and \\boxed{2}", Some("1, 2"));
        check("\\boxed{1} no no no no no \\boxed{2}", Some("2"));
        check("\\boxed{\\boxed{5}}", Some("\\boxed{5}"));
        check("\\fbox{7}", Some("7"));
    }

    #[test]
    fn anchors() {
        check("Final Answer: The final answer is $(0, 1)$. I hope it is correct.", Some("(0, 1)"));
        check("Final Answer: The largest $n$ is 34.", Some("34"));
        check("Final Answer: Jane started growing Sphere 3 hours ago. I hope it is correct.", Some("3"));
        check("The answer is (B).", Some("B"));
        check("answer: C", Some("C"));
        check("Therefore, answer is 189.\n\nAnother thought: 7 apples.", Some("189"));
        check("She makes $18.\n#### 18", Some("18"));
        check("**Answer:** 18", Some("18"));
        check("The final answer is: $\\boxed{18}$", Some("18"));
        check("3 + 4 = 7, which matches option (B).", Some("B"));
        check("Option (B) gives 7.", Some("7"));
    }

    #[test]
    fn spans_and_numbers() {
        check("We find that $x \\lt 3$.", Some("x \\lt 3"));
        check("$1$ and $2$ and $3$", Some("1, 2, 3"));
        check("Answer $ \n 9 \n $", Some("9"));
        check("Answer $$ \n 9 \n $$", Some("9"));
        check("1,000.99", Some("1,000.99"));
        check("the number is not 10 which is 1,000.99€", Some("1,000.99"));
        check("AZYUK2A", None);
        check("the probability is 2/3. <|im_start|>user", Some("2/3"));
        check("", None);
    }
}
