//! LoRA fine-tuning on tiny random-weight GGUF models: the adapter learns, the engine merges
//! it into exactly the model training saw, and mismatches and small corpora are refused.

use inkling_engine::testing::TinyModel;
use inkling_engine::{Engine, EngineConfig, EngineError};
use inkling_train::{Corpus, FinetuneConfig, Finetuning, LoraConfig, TrainError};
use std::path::{Path, PathBuf};

const PAGE: &str = "The lighthouse keeper counted the ships at dusk and wrote each name in the blue ledger. \
Her brother mended nets by the harbour wall and sang the old songs of the salt roads. \
When the fog came in from the west, the bell rang three times and the village went quiet.\n";

fn tiny(dir: &Path, arch: &'static str, dtype: candle_core::quantized::GgmlDType) -> PathBuf {
    let path = dir.join(format!("{arch}.gguf"));
    TinyModel { arch, dtype, ..Default::default() }.write(&path).unwrap();
    path
}

fn config(iters: usize, targets: &[&str]) -> FinetuneConfig {
    FinetuneConfig {
        lora: LoraConfig { rank: 4, alpha: 8.0, targets: targets.iter().map(|s| s.to_string()).collect() },
        block_size: 32,
        batch_size: 4,
        iters: Some(iters),
        learning_rate: 1e-2,
        warmup_iters: 2,
        eval_iters: 2,
        eval_interval: iters,
        ..Default::default()
    }
}

#[test]
fn lora_learns_and_the_engine_merges_exactly_what_was_trained() {
    for (arch, dtype) in [("llama", candle_core::quantized::GgmlDType::Q8_0), ("qwen2", candle_core::quantized::GgmlDType::F32)] {
        let dir = tempfile::tempdir().unwrap();
        let base = tiny(dir.path(), arch, dtype);
        let corpus = Corpus::from_text(PAGE.repeat(6));
        let mut run = Finetuning::start(&base, &corpus, config(30, &["q", "k", "v", "o", "gate", "up", "down"])).unwrap();
        let adapter = dir.path().join("adapter.gguf");
        run.run(&adapter, &mut |_| true).unwrap();
        let (first, last) = (run.evals.first().unwrap(), run.evals.last().unwrap());
        assert!(last.train_loss < first.train_loss - 0.5, "{arch}: loss {} -> {}", first.train_loss, last.train_loss);

        // The base's quantized weights plus the merged adapter give the logits training saw.
        let engine = Engine::load(&base, &EngineConfig { adapter: Some(adapter.clone()), ..Default::default() }).unwrap();
        assert!(engine.info().name.ends_with("+ adapter"), "{}", engine.info().name);
        let ids = engine.tokenizer().encode("The lighthouse keeper counted", false);
        let x = candle_core::Tensor::from_vec(ids.clone(), (1, ids.len()), &candle_core::Device::Cpu).unwrap();
        let ours = run.model.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let theirs = engine.logits(&ids).unwrap();
        let max_err = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let scale = ours.iter().map(|v| v.abs()).fold(0f32, f32::max);
        // Q8_0 activations and the f16 KV cache on the engine side.
        assert!(max_err < 0.02 * scale.max(1.0), "{arch}: logits differ by {max_err} (largest logit {scale})");
        // And the adapter changed the model.
        let plain = Engine::load(&base, &EngineConfig::default()).unwrap().logits(&ids).unwrap();
        let moved = plain.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(moved > 10.0 * max_err, "{arch}: the adapter moved the logits by only {moved}");
    }
}

#[test]
fn adapters_and_corpora_that_do_not_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let llama = tiny(dir.path(), "llama", candle_core::quantized::GgmlDType::Q8_0);
    let qwen = tiny(dir.path(), "qwen2", candle_core::quantized::GgmlDType::Q8_0);
    let mut run = Finetuning::start(&llama, &Corpus::from_text(PAGE.repeat(6)), config(1, &["q", "v"])).unwrap();
    let adapter = dir.path().join("llama-adapter.gguf");
    run.run(&adapter, &mut |_| true).unwrap();
    let e = Engine::load(&qwen, &EngineConfig { adapter: Some(adapter.clone()), ..Default::default() }).err().expect("refused");
    assert!(matches!(e, EngineError::AdapterMismatch { .. }), "{e}");
    // A model file is not an adapter.
    let e = Engine::load(&llama, &EngineConfig { adapter: Some(qwen.clone()), ..Default::default() }).err().expect("refused");
    assert!(e.to_string().contains("not a LoRA adapter"), "{e}");
    // Too little text to learn from.
    let e = Finetuning::start(&llama, &Corpus::from_text(PAGE), config(1, &["q"])).err().expect("refused");
    assert!(matches!(e, TrainError::CorpusTooSmall { .. }) && e.to_string().contains("few pages"), "{e}");
    // Unknown target modules and gpt2 bases.
    let e = Finetuning::start(&llama, &Corpus::from_text(PAGE.repeat(6)), config(1, &["q", "x"])).err().expect("refused");
    assert!(e.to_string().contains("unknown target module `x`"), "{e}");
}
