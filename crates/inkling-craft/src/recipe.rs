//! Recipes: each writing tool is a TOML file (embedded in the binary, or the writer's own in
//! their config folder) saying what the tool takes, how its prompt reads for chat models and
//! for plain-text (base) models, how it samples, and how its answer is read back.
//!
//! ```toml
//! description = "Shorter, without losing meaning."
//! input = "the passage to tighten"
//!
//! [options.level]                 # becomes `--level` on the command line
//! help = "how hard to cut"
//! default = "firm"
//! values = { light = "a light trim", firm = "about a third shorter" }
//!
//! [sampling]
//! temperature = 0.7
//!
//! [prompt]
//! system = "You are a precise line editor."
//! chat = "Tighten this passage ({{ level }}):\n\n{{ text }}"
//! text = "Original:\n{{ text }}\n\nTightened:\n"
//!
//! [output]
//! kind = "text"        # text | list | json
//! length = "shorter"   # the answer must be shorter (or "longer") than the input
//! diff = true
//! voice = true         # the answer is the writer's prose: rank by their voice profile
//! ```
//!
//! A list tool says how many items it asks for (`items = 6` under `[output]`, or a template
//! such as an outline's, whose chapters and beats have counts and whose synopsis has none); a
//! list that stops short is carried on ([`crate::carry_on`]).
//!
//! Templates are minijinja. They see `text` (the writer's input), `story` (the text before the
//! cursor, cut to the budget, with the author's note inserted), `memory`, `lore`, `count` (a
//! list's items), `language` (the answer's, in English: "Chinese"), and each option by its
//! name (the phrase its value stands for). A chat prompt for an answer in a language other
//! than English gets a line asking for it, in that language ([`crate::language`]).

use crate::error::{CraftError, Result};
use crate::text::line_col;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed, checked recipe.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub name: String,
    pub description: String,
    /// What the tool's text is, in words ("the passage to tighten"); used in help and errors.
    pub input: String,
    /// Whether the tool works without text.
    pub needs_text: bool,
    /// The text is the story before the cursor, continued: it is cut from the front to fit
    /// and becomes the `story` the template sees.
    pub continues: bool,
    pub options: BTreeMap<String, OptionSpec>,
    pub sampling: SamplingDefaults,
    pub prompt: PromptSpec,
    pub output: OutputSpec,
    /// Where it came from: `builtin` or a file path.
    pub source: String,
    /// The TOML text, kept so `inkling tools --show NAME` can print it for copying.
    pub toml: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionSpec {
    #[serde(default)]
    pub help: String,
    pub default: Option<String>,
    /// Named values and the phrase each puts into the prompt.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Accept any value as a free-form instruction when it is not one of `values`.
    #[serde(default)]
    pub free: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingDefaults {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    /// DRY's strength (0 turns it off): edits set 0, since DRY penalises every phrase an
    /// answer keeps from the passage, and keeping the writer's words is an edit's job.
    pub dry_multiplier: Option<f32>,
    pub max_tokens: Option<usize>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// System message for chat models.
    #[serde(default)]
    pub system: String,
    /// The user message for chat models; without it the plain-text frame is always used.
    pub chat: Option<String>,
    /// The plain-text frame for base models (and for tools that continue prose).
    pub text: String,
    /// The start of the model's answer, written for it ("1." for a list).
    #[serde(default)]
    pub prefill: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    #[default]
    Text,
    List,
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trim {
    /// Cut after the last whole sentence.
    #[default]
    Sentence,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LengthGoal {
    Shorter,
    Longer,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    #[serde(default)]
    pub kind: OutputKind,
    #[serde(default)]
    pub trim: Trim,
    /// Relative to the input text.
    pub length: Option<LengthGoal>,
    /// Show a word-level diff against the input.
    #[serde(default)]
    pub diff: bool,
    /// Strings that end the answer.
    #[serde(default)]
    pub stop: Vec<String>,
    /// JSON schema for `kind = "json"` (the answer is decoded under it, so it always parses).
    pub schema: Option<toml::Value>,
    /// List tools: how many items the prompt asks for, `count` in the templates (the
    /// writer's `--count` replaces it). A list that stops short is carried on.
    pub items: Option<Items>,
    /// The answer is the writer's own prose (a continuation, a draft, an expansion): its
    /// candidates rank by the project's voice profile when there is one.
    #[serde(default)]
    pub voice: bool,
}

/// A list's length: a number, or a template rendered with the options whose empty result
/// means this kind of answer has no set length (an outline's one-paragraph synopsis).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Items {
    Fixed(usize),
    Template(String),
}

/// The file as written, with spans kept for error messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    description: String,
    #[serde(default)]
    input: Option<String>,
    #[serde(default = "yes")]
    needs_text: bool,
    #[serde(default)]
    continues: bool,
    #[serde(default)]
    options: BTreeMap<String, OptionSpec>,
    #[serde(default)]
    sampling: SamplingDefaults,
    prompt: PromptFile,
    #[serde(default)]
    output: OutputSpec,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptFile {
    #[serde(default)]
    system: Option<toml::Spanned<String>>,
    chat: Option<toml::Spanned<String>>,
    text: toml::Spanned<String>,
    #[serde(default)]
    prefill: String,
}

impl Recipe {
    /// Parses and checks a recipe; errors name `file` and the line.
    pub fn parse(name: &str, src: &str, file: &Path) -> Result<Self> {
        let err = |offset: usize, message: String| {
            let (line, column) = line_col(src, offset);
            CraftError::Recipe { file: file.to_path_buf(), line, column, message }
        };
        let raw: RecipeFile = toml::from_str(src).map_err(|e| err(e.span().map_or(0, |s| s.start), e.message().to_string()))?;

        // Every template must compile; a syntax error points at its line in the file.
        let mut env = minijinja::Environment::new();
        let templates = [("system", raw.prompt.system.as_ref()), ("chat", raw.prompt.chat.as_ref()), ("text", Some(&raw.prompt.text))];
        for (what, t) in templates {
            let Some(t) = t else { continue };
            if let Err(e) = env.add_template_owned(what.to_string(), t.get_ref().clone()) {
                // A multi-line string that starts with a line break begins on the next line.
                let start = t.span().start;
                let skip = usize::from(src[start..].starts_with("\"\"\"\n") || src[start..].starts_with("'''\n"));
                let (line, column) = line_col(src, start);
                let line = line + skip + e.line().unwrap_or(1) - 1;
                return Err(CraftError::Recipe { file: file.to_path_buf(), line, column, message: format!("template `prompt.{what}`: {}", e.detail().unwrap_or("syntax error")) });
            }
        }
        for (key, o) in &raw.options {
            if let Some(d) = &o.default
                && !o.free
                && !o.values.contains_key(d)
            {
                return Err(err(src.find(&format!("[options.{key}]")).unwrap_or(0), format!("option `{key}`: default `{d}` is not one of its values")));
            }
            if o.values.is_empty() && !o.free {
                return Err(err(src.find(&format!("[options.{key}]")).unwrap_or(0), format!("option `{key}` needs `values` or `free = true`")));
            }
        }
        match (raw.output.kind, &raw.output.schema) {
            (OutputKind::Json, None) => return Err(err(src.find("[output").unwrap_or(0), "kind = \"json\" needs an [output.schema]".into())),
            (OutputKind::Json, Some(schema)) => {
                let schema = serde_json::to_value(schema).map_err(|e| err(0, e.to_string()))?;
                inkling_engine::constraint::JsonGrammar::compile(&schema).map_err(|e| err(src.find("[output.schema").unwrap_or(0), e.to_string()))?;
            }
            _ => {}
        }
        if let Some(Items::Template(t)) = &raw.output.items
            && let Err(e) = env.add_template_owned("items".to_string(), t.clone())
        {
            return Err(err(src.find("items").unwrap_or(0), format!("template `output.items`: {}", e.detail().unwrap_or("syntax error"))));
        }
        Ok(Recipe {
            name: name.to_string(),
            description: raw.description,
            input: raw.input.unwrap_or_else(|| "text".into()),
            needs_text: raw.needs_text,
            continues: raw.continues,
            options: raw.options,
            sampling: raw.sampling,
            prompt: PromptSpec {
                system: raw.prompt.system.map(|s| s.into_inner()).unwrap_or_default(),
                chat: raw.prompt.chat.map(|s| s.into_inner()),
                text: raw.prompt.text.into_inner(),
                prefill: raw.prompt.prefill,
            },
            output: raw.output,
            source: file.display().to_string(),
            toml: src.to_string(),
        })
    }

    /// How many items a list tool asks for, given the template variables (`None`: no set
    /// length). `asked` is the writer's own count.
    pub fn items(&self, vars: &BTreeMap<String, String>, asked: Option<usize>) -> Result<Option<usize>> {
        if self.output.kind != OutputKind::List {
            return Ok(None);
        }
        let set = match &self.output.items {
            None => return Ok(asked),
            Some(Items::Fixed(n)) => *n,
            Some(Items::Template(t)) => {
                let rendered = minijinja::Environment::new().render_str(t, vars).map_err(|e| CraftError::Recipe {
                    file: self.source.clone().into(),
                    line: 0,
                    column: 0,
                    message: format!("template `output.items`: {e}"),
                })?;
                match rendered.trim() {
                    "" => return Ok(None),
                    n => n.parse().map_err(|_| CraftError::Recipe { file: self.source.clone().into(), line: 0, column: 0, message: format!("`output.items` gave {n:?}, not a number") })?,
                }
            }
        };
        Ok(Some(asked.unwrap_or(set)))
    }

    /// The JSON schema of a `json` tool.
    pub fn schema(&self) -> Option<serde_json::Value> {
        self.output.schema.as_ref().and_then(|s| serde_json::to_value(s).ok())
    }

    /// Resolves the writer's option values (by name) to the phrases the prompt uses, filling
    /// defaults; unknown options and values are errors that list what exists.
    pub fn resolve_options(&self, given: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
        for key in given.keys() {
            if !self.options.contains_key(key) {
                return Err(CraftError::UnknownOption {
                    tool: self.name.clone(),
                    option: key.clone(),
                    known: if self.options.is_empty() { "none".into() } else { self.options.keys().cloned().collect::<Vec<_>>().join(", ") },
                });
            }
        }
        let mut out = BTreeMap::new();
        for (key, spec) in &self.options {
            let value = given.get(key).or(spec.default.as_ref());
            let phrase = match value {
                None => String::new(),
                Some(v) => match spec.values.get(v.as_str()) {
                    Some(phrase) => phrase.clone(),
                    None if spec.free && !v.trim().is_empty() => v.trim().to_string(),
                    None => {
                        return Err(CraftError::UnknownValue { tool: self.name.clone(), option: key.clone(), value: v.clone(), allowed: spec.values.keys().cloned().collect::<Vec<_>>().join(", ") });
                    }
                },
            };
            out.insert(key.clone(), phrase);
        }
        Ok(out)
    }
}

/// Where a recipe file lives, for messages.
pub fn builtin_path(name: &str) -> PathBuf {
    PathBuf::from(format!("<builtin>/{name}.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"description = "Shorter."
input = "the passage"

[options.level]
help = "how hard"
default = "firm"
values = { light = "a light trim", firm = "a firm cut" }

[prompt]
chat = "Tighten ({{ level }}):\n{{ text }}"
text = "Original: {{ text }}\nTightened:"
"#;

    fn parse(src: &str) -> Result<Recipe> {
        Recipe::parse("t", src, Path::new("/cfg/recipes/t.toml"))
    }

    #[test]
    fn a_good_recipe_parses_and_resolves_options() {
        let r = parse(GOOD).unwrap();
        assert_eq!(r.input, "the passage");
        let o = r.resolve_options(&BTreeMap::new()).unwrap();
        assert_eq!(o["level"], "a firm cut");
        let o = r.resolve_options(&[("level".to_string(), "light".to_string())].into()).unwrap();
        assert_eq!(o["level"], "a light trim");
        let e = r.resolve_options(&[("level".to_string(), "brutal".to_string())].into()).unwrap_err().to_string();
        assert!(e.contains("brutal") && e.contains("firm, light"), "{e}");
        let e = r.resolve_options(&[("tone".to_string(), "x".to_string())].into()).unwrap_err().to_string();
        assert!(e.contains("no option `tone`") && e.contains("level"), "{e}");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let bad_toml = GOOD.replace("default = \"firm\"", "default = firm");
        let e = parse(&bad_toml).unwrap_err().to_string();
        assert!(e.starts_with("/cfg/recipes/t.toml:6:"), "{e}");

        let unknown_key = GOOD.replace("[prompt]", "[prompt]\ntemprature = 3");
        let e = parse(&unknown_key).unwrap_err().to_string();
        assert!(e.starts_with("/cfg/recipes/t.toml:10:") && e.contains("temprature"), "{e}");

        let bad_template = GOOD.replace("text = \"Original: {{ text }}\\nTightened:\"", "text = \"\"\"\nfine line\nOriginal: {{ text }\nTightened:\"\"\"");
        let e = parse(&bad_template).unwrap_err().to_string();
        assert!(e.contains("t.toml:13:") && e.contains("prompt.text"), "{e}");

        let bad_default = GOOD.replace("default = \"firm\"", "default = \"soft\"");
        let e = parse(&bad_default).unwrap_err().to_string();
        assert!(e.contains("t.toml:4:") && e.contains("soft"), "{e}");

        let bad_schema = format!("{GOOD}\n[output]\nkind = \"json\"\n[output.schema]\ntype = \"number\"\n");
        let e = parse(&bad_schema).unwrap_err().to_string();
        assert!(e.contains("number"), "{e}");
    }
}
