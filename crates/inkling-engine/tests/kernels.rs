//! Every weight format's matrix product against a dequantize-then-f32 reference.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use inkling_engine::gguf::GgufFile;
use inkling_engine::quant::QMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A random `rows` x `cols` matrix quantized to `dtype`, written as tensor "w" of a GGUF file
/// (the directory must outlive the file).
fn random_matrix_file(rng: &mut StdRng, dtype: GgmlDType, rows: usize, cols: usize) -> (tempfile::TempDir, GgufFile, QTensor) {
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let q = QTensor::quantize(&Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap(), dtype).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    inkling_engine::testing::write_matrices(&path, &[("w", &q)]).unwrap();
    let file = GgufFile::open(&path).unwrap();
    (dir, file, q)
}

fn check(dtype: GgmlDType, rows: usize, cols: usize, batch: usize) {
    let mut rng = StdRng::seed_from_u64(rows as u64 * 31 + cols as u64);
    let (_dir, file, q) = random_matrix_file(&mut rng, dtype, rows, cols);
    let m = QMatrix::load(&file, "w", Some((rows, cols))).unwrap();
    let dense = m.to_f32();
    // The reference dequantizes through candle's tensor path, independently of QMatrix.
    let reference: Vec<f32> = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(dense, reference, "{dtype:?} dequantization");
    let x: Vec<f32> = (0..batch * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let mut y = vec![0f32; batch * rows];
    m.matmul(&x, &mut y);
    for b in 0..batch {
        for r in 0..rows {
            let exact: f32 = (0..cols).map(|c| dense[r * cols + c] * x[b * cols + c]).sum();
            let got = y[b * rows + r];
            // Activations are quantized to 8 bits: allow a small relative error.
            let tol = 0.02 * (cols as f32).sqrt() + 0.02 * exact.abs();
            assert!((got - exact).abs() < tol, "{dtype:?} {rows}x{cols} batch {b} row {r}: {got} vs {exact}");
        }
    }
}

#[test]
fn every_format_matches_the_reference() {
    for dtype in [GgmlDType::F32, GgmlDType::F16, GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1] {
        check(dtype, 7, 64, 1);
        check(dtype, 33, 128, 3);
    }
    for dtype in [GgmlDType::Q2K, GgmlDType::Q3K, GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
        check(dtype, 5, 256, 1);
        check(dtype, 19, 512, 2);
    }
}

/// Q4_1, Q5_0, Q8_0, Q4_K and Q6_K matrices repacked eight rows at a time give what the
/// row kernels give, for every batch size up to a whole group and its leftovers and for a
/// prompt's worth of rows (several activation tiles), and dequantization still reads the
/// file (after the packed copy released its pages). The larger matrices span several of
/// the packer's one-megabyte chunks.
#[test]
fn repacked_matrices_match_the_row_kernels() {
    let shapes = [
        (GgmlDType::Q4_1, 24, 96),
        (GgmlDType::Q5_0, 24, 96),
        (GgmlDType::Q8_0, 24, 96),
        (GgmlDType::Q4K, 24, 512),
        (GgmlDType::Q6K, 24, 512),
        (GgmlDType::Q8_0, 1032, 1024),
        (GgmlDType::Q4_1, 2056, 1024),
        (GgmlDType::Q4K, 1032, 2048),
        (GgmlDType::Q6K, 1032, 1024),
    ];
    for (dtype, rows, cols) in shapes {
        let mut rng = StdRng::seed_from_u64(dtype as u64 + rows as u64);
        let (_dir, file, _) = random_matrix_file(&mut rng, dtype, rows, cols);
        let plain = QMatrix::load(&file, "w", Some((rows, cols))).unwrap();
        let packed = QMatrix::load(&file, "w", Some((rows, cols))).unwrap().into_packed();
        assert_eq!(packed.to_f32(), plain.to_f32(), "{dtype:?} lookups after packing");
        let prompt = if rows < 100 { 700 } else { 9 };
        for batch in [1, 2, 3, 4, 5, 9, prompt] {
            let x: Vec<f32> = (0..batch * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let (mut a, mut b) = (vec![0f32; batch * rows], vec![0f32; batch * rows]);
            plain.matmul(&x, &mut a);
            packed.matmul(&x, &mut b);
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{dtype:?} batch {batch} value {i}: packed {b} vs row kernel {a}");
            }
        }
    }
}

#[test]
fn a_wrong_shape_is_an_error_not_a_panic() {
    let q = QTensor::quantize(&Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap(), GgmlDType::Q8_0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    inkling_engine::testing::write_matrices(&path, &[("w", &q)]).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let err = QMatrix::load(&file, "w", Some((8, 32))).err().unwrap();
    assert!(err.to_string().contains("4x32"));
    assert!(QMatrix::load(&file, "missing", None).err().unwrap().to_string().contains("missing"));
}
