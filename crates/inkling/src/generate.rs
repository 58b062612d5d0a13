//! `inkling generate` and `inkling chat`.

use crate::progress::PrefillBar;
use crate::{ModelArgs, config, models};
use anyhow::{Context, Result, bail};
use clap::Args;
use inkling_engine::{Backend, ChatMessage, Event, FinishReason, GenerateRequest, Generation, Prompt, SamplingConfig};
use std::io::{IsTerminal, Read, Write};

/// Sampling flags shared by `generate` and `chat`.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Randomness; 0 always picks the most likely token [default: [sampling] temperature
    /// in the config file, else 0.8].
    #[arg(long)]
    temperature: Option<f32>,
    /// Greedy decoding: no randomness, no penalties (same as --temperature 0 --dry-multiplier 0).
    #[arg(long)]
    greedy: bool,
    /// Sample from the k likeliest tokens [default: the config file's, else 40].
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling [default: the config file's, else 0.95].
    #[arg(long)]
    top_p: Option<f32>,
    /// Drop tokens below this share of the likeliest one's probability [default: the config
    /// file's, else 0.05].
    #[arg(long)]
    min_p: Option<f32>,
    #[arg(long, default_value_t = 1.0)]
    typical_p: f32,
    /// [default: the config file's, else 1.0 (off)].
    #[arg(long)]
    repeat_penalty: Option<f32>,
    #[arg(long, default_value_t = 0.0)]
    presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    frequency_penalty: f32,
    /// DRY repetition penalty strength (0 turns it off).
    #[arg(long, default_value_t = 0.8)]
    dry_multiplier: f32,
    /// XTC: chance per token of excluding the most predictable choices.
    #[arg(long, default_value_t = 0.0)]
    xtc_probability: f32,
    #[arg(long, default_value_t = 0.1)]
    xtc_threshold: f32,
    /// Same seed, same text.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop before this text (repeatable); it never appears in the output.
    #[arg(long)]
    stop: Vec<String>,
    /// The longest answer, in tokens [default: the config file's, else 200].
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Keep generating past end-of-text tokens (comparisons, benchmarks).
    #[arg(long)]
    ignore_eos: bool,
    /// Guess tokens ahead from the text so far and check them in one pass (auto, lookup,
    /// off): the same text, faster where it repeats itself or its prompt.
    #[arg(long, default_value = "auto", value_name = "auto|lookup|off")]
    speculative: inkling_engine::Speculation,
    #[command(flatten)]
    bans: crate::config::BanArgs,
}

impl SamplingArgs {
    fn config(&self) -> SamplingConfig {
        if self.greedy {
            return SamplingConfig::greedy();
        }
        // Flag over the config file's [sampling] over the built-in default.
        let file = &config::file().sampling;
        let mut c = SamplingConfig {
            temperature: self.temperature.or(file.temperature).unwrap_or(config::TEMPERATURE),
            top_k: self.top_k.or(file.top_k).unwrap_or(config::TOP_K),
            top_p: self.top_p.or(file.top_p).unwrap_or(config::TOP_P),
            min_p: self.min_p.or(file.min_p).unwrap_or(config::MIN_P),
            typical_p: self.typical_p,
            repeat_penalty: self.repeat_penalty.or(file.repeat_penalty).unwrap_or(config::REPEAT_PENALTY),
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            xtc_probability: self.xtc_probability,
            xtc_threshold: self.xtc_threshold,
            ..SamplingConfig::default()
        };
        c.dry.multiplier = self.dry_multiplier;
        c
    }

    fn request(&self, prompt: Prompt, n: usize) -> Result<GenerateRequest> {
        // Built-in bans the prompt itself uses are left out (the writer's own words).
        let text = match &prompt {
            Prompt::Text(t) => t.clone(),
            Prompt::Chat(m) => m.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n"),
        };
        let bans = inkling_craft::bans::effective(&self.bans.stacked(None)?, &text);
        Ok(GenerateRequest {
            n,
            max_tokens: self.max_tokens.or(config::file().sampling.max_tokens).unwrap_or(config::MAX_TOKENS),
            sampling: self.config(),
            stop: self.stop.clone(),
            seed: self.seed,
            ignore_eos: self.ignore_eos,
            speculative: self.speculative,
            banned_strings: bans.phrases,
            banned_regex: bans.regex,
            ..GenerateRequest::new(prompt)
        })
    }
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The text to continue ("-" or nothing reads stdin).
    prompt: Option<String>,
    /// Read the text to continue from a file.
    #[arg(long, short = 'f', conflicts_with = "prompt")]
    file: Option<std::path::PathBuf>,
    /// Number of candidates.
    #[arg(short = 'n', long = "candidates", default_value_t = 1)]
    n: usize,
    /// Show text as it is written.
    #[arg(long)]
    stream: bool,
    /// Machine-readable output (with --stream: one JSON event per line, then the result).
    #[arg(long)]
    json: bool,
    /// Treat the prompt as an instruction and apply the model's chat template.
    #[arg(long)]
    instruct: bool,
    /// After the text, each token with the model's likeliest alternatives and their
    /// probabilities, before and after the samplers; with --json, per-token `alternatives`.
    #[arg(long)]
    show_alternatives: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// One message to answer; without it, a conversation reads lines from stdin.
    message: Option<String>,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// The text from an argument, a file, or stdin ("-" or no argument).
pub fn read_prompt(prompt: Option<&str>, file: Option<&std::path::Path>) -> Result<String> {
    match (prompt, file) {
        // The store's reader: UTF-8 with a clear error otherwise, BOM dropped, binaries refused.
        (_, Some(f)) => Ok(inkling_store::import::read_text(f)?),
        (Some(p), None) if p != "-" => Ok(p.to_string()),
        _ => {
            if std::io::stdin().is_terminal() {
                bail!("give the text as an argument, with --file, or on stdin");
            }
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("stdin is not UTF-8 text")?;
            Ok(s)
        }
    }
}

/// Streams candidates in order: the first is shown live; later ones are buffered until the
/// ones before them finish, so the terminal shows readable, labelled blocks.
pub(crate) struct OrderedPrinter {
    n: usize,
    current: usize,
    buffers: Vec<String>,
    finished: Vec<bool>,
}

impl OrderedPrinter {
    pub(crate) fn new(n: usize) -> Self {
        let p = Self { n, current: 0, buffers: vec![String::new(); n], finished: vec![false; n] };
        p.header(0);
        p
    }

    fn header(&self, i: usize) {
        if self.n > 1 {
            println!("── candidate {} ──", i + 1);
        }
    }

    pub(crate) fn event(&mut self, e: &Event<'_>) {
        match *e {
            Event::Text { candidate, text, .. } if candidate == self.current => {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
            Event::Text { candidate, text, .. } => self.buffers[candidate].push_str(text),
            Event::Prefill { .. } => {}
            Event::Finished { candidate, .. } => {
                self.finished[candidate] = true;
                while self.current < self.n && self.finished[self.current] {
                    println!();
                    self.current += 1;
                    if self.current < self.n {
                        self.header(self.current);
                        print!("{}", std::mem::take(&mut self.buffers[self.current]));
                        let _ = std::io::stdout().flush();
                    }
                }
            }
        }
    }
}

/// Alternatives shown per token by `--show-alternatives` (what mikupad and NovelAI show).
pub(crate) const ALTERNATIVES: usize = 10;

/// A token's text for a table: its bytes, lossy where it holds part of a character.
fn piece(engine: &dyn Backend, token: u32) -> String {
    String::from_utf8_lossy(&engine.token_bytes(token)).into_owned()
}

/// Each generated token with its alternatives, one line a token.
fn print_alternatives(c: &inkling_engine::Candidate, engine: &dyn Backend) {
    println!("── candidate {} token by token: probability (before → after the samplers), then the likeliest alternatives ──", c.index + 1);
    for lp in &c.logprobs {
        let alts: Vec<String> = lp.top.iter().filter(|(t, _)| *t != lp.token).map(|(t, l)| format!("{:?} {:.1}%", piece(engine, *t), l.exp() * 100.0)).collect();
        println!("{:<18} {:>5.1}% → {:>5.1}%  | {}", format!("{:?}", piece(engine, lp.token)), lp.logprob.exp() * 100.0, lp.sampled_logprob.exp() * 100.0, alts.join(" · "));
    }
}

fn alternatives_json(c: &inkling_engine::Candidate, engine: &dyn Backend) -> serde_json::Value {
    c.logprobs
        .iter()
        .map(|lp| {
            let top: Vec<_> = lp.top.iter().map(|(t, l)| serde_json::json!({"token": t, "text": piece(engine, *t), "logprob": l})).collect();
            let sampled: Vec<_> = lp.sampled_top.iter().map(|(t, l)| serde_json::json!({"token": t, "text": piece(engine, *t), "logprob": l})).collect();
            serde_json::json!({"token": lp.token, "text": piece(engine, lp.token), "logprob": lp.logprob, "alternatives": top, "sampled_logprob": lp.sampled_logprob, "sampled_alternatives": sampled})
        })
        .collect()
}

fn print_result(g: &Generation, engine: &dyn Backend, json: bool) -> Result<()> {
    if json {
        let v = serde_json::json!({
            "model": engine.info().name,
            "seed": g.seed,
            "prompt_tokens": g.prompt_tokens,
            "candidates": g.candidates.iter().map(|c| serde_json::json!({
                "index": c.index, "text": c.text, "finish_reason": c.finish_reason, "completion_tokens": c.completion_tokens, "tokens": c.tokens,
                "alternatives": (!c.logprobs.is_empty()).then(|| alternatives_json(c, engine)),
            })).collect::<Vec<_>>(),
            "timings": g.timings,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for c in &g.candidates {
        if g.candidates.len() > 1 {
            println!("── candidate {} ──", c.index + 1);
        }
        println!("{}", c.text);
    }
    for c in g.candidates.iter().filter(|c| !c.logprobs.is_empty()) {
        print_alternatives(c, engine);
    }
    Ok(())
}

fn footer(g: &Generation) {
    let cut: Vec<String> = g.candidates.iter().filter(|c| c.finish_reason == FinishReason::Length).map(|c| (c.index + 1).to_string()).collect();
    if !cut.is_empty() {
        eprintln!("(candidate {} stopped at the token limit; raise --max-tokens for more)", cut.join(", "));
    }
    let banned: Vec<String> = g.candidates.iter().filter(|c| c.finish_reason == FinishReason::Banned).map(|c| (c.index + 1).to_string()).collect();
    if !banned.is_empty() {
        eprintln!("(candidate {} ended early: every way on led into a banned phrase)", banned.join(", "));
    }
    if g.timings.ban_rewinds > 0 {
        eprintln!("(banned phrases were written over {} time(s), {} token(s) taken back)", g.timings.ban_rewinds, g.timings.ban_rewound_tokens);
    }
    eprintln!("[seed {} · prompt {} tok · {:.0} ms to first token · {:.1} tok/s]", g.seed, g.prompt_tokens, g.timings.time_to_first_token_ms, g.timings.decode_tokens_per_s);
}

pub fn generate(model: &ModelArgs, args: GenerateArgs) -> Result<()> {
    let text = read_prompt(args.prompt.as_deref(), args.file.as_deref())?;
    if text.trim().is_empty() {
        bail!("the prompt is empty: give the model some text to continue");
    }
    let engine = models::backend(model)?;
    if let Some(note) = inkling_catalog::language_note(&engine.info().file, &text) {
        eprintln!("{note}");
    }
    let prompt = if args.instruct { Prompt::Chat(vec![ChatMessage::new("user", &text)]) } else { Prompt::Text(text) };
    let mut req = args.sampling.request(prompt, args.n)?;
    if args.show_alternatives {
        req.logprobs = Some(ALTERNATIVES);
    }
    let g = if args.stream && args.json {
        let out = engine.generate(&req, &mut |e| {
            let line = match e {
                Event::Prefill { cached, processed, total } => serde_json::json!({"event": "prefill", "cached": cached, "processed": processed, "total": total}),
                Event::Text { candidate, text, .. } => serde_json::json!({"event": "text", "candidate": candidate, "text": text}),
                Event::Finished { candidate, reason } => serde_json::json!({"event": "finished", "candidate": candidate, "finish_reason": reason}),
            };
            println!("{line}");
            true
        })?;
        print_result(&out, engine.as_ref(), true)?;
        return Ok(());
    } else if args.stream {
        let (mut p, mut bar) = (OrderedPrinter::new(args.n), PrefillBar::default());
        let g = engine.generate(&req, &mut |e| {
            bar.event(&e);
            p.event(&e);
            true
        })?;
        for c in g.candidates.iter().filter(|c| !c.logprobs.is_empty()) {
            print_alternatives(c, engine.as_ref());
        }
        g
    } else {
        let mut bar = PrefillBar::default();
        let g = engine.generate(&req, &mut |e| {
            bar.event(&e);
            true
        })?;
        drop(bar);
        print_result(&g, engine.as_ref(), args.json)?;
        g
    };
    if !args.json {
        footer(&g);
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// Text to tokenize ("-" or nothing reads stdin).
    text: Option<String>,
    /// Parse control-token text (such as `<|im_start|>`) as control tokens.
    #[arg(long)]
    special: bool,
}

/// `inkling tokenize`: the token ids (BOS included when the model adds one) and their pieces.
pub fn tokenize(model: &ModelArgs, args: TokenizeArgs) -> Result<()> {
    let text = read_prompt(args.text.as_deref(), None)?;
    let engine = models::load(model)?;
    let ids = engine.tokenizer().encode_prompt(&text, args.special);
    let pieces: Vec<String> = ids.iter().map(|&t| String::from_utf8_lossy(&engine.tokenizer().token_bytes(t)).into_owned()).collect();
    println!("{}", serde_json::json!({ "ids": ids, "pieces": pieces }));
    Ok(())
}

pub fn chat(model: &ModelArgs, args: ChatArgs) -> Result<()> {
    let engine = models::backend(model)?;
    if !engine.info().chat_template {
        eprintln!("note: this model has no chat template; using ChatML");
    }
    let mut messages = Vec::new();
    if let Some(s) = &args.system {
        messages.push(ChatMessage::new("system", s));
    }
    let reply = |messages: &mut Vec<ChatMessage>| -> Result<()> {
        let req = args.sampling.request(Prompt::Chat(messages.clone()), 1)?;
        let mut bar = PrefillBar::default();
        let g = engine.generate(&req, &mut |e| {
            bar.event(&e);
            if let Event::Text { text, .. } = e {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
            true
        })?;
        println!();
        let text = g.candidates.into_iter().next().map(|c| c.text).unwrap_or_default();
        messages.push(ChatMessage::new("assistant", text.trim()));
        Ok(())
    };
    if let Some(m) = &args.message {
        messages.push(ChatMessage::new("user", m));
        return reply(&mut messages);
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("chatting with {} (Ctrl-D or /exit to leave)", engine.info().name);
    }
    let mut line = String::new();
    loop {
        if interactive {
            print!("> ");
            let _ = std::io::stdout().flush();
        }
        line.clear();
        if std::io::stdin().read_line(&mut line).context("reading stdin")? == 0 {
            break;
        }
        let msg = line.trim();
        if msg.is_empty() {
            continue;
        }
        if msg == "/exit" {
            break;
        }
        messages.push(ChatMessage::new("user", msg));
        reply(&mut messages)?;
    }
    Ok(())
}
