//! `inkling bench`: prompt and decode throughput, time to first token, peak memory.
//! The same measurements as llama.cpp's llama-bench (pp / tg), for side-by-side scripts.

use crate::{ModelArgs, models};
use anyhow::Result;
use clap::Args;
use inkling_engine::{GenerateRequest, Prompt, SamplingConfig};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens to generate after the prompt.
    #[arg(long, default_value_t = 128)]
    gen_tokens: usize,
    /// Candidates decoded together.
    #[arg(short = 'n', long = "candidates", default_value_t = 1)]
    n: usize,
    /// Repetitions (the best is reported).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    #[arg(long)]
    json: bool,
}

/// Peak resident memory of this process in bytes (Linux; 0 elsewhere).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map_or(0, |kb| kb * 1024)
}

pub fn bench(model: &ModelArgs, args: BenchArgs) -> Result<()> {
    // With a start-of-text token, 2 is the shortest prompt that still holds some text.
    anyhow::ensure!(args.prompt_tokens >= 2, "--prompt-tokens must be at least 2, got {}", args.prompt_tokens);
    let engine = models::load(model)?;
    // A natural-language prompt of exactly the requested length: repeated prose, tokenized.
    let prose = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity. ";
    let mut text = String::new();
    let mut tokens = Vec::new();
    while tokens.len() < args.prompt_tokens {
        text.push_str(prose);
        tokens = engine.tokenizer().encode(&text, false);
    }
    tokens.truncate(args.prompt_tokens.saturating_sub(usize::from(engine.tokenizer().add_bos)));
    let text = engine.tokenizer().decode(&tokens);
    let mut best: Option<inkling_engine::Timings> = None;
    for _ in 0..args.repeat.max(1) {
        engine.clear_prefix_cache();
        let req = GenerateRequest {
            n: args.n,
            max_tokens: args.gen_tokens,
            sampling: SamplingConfig::greedy(),
            ignore_eos: true,
            seed: Some(1),
            ..GenerateRequest::new(Prompt::Text(text.clone()))
        };
        let g = engine.generate(&req, |_| true)?;
        let t = g.timings;
        if best.as_ref().is_none_or(|b| t.decode_tokens_per_s > b.decode_tokens_per_s) {
            best = Some(t);
        }
    }
    let t = best.unwrap_or_default();
    let rss = peak_rss_bytes();
    let info = engine.info();
    let report = serde_json::json!({
        "model": info.name,
        "file": info.file,
        "quantization": info.quantization,
        "threads": engine.threads(),
        "candidates": args.n,
        "prompt_tokens": t.prompt_tokens_computed,
        "gen_tokens": args.gen_tokens,
        "load_ms": engine.load_time_ms,
        "prompt_tokens_per_s": t.prompt_tokens_per_s,
        "decode_tokens_per_s": t.decode_tokens_per_s,
        "time_to_first_token_ms": t.time_to_first_token_ms,
        "peak_rss_mib": rss as f64 / (1024.0 * 1024.0),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("model        {} ({}), {} threads", info.name, info.quantization, engine.threads());
        println!("load         {:.0} ms", engine.load_time_ms);
        println!("prompt       {} tokens at {:.1} tok/s", t.prompt_tokens_computed, t.prompt_tokens_per_s);
        println!("decode       {} x {} tokens at {:.1} tok/s", args.n, args.gen_tokens, t.decode_tokens_per_s);
        println!("first token  {:.0} ms", t.time_to_first_token_ms);
        println!("peak RSS     {:.0} MiB", rss as f64 / (1024.0 * 1024.0));
    }
    Ok(())
}
