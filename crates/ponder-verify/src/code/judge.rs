//! Token-wise output comparison, as code-contest judges do it.
//!
//! Both outputs are split on whitespace (so line breaks and trailing spaces do not
//! matter) and compared token by token: an expected integer must be matched by the same
//! integer (`007` = `7`, `-0` = `0`, any size); an expected decimal number by a number
//! within 1e-5 absolute or relative; anything else exactly.

/// Tolerance for decimal tokens, absolute or relative.
const FLOAT_TOLERANCE: f64 = 1e-5;

/// Compares program output with the expected output; `Err` says where they differ.
pub fn compare_tokens(expected: &str, actual: &str) -> Result<(), String> {
    let want: Vec<&str> = expected.split_whitespace().collect();
    let got: Vec<&str> = actual.split_whitespace().collect();
    for (idx, (w, g)) in want.iter().zip(&got).enumerate() {
        if !tokens_match(w, g) {
            return Err(format!(
                "token {idx}: expected `{}`, got `{}`",
                clip(w),
                clip(g)
            ));
        }
    }
    if want.len() != got.len() {
        return Err(format!("expected {} tokens, got {}", want.len(), got.len()));
    }
    Ok(())
}

fn tokens_match(expected: &str, actual: &str) -> bool {
    if let Some(want) = canonical_integer(expected) {
        return canonical_integer(actual).is_some_and(|got| got == want);
    }
    if let Some(want) = decimal(expected) {
        // Absolute below 1, relative above; the 1e-9 slack keeps `1.00001` vs `1.0` in,
        // whose binary difference is a hair over 1e-5.
        let tolerance = FLOAT_TOLERANCE * want.abs().max(1.0) * (1.0 + 1e-9);
        return decimal(actual).is_some_and(|got| (got - want).abs() <= tolerance);
    }
    expected == actual
}

/// `[+-]digits` with the sign and leading zeros normalised, so big integers compare exactly.
fn canonical_integer(token: &str) -> Option<String> {
    let (negative, digits) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    Some(match (negative, digits.is_empty()) {
        (_, true) => "0".to_string(),
        (true, false) => format!("-{digits}"),
        (false, false) => digits.to_string(),
    })
}

/// A finite number written with digits (`1.5`, `-2e-3`, `.5`); not `nan` or `inf`.
fn decimal(token: &str) -> Option<f64> {
    let numeric_chars = token
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !numeric_chars || !token.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn clip(token: &str) -> String {
    const MAX_CHARS: usize = 40;
    if token.chars().count() <= MAX_CHARS {
        token.to_string()
    } else {
        format!("{}…", token.chars().take(MAX_CHARS).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expected: &str, actual: &str, same: bool) {
        assert_eq!(
            compare_tokens(expected, actual).is_ok(),
            same,
            "expected {expected:?} vs actual {actual:?}"
        );
    }

    #[test]
    fn whitespace_does_not_matter() {
        check("1 2\n3\n", "1\n2 3", true);
        check("", "  \n", true);
    }

    #[test]
    fn integers_are_exact() {
        check("7", "007", true);
        check("-0", "0", true);
        check(
            "123456789012345678901234567890",
            "123456789012345678901234567890",
            true,
        );
        check(
            "123456789012345678901234567890",
            "123456789012345678901234567891",
            false,
        );
        check("5", "5.0", false);
        check("5", "6", false);
    }

    #[test]
    fn decimals_within_tolerance() {
        check("0.333333", "0.3333333333", true);
        check("1.0", "1.00001", true);
        check("1.0", "1.0001", false);
        check("1e10", "10000000001", true);
        check("2.5", "2", false);
        check("2.0", "2", true);
    }

    #[test]
    fn other_tokens_are_exact() {
        check("YES", "YES", true);
        check("YES", "yes", false);
        check("nan", "nan", true);
        check("inf", "1e400", false);
    }

    #[test]
    fn token_counts_must_match() {
        assert_eq!(
            compare_tokens("1 2", "1").unwrap_err(),
            "expected 2 tokens, got 1"
        );
        assert_eq!(
            compare_tokens("1", "1 2").unwrap_err(),
            "expected 1 tokens, got 2"
        );
        assert_eq!(
            compare_tokens("1 2", "1 3").unwrap_err(),
            "token 1: expected `2`, got `3`"
        );
    }
}
