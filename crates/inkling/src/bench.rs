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
    /// Tokens of context read before the timed prompt, untimed (llama-bench's `-d`): the
    /// prompt and decode figures are then those of a writer continuing a chapter this long.
    #[arg(long, default_value_t = 0)]
    depth: usize,
    /// Candidates decoded together.
    #[arg(short = 'n', long = "candidates", default_value_t = 1)]
    n: usize,
    /// Guess tokens ahead while decoding (auto, lookup, off). The benchmark's prompt is
    /// repeated prose, which flatters guessing: measure it on real edits with
    /// `scripts/bench_speculative.py`.
    #[arg(long, default_value = "off", value_name = "auto|lookup|off")]
    speculative: inkling_engine::Speculation,
    /// Repetitions (the best is reported).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    #[arg(long)]
    json: bool,
}

/// Peak resident memory of this process in bytes (Linux; 0 elsewhere).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())).map_or(0, |kb| kb * 1024)
}

pub fn bench(model: &ModelArgs, args: BenchArgs) -> Result<()> {
    // With a start-of-text token, 2 is the shortest prompt that still holds some text.
    anyhow::ensure!(args.prompt_tokens >= 2, "--prompt-tokens must be at least 2, got {}", args.prompt_tokens);
    let engine = models::load(model)?;
    let total = args.depth + args.prompt_tokens;
    anyhow::ensure!(
        total + args.gen_tokens <= engine.context_length(),
        "--depth {} + --prompt-tokens {} + --gen-tokens {} is more than the context of {} tokens; lower them or raise --ctx",
        args.depth,
        args.prompt_tokens,
        args.gen_tokens,
        engine.context_length()
    );
    let tokens = prose_tokens(&engine, total);
    let (context, text) = (engine.tokenizer().decode(&tokens[..args.depth]), engine.tokenizer().decode(&tokens));
    let request = |text: &str, max_tokens| GenerateRequest {
        n: args.n,
        max_tokens,
        sampling: SamplingConfig::greedy(),
        ignore_eos: true,
        seed: Some(1),
        speculative: args.speculative,
        ..GenerateRequest::new(Prompt::Text(text.to_string()))
    };
    let mut best: Option<inkling_engine::Timings> = None;
    for _ in 0..args.repeat.max(1) {
        engine.clear_prefix_cache();
        if args.depth > 0 {
            // Reads the context into the engine's prefix cache; the timed request reuses it.
            engine.generate(&GenerateRequest { n: 1, ..request(&context, 1) }, |_| true)?;
        }
        let g = engine.generate(&request(&text, args.gen_tokens), |_| true)?;
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
        "kernels": kernels(),
        "weight_prefetch": inkling_engine::kernels::weight_prefetch().name(),
        "candidates": args.n,
        "depth": t.prompt_tokens_reused,
        "prompt_tokens": t.prompt_tokens_computed,
        "gen_tokens": args.gen_tokens,
        "load_ms": engine.load_time_ms,
        "prompt_tokens_per_s": t.prompt_tokens_per_s,
        "decode_tokens_per_s": t.decode_tokens_per_s,
        "time_to_first_token_ms": t.time_to_first_token_ms,
        "peak_rss_mib": rss as f64 / (1024.0 * 1024.0),
        "speculative": args.speculative,
        "draft_tokens": t.draft_tokens,
        "draft_accepted": t.draft_accepted,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let prefetch = inkling_engine::kernels::weight_prefetch().name();
        println!("model        {} ({}), {} threads, {} kernels, weight prefetch {prefetch}", info.name, info.quantization, engine.threads(), kernels());
        println!("load         {:.0} ms", engine.load_time_ms);
        if args.depth > 0 {
            println!("depth        {} tokens of context read first", t.prompt_tokens_reused);
        }
        println!("prompt       {} tokens at {:.1} tok/s", t.prompt_tokens_computed, t.prompt_tokens_per_s);
        println!("decode       {} x {} tokens at {:.1} tok/s", args.n, args.gen_tokens, t.decode_tokens_per_s);
        if t.draft_tokens > 0 {
            println!("guessed      {} tokens, {} kept ({:.0}%)", t.draft_tokens, t.draft_accepted, 100.0 * t.draft_accepted as f64 / t.draft_tokens as f64);
        }
        println!("first token  {:.0} ms", t.time_to_first_token_ms);
        println!("peak RSS     {:.0} MiB", rss as f64 / (1024.0 * 1024.0));
    }
    Ok(())
}

/// A natural-language prompt of exactly `n` tokens (counting the start-of-text token the
/// engine adds): repeated prose, tokenized.
fn prose_tokens(engine: &inkling_engine::Engine, n: usize) -> Vec<u32> {
    let prose = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity. ";
    let mut text = String::new();
    let mut tokens = Vec::new();
    while tokens.len() < n {
        text.push_str(prose);
        tokens = engine.tokenizer().encode(&text, false);
    }
    tokens.truncate(n.saturating_sub(usize::from(engine.tokenizer().add_bos)));
    tokens
}

/// The instruction set the kernels run with, so every figure names it.
fn kernels() -> &'static str {
    inkling_engine::kernels::best_isa().name()
}
