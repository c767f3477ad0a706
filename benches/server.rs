//! End-to-end load bench: a real broker on loopback, driven over HTTP/1.1 keep-alive
//! connections. Prints requests/s and latency percentiles per scenario, plus start-up time and
//! idle memory of the release binary.
//!
//! Run all:        cargo bench --bench server
//! Run some:       cargo bench --bench server -- health startup ('sns-publish$': that one only)
//! Knobs (env):    BENCH_SECS (default 5), BENCH_CONNS (default 64),
//!                 BENCH_SLICES (default 3: the compared scenarios, health through
//!                 sns-publish-raw, each run in this many turns of BENCH_SECS / BENCH_SLICES,
//!                 interleaved with each other),
//!                 BENCH_KINESIS_RECORDS (largest shard of kinesis-get: 10^5, 10^6 (default) or 10^7)
//!                 BENCH_RESTART_MESSAGES (live messages of sqs-restart, default 1,000,000)
//!                 BENCH_HISTORY_GB (sqs-restart: GB of message bodies sent and deleted through
//!                 the queue, default 0.1; 0 = none), BENCH_HISTORY_ORDER (`before` (default):
//!                 history, then the live messages; `after`: live messages first, so they pin
//!                 the front of the log while the history flows past them)
//!                 BENCH_DURABILITY (`fsync` (default), `interval=<ms>` or `none`: the
//!                 broker's mode, to see what durability costs)
//!                 BENCH_SNS_BYTES (the sns-publish message, default 256 bytes)
//! Also: sns-publish-fifo (a FIFO topic with 10 FIFO queues; one publish at a time per topic,
//! so its rate is the inverse of a publish's latency).
//!
//! The broker runs in this process on its own runtime (durable `fsync` mode, temp data dir);
//! the load generator runs on another. Both share the machine's cores, as a real client would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;

// The same allocator as the `millpond` binary, so the in-process broker measures what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

#[derive(Default)]
struct LoadResult {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    /// CPU time of the whole process (broker and load generator) during the run: per request,
    /// a cost figure that other load on the machine disturbs far less than requests/s.
    cpu: Duration,
}

/// One scenario of the interleaved set: what it sends and what its slices measured so far.
struct Run {
    name: &'static str,
    label: &'static str,
    conns: usize,
    make: MakeRequest,
    errors_expected: bool,
    result: LoadResult,
}

impl Run {
    fn new(name: &'static str, label: &'static str, conns: usize, make: MakeRequest) -> Self {
        Run {
            name,
            label,
            conns,
            make,
            errors_expected: false,
            result: LoadResult::default(),
        }
    }
}

/// User + system CPU time this process has used so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

impl LoadResult {
    /// Adds another slice of the same scenario.
    fn add(&mut self, other: LoadResult) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        self.cpu += other.cpu;
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn report(&mut self, name: &str, conns: usize) {
        let (p50, p99) = (self.percentile(0.50), self.percentile(0.99));
        let cpu_us = self.cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64;
        println!(
            "{name:<28} conns={conns:<3} {:>10.0} req/s  p50 {p50:>7.3} ms  p99 {p99:>7.3} ms  cpu {cpu_us:>6.1} us/req  errors {}",
            self.rate(),
            self.errors
        );
    }
}

/// Drives `conns` keep-alive connections for `secs`, each sending requests back to back.
/// `slice` numbers the call among several of one scenario, so request numbers never repeat.
async fn load(
    addr: SocketAddr,
    conns: usize,
    secs: f64,
    slice: u64,
    make: MakeRequest,
) -> LoadResult {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (stop, make) = (stop.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut send = connect(addr).await;
            let (mut n, mut errors, mut lat) = (0u64, 0u64, Vec::with_capacity(1 << 16));
            let mut i = c as u64 * 1_000_000_000 + slice * 10_000_000;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                i += 1;
                match send.send_request(make(i)).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                n += 1;
            }
            (n, errors, lat)
        }));
    }
    finish(stop, tasks, secs, started).await
}

/// One HTTP/1.1 keep-alive connection, its driver running on the runtime.
async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(conn);
    send
}

type ConnResult = (u64, u64, Vec<u32>);

/// Lets the connection tasks run for `secs`, stops them and adds up what they measured.
async fn finish(
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<ConnResult>>,
    secs: f64,
    started: Instant,
) -> LoadResult {
    let cpu = process_cpu();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut result = LoadResult::default();
    for t in tasks {
        let (n, e, l) = t.await.expect("connection task");
        result.requests += n;
        result.errors += e;
        result.latencies_us.extend(l);
    }
    result.elapsed = started.elapsed();
    result.cpu = process_cpu().saturating_sub(cpu);
    result
}

fn post(
    addr: SocketAddr,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut b = Request::post(format!("http://{addr}/")).header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).expect("request")
}

/// One JSON request on a fresh connection, for setting up a scenario.
async fn call(addr: SocketAddr, target: &str, body: serde_json::Value) -> serde_json::Value {
    let ct = if target.starts_with("Kinesis") {
        "application/x-amz-json-1.1"
    } else {
        "application/x-amz-json-1.0"
    };
    let mut send = connect(addr).await;
    let resp = send
        .send_request(post(
            addr,
            &[("content-type", ct), ("x-amz-target", target)],
            body.to_string().into_bytes(),
        ))
        .await
        .expect("response");
    json_answer(resp, target).await
}

/// The JSON body of a setup call's answer; panics (naming `what`) unless it succeeded.
async fn json_answer(
    resp: hyper::Response<hyper::body::Incoming>,
    what: &str,
) -> serde_json::Value {
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    assert!(status.is_success(), "{what}: {status} {v}");
    v
}

fn sqs_req(addr: SocketAddr, op: &str, body: &serde_json::Value) -> Request<Full<Bytes>> {
    sqs_req_bytes(addr, op, body.to_string().into_bytes())
}

/// A JSON SQS request whose body was serialized once up front: the load generator shares the
/// two cores with the broker, so per-request JSON encoding on the client side would be
/// charged to the broker's requests/s.
fn sqs_req_bytes(addr: SocketAddr, op: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let target = format!("AmazonSQS.{op}");
    post(
        addr,
        &[
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", &target),
        ],
        body,
    )
}

fn kinesis_req(addr: SocketAddr, op: &str, body: &serde_json::Value) -> Request<Full<Bytes>> {
    let target = format!("Kinesis_20131202.{op}");
    post(
        addr,
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", &target),
        ],
        body.to_string().into_bytes(),
    )
}

async fn create_queue(addr: SocketAddr, name: &str, attrs: serde_json::Value) -> String {
    let r = call(
        addr,
        "AmazonSQS.CreateQueue",
        serde_json::json!({"QueueName": name, "Attributes": attrs}),
    )
    .await;
    r["QueueUrl"].as_str().expect("QueueUrl").to_string()
}

/// Send + receive + delete, back to back on each connection; one sample per round trip.
async fn roundtrips(addr: SocketAddr, conns: usize, secs: f64, url: String) -> LoadResult {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (stop, url) = (stop.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut send = connect(addr).await;
            let mut once = async |op: &str, body: serde_json::Value| -> Option<serde_json::Value> {
                let resp = send.send_request(sqs_req(addr, op, &body)).await.ok()?;
                let ok = resp.status().is_success();
                let bytes = resp.into_body().collect().await.ok()?.to_bytes();
                ok.then(|| serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
            };
            let (mut n, mut errors, mut lat) = (0u64, 0u64, Vec::new());
            let body = "x".repeat(256);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = async {
                    once("SendMessage", serde_json::json!({"QueueUrl": url, "MessageBody": body, "MessageAttributes": {"c": {"DataType": "String", "StringValue": c.to_string()}}})).await?;
                    let r = once("ReceiveMessage", serde_json::json!({"QueueUrl": url, "WaitTimeSeconds": 1})).await?;
                    let handle = r["Messages"][0]["ReceiptHandle"].as_str()?.to_string();
                    once("DeleteMessage", serde_json::json!({"QueueUrl": url, "ReceiptHandle": handle})).await
                }
                .await
                .is_some();
                if !ok {
                    errors += 1;
                }
                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                n += 1;
            }
            (n, errors, lat)
        }));
    }
    finish(stop, tasks, secs, started).await
}

/// Exec → first answered health check, and resident memory once idle, of the release binary.
fn startup(runs: usize) {
    let exe = env!("CARGO_BIN_EXE_millpond");
    let mut times = Vec::new();
    let mut rss_kib = 0;
    for _ in 0..runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr").port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let t = Instant::now();
        let mut child = std::process::Command::new(exe)
            .args([
                "--listen",
                &addr.to_string(),
                "--log-level",
                "error",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                use std::io::{Read, Write};
                let _ = s.write_all(
                    b"GET /_millpond/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                let mut buf = [0u8; 16];
                if matches!(s.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200") {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            if let Some(line) = status.lines().find(|l| l.starts_with("VmRSS:")) {
                rss_kib = rss_kib.max(
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                );
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<28} runs={runs:<3} exec→first answer: median {:.1} ms, max {:.1} ms; idle RSS max {:.1} MiB",
        "startup",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        rss_kib as f64 / 1024.0
    );
}

fn main() {
    millpond::server::tune_allocator();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // A name picks every scenario it is part of; `name$` only the one of exactly that name.
    let wanted = |name: &str| {
        args.is_empty()
            || args.iter().any(|a| match a.strip_suffix('$') {
                Some(exact) => name == exact,
                None => name.contains(a.as_str()),
            })
    };
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let conns: usize = std::env::var("BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);

    if wanted("startup") {
        startup(20);
    }

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = millpond::config::Config::for_tests(dir.path());
    if let Ok(d) = std::env::var("BENCH_DURABILITY") {
        config.durability = d
            .parse()
            .expect("BENCH_DURABILITY: fsync, interval=<ms> or none");
    }
    let server = server_rt
        .block_on(millpond::server::start(config))
        .expect("server");
    let addr = server.local_addr;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A fresh data dir makes the broker generate its SNS signing key in the background; the
    // certificate is served once it exists, so waiting for it keeps that work out of the runs.
    client_rt.block_on(async {
        let mut send = connect(addr).await;
        let req = Request::get(format!(
            "http://{addr}/_millpond/sns/SimpleNotificationService.pem"
        ))
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("request");
        let resp = send.send_request(req).await.expect("certificate");
        let _ = resp.into_body().collect().await;
    });

    // The scenarios that the issues compare with each other run interleaved: each runs
    // BENCH_SLICES times for BENCH_SECS / BENCH_SLICES, in turn with the others, so a host
    // whose speed drifts over seconds (as this shared VM's does, by up to 20-40%) slows them
    // alike and their ratios hold still.
    let slices: u64 = std::env::var("BENCH_SLICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let mut runs: Vec<Run> = Vec::new();
    if wanted("health") {
        let make: MakeRequest = Arc::new(move |_| {
            Request::get(format!("http://{addr}/_millpond/health"))
                .header("host", addr.to_string())
                .body(Full::new(Bytes::new()))
                .expect("request")
        });
        runs.push(Run::new("health", "health", conns, make));
    }
    if wanted("unknown-action") {
        let make: MakeRequest = Arc::new(move |_| {
            post(
                addr,
                &[
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amz-target", "AmazonSQS.NoSuchAction"),
                ],
                b"{}".to_vec(),
            )
        });
        // Errors are the expected answer here, so they count as served requests.
        let mut run = Run::new("unknown-action", "unknown-action (json error)", conns, make);
        run.errors_expected = true;
        runs.push(run);
    }
    let body256 = "m".repeat(256);
    if wanted("sqs-send") {
        let url = client_rt.block_on(create_queue(addr, "bench-send", serde_json::json!({})));
        let body =
            Bytes::from(serde_json::json!({"QueueUrl": url, "MessageBody": body256}).to_string());
        let make: MakeRequest = Arc::new(move |_| sqs_req_bytes(addr, "SendMessage", body.clone()));
        runs.push(Run::new("sqs-send", "sqs SendMessage 256 B", conns, make));
    }
    if wanted("sqs-batch") {
        let url = client_rt.block_on(create_queue(addr, "bench-batch", serde_json::json!({})));
        let entries: Vec<_> = (0..10)
            .map(|i| serde_json::json!({"Id": format!("e{i}"), "MessageBody": body256}))
            .collect();
        let body =
            Bytes::from(serde_json::json!({"QueueUrl": url, "Entries": entries}).to_string());
        let make: MakeRequest =
            Arc::new(move |_| sqs_req_bytes(addr, "SendMessageBatch", body.clone()));
        runs.push(Run::new(
            "sqs-batch",
            "sqs SendMessageBatch 10x256 B",
            conns,
            make,
        ));
    }
    if wanted("sqs-fifo-batch") {
        let url = client_rt.block_on(create_queue(
            addr,
            "bench.fifo",
            serde_json::json!({"FifoQueue": "true", "ContentBasedDeduplication": "false", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"}),
        ));
        // `i` is unique across slices too, so no entry is a duplicate that costs no write.
        let make: MakeRequest = Arc::new(move |i| {
            let entries: Vec<_> = (0..10)
                .map(|e| serde_json::json!({"Id": format!("e{e}"), "MessageBody": "m".repeat(256), "MessageGroupId": format!("g{}", (i * 10 + e) % 100), "MessageDeduplicationId": format!("{i}-{e}")}))
                .collect();
            sqs_req(
                addr,
                "SendMessageBatch",
                &serde_json::json!({"QueueUrl": url, "Entries": entries}),
            )
        });
        runs.push(Run::new(
            "sqs-fifo-batch",
            "sqs FIFO batch, 100 groups",
            conns,
            make,
        ));
    }
    // A raw delivery of an envelope-sized message (~1,100 bytes) costs what an enveloped one
    // does, less the signature and the envelope's making: the way to tell them apart.
    let sns_bytes: usize = std::env::var("BENCH_SNS_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    for (raw, name, label) in [
        (false, "sns-publish", "sns Publish, 10 sqs subs"),
        (true, "sns-publish-raw", "sns Publish, 10 raw sqs subs"),
    ] {
        if !wanted(name) {
            continue;
        }
        let topic = client_rt.block_on(sns_topic_with_queues(addr, 10, raw, false));
        let form = format!(
            "Action=Publish&TopicArn={}&Message={}",
            topic.replace(':', "%3A"),
            "p".repeat(sns_bytes)
        );
        let make: MakeRequest = Arc::new(move |_| {
            post(
                addr,
                &[("content-type", "application/x-www-form-urlencoded")],
                form.clone().into_bytes(),
            )
        });
        runs.push(Run::new(name, label, 16, make));
    }
    if wanted("sns-publish-fifo") {
        // One publish at a time per FIFO topic (its group order and deduplication): this is
        // the latency of one, seen as a rate, not a throughput to compare.
        let topic = client_rt.block_on(sns_topic_with_queues(addr, 10, false, true));
        let arn = topic.replace(':', "%3A");
        let body = "p".repeat(sns_bytes);
        let make: MakeRequest = Arc::new(move |i| {
            let form = format!(
                "Action=Publish&TopicArn={arn}&Message={body}&MessageGroupId=g{}&MessageDeduplicationId=d{i}",
                i % 100
            );
            post(
                addr,
                &[("content-type", "application/x-www-form-urlencoded")],
                form.into_bytes(),
            )
        });
        runs.push(Run::new(
            "sns-publish-fifo",
            "sns Publish FIFO, 10 FIFO subs",
            16,
            make,
        ));
    }
    for slice in 0..slices {
        for run in &mut runs {
            let r = client_rt.block_on(load(
                addr,
                run.conns,
                secs / slices as f64,
                slice,
                run.make.clone(),
            ));
            run.result.add(r);
        }
    }
    let rate = |name: &str| {
        runs.iter()
            .find(|r| r.name == name)
            .map_or(0.0, |r| r.result.rate())
    };
    let (health, single_rate) = (rate("health"), rate("sqs-send"));
    let batch_msgs = rate("sqs-batch") * 10.0;
    for run in &mut runs {
        if run.errors_expected {
            run.result.errors = 0;
        }
        run.result.report(run.label, run.conns);
        let r = run.result.rate();
        let line = |what: &str, n: f64, unit: &str, tail: String| {
            println!("{:<28} {n:>10.0} {unit} ({tail})", format!("  = {what}"))
        };
        match run.name {
            "sqs-send" if health > 0.0 => line(
                "requests",
                r,
                "req/s",
                format!("{:.1}% of health", 100.0 * r / health),
            ),
            "sqs-batch" => line(
                "messages",
                r * 10.0,
                "msg/s",
                format!("{:.1}x single sends", r * 10.0 / single_rate.max(1.0)),
            ),
            "sqs-fifo-batch" => line(
                "messages",
                r * 10.0,
                "msg/s",
                format!(
                    "{:.0}% of standard batch",
                    100.0 * r * 10.0 / batch_msgs.max(1.0)
                ),
            ),
            "sns-publish" | "sns-publish-raw" | "sns-publish-fifo" => line(
                "deliveries",
                r * 10.0,
                "deliveries/s",
                format!(
                    "{:.0}% of SendMessageBatch msg/s",
                    100.0 * r * 10.0 / batch_msgs.max(1.0)
                ),
            ),
            _ => {}
        }
    }
    if wanted("sqs-roundtrip") {
        let url = client_rt.block_on(create_queue(addr, "bench-rt", serde_json::json!({})));
        client_rt
            .block_on(roundtrips(addr, 16, secs, url))
            .report("sqs send+receive+delete", 16);
    }
    let mut log_mb = 0.0;
    if wanted("kinesis-put") {
        log_mb = client_rt.block_on(durable_log_append_mb(secs));
        println!(
            "{:<28} {:>10.1} MB/s (256 appenders, 1 KiB records, fsync mode)",
            "log durable append", log_mb
        );
    }
    if wanted("kinesis-put") {
        client_rt.block_on(call(
            addr,
            "Kinesis_20131202.CreateStream",
            serde_json::json!({"StreamName": "bench", "ShardCount": 4}),
        ));
        let data = base64_of(&vec![b'k'; 1024]);
        let make: MakeRequest = Arc::new(move |i| {
            let records: Vec<_> = (0..500)
                .map(|r| serde_json::json!({"Data": data, "PartitionKey": format!("{i}-{r}")}))
                .collect();
            kinesis_req(
                addr,
                "PutRecords",
                &serde_json::json!({"StreamName": "bench", "Records": records}),
            )
        });
        let mut r = client_rt.block_on(load(addr, 16, secs, 0, make));
        let mb = r.rate() * 500.0 * 1024.0 / (1 << 20) as f64;
        r.report("kinesis PutRecords 500x1 KiB", 16);
        println!(
            "{:<28} {:>10.1} MB/s of record data ({:.0}% of durable log append in this run)",
            "  = throughput",
            mb,
            100.0 * mb / log_mb.max(0.001)
        );
    }
    if wanted("kinesis-get") {
        client_rt.block_on(kinesis_get(addr));
    }
    server_rt.block_on(async { server.shutdown().await.expect("shutdown") });
    drop(dir);
    if wanted("sqs-restart") {
        let n = std::env::var("BENCH_RESTART_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        sqs_restart(n);
    }
}

/// The storage engine alone: 256 concurrent durable appends of 1 KiB records, in MB/s, as the
/// ceiling Kinesis PutRecords is compared against.
async fn durable_log_append_mb(secs: f64) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let (log, _) =
        millpond::log::Log::open(dir.path(), millpond::log::LogOptions::default()).expect("log");
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..256 {
        let (log, stop) = (log.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                log.append(1, 0, vec![b'l'; 1024]).await.expect("append");
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut n = 0;
    for t in tasks {
        n += t.await.expect("appender");
    }
    n as f64 * 1024.0 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A topic with `n` SQS subscriptions. `raw`: RawMessageDelivery, so deliveries carry the
/// bare message (no JSON envelope, so no signature per publish). `fifo`: a FIFO topic and
/// FIFO queues.
async fn sns_topic_with_queues(addr: SocketAddr, n: usize, raw: bool, fifo: bool) -> String {
    let query = |form: String| async move {
        let mut send = connect(addr).await;
        let resp = send
            .send_request(post(
                addr,
                &[("content-type", "application/x-www-form-urlencoded")],
                form.into_bytes(),
            ))
            .await
            .expect("response");
        String::from_utf8_lossy(&resp.into_body().collect().await.expect("body").to_bytes())
            .into_owned()
    };
    let kind = if raw { "raw" } else { "env" };
    let (suffix, topic_attrs) = match fifo {
        true => (
            ".fifo",
            "&Attributes.entry.1.key=FifoTopic&Attributes.entry.1.value=true",
        ),
        false => ("", ""),
    };
    let xml = query(format!(
        "Action=CreateTopic&Name=bench-topic-{kind}{suffix}{topic_attrs}"
    ))
    .await;
    let topic = xml
        .split("<TopicArn>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("TopicArn")
        .to_string();
    for q in 0..n {
        let attrs = match fifo {
            true => serde_json::json!({"FifoQueue": "true"}),
            false => serde_json::json!({}),
        };
        create_queue(addr, &format!("bench-{kind}-{q}{suffix}"), attrs).await;
        let arn = format!("arn:aws:sqs:us-east-1:000000000000:bench-{kind}-{q}{suffix}");
        query(format!(
            "Action=Subscribe&TopicArn={}&Protocol=sqs&Endpoint={}{}",
            topic.replace(':', "%3A"),
            arn.replace(':', "%3A"),
            if raw {
                "&Attributes.entry.1.key=RawMessageDelivery&Attributes.entry.1.value=true"
            } else {
                ""
            }
        ))
        .await;
    }
    topic
}

/// GetRecords of 10,000 records (MB/s), and AT_SEQUENCE_NUMBER iterator latency as a shard grows.
async fn kinesis_get(addr: SocketAddr) {
    call(
        addr,
        "Kinesis_20131202.CreateStream",
        serde_json::json!({"StreamName": "bench-get", "ShardCount": 1}),
    )
    .await;
    let data = base64_of(&vec![b'g'; 1024]);
    let mut first_seqs = Vec::new();
    let mut total = 0usize;
    let max: usize = std::env::var("BENCH_KINESIS_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let targets: Vec<usize> = [100_000usize, 1_000_000, 10_000_000]
        .into_iter()
        .filter(|&t| t <= max)
        .collect();
    for target in targets {
        while total < target {
            let records: Vec<_> = (0..500)
                .map(|r| serde_json::json!({"Data": data, "PartitionKey": r.to_string()}))
                .collect();
            let r = call(
                addr,
                "Kinesis_20131202.PutRecords",
                serde_json::json!({"StreamName": "bench-get", "Records": records}),
            )
            .await;
            if total % 50_000 == 0 {
                first_seqs.push(
                    r["Records"][0]["SequenceNumber"]
                        .as_str()
                        .expect("seq")
                        .to_string(),
                );
            }
            total += 500;
        }
        let mut lat = Vec::new();
        for (i, seq) in first_seqs.iter().cycle().take(400).enumerate() {
            let t = Instant::now();
            let r = call(addr, "Kinesis_20131202.GetShardIterator", serde_json::json!({"StreamName": "bench-get", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": seq})).await;
            if i >= 20 {
                lat.push(t.elapsed().as_micros() as u32);
            }
            assert!(r["ShardIterator"].is_string());
        }
        let mut res = LoadResult {
            requests: lat.len() as u64,
            errors: 0,
            elapsed: Duration::from_secs(1),
            latencies_us: lat,
            cpu: Duration::ZERO,
        };
        println!(
            "{:<28} records={total:<8} p50 {:.3} ms  p99 {:.3} ms (new connection per call)",
            "kinesis AT_SEQUENCE_NUMBER",
            res.percentile(0.5),
            res.percentile(0.99)
        );
    }
    let it = call(addr, "Kinesis_20131202.GetShardIterator", serde_json::json!({"StreamName": "bench-get", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"})).await;
    let mut iterator = it["ShardIterator"].as_str().expect("iterator").to_string();
    let t = Instant::now();
    let (mut bytes, mut calls) = (0usize, 0);
    while calls < 20 {
        let r = call(
            addr,
            "Kinesis_20131202.GetRecords",
            serde_json::json!({"ShardIterator": iterator, "Limit": 10000}),
        )
        .await;
        bytes += r["Records"].as_array().map(|a| a.len()).unwrap_or(0) * 1024;
        iterator = r["NextShardIterator"].as_str().expect("next").to_string();
        calls += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{:<28} {:>10.1} MB/s of record data ({calls} calls x 10,000 records, JSON)",
        "kinesis GetRecords",
        bytes as f64 / (1 << 20) as f64 / secs
    );
}

/// One SQS JSON call on an open connection.
async fn sqs_on(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    op: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    send.ready().await.expect("connection");
    let resp = send
        .send_request(sqs_req(addr, op, body))
        .await
        .expect("response");
    json_answer(resp, op).await
}

/// Pushes `gb` GB of message bodies through the queue: 32 connections each send a batch of
/// 10 x 25,000-byte messages, receive up to 10 and delete what they received; at the end the
/// queue is drained of history. Returns the body bytes sent.
async fn sqs_history(addr: SocketAddr, url: &str, gb: f64) -> u64 {
    const BODY: usize = 25_000;
    let target = (gb * 1e9) as u64;
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let body = "h".repeat(BODY);
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (sent, url, body) = (sent.clone(), url.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut send = connect(addr).await;
            let mut i = 0u64;
            loop {
                let drain = sent.fetch_add((10 * BODY) as u64, Ordering::Relaxed) >= target;
                if !drain {
                    let entries: Vec<_> = (0..10)
                        .map(|e| serde_json::json!({"Id": format!("h{w}-{i}-{e}"), "MessageBody": body}))
                        .collect();
                    let req = serde_json::json!({"QueueUrl": url, "Entries": entries});
                    sqs_on(&mut send, addr, "SendMessageBatch", &req).await;
                    i += 1;
                }
                let r = sqs_on(
                    &mut send,
                    addr,
                    "ReceiveMessage",
                    &serde_json::json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 600}),
                )
                .await;
                let msgs = r["Messages"].as_array().cloned().unwrap_or_default();
                if msgs.is_empty() && drain {
                    break;
                }
                let entries: Vec<_> = msgs
                    .iter()
                    .enumerate()
                    .map(|(k, m)| serde_json::json!({"Id": format!("d{k}"), "ReceiptHandle": m["ReceiptHandle"]}))
                    .collect();
                if !entries.is_empty() {
                    let req = serde_json::json!({"QueueUrl": url, "Entries": entries});
                    sqs_on(&mut send, addr, "DeleteMessageBatch", &req).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("history task");
    }
    target
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Fills a queue with `n` messages through the binary (after or before pushing
/// `BENCH_HISTORY_GB` of sent-and-deleted history through it), SIGKILLs it, and times the
/// restart to the first answered ReceiveMessage.
fn sqs_restart(n: usize) {
    let history_gb: f64 = std::env::var("BENCH_HISTORY_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.1);
    let history_after = std::env::var("BENCH_HISTORY_ORDER").is_ok_and(|v| v == "after");
    let exe = env!("CARGO_BIN_EXE_millpond");
    let dir = tempfile::tempdir().expect("temp dir");
    let spawn = || {
        let mut child = std::process::Command::new(exe)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-level",
                "error",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("line");
        let addr: SocketAddr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .expect("address");
        (child, addr)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut child, addr) = spawn();
    let fill = Instant::now();
    let history = |url: &str| {
        if history_gb > 0.0 {
            let t = Instant::now();
            let bytes = rt.block_on(sqs_history(addr, url, history_gb));
            println!(
                "{:<28} {:.1} GB of bodies sent and deleted in {:.1} s; data dir now {:.2} GB",
                "sqs restart: history",
                bytes as f64 / 1e9,
                t.elapsed().as_secs_f64(),
                dir_bytes(dir.path()) as f64 / 1e9
            );
        }
    };
    let delay = if history_after { 900 } else { 0 };
    let url = rt.block_on(create_queue(addr, "bench-restart", serde_json::json!({})));
    if !history_after {
        history(&url);
    }
    rt.block_on(async {
        let entries: Vec<_> = (0..10)
            // With history after the fill, the live messages are delayed (15 min) so that the
            // history's receivers cannot see (and delete) them.
            .map(|i| serde_json::json!({"Id": format!("e{i}"), "MessageBody": "r".repeat(256), "DelaySeconds": delay}))
            .collect();
        let body = serde_json::json!({"QueueUrl": url, "Entries": entries});
        let make: MakeRequest = Arc::new(move |_| sqs_req(addr, "SendMessageBatch", &body));
        // Run until n messages are in: each successful call adds 10.
        let mut sent = 0u64;
        while (sent as usize) < n {
            let r = load(addr, 64, 2.0, 0, make.clone()).await;
            sent += (r.requests - r.errors) * 10;
        }
        println!(
            "{:<28} {} messages in {:.1} s",
            "sqs restart: filled",
            sent,
            fill.elapsed().as_secs_f64()
        );
    });
    if history_after {
        history(&url);
    }
    println!(
        "{:<28} {:.2} GB in the data dir at the SIGKILL",
        "sqs restart: on disk",
        dir_bytes(dir.path()) as f64 / 1e9
    );
    let _ = child.kill();
    let _ = child.wait();
    let t = Instant::now();
    let (mut child, addr) = spawn();
    let listening = t.elapsed();
    let (received, served) = rt.block_on(async {
        let r = call(
            addr,
            "AmazonSQS.ReceiveMessage",
            serde_json::json!({"QueueUrl": url, "MaxNumberOfMessages": 10}),
        )
        .await;
        let got = r["Messages"].as_array().map(|a| a.len()).unwrap_or(0);
        let served = t.elapsed();
        let a = call(
            addr,
            "AmazonSQS.GetQueueAttributes",
            serde_json::json!({"QueueUrl": url, "AttributeNames": ["All"]}),
        )
        .await;
        let count = |k: &str| {
            a["Attributes"][k]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        println!(
            "{:<28} {} visible, {} in flight, {} delayed after the restart",
            "sqs restart: live",
            count("ApproximateNumberOfMessages"),
            count("ApproximateNumberOfMessagesNotVisible"),
            count("ApproximateNumberOfMessagesDelayed")
        );
        (got, served)
    });
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    // Anonymous memory is the broker's own (message table, indexes); file pages are mapped
    // log segments, which the kernel can drop at will.
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0) as f64
            / 1024.0
    };
    println!(
        "{:<28} listening after {:.0} ms, first ReceiveMessage ({} msgs) after {:.0} ms; RSS {:.0} MiB (anon {:.0}, file {:.0})",
        "sqs restart (after SIGKILL)",
        listening.as_secs_f64() * 1000.0,
        received,
        served.as_secs_f64() * 1000.0,
        kib("VmRSS:"),
        kib("RssAnon:"),
        kib("RssFile:")
    );
    let _ = child.kill();
    let _ = child.wait();
}
