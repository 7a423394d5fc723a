//! `arith`: generated multi-step arithmetic word problems with exact answers.
//!
//! A problem follows one person's pile of objects: it starts at some count and goes
//! through `level` operations (level 1: one addition or subtraction of small numbers;
//! multiplication from level 2, exact division from level 3, larger numbers as the level
//! rises). Every intermediate count is a positive integer and is recorded in
//! `Problem::steps`; the gold answer is the last one. The structured form
//! ([`ArithProblem`]) is kept so the text, the steps and the answer can be re-checked.
//!
//! Deterministic: problem `index` of `(level, seed)` is the same on every machine
//! (ChaCha8 seeded through [`derive_seed`]).

use std::ops::RangeInclusive;

use ponder_core::{derive_seed, Problem};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Error;

/// The difficulty levels; a level is the number of operations.
pub const LEVELS: RangeInclusive<u32> = 1..=5;

/// One operation on the running count, with its operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add(u64),
    Sub(u64),
    Mul(u64),
    /// Keep one of this many equal shares (exact: the generator only divides multiples).
    Div(u64),
}

impl Op {
    /// The count after this operation, or `None` if it would be negative, inexact or overflow.
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; rust-version is 1.85
    pub fn apply(self, count: u64) -> Option<u64> {
        match self {
            Op::Add(k) => count.checked_add(k),
            Op::Sub(k) => count.checked_sub(k),
            Op::Mul(k) => count.checked_mul(k),
            Op::Div(k) => (k != 0 && count % k == 0).then(|| count / k),
        }
    }
}

/// A generated problem in structured form, with its rendered question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArithProblem {
    pub level: u32,
    pub seed: u64,
    pub index: u64,
    pub start: u64,
    pub ops: Vec<Op>,
    pub question: String,
}

/// Ranges that make a level harder: operand sizes, which operations, and a cap on the count.
struct Difficulty {
    start: RangeInclusive<u64>,
    addend_max: u64,
    factor_max: u64,
    kinds: &'static [Kind],
    count_max: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Sub,
    Mul,
    Div,
}

fn difficulty(level: u32) -> Difficulty {
    use Kind::*;
    let (start, addend_max, factor_max, kinds, count_max): (_, _, _, &'static [Kind], _) = match level {
        1 => (3..=20, 10, 1, &[Add, Sub], 40),
        2 => (4..=30, 20, 3, &[Add, Sub, Mul], 150),
        3 => (6..=50, 40, 5, &[Add, Sub, Mul, Div], 400),
        4 => (10..=100, 80, 9, &[Add, Sub, Mul, Div], 2_000),
        _ => (20..=200, 150, 12, &[Add, Sub, Mul, Div], 10_000),
    };
    Difficulty { start, addend_max, factor_max, kinds, count_max }
}

impl ArithProblem {
    /// Problem `index` of level `level` under `seed`.
    pub fn generate(level: u32, seed: u64, index: u64) -> Result<Self, Error> {
        check_level(level)?;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(derive_seed(seed, u64::from(level)), index));
        let d = difficulty(level);
        let start = rng.gen_range(d.start.clone());
        let mut count = start;
        let mut ops = Vec::with_capacity(level as usize);
        for _ in 0..level {
            let op = choose_op(&mut rng, &d, count);
            // Cannot fail: `choose_op` only offers operations valid for `count`.
            count = op.apply(count).unwrap();
            ops.push(op);
        }
        let question = render(&mut rng, start, &ops);
        Ok(Self { level, seed, index, start, ops, question })
    }

    /// The count after each operation; the last is the answer.
    pub fn results(&self) -> Vec<u64> {
        self.ops
            .iter()
            .scan(self.start, |count, op| {
                *count = op.apply(*count)?;
                Some(*count)
            })
            .collect()
    }

    /// The final count.
    pub fn answer(&self) -> u64 {
        self.results().last().copied().unwrap_or(self.start)
    }

    /// As a dataset problem: id `arith-l{level}/{seed}/{index}`, steps the counts after each
    /// operation, gold the final count.
    pub fn to_problem(&self) -> Problem {
        let results = self.results();
        Problem {
            id: format!("arith-l{}/{}/{}", self.level, self.seed, self.index),
            question: self.question.clone(),
            gold: self.answer().to_string(),
            level: Some(self.level),
            steps: results.iter().map(u64::to_string).collect(),
        }
    }
}

fn check_level(level: u32) -> Result<(), Error> {
    if LEVELS.contains(&level) {
        Ok(())
    } else {
        Err(Error::LevelOutOfRange { level: level.to_string() })
    }
}

/// `count` problems of `level` under `seed`, indices `0..count`.
pub fn generate(level: u32, seed: u64, count: usize) -> Result<Vec<Problem>, Error> {
    check_level(level)?;
    (0..count as u64).map(|index| ArithProblem::generate(level, seed, index).map(|p| p.to_problem())).collect()
}

/// A random operation that keeps the count a positive integer within the level's cap.
/// Operands are at least 2 so every sentence reads in the plural.
#[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; rust-version is 1.85
fn choose_op(rng: &mut ChaCha8Rng, d: &Difficulty, count: u64) -> Op {
    let room = d.count_max.saturating_sub(count);
    let candidates = |kind: Kind| -> Vec<Op> {
        match kind {
            Kind::Add => (2..=d.addend_max.min(room)).map(Op::Add).collect(),
            Kind::Sub => (2..=d.addend_max.min(count.saturating_sub(1))).map(Op::Sub).collect(),
            Kind::Mul => (2..=d.factor_max).filter(|k| count * k <= d.count_max).map(Op::Mul).collect(),
            Kind::Div => (2..=d.factor_max).filter(|k| count % k == 0 && count / k >= 2).map(Op::Div).collect(),
        }
    };
    let mut kinds = d.kinds.to_vec();
    kinds.shuffle(rng);
    for kind in kinds {
        if let Some(op) = candidates(kind).choose(rng) {
            return *op;
        }
    }
    // Not reached: every level offers Add and Sub, and with `count_max` >= 5 one of them
    // always has a candidate. Adding 2 is still a valid operation.
    Op::Add(2)
}

/// A person: name and pronouns (subject, object, possessive).
type Person = (&'static str, &'static str, &'static str, &'static str);

const PEOPLE: [Person; 20] = [
    ("Sam", "he", "him", "his"),
    ("Omar", "he", "him", "his"),
    ("Leo", "he", "him", "his"),
    ("Ravi", "he", "him", "his"),
    ("Diego", "he", "him", "his"),
    ("Kenji", "he", "him", "his"),
    ("Noah", "he", "him", "his"),
    ("Tomas", "he", "him", "his"),
    ("Ahmed", "he", "him", "his"),
    ("Lucas", "he", "him", "his"),
    ("Mia", "she", "her", "her"),
    ("Ava", "she", "her", "her"),
    ("Priya", "she", "her", "her"),
    ("Sofia", "she", "her", "her"),
    ("Lena", "she", "her", "her"),
    ("Aisha", "she", "her", "her"),
    ("Chloe", "she", "her", "her"),
    ("Yuki", "she", "her", "her"),
    ("Emma", "she", "her", "her"),
    ("Zara", "she", "her", "her"),
];

const OBJECTS: [&str; 20] = [
    "marbles",
    "apples",
    "stickers",
    "books",
    "coins",
    "pencils",
    "cookies",
    "seashells",
    "baseball cards",
    "stamps",
    "balloons",
    "beads",
    "crayons",
    "eggs",
    "toy cars",
    "flowers",
    "candies",
    "blocks",
    "buttons",
    "postcards",
];

// Placeholders: {N} name, {P} subject pronoun, {O} object pronoun, {S} possessive,
// {X} another person, {T} the objects, {k} the operand, {F} "a third" for Div(3).
// Templates start in lower case where they do not start with a name: the sentence is
// capitalised after an optional connector ("Then ") is put in front.
const STARTS: [&str; 4] =
    ["{N} has {k} {T}.", "{N} starts with {k} {T}.", "{N} owns {k} {T}.", "{N} has a collection of {k} {T}."];
const ADDS: [&str; 5] = [
    "{P} finds {k} more.",
    "{P} buys {k} more {T}.",
    "{X} gives {O} {k} {T}.",
    "{P} gets {k} more {T} as a gift.",
    "{P} wins {k} more {T} at a fair.",
];
const SUBS: [&str; 5] = [
    "{P} gives {k} {T} to {X}.",
    "{P} loses {k} of them.",
    "{P} sells {k} {T}.",
    "{X} takes {k} of them.",
    "{P} trades away {k} {T}.",
];
const MULS: [&str; 4] = [
    "{P} buys enough {T} to have {k} times as many as before.",
    "{X} gives {O} enough {T} to make {S} pile {k} times as large.",
    "the number of {T} {N} has becomes {k} times what it was.",
    "{P} collects more until {P} has {k} times as many {T}.",
];
const DIVS: [&str; 4] = [
    "{P} splits {S} {T} into {k} equal groups and keeps only one group.",
    "{P} shares {S} {T} equally among {k} boxes and keeps one box.",
    "{P} keeps {F} of {S} {T} and gives the rest to {X}.",
    "{X} takes all but {F} of {S} {T}.",
];
const CONNECTORS: [&str; 5] = ["", "Then ", "After that, ", "Later, ", "Next, "];
const QUESTIONS: [&str; 4] = [
    "How many {T} does {N} have now?",
    "How many {T} does {N} have at the end?",
    "How many {T} does {N} end up with?",
    "After all this, how many {T} does {N} have?",
];

fn share_word(k: u64) -> &'static str {
    match k {
        2 => "half",
        3 => "a third",
        4 => "a quarter",
        5 => "a fifth",
        6 => "a sixth",
        7 => "a seventh",
        8 => "an eighth",
        9 => "a ninth",
        10 => "a tenth",
        11 => "an eleventh",
        _ => "a twelfth",
    }
}

/// The question text: a start sentence, one sentence per operation, the question.
fn render(rng: &mut ChaCha8Rng, start: u64, ops: &[Op]) -> String {
    let person = pick(rng, &PEOPLE);
    // The other person has other pronouns, so "he" and "his" always mean the main person.
    let other = loop {
        let p = pick(rng, &PEOPLE);
        if p.1 != person.1 {
            break p.0;
        }
    };
    let objects = pick(rng, &OBJECTS);
    let fill = |template: &str, k: u64| -> String {
        template
            .replace("{N}", person.0)
            .replace("{P}", person.1)
            .replace("{O}", person.2)
            .replace("{S}", person.3)
            .replace("{X}", other)
            .replace("{T}", objects)
            .replace("{F}", share_word(k))
            .replace("{k}", &k.to_string())
    };
    let mut sentences = vec![capitalise(&fill(pick(rng, &STARTS), start))];
    for (i, op) in ops.iter().enumerate() {
        let (templates, k): (&[&str], u64) = match *op {
            Op::Add(k) => (&ADDS, k),
            Op::Sub(k) => (&SUBS, k),
            Op::Mul(k) => (&MULS, k),
            Op::Div(k) => (&DIVS, k),
        };
        let body = fill(pick(rng, templates), k);
        let connector = if i == 0 { "" } else { pick(rng, &CONNECTORS) };
        sentences.push(capitalise(&format!("{connector}{body}")));
    }
    sentences.push(capitalise(&fill(pick(rng, &QUESTIONS), 0)));
    sentences.join(" ")
}

/// A uniform element; the word lists are non-empty constants, so indexing cannot fail.
fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: [u64; 4] = [0, 1, 7, u64::MAX];

    /// Evaluates the structured form with plain arithmetic, independently of `Op::apply`,
    /// checking that every count stays a positive integer.
    fn recompute(p: &ArithProblem) -> Vec<u64> {
        let mut count = p.start;
        let mut out = Vec::new();
        for op in &p.ops {
            count = match *op {
                Op::Add(k) => count + k,
                Op::Sub(k) => {
                    assert!(k < count, "{op:?} from {count}");
                    count - k
                }
                Op::Mul(k) => count * k,
                Op::Div(k) => {
                    assert_eq!(count % k, 0, "{op:?} from {count}");
                    count / k
                }
            };
            out.push(count);
        }
        out
    }

    /// Each operation's sentence states its operand (or its share word, for `Div`).
    fn check_text_matches_ops(p: &ArithProblem) {
        let sentences: Vec<&str> = p.question.split(". ").collect();
        assert_eq!(sentences.len(), p.ops.len() + 2, "{}", p.question);
        let numbers = |s: &str| -> Vec<u64> {
            s.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).map(|w| w.parse().unwrap()).collect()
        };
        assert_eq!(numbers(sentences[0]), [p.start], "{}", p.question);
        for (sentence, op) in sentences[1..].iter().zip(&p.ops) {
            let (Op::Add(k) | Op::Sub(k) | Op::Mul(k) | Op::Div(k)) = *op;
            let ok = numbers(sentence) == [k] || (matches!(op, Op::Div(_)) && sentence.contains(share_word(k)));
            assert!(ok, "{op:?} vs {sentence:?} in {}", p.question);
        }
        assert!(p.question.ends_with('?'));
    }

    #[test]
    fn steps_recompute_to_gold_at_every_level() {
        for level in LEVELS {
            for seed in SEEDS {
                for index in 0..500 {
                    let p = ArithProblem::generate(level, seed, index).unwrap();
                    assert_eq!(p.ops.len(), level as usize);
                    let expected = recompute(&p);
                    assert!(expected.iter().all(|&c| c >= 1));
                    assert_eq!(p.results(), expected);
                    let problem = p.to_problem();
                    let steps: Vec<u64> = problem.steps.iter().map(|s| s.parse().unwrap()).collect();
                    assert_eq!(steps, expected, "{}", problem.id);
                    assert_eq!(problem.gold.parse::<u64>().unwrap(), *expected.last().unwrap());
                    assert_eq!(problem.id, format!("arith-l{level}/{seed}/{index}"));
                    assert_eq!(problem.level, Some(level));
                    check_text_matches_ops(&p);
                }
            }
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        for level in LEVELS {
            assert_eq!(generate(level, 42, 50).unwrap(), generate(level, 42, 50).unwrap());
            // A problem does not depend on how many were asked for.
            assert_eq!(generate(level, 42, 10).unwrap()[..], generate(level, 42, 50).unwrap()[..10]);
        }
    }

    #[test]
    fn differs_across_seeds_and_levels() {
        for level in LEVELS {
            let a = generate(level, 1, 50).unwrap();
            let b = generate(level, 2, 50).unwrap();
            let same = a.iter().zip(&b).filter(|(x, y)| x.question == y.question).count();
            assert!(same <= 1, "level {level}: {same} identical questions");
        }
        assert_ne!(generate(2, 1, 5).unwrap()[0].question, generate(3, 1, 5).unwrap()[0].question);
    }

    #[test]
    fn difficulty_rises_with_level() {
        let ops = |level: u32| -> Vec<Op> {
            (0..500).flat_map(|i| ArithProblem::generate(level, 3, i).unwrap().ops).collect()
        };
        let l1 = ops(1);
        assert!(l1.iter().all(|op| matches!(op, Op::Add(k) | Op::Sub(k) if *k <= 10)));
        for p in generate(1, 3, 500).unwrap() {
            assert!(p.gold.parse::<u64>().unwrap() <= 30, "{}", p.question);
        }
        let l2 = ops(2);
        assert!(l2.iter().any(|op| matches!(op, Op::Mul(_))));
        assert!(!l2.iter().any(|op| matches!(op, Op::Div(_))));
        for level in 3..=5 {
            assert!(ops(level).iter().any(|op| matches!(op, Op::Div(_))), "level {level}");
        }
        let mean_gold = |level| {
            generate(level, 3, 500).unwrap().iter().map(|p| p.gold.parse::<f64>().unwrap()).sum::<f64>() / 500.0
        };
        assert!(mean_gold(1) < mean_gold(3) && mean_gold(3) < mean_gold(5));
    }

    #[test]
    fn phrasing_varies() {
        let problems = generate(3, 5, 500).unwrap();
        let distinct = |f: &dyn Fn(&str) -> &str| {
            problems.iter().map(|p| f(&p.question)).collect::<std::collections::HashSet<_>>().len()
        };
        assert_eq!(distinct(&|q| q), 500);
        // First word: the person's name.
        assert!(distinct(&|q| q.split(' ').next().unwrap()) >= 15);
        // The closing question (which names the objects).
        assert!(distinct(&|q| q.rsplit(". ").next().unwrap()) >= 100);
    }

    #[test]
    fn level_out_of_range() {
        for level in [0, 6, u32::MAX] {
            assert!(matches!(ArithProblem::generate(level, 0, 0), Err(Error::LevelOutOfRange { .. })));
            assert!(generate(level, 0, 0).is_err());
        }
    }
}
