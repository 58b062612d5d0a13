//! How long a profile takes to build and to rank with, and how large it is stored:
//!
//!   cargo run --release -p inkling-voice --example voice_speed -- PAGES.txt
//!
//! Builds a profile of the file, serializes it, then fits 200 passages of about 120 words
//! taken from it.

use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: voice_speed PAGES.txt");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let t = Instant::now();
    let profile = match inkling_voice::Profile::build(&[&text]) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let build = t.elapsed();
    let t = Instant::now();
    let json = serde_json::to_string(&profile).unwrap_or_default();
    let back: inkling_voice::Profile = serde_json::from_str(&json).expect("a profile reads back");
    let store = t.elapsed();
    let words: Vec<&str> = text.split_whitespace().collect();
    let passages: Vec<String> = (0..200).map(|i| words.iter().skip(i * words.len() / 200).take(120).copied().collect::<Vec<_>>().join(" ")).collect();
    let t = Instant::now();
    let total: f64 = passages.iter().map(|p| back.fit(p).distance).sum();
    let fit = t.elapsed();
    println!(
        "{} {} ({} chunks): built in {:.2} s; stored as {:.1} MiB of JSON, written and read back in {:.2} s; 200 fits of 120 words in {:.1} ms ({:.2} ms each; mean distance {:.3})",
        profile.units,
        profile.script.unit(),
        profile.chunks,
        build.as_secs_f64(),
        json.len() as f64 / (1024.0 * 1024.0),
        store.as_secs_f64(),
        fit.as_secs_f64() * 1000.0,
        fit.as_secs_f64() * 1000.0 / 200.0,
        total / 200.0
    );
}
