//! Prints the logits of every position for a list of token ids, as JSON lines, for numeric
//! comparisons with other engines: `cargo run --release --example logits -- MODEL.gguf 1 2 3`.
//! With `--argmax` first, prints only the most likely next token at each position.

use inkling_engine::{Engine, EngineConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let argmax = args.peek().is_some_and(|a| a == "--argmax");
    if argmax {
        args.next();
    }
    let path = args.next().ok_or("usage: logits MODEL.gguf TOKEN...")?;
    let tokens: Vec<u32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let engine = Engine::load(std::path::Path::new(&path), &EngineConfig { threads: Some(2), ..Default::default() })?;
    let logits = engine.logits(&tokens)?;
    let vocab = logits.len() / tokens.len().max(1);
    if argmax {
        let best: Vec<usize> = logits
            .chunks(vocab)
            .map(|row| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0)
            .collect();
        println!("{}", serde_json::to_string(&best)?);
        return Ok(());
    }
    for row in logits.chunks(vocab) {
        println!("{}", serde_json::to_string(row)?);
    }
    Ok(())
}
