//! Chat templates: the model's own `tokenizer.chat_template`, rendered with minijinja the way
//! Hugging Face's `apply_chat_template` does; ChatML when a model has none.

use crate::error::{EngineError, Result};
use minijinja::{Environment, Error, ErrorKind, context};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// ChatML, used when the model file carries no template (and said so in `ChatTemplate::source`).
const FALLBACK: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

pub struct ChatTemplate {
    env: Environment<'static>,
    pub source: TemplateSource,
    bos: String,
    eos: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateSource {
    Model,
    Fallback,
}

impl ChatTemplate {
    pub fn new(template: Option<&str>, bos: &str, eos: &str) -> Result<Self> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, Error> { Err(Error::new(ErrorKind::InvalidOperation, msg)) });
        env.add_function("strftime_now", |fmt: String| -> String { strftime_today(&fmt) });
        let (src, source) = match template {
            Some(t) if !t.trim().is_empty() => (t.to_string(), TemplateSource::Model),
            _ => (FALLBACK.to_string(), TemplateSource::Fallback),
        };
        env.add_template_owned("chat", src).map_err(|e| EngineError::Template(format!("the model's chat template does not parse: {e}")))?;
        Ok(Self { env, source, bos: bos.into(), eos: eos.into() })
    }

    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template("chat").map_err(|e| EngineError::Template(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos,
            eos_token => self.eos,
        })
        .map_err(|e| EngineError::Template(format!("rendering failed: {e}")))
    }
}

/// Today's date in the few `strftime` fields chat templates use (Llama 3 puts the date in the
/// system prompt). Unknown fields are kept as written.
fn strftime_today(fmt: &str) -> String {
    let days = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    let name = MONTHS[(month - 1) as usize];
    fmt.replace("%Y", &year.to_string()).replace("%m", &format!("{month:02}")).replace("%d", &format!("{day:02}")).replace("%B", name).replace("%b", &name[..3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_is_chatml() {
        let t = ChatTemplate::new(None, "", "").unwrap();
        assert_eq!(t.source, TemplateSource::Fallback);
        let s = t.render(&[ChatMessage::new("user", "Hi")], true).unwrap();
        assert_eq!(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn hf_style_template_with_pycompat_and_raise() {
        let src =
            "{{ bos_token }}{% for m in messages %}{% if m.role not in ['user','assistant'] %}{{ raise_exception('bad role') }}{% endif %}[{{ m.role.upper() }}] {{ m.content | trim }}\n{% endfor %}";
        let t = ChatTemplate::new(Some(src), "<s>", "</s>").unwrap();
        assert_eq!(t.render(&[ChatMessage::new("user", " hi ")], false).unwrap(), "<s>[USER] hi\n");
        let err = t.render(&[ChatMessage::new("tool", "x")], false).unwrap_err();
        assert!(err.to_string().contains("bad role"));
    }

    #[test]
    fn strftime_gives_a_plausible_date() {
        let d = strftime_today("%d %b %Y");
        let parts: Vec<&str> = d.split(' ').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[2].parse::<i32>().unwrap() >= 2025);
    }

    #[test]
    fn broken_template_is_a_clear_error() {
        let err = ChatTemplate::new(Some("{% for %}"), "", "").err().unwrap();
        assert!(err.to_string().contains("does not parse"));
    }
}
