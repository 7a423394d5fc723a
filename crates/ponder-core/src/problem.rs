//! Problems and their checkers.

use serde::{Deserialize, Serialize};

use crate::answer::Equivalence;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One turn of a conversation.
///
/// The tool fields carry OpenAI-style tool use through unchanged (the gateway passes them
/// to HTTP backends as they came); backends that render text themselves may fold them
/// into the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// Tool calls made by an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` turn answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Optional name of the author (or of the tool, for `tool` turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One function call of an assistant turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments as JSON text, as the model wrote them.
    pub arguments: String,
}

impl Message {
    /// A plain turn: no tool calls, no name.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None, name: None }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A question with a known answer, as datasets provide it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable id within its dataset, e.g. `gsm8k/17` or `arith-l2-s7/3`.
    pub id: String,
    /// The question as shown to the model.
    pub question: String,
    /// The reference final answer (already extracted, e.g. `72`).
    pub gold: String,
    /// Difficulty level where the dataset has one.
    pub level: Option<u32>,
    /// Reference intermediate results, one per reasoning step, where the dataset knows them
    /// (the generated arithmetic task does; used by exact step checkers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

/// Decides whether an extracted answer is correct for a problem: a task's own checker.
pub trait Checker: Send + Sync {
    fn is_correct(&self, problem: &Problem, answer: Option<&str>) -> bool;
}

/// A checker that compares the answer with the gold answer under an [`Equivalence`].
#[derive(Debug, Clone, Default)]
pub struct GoldChecker<E>(pub E);

impl<E: Equivalence> Checker for GoldChecker<E> {
    fn is_correct(&self, problem: &Problem, answer: Option<&str>) -> bool {
        answer.is_some_and(|a| self.0.equivalent(&problem.gold, a))
    }
}
