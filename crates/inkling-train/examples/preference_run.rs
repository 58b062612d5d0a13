//! A larger preference run than CI's, for the benchmark notes:
//!
//!   cargo run --release -p inkling-train --example preference_run -- BASE.gguf MINE.txt OTHER.txt PAIRS ITERS
//!
//! Each pair's prompt is a passage of MINE (60 words); the chosen answer is how MINE goes on
//! (the next 40 words), the rejected one 40 words of OTHER: a writer preferring their own
//! voice. Prints held-out preference accuracy before and after, seconds per step and peak
//! memory.

use inkling_train::{LoraConfig, PreferenceConfig, PreferencePair, PreferenceTuning};

fn words(path: &str) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => t.split_whitespace().map(String::from).collect(),
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: preference_run BASE.gguf MINE.txt OTHER.txt PAIRS ITERS");
        std::process::exit(2);
    }
    let (mine, other) = (words(&args[2]), words(&args[3]));
    let n: usize = args[4].parse().unwrap_or(50);
    let iters: usize = args[5].parse().unwrap_or(50);
    let stride = (mine.len() / n.max(1)).max(100);
    let pairs: Vec<PreferencePair> = (0..n)
        .filter(|i| (i + 1) * stride <= mine.len() && i * other.len() / n + 40 <= other.len())
        .map(|i| {
            let (at, theirs) = (i * stride, i * other.len() / n);
            PreferencePair { prompt: mine[at..at + 60].join(" "), chosen: format!(" {}", mine[at + 60..at + 100].join(" ")), rejected: format!(" {}", other[theirs..theirs + 40].join(" ")) }
        })
        .collect();
    let config = PreferenceConfig { lora: LoraConfig { rank: 8, alpha: 16.0, targets: vec!["q".into(), "v".into()] }, iters: Some(iters), ..Default::default() };
    let mut run = match PreferenceTuning::start(std::path::Path::new(&args[1]), &pairs, config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let report = |run: &PreferenceTuning| -> String {
        let rate = |held: bool| run.accuracy(held).map(|a| a.rate() * 100.0).unwrap_or(f64::NAN);
        format!("held-out {:.1}%, training {:.1}%", rate(true), rate(false))
    };
    let (train, held) = run.pairs();
    println!("{train} training pairs, {held} held out; base: {}", report(&run));
    let t0 = std::time::Instant::now();
    let out = std::env::temp_dir().join("preference_run.gguf");
    let mut last = 0.0;
    if let Err(e) = run.run(&out, &mut |inkling_train::preference::PreferenceEvent::Step { loss, .. }| {
        last = loss;
        true
    }) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let per_step = t0.elapsed().as_secs_f64() / run.iters.max(1) as f64;
    let peak_kib: u64 =
        std::fs::read_to_string("/proc/self/status").ok().and_then(|s| s.lines().find(|l| l.starts_with("VmHWM")).and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse().ok())).unwrap_or(0);
    println!("after {} steps ({per_step:.2} s a step of {} pairs, last loss {last:.3}, peak RSS {} MiB): {}", run.iters, run.config.pairs_per_step, peak_kib / 1024, report(&run));
}
