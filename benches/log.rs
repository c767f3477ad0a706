//! Storage-layer benchmarks.
//!
//! * raw disk: 1 KiB write + fdatasync loop (the durable-commit ceiling without batching) and
//!   raw sequential 1 KiB writes without sync;
//! * durable (`Fsync`) appends of 1 KiB records with 1, 16 and 256 concurrent appenders
//!   (group commit);
//! * non-durable (`None`) appends;
//! * offset and timestamp lookup latency in a large log
//!   (`MILLPOND_BENCH_RECORDS`, default 1,000,000 records of 100 bytes);
//! * summary sections (`MILLPOND_BENCH_ONLY=none,fsync,compaction` runs only those, no
//!   criterion): `none` = none-mode appends against raw sequential `pwrite`s of the same frame
//!   size and total bytes (`MILLPOND_BENCH_SEQ_MB`, default 1024) into a fresh file on the same
//!   file system, both ending with an fdatasync, appender mix `MILLPOND_BENCH_NONE_CASES`;
//!   `fsync` = group commit against the raw write+fdatasync rate; `compaction` = fsync append
//!   latency idle / while a mostly dead log is compacted / idle again; its appender counts
//!   come from `MILLPOND_BENCH_FSYNC_CASES` (default `1,16,256`), spread round-robin over
//!   `MILLPOND_BENCH_FSYNC_LOGS` logs (default 1); each case also prints the disk's own
//!   ceiling for that many appenders on one file, rewriting cached pages and appending.
//!   Each case runs twice: on fresh logs that only grow, and on logs in a queue's steady
//!   state, where a reclaimer drops every sealed segment at once (as a queue whose messages
//!   are deleted soon after they are sent), so each new segment is a recycled file.
//!
//! After the criterion runs, a summary prints records/s, MB/s and the ratio of group-commit
//! throughput to the raw fdatasync rate. `MILLPOND_BENCH_DIR` picks the disk (default: the
//! system temp dir).
//!
//! Run: `cargo bench --bench log`

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use millpond::log::{Durability, Log, LogOptions};

const REC: usize = 1024;

/// Appender counts of the `fsync` summary: `MILLPOND_BENCH_FSYNC_CASES`, default `1,16,256`.
fn fsync_cases() -> Vec<usize> {
    std::env::var("MILLPOND_BENCH_FSYNC_CASES")
        .unwrap_or_else(|_| "1,16,256".into())
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .expect("MILLPOND_BENCH_FSYNC_CASES: counts")
        })
        .collect()
}

/// User + system CPU time this process has used so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("MILLPOND_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Appends `total` 1 KiB records from `appenders` concurrent tasks; returns elapsed time.
fn concurrent_appends(
    rt: &tokio::runtime::Runtime,
    log: &Log,
    appenders: usize,
    total: u64,
) -> Duration {
    let per = (total / appenders as u64).max(1);
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::with_capacity(appenders);
        for _ in 0..appenders {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    log.append(1, i, vec![0xAB; REC]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let el = start.elapsed();
    // Scale to exactly `total` records.
    el.mul_f64(total as f64 / (per * appenders as u64) as f64)
}

/// Runs `appenders` tasks that append 1 KiB records back to back, each waiting for its
/// previous append, for a warm-up and then `secs`; returns the records appended, the time and
/// the process CPU of the measured part. Unlike [`concurrent_appends`] no task ever waits for
/// the others, so the log sees exactly `appenders` concurrent appends throughout.
fn steady_appends(
    rt: &tokio::runtime::Runtime,
    logs: &[Log],
    appenders: usize,
    secs: Duration,
) -> (u64, Duration, Duration) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let tasks: Vec<_> = (0..appenders)
            .map(|a| {
                let log = logs[a % logs.len()].clone();
                let (count, stop) = (count.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        log.append(1, i, vec![0xAB; REC]).await.unwrap();
                        count.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (n0, t0, c0) = (count.load(Ordering::Relaxed), Instant::now(), process_cpu());
        tokio::time::sleep(secs).await;
        let (n1, el, c1) = (count.load(Ordering::Relaxed), t0.elapsed(), process_cpu());
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        (n1 - n0, el, c1 - c0)
    })
}

fn raw_fdatasync_loop(f: &File, iters: u64, pos: &mut u64) -> Duration {
    let buf = vec![0xCDu8; REC];
    let start = Instant::now();
    for _ in 0..iters {
        f.write_all_at(&buf, *pos).unwrap();
        f.sync_data().unwrap();
        *pos += REC as u64;
    }
    start.elapsed()
}

/// The disk's own ceiling for `appenders` concurrent appenders on one file, each with one
/// append outstanding: rounds of one `appenders` KiB write plus one fdatasync, as records/s.
/// No group commit can beat it, since a round cannot hold more records than there are
/// appenders and every round ends with a flush. `wrap`: rewrite the first 64 MiB of `f`
/// (pages already cached, as zeros allocated ahead are); otherwise append, into page-cache
/// pages the file never had, as a growing log does.
fn raw_round_rate(f: &File, appenders: usize, pos: &mut u64, wrap: bool) -> f64 {
    let buf = vec![0xCDu8; REC * appenders];
    let (mut rounds, start) = (0u64, Instant::now());
    while start.elapsed() < Duration::from_millis(500) {
        if wrap && *pos + buf.len() as u64 > (64 << 20) {
            *pos = 0;
        }
        f.write_all_at(&buf, *pos).unwrap();
        f.sync_data().unwrap();
        *pos += buf.len() as u64;
        rounds += 1;
    }
    (rounds * appenders as u64) as f64 / start.elapsed().as_secs_f64()
}

fn raw_write_loop(f: &File, iters: u64, pos: &mut u64) -> Duration {
    let buf = vec![0xCDu8; REC];
    let start = Instant::now();
    for _ in 0..iters {
        f.write_all_at(&buf, *pos).unwrap();
        *pos += REC as u64;
        if *pos > (512 << 20) {
            *pos = 0;
        }
    }
    start.elapsed()
}

fn raw_disk(c: &mut Criterion) {
    let dir = bench_dir();
    let f = File::create(dir.path().join("raw")).unwrap();
    let mut g = c.benchmark_group("raw_disk");
    g.throughput(Throughput::Elements(1));
    let mut pos = 0;
    g.bench_function("write_1KiB_fdatasync", |b| {
        b.iter_custom(|n| raw_fdatasync_loop(&f, n, &mut pos))
    });
    g.throughput(Throughput::Bytes(REC as u64));
    let mut pos = 0;
    g.bench_function("seq_write_1KiB_nosync", |b| {
        b.iter_custom(|n| raw_write_loop(&f, n, &mut pos))
    });
    g.finish();
}

fn durable_appends(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("append_fsync_1KiB");
    g.throughput(Throughput::Elements(1));
    for appenders in [1usize, 16, 256] {
        let dir = bench_dir();
        let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
        g.bench_function(format!("appenders_{appenders}"), |b| {
            b.iter_custom(|n| concurrent_appends(&rt, &log, appenders, n))
        });
    }
    g.finish();
}

fn none_appends(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("append_none_1KiB");
    g.throughput(Throughput::Bytes(REC as u64));
    let dir = bench_dir();
    let opts = LogOptions {
        durability: Durability::None,
        ..LogOptions::default()
    };
    let (log, _) = Log::open(dir.path(), opts).unwrap();
    g.bench_function("blocking_1_appender", |b| {
        b.iter(|| log.append_blocking(1, 1, vec![0xAB; REC]).unwrap())
    });
    g.bench_function("async_16_appenders", |b| {
        b.iter_custom(|n| concurrent_appends(&rt, &log, 16, n))
    });
    g.finish();
}

fn big_log_records() -> u64 {
    std::env::var("MILLPOND_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn build_big_log(dir: &std::path::Path, n: u64) -> Log {
    let opts = LogOptions {
        durability: Durability::None,
        ..LogOptions::default()
    };
    let (log, _) = Log::open(dir, opts).unwrap();
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let k = (n - i).min(1000);
        // Timestamps mostly increase with some jitter (non-monotonic).
        let batch = (i..i + k)
            .map(|j| (1u8, j * 10 + (j * 7919) % 13, vec![0x5A; 100]))
            .collect();
        log.append_batch_blocking(batch).unwrap();
        i += k;
    }
    log.flush().unwrap();
    eprintln!(
        "built lookup log: {n} records, {} segments, {} MiB in {:.1?}",
        log.segments().len(),
        log.disk_bytes() >> 20,
        start.elapsed()
    );
    log
}

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn lookups(c: &mut Criterion) {
    // `cargo test --benches` runs each benchmark once: keep that quick.
    let n = if bench_mode() {
        big_log_records()
    } else {
        10_000
    };
    let dir = bench_dir();
    let log = build_big_log(dir.path(), n);
    // Reopen so the sealed segments are served from their persisted, mmap'd indexes.
    drop(log);
    let t = Instant::now();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    eprintln!("reopen of {n}-record log took {:.1?}", t.elapsed());
    let mut g = c.benchmark_group(format!("lookup_{n}_records"));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    g.bench_function("read_random_offset", |b| {
        b.iter(|| {
            let o = rnd() % n;
            black_box(log.read_with(o, |_, ts, p| ts + p.len() as u64).unwrap())
        })
    });
    g.bench_function("offset_for_random_timestamp", |b| {
        b.iter(|| {
            let ts = rnd() % (n * 10);
            black_box(log.offset_for_timestamp(ts).unwrap())
        })
    });
    g.finish();
}

fn only(section: &str) -> bool {
    std::env::var("MILLPOND_BENCH_ONLY").map_or(true, |v| v.split(',').any(|x| x == section))
}

fn seq_total_bytes() -> u64 {
    std::env::var("MILLPOND_BENCH_SEQ_MB")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1024)
        << 20
}

/// On-disk size of one 1 KiB-payload record (frame overhead 32 bytes).
const FRAME: u64 = REC as u64 + 32;

/// Raw sequential write into a fresh file: `total` bytes in `FRAME`-sized `pwrite`s at
/// increasing positions (so the file grows exactly like a segment does), then one fdatasync.
/// Returns (time of the writes, time including the fdatasync).
fn raw_seq(total: u64) -> (Duration, Duration) {
    let dir = bench_dir();
    let f = File::create(dir.path().join("raw-seq")).unwrap();
    let buf = vec![0xCDu8; FRAME as usize];
    let start = Instant::now();
    let mut pos = 0;
    while pos < total {
        f.write_all_at(&buf, pos).unwrap();
        pos += FRAME;
    }
    let written = start.elapsed();
    f.sync_data().unwrap();
    (written, start.elapsed())
}

/// `None`-mode appends of `total` bytes of frames (1 KiB payloads) into a fresh log from
/// `appenders` threads (`append_blocking`) or tasks (`append`), then `flush()` (fdatasync).
/// Returns (time of the appends, time including the flush).
fn none_seq(total: u64, appenders: usize, blocking: bool) -> (Duration, Duration) {
    let dir = bench_dir();
    let opts = LogOptions {
        durability: Durability::None,
        ..LogOptions::default()
    };
    let (log, _) = Log::open(dir.path(), opts).unwrap();
    let n = total / FRAME;
    let per = n / appenders as u64;
    let start = Instant::now();
    if blocking {
        std::thread::scope(|s| {
            for _ in 0..appenders {
                let log = &log;
                s.spawn(move || {
                    for i in 0..per {
                        log.append_blocking(1, i, vec![0xAB; REC]).unwrap();
                    }
                });
            }
        });
    } else {
        let rt = runtime();
        concurrent_appends(&rt, &log, appenders, per * appenders as u64);
    }
    let written = start.elapsed();
    log.flush().unwrap();
    let all = start.elapsed();
    assert_eq!(log.next_offset(), per * appenders as u64);
    (written, all)
}

/// `MILLPOND_BENCH_NONE_CASES`, e.g. `1t,4t,16a,256a` (t = threads, a = async tasks).
fn none_cases() -> Vec<(usize, bool)> {
    let spec =
        std::env::var("MILLPOND_BENCH_NONE_CASES").unwrap_or_else(|_| "1t,4t,16a,256a".into());
    spec.split(',')
        .filter_map(|c| {
            let (n, kind) = c.trim().split_at(c.trim().len().checked_sub(1)?);
            Some((n.parse().ok()?, kind == "t"))
        })
        .collect()
}

/// None mode against the raw disk: same frame size, same total bytes, same file system
/// (`MILLPOND_BENCH_DIR`), fresh files for both, both ending with an fdatasync; run twice,
/// interleaved.
fn none_vs_raw() {
    let total = seq_total_bytes();
    let mib = |d: Duration| total as f64 / (1u64 << 20) as f64 / d.as_secs_f64();
    println!(
        "\n=== none mode vs raw sequential write: {} MiB in {FRAME}-byte frames (1 KiB payload), fresh file/log, + final fdatasync ===",
        total >> 20
    );
    for round in 1..=2 {
        let (rw, rall) = raw_seq(total);
        println!(
            "round {round}: raw pwrite {FRAME} B       : {:>7.0} MiB/s written, {:>7.0} MiB/s incl. fdatasync",
            mib(rw),
            mib(rall)
        );
        for (appenders, blocking) in none_cases() {
            let (w, all) = none_seq(total, appenders, blocking);
            let how = if blocking { "threads" } else { "tasks  " };
            println!(
                "round {round}: none, {appenders:>3} {how}     : {:>7.0} MiB/s written, {:>7.0} MiB/s incl. flush | {:.2} / {:.2} of raw",
                mib(w),
                mib(all),
                rw.as_secs_f64() / w.as_secs_f64(),
                rall.as_secs_f64() / all.as_secs_f64()
            );
        }
    }
}

/// Latencies (µs) of `Fsync` appends from `appenders` tasks for `secs`.
fn append_latencies(
    rt: &tokio::runtime::Runtime,
    log: &Log,
    appenders: usize,
    secs: f64,
) -> Vec<u64> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..appenders {
            let (log, stop) = (log.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    log.append(1, 1, vec![0xAB; REC]).await.unwrap();
                    lat.push(t.elapsed().as_micros() as u64);
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_unstable();
        all
    })
}

fn pct(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * p) as usize]
}

/// Compaction of a mostly dead log, the way a queue does it: copy the live records of the
/// oldest sealed segment forward (`append_batch`), then `truncate_front` past it; repeat.
/// Returns (segments removed, records relocated).
fn compact(log: &Log, live_every: u64, stop: &std::sync::atomic::AtomicBool) -> (u64, u64) {
    let (mut segs, mut moved) = (0, 0);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let all = log.segments();
        if all.len() < 2 || !all[0].sealed {
            break;
        }
        let (from, to) = (all[0].base_offset, all[0].next_offset);
        let live: Vec<(u8, u64, Vec<u8>)> = (from..to)
            .filter(|o| o % live_every == 0)
            .filter_map(|o| log.read(o).unwrap())
            .map(|r| (r.kind, r.timestamp_ms, r.payload))
            .collect();
        for chunk in live.chunks(256) {
            log.append_batch_blocking(chunk.to_vec()).unwrap();
        }
        moved += live.len() as u64;
        log.truncate_front(to).unwrap();
        segs += 1;
    }
    (segs, moved)
}

/// Append latency with and without a concurrent compaction of a mostly dead log (1 record
/// in 20 live, 16 MiB segments, `MILLPOND_BENCH_COMPACT_MB` of history, default 512).
fn compaction_latency() {
    let mb: u64 = std::env::var("MILLPOND_BENCH_COMPACT_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let appenders = 16;
    let secs = 3.0;
    println!(
        "\n=== fsync append latency (us), {appenders} appenders x 1 KiB, {secs} s: idle vs during compaction of {mb} MiB (1 record in 20 live, 16 MiB segments) ==="
    );
    let rt = runtime();
    for round in 1..=2 {
        let dir = bench_dir();
        let opts = LogOptions {
            segment_bytes: 16 << 20,
            ..LogOptions::default()
        };
        {
            let (log, _) = Log::open(
                dir.path(),
                LogOptions {
                    durability: Durability::None,
                    ..opts.clone()
                },
            )
            .unwrap();
            let n = (mb << 20) / FRAME;
            let mut i = 0;
            while i < n {
                let k = (n - i).min(1000);
                log.append_batch_blocking((0..k).map(|_| (1u8, 1, vec![0x11; REC])).collect())
                    .unwrap();
                i += k;
            }
            log.flush().unwrap();
        }
        let (log, _) = Log::open(dir.path(), opts).unwrap();
        // Let the disk settle (writeback, discards of the previous round's deleted files).
        std::thread::sleep(Duration::from_secs(2));
        let idle = append_latencies(&rt, &log, appenders, secs);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let t = Instant::now();
        let (busy, (segs, moved)) = std::thread::scope(|s| {
            let c = s.spawn(|| compact(&log, 20, &stop));
            let busy = append_latencies(&rt, &log, appenders, secs);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            (busy, c.join().unwrap())
        });
        let el = t.elapsed();
        // Idle again: the order of the phases should not decide the comparison.
        let idle2 = append_latencies(&rt, &log, appenders, secs);
        for (name, v) in [
            ("idle", &idle),
            ("compacting", &busy),
            ("idle again", &idle2),
        ] {
            println!(
                "round {round}: {name:<11} appends {:>7}: p50 {:>6} p99 {:>6} p99.9 {:>6} max {:>6}",
                v.len(),
                pct(v, 0.5),
                pct(v, 0.99),
                pct(v, 0.999),
                v.last().copied().unwrap_or(0)
            );
        }
        println!(
            "round {round}: compaction removed {segs} segments and relocated {moved} records in {el:.1?}"
        );
    }
}

/// Fixed-duration measurements for the headline ratio.
fn summary() {
    if only("compaction") {
        compaction_latency();
    }
    if only("none") {
        none_vs_raw();
    }
    if !only("fsync") {
        return;
    }
    // The disk's fdatasync rate drifts (other tenants), so each measurement is bracketed by
    // raw measurements and compared with their mean.
    let secs = Duration::from_secs(3);
    let dir = bench_dir();
    let f = File::create(dir.path().join("raw")).unwrap();
    let mut pos = 0;
    // The log writes into zeros it allocated ahead (no size change, so no inode write per
    // fdatasync), which syncs faster than appending. Raw is measured both ways and the log
    // is compared with the faster, so the ratio credits group commit only.
    let zeroed = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("raw-zeroed"))
        .unwrap();
    zeroed.write_all_at(&vec![0u8; 64 << 20], 0).unwrap();
    zeroed.sync_all().unwrap();
    let mut zpos = 0;
    let raw_rate = |pos: &mut u64, zpos: &mut u64| {
        let rate = |f: &File, pos: &mut u64| {
            let mut n = 0u64;
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(500) {
                raw_fdatasync_loop(f, 10, pos);
                n += 10;
            }
            n as f64 / start.elapsed().as_secs_f64()
        };
        let appending = rate(&f, pos);
        if *zpos > (60 << 20) {
            *zpos = 0;
        }
        appending.max(rate(&zeroed, zpos))
    };
    println!("\n=== summary (1 KiB records, {secs:?} each; raw = write 1 KiB + fdatasync, the faster of appending and overwriting zeros) ===");
    let rt = runtime();
    let logs_per_case = fsync_logs();
    for appenders in fsync_cases() {
        let before = raw_rate(&mut pos, &mut zpos);
        let dirs: Vec<_> = (0..logs_per_case.min(appenders))
            .map(|_| bench_dir())
            .collect();
        let logs: Vec<Log> = dirs
            .iter()
            .map(|d| Log::open(d.path(), LogOptions::default()).unwrap().0)
            .collect();
        let (total, el, cpu) = steady_appends(&rt, &logs, appenders, secs);
        drop(logs);
        let mid = raw_rate(&mut pos, &mut zpos);
        let recycling = recycling_appends(&rt, logs_per_case.min(appenders), appenders, secs);
        let after = raw_rate(&mut pos, &mut zpos);
        let warm = raw_round_rate(&zeroed, appenders, &mut zpos, true);
        let fresh = {
            let d = bench_dir();
            let f = File::create(d.path().join("raw-rounds")).unwrap();
            raw_round_rate(&f, appenders, &mut 0, false)
        };
        let line = |what: &str, (total, el, cpu): (u64, Duration, Duration), a: f64, b: f64| {
            let raw = (a + b) / 2.0;
            let rps = total as f64 / el.as_secs_f64();
            println!(
                "fsync appends, {appenders:>3} appenders, {} log(s), {what}: {rps:>8.0} rec/s {:>6.1} MB/s | raw {raw:>6.0}/s ({a:.0}..{b:.0}) | {:>6.1} x raw | cpu {:.0}% {:.2} us/rec",
                dirs.len(),
                rps * REC as f64 / 1e6,
                rps / raw,
                cpu.as_secs_f64() / el.as_secs_f64() * 100.0,
                cpu.as_secs_f64() * 1e6 / total as f64,
            );
        };
        line("growing", (total, el, cpu), before, mid);
        line("recycling", recycling, mid, after);
        let raw = (before + after) / 2.0;
        println!(
            "  disk ceiling, rounds of {appenders} KiB write + fdatasync: {warm:>8.0} rec/s ({:.1} x raw) rewriting cached pages, {fresh:>8.0} rec/s ({:.1} x raw) appending",
            warm / raw,
            fresh / raw,
        );
    }
}

/// [`steady_appends`] on `logs` fresh logs in a queue's steady state: each log is first
/// filled past one roll and truncated, so a spare file waits for its next roll, and while the
/// appenders run a reclaimer drops every sealed segment as soon as it appears.
fn recycling_appends(
    rt: &tokio::runtime::Runtime,
    logs: usize,
    appenders: usize,
    secs: Duration,
) -> (u64, Duration, Duration) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dirs: Vec<_> = (0..logs).map(|_| bench_dir()).collect();
    let logs: Vec<Log> = dirs
        .iter()
        .map(|d| Log::open(d.path(), LogOptions::default()).unwrap().0)
        .collect();
    let drop_sealed = |log: &Log| {
        if let Some(active) = log.segments().last() {
            log.truncate_front(active.base_offset).unwrap();
        }
    };
    for log in &logs {
        while log.segments().len() < 2 {
            log.append_batch_blocking(vec![(1, 0, vec![0xAB; REC]); 256])
                .unwrap();
        }
        drop_sealed(log);
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                logs.iter().for_each(drop_sealed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let r = steady_appends(rt, &logs, appenders, secs);
        stop.store(true, Ordering::Relaxed);
        r
    })
}

/// Logs the appenders of each `fsync` summary case are spread over:
/// `MILLPOND_BENCH_FSYNC_LOGS`, default 1.
fn fsync_logs() -> usize {
    std::env::var("MILLPOND_BENCH_FSYNC_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(1)
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = raw_disk, durable_appends, none_appends, lookups
}

fn main() {
    // `MILLPOND_BENCH_ONLY=none,fsync,...` runs only those summary sections (no criterion).
    if std::env::var_os("MILLPOND_BENCH_ONLY").is_none() {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    if bench_mode() {
        summary();
    }
}
