//! The hand-written training step (`inkling_train::cpu`) against the reference model's
//! autograd (`inkling_train::gpt` through candle): the same loss and the same gradient for
//! every parameter, in each model variant, on one thread and split across several.

use candle_core::{Device, Tensor};
use inkling_train::cpu::CpuGpt;
use inkling_train::{GptConfig, Positions};
use rand::{Rng, SeedableRng};

fn config(positions: Positions, bias: bool) -> GptConfig {
    GptConfig { vocab_size: 23, block_size: 9, n_layer: 2, n_head: 3, n_embd: 24, positions, bias }
}

/// Random token ids for `b` rows of `t` tokens, inputs and targets.
fn batch(c: &GptConfig, b: usize, t: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut ids = || (0..b * t).map(|_| rng.random_range(0..c.vocab_size as u32)).collect::<Vec<u32>>();
    (ids(), ids())
}

/// The model with its weights moved off their initial values (gains ≠ 1, biases ≠ 0), so
/// every gradient term is exercised.
fn perturbed(c: GptConfig) -> CpuGpt {
    let mut m = CpuGpt::new(c, 7).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    m.weights.iter_mut().for_each(|w| *w += rng.random_range(-0.3f32..0.3));
    m
}

#[test]
fn loss_and_gradients_match_the_reference_autograd() {
    for (positions, bias) in [(Positions::Learned, false), (Positions::Sinusoidal, true), (Positions::Learned, true)] {
        let c = config(positions, bias);
        let (b, t) = (5, 9);
        let (x, y) = batch(&c, b, t, 11);
        let mut m = perturbed(c.clone());
        let reference = m.to_gpt().unwrap();
        let xt = Tensor::from_vec(x.clone(), (b, t), &Device::Cpu).unwrap();
        let yt = Tensor::from_vec(y.clone(), (b, t), &Device::Cpu).unwrap();
        let ref_loss = reference.loss(&xt, &yt).unwrap();
        let grads = ref_loss.backward().unwrap();
        let ref_loss = ref_loss.to_scalar::<f32>().unwrap();
        for threads in [1, 2, 3] {
            let loss = m.loss(&x, &y, b, t, threads, true).unwrap();
            assert!((loss - ref_loss).abs() < 1e-5 * ref_loss.abs().max(1.0), "{positions:?} bias {bias}, {threads} threads: loss {loss} vs {ref_loss}");
            for (slot, p) in m.slots.iter().zip(&reference.params) {
                assert_eq!(slot.name, p.name);
                let want = grads.get(p.var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let got = &m.grads[slot.range.clone()];
                let scale = want.iter().fold(0f32, |a, g| a.max(g.abs()));
                assert!(scale > 0.0, "{} has a zero gradient: the check would prove nothing", slot.name);
                let err = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(err <= 1e-4 * scale + 1e-7, "{positions:?} bias {bias}, {threads} threads: gradient of {} off by {err} (largest {scale})", slot.name);
            }
            // Evaluation gives the same loss without touching the gradients.
            let before = m.grads.clone();
            let eval = m.loss(&x, &y, b, t, threads, false).unwrap();
            assert_eq!(eval.to_bits(), loss.to_bits(), "{threads} threads: the evaluation loss is the training loss");
            assert_eq!(before, m.grads);
        }
    }
}

#[test]
fn shorter_sequences_and_one_thread_per_row_work() {
    let c = config(Positions::Learned, false);
    let mut m = perturbed(c.clone());
    let reference = m.to_gpt().unwrap();
    for (b, t) in [(1, 1), (2, 4), (3, 9)] {
        let (x, y) = batch(&c, b, t, b as u64);
        let want = reference.loss(&Tensor::from_vec(x.clone(), (b, t), &Device::Cpu).unwrap(), &Tensor::from_vec(y.clone(), (b, t), &Device::Cpu).unwrap()).unwrap().to_scalar::<f32>().unwrap();
        let got = m.loss(&x, &y, b, t, 8, true).unwrap();
        assert!((got - want).abs() < 1e-5 * want, "{b}x{t}: {got} vs {want}");
    }
}

#[test]
fn a_step_is_deterministic_for_a_thread_count() {
    let c = config(Positions::Learned, false);
    let (x, y) = batch(&c, 6, 9, 5);
    let mut a = perturbed(c.clone());
    let mut b = perturbed(c);
    a.loss(&x, &y, 6, 9, 2, true).unwrap();
    b.loss(&x, &y, 6, 9, 2, true).unwrap();
    assert_eq!(a.grads, b.grads);
}

#[test]
fn bad_batches_are_refused() {
    let c = config(Positions::Learned, false);
    let mut m = perturbed(c.clone());
    let (x, y) = batch(&c, 2, 9, 1);
    assert!(m.loss(&x, &y, 2, 10, 1, true).is_err(), "longer than the block");
    assert!(m.loss(&x[..17], &y, 2, 9, 1, true).is_err(), "ragged");
    let mut bad = x.clone();
    bad[3] = 23;
    let err = m.loss(&bad, &y, 2, 9, 1, true).unwrap_err().to_string();
    assert!(err.contains("outside the vocabulary"), "{err}");
}
