//! Problems as prompts, for chat models and for base models.
//!
//! Both answer styles ask for the same finish, "The answer is N.", which
//! [`ponder_core::answer::extract_answer`] reads first after `\boxed{}` and `####`.
//! The code styles ask for a ```` ```python ```` block (chat) or are the code to continue
//! (completion), as [`ponder_verify::code::extract_code`] reads them.
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
    /// Code (HumanEval, MBPP) for a chat model: a system message, then the task with the
    /// instruction to reply with the complete function in one ```` ```python ```` block.
    /// A HumanEval question (signature and docstring) is shown inside such a block.
    CodeChat,
    /// Code for a base model: one plain-text message that is the code to continue. HumanEval:
    /// the signature and docstring themselves, so the model writes the body. MBPP: the task
    /// and its test as Python comments, so the model writes the function.
    CodeCompletion,
}

impl PromptStyle {
    /// Stop strings to sample with in this style.
    pub fn stop(self) -> &'static [&'static str] {
        match self {
            PromptStyle::Chat | PromptStyle::CodeChat => &[],
            PromptStyle::Completion => &["\nQuestion:"],
            // The usual HumanEval stops, less "\ndef" (an MBPP completion may need helpers):
            // what follows the function is a test or a script, not part of the answer.
            PromptStyle::CodeCompletion => &["\nclass ", "\nif __name__", "\nprint(", "\nassert "],
        }
    }
}

const SYSTEM: &str = "You are a helpful assistant who solves math word problems.";

const INSTRUCTION: &str =
    "Solve the problem step by step. Finish with a line \"The answer is N.\" where N is the final number.";

/// Few-shot examples: short, one with an operation chain like `arith`, one with a product
/// like GSM8K. One step per paragraph, so step-level search splits them on blank lines.
const EXAMPLES: [(&str, &str); 2] = [
    (
        "Tom has 3 apples. He buys 4 more. Then he gives 2 to Ana. How many apples does Tom have now?",
        "Tom starts with 3 apples.\n\nAfter buying 4 more he has 3 + 4 = 7.\n\nAfter giving 2 away he has 7 - 2 = 5.\n\nThe answer is 5.",
    ),
    (
        "A box holds 6 eggs. Mia buys 5 boxes and uses 8 eggs. How many eggs are left?",
        "5 boxes hold 5 * 6 = 30 eggs.\n\nAfter using 8 eggs, 30 - 8 = 22 are left.\n\nThe answer is 22.",
    ),
];

/// The messages that put `problem` to a model in `style`.
pub fn prompt(problem: &Problem, style: PromptStyle) -> Vec<Message> {
    match style {
        PromptStyle::Chat => chat(problem),
        PromptStyle::Completion => completion(problem),
        PromptStyle::CodeChat => code_chat(problem),
        PromptStyle::CodeCompletion => code_completion(problem),
    }
}

const CODE_SYSTEM: &str = "You are a helpful assistant who writes correct Python code.";

/// HumanEval questions are code to continue (a signature and docstring); MBPP questions
/// are prose. Told apart by id, which the dataset fixes.
fn is_code_question(problem: &Problem) -> bool {
    problem.id.starts_with("humaneval/")
}

fn code_chat(problem: &Problem) -> Vec<Message> {
    let question = problem.question.trim_end();
    let user = if is_code_question(problem) {
        format!(
            "Complete the following Python function. Reply with the complete function, imports included, \
             in one ```python code block.\n\n```python\n{question}\n```"
        )
    } else {
        format!("{question}\nReply with the complete Python function in one ```python code block.")
    };
    vec![Message::system(CODE_SYSTEM), Message::user(user)]
}

fn code_completion(problem: &Problem) -> Vec<Message> {
    if is_code_question(problem) {
        // Verbatim, trailing newline included: the model continues with the indented body.
        return vec![Message::user(problem.question.clone())];
    }
    let comments: String = problem.question.trim().lines().map(|l| format!("# {l}\n")).collect();
    vec![Message::user(comments)]
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

    fn code_problem(id: &str, question: &str) -> Problem {
        Problem { id: id.into(), question: question.into(), gold: id.into(), level: None, steps: Vec::new() }
    }

    #[test]
    fn code_chat_asks_for_a_python_block() {
        let he = code_problem("humaneval/HumanEval/9", "def f(x):\n    \"\"\"Add one.\"\"\"\n");
        let messages = prompt(&he, PromptStyle::CodeChat);
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User]);
        assert!(messages[1].content.ends_with("```python\ndef f(x):\n    \"\"\"Add one.\"\"\"\n```"));
        let mbpp = code_problem("mbpp/11", "Write a function.\nYour code should pass this test:\nassert f(1) == 2\n");
        let user = &prompt(&mbpp, PromptStyle::CodeChat)[1].content;
        assert!(user.starts_with("Write a function.") && user.contains("```python code block"), "{user}");
        assert!(PromptStyle::CodeChat.stop().is_empty());
    }

    #[test]
    fn code_completion_is_the_code_to_continue() {
        let question = "def f(x):\n    \"\"\"Add one.\"\"\"\n";
        let messages = prompt(&code_problem("humaneval/HumanEval/9", question), PromptStyle::CodeCompletion);
        assert_eq!(messages, vec![Message::user(question)]);
        let mbpp = code_problem("mbpp/11", "Write a function.\nassert f(1) == 2\n");
        let messages = prompt(&mbpp, PromptStyle::CodeCompletion);
        assert_eq!(messages[0].content, "# Write a function.\n# assert f(1) == 2\n");
        assert!(PromptStyle::CodeCompletion.stop().contains(&"\nassert "));
    }

    #[test]
    fn worked_examples_extract_to_their_answers() {
        for ((_, answer), expected) in EXAMPLES.iter().zip(["5", "22"]) {
            assert_eq!(extract_answer(answer).as_deref(), Some(expected));
        }
    }
}
