//! The OpenAI-compatible wire protocol as serde types: what inkling's remote backend sends to
//! vLLM, llama.cpp's server, Ollama or a hosted API, and (later) what `inkling serve` accepts.
//! No IO here.
//!
//! Fields beyond OpenAI's (`top_k`, `min_p`, `repetition_penalty`, `min_tokens`,
//! `continue_final_message`) are the names vLLM and llama.cpp's server read, and
//! `banned_strings` is TabbyAPI's; servers that do not know them ignore them.
//!
//! [`BanList`] is inkling's own: the writer's banned phrases as the config file, a project
//! and the writing API carry them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Sampling {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// What both completion endpoints share: how much to generate, how many, when to stop, how
/// to sample, and in what shape.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct GenerationParams {
    /// `max_completion_tokens` is the newer name OpenAI's chat endpoint uses.
    #[serde(skip_serializing_if = "Option::is_none", alias = "max_completion_tokens")]
    pub max_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub stop: Vec<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(flatten)]
    pub sampling: Sampling,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Completions: how many alternatives per token (a number). Chat: whether to report
    /// log-probabilities at all (a bool), with `top_logprobs` alternatives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<usize>,
    /// Streams only: chunks with no choices and a `prompt_progress` go out while the prompt
    /// is read (llama.cpp server's field of the same name).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub return_progress: bool,
    /// inkling: guess tokens ahead and check them in one pass, `auto` (inkling's default),
    /// `lookup` or `off`. The text is the same either way; other servers ignore it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speculative: Option<String>,
    /// Phrases that never appear in the output (TabbyAPI's name; case-insensitive). inkling
    /// takes back the tokens of a match and samples again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banned_strings: Vec<String>,
    /// Regular expressions banned the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banned_regex: Vec<String>,
}

/// The writer's banned phrases at one level: the config file, a project, one request.
/// Levels stack ([`BanList::over`]): phrases, patterns and allowances add up, and the
/// nearest level that says whether the built-in list applies decides it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BanList {
    /// Whether inkling's built-in list of overused phrases applies; unset leaves it to the
    /// level below (on, at the bottom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<bool>,
    /// Phrases to ban, beyond the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phrases: Vec<String>,
    /// Regular expressions to ban.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regex: Vec<String>,
    /// Built-in phrases allowed after all (a heroine really named Elara).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

impl BanList {
    /// This level stacked on `below`.
    pub fn over(&self, below: &BanList) -> BanList {
        let join = |a: &[String], b: &[String]| {
            let mut out: Vec<String> = b.to_vec();
            for x in a {
                if !out.contains(x) {
                    out.push(x.clone());
                }
            }
            out
        };
        BanList { defaults: self.defaults.or(below.defaults), phrases: join(&self.phrases, &below.phrases), regex: join(&self.regex, &below.regex), allow: join(&self.allow, &below.allow) }
    }

    pub fn is_empty(&self) -> bool {
        *self == BanList::default()
    }
}

/// `{"include_usage": true}` adds a last chunk with the token counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/completions`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CompletionRequest {
    /// Required by OpenAI; servers that serve one model (inkling, llama.cpp) take it as given.
    #[serde(default)]
    pub model: String,
    pub prompt: String,
    #[serde(flatten)]
    pub params: GenerationParams,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// `POST /v1/chat/completions`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(flatten)]
    pub params: GenerationParams,
    /// vLLM: continue the last (assistant) message instead of starting a new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_final_message: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_generation_prompt: Option<bool>,
}

/// `{"type": "json_schema", "json_schema": {"name": ..., "schema": ...}}`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaFormat>,
    /// llama-cpp-python's form: `{"type": "json_object", "schema": ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JsonSchemaFormat {
    pub name: String,
    pub schema: serde_json::Value,
    #[serde(default)]
    pub strict: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: usize,
    #[serde(default)]
    pub completion_tokens: usize,
    #[serde(default)]
    pub total_tokens: usize,
}

/// A choice of a completion or chat completion, streamed or whole: `text` for completions,
/// `message` (whole) or `delta` (streamed) for chat.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    #[serde(default)]
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Delta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Completions: `{tokens, token_logprobs, top_logprobs, text_offset}`; chat: `{content: [...]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<serde_json::Value>,
}

impl Choice {
    /// The text this choice carries, whichever field it came in.
    pub fn content(&self) -> &str {
        self.text.as_deref().or_else(|| self.delta.as_ref().and_then(|d| d.content.as_deref())).or_else(|| self.message.as_ref().and_then(|d| d.content.as_deref())).unwrap_or("")
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// A whole response or one streamed chunk.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CompletionResponse {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// How far the prompt has been read (streams that asked with `return_progress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_progress: Option<PromptProgress>,
}

/// llama.cpp server's `prompt_progress`: of the `total` prompt tokens, `cache` came from the
/// reused prefix and `processed` have been read so far (the cached ones included), `time_ms`
/// after the request arrived (time waiting in line included).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PromptProgress {
    pub total: usize,
    pub cache: usize,
    pub processed: usize,
    pub time_ms: f64,
}

/// `GET /v1/models`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ModelList {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub data: Vec<ModelCard>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub owned_by: Option<String>,
    /// vLLM reports the served context length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<usize>,
}

/// `{"error": {"message", "type", "code"}}`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_serialize_with_extra_sampler_fields_flat() {
        let params = GenerationParams { n: Some(3), stream: true, sampling: Sampling { top_k: Some(40), min_p: Some(0.05), seed: Some(1), ..Sampling::default() }, ..GenerationParams::default() };
        let r = CompletionRequest { model: "m".into(), prompt: "p".into(), params };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["top_k"], 40);
        assert_eq!(v["seed"], 1);
        assert!(v.get("temperature").is_none() && v.get("stop").is_none());
    }

    #[test]
    fn chunks_from_both_endpoints_read_back() {
        let chat: CompletionResponse =
            serde_json::from_str(r#"{"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":1,"delta":{"content":"Hi"},"finish_reason":null}]}"#).unwrap();
        assert_eq!(chat.choices[0].content(), "Hi");
        assert_eq!(chat.choices[0].index, 1);
        let text: CompletionResponse = serde_json::from_str(r#"{"choices":[{"index":0,"text":" there","finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(text.choices[0].content(), " there");
        assert_eq!(text.choices[0].finish_reason.as_deref(), Some("stop"));
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn flattened_sampling_fields_are_read() {
        let r: CompletionRequest = serde_json::from_value(serde_json::json!({"prompt": "p", "temperature": 1.5, "top_k": 3, "max_completion_tokens": 9, "n": 2})).unwrap();
        assert_eq!(r.params.sampling.temperature, Some(1.5));
        assert_eq!(r.params.sampling.top_k, Some(3));
        assert_eq!(r.params.max_tokens, Some(9));
        assert_eq!(r.params.n, Some(2));
    }
}
