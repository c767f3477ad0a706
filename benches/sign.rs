//! RSA signing cost of an SNS notification, for both key sizes (1024 and 2048 bits):
//! `cargo bench --bench sign`.
//!
//! Prints the median ns per signature (SignatureVersion 1, SHA1; and 2, SHA256) over a typical
//! ~600-byte string-to-sign, on the fast path and the general-size reference, and the round trip
//! of a `spawn_blocking` hop beside it. No
//! criterion: one number per version is all the fan-out work needs.

use std::time::Instant;

use millpond::sns::signing::{canonical, KeyBits, Signer};

type SignFn = fn(&Signer, &[u8], &str) -> Vec<u8>;

fn main() {
    let runs: usize = std::env::var("SIGN_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    for size in [KeyBits::Rsa1024, KeyBits::Rsa2048] {
        bench_size(size, runs);
    }
    spawn_blocking_round_trip(runs);
}

fn bench_size(size: KeyBits, runs: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = Signer::load_or_create(dir.path(), size).expect("signer");
    let message = "x".repeat(420);
    let text = canonical(&[
        ("Message", Some(&message)),
        ("MessageId", Some("0f9a1c5e-6a8b-4c1d-9e2f-3a4b5c6d7e8f")),
        ("Subject", Some("bench")),
        ("Timestamp", Some("2024-05-01T12:00:00.000Z")),
        (
            "TopicArn",
            Some("arn:aws:sns:us-east-1:000000000000:bench-topic"),
        ),
        ("Type", Some("Notification")),
    ]);
    // The first call generates the key.
    let t = Instant::now();
    let _ = signer.sign(text.as_bytes(), "1");
    println!(
        "RSA-{size}: key generated in {} ms",
        t.elapsed().as_millis()
    );
    let per_run = 100u64;
    let paths: [(&str, SignFn); 2] = [
        ("fast", Signer::sign),
        ("reference", Signer::sign_reference),
    ];
    for (path, sign) in paths {
        for version in ["1", "2"] {
            let mut wall = Vec::with_capacity(runs);
            let mut cpu = Vec::with_capacity(runs);
            for _ in 0..runs {
                let (t, c) = (Instant::now(), thread_cpu_ns());
                for _ in 0..per_run {
                    std::hint::black_box(sign(
                        &signer,
                        std::hint::black_box(text.as_bytes()),
                        version,
                    ));
                }
                wall.push(t.elapsed().as_nanos() as u64 / per_run);
                cpu.push((thread_cpu_ns() - c) / per_run);
            }
            wall.sort_unstable();
            cpu.sort_unstable();
            println!(
                "RSA-{size} sign v{version} {path:>9} ({} bytes): median {} ns/sign wall, {} ns/sign thread CPU ({runs} runs of {per_run})",
                text.len(),
                wall[runs / 2],
                cpu[runs / 2],
            );
        }
    }
}

/// What moving a signature to tokio's blocking pool costs, for comparison.
fn spawn_blocking_round_trip(runs: usize) {
    let per_run = 100u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let mut samples = Vec::with_capacity(runs);
    rt.block_on(async {
        for _ in 0..runs {
            let t = Instant::now();
            for _ in 0..per_run {
                let _ = tokio::task::spawn_blocking(|| std::hint::black_box(1)).await;
            }
            samples.push(t.elapsed().as_nanos() as u64 / per_run);
        }
    });
    samples.sort_unstable();
    println!(
        "spawn_blocking round trip: median {} ns (min {}, max {})",
        samples[runs / 2],
        samples[0],
        samples[runs - 1]
    );
}

/// CPU time of the calling thread: on a shared machine, wall time mostly measures the neighbours.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
