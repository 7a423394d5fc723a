//! Prompt formatting: the model's own chat template (Jinja, rendered with minijinja), or
//! plain completion text for base models that have none.

use std::sync::{Arc, OnceLock};

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use ponder_core::{Message, Role};

/// How a conversation becomes prompt text.
#[derive(Debug, Clone)]
pub enum ChatFormat {
    /// The template from the GGUF's `tokenizer.chat_template`.
    Template { source: String, bos: String, eos: String, compiled: Compiled },
    /// No template: message contents joined by blank lines, assistant turns appended as
    /// they are, so a trailing user turn ending in "Answer:" is continued by the model.
    Plain,
}

/// The template parsed once, on first use: every request renders it (the gateway twice:
/// to admit it and to run it), and parsing a long template costs more than rendering it.
#[derive(Clone, Default)]
pub struct Compiled(Arc<OnceLock<Result<Environment<'static>, String>>>);

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "Compiled(parsed)" } else { "Compiled(not yet)" })
    }
}

impl ChatFormat {
    /// A chat template, parsed when it is first rendered.
    pub fn template(source: String, bos: String, eos: String) -> ChatFormat {
        ChatFormat::Template { source, bos, eos, compiled: Compiled::default() }
    }

    pub fn has_template(&self) -> bool {
        matches!(self, ChatFormat::Template { .. })
    }

    /// The prompt text for `messages`, ready for the assistant's reply.
    pub fn render(&self, messages: &[Message]) -> Result<String, String> {
        match self {
            ChatFormat::Template { source, bos, eos, compiled } => {
                let env = compiled.0.get_or_init(|| compile(source.clone())).as_ref().map_err(Clone::clone)?;
                render_template(env, bos, eos, messages)
            }
            ChatFormat::Plain => Ok(render_plain(messages)),
        }
    }
}

fn render_plain(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        if !out.is_empty() && m.role != Role::Assistant {
            out.push_str("\n\n");
        } else if m.role == Role::Assistant {
            out.push(' ');
        }
        out.push_str(&m.content);
    }
    out
}

fn compile(source: String) -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.add_function("raise_exception", |msg: String| -> Result<String, JinjaError> {
        Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_template_owned("chat", source).map_err(|e| format!("chat template does not parse: {e}"))?;
    Ok(env)
}

fn render_template(env: &Environment<'static>, bos: &str, eos: &str, messages: &[Message]) -> Result<String, String> {
    let tmpl = env.get_template("chat").map_err(|e| e.to_string())?;
    let msgs: Vec<_> = messages.iter().map(|m| context! { role => m.role.as_str(), content => m.content.clone() }).collect();
    tmpl.render(context! {
        messages => msgs,
        add_generation_prompt => true,
        bos_token => bos,
        eos_token => eos,
    })
    .map_err(|e| format!("chat template failed to render: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_template_renders() {
        let f = ChatFormat::template(CHATML.into(), String::new(), String::new());
        let out = f.render(&[Message::system("S"), Message::user("Q")]).unwrap();
        assert_eq!(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn raise_exception_becomes_an_error() {
        let f = ChatFormat::template("{{ raise_exception('no system') }}".into(), String::new(), String::new());
        let err = f.render(&[Message::user("Q")]).unwrap_err();
        assert!(err.contains("no system"), "{err}");
    }

    #[test]
    fn a_template_that_does_not_parse_fails_every_render_with_the_parse_error() {
        let f = ChatFormat::template("{% for %}".into(), String::new(), String::new());
        for _ in 0..2 {
            let err = f.render(&[Message::user("Q")]).unwrap_err();
            assert!(err.contains("does not parse"), "{err}");
        }
    }

    #[test]
    fn plain_joins_turns() {
        let out = ChatFormat::Plain.render(&[Message::system("Solve."), Message::user("Question: 1+1?\nAnswer:")]).unwrap();
        assert_eq!(out, "Solve.\n\nQuestion: 1+1?\nAnswer:");
    }
}
