//! Hand-written matrix-product kernels for the weight formats where candle's block kernels
//! are scalar (Q4_1, the default model's format). Each kernel has a portable version that the
//! tests compare with the SIMD one, and the SIMD version is chosen at run time from the CPU's
//! features, so a binary built on one machine still runs correctly on another.

pub mod q4_1;

/// Instruction sets a kernel can use, detected once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

pub fn best_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        return *ISA.get_or_init(|| {
            if std::env::var_os("INKLING_PORTABLE_KERNELS").is_none()
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                Isa::Avx2
            } else {
                Isa::Portable
            }
        });
    }
    #[allow(unreachable_code)]
    Isa::Portable
}
