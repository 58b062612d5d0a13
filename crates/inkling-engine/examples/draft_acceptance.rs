//! Would a small model drafting for a larger one pay on this CPU? Measures what decides it,
//! without building the drafter: how often the draft model's choice is the target's, and
//! what a draft token costs against a target step.
//!
//! For each prompt the target continues greedily; both models then read the prompt and that
//! continuation through the decoding path (`logits_decoding`), and at every position we take
//! - greedy acceptance: the draft's likeliest token is the target's;
//! - sampled acceptance at temperature T: Σ min(p, q), the standard rejection rule's rate;
//!
//! then decode speed of both (same prompt, 64 tokens), and the best expected speed-up over
//! draft lengths k = 1..8 with verification costing `1 + VERIFY_ROW·k` target steps:
//! E[tokens] = (1 - a^(k+1)) / (1 - a) per round of k draft steps and one check.
//!
//!     cargo run --release -p inkling-engine --example draft_acceptance -- TARGET.gguf DRAFT.gguf [TOKENS]
use inkling_engine::{Engine, EngineConfig, GenerateRequest, Prompt, SamplingConfig};
use std::path::PathBuf;

/// A guessed row's share of a decoding step, measured (BENCHMARKS.md, speculative decoding).
const VERIFY_ROW: f64 = 0.16;
const TEMPERATURE: f32 = 0.8;

fn softmax(l: &[f32], t: f32) -> Vec<f64> {
    let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = l.iter().map(|&x| (((x - max) / t) as f64).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

fn argmax(l: &[f32]) -> usize {
    l.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
}

fn decode_ms_per_token(e: &Engine, prompt: &Prompt) -> f64 {
    e.clear_prefix_cache();
    let req = GenerateRequest { max_tokens: 64, sampling: SamplingConfig::greedy(), ignore_eos: true, seed: Some(1), ..GenerateRequest::new(prompt.clone()) };
    let g = e.generate(&req, |_| true).expect("generates");
    1e3 / g.timings.decode_tokens_per_s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: draft_acceptance TARGET.gguf DRAFT.gguf [TOKENS]");
        std::process::exit(2);
    }
    let tokens: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(96);
    let load = |p: &str| Engine::load(&PathBuf::from(p), &EngineConfig::default()).unwrap_or_else(|e| panic!("{p}: {e}"));
    let (target, draft) = (load(&args[1]), load(&args[2]));
    let (vt, vd) = (target.tokenizer().vocab_size(), draft.tokenizer().vocab_size());
    let shared = (0..vt.min(vd) as u32).all(|t| target.tokenizer().token_bytes(t) == draft.tokenizer().token_bytes(t));
    println!("vocabularies: {vt} and {vd} tokens, {}", if shared { "the same tokens" } else { "DIFFERENT tokens: a draft cannot propose for this target" });
    let prompts = [
        "Nobody in Hollow Creek had seen the old mill's wheel turn in forty years, so when it began to creak one October night, the whole town came out in their nightclothes to watch.",
        "那年冬天，外婆的小院里来了一只不怕人的黑猫。它每天清晨准时坐在井沿上，像是在等什么人。",
    ];
    let mut costs = Vec::new();
    for text in prompts {
        let prompt = Prompt::Text(text.to_string());
        target.clear_prefix_cache();
        let req = GenerateRequest { max_tokens: tokens, sampling: SamplingConfig::greedy(), ignore_eos: true, seed: Some(1), ..GenerateRequest::new(prompt.clone()) };
        let g = target.generate(&req, |_| true).expect("target generates");
        let cont = &g.candidates[0].tokens;
        let mut seq = target.prompt_tokens(&prompt).expect("prompt");
        let p_len = seq.len();
        seq.extend(&cont[..cont.len() - 1]);
        let lt = target.logits_decoding(&seq, p_len).expect("target logits");
        let ld = draft.logits_decoding(&seq, p_len).expect("draft logits");
        let (nt, nd) = (lt.len() / seq.len(), ld.len() / seq.len());
        let (mut greedy, mut sampled) = (0usize, 0f64);
        for (i, &want) in cont.iter().enumerate() {
            let row = p_len - 1 + i;
            let (t, d) = (&lt[row * nt..(row + 1) * nt], &ld[row * nd..(row + 1) * nd]);
            greedy += usize::from(argmax(d) == want as usize);
            let (p, q) = (softmax(t, TEMPERATURE), softmax(d, TEMPERATURE));
            sampled += p.iter().zip(&q).map(|(a, b)| a.min(*b)).sum::<f64>();
        }
        let n = cont.len() as f64;
        let (ms_t, ms_d) = (decode_ms_per_token(&target, &prompt), decode_ms_per_token(&draft, &prompt));
        let c = ms_d / ms_t;
        costs.push(c);
        println!("\n{}…", text.chars().take(24).collect::<String>());
        println!("  decode: target {ms_t:.1} ms/token, draft {ms_d:.1} ms/token (a draft step costs {c:.2} of a target step)");
        for (what, a) in [("greedy", greedy as f64 / n), ("sampled T=0.8", sampled / n)] {
            let best = (1..=8)
                .map(|k| {
                    let tokens = (1.0 - a.powi(k + 1)) / (1.0 - a).max(1e-9);
                    (k, tokens / (k as f64 * c + 1.0 + VERIFY_ROW * k as f64))
                })
                .fold((0, 0.0), |b, x| if x.1 > b.1 { x } else { b });
            // The acceptance at which the best k would just break even.
            let even = (1..=99).map(|i| i as f64 / 100.0).find(|&a| (1..=8).any(|k| (1.0 - a.powi(k + 1)) / (1.0 - a) > k as f64 * c + 1.0 + VERIFY_ROW * k as f64)).unwrap_or(1.0);
            println!("  {what:<14} acceptance {:.0}%: best k = {}, expected speed-up {:.2}x; break-even at {:.0}% acceptance", a * 100.0, best.0, best.1, even * 100.0);
        }
    }
}
