//! `Backend`: what the writing tools need from a language model, wherever it runs.
//! The local [`Engine`] implements it; a remote OpenAI-compatible client is the other
//! implementation (a later issue). Tools take `&dyn Backend` and never care which.

use crate::engine::{Engine, Event, GenerateRequest, Generation, ModelInfo, Prompt};
use crate::error::Result;

pub trait Backend: Send + Sync {
    fn info(&self) -> &ModelInfo;
    /// Context window in tokens.
    fn context_length(&self) -> usize;
    /// Tokens `text` takes up (for context budgets).
    fn count_tokens(&self, text: &str) -> Result<usize>;
    /// Exactly what the model will read for this prompt and reply start (`--show-prompt`).
    fn render_prompt(&self, prompt: &Prompt, prefill: &str) -> Result<String>;
    /// Tokens the whole prompt takes, template and special tokens included.
    fn count_prompt_tokens(&self, prompt: &Prompt, prefill: &str) -> Result<usize>;
    /// Generates candidates, streaming events; `on_event` returning false cancels.
    fn generate(&self, request: &GenerateRequest, on_event: &mut dyn FnMut(Event<'_>) -> bool) -> Result<Generation>;
    /// How many requests `generate_batch` decodes together (1: one at a time).
    fn max_batch(&self) -> usize {
        1
    }
    /// Several requests at once; `on_event` gets each event's request index. One result per
    /// request. The default runs them one after another.
    fn generate_batch(&self, requests: &[GenerateRequest], on_event: &mut dyn FnMut(usize, Event<'_>) -> bool) -> Vec<Result<Generation>> {
        requests.iter().enumerate().map(|(i, r)| self.generate(r, &mut |e| on_event(i, e))).collect()
    }
    /// The bytes of a token id (for log-probability reports); empty where the backend cannot
    /// tell (a remote server reports no token ids).
    fn token_bytes(&self, _token: u32) -> Vec<u8> {
        Vec::new()
    }
}

impl Backend for Engine {
    fn info(&self) -> &ModelInfo {
        Engine::info(self)
    }

    fn context_length(&self) -> usize {
        Engine::context_length(self)
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenizer().encode(text, false).len())
    }

    fn render_prompt(&self, prompt: &Prompt, prefill: &str) -> Result<String> {
        Engine::render_prompt(self, prompt, prefill)
    }

    fn count_prompt_tokens(&self, prompt: &Prompt, prefill: &str) -> Result<usize> {
        Ok(self.prompt_tokens_with_prefill(prompt, prefill)?.len())
    }

    fn generate(&self, request: &GenerateRequest, on_event: &mut dyn FnMut(Event<'_>) -> bool) -> Result<Generation> {
        Engine::generate(self, request, on_event)
    }

    fn token_bytes(&self, token: u32) -> Vec<u8> {
        self.tokenizer().token_bytes(token)
    }

    /// Decoding several sequences costs little more than one (the weights are read once per
    /// step), so the engine takes up to this many requests together.
    fn max_batch(&self) -> usize {
        8
    }

    fn generate_batch(&self, requests: &[GenerateRequest], on_event: &mut dyn FnMut(usize, Event<'_>) -> bool) -> Vec<Result<Generation>> {
        Engine::generate_batch(self, requests, on_event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::testing::TinyModel;

    #[test]
    fn the_local_engine_is_a_backend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        TinyModel::default().write(&path).unwrap();
        let engine = Engine::load(&path, &EngineConfig::default()).unwrap();
        let backend: &dyn Backend = &engine;
        assert_eq!(backend.count_tokens(" the the").unwrap(), 2);
        assert_eq!(backend.context_length(), 256);
        let req = GenerateRequest { max_tokens: 3, ignore_eos: true, ..GenerateRequest::new(Prompt::Text("the".into())) };
        let mut seen = 0;
        let g = backend
            .generate(&req, &mut |_| {
                seen += 1;
                true
            })
            .unwrap();
        assert_eq!(g.candidates[0].completion_tokens, 3);
        assert!(seen >= 1);
    }
}
