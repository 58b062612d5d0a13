//! Learning from accept/reject on a tiny random-weight model: on held-out pairs the tuned
//! model comes to prefer what the writer chose, where the base preferred the other; too few
//! pairs are refused with what to do.

use inkling_engine::testing::TinyModel;
use inkling_train::preference::{MIN_PAIRS, PreferenceConfig, PreferencePair, PreferenceTuning};
use inkling_train::{LoraConfig, TrainError};

const PROMPTS: &[&str] = &[
    "The harbour at dusk",
    "Her brother at the nets",
    "The bell in the fog",
    "A letter from the city",
    "The ledger on the desk",
    "Rain over the salt road",
    "The lamp at midnight",
    "Gulls on the wall",
    "A ship without a name",
    "The keeper's stair",
    "Smoke from the village",
    "The tide at the rocks",
    "A song from the boats",
    "The well behind the inn",
    "Snow on the quay",
];

/// Every pair: the same prompt answered in two registers, `plain` chosen or not.
fn pairs(plain_chosen: bool) -> Vec<PreferencePair> {
    PROMPTS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let plain = format!(" was quiet. She waited {} minutes.", i + 2);
            let ornate = format!(" shimmered, resplendent, ineffable!!! {} EONS!!!", i + 2);
            let (chosen, rejected) = if plain_chosen { (plain, ornate) } else { (ornate, plain) };
            PreferencePair { prompt: p.to_string(), chosen, rejected }
        })
        .collect()
}

fn config() -> PreferenceConfig {
    PreferenceConfig {
        lora: LoraConfig { rank: 4, alpha: 8.0, targets: ["q", "v", "o", "up", "down"].iter().map(|s| s.to_string()).collect() },
        learning_rate: 1e-2,
        iters: Some(40),
        beta: 0.5,
        ..Default::default()
    }
}

#[test]
fn held_out_choices_come_to_be_preferred() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("tiny.gguf");
    TinyModel::default().write(&base).unwrap();
    // The writer chooses whichever register the base likes less on the held-out pairs, so
    // that what is measured is learnt, not found.
    let mut run = PreferenceTuning::start(&base, &pairs(true), config()).unwrap();
    if run.accuracy(true).unwrap().rate() > 0.5 {
        run = PreferenceTuning::start(&base, &pairs(false), config()).unwrap();
    }
    assert_eq!(run.pairs(), (12, 3));
    let before = run.accuracy(true).unwrap();
    assert!(before.rate() <= 0.5, "{before:?}");
    let adapter = dir.path().join("feedback.gguf");
    let mut losses = Vec::new();
    run.run(&adapter, &mut |inkling_train::preference::PreferenceEvent::Step { loss, .. }| {
        losses.push(loss);
        true
    })
    .unwrap();
    let after = run.accuracy(true).unwrap();
    eprintln!(
        "held-out preference accuracy {} of {} -> {} of {}; training pairs {:?}; DPO loss {:.3} -> {:.3}",
        before.preferred,
        before.pairs,
        after.preferred,
        after.pairs,
        run.accuracy(false).unwrap(),
        losses[0],
        losses[losses.len() - 1]
    );
    assert!(after.rate() >= 0.7 && after.rate() > before.rate(), "held-out preference accuracy {:?} -> {:?}", before, after);
    assert!(losses.last().unwrap() < &(std::f32::consts::LN_2 - 0.2), "DPO loss {:?}", losses);
    assert!(adapter.is_file());
    // The adapter is one the engine loads.
    inkling_engine::Engine::load(&base, &inkling_engine::EngineConfig { adapter: Some(adapter), ..Default::default() }).unwrap();
}

#[test]
fn too_few_pairs_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("tiny.gguf");
    TinyModel::default().write(&base).unwrap();
    let mut few = pairs(true);
    few.truncate(MIN_PAIRS - 1);
    // A pair whose answers are the same says nothing, and does not count.
    few.push(PreferencePair { prompt: "x".into(), chosen: "same".into(), rejected: "same".into() });
    let e = PreferenceTuning::start(&base, &few, config()).err().expect("refused");
    assert!(matches!(e, TrainError::TooFewPairs { have: 7, need: 8 }), "{e}");
    assert!(e.to_string().contains("keep choosing between candidates"), "{e}");
}
