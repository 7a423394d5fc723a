//! Words after a number: a unit (`6 \text{ minutes}`), a noun (`3 apples`) or filler
//! (`6 only`).
//!
//! A unit on one side only is presentation (`6` answers `6 \text{ minutes}`), but two
//! different units are two different answers: `6 \text{ minutes}` is not `6 \text{ hours}`
//! (issue 17). No conversion is attempted, so `2 hours` and `120 minutes` differ too: the
//! grader cannot know which unit the question asked for. Spellings of one unit (`hrs`,
//! `hours`; `ft^2`, `square feet`; `mph`, `miles per hour`) are one unit.

/// Words that say nothing about the quantity, and generic units (`square units`).
const FILLER: &[&str] = &[
    "only", "exactly", "total", "in total", "altogether", "approximately", "about", "each", "overall", "unit",
    "units", "square units", "sq units", "sq. units", "cubic units", "square unit", "cubic unit",
];

/// One unit's spellings, its canonical name first (lowercase; plurals are handled by
/// [`singular`] unless irregular).
const SPELLINGS: &[&[&str]] = &[
    &["second", "s", "sec", "secs"],
    &["minute", "min", "mins"],
    &["hour", "h", "hr", "hrs"],
    &["week", "wk", "wks"],
    &["year", "yr", "yrs"],
    &["millimeter", "mm", "millimetre"],
    &["centimeter", "cm", "centimetre"],
    &["meter", "m", "metre"],
    &["kilometer", "km", "kilometre"],
    &["inch", "in", "inches"],
    &["foot", "ft", "feet"],
    &["yard", "yd", "yds"],
    &["mile", "mi"],
    &["gram", "g", "gm"],
    &["kilogram", "kg", "kilo", "kgs"],
    &["pound", "lb", "lbs"],
    &["ounce", "oz"],
    &["milliliter", "ml", "millilitre"],
    &["liter", "l", "litre"],
    &["gallon", "gal"],
    &["dollar", "usd"],
    &["cent", "¢"],
    &["degree", "deg"],
    &["people", "person", "persons"],
    &["am", "a.m."],
    &["pm", "p.m."],
];

/// Speed units written as one word.
const SPEEDS: &[(&str, &str)] = &[("mph", "mile/hour"), ("kph", "kilometer/hour"), ("kmh", "kilometer/hour")];

/// Whether `words` (after a number) are filler rather than a unit.
pub(crate) fn is_filler(words: &str) -> bool {
    let w = words.trim().trim_end_matches('.').to_ascii_lowercase();
    FILLER.contains(&w.as_str())
}

/// The canonical unit of the words after a number (`sq ft` → `foot^2`, `km/h` →
/// `kilometer/hour`), or `None` for filler.
pub(crate) fn canonical(words: &str) -> Option<String> {
    if is_filler(words) {
        return None;
    }
    let lower = words.trim().to_lowercase();
    let mut out = String::new();
    let mut power = None;
    // `miles per hour`, `km/h`: a quotient.
    let spaced = lower.replace('/', " / ");
    for word in spaced.split_whitespace() {
        match word {
            "per" | "/" => {
                out.push('/');
                continue;
            }
            "square" | "sq" | "sq." => {
                power = Some("2");
                continue;
            }
            "cubic" | "cu" | "cu." => {
                power = Some("3");
                continue;
            }
            _ => {}
        }
        let (base, exp) = word.split_once('^').map_or((word, None), |(b, e)| (b, Some(e.trim_matches(['{', '}']))));
        let base = base.trim_end_matches('.');
        if !out.is_empty() && !out.ends_with('/') {
            out.push(' ');
        }
        match SPEEDS.iter().find(|(w, _)| *w == base) {
            Some((_, speed)) => out.push_str(speed),
            None => out.push_str(&spelling(base)),
        }
        if let Some(e) = exp.or(power.take()) {
            out.push('^');
            out.push_str(e);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Whether every word of `words` is a known unit or a unit connective (`square`, `per`):
/// `6 minutes` names a unit, `12 loaves` a noun.
pub(crate) fn is_known(words: &str) -> bool {
    let lower = words.trim().to_lowercase().replace('/', " / ");
    let known = |w: &str| {
        let base = w.split('^').next().unwrap_or(w).trim_end_matches('.');
        matches!(base, "per" | "/" | "square" | "sq" | "cubic" | "cu")
            || SPEEDS.iter().any(|(s, _)| *s == base)
            || SPELLINGS.iter().any(|s| s.contains(&base) || s.contains(&singular(base).as_str()))
    };
    !lower.trim().is_empty() && lower.split_whitespace().all(known)
}

/// The canonical name of one word of a unit.
fn spelling(word: &str) -> String {
    let find = |w: &str| SPELLINGS.iter().find(|s| s.contains(&w)).map(|s| s[0].to_string());
    find(word).or_else(|| find(&singular(word))).unwrap_or_else(|| singular(word))
}

/// `apples` → `apple`, `boxes` → `box`, `inches` → `inch`; `glass` stays.
fn singular(word: &str) -> String {
    if word.len() <= 2 || !word.ends_with('s') || word.ends_with("ss") {
        return word.to_string();
    }
    let stem = &word[..word.len() - 2];
    if word.ends_with("es") && (["x", "ch", "sh", "ss", "z"].iter().any(|e| stem.ends_with(e))) {
        return stem.to_string();
    }
    word[..word.len() - 1].to_string()
}

/// Whether two answers' units allow them to be equal: yes when either has none, else
/// the same units (as sets: a list of quantities may come in any order).
pub(crate) fn compatible(gold: &[String], pred: &[String]) -> bool {
    if gold.is_empty() || pred.is_empty() {
        return true;
    }
    gold.iter().all(|u| pred.contains(u)) && pred.iter().all(|u| gold.contains(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(words: &str, expected: Option<&str>) {
        assert_eq!(canonical(words).as_deref(), expected, "words: {words:?}");
    }

    #[test]
    fn spellings() {
        check("minutes", Some("minute"));
        check("min", Some("minute"));
        check("hrs", Some("hour"));
        check("Hours", Some("hour"));
        check("m", Some("meter"));
        check("meters", Some("meter"));
        check("in", Some("inch"));
        check("inches", Some("inch"));
        check("square feet", Some("foot^2"));
        check("ft^2", Some("foot^2"));
        check("sq ft", Some("foot^2"));
        check("cm^{2}", Some("centimeter^2"));
        check("mph", Some("mile/hour"));
        check("miles per hour", Some("mile/hour"));
        check("km/h", Some("kilometer/hour"));
        check("apples", Some("apple"));
        check("boxes", Some("box"));
        check("only", None);
        check("square units", None);
    }

    #[test]
    fn known_units() {
        assert!(is_known("minutes"));
        assert!(is_known("miles per hour"));
        assert!(is_known("sq ft"));
        assert!(!is_known("loaves"));
        assert!(!is_known("people attended"));
    }

    #[test]
    fn compatibility() {
        // Cannot fail: every word below is a unit, not filler.
        let u = |s: &[&str]| s.iter().map(|w| canonical(w).unwrap()).collect::<Vec<_>>();
        assert!(compatible(&u(&["minutes"]), &u(&["min"])));
        assert!(!compatible(&u(&["minutes"]), &u(&["hours"])));
        assert!(compatible(&u(&["minutes"]), &[]));
        assert!(!compatible(&u(&["apples"]), &u(&["oranges"])));
    }
}
