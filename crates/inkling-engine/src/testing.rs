//! Tiny random-weight GGUF models, written on the fly, so tests of loading, tokenizing,
//! sampling and streaming run in milliseconds without a real model. Public because the
//! binary's and other crates' tests use them too.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

/// The models folder real-model tests read, where `inkling model pull` (run by `.ci/run`)
/// puts models: `$INKLING_HOME/models`, else `$XDG_CACHE_HOME/inkling/models`, else
/// `~/.cache/inkling/models`. The binary's own settings are the one place a user's
/// environment is read; this is its twin for tests, and a test fails if the two part.
pub fn models_dir() -> std::path::PathBuf {
    let set = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let home = set("INKLING_HOME").or_else(|| set("XDG_CACHE_HOME").map(|x| x.join("inkling"))).or_else(|| set("HOME").map(|h| h.join(".cache").join("inkling")));
    home.unwrap_or_else(|| ".".into()).join("models")
}

/// Which tokenizer the tiny model carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TinyVocab {
    /// Byte-level BPE with a few merges (like SmolLM2 / Qwen).
    Bpe,
    /// SentencePiece-style pieces with byte fallback (like Gemma).
    Spm,
}

#[derive(Clone, Debug)]
pub struct TinyModel {
    /// GGUF architecture name: llama, qwen2, qwen3 or gemma3.
    pub arch: &'static str,
    pub vocab: TinyVocab,
    /// Type of the large matrices.
    pub dtype: GgmlDType,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    pub context: usize,
    pub seed: u64,
    pub chat_template: Option<&'static str>,
}

impl Default for TinyModel {
    fn default() -> Self {
        Self {
            arch: "llama",
            vocab: TinyVocab::Bpe,
            dtype: GgmlDType::Q8_0,
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 128,
            context: 256,
            seed: 7,
            chat_template: Some("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
        }
    }
}

const BPE_MERGES: &[&str] = &["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "Ġ s", "o n", "Ġ w", "r e", "Ġt h", "a n", "Ġa n", "Ġan d"];
const SPM_PIECES: &[(&str, f32)] = &[
    ("▁", -1.0),
    ("▁the", -2.0),
    ("th", -3.0),
    ("he", -3.5),
    ("▁t", -4.0),
    ("in", -4.5),
    ("▁a", -5.0),
    ("an", -5.5),
    ("▁an", -5.8),
    ("▁and", -6.0),
    ("e", -7.0),
    ("t", -7.1),
    ("h", -7.2),
    ("a", -7.3),
    ("n", -7.4),
    ("d", -7.5),
    ("i", -7.6),
    ("\n", -8.0),
];

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

/// Tokens, their llama.cpp types, and (for SPM) scores.
fn vocabulary(kind: TinyVocab) -> (Vec<String>, Vec<i32>, Vec<f32>, Vec<String>) {
    match kind {
        TinyVocab::Bpe => {
            let mut tokens: Vec<String> = Vec::new();
            // GPT-2's printable alphabet, one token per byte.
            for b in 0..=255u8 {
                tokens.push(crate::tokenizer::byte_level_char(b).to_string());
            }
            for m in BPE_MERGES {
                let t = m.replace(' ', "");
                if !tokens.contains(&t) {
                    tokens.push(t);
                }
            }
            let mut types = vec![1; tokens.len()];
            for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
                tokens.push(s.into());
                types.push(3);
            }
            let merges = BPE_MERGES.iter().map(|s| s.to_string()).collect();
            let n = tokens.len();
            (tokens, types, vec![0.0; n], merges)
        }
        TinyVocab::Spm => {
            let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
            let mut types = vec![2, 3, 3];
            let mut scores = vec![0.0, 0.0, 0.0];
            for b in 0..=255u8 {
                tokens.push(format!("<0x{b:02X}>"));
                types.push(6);
                scores.push(0.0);
            }
            for (p, s) in SPM_PIECES {
                tokens.push(p.to_string());
                types.push(1);
                scores.push(*s);
            }
            for s in ["<start_of_turn>", "<end_of_turn>"] {
                tokens.push(s.into());
                types.push(3);
                scores.push(0.0);
            }
            (tokens, types, scores, Vec::new())
        }
    }
}

impl TinyModel {
    /// Writes the model to `path` as a GGUF file.
    pub fn write(&self, path: &Path) -> candle_core::Result<()> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let (tokens, types, scores, merges) = vocabulary(self.vocab);
        let vocab = tokens.len();
        let hd = self.n_embd / self.n_head;
        let dev = Device::Cpu;
        let mut tensors: Vec<(String, QTensor)> = Vec::new();
        let mut mat = |name: String, rows: usize, cols: usize, dtype: GgmlDType, scale: f32| -> candle_core::Result<(String, QTensor)> {
            let data: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-1.0f32..1.0) * scale).collect();
            let t = Tensor::from_vec(data, (rows, cols), &dev)?;
            Ok((name, QTensor::quantize(&t, dtype)?))
        };
        let norm = |name: String, n: usize| -> candle_core::Result<(String, QTensor)> {
            let t = Tensor::from_vec(vec![1.0f32; n], n, &Device::Cpu)?;
            Ok((name, QTensor::quantize(&t, GgmlDType::F32)?))
        };
        let w = 1.0 / (self.n_embd as f32).sqrt();
        tensors.push(mat("token_embd.weight".into(), vocab, self.n_embd, GgmlDType::F32, 1.0)?);
        tensors.push(norm("output_norm.weight".into(), self.n_embd)?);
        for l in 0..self.n_layer {
            let t = |n: &str| format!("blk.{l}.{n}");
            tensors.push(norm(t("attn_norm.weight"), self.n_embd)?);
            tensors.push(mat(t("attn_q.weight"), self.n_head * hd, self.n_embd, self.dtype, w)?);
            tensors.push(mat(t("attn_k.weight"), self.n_head_kv * hd, self.n_embd, self.dtype, w)?);
            tensors.push(mat(t("attn_v.weight"), self.n_head_kv * hd, self.n_embd, self.dtype, w)?);
            tensors.push(mat(t("attn_output.weight"), self.n_embd, self.n_head * hd, self.dtype, w)?);
            tensors.push(norm(t("ffn_norm.weight"), self.n_embd)?);
            tensors.push(mat(t("ffn_gate.weight"), self.n_ff, self.n_embd, self.dtype, w)?);
            tensors.push(mat(t("ffn_up.weight"), self.n_ff, self.n_embd, self.dtype, w)?);
            tensors.push(mat(t("ffn_down.weight"), self.n_embd, self.n_ff, self.dtype, 1.0 / (self.n_ff as f32).sqrt())?);
            if self.arch == "qwen2" {
                for (n, len) in [("attn_q.bias", self.n_head * hd), ("attn_k.bias", self.n_head_kv * hd), ("attn_v.bias", self.n_head_kv * hd)] {
                    tensors.push(mat(t(n), 1, len, GgmlDType::F32, 0.1)?);
                }
            }
            if matches!(self.arch, "qwen3" | "gemma3") {
                tensors.push(norm(t("attn_q_norm.weight"), hd)?);
                tensors.push(norm(t("attn_k_norm.weight"), hd)?);
            }
            if self.arch == "gemma3" {
                tensors.push(norm(t("post_attention_norm.weight"), self.n_embd)?);
                tensors.push(norm(t("post_ffw_norm.weight"), self.n_embd)?);
            }
        }
        // 1-D tensors are written as vectors.
        let tensors: Vec<(String, QTensor)> = tensors
            .into_iter()
            .map(|(n, q)| {
                if q.shape().dims()[0] == 1 && n.ends_with("bias") {
                    let v = q.dequantize(&Device::Cpu)?.flatten_all()?;
                    Ok((n, QTensor::quantize(&v, GgmlDType::F32)?))
                } else {
                    Ok((n, q))
                }
            })
            .collect::<candle_core::Result<_>>()?;
        let a = self.arch;
        let mut meta: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String(a.into())),
            ("general.name".into(), Value::String(format!("tiny-{a}"))),
            ("general.license".into(), Value::String("apache-2.0".into())),
            (format!("{a}.block_count"), Value::U32(self.n_layer as u32)),
            (format!("{a}.embedding_length"), Value::U32(self.n_embd as u32)),
            (format!("{a}.attention.head_count"), Value::U32(self.n_head as u32)),
            (format!("{a}.attention.head_count_kv"), Value::U32(self.n_head_kv as u32)),
            (format!("{a}.feed_forward_length"), Value::U32(self.n_ff as u32)),
            (format!("{a}.context_length"), Value::U32(self.context as u32)),
            (format!("{a}.attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
            (format!("{a}.rope.freq_base"), Value::F32(10000.0)),
            ("tokenizer.ggml.tokens".into(), strings(&tokens)),
            ("tokenizer.ggml.token_type".into(), Value::Array(types.iter().map(|t| Value::I32(*t)).collect())),
        ];
        if a == "gemma3" {
            meta.push((format!("{a}.attention.sliding_window"), Value::U32(8)));
        }
        match self.vocab {
            TinyVocab::Bpe => {
                let eos = tokens.iter().position(|t| t == "<|endoftext|>").unwrap_or(0) as u32;
                meta.push(("tokenizer.ggml.model".into(), Value::String("gpt2".into())));
                meta.push(("tokenizer.ggml.pre".into(), Value::String("smollm".into())));
                meta.push(("tokenizer.ggml.merges".into(), strings(&merges)));
                meta.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(eos)));
                meta.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(eos)));
                meta.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)));
            }
            TinyVocab::Spm => {
                meta.push(("tokenizer.ggml.model".into(), Value::String("llama".into())));
                meta.push(("tokenizer.ggml.scores".into(), Value::Array(scores.iter().map(|s| Value::F32(*s)).collect())));
                meta.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(1)));
                meta.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(2)));
                meta.push(("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)));
                meta.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)));
                meta.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)));
            }
        }
        if let Some(t) = self.chat_template {
            meta.push(("tokenizer.chat_template".into(), Value::String(t.into())));
        }
        let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut f = std::fs::File::create(path)?;
        gguf_file::write(&mut f, &meta_refs, &tensor_refs)
    }
}

/// Writes a GGUF holding the given named matrices (kernel tests).
pub fn write_matrices(path: &Path, mats: &[(&str, &QTensor)]) -> candle_core::Result<()> {
    let arch = Value::String("test".into());
    let mut f = std::fs::File::create(path)?;
    gguf_file::write(&mut f, &[("general.architecture", &arch)], mats)
}

/// A backend whose answers are written by the test: the tiny model's tokenizer and chat
/// template for the prompt side, then one list of candidate texts per `generate` call, in
/// order (an exhausted script answers empty text). Every request is kept, so a test of what
/// reads answers back (cleaning, carrying a list on) knows exactly what the "model" said and
/// what it was asked.
pub struct ScriptedBackend {
    engine: crate::Engine,
    _dir: tempfile_dir::Dir,
    answers: std::sync::Mutex<std::collections::VecDeque<Vec<String>>>,
    requests: std::sync::Mutex<Vec<crate::GenerateRequest>>,
    /// Tokens each answer is reported to have taken.
    pub tokens_each: usize,
}

/// A folder removed on drop, for the tiny model file (no dev-dependency in a library).
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl ScriptedBackend {
    pub fn new(answers: &[&[&str]]) -> crate::Result<Self> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("inkling-scripted-{}-{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).map_err(|error| crate::EngineError::Io { path: dir.clone(), error })?;
        let path = dir.join("tiny.gguf");
        TinyModel { context: 4096, ..TinyModel::default() }.write(&path).map_err(|e| crate::EngineError::BadGguf { path: path.clone(), reason: e.to_string() })?;
        let engine = crate::Engine::load(&path, &crate::EngineConfig { threads: Some(1), ..Default::default() })?;
        let answers = answers.iter().map(|call| call.iter().map(|t| t.to_string()).collect()).collect();
        Ok(Self { engine, _dir: tempfile_dir::Dir(dir), answers: std::sync::Mutex::new(answers), requests: std::sync::Mutex::new(Vec::new()), tokens_each: 10 })
    }

    /// The requests seen so far, in order.
    pub fn requests(&self) -> Vec<crate::GenerateRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl crate::Backend for ScriptedBackend {
    fn info(&self) -> &crate::ModelInfo {
        self.engine.info()
    }
    fn context_length(&self) -> usize {
        self.engine.context_length()
    }
    fn count_tokens(&self, text: &str) -> crate::Result<usize> {
        self.engine.count_tokens(text)
    }
    fn render_prompt(&self, prompt: &crate::Prompt, prefill: &str) -> crate::Result<String> {
        self.engine.render_prompt(prompt, prefill)
    }
    fn count_prompt_tokens(&self, prompt: &crate::Prompt, prefill: &str) -> crate::Result<usize> {
        self.engine.count_prompt_tokens(prompt, prefill)
    }
    fn generate(&self, request: &crate::GenerateRequest, on_event: &mut dyn FnMut(crate::Event<'_>) -> bool) -> crate::Result<crate::Generation> {
        use crate::{Candidate, Event, FinishReason};
        if let Ok(mut r) = self.requests.lock() {
            r.push(request.clone());
        }
        let texts = self.answers.lock().ok().and_then(|mut a| a.pop_front()).unwrap_or_else(|| vec![String::new(); request.n]);
        let mut candidates = Vec::new();
        for (index, text) in texts.into_iter().enumerate() {
            on_event(Event::Text { candidate: index, text: &text, logprobs: &[] });
            on_event(Event::Finished { candidate: index, reason: FinishReason::Stop });
            candidates.push(Candidate { index, text, finish_reason: FinishReason::Stop, completion_tokens: self.tokens_each, tokens: Vec::new(), logprobs: Vec::new() });
        }
        Ok(crate::Generation { candidates, prompt_tokens: 0, seed: 5, timings: crate::Timings::default() })
    }
}
