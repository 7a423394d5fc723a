//! How a problem is put to a model: a [`PromptTemplate`], built in or the user's own file.
//!
//! A template is a system message, worked examples (or none) and the user message, a
//! minijinja template over the problem. `chat` templates become messages for the model's
//! own chat template; `completion` templates become one plain-text prompt for base models,
//! the examples written out in the same form as the question, each followed by its answer.
//! The run store keeps the template whole and every problem's rendered prompt, so a run
//! can be audited and repeated without the file it came from.

use std::path::Path;

use minijinja::Environment;
use ponder_core::{Message, Problem};
use serde::{Deserialize, Serialize};

use crate::{Error, Kind};

/// Chat messages for the model's template, or one plain-text prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptFormat {
    #[default]
    Chat,
    Completion,
}

/// A worked example: a question and the answer the model should imitate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub question: String,
    pub answer: String,
}

/// How a problem is put to the model. Read from TOML or JSON with the same field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    /// The built-in's name or the file it was read from; shown in listings.
    pub name: String,
    #[serde(default)]
    pub format: PromptFormat,
    /// The system message (chat), or the text before the examples (completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Worked examples, as earlier user/assistant turns (chat) or as text (completion).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
    /// The user message: a minijinja template over `question`, `id`, `level` and
    /// `question_is_code` (true when the question is code to complete, as in HumanEval).
    /// The filter `comment` prefixes every line with `# `.
    pub user: String,
    /// Stop strings to sample with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

const FEWSHOT_SYSTEM: &str = "You are a helpful assistant who solves math word problems.";
const FEWSHOT_USER: &str =
    "{{ question | trim }}\nSolve the problem step by step. Finish with a line \"The answer is N.\" where N is the final number.";

/// Few-shot examples: short, one with an operation chain like `arith`, one with a product
/// like GSM8K. One step per paragraph, so step-level search splits them on blank lines.
const FEWSHOT: [(&str, &str); 2] = [
    (
        "Tom has 3 apples. He buys 4 more. Then he gives 2 to Ana. How many apples does Tom have now?",
        "Tom starts with 3 apples.\n\nAfter buying 4 more he has 3 + 4 = 7.\n\nAfter giving 2 away he has 7 - 2 = 5.\n\nThe answer is 5.",
    ),
    (
        "A box holds 6 eggs. Mia buys 5 boxes and uses 8 eggs. How many eggs are left?",
        "5 boxes hold 5 * 6 = 30 eggs.\n\nAfter using 8 eggs, 30 - 8 = 22 are left.\n\nThe answer is 22.",
    ),
];

const CODE_SYSTEM: &str = "You are a helpful assistant who writes correct Python code.";
const CODE_CHAT_USER: &str = "{% if question_is_code %}Complete the following Python function. Reply with the complete \
function, imports included, in one ```python code block.\n\n```python\n{{ question | trim_end }}\n```\
{% else %}{{ question | trim_end }}\nReply with the complete Python function in one ```python code block.{% endif %}";

/// The built-in templates' names, for `--help` and errors.
pub const BUILTIN_NAMES: &[&str] = &["math-fewshot", "math-boxed", "math-completion", "code-chat", "code-completion"];

impl PromptTemplate {
    /// A built-in template by name (see [`BUILTIN_NAMES`]).
    pub fn builtin(name: &str) -> Option<PromptTemplate> {
        let examples = || FEWSHOT.iter().map(|(q, a)| Example { question: q.to_string(), answer: a.to_string() }).collect();
        let t = |format, system: Option<&str>, examples, user: &str, stop: &[&str]| PromptTemplate {
            name: name.to_string(),
            format,
            system: system.map(str::to_string),
            examples,
            user: user.to_string(),
            stop: stop.iter().map(|s| s.to_string()).collect(),
        };
        Some(match name {
            // Worked examples as earlier turns: a 135M model copies their format far more
            // reliably than it follows an instruction.
            "math-fewshot" => t(PromptFormat::Chat, Some(FEWSHOT_SYSTEM), examples(), FEWSHOT_USER, &[]),
            // The instruction Qwen2.5's instruct models were tuned on; no system message, so
            // the model's chat template supplies its own default.
            "math-boxed" => t(
                PromptFormat::Chat,
                None,
                Vec::new(),
                "{{ question | trim }}\nPlease reason step by step, and put your final answer within \\boxed{}.",
                &[],
            ),
            "math-completion" => t(
                PromptFormat::Completion,
                Some("Solve each problem step by step and finish with \"The answer is N.\""),
                examples(),
                "Question: {{ question | trim }}\nAnswer:",
                &["\nQuestion:"],
            ),
            "code-chat" => t(PromptFormat::Chat, Some(CODE_SYSTEM), Vec::new(), CODE_CHAT_USER, &[]),
            // HumanEval: the signature and docstring verbatim, so the model writes the body.
            // MBPP: the task and its test as comments, so the model writes the function. The
            // usual HumanEval stops, less "\ndef" (an MBPP answer may need helpers).
            "code-completion" => t(
                PromptFormat::Completion,
                None,
                Vec::new(),
                "{% if question_is_code %}{{ question }}{% else %}{{ question | trim | comment }}{% endif %}",
                &["\nclass ", "\nif __name__", "\nprint(", "\nassert "],
            ),
            _ => return None,
        })
    }

    /// The template for a dataset of `kind` on a model with or without a chat template.
    /// `family` is the model's architecture (`general.architecture` in its GGUF): Qwen
    /// models answer math best with their own `\boxed{}` instruction (BENCHMARKS.md).
    pub fn default_for(kind: Kind, has_chat_template: bool, family: &str) -> PromptTemplate {
        let name = match (kind, has_chat_template) {
            (Kind::Answer, true) if family.starts_with("qwen") => "math-boxed",
            (Kind::Answer, true) => "math-fewshot",
            (Kind::Answer, false) => "math-completion",
            (Kind::Code, true) => "code-chat",
            (Kind::Code, false) => "code-completion",
        };
        // Every name above is a built-in.
        PromptTemplate::builtin(name).expect("default templates are built in")
    }

    /// A built-in name, or a TOML (`.toml`) or JSON file; checked by rendering a sample.
    pub fn resolve(spec: &str) -> Result<PromptTemplate, Error> {
        if let Some(t) = PromptTemplate::builtin(spec) {
            return Ok(t);
        }
        let path = Path::new(spec);
        if !path.exists() {
            return Err(Error::BadPrompt {
                name: spec.to_string(),
                reason: format!("no such file, and not a built-in ({})", BUILTIN_NAMES.join(", ")),
            });
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::BadPrompt { name: spec.to_string(), reason: e.to_string() })?;
        let is_toml = path.extension().is_some_and(|x| x == "toml");
        let mut t: PromptTemplate = if is_toml {
            // A file need not repeat its own name.
            let mut v: toml::Table =
                toml::from_str(&text).map_err(|e| Error::BadPrompt { name: spec.to_string(), reason: e.to_string() })?;
            v.entry("name").or_insert_with(|| toml::Value::String(spec.to_string()));
            v.try_into().map_err(|e: toml::de::Error| Error::BadPrompt { name: spec.to_string(), reason: e.to_string() })?
        } else {
            let mut v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::BadPrompt { name: spec.to_string(), reason: e.to_string() })?;
            if let Some(obj) = v.as_object_mut() {
                obj.entry("name").or_insert_with(|| serde_json::Value::String(spec.to_string()));
            }
            serde_json::from_value(v).map_err(|e| Error::BadPrompt { name: spec.to_string(), reason: e.to_string() })?
        };
        if t.name.trim().is_empty() {
            t.name = spec.to_string();
        }
        t.validate()?;
        Ok(t)
    }

    /// Renders a sample problem, so a broken template fails before any generation.
    pub fn validate(&self) -> Result<(), Error> {
        let sample = Problem {
            id: "check/0".into(),
            question: "What is 1 + 1?".into(),
            gold: "2".into(),
            level: None,
            steps: Vec::new(),
        };
        self.render(&sample).map(|_| ())
    }

    /// The messages that put `problem` to the model.
    pub fn render(&self, problem: &Problem) -> Result<Vec<Message>, Error> {
        let env = environment();
        let user = |question: &str, id: &str, level: Option<u32>| -> Result<String, Error> {
            env.render_str(
                &self.user,
                minijinja::context! { question, id, level, question_is_code => is_code_question(problem) },
            )
            .map_err(|e| Error::BadPrompt { name: self.name.clone(), reason: format!("{e:#}") })
        };
        let question = user(&problem.question, &problem.id, problem.level)?;
        match self.format {
            PromptFormat::Chat => {
                let mut messages: Vec<Message> = self.system.iter().map(Message::system).collect();
                for ex in &self.examples {
                    messages.push(Message::user(user(&ex.question, "example", None)?));
                    messages.push(Message::assistant(ex.answer.clone()));
                }
                messages.push(Message::user(question));
                Ok(messages)
            }
            PromptFormat::Completion => {
                let mut text = self.system.as_ref().map(|s| format!("{s}\n\n")).unwrap_or_default();
                for ex in &self.examples {
                    text.push_str(&format!("{} {}\n\n", user(&ex.question, "example", None)?, ex.answer));
                }
                text.push_str(&question);
                Ok(vec![Message::user(text)])
            }
        }
    }
}

/// HumanEval questions are code to continue (a signature and docstring); MBPP questions
/// are prose. Told apart by id, which the dataset fixes.
fn is_code_question(problem: &Problem) -> bool {
    problem.id.starts_with("humaneval/")
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Keep what the template writes exactly: a HumanEval prompt ends in a newline the
    // model continues after.
    env.set_keep_trailing_newline(true);
    env.add_filter("trim_end", |s: String| s.trim_end().to_string());
    env.add_filter("comment", |s: String| s.lines().map(|l| format!("# {l}\n")).collect::<String>());
    env
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

    fn render(name: &str, p: &Problem) -> Vec<Message> {
        PromptTemplate::builtin(name).expect("built in").render(p).expect("renders")
    }

    #[test]
    fn every_builtin_renders_and_round_trips_through_toml_and_json() {
        for name in BUILTIN_NAMES {
            let t = PromptTemplate::builtin(name).expect("listed names are built in");
            t.validate().expect("renders");
            let toml_text = toml::to_string(&t).expect("toml");
            assert_eq!(toml::from_str::<PromptTemplate>(&toml_text).expect("parses"), t, "{name}");
            let json = serde_json::to_string(&t).expect("json");
            assert_eq!(serde_json::from_str::<PromptTemplate>(&json).expect("parses"), t, "{name}");
        }
    }

    #[test]
    fn fewshot_is_system_then_worked_examples_then_user() {
        let messages = render("math-fewshot", &problem());
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        use Role::*;
        assert_eq!(roles, [System, User, Assistant, User, Assistant, User]);
        let last = &messages[5].content;
        assert!(last.starts_with("Sam has 7 marbles."));
        assert!(last.contains("The answer is N."));
        assert_eq!(messages[1].content, format!("{}\n{}", FEWSHOT[0].0, "Solve the problem step by step. Finish with a line \"The answer is N.\" where N is the final number."));
        for m in messages.iter().filter(|m| m.role == Assistant) {
            assert!(extract_answer(&m.content).is_some(), "worked example without an answer: {}", m.content);
        }
    }

    #[test]
    fn boxed_is_one_user_message_with_the_boxed_instruction() {
        let messages = render("math-boxed", &problem());
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].role, Role::User);
        assert!(messages[0].content.ends_with("put your final answer within \\boxed{}."), "{}", messages[0].content);
    }

    #[test]
    fn completion_ends_with_the_question_and_answer_cue() {
        let messages = render("math-completion", &problem());
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].role, Role::User);
        let text = &messages[0].content;
        assert!(text.starts_with("Solve each problem step by step and finish with \"The answer is N.\"\n\nQuestion: Tom"));
        assert!(text
            .ends_with("Question: Sam has 7 marbles. He finds 5 more. How many marbles does Sam have now?\nAnswer:"));
        assert!(text.contains("Answer: Tom starts with 3 apples."), "{text}");
        assert_eq!(text.matches("Question: ").count(), 3);
        assert_eq!(PromptTemplate::builtin("math-completion").expect("built in").stop, ["\nQuestion:"]);
    }

    fn code_problem(id: &str, question: &str) -> Problem {
        Problem { id: id.into(), question: question.into(), gold: id.into(), level: None, steps: Vec::new() }
    }

    #[test]
    fn code_chat_asks_for_a_python_block() {
        let he = code_problem("humaneval/HumanEval/9", "def f(x):\n    \"\"\"Add one.\"\"\"\n");
        let messages = render("code-chat", &he);
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User]);
        assert!(messages[1].content.ends_with("```python\ndef f(x):\n    \"\"\"Add one.\"\"\"\n```"), "{}", messages[1].content);
        let mbpp = code_problem("mbpp/11", "Write a function.\nYour code should pass this test:\nassert f(1) == 2\n");
        let user = &render("code-chat", &mbpp)[1].content;
        assert!(user.starts_with("Write a function.") && user.contains("```python code block"), "{user}");
    }

    #[test]
    fn code_completion_is_the_code_to_continue() {
        let question = "def f(x):\n    \"\"\"Add one.\"\"\"\n";
        let messages = render("code-completion", &code_problem("humaneval/HumanEval/9", question));
        assert_eq!(messages, vec![Message::user(question)]);
        let mbpp = code_problem("mbpp/11", "Write a function.\nassert f(1) == 2\n");
        assert_eq!(render("code-completion", &mbpp)[0].content, "# Write a function.\n# assert f(1) == 2\n");
        assert!(PromptTemplate::builtin("code-completion").expect("built in").stop.contains(&"\nassert ".to_string()));
    }

    #[test]
    fn worked_examples_extract_to_their_answers() {
        for ((_, answer), expected) in FEWSHOT.iter().zip(["5", "22"]) {
            assert_eq!(extract_answer(answer).as_deref(), Some(expected));
        }
    }

    #[test]
    fn defaults_follow_kind_template_and_family() {
        let name = |k, t, f| PromptTemplate::default_for(k, t, f).name;
        assert_eq!(name(Kind::Answer, true, "llama"), "math-fewshot");
        assert_eq!(name(Kind::Answer, true, "qwen2"), "math-boxed");
        assert_eq!(name(Kind::Answer, false, "gemma3"), "math-completion");
        assert_eq!(name(Kind::Code, true, "qwen2"), "code-chat");
        assert_eq!(name(Kind::Code, false, "gemma3"), "code-completion");
    }

    #[test]
    fn user_files_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("mine.toml");
        std::fs::write(
            &good,
            "system = \"Be brief.\"\nuser = \"Q: {{ question }} (level {{ level or '?' }})\"\n\n[[examples]]\nquestion = \"1+1?\"\nanswer = \"2\"\n",
        )
        .expect("write");
        let t = PromptTemplate::resolve(good.to_str().expect("utf-8 path")).expect("reads");
        assert_eq!(t.name, good.to_str().expect("utf-8 path"));
        let m = t.render(&problem()).expect("renders");
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].content, "Q: 1+1? (level ?)");
        assert!(m[3].content.ends_with("(level 1)"), "{}", m[3].content);

        let json = dir.path().join("mine.json");
        std::fs::write(&json, r#"{"name": "short", "user": "{{ question }}", "format": "completion"}"#).expect("write");
        assert_eq!(PromptTemplate::resolve(json.to_str().expect("utf-8")).expect("reads").name, "short");

        let bad_field = dir.path().join("bad.toml");
        std::fs::write(&bad_field, "user = \"{{ question }}\"\nsytem = \"typo\"\n").expect("write");
        let e = PromptTemplate::resolve(bad_field.to_str().expect("utf-8")).expect_err("unknown field");
        assert!(e.to_string().contains("sytem"), "{e}");
        let bad_syntax = dir.path().join("broken.toml");
        std::fs::write(&bad_syntax, "user = \"{{ question \"\n").expect("write");
        let e = PromptTemplate::resolve(bad_syntax.to_str().expect("utf-8")).expect_err("broken template");
        assert!(e.to_string().contains("broken.toml"), "{e}");
        let e = PromptTemplate::resolve("no-such-template").expect_err("unknown");
        assert!(e.to_string().contains("math-boxed"), "{e}");
    }
}
