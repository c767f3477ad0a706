//! End-to-end load bench: a real broker on loopback, driven over HTTP/1.1 keep-alive
//! connections. Prints requests/s and latency percentiles per scenario, plus start-up time and
//! idle memory of the release binary.
//!
//! Run all:        cargo bench --bench server
//! Run some:       cargo bench --bench server -- health startup
//! Knobs (env):    BENCH_SECS (default 5), BENCH_CONNS (default 64)
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

type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

struct LoadResult {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl LoadResult {
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
        println!(
            "{name:<28} conns={conns:<3} {:>10.0} req/s  p50 {p50:>7.3} ms  p99 {p99:>7.3} ms  errors {}",
            self.rate(),
            self.errors
        );
    }
}

/// Drives `conns` keep-alive connections for `secs`, each sending requests back to back.
async fn load(addr: SocketAddr, conns: usize, secs: f64, make: MakeRequest) -> LoadResult {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (stop, make) = (stop.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).ok();
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let (mut n, mut errors, mut lat) = (0u64, 0u64, Vec::with_capacity(1 << 16));
            let mut i = c as u64 * 1_000_000_000;
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
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut result = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for t in tasks {
        let (n, e, l) = t.await.expect("load task");
        result.requests += n;
        result.errors += e;
        result.latencies_us.extend(l);
    }
    result.elapsed = started.elapsed();
    result
}

fn post(addr: SocketAddr, headers: &[(&str, &str)], body: Vec<u8>) -> Request<Full<Bytes>> {
    let mut b = Request::post(format!("http://{addr}/")).header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body))).expect("request")
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
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| args.is_empty() || args.iter().any(|a| name.contains(a.as_str()));
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
    let server = server_rt
        .block_on(millpond::server::start(
            millpond::config::Config::for_tests(dir.path()),
        ))
        .expect("server");
    let addr = server.local_addr;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    if wanted("health") {
        let make: MakeRequest = Arc::new(move |_| {
            Request::get(format!("http://{addr}/_millpond/health"))
                .header("host", addr.to_string())
                .body(Full::new(Bytes::new()))
                .expect("request")
        });
        client_rt
            .block_on(load(addr, conns, secs, make))
            .report("health", conns);
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
        // Errors are the expected answer here, so count them as served requests.
        let mut r = client_rt.block_on(load(addr, conns, secs, make));
        r.errors = 0;
        r.report("unknown-action (json error)", conns);
    }
    server_rt.block_on(async { server.shutdown().await.expect("shutdown") });
}
