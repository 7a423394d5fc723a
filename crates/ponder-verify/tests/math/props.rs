//! Property tests: no input panics or runs long, and known equivalences hold for random
//! values.

use std::time::{Duration, Instant};

use ponder_core::answer::Equivalence;
use ponder_verify::math::{extract, grade, Grader, MathEquivalence};
use proptest::prelude::*;

/// Loose on purpose: a check normally takes microseconds.
const BOUND: Duration = Duration::from_secs(1);

fn exercise(a: &str, b: &str) {
    let start = Instant::now();
    let _ = extract(a);
    let _ = grade(a, b);
    let _ = grade(b, a);
    let _ = Grader::default().key(a);
    let _ = MathEquivalence::default().equivalent(a, b);
    assert!(start.elapsed() < BOUND * 5, "{a:?} / {b:?} took {:?}", start.elapsed());
}

/// Fragments of LaTeX and ASCII math, glued at random.
const TOKENS: &[&str] = &[
    "\\frac", "\\dfrac", "\\sqrt", "\\sqrt[3]", "{", "}", "(", ")", "[", "]", "\\{", "\\}", "\\left(", "\\right)",
    "\\left[", "\\right]", "|", "^", "_", "+", "-", "\\pm", "*", "\\cdot", "\\times", "/", "=", "<", "\\le", "\\ge",
    "\\ne", "\\in", "\\cup", ",", ";", ":", "!", "%", "\\%", "$", "$$", "\\(", "\\)", "\\[", "\\]", "\\boxed{",
    "\\text{", "\\text{ cm}", "\\mathrm{", "\\pi", "\\infty", "e", "x", "y", "i", "\\sin", "\\log_", "\\ln", "0", "1",
    "2", "10", "0.5", ".5", "1,000", "999999999999", "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\",
    "\\begin{array}{cc}", "\\end{array}", "\\,", "\\!", "~", "^\\circ", "^{\\circ}", "°", "−", "π", " ", " and ",
    "\\binom", "\\lfloor", "\\rfloor", "\\overline{", "answer: ", "The final answer is ", "I hope", "####", "\n",
    "\\\\frac", "'", "\\approx", "\\mp", "\\setminus", "\\cap", "\\emptyset", "\\x", "\\", "10^{10^{10}}",
    // Issue 17: repetends, choices, units, other scripts' digits, anchored prose.
    "\\overline{3}", ".\\overline{", "\\bar{12}", "\\varnothing", "\\textbf{(B)}", "(C)", "A)", " minutes",
    "\\text{ hours}", "\\text{ m}", "sq ft", "0^0", "33\\frac{1}{3}\\%", "٣", "۴", "٫", "Answer: found by adding ",
    "Monday", " days", "|z|", "\\le |x| \\le",
];

fn latexish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..48).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(a in "\\PC{0,200}", b in "\\PC{0,200}") {
        exercise(&a, &b);
    }

    #[test]
    fn arbitrary_bytes_never_panic(a in any::<String>(), b in any::<String>()) {
        exercise(&a, &b);
    }

    #[test]
    fn latexish_strings_never_panic(a in latexish(), b in latexish()) {
        exercise(&a, &b);
    }

    #[test]
    fn latexish_is_reflexive(a in latexish()) {
        // Anything with content grades equal to itself.
        let v = grade(&a, &a);
        prop_assert!(v.equivalent || matches!(v.reason, ponder_verify::math::Reason::Empty), "{a:?}: {v:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn fractions_in_their_spellings(p in -10_000i64..10_000, q in 1i64..10_000, k in 1i64..50) {
        let gold = format!("\\frac{{{p}}}{{{q}}}");
        let scaled = format!("\\dfrac{{{}}}{{{}}}", p * k, q * k);
        prop_assert!(grade(&gold, &scaled).equivalent, "{gold} vs {scaled}");
        let slash = format!("{p}/{q}");
        prop_assert!(grade(&gold, &slash).equivalent, "{gold} vs {slash}");
        let other = format!("\\frac{{{}}}{{{q}}}", p + 1);
        prop_assert!(!grade(&gold, &other).equivalent, "{gold} vs {other}");
    }

    #[test]
    fn integers_with_separators(n in -1_000_000_000i64..1_000_000_000) {
        let plain = n.to_string();
        let digits = n.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (k, c) in digits.chars().enumerate() {
            if k > 0 && (digits.len() - k) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        let grouped = if n < 0 { format!("-{grouped}") } else { grouped };
        prop_assert!(grade(&plain, &grouped).equivalent, "{plain} vs {grouped}");
        let dollars = format!("${grouped}$");
        prop_assert!(grade(&plain, &dollars).equivalent, "{plain} vs {dollars}");
        prop_assert!(!grade(&plain, &(n + 1).to_string()).equivalent);
    }

    #[test]
    fn polynomial_identities(a in -20i64..20, b in -20i64..20) {
        prop_assume!(a != 0 && b != 0);
        let gold = format!("(x+{a})(x+{b})");
        let expanded = format!("x^2+{}x+{}", a + b, a * b);
        prop_assert!(grade(&gold, &expanded).equivalent, "{gold} vs {expanded}");
        let wrong = format!("x^2+{}x+{}", a + b, a * b + 1);
        prop_assert!(!grade(&gold, &wrong).equivalent, "{gold} vs {wrong}");
    }

    #[test]
    fn keys_agree_with_grades_on_numbers(p in -1000i64..1000, q in 1i64..1000) {
        let g = Grader::default();
        let a = format!("\\frac{{{p}}}{{{q}}}");
        let b = format!("{}/{}", 2 * p, 2 * q);
        prop_assert_eq!(g.key(&a), g.key(&b));
    }
}
