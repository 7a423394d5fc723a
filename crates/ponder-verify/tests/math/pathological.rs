//! Inputs built to be slow or to crash: each check returns a verdict, quickly. Times are
//! printed (`--nocapture`); the bound asserted is loose (2 s) so a loaded machine does not
//! fail the test, while a hang or an exponential blow-up still does.

use std::time::{Duration, Instant};

use ponder_verify::math::bench::pathological_inputs;
use ponder_verify::math::{extract, grade, Grader};

const BOUND: Duration = Duration::from_secs(2);

#[track_caller]
fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    eprintln!("  {name:<36} {:>10.1} µs", took.as_secs_f64() * 1e6);
    assert!(took < BOUND, "{name} took {took:?}");
    out
}

#[test]
fn pathological_grades_are_bounded() {
    for (name, gold, pred) in pathological_inputs() {
        let v = timed(name, || grade(&gold, &pred));
        // Two different inputs of these shapes must not come out equal by accident.
        if gold != pred {
            assert!(!v.equivalent, "{name}: {v:?}");
        }
        timed(name, || grade(&pred, &gold));
        timed(name, || Grader::default().key(&gold));
    }
}

#[test]
fn deep_nesting() {
    let deep = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
    let v = timed("10k parentheses", || grade(&deep, "x"));
    assert!(!v.equivalent);
    let braces = format!("{}1{}", "{".repeat(10_000), "}".repeat(10_000));
    timed("10k braces", || grade(&braces, "1"));
    let sqrt = format!("{}2{}", "\\sqrt{".repeat(10_000), "}".repeat(10_000));
    timed("10k \\sqrt", || grade(&sqrt, "2"));
    let abs = "|".repeat(10_000);
    timed("10k |", || grade(&abs, &abs));
    let neg = "-".repeat(50_000) + "1";
    timed("50k unary minus", || grade(&neg, "1"));
}

#[test]
fn huge_exponents() {
    let v = timed("10^{10^{10}} vs itself + 1", || grade("10^{10^{10}}", "10^{10^{10}}+1"));
    assert!(!v.equivalent);
    let v = timed("10^{10^{10}} vs itself", || grade("10^{10^{10}}", "10^{10^{10}}"));
    assert!(v.equivalent);
    timed("2^{2^{2^{2^{2^{2}}}}}", || grade("2^{2^{2^{2^{2^{2}}}}}", "2^{65536}"));
    timed("(10^{100})!", || grade("(10^{100})!", "1"));
    timed("binom huge", || grade("\\binom{10^{100}}{10^{50}}", "1"));
    timed("10^{-10^{10}}", || grade("10^{-10^{10}}", "0"));
    timed("x^{10^{10}} symbolic", || grade("x^{10^{10}}", "x^{10^{10}+1}"));
    timed("factorial of 1e6", || grade("1000000!", "1000001!"));
    let digits = "7".repeat(399);
    timed("399-digit powers", || grade(&format!("{digits}^{{{digits}}}"), &format!("{digits}^{{{digits}}}+1")));
}

#[test]
fn hundred_kilobyte_strings() {
    let s = "a".repeat(100_000);
    timed("100 kB letters", || grade(&s, &s));
    let implicit = "x".repeat(100_000);
    timed("100 kB implicit product", || grade(&implicit, "x^{100000}"));
    let big = "1".repeat(100_001);
    let v = timed("over the 100 kB cap", || grade(&big, "1"));
    assert!(!v.equivalent);
    let latex = "\\frac{1}{2}+".repeat(8_000) + "1";
    timed("100 kB of \\frac", || grade(&latex, "4001"));
    let boxes = "\\boxed{".repeat(100_000);
    timed("100k unclosed \\boxed", || extract(&boxes));
    let dollars = "$".repeat(1 << 20);
    timed("1 MB of $", || extract(&dollars));
    let brackets = "\\[".repeat(300_000);
    timed("600 kB of \\[", || extract(&brackets));
    let parens = "\\( ".repeat(300_000);
    timed("900 kB of \\(", || extract(&parens));
    let answers = "answer: ".repeat(100_000);
    timed("800 kB of 'answer:'", || extract(&answers));
    let finals = "final answer is ".repeat(50_000);
    timed("800 kB of 'final answer is'", || extract(&finals));
    let numbers = "1,000 ".repeat(150_000);
    timed("900 kB of numbers", || extract(&numbers));
    let hashes = "#".repeat(1 << 20);
    timed("1 MB of #", || extract(&hashes));
    // Issue 17's paths: anchors followed by prose, day names, repetends, choices, units,
    // digits of other scripts.
    let prose = "Answer: found by adding 1 and ".repeat(30_000);
    timed("900 kB of anchored prose", || extract(&prose));
    let days = "Mondays Monday, 5 days ".repeat(40_000);
    timed("900 kB of day names", || extract(&days));
    let arabic = "٤٢ ".repeat(150_000);
    timed("900 kB of Arabic-Indic digits", || extract(&arabic));
    let repetends = "0.\\overline{3}+".repeat(6_000) + "1";
    timed("6k repetends", || grade(&repetends, "2001"));
    let choices = "\\textbf{(B)}\\ ".repeat(7_000);
    timed("7k choice markers", || grade(&choices, "B"));
    let units = "6 \\text{ minutes}, ".repeat(5_000);
    timed("5k quantities with units", || grade(&units, &units.replace("minutes", "hours")));
    let unicode = "π√∞≤".repeat(30_000);
    let shifted: String = unicode.chars().skip(1).collect();
    timed("unicode soup", || grade(&unicode, &shifted));
}

#[test]
fn many_variables_and_items() {
    let vars: String = (0..500).map(|k| format!("x_{{{k}}}+")).collect::<String>() + "1";
    timed("500 variables", || grade(&vars, &vars.replace("+1", "+2")));
    let list: String = (0..250).map(|k| format!("({k},{})", k + 1)).collect::<Vec<_>>().join(",");
    let rev: String = (0..250).rev().map(|k| format!("({k},{})", k + 1)).collect::<Vec<_>>().join(",");
    let v = timed("250 tuples, reversed", || grade(&list, &rev));
    assert!(v.equivalent);
    let m = format!("\\begin{{pmatrix}}{}\\end{{pmatrix}}", vec!["1 & 2 & 3 & 4"; 64].join("\\\\"));
    timed("matrix product chain", || grade(&format!("{m}{m}{m}"), &m));
}
