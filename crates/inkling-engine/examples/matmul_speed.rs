//! Times the matrix products of one GGUF file's weights on their own, as a decode step runs
//! them, and prints each weight format's effective bandwidth (weight bytes read per second):
//! `cargo run --release --example matmul_speed -- MODEL.gguf [ROWS] [THREADS] [plain]`.
//! ROWS is the number of activation rows (1 = one stream decoding, 3 = three candidates,
//! 256 = a prompt chunk); `plain` keeps the file's layout (the row kernels) instead of
//! repacking, to compare the two.
//! The per-format figures show which kernel is furthest from the machine's memory bandwidth.
//! `INKLING_KERNELS=avx2` (or `portable`) caps the instruction set, and `INKLING_PREFETCH`
//! sets the weight prefetch, as they do for the binary.

use inkling_engine::gguf::GgufFile;
use inkling_engine::quant::QMatrix;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: matmul_speed MODEL.gguf [ROWS] [THREADS]")?;
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);
    let threads: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2);
    let plain = args.next().is_some_and(|a| a == "plain");
    if let Ok(name) = std::env::var("INKLING_KERNELS") {
        inkling_engine::kernels::limit_kernels(inkling_engine::kernels::Isa::named(&name).ok_or("INKLING_KERNELS: portable, avx2 or avx512vnni")?);
    }
    if let Ok(name) = std::env::var("INKLING_PREFETCH") {
        inkling_engine::kernels::set_weight_prefetch(inkling_engine::kernels::WeightPrefetch::named(&name).ok_or("INKLING_PREFETCH: off, current or ahead")?);
    }
    println!("kernels: {}, weight prefetch {}", inkling_engine::kernels::best_isa().name(), inkling_engine::kernels::weight_prefetch().name());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let file = GgufFile::open(std::path::Path::new(&path))?;
    let mut names: Vec<&String> = file.tensors.keys().filter(|k| file.tensors[*k].dims.len() == 2).collect();
    names.sort();
    // Per format: (bytes, seconds, products).
    let mut by_format: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
    for name in names {
        let m = QMatrix::load(&file, name, None)?;
        let m = if plain { m } else { m.into_packed() };
        let x: Vec<f32> = (0..n * m.cols).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let mut y = vec![0f32; n * m.rows];
        let reps = (4_000_000 / (m.size_in_bytes() * n)).clamp(1, 40);
        pool.install(|| m.matmul(&x, &mut y));
        // The best of five timings: this is a shared machine, and interference only adds time.
        let secs = (0..5)
            .map(|_| {
                let start = Instant::now();
                pool.install(|| {
                    for _ in 0..reps {
                        m.matmul(&x, &mut y);
                    }
                });
                start.elapsed().as_secs_f64() / reps as f64
            })
            .fold(f64::INFINITY, f64::min);
        let e = by_format.entry(format!("{:?}", m.dtype)).or_default();
        e.0 += m.size_in_bytes() as f64;
        e.1 += secs;
        e.2 += 1;
        if m.size_in_bytes() > 50_000_000 {
            println!("{name}: {:?} {}x{}, {:.2} ms, {:.1} GB/s", m.dtype, m.rows, m.cols, secs * 1e3, m.size_in_bytes() as f64 / secs / 1e9);
        }
    }
    println!("{n} activation row(s), {threads} threads, {}", if plain { "file layout" } else { "repacked" });
    for (format, (bytes, secs, count)) in by_format {
        println!("{format:6} {count:4} matrices {:8.1} MB {:8.2} ms {:6.1} GB/s", bytes / 1e6, secs * 1e3, bytes / secs / 1e9);
    }
    Ok(())
}
