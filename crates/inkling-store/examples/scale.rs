//! Scale benchmark: a 200,000-word novel (50 chapters) with 10,000 revisions.
//! Times opening the database, listing history, and exporting, each on its own.
//! `cargo run --release -p inkling-store --example scale [-- DB_PATH]`

use inkling_store::export::Format;
use inkling_store::{Origin, Store};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(|| dir.path().join("scale.db"));
    let words = ["the", "sea", "kept", "its", "secrets", "and", "the", "keeper", "kept", "his", "silence", "until", "autumn"];
    let t0 = Instant::now();
    {
        let mut s = Store::open(&path)?;
        let p = s.create_project("Scale")?;
        let mut docs = Vec::new();
        for c in 0..50 {
            let text: String = (0..4000).map(|i| words[(i * 7 + c) % words.len()]).collect::<Vec<_>>().join(" ");
            docs.push((s.add_document(&p, &format!("Chapter {}", c + 1), "chapter", &text, Origin::Typed)?, text));
        }
        // 9,950 more revisions: small edits spread over the chapters, as a writer makes them.
        for n in 0..9_950 {
            let (doc, text) = &mut docs[n % 50];
            text.push_str(&format!(" Edit {n}."));
            let origin = if n % 5 == 0 { Origin::Accepted { tool: "continue".into(), model: "m".into(), seed: n as u64, generation: None } } else { Origin::Typed };
            s.save(doc, text, origin)?;
        }
    }
    eprintln!("built in {:.1} s", t0.elapsed().as_secs_f64());
    let t = Instant::now();
    let s = Store::open(&path)?;
    let p = s.project("Scale")?;
    let docs = s.documents(&p)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let mut revisions = 0;
    for d in &docs {
        revisions += s.history(d)?.len();
    }
    let history_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let out = tempfile::tempdir()?;
    s.export(&p, Format::Epub, out.path(), "scale.epub")?;
    let export_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let report = s.report(&p)?;
    let report_ms = t.elapsed().as_secs_f64() * 1e3;
    let words_total: usize = s.manuscript(&p)?.iter().map(|(_, t)| t.split_whitespace().count()).sum();
    println!(
        "{{\"words\": {words_total}, \"revisions\": {revisions}, \"db_mib\": {:.0}, \"open_ms\": {open_ms:.1}, \"history_ms\": {history_ms:.1}, \"export_epub_ms\": {export_ms:.1}, \"report_ms\": {report_ms:.1}, \"ai_share\": {:.3}}}",
        std::fs::metadata(&path)?.len() as f64 / 1048576.0,
        report.total.ai_assisted()
    );
    Ok(())
}
