//! Conversions between the engine's types and the OpenAI-compatible wire types
//! ([`inkling_api`], serde structs with no IO), written once for both sides: `inkling serve`
//! reads requests and writes answers with them, and the remote backend writes requests and
//! reads answers.

use crate::chat::ChatMessage;
use crate::engine::FinishReason;
use crate::sampling::SamplingConfig;
use inkling_api as api;

/// What a remote server is asked for: every setting the engine would use, the ones at their
/// "off" value left out (servers that do not know `top_k` or `min_p` ignore them). The seed
/// is the caller's to set per request.
impl From<&SamplingConfig> for api::Sampling {
    fn from(s: &SamplingConfig) -> Self {
        api::Sampling {
            temperature: Some(s.temperature),
            top_p: Some(s.top_p),
            top_k: (s.top_k > 0).then_some(s.top_k as i64),
            min_p: (s.min_p > 0.0).then_some(s.min_p),
            repetition_penalty: (s.repeat_penalty != 1.0).then_some(s.repeat_penalty),
            presence_penalty: (s.presence_penalty != 0.0).then_some(s.presence_penalty),
            frequency_penalty: (s.frequency_penalty != 0.0).then_some(s.frequency_penalty),
            seed: None,
        }
    }
}

/// What a client asked for, with OpenAI's semantics: temperature 1 and no other sampler
/// unless named; a value out of range is the message that says so.
impl TryFrom<&api::Sampling> for SamplingConfig {
    type Error = String;

    fn try_from(s: &api::Sampling) -> Result<Self, String> {
        let mut c = SamplingConfig { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, ..SamplingConfig::greedy() };
        if let Some(t) = s.temperature {
            c.temperature = t;
        }
        if let Some(v) = s.top_p {
            c.top_p = v;
        }
        if let Some(k) = s.top_k {
            // vLLM uses -1 for "off".
            c.top_k = usize::try_from(k).unwrap_or(0);
        }
        if let Some(v) = s.min_p {
            c.min_p = v;
        }
        if let Some(v) = s.repetition_penalty {
            c.repeat_penalty = v;
        }
        if let Some(v) = s.presence_penalty {
            c.presence_penalty = v;
        }
        if let Some(v) = s.frequency_penalty {
            c.frequency_penalty = v;
        }
        c.validate()?;
        Ok(c)
    }
}

/// The `finish_reason` a client reads.
impl From<FinishReason> for &'static str {
    fn from(r: FinishReason) -> Self {
        match r {
            FinishReason::Length => "length",
            FinishReason::Stop | FinishReason::Cancelled => "stop",
            // OpenAI's name for output withheld by a filter: here the writer's banned phrases.
            FinishReason::Banned => "content_filter",
        }
    }
}

/// A server's `finish_reason`: anything but a length or a filter is a stop.
impl From<&str> for FinishReason {
    fn from(r: &str) -> Self {
        match r {
            "length" => FinishReason::Length,
            "content_filter" => FinishReason::Banned,
            _ => FinishReason::Stop,
        }
    }
}

impl From<&ChatMessage> for api::Message {
    fn from(m: &ChatMessage) -> Self {
        api::Message { role: m.role.clone(), content: m.content.clone() }
    }
}

/// A client's message; OpenAI's `developer` role is a system message here.
impl TryFrom<&api::Message> for ChatMessage {
    type Error = String;

    fn try_from(m: &api::Message) -> Result<Self, String> {
        let role = match m.role.as_str() {
            "developer" => "system",
            r @ ("system" | "user" | "assistant") => r,
            other => return Err(format!("unknown message role `{other}`; use system, user or assistant")),
        };
        Ok(ChatMessage::new(role, &m.content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_crosses_the_wire_and_back_with_each_sides_defaults() {
        let engine = SamplingConfig { temperature: 0.7, top_k: 40, top_p: 0.9, min_p: 0.05, repeat_penalty: 1.1, ..SamplingConfig::default() };
        let sent = api::Sampling::from(&engine);
        assert_eq!((sent.temperature, sent.top_k, sent.min_p, sent.repetition_penalty, sent.presence_penalty), (Some(0.7), Some(40), Some(0.05), Some(1.1), None));
        let back = SamplingConfig::try_from(&sent).unwrap();
        assert_eq!((back.temperature, back.top_k, back.top_p, back.min_p, back.repeat_penalty), (0.7, 40, 0.9, 0.05, 1.1));
        let openai = SamplingConfig::try_from(&api::Sampling::default()).unwrap();
        assert_eq!((openai.temperature, openai.top_k, openai.top_p, openai.min_p), (1.0, 0, 1.0, 0.0), "a client that names nothing gets OpenAI's defaults");
        assert_eq!(SamplingConfig::try_from(&api::Sampling { top_k: Some(-1), ..api::Sampling::default() }).unwrap().top_k, 0, "vLLM's -1 is off");
        let e = SamplingConfig::try_from(&api::Sampling { top_p: Some(1.5), ..api::Sampling::default() }).unwrap_err();
        assert!(e.contains("top_p"), "{e}");
    }

    #[test]
    fn finish_reasons_and_messages_keep_their_meaning_both_ways() {
        for r in [FinishReason::Stop, FinishReason::Length, FinishReason::Banned] {
            assert_eq!(FinishReason::from(<&str>::from(r)), r);
        }
        assert_eq!(<&str>::from(FinishReason::Cancelled), "stop");
        assert_eq!(FinishReason::from("tool_calls"), FinishReason::Stop);
        let m = ChatMessage::try_from(&api::Message { role: "developer".into(), content: "Be brief.".into() }).unwrap();
        assert_eq!((m.role.as_str(), api::Message::from(&m).content.as_str()), ("system", "Be brief."));
        assert!(ChatMessage::try_from(&api::Message { role: "tool".into(), content: String::new() }).unwrap_err().contains("`tool`"));
    }
}
