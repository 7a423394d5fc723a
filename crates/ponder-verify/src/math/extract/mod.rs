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
//! 7 the last number (`-1,234.5`, `2/3`, `28%`), not glued to a letter before it; a
//!   choice `(B)` or a day name (`Friday`) after it wins.
//!
//! After an anchor (rules 1, 3, 4) the answer is the math span that starts it, a choice
//! letter (`(B)`), or the answer its sentence states (see the `anchor` module). An anchor
//! followed by prose with no answer in it ("Answer: found by adding the amounts") means no
//! answer: rules 5 to 7 are not tried (issue 17).
//!
//! Digits of other scripts (`٤٢`) are read as ASCII digits.
//!
//! Every rule is a linear pass: a scan that fails remembers where, so a hostile output
//! costs O(n), not O(n²).

use super::limits::MAX_OUTPUT_BYTES;

mod anchor;
mod scan;

use super::normalize::ascii_digit;
use anchor::{after_anchor, Anchored};
use scan::{
    find_ci, find_word_is, floor_boundary, is_bare, last_math, last_number, math_spans, rfind_ci, sentence_len, tail,
};

/// How far after an anchor ("answer:") the answer is looked for.
const MAX_ANCHORED_BYTES: usize = 4096;

/// How many "answer" phrases are tried, from the last one back.
const MAX_ANCHOR_TRIES: usize = 8;

/// The final answer in `text`, trimmed; `None` if there is nothing answer-like.
pub fn extract(text: &str) -> Option<String> {
    let text = tail(text, MAX_OUTPUT_BYTES);
    let mapped: String;
    let text = if text.chars().any(|c| !c.is_ascii() && ascii_digit(c).is_some()) {
        mapped = text.chars().map(|c| ascii_digit(c).unwrap_or(c)).collect();
        mapped.as_str()
    } else {
        text
    };
    let mut prose = false;
    let mut anchored = |found: Option<Anchored>| match found {
        Some(Anchored::Answer(a)) => Some(a),
        Some(Anchored::Prose) => {
            prose = true;
            None
        }
        None => None,
    };
    let answer = anchored(minerva(text))
        .or_else(|| boxed(text))
        .or_else(|| anchored(final_answer_is(text)))
        .or_else(|| anchored(answer_phrase(text)))
        .or_else(|| hashes(text));
    let answer = match answer {
        Some(a) => a,
        None if prose => return None,
        None => bare(text).or_else(|| last_math_or_number(text))?,
    };
    let answer = answer.trim().to_string();
    (!answer.is_empty()).then_some(answer)
}

/// Rule 1: "final answer is X. I hope" (X a math span or the text up to "I hope").
fn minerva(text: &str) -> Option<Anchored> {
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
fn final_answer_is(text: &str) -> Option<Anchored> {
    let at = rfind_ci(text, "final answer")?;
    let rest = &text[at + "final answer".len()..];
    let window = &rest[..floor_boundary(rest, 100)];
    let sentence_end = sentence_len(window.as_bytes());
    let is_at = find_word_is(&window[..sentence_end])?;
    after_anchor(&rest[is_at + 2..])
}

/// Rule 4: the last "answer" followed by `:` or "is" with an answer after it; else
/// [`Anchored::Prose`] if one was followed by prose.
fn answer_phrase(text: &str) -> Option<Anchored> {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    let mut tries = 0;
    let mut prose = None;
    // From the end; each miss moves left, so the scan is linear.
    while let Some(i) = rfind_ci(&text[..end], "answer") {
        end = i;
        tries += 1;
        if tries > MAX_ANCHOR_TRIES {
            break;
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
        match after_anchor(&text[j..]) {
            Some(Anchored::Prose) => prose = Some(Anchored::Prose),
            Some(answer) => return Some(answer),
            None => {}
        }
    }
    prose
}

/// `#### X` (GSM8K): the rest of the line after the last `####`.
fn hashes(text: &str) -> Option<String> {
    text.rsplit('\n').find_map(|line| {
        let at = line.rfind("####")?;
        let a = line[at..].trim_start_matches('#').trim().trim_end_matches('.').trim();
        (!a.is_empty()).then(|| a.to_string())
    })
}

/// Rules 5 and 7 together: whichever ends later, the last math span or a number after
/// it ("... $d = \frac{90}{n}$ ... there are 12 sequences"), or a choice letter `(B)` or
/// a day name after both (a count of days after the day name does not count: "on
/// Sunday, 5 days later").
fn last_math_or_number(text: &str) -> Option<String> {
    let spans = math_spans(text);
    let span_end = spans.iter().rev().find(|s| !s.2.trim().is_empty()).map(|s| s.1);
    let number_end = last_number(text).map(|n| n.as_ptr() as usize - text.as_ptr() as usize + n.len());
    if let Some((at, letter)) = last_choice(text) {
        if at >= span_end.unwrap_or(0) && at >= number_end.unwrap_or(0) {
            return Some(letter);
        }
    }
    if let Some((at, day)) = last_day(text) {
        if at >= span_end.unwrap_or(0) && (at >= number_end.unwrap_or(0) || only_durations(&text[at..])) {
            return Some(day.to_string());
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

const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// The last day name (capitalised, a whole word), with its offset.
fn last_day(text: &str) -> Option<(usize, &'static str)> {
    let b = text.as_bytes();
    DAYS.iter()
        .filter_map(|day| {
            let mut end = text.len();
            while let Some(at) = text[..end].rfind(day) {
                let after = at + day.len();
                let whole = (at == 0 || !b[at - 1].is_ascii_alphanumeric())
                    && !b.get(after).is_some_and(u8::is_ascii_alphanumeric);
                if whole {
                    return Some((at, *day));
                }
                end = at;
            }
            None
        })
        .max_by_key(|(at, _)| *at)
}

/// Every number in `s` counts days or weeks ("5 days later").
fn only_durations(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let end = i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        let word: String = s[end..].trim_start().chars().take_while(char::is_ascii_alphabetic).collect();
        if !matches!(word.to_ascii_lowercase().as_str(), "day" | "days" | "week" | "weeks") {
            return false;
        }
        i = end;
    }
    true
}

/// Rule 6.
fn bare(text: &str) -> Option<String> {
    let t = text.trim();
    (is_bare(t) && !t.contains('$')).then(|| t.to_string())
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

    /// Issue 17: the answer itself after an anchor, and no answer when only prose follows.
    #[test]
    fn anchored_answers_not_sentences() {
        check("So Lucas has 36.\nAnswer: 2 * 18 = 36, which is lucas's total amount", Some("36"));
        check("Answer: found by adding 1", None);
        check("We add 4 and 6.\nAnswer: It is found by adding 4 and 6", None);
        check("The answer is 6 minutes.", Some("6 minutes"));
        check("Counting on, the answer is Monday.", Some("Monday"));
        check("The answer is 7. Checking again, the answer is found by adding 1", Some("7"));
        check("The answer is found by adding 1.\n#### 8", Some("8"));
    }

    #[test]
    fn day_names_and_digits() {
        check("Two days after Wednesday is Friday.", Some("Friday"));
        check("So the meeting will be on Sunday, 5 days later.", Some("Sunday"));
        check("On Monday she sold 12 cakes.", Some("12"));
        check("The answer is ٤٢.", Some("42"));
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
