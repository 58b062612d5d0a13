//! Crash safety: a writer process saving revisions in a loop is killed with SIGKILL at
//! random moments, 100 times. Every revision it reported as committed must be there, intact,
//! and the database must pass `PRAGMA integrity_check`.

use inkling_store::{Origin, Store};
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHILD_ENV: &str = "INKLING_CRASH_WRITER_DB";

fn text_for(n: u64) -> String {
    format!("Revision {n}: {}", "The sea kept its secrets. ".repeat((n % 40) as usize + 1))
}

/// The writer: saves forever, printing each committed revision id after `save` returns.
fn writer(db: &str) -> ! {
    let mut s = Store::open(std::path::Path::new(db)).expect("open");
    let p = s.project("Crash").or_else(|_| s.create_project("Crash")).expect("project");
    let doc = s.document(&p, "Log").or_else(|_| s.add_document(&p, "Log", "chapter", "", Origin::Typed)).expect("doc");
    let start: u64 = std::process::id() as u64 * 100_000;
    for n in start.. {
        let rev = s.save(&doc, &text_for(n), Origin::Typed).expect("save");
        println!("committed {} {n}", rev.id);
    }
    unreachable!()
}

#[test]
fn sigkill_never_loses_a_committed_revision() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        writer(&db);
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut total_committed = 0;
    for round in 0..100 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "sigkill_never_loses_a_committed_revision", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let committed = Arc::new(Mutex::new(Vec::<(i64, u64)>::new()));
        let out = child.stdout.take().unwrap();
        let sink = committed.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("committed ") {
                    let mut it = rest.split(' ');
                    if let (Some(id), Some(n)) = (it.next(), it.next()) {
                        sink.lock().unwrap().push((id.parse().unwrap(), n.parse().unwrap()));
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(20..120)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        let s = Store::open(&db).unwrap_or_else(|e| panic!("round {round}: the database does not open: {e}"));
        assert_eq!(s.integrity_check().unwrap(), "ok", "round {round}");
        for &(id, n) in committed.lock().unwrap().iter() {
            let rev = s.revision(id).unwrap_or_else(|e| panic!("round {round}: committed revision {id} is gone: {e}"));
            assert_eq!(rev.text, text_for(n), "round {round}: revision {id} changed");
        }
        total_committed += committed.lock().unwrap().len();
    }
    assert!(total_committed > 100, "the writer committed only {total_committed} revisions in 100 rounds");
}
