//! A user's answer projection for voting on free text (`answer_pattern`, the way
//! optillm and its_hub let a request say where its answer is): the last match of a regular
//! expression in a sample, its first capture group if it has one.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone)]
pub struct AnswerPattern(Regex);

impl AnswerPattern {
    /// The answer in `text`: the last match (its first group when the pattern has one),
    /// trimmed; `None` when nothing matches or the match is blank.
    pub fn extract(&self, text: &str) -> Option<String> {
        let caps = self.0.captures_iter(text).last()?;
        let m = caps.get(1).or_else(|| caps.get(0))?;
        let a = m.as_str().trim();
        (!a.is_empty()).then(|| a.to_string())
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for AnswerPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("answer_pattern is empty".into());
        }
        // Bounded so a request cannot make the server build a huge automaton.
        regex::RegexBuilder::new(s).size_limit(1 << 20).build().map(AnswerPattern).map_err(|e| format!("answer_pattern is not a regular expression: {e}"))
    }
}

impl fmt::Debug for AnswerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnswerPattern({:?})", self.0.as_str())
    }
}

impl PartialEq for AnswerPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for AnswerPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AnswerPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_match_answers_by_its_first_group() {
        let p: AnswerPattern = r"Answer:\s*(\w+)".parse().unwrap();
        assert_eq!(p.extract("Answer: Lyon. No wait. Answer: Paris."), Some("Paris".into()));
        assert_eq!(p.extract("no answer here"), None);
        let whole: AnswerPattern = r"[A-D]\)".parse().unwrap();
        assert_eq!(whole.extract("I pick B) then C)"), Some("C)".into()), "no group: the whole match");
        let blank: AnswerPattern = r"Answer:(\s*)".parse().unwrap();
        assert_eq!(blank.extract("Answer:   "), None);
    }

    #[test]
    fn bad_patterns_are_errors_and_good_ones_round_trip() {
        assert!("(".parse::<AnswerPattern>().unwrap_err().contains("not a regular expression"));
        assert!(" ".parse::<AnswerPattern>().unwrap_err().contains("empty"));
        let p: AnswerPattern = serde_json::from_str(r#""x=(\\d+)""#).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), r#""x=(\\d+)""#);
        assert!(serde_json::from_str::<AnswerPattern>(r#""[""#).is_err());
    }
}
