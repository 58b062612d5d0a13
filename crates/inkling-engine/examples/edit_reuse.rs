//! Edit-and-continue latency: continue a ~2,000-token chapter, change its last sentence, and
//! continue again. The second time to first token should be a small fraction of the first,
//! because the unchanged prefix's KV cache is reused.
//! `cargo run --release --example edit_reuse -- MODEL.gguf CORPUS.txt`

use inkling_engine::{Engine, EngineConfig, GenerateRequest, Prompt, SamplingConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: edit_reuse MODEL.gguf CORPUS.txt")?;
    let corpus = std::fs::read_to_string(args.next().ok_or("usage: edit_reuse MODEL.gguf CORPUS.txt")?)?;
    let engine = Engine::load(std::path::Path::new(&model), &EngineConfig::default())?;
    // The first ~2,000 tokens of the corpus, cut at a line end.
    let mut chapter = String::new();
    for line in corpus.lines() {
        chapter.push_str(line);
        chapter.push('\n');
        if engine.tokenizer().encode(&chapter, false).len() >= 2000 {
            break;
        }
    }
    let request = |text: &str| GenerateRequest { max_tokens: 16, sampling: SamplingConfig::greedy(), seed: Some(1), ..GenerateRequest::new(Prompt::Text(text.to_string())) };
    let first = engine.generate(&request(&chapter), |_| true)?;
    // The writer rewrites the last line and asks again.
    let cut = chapter.trim_end().rfind('\n').unwrap_or(0);
    let edited = format!("{}\nAnd so the night went on, and no one slept.\n", &chapter[..cut]);
    let second = engine.generate(&request(&edited), |_| true)?;
    let (a, b) = (first.timings.time_to_first_token_ms, second.timings.time_to_first_token_ms);
    println!(
        "{{\"prompt_tokens\": {}, \"first_ttft_ms\": {a:.0}, \"edited_ttft_ms\": {b:.0}, \"ratio\": {:.3}, \"reused_tokens\": {}}}",
        first.prompt_tokens,
        b / a,
        second.timings.prompt_tokens_reused
    );
    Ok(())
}
