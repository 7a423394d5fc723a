//! Answer equivalence (v1): numbers in their many spellings.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::Zero;

use super::latex::unwrap_wrappers;

/// Decides which answers count as the same for voting and grading.
pub trait Equivalence: Send + Sync {
    /// A canonical key: two answers are equivalent iff their keys are equal.
    fn key(&self, answer: &str) -> String;
    /// Whether `pred` counts as `gold`.
    fn equivalent(&self, gold: &str, pred: &str) -> bool {
        self.key(gold) == self.key(pred)
    }
}

/// v1 rules: an answer that denotes a number is keyed by its exact value; any other answer
/// by its text after light normalisation.
///
/// Numbers: thousands commas (`1,234`, but `1, 2` is a list, not a number), signs
/// (`+5`, `-5`, `−5`), decimals (`0.50`, `.5`, `5.`), scientific (`1e3`), fractions (`3/4`,
/// `\frac{3}{4}`, `\dfrac34`, `\tfrac`), a leading currency sign (`$5`, `\$5`, `€`, `£`),
/// degrees (`90^\circ`, `90°`), `x = 5`, and up to two trailing unit words (`5 apples`,
/// `12 sq ft`). The key is the reduced rational: `72`, `3/4`, `-1/2`.
///
/// **Percent is dropped** (the GSM8K convention, where golds are bare numbers and models
/// write `50%`): `50%`, `50\%` and `50` are all equal, and `0.5` is not. A grader that
/// must tell `50%` from `0.5` replaces this equivalence.
///
/// Anything else (including numbers of more than [`MAX_DIGITS`] digits, whose exact
/// arithmetic would cost unbounded time) is keyed by its text: `\text{..}` unwrapped,
/// surrounding `$` and a trailing full stop removed, whitespace collapsed, lowercased.
#[derive(Debug, Default, Clone, Copy)]
pub struct NumericEquivalence;

/// Numbers with more digits than this are compared as text.
pub const MAX_DIGITS: usize = 200;

/// Longest answer tried as a number; beyond it only the text key is built.
const MAX_NUMERIC_BYTES: usize = 512;

/// Largest decimal exponent accepted in `1e3` notation (`1e999999999` would be a
/// billion-digit integer).
const MAX_EXPONENT: u32 = 100;

impl Equivalence for NumericEquivalence {
    fn key(&self, answer: &str) -> String {
        let text = normalise(answer);
        match number(&text) {
            Some(value) => rational_key(&value),
            None => text_key(&text),
        }
    }
}

/// The value of `answer` under the v1 rules, if it denotes a number.
pub fn numeric_value(answer: &str) -> Option<BigRational> {
    number(&normalise(answer))
}

fn rational_key(value: &BigRational) -> String {
    if value.is_integer() {
        value.numer().to_string()
    } else {
        format!("{}/{}", value.numer(), value.denom())
    }
}

fn text_key(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Markup that wraps an answer without changing it; `\boxed` too, so a whole boxed answer
/// keys like its content.
const UNWRAPPED: [&str; 8] = ["text", "textbf", "textrm", "mathrm", "mathbf", "mbox", "boxed", "fbox"];

/// Markup removed everywhere, and what it becomes. `\left` and `\right` are listed with
/// their delimiters so `\leftarrow` survives.
const REPLACED: [(&str, &str); 16] = [
    ("\\left(", "("),
    ("\\left[", "["),
    ("\\left\\{", "\\{"),
    ("\\left|", "|"),
    ("\\left.", ""),
    ("\\right)", ")"),
    ("\\right]", "]"),
    ("\\right\\}", "\\}"),
    ("\\right|", "|"),
    ("\\right.", ""),
    ("\\!", ""),
    ("\\,", ""),
    ("\\;", " "),
    ("\\ ", " "),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
];

/// Presentation removed: wrappers, spacing commands, `\dfrac`, then surrounding `$..$`,
/// `\(..\)`, `**` and a trailing full stop until none is left.
fn normalise(answer: &str) -> String {
    let mut s = unwrap_wrappers(answer.trim(), &UNWRAPPED);
    for (from, to) in REPLACED {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    strip_surrounding(&s).to_string()
}

fn strip_surrounding(mut s: &str) -> &str {
    loop {
        let before = s.len();
        s = s.trim().trim_end_matches('.').trim_end();
        for (open, close) in [("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")] {
            if s.len() >= open.len() + close.len() && s.starts_with(open) && s.ends_with(close) {
                s = &s[open.len()..s.len() - close.len()];
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// The value of a normalised answer, or `None` if it is not (just) a number.
fn number(s: &str) -> Option<BigRational> {
    if s.len() > MAX_NUMERIC_BYTES || s.bytes().filter(u8::is_ascii_digit).count() > MAX_DIGITS {
        return None;
    }
    let s = strip_variable(s);
    // Up to two trailing unit words, fewest first: `5 apples`, `12 sq ft`.
    let mut candidate = s;
    for _ in 0..=2 {
        if let Some(value) = signed_quantity(candidate) {
            return Some(value);
        }
        let (head, word) = candidate.rsplit_once(char::is_whitespace)?;
        if word.is_empty() || !word.chars().all(char::is_alphabetic) {
            return None;
        }
        candidate = head.trim_end();
    }
    None
}

/// `x = 5` → `5`: a short name then `=`.
fn strip_variable(s: &str) -> &str {
    match s.split_once('=') {
        Some((name, value))
            if (1..=3).contains(&name.trim().len()) && name.trim().bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            value.trim()
        }
        _ => s,
    }
}

/// A number with sign, currency, percent and degrees around it.
fn signed_quantity(s: &str) -> Option<BigRational> {
    let mut s = s.trim();
    for suffix in ["^\\circ", "^{\\circ}", "\\circ", "°", "\\%", "%"] {
        if let Some(rest) = s.strip_suffix(suffix) {
            s = rest.trim_end();
            break;
        }
    }
    let (negative, s) = strip_sign(s);
    let s = strip_currency(s);
    // The sign may also follow the currency: `$-5`.
    let (negative, s) = if negative { (true, s) } else { strip_sign(s) };
    let value = fraction(s)?;
    Some(if negative { -value } else { value })
}

fn strip_sign(s: &str) -> (bool, &str) {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('-').or_else(|| s.strip_prefix('\u{2212}')) {
        (true, rest.trim_start())
    } else {
        (false, s.strip_prefix('+').unwrap_or(s).trim_start())
    }
}

fn strip_currency(s: &str) -> &str {
    ["\\$", "$", "€", "£"].iter().find_map(|c| s.strip_prefix(c)).unwrap_or(s).trim_start()
}

/// `\frac{a}{b}`, `\frac34`, `a/b` or a plain decimal.
fn fraction(s: &str) -> Option<BigRational> {
    if let Some(rest) = s.strip_prefix("\\frac") {
        let (numer, rest) = latex_argument(rest)?;
        let (denom, rest) = latex_argument(rest)?;
        if !rest.trim().is_empty() {
            return None;
        }
        return divide(signed_decimal(numer)?, signed_decimal(denom)?);
    }
    if let Some((numer, denom)) = s.split_once('/') {
        return divide(decimal(numer.trim_end())?, signed_decimal(denom)?);
    }
    decimal(s)
}

/// A `{..}` group (no nesting: numbers need none) or a single character, as in `\frac34`.
fn latex_argument(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('{') {
        let close = rest.find('}')?;
        Some((&rest[..close], &rest[close + 1..]))
    } else {
        let c = s.chars().next().filter(char::is_ascii_digit)?;
        Some(s.split_at(c.len_utf8()))
    }
}

fn divide(numer: BigRational, denom: BigRational) -> Option<BigRational> {
    (!denom.is_zero()).then(|| numer / denom)
}

fn signed_decimal(s: &str) -> Option<BigRational> {
    let (negative, s) = strip_sign(s.trim());
    let value = decimal(s)?;
    Some(if negative { -value } else { value })
}

/// Unsigned `1,234.50`, `.5`, `5.`, `1.5e-3`.
fn decimal(s: &str) -> Option<BigRational> {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], exponent(&s[at + 1..])?),
        None => (s, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let int_digits = thousands(int_part)?;
    if int_digits.is_empty() && frac_part.is_empty() || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int_digits}{frac_part}");
    let numer: BigInt = digits.parse().ok()?;
    let scale = exponent - i64::try_from(frac_part.len()).ok()?;
    let power = BigInt::from(10u32).pow(u32::try_from(scale.unsigned_abs()).ok()?);
    let value = BigRational::from_integer(numer);
    Some(if scale >= 0 { value * BigRational::from_integer(power) } else { value / BigRational::from_integer(power) })
}

fn exponent(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3 {
        return None;
    }
    // Cannot fail: at most three ASCII digits.
    let e: u32 = digits.parse().unwrap();
    (e <= MAX_EXPONENT).then_some(if negative { -i64::from(e) } else { i64::from(e) })
}

/// The digits of an integer part, checking thousands groups: `1,234` → `1234`; `1,23` and
/// `1234,567` are not numbers.
fn thousands(s: &str) -> Option<String> {
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b',') {
        return None;
    }
    let mut groups = s.split(',');
    // Cannot fail: `split` yields at least one item.
    let first = groups.next().unwrap();
    let mut digits = first.to_string();
    for group in groups {
        if !(1..=3).contains(&first.len()) || group.len() != 3 {
            return None;
        }
        digits.push_str(group);
    }
    Some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(NumericEquivalence.key(input), expected, "input: {input:?}");
    }

    #[test]
    fn integers() {
        check("72", "72");
        check(" 72 ", "72");
        check("1,234", "1234");
        check("1,234,567", "1234567");
        check("+5", "5");
        check("-5", "-5");
        check("\u{2212}5", "-5");
        check("- 5", "-5");
        check("-0", "0");
        check("007", "7");
    }

    #[test]
    fn decimals_and_fractions() {
        check("0.75", "3/4");
        check("3/4", "3/4");
        check("6/8", "3/4");
        check("\\frac{3}{4}", "3/4");
        check("\\dfrac{3}{4}", "3/4");
        check("\\tfrac34", "3/4");
        check("\\dfrac34", "3/4");
        check("\\frac{-3}{4}", "-3/4");
        check("-\\frac{1}{2}", "-1/2");
        check("\\frac{1.5}{3}", "1/2");
        check("0.50", "1/2");
        check(".5", "1/2");
        check("5.", "5");
        check("5.0", "5");
        check("1,234.50", "2469/2");
        check("4/2", "2");
        check("1e3", "1000");
        check("1.5E-1", "3/20");
    }

    #[test]
    fn decoration() {
        check("50%", "50");
        check("50\\%", "50");
        check("$5", "5");
        check("\\$5", "5");
        check("-$5", "-5");
        check("$-5", "-5");
        check("$5$", "5");
        check("\\(5\\)", "5");
        check("\\text{5}", "5");
        check("5 apples", "5");
        check("5 dollars.", "5");
        check("12 cm", "12");
        check("12 sq ft", "12");
        check("12 \\text{ cm}", "12");
        check("\\boxed{18}", "18");
        check("**18**", "18");
        check("90^\\circ", "90");
        check("90°", "90");
        check("x = 5", "5");
        check("x=\\frac{1}{2}", "1/2");
        check("1\\,234", "1234");
        check("$\\$1,000$.", "1000");
    }

    #[test]
    fn not_numbers() {
        check("1, 2", "1, 2");
        check("1,23", "1,23");
        check("1234,567", "1234,567");
        check("5 big red apples", "5 big red apples");
        check("3/0", "3/0");
        check("\\frac{1}{0}", "\\frac{1}{0}");
        check("  Hello   World. ", "hello world");
        check("$\\text{Yes}$", "yes");
        check("\\left( 1, 2 \\right)", "( 1, 2 )");
        check("\\leftarrow", "\\leftarrow");
        check("\\dfrac{x}{2}", "\\frac{x}{2}");
        check("1e999", "1e999");
        check("e", "e");
        check(".", "");
        check("\\{1\\}", "\\{1\\}");
    }

    #[test]
    fn huge_numbers_fall_back_to_text() {
        let big = "9".repeat(MAX_DIGITS + 1);
        check(&big, &big);
        let ok = "9".repeat(MAX_DIGITS);
        check(&ok, &ok);
    }

    #[test]
    fn long_inputs_take_linear_time() {
        for unit in ["\\text{", "}", "$", "**", "1,", "\\left", " . "] {
            let text = unit.repeat(200_000 / unit.len());
            let _ = NumericEquivalence.key(&text);
        }
    }

    #[test]
    fn equivalent_spellings() {
        let eq = NumericEquivalence;
        assert!(eq.equivalent("18", "$18.00"));
        assert!(eq.equivalent("1/2", "0.5"));
        assert!(eq.equivalent("1234", "1,234 apples"));
        assert!(!eq.equivalent("18", "19"));
        assert!(!eq.equivalent("1, 2", "12"));
        assert!(!eq.equivalent("50%", "0.5"));
    }

    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; rust-version is 1.85
    fn with_commas(digits: &str) -> String {
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    proptest! {
        #[test]
        fn key_never_panics(s in "\\PC*") {
            let _ = NumericEquivalence.key(&s);
        }

        #[test]
        fn key_never_panics_on_markup(parts in prop::collection::vec(
            prop_oneof![
                Just("\\frac".to_string()), Just("\\text".to_string()), Just("{".to_string()),
                Just("}".to_string()), Just("\\".to_string()), Just("$".to_string()),
                Just("%".to_string()), Just("/".to_string()), Just(",".to_string()),
                Just(".".to_string()), Just("e".to_string()), Just("-".to_string()),
                Just("=".to_string()), Just(" ".to_string()), "[0-9]{1,5}", "\\PC{0,2}",
            ], 0..30)) {
            let _ = NumericEquivalence.key(&parts.concat());
        }

        #[test]
        fn equivalent_is_reflexive(s in "\\PC*") {
            prop_assert!(NumericEquivalence.equivalent(&s, &s));
        }

        #[test]
        fn integer_respellings(n in any::<i64>()) {
            let digits = n.unsigned_abs().to_string();
            let sign = if n < 0 { "-" } else { "" };
            let plain = n.to_string();
            for spelled in [
                format!("{sign}{}", with_commas(&digits)),
                format!("{sign}{digits}.000"),
                format!("{sign}${digits}"),
                format!("{sign}{digits} apples"),
                format!("{}{digits}.", if n < 0 { "\u{2212}" } else { "+" }),
            ] {
                prop_assert!(NumericEquivalence.equivalent(&plain, &spelled), "{} vs {}", plain, spelled);
            }
            prop_assert!(!NumericEquivalence.equivalent(&plain, &(i128::from(n) + 1).to_string()));
        }

        #[test]
        fn decimal_respellings(int in 0u64..10_000_000_000, frac in "[0-9]{0,6}", zeros in 0usize..4, negative: bool) {
            let sign = if negative { "-" } else { "" };
            let plain = format!("{sign}{int}.{frac}");
            let spelled = format!("{sign}{}.{frac}{}", with_commas(&int.to_string()), "0".repeat(zeros));
            prop_assert!(NumericEquivalence.equivalent(&plain, &spelled), "{} vs {}", plain, spelled);
        }
    }
}
