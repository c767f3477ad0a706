//! `millpond verify`: clean data directories pass, a corrupt sealed segment fails.

use std::process::Command;

use millpond::log::{Log, LogOptions};

fn verify(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_millpond"))
        .arg("verify")
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn verify_passes_clean_logs_and_fails_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("sqs").join("queues").join("q1");
    {
        let (log, _) = Log::open(&log_dir, LogOptions::default()).unwrap();
        for i in 0..100u64 {
            log.append_blocking(1, i, vec![7u8; 100]).unwrap();
        }
        log.roll().unwrap();
        log.append_blocking(1, 100, b"tail".to_vec()).unwrap();
    }
    let (ok, out) = verify(dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("1 logs checked, 0 with problems"), "{out}");

    // Flip one payload byte in the middle of the sealed first segment.
    let seg = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&seg, bytes).unwrap();
    let (ok, out) = verify(dir.path());
    assert!(!ok, "{out}");
    assert!(out.contains("CORRUPT"), "{out}");
}

#[test]
fn verify_counts_hollow_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("sqs").join("queues").join("q1");
    {
        let (log, _) = Log::open(&log_dir, LogOptions::default()).unwrap();
        for i in 0..30u64 {
            log.append_blocking(1, i, vec![7u8; 100]).unwrap();
            if i % 10 == 9 {
                log.roll().unwrap();
            }
        }
        let middle = log.segments()[1].base_offset;
        assert_eq!(log.hollow(middle).unwrap(), 10);
    }
    let (ok, out) = verify(dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("segments (1 hollow), offsets 0..30"), "{out}");
}
