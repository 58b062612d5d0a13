//! Engine mechanics on tiny random-weight models written by the test itself.

use candle_core::quantized::GgmlDType;
use inkling_engine::testing::{TinyModel, TinyVocab};
use inkling_engine::{ChatMessage, Engine, EngineConfig, EngineError, Event, FinishReason, GenerateRequest, Prompt, SamplingConfig};
use std::path::PathBuf;

fn write(m: &TinyModel) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    m.write(&path).unwrap();
    (dir, path)
}

fn engine(m: &TinyModel) -> (tempfile::TempDir, Engine) {
    let (dir, path) = write(m);
    let e = Engine::load(&path, &EngineConfig { threads: Some(2), ..Default::default() }).unwrap();
    (dir, e)
}

fn greedy(prompt: &str, n: usize, max: usize) -> GenerateRequest {
    GenerateRequest { n, max_tokens: max, sampling: SamplingConfig::greedy(), seed: Some(1), ignore_eos: true, ..GenerateRequest::new(Prompt::Text(prompt.into())) }
}

#[test]
fn every_family_and_weight_type_loads_and_generates() {
    let cases = [
        ("llama", TinyVocab::Bpe, GgmlDType::Q8_0),
        ("llama", TinyVocab::Bpe, GgmlDType::Q4_1),
        ("llama", TinyVocab::Bpe, GgmlDType::Q4_0),
        ("llama", TinyVocab::Bpe, GgmlDType::Q5_0),
        ("llama", TinyVocab::Bpe, GgmlDType::F16),
        ("qwen2", TinyVocab::Bpe, GgmlDType::Q8_0),
        ("qwen3", TinyVocab::Bpe, GgmlDType::F32),
        ("gemma3", TinyVocab::Spm, GgmlDType::Q8_0),
        ("gemma3", TinyVocab::Spm, GgmlDType::Q4K),
    ];
    for (arch, vocab, dtype) in cases {
        let n_embd = if dtype == GgmlDType::Q4K { 256 } else { 64 };
        let m = TinyModel { arch, vocab, dtype, n_embd, n_ff: n_embd * 2, ..TinyModel::default() };
        let (_d, e) = engine(&m);
        assert_eq!(e.info().architecture, arch);
        let g = e.generate(&greedy("the cat and the hat", 1, 12), |_| true).unwrap();
        let c = &g.candidates[0];
        assert_eq!(c.completion_tokens, 12, "{arch} {dtype:?}");
        assert_eq!(c.finish_reason, FinishReason::Length);
        // Logits are finite and differ between positions.
        let toks = e.prompt_tokens(&Prompt::Text("the cat".into())).unwrap();
        let l = e.logits(&toks).unwrap();
        assert!(l.iter().all(|v| v.is_finite()), "{arch} {dtype:?}");
    }
}

#[test]
fn candidates_share_one_prefill_and_batched_decoding_matches_single() {
    let (_d, e) = engine(&TinyModel::default());
    let one = e.generate(&greedy("the weather and the sea", 1, 16), |_| true).unwrap();
    e.clear_prefix_cache();
    let three = e.generate(&greedy("the weather and the sea", 3, 16), |_| true).unwrap();
    assert_eq!(three.candidates.len(), 3);
    // The prompt was computed once, not three times.
    assert_eq!(three.timings.prompt_tokens_computed, three.prompt_tokens);
    for c in &three.candidates {
        assert_eq!(c.tokens, one.candidates[0].tokens, "greedy candidates decoded as a batch match a lone decode");
    }
}

/// Candidates read their prompt's cache from one shared prefix (one attention task per chunk
/// for all of them): every candidate's log-probabilities are bit for bit those of a lone
/// decode, over a prompt of several attention chunks, on a full-attention and on a
/// sliding-window model, and an edit that cuts into the shared prompt then reuses it.
#[test]
fn candidates_over_a_shared_prompt_match_a_lone_decode_bit_for_bit() {
    for m in [TinyModel { context: 512, ..TinyModel::default() }, TinyModel { arch: "gemma3", vocab: TinyVocab::Spm, context: 512, ..TinyModel::default() }] {
        let (_d, e) = engine(&m);
        // Over two chunks of 128 positions.
        let mut prompt = String::from("the sea ");
        while e.prompt_tokens(&Prompt::Text(prompt.clone())).unwrap().len() < 300 {
            prompt.push_str("the sea and the wind and the rain and the cat ");
        }
        let req = |n| GenerateRequest { logprobs: Some(2), ..greedy(&prompt, n, 12) };
        let one = e.generate(&req(1), |_| true).unwrap();
        e.clear_prefix_cache();
        let three = e.generate(&req(3), |_| true).unwrap();
        for c in &three.candidates {
            assert_eq!(c.tokens, one.candidates[0].tokens, "{}", m.arch);
            for (a, b) in c.logprobs.iter().zip(&one.candidates[0].logprobs) {
                assert_eq!(a.logprob.to_bits(), b.logprob.to_bits(), "{}: shared-prompt candidate differs from a lone decode", m.arch);
                assert_eq!(a.top, b.top);
            }
        }
        // Sampled candidates differ from each other, so each reads the shared prompt with its
        // own queries: candidate i is what a lone request with seed + i gives.
        let sampled = |n, seed| GenerateRequest { seed: Some(seed), sampling: SamplingConfig { temperature: 1.5, top_k: 0, top_p: 1.0, min_p: 0.0, ..SamplingConfig::default() }, ..req(n) };
        e.clear_prefix_cache();
        let together = e.generate(&sampled(3, 40), |_| true).unwrap();
        assert!(together.candidates[0].tokens != together.candidates[1].tokens || together.candidates[1].tokens != together.candidates[2].tokens);
        for (i, c) in together.candidates.iter().enumerate() {
            e.clear_prefix_cache();
            let alone = e.generate(&sampled(1, 40 + i as u64), |_| true).unwrap();
            assert_eq!(c.tokens, alone.candidates[0].tokens, "{}: candidate {i}", m.arch);
            let bits = |c: &inkling_engine::Candidate| c.logprobs.iter().map(|l| l.logprob.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(c), bits(&alone.candidates[0]), "{}: candidate {i}", m.arch);
        }
        // The kept cache came from a fork; an edit inside the prompt cuts into its shared part.
        let edited = format!("{}the dog", &prompt[..prompt.len() / 2]);
        let warm = e.generate(&req(2), |_| true).unwrap();
        assert!(warm.timings.prompt_tokens_reused > 0);
        let warm = e.generate(&GenerateRequest { logprobs: Some(2), ..greedy(&edited, 2, 12) }, |_| true).unwrap();
        assert!(warm.timings.prompt_tokens_reused > 100, "reused {}", warm.timings.prompt_tokens_reused);
        e.clear_prefix_cache();
        let cold = e.generate(&GenerateRequest { logprobs: Some(2), ..greedy(&edited, 2, 12) }, |_| true).unwrap();
        for (w, c) in warm.candidates.iter().zip(&cold.candidates) {
            assert_eq!(w.tokens, c.tokens, "{}", m.arch);
        }
    }
}

#[test]
fn sampled_candidates_differ_and_seeds_reproduce() {
    let (_d, e) = engine(&TinyModel::default());
    let req = GenerateRequest {
        n: 3,
        max_tokens: 24,
        seed: Some(42),
        ignore_eos: true,
        sampling: SamplingConfig { temperature: 1.2, top_k: 0, top_p: 1.0, min_p: 0.0, ..SamplingConfig::default() },
        ..GenerateRequest::new(Prompt::Text("and the".into()))
    };
    let a = e.generate(&req, |_| true).unwrap();
    let b = e.generate(&req, |_| true).unwrap();
    assert_eq!(a.seed, 42);
    let texts: Vec<&str> = a.candidates.iter().map(|c| c.text.as_str()).collect();
    assert!(texts[0] != texts[1] || texts[1] != texts[2], "three samples should not all agree: {texts:?}");
    for (x, y) in a.candidates.iter().zip(&b.candidates) {
        assert_eq!(x.tokens, y.tokens, "same seed, same tokens");
    }
}

#[test]
fn a_prompt_that_extends_the_last_one_reuses_its_cache_and_gives_the_same_result() {
    let (_d, e) = engine(&TinyModel::default());
    let base = "the sea and the wind and the rain";
    e.generate(&greedy(base, 1, 4), |_| true).unwrap();
    let edited = format!("{base} and then the");
    let warm = e.generate(&greedy(&edited, 1, 8), |_| true).unwrap();
    assert!(warm.timings.prompt_tokens_reused > 0);
    assert!(warm.timings.prompt_tokens_computed < warm.prompt_tokens);
    e.clear_prefix_cache();
    let cold = e.generate(&greedy(&edited, 1, 8), |_| true).unwrap();
    assert_eq!(cold.timings.prompt_tokens_reused, 0);
    assert_eq!(warm.candidates[0].tokens, cold.candidates[0].tokens);
}

#[test]
fn streamed_events_add_up_to_the_result_and_are_whole_characters() {
    let (_d, e) = engine(&TinyModel { vocab: TinyVocab::Spm, arch: "gemma3", ..TinyModel::default() });
    let req = GenerateRequest { n: 2, max_tokens: 40, seed: Some(3), ignore_eos: true, ..GenerateRequest::new(Prompt::Text("今天天气很好".into())) };
    let mut streamed = vec![String::new(); 2];
    let mut finished = vec![0; 2];
    let g = e
        .generate(&req, |ev| {
            match ev {
                Event::Text { candidate, text, .. } => streamed[candidate].push_str(text),
                Event::Finished { candidate, .. } => finished[candidate] += 1,
                Event::Prefill { .. } => {}
            }
            true
        })
        .unwrap();
    assert_eq!(finished, vec![1, 1]);
    for c in &g.candidates {
        assert_eq!(streamed[c.index], c.text);
        assert!(!c.text.contains('\u{FFFD}'), "{:?}", c.text);
    }
}

/// Streamed token reports match the whole answer's, each token once and in order, even when
/// stop strings and banned phrases hold text back and take tokens back.
#[test]
fn streamed_token_reports_add_up_to_the_answers() {
    let (_d, e) = engine(&TinyModel { vocab: TinyVocab::Spm, arch: "gemma3", ..TinyModel::default() });
    let plain = GenerateRequest { n: 2, max_tokens: 40, seed: Some(5), ignore_eos: true, logprobs: Some(4), ..GenerateRequest::new(Prompt::Text("今天天气很好".into())) };
    let first = e.generate(&plain, |_| true).unwrap();
    // Ban a piece of what it wrote and stop at another, so both paths run.
    let text = &first.candidates[0].text;
    let chars: Vec<char> = text.chars().collect();
    let visible = |c: &char| !c.is_whitespace() && !c.is_control();
    let at = (1..chars.len() - 5).find(|&i| chars[i..i + 2].iter().all(visible)).expect("two visible characters in a row");
    let ban: String = chars[at..at + 2].iter().collect();
    let stop: String = chars[chars.len() - 3..].iter().collect();
    let req = GenerateRequest { banned_strings: vec![ban], stop: vec![stop], ..plain };
    let mut streamed: Vec<Vec<inkling_engine::TokenLogprob>> = vec![Vec::new(); 2];
    let mut texts = vec![String::new(); 2];
    let g = e
        .generate(&req, |ev| {
            if let Event::Text { candidate, text, logprobs } = ev {
                texts[candidate].push_str(text);
                streamed[candidate].extend_from_slice(logprobs);
            }
            true
        })
        .unwrap();
    assert!(g.timings.ban_rewinds > 0, "the ban took tokens back: {text:?} {:?}", g.candidates[0].text);
    for c in &g.candidates {
        assert_eq!(texts[c.index], c.text);
        assert_eq!(c.logprobs.len(), c.tokens.len());
        assert_eq!(streamed[c.index], c.logprobs, "candidate {}", c.index);
        for lp in &c.logprobs {
            assert_eq!(lp.top.len(), 4);
            // After the default samplers the drawn token had some chance, and what they left
            // is a distribution.
            assert!(lp.sampled_logprob.is_finite() && lp.sampled_logprob <= 0.0);
            assert!(lp.sampled_top.iter().map(|(_, l)| l.exp()).sum::<f32>() <= 1.0 + 1e-4);
        }
    }
}

/// Random weights sample byte tokens freely, so without the UTF-8 mask their output is full
/// of sequences that are not text (U+FFFD). With it, every candidate is valid text, on both
/// a byte-level (GPT-2) and a byte-fallback (SentencePiece) vocabulary.
#[test]
fn sampled_text_is_always_valid_utf8() {
    for vocab in [TinyVocab::Bpe, TinyVocab::Spm] {
        let (_d, e) = engine(&TinyModel { vocab, ..TinyModel::default() });
        for seed in 0..4 {
            let req = GenerateRequest { n: 2, max_tokens: 60, seed: Some(seed), ignore_eos: true, ..GenerateRequest::new(Prompt::Text("雨下得很大".into())) };
            for c in e.generate(&req, |_| true).unwrap().candidates {
                assert!(!c.text.contains('\u{FFFD}'), "{vocab:?} seed {seed}: {:?}", c.text);
            }
        }
    }
}

#[test]
fn stop_strings_end_a_candidate_and_never_appear() {
    let (_d, e) = engine(&TinyModel::default());
    // Find text the model produces greedily, then stop on a piece of it.
    let free = e.generate(&greedy("the", 1, 30), |_| true).unwrap();
    let text = free.candidates[0].text.clone();
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() > 6, "tiny model produced {text:?}");
    let stop: String = chars[3..6].iter().collect();
    let mut req = greedy("the", 1, 30);
    req.stop = vec![stop.clone()];
    let g = e.generate(&req, |_| true).unwrap();
    let c = &g.candidates[0];
    assert_eq!(c.finish_reason, FinishReason::Stop);
    assert!(!c.text.contains(&stop));
    assert!(text.starts_with(&c.text));
}

#[test]
fn returning_false_cancels_and_keeps_the_text_so_far() {
    let (_d, e) = engine(&TinyModel::default());
    let mut events = 0;
    let g = e
        .generate(&greedy("the", 2, 50), |ev| {
            if matches!(ev, Event::Text { .. }) {
                events += 1;
            }
            events < 3
        })
        .unwrap();
    for c in &g.candidates {
        assert_eq!(c.finish_reason, FinishReason::Cancelled);
        assert!(c.completion_tokens < 50);
    }
    assert!(g.candidates.iter().any(|c| !c.text.is_empty()));
}

/// A prompt of `n` tokens or a little more.
fn long_prompt(e: &Engine, n: usize) -> String {
    let mut text = String::from("the cat and the hat sat by the sea, ");
    while e.prompt_tokens(&Prompt::Text(text.clone())).unwrap().len() < n {
        text.push_str("the cat and the hat sat by the sea, ");
    }
    text
}

#[test]
fn a_long_prompt_reports_its_progress_chunk_by_chunk() {
    let (_d, e) = engine(&TinyModel { context: 2048, ..TinyModel::default() });
    let prompt = long_prompt(&e, 700);
    let total = e.prompt_tokens(&Prompt::Text(prompt.clone())).unwrap().len();
    let mut seen = Vec::new();
    let mut text_before_prefill_ended = false;
    e.generate(&greedy(&prompt, 1, 4), |ev| {
        match ev {
            Event::Prefill { cached, processed, total } => seen.push((cached, processed, total)),
            Event::Text { .. } => text_before_prefill_ended |= seen.last().is_none_or(|&(_, p, t)| p < t),
            Event::Finished { .. } => {}
        }
        true
    })
    .unwrap();
    assert!(!text_before_prefill_ended, "the prompt is read in full before any text");
    assert_eq!(seen.len(), total.div_ceil(256), "one report per prefill chunk: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "progress only moves forward: {seen:?}");
    assert_eq!(seen.last(), Some(&(0, total, total)));
    // A prompt that extends this one reports the reused part as cached.
    let longer = format!("{prompt} and then the rain");
    let mut first = None;
    e.generate(&greedy(&longer, 1, 2), |ev| {
        if let Event::Prefill { cached, .. } = ev {
            first.get_or_insert(cached);
        }
        true
    })
    .unwrap();
    assert!(first.is_some_and(|c| c > 600), "cached {first:?} of {total}");
}

#[test]
fn cancelling_during_the_prefill_stops_it_and_keeps_what_was_read() {
    let (_d, e) = engine(&TinyModel { context: 2048, ..TinyModel::default() });
    let prompt = long_prompt(&e, 700);
    let mut reports = 0;
    let g = e
        .generate(&greedy(&prompt, 2, 8), |ev| {
            if matches!(ev, Event::Prefill { .. }) {
                reports += 1;
            }
            // Stop after the first chunk.
            !matches!(ev, Event::Prefill { .. })
        })
        .unwrap();
    assert_eq!(reports, 1, "nothing more is read once the caller says stop");
    assert_eq!(g.timings.prompt_tokens_computed, 256);
    for c in &g.candidates {
        assert_eq!(c.finish_reason, FinishReason::Cancelled);
        assert_eq!(c.completion_tokens, 0);
        assert!(c.text.is_empty());
    }
    // Asking again reads only what the cancelled request had not, and gives what a cold
    // start gives.
    let resumed = e.generate(&greedy(&prompt, 1, 8), |_| true).unwrap();
    assert_eq!(resumed.timings.prompt_tokens_reused, 256);
    e.clear_prefix_cache();
    let cold = e.generate(&greedy(&prompt, 1, 8), |_| true).unwrap();
    assert_eq!(resumed.candidates[0].tokens, cold.candidates[0].tokens);
}

#[test]
fn chat_prompts_use_the_template_and_special_tokens() {
    let (_d, e) = engine(&TinyModel::default());
    let toks = e.prompt_tokens(&Prompt::Chat(vec![ChatMessage::new("user", "hi")])).unwrap();
    let start = e.tokenizer().token_id("<|im_start|>").unwrap();
    assert_eq!(toks[0], start, "the control token is one token");
    // In plain text the same characters are not a control token.
    let plain = e.prompt_tokens(&Prompt::Text("<|im_start|>".into())).unwrap();
    assert!(!plain.contains(&start));
}

#[test]
fn bad_inputs_get_clear_errors() {
    let (_d, e) = engine(&TinyModel { context: 64, ..TinyModel::default() });
    let long = "the cat ".repeat(100);
    let err = e.generate(&greedy(&long, 1, 4), |_| true).unwrap_err();
    assert!(matches!(err, EngineError::PromptTooLong { .. }), "{err}");
    assert!(err.to_string().contains("context window"));
    assert!(matches!(e.generate(&greedy("", 1, 4), |_| true).unwrap_err(), EngineError::EmptyPrompt));
    let err = e.generate(&greedy("x", 0, 4), |_| true).unwrap_err();
    assert!(err.to_string().contains("n must be"));
    let mut bad = greedy("x", 1, 4);
    bad.sampling.top_p = 2.0;
    assert!(e.generate(&bad, |_| true).unwrap_err().to_string().contains("top_p"));
    // A generation near the end of the window stops at the window, not with a panic.
    let g = e.generate(&greedy(&"the ".repeat(20), 1, 1000), |_| true).unwrap();
    assert_eq!(g.candidates[0].finish_reason, FinishReason::Length);
    assert!(g.prompt_tokens + g.candidates[0].completion_tokens <= 64);
}

#[test]
fn missing_truncated_corrupt_and_unsupported_files_are_named() {
    let cfg = EngineConfig::default();
    let err = Engine::load(std::path::Path::new("/nonexistent/model.gguf"), &cfg).err().unwrap();
    assert!(matches!(err, EngineError::ModelNotFound { .. }));
    assert!(err.to_string().contains("/nonexistent/model.gguf"));
    assert_eq!(err.remedy(), Some(inkling_engine::Remedy::ModelFile), "the caller is told to name another file");

    let (dir, path) = write(&TinyModel::default());
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = Engine::load(&truncated, &cfg).err().unwrap();
    assert!(matches!(err, EngineError::BadGguf { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");

    let corrupt = dir.path().join("corrupt.gguf");
    std::fs::write(&corrupt, b"this is not a model at all, just some text").unwrap();
    assert!(matches!(Engine::load(&corrupt, &cfg).err().unwrap(), EngineError::BadGguf { .. }));

    let other = dir.path().join("other.gguf");
    TinyModel { arch: "gptj", ..TinyModel::default() }.write(&other).unwrap();
    let err = Engine::load(&other, &cfg).err().unwrap();
    assert!(matches!(err, EngineError::UnsupportedArchitecture { .. }), "{err}");
    assert!(err.to_string().contains("gptj"));

    // A quantization inkling does not run (IQ2_XXS, type 16): patch the first tensor's type.
    let mut patched = bytes.clone();
    let name = b"token_embd.weight";
    let at = patched.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let n_dims = u32::from_le_bytes(patched[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * n_dims;
    patched[ty..ty + 4].copy_from_slice(&16u32.to_le_bytes());
    let iq = dir.path().join("iq.gguf");
    std::fs::write(&iq, &patched).unwrap();
    let err = Engine::load(&iq, &cfg).err().unwrap();
    assert!(err.to_string().to_lowercase().contains("quantization"), "{err}");
}

#[test]
fn a_json_schema_constrains_every_candidate_to_parse() {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "role": {"enum": ["hero", "villain", "mentor"]},
            "traits": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 3},
            "age": {"type": "integer"}
        }
    });
    for vocab in [TinyVocab::Bpe, TinyVocab::Spm] {
        let arch = if vocab == TinyVocab::Spm { "gemma3" } else { "llama" };
        let (_d, e) = engine(&TinyModel { arch, vocab, ..TinyModel::default() });
        for seed in 0..4 {
            let req = GenerateRequest { n: 3, max_tokens: 400, seed: Some(seed), json_schema: Some(schema.clone()), ..GenerateRequest::new(Prompt::Text("the".into())) };
            let g = e.generate(&req, |_| true).unwrap();
            for c in &g.candidates {
                let v: serde_json::Value = serde_json::from_str(&c.text).unwrap_or_else(|err| panic!("{arch} seed {seed}: {err}: {:?}", c.text));
                assert_eq!(c.finish_reason, FinishReason::Stop);
                assert!(v["name"].as_str().is_some_and(|s| !s.is_empty() && s.chars().count() <= 12));
                assert!(["hero", "villain", "mentor"].contains(&v["role"].as_str().unwrap()));
                assert!((1..=3).contains(&v["traits"].as_array().unwrap().len()));
                assert!(v["age"].is_i64());
            }
        }
    }
    let bad = GenerateRequest { json_schema: Some(serde_json::json!({"type": "number"})), ..greedy("the", 1, 4) };
    let (_d, e) = engine(&TinyModel::default());
    assert!(matches!(e.generate(&bad, |_| true), Err(EngineError::InvalidRequest(_))));
}

#[test]
fn logprobs_report_the_sampled_token_and_its_likeliest_rivals() {
    let (_d, e) = engine(&TinyModel::default());
    let req = GenerateRequest { logprobs: Some(3), ..greedy("the", 2, 6) };
    let g = e.generate(&req, |_| true).unwrap();
    for c in &g.candidates {
        assert_eq!(c.logprobs.len(), c.tokens.len());
        for (lp, &t) in c.logprobs.iter().zip(&c.tokens) {
            assert_eq!(lp.token, t);
            assert_eq!(lp.top.len(), 3);
            // Greedy picks the likeliest token, and probabilities of rivals add up to at most 1.
            assert_eq!(lp.top[0].0, t);
            assert!((lp.top[0].1 - lp.logprob).abs() < 1e-6);
            assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
            assert!(lp.logprob <= 0.0 && lp.top.iter().map(|(_, l)| l.exp()).sum::<f32>() <= 1.0 + 1e-5);
        }
    }
    // Off by default; too many alternatives is a clear error.
    assert!(e.generate(&greedy("the", 1, 3), |_| true).unwrap().candidates[0].logprobs.is_empty());
    let many = GenerateRequest { logprobs: Some(21), ..greedy("the", 1, 3) };
    assert!(matches!(e.generate(&many, |_| true), Err(EngineError::InvalidRequest(m)) if m.contains("top_logprobs")));
}

#[test]
fn requests_decoded_together_give_what_each_gives_alone() {
    let (_d, e) = engine(&TinyModel::default());
    let sampled = SamplingConfig { temperature: 1.1, top_k: 0, top_p: 1.0, min_p: 0.0, ..SamplingConfig::default() };
    let requests = vec![
        greedy("the", 2, 7),
        GenerateRequest { n: 3, max_tokens: 5, seed: Some(9), sampling: sampled, ignore_eos: true, ..GenerateRequest::new(Prompt::Text("and the the".into())) },
        GenerateRequest { n: 0, ..greedy("bad", 1, 3) },
        greedy("a longer prompt of the and", 1, 11),
    ];
    let alone: Vec<_> = requests
        .iter()
        .map(|r| {
            e.clear_prefix_cache();
            e.generate(r, |_| true)
        })
        .collect();
    e.clear_prefix_cache();
    let mut seen = vec![String::new(); requests.len()];
    let together = e.generate_batch(&requests, &mut |ri, ev| {
        if let Event::Text { text, .. } = ev {
            seen[ri].push_str(text);
        }
        true
    });
    assert_eq!(together.len(), 4);
    assert!(matches!(&together[2], Err(EngineError::InvalidRequest(_))), "a bad request fails alone");
    for (i, (a, b)) in alone.iter().zip(&together).enumerate().filter(|(i, _)| *i != 2) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert_eq!(a.candidates.len(), b.candidates.len(), "request {i}");
        for (x, y) in a.candidates.iter().zip(&b.candidates) {
            assert_eq!(x.tokens, y.tokens, "request {i} candidate {}", x.index);
        }
        let streamed: usize = b.candidates.iter().map(|c| c.text.len()).sum();
        assert_eq!(seen[i].len(), streamed, "request {i}: every text event reached its own request");
    }
    // Cancelling one request leaves the others running to their end.
    e.clear_prefix_cache();
    let two = vec![greedy("the weather and the sea", 1, 20), greedy("and", 1, 20)];
    let out = e.generate_batch(&two, &mut |ri, _| ri != 0);
    let (a, b) = (out[0].as_ref().unwrap(), out[1].as_ref().unwrap());
    assert_eq!(a.candidates[0].finish_reason, FinishReason::Cancelled);
    assert!(a.candidates[0].completion_tokens < 20);
    assert_eq!(b.candidates[0].completion_tokens, 20);
}

/// `logits_decoding` runs the continuation as decoding does: its choices are greedy
/// decoding's, and its prompt positions are `logits`'.
#[test]
fn teacher_forcing_through_the_decoding_path_reproduces_greedy_decoding() {
    let (_d, e) = engine(&TinyModel::default());
    let prompt = e.prompt_tokens(&Prompt::Text("the weather and the sea".into())).unwrap();
    let g = e.generate(&greedy("the weather and the sea", 1, 10), |_| true).unwrap();
    let generated = &g.candidates[0].tokens;
    let mut seq = prompt.clone();
    seq.extend(&generated[..generated.len() - 1]);
    let stepped = e.logits_decoding(&seq, prompt.len()).unwrap();
    let vocab = stepped.len() / seq.len();
    let argmax = |row: &[f32]| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i as u32, v) } else { b }).0;
    let choices: Vec<u32> = stepped.chunks(vocab).skip(prompt.len() - 1).map(argmax).collect();
    assert_eq!(&choices, generated);
    let batched = e.logits(&seq).unwrap();
    assert_eq!(stepped[..prompt.len() * vocab], batched[..prompt.len() * vocab]);
    assert!(matches!(e.logits_decoding(&[u32::MAX], 1), Err(EngineError::InvalidRequest(_))));
}

/// Speculative decoding by prompt lookup changes how many forward passes the text takes,
/// never the text: greedy and sampled candidates, batched requests, stop strings, JSON
/// schemas and logprobs give bit for bit what plain decoding gives, and guesses are kept.
#[test]
fn speculative_lookup_gives_plain_decodings_text_with_fewer_passes() {
    use inkling_engine::{Generation, Speculation};
    let sampled = SamplingConfig { temperature: 0.9, top_k: 0, top_p: 1.0, min_p: 0.0, ..SamplingConfig::default() };
    let schema = serde_json::json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 24}, "age": {"type": "integer"}}});
    for m in [TinyModel { context: 512, ..TinyModel::default() }, TinyModel { arch: "gemma3", vocab: TinyVocab::Spm, context: 512, ..TinyModel::default() }] {
        let (_d, e) = engine(&m);
        // A prompt past one 128-position attention chunk, whose words repeat (what a
        // rewrite's answer does with its input).
        let mut prompt = String::from("the sea ");
        while e.prompt_tokens(&Prompt::Text(prompt.clone())).unwrap().len() < 160 {
            prompt.push_str("the sea and the wind and the rain and the cat ");
        }
        let requests = vec![
            GenerateRequest { logprobs: Some(2), ..greedy(&prompt, 1, 60) },
            GenerateRequest { n: 3, seed: Some(5), sampling: sampled.clone(), logprobs: Some(1), ..greedy(&prompt, 3, 40) },
            GenerateRequest { stop: vec!["the cat".into()], ignore_eos: false, ..greedy(&prompt, 2, 50) },
            GenerateRequest { json_schema: Some(schema.clone()), ignore_eos: false, ..greedy("the", 2, 80) },
            GenerateRequest { min_tokens: 8, ignore_eos: false, seed: Some(3), sampling: sampled.clone(), ..greedy("and the and the", 2, 30) },
        ];
        let run = |reqs: &[GenerateRequest], mode: Speculation| -> Vec<Generation> {
            e.clear_prefix_cache();
            let reqs: Vec<GenerateRequest> = reqs.iter().map(|r| GenerateRequest { speculative: mode, ..r.clone() }).collect();
            e.generate_batch(&reqs, &mut |_, _| true).into_iter().map(|g| g.unwrap()).collect()
        };
        let bits = |c: &inkling_engine::Candidate| c.logprobs.iter().map(|l| (l.token, l.logprob.to_bits(), l.top.clone())).collect::<Vec<_>>();
        let check = |plain: &[Generation], fast: &[Generation], what: &str| {
            for (ri, (p, f)) in plain.iter().zip(fast).enumerate() {
                for (a, b) in p.candidates.iter().zip(&f.candidates) {
                    assert_eq!(a.tokens, b.tokens, "{} {what}: request {ri} candidate {}", m.arch, a.index);
                    assert_eq!(a.text, b.text);
                    assert_eq!(a.finish_reason, b.finish_reason);
                    assert_eq!(bits(a), bits(b), "{} {what}: request {ri} logprobs", m.arch);
                }
                assert_eq!(p.timings.draft_tokens, 0);
            }
        };
        // Each alone, and all together in one batch.
        for (ri, r) in requests.iter().enumerate() {
            let plain = run(std::slice::from_ref(r), Speculation::Off);
            let fast = run(std::slice::from_ref(r), Speculation::Lookup);
            check(&plain, &fast, &format!("alone {ri}"));
        }
        let plain = run(&requests, Speculation::Off);
        let fast = run(&requests, Speculation::Lookup);
        check(&plain, &fast, "batched");
        let drafted: usize = fast.iter().map(|g| g.timings.draft_tokens).sum();
        let kept: usize = fast.iter().map(|g| g.timings.draft_accepted).sum();
        assert!(kept > 0 && kept <= drafted, "{}: {kept} of {drafted} guesses kept", m.arch);
        // The greedy request over the repeating prompt keeps most of its guesses.
        let g = &fast[0].timings;
        assert!(g.draft_accepted * 2 > g.draft_tokens, "{}: {} of {} kept", m.arch, g.draft_accepted, g.draft_tokens);
        // The cache kept for the next prompt holds only kept tokens: a follow-up that
        // extends the answer reuses it and matches a cold run.
        let follow = format!("{prompt}{} and", fast[0].candidates[0].text);
        let warm = e.generate(&GenerateRequest { speculative: Speculation::Lookup, ..greedy(&follow, 1, 20) }, |_| true).unwrap();
        assert!(warm.timings.prompt_tokens_reused > 0);
        e.clear_prefix_cache();
        let cold = e.generate(&greedy(&follow, 1, 20), |_| true).unwrap();
        assert_eq!(warm.candidates[0].tokens, cold.candidates[0].tokens, "{}", m.arch);
    }
}

/// Two ASCII letters or digits from the middle of `text`, to ban.
fn phrase_from(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    (chars.len() / 3..chars.len().saturating_sub(1))
        .map(|i| chars[i..i + 2].iter().collect::<String>())
        .find(|w: &String| w.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| panic!("no two ASCII letters in a row in {text:?}"))
}

#[test]
fn banned_text_never_appears_and_the_text_before_it_is_kept() {
    for m in [TinyModel::default(), TinyModel { arch: "gemma3", vocab: TinyVocab::Spm, ..TinyModel::default() }] {
        let (_d, e) = engine(&m);
        let plain = e.generate(&greedy("the", 1, 60), |_| true).unwrap().candidates.remove(0);
        let phrase = phrase_from(&plain.text).to_lowercase();
        // As a pattern, so it matches inside words too (a phrase would match whole words).
        let request = GenerateRequest { banned_regex: vec![phrase.clone()], ..greedy("the", 1, 60) };
        let mut streamed = String::new();
        let g = e
            .generate(&request, |ev| {
                if let Event::Text { text, .. } = ev {
                    streamed.push_str(text);
                }
                true
            })
            .unwrap();
        let c = &g.candidates[0];
        assert!(!c.text.to_lowercase().contains(&phrase), "{}: {phrase:?} in {:?}", m.arch, c.text);
        assert_eq!(streamed, c.text, "streamed text is never taken back");
        assert!(g.timings.ban_rewinds > 0 && g.timings.ban_rewound_tokens >= g.timings.ban_rewinds);
        assert_eq!(c.finish_reason, FinishReason::Length);
        assert_eq!(c.tokens.len(), 60);
        // Up to the token the first match began in, the answer is the plain one.
        let first = plain.text.to_lowercase().find(&phrase).unwrap();
        let mut at = 0;
        let token_start = plain
            .tokens
            .iter()
            .map(|&t| {
                let s = at;
                at += e.tokenizer().token_bytes(t).len();
                s
            })
            .take_while(|&s| s <= first)
            .last()
            .unwrap();
        assert_eq!(c.text.as_bytes()[..token_start], plain.text.as_bytes()[..token_start], "{}", m.arch);
        assert_ne!(c.tokens, plain.tokens);
    }
}

#[test]
fn bans_keep_seeds_exact_in_any_company_and_with_speculation() {
    use inkling_engine::Speculation;
    let (_d, e) = engine(&TinyModel::default());
    let sampled = SamplingConfig { temperature: 0.9, top_k: 0, top_p: 1.0, min_p: 0.0, ..SamplingConfig::default() };
    let plain = e.generate(&GenerateRequest { n: 3, seed: Some(4), sampling: sampled.clone(), ..greedy("the", 3, 40) }, |_| true).unwrap();
    let bans: Vec<String> = plain.candidates.iter().map(|c| phrase_from(&c.text)).collect();
    let banned = GenerateRequest { n: 3, seed: Some(4), sampling: sampled, banned_regex: bans.clone(), ..greedy("the", 3, 40) };
    let alone = e.generate(&banned, |_| true).unwrap();
    assert!(alone.timings.ban_rewinds > 0);
    for c in &alone.candidates {
        for b in &bans {
            assert!(!c.text.to_lowercase().contains(&b.to_lowercase()), "{b:?} in {:?}", c.text);
        }
    }
    let again = e.generate(&banned, |_| true).unwrap();
    let company = e.generate_batch(&[greedy("and the", 2, 30), banned.clone()], &mut |_, _| true).pop().unwrap().unwrap();
    let fast = e.generate(&GenerateRequest { speculative: Speculation::Lookup, ..banned.clone() }, |_| true).unwrap();
    for other in [&again, &company, &fast] {
        for (a, b) in alone.candidates.iter().zip(&other.candidates) {
            assert_eq!(a.tokens, b.tokens);
            assert_eq!(a.text, b.text);
        }
    }
}

#[test]
fn when_every_way_on_is_banned_the_candidate_ends_and_says_so() {
    let (_d, e) = engine(&TinyModel::default());
    let request = GenerateRequest { banned_regex: vec!["(?s).".into()], min_tokens: 5, ignore_eos: false, ..greedy("the", 2, 20) };
    let g = e.generate(&request, |_| true).unwrap();
    for c in &g.candidates {
        assert_eq!(c.finish_reason, FinishReason::Banned);
        assert_eq!(c.text, "");
    }
    assert!(g.timings.ban_rewinds >= 2 * inkling_engine::engine::MAX_TRIES_PER_POSITION);
    let bad = e.generate(&GenerateRequest { banned_regex: vec!["(".into()], ..greedy("the", 1, 5) }, |_| true).unwrap_err().to_string();
    assert!(bad.contains("banned_regex") && bad.contains("not a valid"), "{bad}");
}

/// A ban hit in the answer's first token: the candidate samples its first token again from
/// the prompt's logits, and goes on from a cache that holds the new start, not the token
/// taken back. The oracle: a plain run that may never pick that token gives the same tokens
/// and the same log-probabilities, bit for bit.
#[test]
fn a_ban_in_the_first_token_restarts_the_answer_cleanly() {
    let (_d, e) = engine(&TinyModel::default());
    let prompt = "the weather and the sea";
    let plain = e.generate(&greedy(prompt, 1, 20), |_| true).unwrap().candidates.remove(0);
    // The whole first token's text, at the very start of the answer only: the match is
    // decided by the next token's first byte, after the first token went into the cache.
    let first = plain.tokens[0];
    let head = String::from_utf8(e.tokenizer().token_bytes(first)).unwrap();
    let pattern: String = std::iter::once("^".to_string()).chain(head.chars().map(|c| format!("\\x{{{:x}}}", c as u32))).collect();
    let g = e.generate(&GenerateRequest { banned_regex: vec![pattern], logprobs: Some(0), ..greedy(prompt, 1, 20) }, |_| true).unwrap();
    let c = &g.candidates[0];
    assert!(g.timings.ban_rewinds > 0 && g.timings.ban_rewound_tokens >= 2, "the hit came after the first token was fed");
    assert!(!c.tokens.contains(&first));
    let mut never = greedy(prompt, 1, 20);
    never.sampling.logit_bias = vec![(first, f32::NEG_INFINITY)];
    let oracle = e.generate(&GenerateRequest { logprobs: Some(0), ..never }, |_| true).unwrap();
    let o = &oracle.candidates[0];
    assert_eq!(c.tokens, o.tokens);
    // From the second token on (the first's probability is taken with the banned token
    // ruled out, the oracle's without).
    let bits = |c: &inkling_engine::Candidate| c.logprobs[1..].iter().map(|l| l.logprob.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(c), bits(o));
}
