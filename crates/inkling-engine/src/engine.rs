//! `Engine`: a loaded model with its tokenizer and chat template, and generation on top:
//! one prefill shared by n candidates, batched decoding, stop strings, streaming events,
//! cancellation, and reuse of the KV cache for a prompt that starts like the last one.

use crate::bans::Bans;
use crate::chat::{ChatMessage, ChatTemplate};
use crate::constraint::{JsonGrammar, JsonMatcher, allowed_tokens};
use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::kv_cache::KvCache;
use crate::model::{Model, ModelConfig, SeqBatch};
use crate::sampling::{Sampler, SamplingConfig};
use crate::speculative::{DraftLength, Speculation, lookup};
use crate::stream::{BanHit, Step, TextStream};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// Worker threads for the forward pass (default: all cores).
    pub threads: Option<usize>,
    /// Context window in tokens (default: the smaller of the model's and 8192).
    pub context: Option<usize>,
    /// A LoRA adapter merged into the weights at load (`inkling finetune` writes them).
    pub adapter: Option<PathBuf>,
}

/// What a writer (or `inkling model list`) wants to know about a model file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    pub parameters: u64,
    pub quantization: String,
    pub context_length: usize,
    pub file: PathBuf,
    pub file_size: u64,
    pub license: Option<String>,
    /// The file carries its own chat template (an instruct or chat model).
    #[serde(default)]
    pub chat_template: bool,
}

impl ModelInfo {
    /// A model served at `base_url` under the name `model`.
    pub fn remote(base_url: &str, model: &str) -> Self {
        Self {
            name: model.to_string(),
            architecture: "remote".into(),
            parameters: 0,
            quantization: String::new(),
            context_length: 0,
            file: PathBuf::from(base_url),
            file_size: 0,
            license: None,
            // The server applies the model's template: chat prompts are always available.
            chat_template: true,
        }
    }

    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let cfg = ModelConfig::from_gguf(file)?;
        let parameters = file.tensors.values().map(|t| t.dims.iter().product::<usize>() as u64).sum();
        // The weight type holding the most bytes names the quantization.
        let mut by_type: std::collections::HashMap<String, usize> = Default::default();
        for t in file.tensors.values() {
            let n: usize = t.dims.iter().product::<usize>() / t.dtype.block_size() * t.dtype.type_size();
            *by_type.entry(format!("{:?}", t.dtype)).or_default() += n;
        }
        let quantization = by_type.into_iter().max_by_key(|(_, n)| *n).map(|(t, _)| t).unwrap_or_default();
        Ok(Self {
            name: file.get_str("general.name").unwrap_or("unnamed").to_string(),
            architecture: cfg.arch_name.clone(),
            parameters,
            quantization,
            context_length: cfg.context_length,
            file: file.path.clone(),
            file_size: file.file_size,
            license: file.get_str("general.license").map(String::from),
            chat_template: file.get_str("tokenizer.chat_template").is_some_and(|t| !t.trim().is_empty()),
        })
    }
}

/// What to generate from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Raw text the model continues (control-token text in it is treated as plain text).
    Text(String),
    /// Messages rendered through the model's chat template.
    Chat(Vec<ChatMessage>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    /// Number of candidates, each sampled independently from one shared prefill.
    pub n: usize,
    pub max_tokens: usize,
    pub sampling: SamplingConfig,
    /// Text that ends a candidate; never part of the output.
    pub stop: Vec<String>,
    /// Same seed, same request, same text. `None` picks one (reported back).
    pub seed: Option<u64>,
    /// Keep going past end-of-text tokens (benchmarks).
    pub ignore_eos: bool,
    /// The start of the model's reply, written by the caller (a list's "1.", a JSON brace);
    /// the model continues from it and it is not part of the output.
    #[serde(default)]
    pub prefill: String,
    /// End-of-text tokens are not sampled before this many tokens (vLLM's `min_tokens`).
    #[serde(default)]
    pub min_tokens: usize,
    /// Constrain output to JSON of this schema (see [`crate::constraint`]); the candidate ends
    /// when the document is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
    /// Report each sampled token's log-probability and this many most likely alternatives
    /// (OpenAI's `logprobs` / `top_logprobs`); `None` skips the work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<usize>,
    /// Guess tokens ahead and check them in one pass (see [`crate::speculative`]): faster
    /// where the answer repeats its input, and the same text either way.
    #[serde(default)]
    pub speculative: Speculation,
    /// Phrases that never appear in the output, found however the tokens split them: on a
    /// match the candidate takes back the token the phrase began in and samples again there
    /// (see [`crate::bans`]). Case-insensitive; TabbyAPI's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banned_strings: Vec<String>,
    /// Regular expressions banned the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banned_regex: Vec<String>,
}

impl GenerateRequest {
    /// What every backend checks before anything runs: the number of candidates and the
    /// sampler's settings.
    pub fn check(&self) -> Result<()> {
        if self.n == 0 || self.n > MAX_CANDIDATES {
            return Err(EngineError::InvalidRequest(format!("n must be between 1 and {MAX_CANDIDATES}, got {}", self.n)));
        }
        self.sampling.validate().map_err(EngineError::InvalidRequest)
    }

    /// The seed asked for, else one from the clock (reported back so the run can be repeated).
    pub fn seed_or_clock(&self) -> u64 {
        self.seed.unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64))
    }

    pub fn new(prompt: Prompt) -> Self {
        Self {
            prompt,
            n: 1,
            max_tokens: 256,
            sampling: SamplingConfig::default(),
            stop: Vec::new(),
            seed: None,
            ignore_eos: false,
            min_tokens: 0,
            prefill: String::new(),
            json_schema: None,
            logprobs: None,
            speculative: Speculation::Off,
            banned_strings: Vec::new(),
            banned_regex: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-text token or a stop string.
    Stop,
    /// `max_tokens` or the context window reached.
    Length,
    /// The caller asked to stop.
    Cancelled,
    /// Every way on led into a banned phrase (within [`MAX_REWINDS`] and what was already
    /// shown): the answer ends before the phrase.
    Banned,
}

/// Streaming events, in order; `candidate` indexes the request's candidates.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    /// The prompt is being read: `processed` of its `total` tokens are in the cache, of
    /// which `cached` came from the reused prefix (llama.cpp server's `prompt_progress`).
    /// Sent after each prefill chunk, so a writer waiting on a long chapter sees it move;
    /// returning `false` stops the prefill there, and what was computed stays in the prefix
    /// cache for the next request.
    Prefill {
        cached: usize,
        processed: usize,
        total: usize,
    },
    /// Text released for a candidate, with the reports of the tokens whose text it completes
    /// (empty unless the request asked for `logprobs`). A token split across two events is
    /// reported with the second; every token is reported once, in order.
    Text {
        candidate: usize,
        text: &'a str,
        logprobs: &'a [TokenLogprob],
    },
    Finished {
        candidate: usize,
        reason: FinishReason,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Candidate {
    pub index: usize,
    pub text: String,
    pub finish_reason: FinishReason,
    pub completion_tokens: usize,
    pub tokens: Vec<u32>,
    /// One entry per generated token when the request asked for `logprobs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<TokenLogprob>,
}

/// A sampled token's log-probability under the model (after masks that forbid tokens, before
/// temperature and truncation, as OpenAI and vLLM report it), with the likeliest alternatives.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// Most likely first.
    pub top: Vec<(u32, f32)>,
    /// The same after the samplers (penalties, truncation, temperature): the distribution
    /// the token was actually drawn from, where a token top-p cut has no chance at all.
    #[serde(default)]
    pub sampled_logprob: f32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sampled_top: Vec<(u32, f32)>,
}

/// Log-probability of `token` and the `k` likeliest tokens, from raw logits.
pub fn token_logprob(logits: &[f32], token: u32, k: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let lp = |t: u32| logits.get(t as usize).map_or(f32::NEG_INFINITY, |&l| l - log_z);
    let mut top: Vec<u32> = Vec::new();
    if k > 0 {
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        let k = k.min(idx.len());
        idx.select_nth_unstable_by(k - 1, |&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        idx.truncate(k);
        idx.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        top = idx;
    }
    TokenLogprob { token, logprob: lp(token), top: top.into_iter().map(|t| (t, lp(t))).collect(), sampled_logprob: 0.0, sampled_top: Vec::new() }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Prompt tokens actually computed (the rest came from the reused cache).
    pub prompt_tokens_computed: usize,
    pub prompt_tokens_reused: usize,
    pub prompt_ms: f64,
    pub time_to_first_token_ms: f64,
    pub decode_ms: f64,
    pub prompt_tokens_per_s: f64,
    /// Generated tokens per second over all candidates.
    pub decode_tokens_per_s: f64,
    /// Tokens guessed ahead by speculative decoding, over all candidates, and how many of
    /// them the model kept (each kept one saved a forward pass).
    #[serde(default)]
    pub draft_tokens: usize,
    #[serde(default)]
    pub draft_accepted: usize,
    /// Times a banned phrase made a candidate take tokens back, the tokens taken back in all,
    /// and the most at once.
    #[serde(default)]
    pub ban_rewinds: usize,
    #[serde(default)]
    pub ban_rewound_tokens: usize,
    #[serde(default)]
    pub ban_deepest_rewind: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Generation {
    pub candidates: Vec<Candidate>,
    pub prompt_tokens: usize,
    pub seed: u64,
    pub timings: Timings,
}

/// A request checked and prefilled, ready to decode.
struct Setup {
    prompt: Vec<u32>,
    max_tokens: usize,
    seed: u64,
    breakers: Vec<u32>,
    grammar: Option<JsonGrammar>,
    bans: Option<Bans>,
    cache: KvCache,
    reused: usize,
    /// Prompt tokens computed past the reused prefix (fewer than the rest when cancelled).
    computed: usize,
    /// The caller stopped the prefill (`Event::Prefill` answered `false`).
    cancelled: bool,
    logits: Vec<f32>,
    prompt_ms: f64,
}

/// The KV cache of the last generation, kept for the next prompt that shares its start.
struct PrefixCache {
    tokens: Vec<u32>,
    cache: KvCache,
}

pub struct Engine {
    model: Model,
    tokenizer: crate::Tokenizer,
    chat: ChatTemplate,
    pool: rayon::ThreadPool,
    context: usize,
    info: ModelInfo,
    /// DRY breaker tokens for the default breakers: a scan of the whole vocabulary, done on
    /// first use rather than at load.
    default_breakers: std::sync::OnceLock<Vec<u32>>,
    /// Every token's bytes, for constrained decoding (built on first use).
    vocab_bytes: std::sync::OnceLock<Vec<Vec<u8>>>,
    /// Tokens whose bytes can never follow complete text as UTF-8 (see `mask_broken_utf8`).
    breaks_text: std::sync::OnceLock<Vec<u32>>,
    prefix: Mutex<Option<PrefixCache>>,
    pub load_time_ms: f64,
}

/// Prompt tokens computed per forward call during prefill (bounds activation memory).
const PREFILL_CHUNK: usize = 256;
pub const MAX_CANDIDATES: usize = 16;
/// OpenAI's limit on `top_logprobs`.
pub const MAX_TOP_LOGPROBS: usize = 20;

/// The model file of a folder `inkling train` wrote.
pub const TRAINED_MODEL_FILE: &str = "model.gguf";

/// The GGUF file `path` names: itself, or a trained folder's `model.gguf`.
pub fn model_file(path: &Path) -> PathBuf {
    let trained = path.join(TRAINED_MODEL_FILE);
    if path.is_dir() && trained.is_file() { trained } else { path.to_path_buf() }
}

/// One candidate being decoded.
struct Stream<'a> {
    req: usize,
    candidate: usize,
    cache: KvCache,
    sampler: Sampler,
    prompt_len: usize,
    /// The prompt's tokens, then the answer's.
    history: Vec<u32>,
    text: TextStream<'a>,
    logits: Vec<f32>,
    generated: Vec<u32>,
    logprobs: Vec<TokenLogprob>,
    /// How many of `logprobs` went out with released text.
    logprobs_sent: usize,
    finished: Option<FinishReason>,
    grammar: Option<&'a JsonGrammar>,
    matcher: Option<JsonMatcher<'a>>,
    /// The history index of the cache's first position: 0 unless the window slid.
    offset: usize,
    /// Tokens guessed after the last sampled one in the last forward pass (the cache's last
    /// positions); `logits` holds a row for that token and one for each guess, and `row` is
    /// the one to sample next.
    drafted: Vec<u32>,
    row: usize,
    draft: DraftLength,
    /// (answer position, token): tokens ruled out at a position after they began a banned
    /// phrase there.
    banned_at: Vec<(usize, u32)>,
    bans: BanStats,
}

/// What sampling one stream's rows needs from its request and the batch around it.
struct RowContext<'c> {
    request: &'c GenerateRequest,
    max_tokens: usize,
    vocab_bytes: Option<&'c Vec<Vec<u8>>>,
    /// The prefill's logits: where a rewind to the first token samples again.
    prefill_logits: &'c [f32],
    mask: &'c mut Vec<bool>,
    cancelled: &'c mut bool,
    /// Shows released text; `false` cancels the request.
    on_text: &'c mut dyn FnMut(usize, &str, &[TokenLogprob]) -> bool,
    start: Instant,
    first_token_ms: &'c mut Option<f64>,
}

/// How a rewind over a banned phrase left the stream.
enum Rewound {
    /// Back at the first token: sample again from the prefill's logits.
    Resample,
    /// The cache ends before the last kept token, which the next pass feeds again.
    Refeed,
    /// No way back: the answer was cut before the phrase and ends.
    GaveUp,
}

/// How often bans made a candidate take tokens back, and how far.
#[derive(Clone, Copy, Debug, Default)]
struct BanStats {
    rewinds: usize,
    rewound_tokens: usize,
    deepest: usize,
}

impl BanStats {
    fn add(&mut self, other: &BanStats) {
        self.rewinds += other.rewinds;
        self.rewound_tokens += other.rewound_tokens;
        self.deepest = self.deepest.max(other.deepest);
    }
}

/// Tokens one position may rule out for beginning a ban before the rewind goes one further.
pub const MAX_TRIES_PER_POSITION: usize = 8;
/// Rewinds one candidate may make before it ends instead (each costs a forward pass).
pub const MAX_REWINDS: usize = 64;

impl Engine {
    /// Loads a GGUF file, or a directory holding `model.gguf` (what `inkling train` writes).
    pub fn load(path: &Path, config: &EngineConfig) -> Result<Self> {
        let t0 = Instant::now();
        let file = GgufFile::open(&model_file(path))?;
        let mut model = Model::load(&file)?;
        let adapter = match &config.adapter {
            Some(a) => {
                let adapter = crate::adapter::LoraAdapter::load(a)?;
                model.merge_adapter(&adapter)?;
                Some(a.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned()))
            }
            None => None,
        };
        let tokenizer = crate::Tokenizer::from_gguf(&file)?;
        if tokenizer.vocab_size() < model.config.vocab_size {
            return Err(EngineError::Tokenizer(format!("the vocabulary has {} tokens but the model has {} embedding rows", tokenizer.vocab_size(), model.config.vocab_size)));
        }
        let text = |id: Option<u32>| id.and_then(|t| tokenizer.token_text(t)).unwrap_or("").to_string();
        let chat = ChatTemplate::new(file.get_str("tokenizer.chat_template"), &text(tokenizer.bos), &text(tokenizer.eos))?;
        let threads = config.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| EngineError::InvalidRequest(format!("cannot start {threads} worker threads: {e}")))?;
        let context = config.context.unwrap_or(8192).min(model.config.context_length).max(16);
        let mut info = ModelInfo::from_gguf(&file)?;
        if let Some(a) = adapter {
            info.name = format!("{} + {a}", info.name);
        }
        Ok(Self {
            model,
            tokenizer,
            chat,
            pool,
            context,
            info,
            default_breakers: std::sync::OnceLock::new(),
            vocab_bytes: std::sync::OnceLock::new(),
            breaks_text: std::sync::OnceLock::new(),
            prefix: Mutex::new(None),
            load_time_ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &crate::Tokenizer {
        &self.tokenizer
    }

    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat
    }

    pub fn context_length(&self) -> usize {
        self.context
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The token ids a prompt becomes (BOS included when the model wants one).
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        self.prompt_tokens_with_prefill(prompt, "")
    }

    /// Exactly the text the model sees: a chat prompt rendered through the template, then the
    /// start of the reply the caller wrote for it (`prefill`).
    pub fn render_prompt(&self, prompt: &Prompt, prefill: &str) -> Result<String> {
        Ok(match prompt {
            Prompt::Text(t) => format!("{t}{prefill}"),
            Prompt::Chat(m) => format!("{}{prefill}", self.chat.render(m, true)?),
        })
    }

    /// [`Engine::prompt_tokens`] with the reply's start appended.
    pub fn prompt_tokens_with_prefill(&self, prompt: &Prompt, prefill: &str) -> Result<Vec<u32>> {
        // Control tokens are parsed only where a chat template wrote them.
        let special = matches!(prompt, Prompt::Chat(_));
        let tokens = self.tokenizer.encode_prompt(&self.render_prompt(prompt, prefill)?, special);
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        Ok(tokens)
    }

    /// Logits for every position of `tokens` (from a fresh cache), all computed as a prompt:
    /// perplexity and tests.
    pub fn logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.logits_decoding(tokens, tokens.len())
    }

    /// Logits for every position of `tokens` (from a fresh cache), the first `prompt_len`
    /// computed as a prompt and each later one alone, as decoding computes them: teacher
    /// forcing through the decoding path, to compare with another engine's greedy decode.
    pub fn logits_decoding(&self, tokens: &[u32], prompt_len: usize) -> Result<Vec<f32>> {
        if tokens.len() > self.context {
            return Err(EngineError::PromptTooLong { prompt_tokens: tokens.len(), context: self.context, trained: self.model.config.context_length });
        }
        self.check_tokens(tokens)?;
        let mut cache = self.model.new_cache(tokens.len());
        let mut out = Vec::with_capacity(tokens.len() * self.model.config.vocab_size);
        self.pool.install(|| {
            let (prompt, rest) = tokens.split_at(prompt_len.min(tokens.len()));
            for chunk in prompt.chunks(PREFILL_CHUNK).chain(rest.chunks(1)) {
                let mut b = [SeqBatch { cache: &mut cache, tokens: chunk, all_logits: true, decoding: false }];
                out.extend(self.model.forward(&mut b).remove(0));
            }
        });
        Ok(out)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        match tokens.iter().find(|&&t| t as usize >= self.model.config.vocab_size) {
            Some(t) => Err(EngineError::InvalidRequest(format!("token id {t} is outside the vocabulary of {}", self.model.config.vocab_size))),
            None => Ok(()),
        }
    }

    /// Generates `request.n` candidates, calling `on_event` as text arrives. Returning `false`
    /// from `on_event` cancels the generation; what was produced so far is still returned.
    pub fn generate(&self, request: &GenerateRequest, mut on_event: impl FnMut(Event<'_>) -> bool) -> Result<Generation> {
        let mut out = self.generate_batch(std::slice::from_ref(request), &mut |_, e| on_event(e));
        out.pop().unwrap_or(Err(EngineError::InvalidRequest("no request".into())))
    }

    /// Forbids the tokens that would make the output invalid UTF-8, given the bytes of a
    /// character still pending: byte-level vocabularies spell a Chinese character as two or
    /// three tokens, and a small model sometimes follows a lead byte with something that is
    /// not its continuation, which a writer would see as U+FFFD in their text. With nothing
    /// pending the forbidden set is fixed (computed once); with a character pending every
    /// token is checked. End-of-generation tokens stay allowed (an unfinished character is
    /// dropped), and if nothing else would be left the logits are not touched.
    fn mask_broken_utf8(&self, pending: &[u8], logits: &mut [f32], scratch: &mut Vec<bool>) {
        if pending.is_empty() {
            let forbidden = self
                .breaks_text
                .get_or_init(|| (0..self.tokenizer.vocab_size() as u32).filter(|&t| !self.tokenizer.is_end_of_generation(t) && breaks_utf8(&[], &self.tokenizer.token_bytes(t))).collect());
            for &t in forbidden {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
            return;
        }
        let vocab = self.vocab_bytes.get_or_init(|| (0..self.tokenizer.vocab_size() as u32).map(|t| self.tokenizer.token_bytes(t)).collect());
        scratch.clear();
        scratch.extend(vocab.iter().enumerate().map(|(t, b)| breaks_utf8(pending, b) && !self.tokenizer.is_end_of_generation(t as u32)));
        let any_left = logits.iter().enumerate().any(|(t, l)| *l > f32::NEG_INFINITY && !scratch.get(t).copied().unwrap_or(false));
        if any_left {
            for (l, &bad) in logits.iter_mut().zip(scratch.iter()) {
                if bad {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }

    /// Generates several requests at once: each is checked and prefilled on its own, then the
    /// candidates of all of them decode together, one batched forward pass per token (the
    /// weights are read once for every sequence). `on_event` gets the request's index; returning
    /// `false` cancels that request alone. One result per request, in order.
    pub fn generate_batch(&self, requests: &[GenerateRequest], on_event: &mut dyn FnMut(usize, Event<'_>) -> bool) -> Vec<Result<Generation>> {
        let t0 = Instant::now();
        // Validation, tokenization and prefill, request by request.
        let mut setups: Vec<Result<Setup>> =
            requests.iter().enumerate().map(|(ri, r)| self.setup(r, &mut |cached, processed, total| on_event(ri, Event::Prefill { cached, processed, total }))).collect();
        let grammars: Vec<Option<JsonGrammar>> = setups.iter_mut().map(|s| s.as_mut().ok().and_then(|s| s.grammar.take())).collect();
        let bans: Vec<Option<Bans>> = setups.iter_mut().map(|s| s.as_mut().ok().and_then(|s| s.bans.take())).collect();
        let vocab_bytes = grammars.iter().any(Option::is_some).then(|| self.vocab_bytes.get_or_init(|| (0..self.tokenizer.vocab_size() as u32).map(|t| self.tokenizer.token_bytes(t)).collect()));
        let mut streams = self.fork_streams(requests, &mut setups, &grammars, &bans);
        let mut first_token_ms: Vec<Option<f64>> = vec![None; requests.len()];
        let mut cancelled: Vec<bool> = setups.iter().map(|s| s.as_ref().is_ok_and(|s| s.cancelled)).collect();
        let mut mask = Vec::new();
        let t1 = Instant::now();
        loop {
            for s in streams.iter_mut().filter(|s| s.finished.is_none()) {
                let ri = s.req;
                let Ok(su) = &setups[ri] else { continue };
                let mut ctx = RowContext {
                    request: &requests[ri],
                    max_tokens: su.max_tokens,
                    vocab_bytes,
                    prefill_logits: &su.logits,
                    mask: &mut mask,
                    cancelled: &mut cancelled[ri],
                    on_text: &mut |candidate, text, logprobs| on_event(ri, Event::Text { candidate, text, logprobs }),
                    start: t0,
                    first_token_ms: &mut first_token_ms[ri],
                };
                self.sample_rows(s, &mut ctx);
                if let Some(reason) = s.finished {
                    self.retire(s, reason, &mut |e| on_event(ri, e));
                }
            }
            if streams.iter().all(|s| s.finished.is_some()) {
                break;
            }
            self.forward_live(&mut streams, requests, &setups, &cancelled);
        }
        let decode_ms = t1.elapsed().as_secs_f64() * 1e3;
        self.keep_prefix(&streams);
        results(requests.len(), setups, streams, first_token_ms, decode_ms)
    }

    /// Each request's `n` candidates: the prompt's cache forked `n - 1` times (the last
    /// candidate takes the original), one seeded sampler each (seed + i).
    fn fork_streams<'a>(&self, requests: &'a [GenerateRequest], setups: &mut [Result<Setup>], grammars: &'a [Option<JsonGrammar>], bans: &'a [Option<Bans>]) -> Vec<Stream<'a>> {
        let mut streams = Vec::new();
        for (ri, setup) in setups.iter_mut().enumerate() {
            let Ok(su) = setup else { continue };
            let request = &requests[ri];
            let mut cache = Some(std::mem::replace(&mut su.cache, self.model.new_cache(0)));
            for i in 0..request.n {
                let cache =
                    if i + 1 == request.n { cache.take().unwrap_or_else(|| self.model.new_cache(0)) } else { cache.as_mut().map_or_else(|| self.model.new_cache(0), |c| c.fork(su.max_tokens)) };
                streams.push(Stream {
                    req: ri,
                    candidate: i,
                    cache,
                    sampler: Sampler::new(request.sampling.clone(), su.seed.wrapping_add(i as u64), su.breakers.clone()),
                    prompt_len: su.prompt.len(),
                    history: su.prompt.clone(),
                    text: TextStream::with_bans(&request.stop, bans[ri].as_ref()),
                    logits: su.logits.clone(),
                    generated: Vec::new(),
                    logprobs: Vec::new(),
                    logprobs_sent: 0,
                    finished: None,
                    grammar: grammars[ri].as_ref(),
                    matcher: grammars[ri].as_ref().map(JsonGrammar::matcher),
                    offset: 0,
                    drafted: Vec::new(),
                    row: 0,
                    draft: DraftLength::default(),
                    banned_at: Vec::new(),
                    bans: BanStats::default(),
                });
            }
        }
        streams
    }

    /// A candidate that just finished: the text it still held back and its last
    /// log-probabilities go out, then `Finished`.
    fn retire(&self, s: &mut Stream<'_>, reason: FinishReason, on_event: &mut dyn FnMut(Event<'_>) -> bool) {
        let tail = s.text.finish();
        // A ban at the very end (the length ran out, or it was cancelled, right after one)
        // was cut off with the tokens it began in.
        if s.text.tokens() < s.generated.len() {
            self.truncate_answer(s, s.text.tokens());
        }
        let logprobs = &s.logprobs[s.logprobs_sent.min(s.logprobs.len())..];
        if !tail.is_empty() || !logprobs.is_empty() {
            on_event(Event::Text { candidate: s.candidate, text: &tail, logprobs });
        }
        s.logprobs_sent = s.logprobs.len();
        on_event(Event::Finished { candidate: s.candidate, reason });
    }

    /// Keeps the first request's first candidate's cache for the next prompt (the writer
    /// often continues it).
    fn keep_prefix(&self, streams: &[Stream<'_>]) {
        if let Some(s) = streams.first().filter(|s| s.offset == 0) {
            let mut tokens = s.history.clone();
            tokens.truncate(s.cache.len());
            let cache = s.cache.clone();
            if let Ok(mut p) = self.prefix.lock() {
                *p = Some(PrefixCache { tokens, cache });
            }
        }
    }

    /// Samples from the rows of the last forward pass in turn: the first, then the next while
    /// the sampled token is the one guessed for its place. Ends with the stream finished, or
    /// waiting for a forward pass over its last sampled token (and its new guesses).
    fn sample_rows(&self, s: &mut Stream<'_>, ctx: &mut RowContext<'_>) {
        let request = ctx.request;
        loop {
            let t = match self.next_token(s, ctx) {
                Ok(t) => t,
                Err(reason) => {
                    s.finished = Some(reason);
                    break;
                }
            };
            ctx.first_token_ms.get_or_insert_with(|| ctx.start.elapsed().as_secs_f64() * 1e3);
            if !request.ignore_eos && self.tokenizer.is_end_of_generation(t) {
                // A phrase at the very end is only decided now.
                match s.text.hit_at_end().map(|hit| self.rewind(s, hit, ctx.prefill_logits)) {
                    Some(Rewound::Resample) => continue,
                    Some(Rewound::Refeed) => break,
                    Some(Rewound::GaveUp) => s.finished = Some(FinishReason::Banned),
                    None => s.finished = Some(FinishReason::Stop),
                }
                break;
            }
            s.history.push(t);
            s.generated.push(t);
            let text = match s.text.push(&self.tokenizer.token_bytes(t)) {
                Step::Text(x) => x,
                Step::Stopped(x) => {
                    s.finished = Some(FinishReason::Stop);
                    x
                }
                Step::Banned(hit) => match self.rewind(s, hit, ctx.prefill_logits) {
                    Rewound::Resample => continue,
                    Rewound::Refeed => break,
                    Rewound::GaveUp => {
                        s.finished = Some(FinishReason::Banned);
                        break;
                    }
                },
            };
            // The reports go out with the text that completes their tokens; released text is
            // never rewound, so neither are they.
            let done = s.text.released_tokens().min(s.logprobs.len()).max(s.logprobs_sent);
            let logprobs = &s.logprobs[s.logprobs_sent..done];
            if (!text.is_empty() || !logprobs.is_empty()) && !(ctx.on_text)(s.candidate, &text, logprobs) {
                *ctx.cancelled = true;
            }
            s.logprobs_sent = done;
            if s.finished.is_none() && s.drafted.get(s.row) == Some(&t) {
                s.row += 1;
                continue;
            }
            break;
        }
        self.drop_unkept_guesses(s);
    }

    /// The next token from the current row's logits, after the masks that keep the output
    /// valid; `Err` when the stream ends here instead.
    fn next_token(&self, s: &mut Stream<'_>, ctx: &mut RowContext<'_>) -> std::result::Result<u32, FinishReason> {
        let request = ctx.request;
        let vocab = self.model.config.vocab_size;
        let logits = &mut s.logits[s.row * vocab..(s.row + 1) * vocab];
        if s.generated.len() >= ctx.max_tokens {
            return Err(FinishReason::Length);
        }
        if *ctx.cancelled {
            return Err(FinishReason::Cancelled);
        }
        if let Some(m) = s.matcher.as_mut() {
            if m.is_complete() {
                return Err(FinishReason::Stop);
            }
            // Only tokens that keep the document valid may be sampled.
            allowed_tokens(m, ctx.vocab_bytes.map_or(&[][..], Vec::as_slice), ctx.max_tokens - s.generated.len() - 1, ctx.mask);
            if !ctx.mask.iter().any(|&ok| ok) {
                // The vocabulary cannot continue the document (no such model seen yet).
                return Err(FinishReason::Stop);
            }
            for (l, ok) in logits.iter_mut().zip(ctx.mask.iter()) {
                if !ok {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        if s.generated.len() < request.min_tokens {
            for &t in self.tokenizer.end_of_generation_tokens() {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        self.mask_broken_utf8(s.text.pending_bytes(), logits, ctx.mask);
        let here = s.generated.len();
        for &(_, t) in s.banned_at.iter().filter(|(at, _)| *at == here) {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
        let (t, drawn) = s.sampler.sample_reporting(logits, &s.history, request.logprobs);
        if s.banned_at.contains(&(here, t)) {
            // Every other token was masked too: no allowed path is left here.
            return Err(FinishReason::Banned);
        }
        if let (Some(k), Some(drawn)) = (request.logprobs, drawn) {
            s.logprobs.push(TokenLogprob { sampled_logprob: drawn.logprob, sampled_top: drawn.top, ..token_logprob(logits, t, k) });
        }
        if let Some(m) = s.matcher.as_mut() {
            m.advance(&self.tokenizer.token_bytes(t));
        }
        Ok(t)
    }

    /// A banned phrase began in token `hit.token`: take it and everything after it back, rule
    /// that token out at that position, and sample there again. A position where
    /// [`MAX_TRIES_PER_POSITION`] tokens each began a ban is given up on for the one before
    /// it; past [`MAX_REWINDS`], or where the way back would cross text already shown (or
    /// a window that slid), the candidate ends without the phrase.
    fn rewind(&self, s: &mut Stream<'_>, hit: BanHit, prefill_logits: &[f32]) -> Rewound {
        self.drop_unkept_guesses(s);
        s.bans.rewinds += 1;
        let floor = s.text.first_unreleased_token();
        let tries = |s: &Stream<'_>, k: usize| s.banned_at.iter().filter(|(at, _)| *at == k).count();
        let mut k = hit.token;
        while tries(s, k) >= MAX_TRIES_PER_POSITION && k > floor {
            k -= 1;
        }
        let cache_reachable = if k == 0 { s.offset == 0 } else { s.prompt_len + k - 1 > s.offset || s.offset == 0 };
        if s.bans.rewinds > MAX_REWINDS || k < floor || tries(s, k) >= MAX_TRIES_PER_POSITION || !cache_reachable {
            self.truncate_answer(s, hit.token);
            return Rewound::GaveUp;
        }
        let depth = s.generated.len() - k;
        s.bans.rewound_tokens += depth;
        s.bans.deepest = s.bans.deepest.max(depth);
        let token = s.generated[k];
        // Masks further on were for a text that is now gone.
        s.banned_at.retain(|&(at, _)| at <= k);
        s.banned_at.push((k, token));
        self.truncate_answer(s, k);
        if k == 0 {
            s.logits.clear();
            s.logits.extend_from_slice(prefill_logits);
            return Rewound::Resample;
        }
        // The cache then ends before token k - 1, which the next pass feeds again.
        s.cache.truncate(s.prompt_len + k - 1 - s.offset);
        Rewound::Refeed
    }

    /// Shortens the answer to its first `k` tokens: history, cache (never past the history
    /// it caches), log-probabilities, text and the JSON matcher (replayed: rewinds are rare).
    fn truncate_answer(&self, s: &mut Stream<'_>, k: usize) -> bool {
        if !s.text.rewind(k) {
            return false;
        }
        s.generated.truncate(k);
        s.history.truncate(s.prompt_len + k);
        s.cache.truncate(s.history.len().saturating_sub(s.offset));
        debug_assert!(k >= s.logprobs_sent.min(s.logprobs.len()), "a rewind never takes back reported tokens");
        s.logprobs.truncate(k);
        if let Some(g) = s.grammar {
            let mut m = g.matcher();
            for &t in &s.generated {
                m.advance(&self.tokenizer.token_bytes(t));
            }
            s.matcher = Some(m);
        }
        true
    }

    /// The guesses past the last kept one leave the cache.
    fn drop_unkept_guesses(&self, s: &mut Stream<'_>) {
        if !s.drafted.is_empty() {
            s.cache.truncate(s.cache.len() - (s.drafted.len() - s.row));
            s.draft.record(s.drafted.len(), s.row);
            s.drafted.clear();
        }
        s.row = 0;
    }

    /// One batched forward pass for every live candidate of every request; those of a
    /// cancelled request skip it and are marked cancelled on the next pass.
    fn forward_live(&self, streams: &mut [Stream<'_>], requests: &[GenerateRequest], setups: &[Result<Setup>], cancelled: &[bool]) {
        let live = |s: &Stream| s.finished.is_none() && !cancelled[s.req];
        if self.slides() {
            // The window is full: re-read its last half from position 0 and go on (what
            // nanoGPT's sampler does by cropping; absolute positions cannot be shifted).
            for s in streams.iter_mut().filter(|s| live(s) && s.cache.len() + 1 > self.context) {
                let keep = (self.context / 2).max(1);
                let window = &s.history[s.history.len() - keep..s.history.len() - 1];
                let mut cache = self.model.new_cache(self.context);
                self.pool.install(|| self.model.forward(&mut [SeqBatch { cache: &mut cache, tokens: window, all_logits: false, decoding: false }]));
                s.cache = cache;
                s.offset = s.history.len() - keep;
            }
        }
        let mut refs: Vec<&mut Stream> = streams.iter_mut().filter(|s| live(s)).collect();
        if refs.is_empty() {
            return;
        }
        // Each feeds its last sampled token, and its guesses at the next ones when it
        // speculates: never more than its token budget or the context could keep.
        let feeds: Vec<Vec<u32>> = refs
            .iter_mut()
            .map(|s| {
                let max_tokens = setups[s.req].as_ref().map_or(0, |su| su.max_tokens);
                if requests[s.req].speculative != Speculation::Off {
                    let room = max_tokens.saturating_sub(s.generated.len() + 1).min(self.context.saturating_sub(s.cache.len() + 1));
                    let n = s.draft.take().min(room);
                    s.drafted = lookup(&s.history, n);
                }
                std::iter::once(*s.generated.last().unwrap_or(&0)).chain(s.drafted.iter().copied()).collect()
            })
            .collect();
        let mut batch: Vec<SeqBatch<'_>> = refs.iter_mut().zip(&feeds).map(|(s, tokens)| SeqBatch { cache: &mut s.cache, tokens, all_logits: tokens.len() > 1, decoding: true }).collect();
        let out = self.pool.install(|| self.model.forward(&mut batch));
        drop(batch);
        for (s, l) in refs.into_iter().zip(out) {
            s.logits = l;
        }
    }

    /// Checks one request and computes its prompt (reusing the cached prefix of the previous
    /// generation where it matches), telling `progress` (cached, processed, total) after each
    /// chunk; a `false` from it stops there.
    fn setup(&self, request: &GenerateRequest, progress: &mut dyn FnMut(usize, usize, usize) -> bool) -> Result<Setup> {
        request.check()?;
        if request.logprobs.is_some_and(|k| k > MAX_TOP_LOGPROBS) {
            return Err(EngineError::InvalidRequest(format!("at most {MAX_TOP_LOGPROBS} alternatives per token can be reported (top_logprobs)")));
        }
        let prompt = self.prompt_tokens_with_prefill(&request.prompt, &request.prefill)?;
        if prompt.len() >= self.context {
            return Err(EngineError::PromptTooLong { prompt_tokens: prompt.len(), context: self.context, trained: self.model.config.context_length });
        }
        let max_tokens = if self.slides() { request.max_tokens } else { request.max_tokens.min(self.context - prompt.len()) };
        let seed = request.seed_or_clock();
        let breakers = if request.sampling.dry.sequence_breakers == SamplingConfig::default().dry.sequence_breakers {
            self.default_breakers.get_or_init(|| dry_breakers(&self.tokenizer, &request.sampling.dry.sequence_breakers)).clone()
        } else {
            dry_breakers(&self.tokenizer, &request.sampling.dry.sequence_breakers)
        };
        let grammar = request.json_schema.as_ref().map(JsonGrammar::compile).transpose()?;
        if let Some(g) = &grammar
            && g.matcher().min_bytes_to_complete() > max_tokens
        {
            return Err(EngineError::InvalidRequest(format!(
                "{max_tokens} tokens cannot hold the shortest JSON answer this schema allows ({} bytes); raise max_tokens",
                g.matcher().min_bytes_to_complete()
            )));
        }
        let bans = Bans::compile(&request.banned_strings, &request.banned_regex)?;
        let t0 = Instant::now();
        let mut cache = match self.prefix.lock().map(|mut p| p.take()) {
            Ok(Some(p)) => {
                let common = p.tokens.iter().zip(&prompt).take_while(|(a, b)| a == b).count();
                let mut cache = p.cache;
                // At least one prompt token must run to produce logits.
                cache.truncate(common.min(prompt.len() - 1));
                cache
            }
            _ => self.model.new_cache((prompt.len() + max_tokens).min(self.context)),
        };
        let reused = cache.len();
        let mut logits = Vec::new();
        let mut cancelled = false;
        for chunk in prompt[reused..].chunks(PREFILL_CHUNK) {
            let mut b = [SeqBatch { cache: &mut cache, tokens: chunk, all_logits: false, decoding: false }];
            logits = self.pool.install(|| self.model.forward(&mut b)).remove(0);
            if !progress(reused, cache.len(), prompt.len()) {
                cancelled = true;
                break;
            }
        }
        let computed = cache.len() - reused;
        let prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
        Ok(Setup { prompt, max_tokens, seed, breakers, grammar, bans, cache, reused, computed, cancelled, logits, prompt_ms })
    }

    /// Whether generation may run past the context by re-reading the latest half-window:
    /// models with absolute positions (gpt2, the models `inkling train` makes, whose
    /// windows are short). RoPE models stop at the context instead.
    fn slides(&self) -> bool {
        self.model.config.arch == crate::model::Arch::Gpt2
    }

    /// Forgets the cached prefix (benchmarks measure cold prompts).
    pub fn clear_prefix_cache(&self) {
        if let Ok(mut p) = self.prefix.lock() {
            *p = None;
        }
    }
}

/// Tokens whose text contains a DRY sequence breaker.
fn dry_breakers(tok: &crate::Tokenizer, breakers: &[String]) -> Vec<u32> {
    (0..tok.vocab_size() as u32)
        .filter(|&t| {
            let text = String::from_utf8_lossy(&tok.token_bytes(t)).into_owned();
            breakers.iter().any(|b| !b.is_empty() && text.contains(b.as_str()))
        })
        .collect()
}

/// Whether `pending` followed by `token` holds a byte sequence that is not UTF-8 (an
/// unfinished character at the end is fine: its remaining bytes may follow).
fn breaks_utf8(pending: &[u8], token: &[u8]) -> bool {
    let mut buf = [0u8; 64];
    let joined: std::borrow::Cow<'_, [u8]> = if pending.len() + token.len() <= buf.len() {
        buf[..pending.len()].copy_from_slice(pending);
        buf[pending.len()..pending.len() + token.len()].copy_from_slice(token);
        std::borrow::Cow::Borrowed(&buf[..pending.len() + token.len()])
    } else {
        std::borrow::Cow::Owned([pending, token].concat())
    };
    matches!(std::str::from_utf8(&joined), Err(e) if e.error_len().is_some())
}

/// One `Generation` per request from its finished candidates, with its timings; a request
/// whose setup failed gets its error.
fn results(n_requests: usize, setups: Vec<Result<Setup>>, streams: Vec<Stream<'_>>, first_token_ms: Vec<Option<f64>>, decode_ms: f64) -> Vec<Result<Generation>> {
    let mut by_request: Vec<Vec<Candidate>> = (0..n_requests).map(|_| Vec::new()).collect();
    let mut stats: Vec<(usize, usize, BanStats)> = vec![(0, 0, BanStats::default()); n_requests];
    for s in streams {
        let st = &mut stats[s.req];
        st.0 += s.draft.drafted_total;
        st.1 += s.draft.accepted_total;
        st.2.add(&s.bans);
        by_request[s.req].push(Candidate {
            index: s.candidate,
            text: s.text.text().to_string(),
            finish_reason: s.finished.unwrap_or(FinishReason::Length),
            completion_tokens: s.generated.len(),
            tokens: s.generated,
            logprobs: s.logprobs,
        });
    }
    setups
        .into_iter()
        .zip(by_request)
        .zip(first_token_ms)
        .zip(stats)
        .map(|(((setup, candidates), first), (draft_tokens, draft_accepted, bans))| {
            let su = setup?;
            let generated: usize = candidates.iter().map(|c| c.completion_tokens).sum();
            let computed = su.computed;
            Ok(Generation {
                candidates,
                prompt_tokens: su.prompt.len(),
                seed: su.seed,
                timings: Timings {
                    prompt_tokens_computed: computed,
                    prompt_tokens_reused: su.reused,
                    prompt_ms: su.prompt_ms,
                    time_to_first_token_ms: first.unwrap_or(su.prompt_ms),
                    decode_ms,
                    prompt_tokens_per_s: computed as f64 / (su.prompt_ms / 1e3).max(1e-9),
                    decode_tokens_per_s: generated as f64 / (decode_ms / 1e3).max(1e-9),
                    draft_tokens,
                    draft_accepted,
                    ban_rewinds: bans.rewinds,
                    ban_rewound_tokens: bans.rewound_tokens,
                    ban_deepest_rewind: bans.deepest,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::breaks_utf8;

    #[test]
    fn unfinished_characters_may_continue_and_broken_ones_may_not() {
        assert!(!breaks_utf8(&[], &[0xE5]), "a lead byte may be followed by its continuation");
        assert!(breaks_utf8(&[], &[0x8F]), "a continuation byte cannot follow complete text");
        assert!(!breaks_utf8(&[0xE5], &[0x8F]));
        assert!(!breaks_utf8(&[0xE5, 0x8F], &[0xB0, b'a']));
        assert!(breaks_utf8(&[0xE5], b"kedd"), "a lead byte followed by ASCII is not text");
        assert!(!breaks_utf8(&[], "好kedd".as_bytes()));
        assert!(!breaks_utf8(&[0xE5, 0x8F], &[0xB0; 1]));
        assert!(breaks_utf8(&[], &[b'x'; 100].iter().chain(&[0xFF]).copied().collect::<Vec<u8>>()), "long tokens too");
    }
}
