//! Autograd against finite differences: attention, layer norm and the whole loss.
//! Everything runs in f64 so central differences are accurate to ~1e-8.

use candle_core::{DType, Device, Tensor, Var};
use inkling_train::gpt::{causal_mask, causal_self_attention, cross_entropy, layer_norm};

fn random(shape: &[usize], seed: u64) -> Tensor {
    // A small LCG keeps the test free of rand's API and deterministic.
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Compares d(loss)/d(var) from backward with central differences at every element of `vars`.
fn check(vars: &[&Var], loss: &dyn Fn() -> Tensor) {
    let grads = loss().backward().unwrap();
    let h = 1e-5;
    for (vi, var) in vars.iter().enumerate() {
        let analytic = grads.get(var.as_tensor()).expect("a gradient").flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let shape = var.shape().clone();
        for i in 0..base.len() {
            let mut plus = base.clone();
            plus[i] += h;
            var.set(&Tensor::from_vec(plus, &shape, &Device::Cpu).unwrap()).unwrap();
            let lp = loss().to_scalar::<f64>().unwrap();
            let mut minus = base.clone();
            minus[i] -= h;
            var.set(&Tensor::from_vec(minus, &shape, &Device::Cpu).unwrap()).unwrap();
            let lm = loss().to_scalar::<f64>().unwrap();
            var.set(&Tensor::from_vec(base.clone(), &shape, &Device::Cpu).unwrap()).unwrap();
            let numeric = (lp - lm) / (2.0 * h);
            let err = (numeric - analytic[i]).abs() / (1.0 + numeric.abs());
            assert!(err < 1e-6, "var {vi} element {i}: autograd {} vs finite difference {numeric}", analytic[i]);
        }
    }
}

#[test]
fn layer_norm_gradient_matches_finite_differences() {
    let x = Var::from_tensor(&random(&[3, 8], 1)).unwrap();
    let g = Var::from_tensor(&(random(&[8], 2) + 1.0).unwrap()).unwrap();
    let b = Var::from_tensor(&random(&[8], 3)).unwrap();
    let r = random(&[3, 8], 4);
    check(&[&x, &g, &b], &|| layer_norm(x.as_tensor(), g.as_tensor(), Some(b.as_tensor())).unwrap().mul(&r).unwrap().sum_all().unwrap());
}

#[test]
fn attention_gradient_matches_finite_differences() {
    let (batch, t, d, heads) = (2, 5, 8, 2);
    let x = Var::from_tensor(&random(&[batch, t, d], 5)).unwrap();
    let w = Var::from_tensor(&(random(&[3 * d, d], 6) * 0.5).unwrap()).unwrap();
    let b = Var::from_tensor(&(random(&[3 * d], 7) * 0.1).unwrap()).unwrap();
    let r = random(&[batch, t, d], 8);
    let mask = causal_mask(t, DType::F64, &Device::Cpu).unwrap();
    check(&[&x, &w, &b], &|| causal_self_attention(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), heads, &mask).unwrap().mul(&r).unwrap().sum_all().unwrap());
}

#[test]
fn attention_is_causal() {
    // Changing a later token must not change an earlier position's output.
    let (t, d) = (6, 8);
    let x = random(&[1, t, d], 9);
    let w = random(&[3 * d, d], 10);
    let mask = causal_mask(t, DType::F64, &Device::Cpu).unwrap();
    let y1 = causal_self_attention(&x, &w, None, 2, &mask).unwrap();
    let mut v = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for e in &mut v[(t - 1) * d..] {
        *e += 1.0;
    }
    let x2 = Tensor::from_vec(v, (1, t, d), &Device::Cpu).unwrap();
    let y2 = causal_self_attention(&x2, &w, None, 2, &mask).unwrap();
    let a = y1.narrow(1, 0, t - 1).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = y2.narrow(1, 0, t - 1).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(a, b);
    let last1 = y1.narrow(1, t - 1, 1).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let last2 = y2.narrow(1, t - 1, 1).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert_ne!(last1, last2);
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    let logits = Var::from_tensor(&random(&[4, 6], 11)).unwrap();
    let targets = Tensor::from_vec(vec![0u32, 5, 2, 2], 4, &Device::Cpu).unwrap();
    check(&[&logits], &|| cross_entropy(logits.as_tensor(), &targets).unwrap());
}

#[test]
fn lora_layer_gradient_matches_finite_differences() {
    use inkling_train::lora::lora_linear;
    let x = Var::from_tensor(&random(&[2, 3, 6], 12)).unwrap();
    let w = random(&[5, 6], 13); // frozen base: no gradient asked for
    let bias = random(&[5], 14);
    let a = Var::from_tensor(&random(&[2, 6], 15)).unwrap();
    let b = Var::from_tensor(&random(&[5, 2], 16)).unwrap();
    let r = random(&[2, 3, 5], 17);
    check(&[&x, &a, &b], &|| lora_linear(x.as_tensor(), &w, Some(&bias), Some((a.as_tensor(), b.as_tensor())), 2.0).unwrap().mul(&r).unwrap().sum_all().unwrap());
    // With B = 0 the layer is exactly the frozen base.
    let zero = Tensor::zeros((5, 2), DType::F64, &Device::Cpu).unwrap();
    let with = lora_linear(x.as_tensor(), &w, Some(&bias), Some((a.as_tensor(), &zero)), 2.0).unwrap();
    let without = lora_linear(x.as_tensor(), &w, Some(&bias), None, 2.0).unwrap();
    assert_eq!(with.flatten_all().unwrap().to_vec1::<f64>().unwrap(), without.flatten_all().unwrap().to_vec1::<f64>().unwrap());
}

#[test]
fn rms_norm_gradient_matches_finite_differences() {
    let x = Var::from_tensor(&random(&[3, 8], 18)).unwrap();
    let g = Var::from_tensor(&(random(&[8], 19) + 1.0).unwrap()).unwrap();
    let r = random(&[3, 8], 20);
    check(&[&x, &g], &|| inkling_train::lora::rms_norm(x.as_tensor(), g.as_tensor(), 1e-6).unwrap().mul(&r).unwrap().sum_all().unwrap());
}

#[test]
fn fused_gelu_matches_candle_and_finite_differences() {
    let x = Var::from_tensor(&(random(&[4, 7], 21) * 3.0).unwrap()).unwrap();
    let ours = inkling_train::fused::gelu_fused(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let candle = x.as_tensor().gelu().unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for (a, b) in ours.iter().zip(&candle) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
    let r = random(&[4, 7], 22);
    check(&[&x], &|| inkling_train::fused::gelu_fused(x.as_tensor()).unwrap().mul(&r).unwrap().sum_all().unwrap());
}
