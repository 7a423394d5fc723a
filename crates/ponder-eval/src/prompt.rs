//! Problems as prompts, for chat models and for base models.
//!
//! Both styles ask for the same finish, "The answer is N.", which
//! [`ponder_core::answer::extract_answer`] reads first after `\boxed{}` and `####`.
//! The wording is short on purpose: the default model is a 135M instruct model.

use ponder_core::{Message, Problem};

/// How a problem is put to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptStyle {
    /// A system message, the two worked examples as earlier user/assistant turns, then the
    /// question with the instruction to reason step by step and end with "The answer is N.".
    /// For models with a chat template.
    Chat,
    /// One user message meant to be rendered as plain text (no chat template): an
    /// instruction line, two worked examples in the form `Question: ..\nAnswer: .. The
    /// answer is N.`, then `Question: {q}\nAnswer:` for the model to continue. For base
    /// models; sample with [`PromptStyle::stop`] so the model does not go on to invent the
    /// next question.
    Completion,
}

impl PromptStyle {
    /// Stop strings to sample with in this style.
    pub fn stop(self) -> &'static [&'static str] {
        match self {
            PromptStyle::Chat => &[],
            PromptStyle::Completion => &["\nQuestion:"],
        }
    }
}

const SYSTEM: &str = "You are a helpful assistant who solves math word problems.";

const INSTRUCTION: &str =
    "Solve the problem step by step. Finish with a line \"The answer is N.\" where N is the final number.";

/// Few-shot examples for [`PromptStyle::Completion`]: short, one with an operation chain
/// like `arith`, one with a product like GSM8K.
const EXAMPLES: [(&str, &str); 2] = [
    (
        "Tom has 3 apples. He buys 4 more. Then he gives 2 to Ana. How many apples does Tom have now?",
        "Tom starts with 3 apples. After buying 4 more he has 3 + 4 = 7. After giving 2 away he has 7 - 2 = 5. The answer is 5.",
    ),
    (
        "A box holds 6 eggs. Mia buys 5 boxes and uses 8 eggs. How many eggs are left?",
        "5 boxes hold 5 * 6 = 30 eggs. After using 8 eggs, 30 - 8 = 22 are left. The answer is 22.",
    ),
];

/// The messages that put `problem` to a model in `style`.
pub fn prompt(problem: &Problem, style: PromptStyle) -> Vec<Message> {
    match style {
        PromptStyle::Chat => chat(problem),
        PromptStyle::Completion => completion(problem),
    }
}

fn chat(problem: &Problem) -> Vec<Message> {
    // Worked examples as earlier turns: a 135M model copies their format far more
    // reliably than it follows an instruction.
    let mut messages = vec![Message::system(SYSTEM)];
    for (question, answer) in EXAMPLES {
        messages.push(Message::user(format!("{question}\n{INSTRUCTION}")));
        messages.push(Message::assistant(answer));
    }
    messages.push(Message::user(format!("{}\n{INSTRUCTION}", problem.question.trim())));
    messages
}

fn completion(problem: &Problem) -> Vec<Message> {
    let mut text = String::from("Solve each problem step by step and finish with \"The answer is N.\"\n\n");
    for (question, answer) in EXAMPLES {
        text.push_str(&format!("Question: {question}\nAnswer: {answer}\n\n"));
    }
    text.push_str(&format!("Question: {}\nAnswer:", problem.question.trim()));
    vec![Message::user(text)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_core::answer::extract_answer;
    use ponder_core::Role;

    fn problem() -> Problem {
        Problem {
            id: "t/0".into(),
            question: "Sam has 7 marbles. He finds 5 more. How many marbles does Sam have now?".into(),
            gold: "12".into(),
            level: Some(1),
            steps: vec!["12".into()],
        }
    }

    #[test]
    fn chat_is_system_then_worked_examples_then_user() {
        let messages = prompt(&problem(), PromptStyle::Chat);
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        use Role::*;
        assert_eq!(roles, [System, User, Assistant, User, Assistant, User]);
        let last = &messages[5].content;
        assert!(last.starts_with("Sam has 7 marbles."));
        assert!(last.contains("The answer is N."));
        for m in messages.iter().filter(|m| m.role == Assistant) {
            assert!(extract_answer(&m.content).is_some(), "worked example without an answer: {}", m.content);
        }
    }

    #[test]
    fn completion_ends_with_the_question_and_answer_cue() {
        let messages = prompt(&problem(), PromptStyle::Completion);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].role, Role::User);
        let text = &messages[0].content;
        assert!(text
            .ends_with("Question: Sam has 7 marbles. He finds 5 more. How many marbles does Sam have now?\nAnswer:"));
        assert_eq!(text.matches("Question: ").count(), 3);
    }

    #[test]
    fn worked_examples_extract_to_their_answers() {
        for ((_, answer), expected) in EXAMPLES.iter().zip(["5", "22"]) {
            assert_eq!(extract_answer(answer).as_deref(), Some(expected));
        }
    }
}
