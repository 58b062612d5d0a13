//! Prints the logits of every position for a list of token ids, as JSON lines, for numeric
//! comparisons with other engines: `cargo run --release --example logits -- MODEL.gguf 1 2 3`.
//! Options, before the model:
//! - `--argmax`: print only the most likely next token at each position;
//! - `--decode-from N`: run the first N tokens as a prompt and each later one alone, as
//!   decoding does (teacher forcing through the decoding path), instead of all as a prompt.

use inkling_engine::{Engine, EngineConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: logits [--argmax] [--decode-from N] MODEL.gguf TOKEN...";
    let mut args = std::env::args().skip(1).peekable();
    let (mut argmax, mut decode_from) = (false, None);
    loop {
        match args.peek().map(String::as_str) {
            Some("--argmax") => argmax = true,
            Some("--decode-from") => {
                args.next();
                decode_from = Some(args.peek().ok_or(usage)?.parse::<usize>()?);
            }
            _ => break,
        }
        args.next();
    }
    let path = args.next().ok_or(usage)?;
    let tokens: Vec<u32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let engine = Engine::load(std::path::Path::new(&path), &EngineConfig { threads: Some(2), ..Default::default() })?;
    let logits = match decode_from {
        Some(n) => engine.logits_decoding(&tokens, n)?,
        None => engine.logits(&tokens)?,
    };
    let vocab = logits.len() / tokens.len().max(1);
    if argmax {
        let best: Vec<usize> = logits.chunks(vocab).map(|row| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0).collect();
        println!("{}", serde_json::to_string(&best)?);
        return Ok(());
    }
    for row in logits.chunks(vocab) {
        println!("{}", serde_json::to_string(row)?);
    }
    Ok(())
}
