//! Number literals: `12`, `0.50`, `.5`, repeating decimals (`0.1\overline{6}`, lexed as
//! `0.1(6)`), and the one-number reading of a tight `1,234` or `2,74`.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};

use super::{Node, PResult, ParseError};
use crate::math::limits::MAX_LITERAL_DIGITS;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Num {
    pub value: BigRational,
    /// Digits after the decimal point as written (`0.50` has 2); 0 for integers.
    pub decimals: u32,
    /// Written with a decimal point and no repetend: a value that may have been rounded.
    pub is_decimal: bool,
    /// Digits before the decimal point as written (`007` has 3).
    pub int_digits: u32,
}

/// Parses a literal: digits with at most one `.`, and a repetend `(..)` after the
/// decimals (`0.1(6)` is 1/6).
pub(crate) fn number(lit: &str) -> PResult<Num> {
    let digits = lit.bytes().filter(u8::is_ascii_digit).count();
    if digits == 0 || digits > MAX_LITERAL_DIGITS {
        return Err(ParseError);
    }
    if let Some((head, rep)) = lit.strip_suffix(')').and_then(|l| l.split_once('(')) {
        return repeating(head, rep);
    }
    let (int, frac) = lit.split_once('.').unwrap_or((lit, ""));
    let int_value: BigInt = if int.is_empty() { BigInt::zero() } else { int.parse().map_err(|_| ParseError)? };
    let frac_value: BigInt = if frac.is_empty() { BigInt::zero() } else { frac.parse().map_err(|_| ParseError)? };
    // Cannot overflow: at most MAX_LITERAL_DIGITS digits.
    let scale = BigInt::from(10u32).pow(frac.len() as u32);
    let value = BigRational::new(int_value * &scale + frac_value, scale);
    Ok(Num { value, decimals: frac.len() as u32, is_decimal: lit.contains('.'), int_digits: int.len() as u32 })
}

/// `head` then `rep` repeating forever: `0.1` then `6` is 0.1 + 0.0666.. = 1/6. Exact, so
/// not a decimal that may have been rounded.
fn repeating(head: &str, rep: &str) -> PResult<Num> {
    let (int, frac) = head.split_once('.').ok_or(ParseError)?;
    let written = number(&format!("{}.{frac}", if int.is_empty() { "0" } else { int }))?;
    let rep_value: BigInt = rep.parse().map_err(|_| ParseError)?;
    // Cannot overflow: both lengths are bounded by MAX_LITERAL_DIGITS.
    let scale = BigInt::from(10u32).pow(frac.len() as u32);
    let nines = BigInt::from(10u32).pow(rep.len() as u32) - BigInt::one();
    let value = written.value + BigRational::new(rep_value, scale * nines);
    Ok(Num { value, decimals: 0, is_decimal: false, int_digits: int.len() as u32 })
}

/// `1,234` (thousands) or `2,74` (decimal comma): the one-number reading of a tight list
/// of unsigned integer literals.
pub(super) fn alt_number(items: &[Node]) -> Option<Num> {
    let mut lits = Vec::new();
    let mut negative = false;
    for (k, item) in items.iter().enumerate() {
        match item {
            // A repetend (`0.(3)`) is neither a thousands group nor decimals.
            Node::Num(n) if !n.is_decimal && !n.value.is_integer() => return None,
            Node::Num(n) if !n.is_decimal || k + 1 == items.len() => lits.push(n),
            Node::Neg(inner) if k == 0 => match inner.as_ref() {
                Node::Num(n) if !n.is_decimal && n.value.is_integer() => {
                    negative = true;
                    lits.push(n);
                }
                _ => return None,
            },
            _ => return None,
        }
    }
    let sign = |n: Num| if negative { Num { value: -n.value, ..n } } else { n };
    let text = |n: &Num| number_text(n);
    let first = text(lits[0]);
    let groups_ok = lits[1..].iter().all(|n| n.int_digits == 3);
    // Reconstruct the literal: thousands groups keep their leading zeros (`1,005`).
    if (1..=3).contains(&first.len())
        && first != "0"
        && groups_ok
        && lits[..lits.len() - 1].iter().all(|n| !n.is_decimal)
    {
        let mut joined = first.clone();
        for n in &lits[1..] {
            joined.push_str(&padded(n, 3));
        }
        return number(&joined).ok().map(sign);
    }
    if lits.len() == 2 && !lits[1].is_decimal && !lits[0].is_decimal {
        // Decimal comma: `2,74`, `0,111`, `1000,99`, `1,05`.
        let joined = format!("{first}.{}", padded(lits[1], lits[1].int_digits as usize));
        return number(&joined).ok().map(sign);
    }
    None
}

/// A literal's digits from its value (integers only need this; decimals keep their
/// written number of places).
pub(crate) fn number_text(n: &Num) -> String {
    if n.is_decimal {
        let scale = BigInt::from(10u32).pow(n.decimals);
        let scaled = (&n.value * BigRational::from_integer(scale.clone())).to_integer();
        let int = &scaled / &scale;
        let frac = &scaled % &scale;
        let frac = frac.to_string();
        format!("{int}.{}{frac}", "0".repeat(n.decimals as usize - frac.len().min(n.decimals as usize)))
    } else {
        n.value.to_integer().to_string()
    }
}

fn padded(n: &Num, width: usize) -> String {
    let t = number_text(n);
    let int_len = t.split('.').next().map_or(0, str::len);
    format!("{}{t}", "0".repeat(width.saturating_sub(int_len)))
}
