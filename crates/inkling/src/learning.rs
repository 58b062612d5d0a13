//! Learning from a project's choices (DPO on its preference pairs), as one run that both
//! `inkling finetune --from-feedback` and the editor's "Learn from my choices" use: the
//! server gets it as its [`FeedbackTrainer`].

use inkling_engine::{Backend, Engine, EngineConfig};
use inkling_server::learning::{FeedbackTrainer, LearningError, PairSize, TrainingPlan, TrainingReport, TrainingStep};
use inkling_store::preferences::FeedbackPair;
use inkling_train::preference::{MIN_PAIRS, PreferenceConfig, PreferenceEvent, PreferencePair, PreferenceTuning};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a run reports before and while it trains.
pub enum Progress<'a> {
    /// The pairs are scored under the base: how many train, how many are held out, and on
    /// how many of those the base already prefers the writer's choice.
    Measured {
        train: usize,
        held_out: usize,
        preferred_before: usize,
    },
    Step(&'a TrainingStep),
}

/// Trains a feedback adapter on `pairs` over the model at `base` and writes it to `out`,
/// with its report beside it. `on_progress` returning false stops early; the adapter so far
/// is kept, and measured.
pub fn learn_from_choices(base: &Path, pairs: &[FeedbackPair], config: PreferenceConfig, out: &Path, on_progress: &mut dyn FnMut(Progress<'_>) -> bool) -> inkling_train::Result<TrainingReport> {
    let t0 = std::time::Instant::now();
    let pairs: Vec<PreferencePair> = pairs.iter().map(|p| PreferencePair { prompt: p.prompt.clone(), chosen: p.chosen.clone(), rejected: p.rejected.clone() }).collect();
    let mut run = PreferenceTuning::start(base, &pairs, config)?;
    let (train, held_out) = run.pairs();
    let before = run.accuracy(true)?;
    if on_progress(Progress::Measured { train, held_out, preferred_before: before.preferred }) {
        run.run(out, &mut |PreferenceEvent::Step { iter, iters, loss, seconds }| on_progress(Progress::Step(&TrainingStep { step: iter, steps: iters, loss, seconds })))?;
    } else {
        run.save(out)?;
    }
    let after = run.accuracy(true)?;
    let report = TrainingReport {
        pairs: train + held_out,
        held_out,
        preferred_before: before.preferred,
        preferred_after: after.preferred,
        steps: run.iter,
        seconds: t0.elapsed().as_secs_f64(),
        base: base_name(base),
    };
    report.save(out).map_err(|e| inkling_train::TrainError::Write { path: TrainingReport::path_for(out), error: e })?;
    Ok(report)
}

fn base_name(base: &Path) -> String {
    inkling_engine::gguf::GgufFile::open(base)
        .ok()
        .and_then(|f| f.get_str("general.name").map(str::to_string))
        .unwrap_or_else(|| base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
}

/// A project's adapter: `adapters/<project><kind>.gguf` in the cache folder, the file name made from
/// any project name (letters and digits of any script are kept).
pub fn project_adapter(name: &str, kind: &str) -> PathBuf {
    let file: String = name.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    crate::config::places().adapters().join(format!("{file}{kind}.gguf"))
}

/// Seconds one DPO step took on SmolLM2-135M (134.5 M parameters, 2 cores of a Zen 5 EPYC;
/// BENCHMARKS.md), over pairs of a 60-word prompt and two 40-word answers: each pair read
/// about 266 tokens (the prompt twice, once before each answer). The estimate scales it by
/// model size and by the tokens the pairs will read.
const SECONDS_PER_STEP_135M: f64 = 7.4;
const PARAMETERS_135M: f64 = 134.5e6;
const TOKENS_PER_PAIR_MEASURED: f64 = 266.0;

/// The served local model's trainer: trains on its file, loads adapters into a second engine
/// with the served engine's settings.
pub struct LocalTrainer {
    base: PathBuf,
    engine: EngineConfig,
    config: PreferenceConfig,
    parameters: f64,
}

impl LocalTrainer {
    pub fn new(base: PathBuf, engine: EngineConfig) -> Self {
        let parameters = inkling_engine::gguf::GgufFile::open(&base).map(|f| inkling_train::lora::base_bytes(&f) as f64 / 4.0).unwrap_or(PARAMETERS_135M);
        Self { base, engine: EngineConfig { adapter: None, ..engine }, config: PreferenceConfig::default(), parameters }
    }
}

impl LocalTrainer {
    /// The mean tokens a pair makes a step read: the prompt before each answer, and both
    /// answers, each cut where training cuts it. The measured pairs' figure with none.
    fn tokens_per_pair(&self, sizes: &[PairSize]) -> f64 {
        if sizes.is_empty() {
            return TOKENS_PER_PAIR_MEASURED;
        }
        let c = &self.config;
        let read = |p: &PairSize| 2 * p.prompt.min(c.max_prompt_tokens) + p.chosen.min(c.max_answer_tokens) + p.rejected.min(c.max_answer_tokens);
        sizes.iter().map(read).sum::<usize>() as f64 / sizes.len() as f64
    }
}

impl FeedbackTrainer for LocalTrainer {
    fn adapter_path(&self, project: &str) -> PathBuf {
        project_adapter(project, ".feedback")
    }

    fn plan(&self, sizes: &[PairSize]) -> TrainingPlan {
        let pairs = sizes.len();
        let held_out = PreferenceConfig::held_out(pairs);
        let steps = self.config.steps(pairs - held_out);
        let per_step = SECONDS_PER_STEP_135M * self.parameters / PARAMETERS_135M * self.tokens_per_pair(sizes) / TOKENS_PER_PAIR_MEASURED;
        // Scoring a pair under the base (twice before, once after for the held-out) is about
        // a third of a step's work per pair.
        let seconds = per_step * (steps as f64 + pairs as f64 / 3.0);
        TrainingPlan { needed: MIN_PAIRS, steps, held_out, seconds }
    }

    fn train(&self, pairs: &[FeedbackPair], out: &Path, on_step: &mut dyn FnMut(&TrainingStep) -> bool) -> Result<TrainingReport, LearningError> {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LearningError::Failed(format!("cannot make {}: {e}", dir.display())))?;
        }
        learn_from_choices(&self.base, pairs, self.config.clone(), out, &mut |p| match p {
            Progress::Measured { .. } => true,
            Progress::Step(s) => on_step(s),
        })
        .map_err(|e| match e {
            inkling_train::TrainError::TooFewPairs { have, need } => LearningError::TooFewPairs { have, need },
            e => LearningError::Failed(e.to_string()),
        })
    }

    fn load(&self, adapter: &Path) -> Result<Arc<dyn Backend>, LearningError> {
        let config = EngineConfig { adapter: Some(adapter.to_path_buf()), ..self.engine.clone() };
        let engine = Engine::load(&self.base, &config).map_err(|e| LearningError::Failed(e.to_string()))?;
        Ok(Arc::new(engine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_a_training_is_estimated_to_take_follows_the_pairs_lengths() {
        // No model file: the 135M's size, the model the step time was measured on.
        let trainer = LocalTrainer::new(PathBuf::from("no-such-model.gguf"), EngineConfig::default());
        let pairs = |prompt, answer| vec![PairSize { prompt, chosen: answer, rejected: answer }; 20];
        let measured = trainer.plan(&pairs(80, 53));
        let expected = SECONDS_PER_STEP_135M * (measured.steps as f64 + 20.0 / 3.0);
        assert!((measured.seconds - expected).abs() < 1e-6, "pairs like the measured ones take the measured time: {} vs {expected}", measured.seconds);
        let short = trainer.plan(&pairs(40, 20));
        let long = trainer.plan(&pairs(150, 250));
        assert_eq!((short.steps, long.steps), (measured.steps, measured.steps), "the same steps whatever the lengths");
        assert!(short.seconds < measured.seconds / 2.0 && long.seconds > measured.seconds * 2.0, "{} {} {}", short.seconds, measured.seconds, long.seconds);
        let beyond = trainer.plan(&pairs(5000, 5000));
        let at_caps = trainer.plan(&pairs(trainer.config.max_prompt_tokens, trainer.config.max_answer_tokens));
        assert_eq!(beyond.seconds, at_caps.seconds, "text past what training reads costs nothing");
    }
}
