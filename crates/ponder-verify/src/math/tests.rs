//! Grading rules, one expectation per line.

use super::*;

#[track_caller]
fn check(gold: &str, pred: &str, expected: bool) {
    let v = grade(gold, pred);
    assert_eq!(v.equivalent, expected, "grade({gold:?}, {pred:?}) = {v:?}");
}

#[test]
fn numbers() {
    check("72", "72", true);
    check("72", "72.0", true);
    check("1234", "1,234", true);
    check("-1234", "-1,234", true);
    check("1000", "1 000", true);
    check("0.5", "\\frac12", true);
    check("0.5", "1/2", true);
    check("\\frac{1}{2}", "\\dfrac{1}{2}", true);
    check("\\frac{3}{4}", "\\tfrac34", true);
    check("2.74", "2,74", true);
    check("5", "6", false);
    check("32349", "32, 349", false);
    check("11111111100", "11,\\!111,\\!111,\\!100", true);
    check("14916", "14{,}916", true);
    check("-5", "\u{2212}5", true);
}

#[test]
fn decoration() {
    check("90", "90^\\circ", true);
    check("90^\\circ", "90^{\\circ}", true);
    check("15", "15\\mbox{ cm}^2", true);
    check("125", "125\\text{ miles}", true);
    check("18", "\\$18", true);
    check("18", "18 dollars", true);
    check("\\frac{1}{3}", "\\left( \\frac{1}{3} \\right)", true);
    check("\\text{Evelyn}", "Evelyn", true);
    check("\\text{(C)}", "C", true);
    check("\\text{E}", "d", false);
}

#[test]
fn percent() {
    check("28\\%", "28", true);
    check("28\\%", "0.28", true);
    check("28\\%", "28 percent", true);
    check("28\\%", "29", false);
    check("50", "50\\%", true);
}

#[test]
fn algebra() {
    check("2x", "x+x", true);
    check("2\\pi", "\\pi \\cdot 2", true);
    check("3\\sqrt{2}", "\\sqrt{18}", true);
    check("\\sqrt2", "\\sqrt{2}", true);
    check("\\frac{x+2}{7}", "\\frac{x}{7}+\\frac{2}{7}", true);
    check("\\tan^2(y)+1", "\\sec^2(y)", true);
    check("x^2", "x \\times x", true);
    check("x+1", "x+2", false);
    check("f(x)", "f(y)", false);
    check("|x|", "x", false);
    check("2 \\sin b \\cos a", "2\\cos a\\sin b", true);
    check("\\frac{9}{4}\\pi", "\\frac94\\pi", true);
    check("10^{10^{10}}", "10^{10^{10}}+1", false);
}

/// Issue 17: a rounded decimal does not answer an exact gold; a decimal gold accepts the
/// exact value it rounds; repeating decimals are exact.
#[test]
fn rounding() {
    check("\\frac13", "0.3333", false);
    check("\\frac13", "0.33", false);
    check("\\frac13", "0.3", false);
    check("\\frac23", "0.66", false);
    check("\\sqrt2", "1.41", false);
    check("\\sqrt{17}", "4.123105625617661", true);
    check("\\frac1{12}", "0.0833333333333333", true);
    check("1000000", "1000000.5", false);
    check("0.33", "\\frac13", true);
    check("0.33", "0.333", false);
    check("\\frac13", "0.\\overline{3}", true);
    check("\\frac16", "0.1\\overline{6}", true);
    check("\\frac{100}{3}\\%", "33\\frac{1}{3}\\%", true);
    let lenient = Grader::new(GraderOptions { rounded_pred_decimals: Some(2), ..GraderOptions::default() });
    assert!(lenient.grade("\\frac13", "0.33").equivalent);
}

/// Issue 17: units, multiple choice, symbols.
#[test]
fn units_choices_symbols() {
    check("6 \\text{ minutes}", "6 \\text{ hours}", false);
    check("6 \\text{ minutes}", "6", true);
    check("6 \\text{ minutes}", "6 \\text{ min}", true);
    check("7 \\text{ meters}", "7 \\text{ m}", true);
    check("\\text{(B)}", "B", true);
    check("\\textbf{(B)}\\ 15", "\\textbf{(B)}", true);
    check("\\textbf{(B)}\\ 15", "15", true);
    check("\\textbf{(B)}\\ 15", "C", false);
    check("A, C", "C, A", true);
    check("\\emptyset", "\\varnothing", true);
    check("\\emptyset", "\\{\\emptyset\\}", false);
    check("1", "0^0", false);
    check("٤٢", "42", true);
}

#[test]
fn collections() {
    check("(1, 2)", "(1,2)", true);
    check("(1, 2)", "(2, 1)", false);
    check("[0, 1)", "[0,1)", true);
    check("[0, 1)", "(0, 1)", false);
    check("(-\\infty, 3]", "(-\\infty,3]", true);
    check("\\{1, 2\\}", "\\{2, 1\\}", true);
    check("1, 2", "2, 1", true);
    check("-2, 1", "1 and -2", true);
    check("(1,3)", "\\{1,3\\}", true);
    check("(3,1)", "\\{1,3\\}", false);
    check("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}", true);
    check("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}", "\\begin{pmatrix}1 & 2 \\\\ 3 & 5\\end{pmatrix}", false);
    check(
        "\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}",
        "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}",
        true,
    );
    check("(0, 1) \\cup (2, \\infty)", "(2,\\infty)\\cup(0,1)", true);
}

#[test]
fn plus_minus() {
    check("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", true);
    check("\\pm 2021", "\\{-2021, 2021\\}", true);
    check("\\pm 2021", "2021", false);
}

#[test]
fn equations_and_relations() {
    check("3", "x=3", true);
    check("x=3", "3", true);
    check("2x+1", "y = 2x+1", true);
    check("7 = 11a+c", "11a+c", false);
    check("2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}", true);
    check("x = 11", "x = 5+5+1 = 7 = 11", true);
    check("x=1, y=2", "y=2, x=1", true);
    check("x=1, y=2", "x=2, y=1", false);
    check("x > 2", "(2, \\infty)", true);
    check("(2, \\infty)", "x > 2", false);
    check("x \\geq 5", "5 \\leq x", true);
    check("x < 1", "-x > -1", true);
    check("x > 5", "x < 5", false);
    check("-793 < a < 10", "(-793, 10)", true);
    check("[-2, 7]", "x \\in [-2,7]", true);
    check("1 \\le |z| \\le 2", "z \\in [-2, -1] \\cup [1, 2]", true);
    check("1 \\le |z| \\le 2", "z \\in [1, 2]", false);
    check("|x| < 3", "-3 < x < 3", true);
    check("|x| > 3", "(-\\infty, -3) \\cup (3, \\infty)", true);
}

#[test]
fn interval_option() {
    let g = Grader::new(GraderOptions { interval_accepts_inequality: true, ..GraderOptions::default() });
    assert!(g.grade("[-2, 7]", "-2 \\le x \\le 7").equivalent);
}

#[test]
fn reasons() {
    assert_eq!(grade("1/2", "1/2").reason, Reason::SameText);
    assert_eq!(grade("1/2", "0.5").reason, Reason::Exact);
    assert_eq!(grade("\\sqrt2", "2^{1/2}").reason, Reason::Numeric);
    assert_eq!(grade("", "1").reason, Reason::Empty);
    assert_eq!(grade("(1,2)", "1").reason, Reason::ShapeMismatch);
}

#[test]
fn keys() {
    let g = Grader::default();
    assert_eq!(g.key("\\frac{1}{2}"), g.key("0.5"));
    assert_eq!(g.key("x = 3"), g.key("3"));
    assert_eq!(g.key("\\{1, 2\\}"), g.key("2, 1"));
    assert_ne!(g.key("1"), g.key("2"));
    let eq = MathEquivalence::default();
    assert!(eq.equivalent("\\frac{\\sqrt2}{2}", "\\frac{1}{\\sqrt2}"));
}

/// Every MATH-500 answer parses (so "same text" is not what carries the acceptance test).
#[test]
fn math500_answers_all_parse() {
    let data = include_str!("../../data/math500-answers/answers.jsonl");
    let answers: Vec<String> =
        data.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))).collect();
    assert_eq!(answers.len(), 500);
    let unparsed: Vec<&String> = answers.iter().filter(|a| prepare(&normalize::clean(a)).parsed().is_none()).collect();
    assert!(unparsed.is_empty(), "unparsed: {unparsed:?}");
}

#[test]
fn mixed_numbers() {
    check("\\frac{639}{40}", "15\\frac{39}{40}", true);
    check("-\\frac{7}{2}", "-3\\frac12", true);
    check("\\frac{3}{2}", "3\\frac{1}{2}", false);
    check("2\\frac{x}{3}", "\\frac{2x}{3}", true);
}

/// Answers nested up to the depth limit parse and grade on a 1 MiB stack (half of Rust's
/// and tokio's default thread stack); one level more is refused.
#[test]
fn depth_limit_is_usable_and_stack_safe() {
    let shapes = |n: usize| {
        [
            format!("{}x{}", "(".repeat(n), ")".repeat(n)),
            format!("{}2{}", "\\frac{1}{".repeat(n), "}".repeat(n)),
            format!("{}2{}", "2^{".repeat(n), "}".repeat(n)),
            format!("{}2{}", "\\sqrt{".repeat(n), "}".repeat(n)),
            format!("{}1{}", "\\left(-".repeat(n), "\\right)".repeat(n)),
            format!("{}1", "-".repeat(n)),
            format!("{}x", "\\sin ".repeat(n)),
        ]
    };
    let handle = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            for s in shapes(limits::MAX_DEPTH as usize - 2) {
                assert!(prepare(&normalize::clean(&s)).parsed().is_some(), "{s:.40}");
                let v = grade(&s, &format!("{s}+1"));
                assert!(!v.equivalent || v.reason == Reason::Numeric, "{s:.40}: {v:?}");
                let _ = Grader::default().key(&s);
            }
            for s in shapes(limits::MAX_DEPTH as usize + 1) {
                assert!(prepare(&normalize::clean(&s)).parsed().is_none(), "{s:.40}");
            }
        })
        .unwrap();
    handle.join().expect("no stack overflow");
}
