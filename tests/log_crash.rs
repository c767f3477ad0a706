//! Crash test: a child process appends in a loop and prints every acknowledged offset; the
//! parent SIGKILLs it mid-flight, reopens the log, and checks that every acknowledged record
//! is present with the right payload. Repeated over several rounds (each round recovers the
//! previous round's torn tail), with concurrent appenders so group commit and segment rolls
//! are in flight when the kill lands.
//!
//! The second test runs the same rounds while the child also drops every segment but the
//! newest two as it goes, as a queue in steady state does, so most segments are recycled
//! files (storage-format.md §3.5) and kills land in them.
//!
//! The child is this same test binary re-executed with `MILLPOND_CRASH_CHILD` set.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use millpond::log::{Durability, Log, LogOptions};

const CHILD_ENV: &str = "MILLPOND_CRASH_CHILD";
const DURABILITY_ENV: &str = "MILLPOND_CRASH_DURABILITY";
const RECYCLE_ENV: &str = "MILLPOND_CRASH_RECYCLE";

fn opts(durability: Durability) -> LogOptions {
    LogOptions {
        segment_bytes: 64 * 1024,
        durability,
        index_interval_bytes: 1024,
        ..LogOptions::default()
    }
}

fn payload(task: u64, seq: u64) -> Vec<u8> {
    let mut p = format!("task={task} seq={seq} ").into_bytes();
    p.resize(100 + (seq % 300) as usize, b'a' + (task % 26) as u8);
    p
}

/// Child: append forever from 8 tasks, printing `ack <offset> <task> <seq>` per append;
/// with `recycle`, a thread keeps dropping all but the newest two segments.
fn child(dir: &str, durability: Durability, recycle: bool) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (log, _) = Log::open(dir, opts(durability)).unwrap();
        if recycle {
            let log = log.clone();
            std::thread::spawn(move || loop {
                let segs = log.segments();
                if segs.len() > 2 {
                    log.truncate_front(segs[segs.len() - 2].base_offset)
                        .unwrap();
                }
                std::thread::sleep(Duration::from_millis(1));
            });
        }
        let mut tasks = Vec::new();
        for task in 0..8u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for seq in 0.. {
                    let off = if seq % 7 == 3 {
                        log.append_batch(vec![
                            (1, seq, payload(task, seq)),
                            (2, seq, payload(task, seq + 1_000_000)),
                        ])
                        .await
                        .unwrap()
                    } else {
                        log.append(1, seq, payload(task, seq)).await.unwrap()
                    };
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {off} {task} {seq}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    std::process::exit(0)
}

fn run_round(
    test: &str,
    recycle: bool,
    dir: &std::path::Path,
    durability: &str,
    acks_wanted: usize,
) -> Vec<(u64, u64, u64)> {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(DURABILITY_ENV, durability)
        .env(RECYCLE_ENV, if recycle { "1" } else { "" })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = c.stdout.take().unwrap();
    let mut acks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = BufReader::new(stdout).lines();
    while acks.len() < acks_wanted && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let mut it = line.split_whitespace();
        if it.next() != Some("ack") {
            continue;
        }
        let v: Vec<u64> = it.map(|x| x.parse().unwrap()).collect();
        acks.push((v[0], v[1], v[2]));
    }
    // SIGKILL (child.kill() sends SIGKILL on unix) while appends are in flight.
    c.kill().unwrap();
    c.wait().unwrap();
    // Acks already printed before the kill are acknowledged too.
    for line in lines.map_while(Result::ok) {
        let mut it = line.split_whitespace();
        if it.next() == Some("ack") {
            let v: Vec<u64> = it.map(|x| x.parse().unwrap()).collect();
            if v.len() == 3 {
                acks.push((v[0], v[1], v[2]));
            }
        }
    }
    assert!(
        acks.len() >= acks_wanted,
        "child produced only {} acks",
        acks.len()
    );
    acks
}

/// Runs the child when this binary was started as one.
fn maybe_child() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let d: Durability = std::env::var(DURABILITY_ENV).unwrap().parse().unwrap();
        child(&dir, d, std::env::var(RECYCLE_ENV).is_ok_and(|v| v == "1"));
    }
}

/// Kill rounds of `test`'s child (dropping segments with `recycle`); after each, every
/// acknowledged record the log still holds (all of them, unless the child dropped segments)
/// reads back. Returns how many recycled segments (header flag bit 1, storage-format.md
/// §3.5) the rounds found.
fn kill_rounds(test: &str, recycle: bool, acks_per_round: usize) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut all = Vec::new();
    let mut recycled = 0;
    // kill -9 keeps the page cache, so even `none` must keep acknowledged appends.
    for (round, durability) in ["fsync", "fsync", "none", "fsync"].iter().enumerate() {
        let acks = run_round(test, recycle, dir, durability, acks_per_round + round * 100);
        all.extend(acks);
        let (log, report) = Log::open(dir, opts(Durability::Fsync)).unwrap();
        eprintln!(
            "round {round} ({durability}): {} acks total, next_offset {}, truncated {} bytes, {} segments",
            all.len(),
            log.next_offset(),
            report.truncated_bytes,
            report.segments
        );
        let start = log.start_offset();
        assert!(all.iter().any(|&(off, _, _)| off >= start));
        for &(off, task, seq) in all.iter().filter(|&&(off, _, _)| off >= start) {
            let r = log
                .read(off)
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged offset {off} lost"));
            assert_eq!(r.payload, payload(task, seq), "offset {off}");
            if r.kind == 2 {
                panic!("ack points at the second record of a batch");
            }
        }
        let mut n = 0u64;
        for r in log.scan(start) {
            r.unwrap();
            n += 1;
        }
        assert_eq!(n, log.next_offset() - start);
        assert!(millpond::log::verify_dir(dir).unwrap().is_clean());
        recycled += std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .filter(|p| std::fs::read(p).unwrap()[12] & 2 != 0)
            .count();
    }
    recycled
}

#[test]
fn sigkill_keeps_every_acknowledged_append() {
    maybe_child();
    assert_eq!(
        kill_rounds("sigkill_keeps_every_acknowledged_append", false, 400),
        0
    );
}

#[test]
fn sigkill_keeps_every_acknowledged_append_in_recycled_segments() {
    maybe_child();
    let recycled = kill_rounds(
        "sigkill_keeps_every_acknowledged_append_in_recycled_segments",
        true,
        1500,
    );
    assert!(recycled > 0, "no segment was recycled");
}
