//! Shared test harness: a broker in this process or in a child process (for SIGKILL), AWS SDK
//! clients pointed at it, and a raw HTTP/1.1 client for protocol corners.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use millpond::config::Config;

/// A broker running inside the test's runtime, on an ephemeral port, over a temp data dir.
pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Option<millpond::server::Server>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = millpond::server::start(Config::for_tests(dir.path()))
            .await
            .expect("server starts");
        TestServer {
            addr: server.local_addr,
            server: Some(server),
            dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }
}

/// The broker binary as a child process, so tests can SIGKILL it.
pub struct Broker {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl Broker {
    /// Starts `millpond` on an ephemeral port over `data_dir` and waits for its listening line.
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> Broker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_millpond"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--log-level", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn millpond");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("listening line");
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Broker {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no flush, no shutdown hook.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_http()
}

pub fn sqs(endpoint: &str) -> aws_sdk_sqs::Client {
    sqs_in(endpoint, "us-east-1")
}

pub fn sqs_in(endpoint: &str, region: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(http_client())
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// Creates queue `name` (FIFO if `fifo`) in the default account; its URL and ARN.
pub async fn queue(c: &aws_sdk_sqs::Client, name: &str, fifo: bool) -> (String, String) {
    let mut req = c.create_queue().queue_name(name);
    if fifo {
        req = req.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
    }
    let url = req.send().await.unwrap().queue_url.unwrap();
    (url, format!("arn:aws:sqs:us-east-1:000000000000:{name}"))
}

/// Receives and deletes everything `url` hands out until a receive comes back empty; the
/// bodies in the order received. (Deleting, not hiding, so a FIFO group is not left locked.)
pub async fn drain_bodies(c: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let msgs = c
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if msgs.is_empty() {
            return bodies;
        }
        let mut del = c.delete_message_batch().queue_url(url);
        for (i, m) in msgs.into_iter().enumerate() {
            del = del.entries(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.unwrap())
                    .build()
                    .unwrap(),
            );
            bodies.push(m.body.unwrap());
        }
        del.send().await.unwrap();
    }
}

pub fn sns(endpoint: &str) -> aws_sdk_sns::Client {
    use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_sns::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(http_client())
        .build();
    aws_sdk_sns::Client::from_conf(conf)
}

/// Creates topic `name` with `attributes`; its ARN.
pub async fn create_topic(
    c: &aws_sdk_sns::Client,
    name: &str,
    attributes: &[(&str, &str)],
) -> String {
    let mut req = c.create_topic().name(name);
    for (k, v) in attributes {
        req = req.attributes(*k, *v);
    }
    req.send().await.unwrap().topic_arn.unwrap()
}

/// Subscribes `endpoint` to `topic` over `protocol` with `attributes`; the subscription's ARN,
/// pending or not.
pub async fn subscribe(
    c: &aws_sdk_sns::Client,
    topic: &str,
    protocol: &str,
    endpoint: &str,
    attributes: &[(&str, &str)],
) -> String {
    let mut req = c
        .subscribe()
        .topic_arn(topic)
        .protocol(protocol)
        .endpoint(endpoint)
        .return_subscription_arn(true);
    for (k, v) in attributes {
        req = req.attributes(*k, *v);
    }
    req.send().await.unwrap().subscription_arn.unwrap()
}

pub async fn topic_attributes(
    c: &aws_sdk_sns::Client,
    topic: &str,
) -> std::collections::HashMap<String, String> {
    let out = c.get_topic_attributes().topic_arn(topic).send().await;
    out.unwrap().attributes.unwrap()
}

pub async fn subscription_attributes(
    c: &aws_sdk_sns::Client,
    sub: &str,
) -> std::collections::HashMap<String, String> {
    let out = c
        .get_subscription_attributes()
        .subscription_arn(sub)
        .send()
        .await;
    out.unwrap().attributes.unwrap()
}

/// Publishes `m0`..`m{n-1}` to FIFO topic `topic` in group `g`, with deduplication ids
/// `d0`..; their sequence numbers.
pub async fn publish_fifo_series(c: &aws_sdk_sns::Client, topic: &str, n: usize) -> Vec<String> {
    let mut seqs = Vec::with_capacity(n);
    for i in 0..n {
        let out = c
            .publish()
            .topic_arn(topic)
            .message(format!("m{i}"))
            .message_group_id("g")
            .message_deduplication_id(format!("d{i}"))
            .send()
            .await
            .unwrap();
        seqs.push(out.sequence_number.unwrap());
    }
    seqs
}

pub fn kinesis(endpoint: &str) -> aws_sdk_kinesis::Client {
    use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(http_client())
        .build();
    aws_sdk_kinesis::Client::from_conf(conf)
}

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request with exactly these bytes of headers and body (`Connection: close`), and
/// reads the whole answer. Blocking: call from `spawn_blocking` or a plain test.
pub fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> RawResponse {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
    out
}
/// A query-protocol POST (form body) signed for `service` in `region`.
pub fn query_post(addr: SocketAddr, path: &str, service: &str, form: &str) -> RawResponse {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
    );
    raw(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", &auth),
        ],
        form.as_bytes(),
    )
}

/// An AWS JSON request to `target` with `content_type`.
pub fn json_post(addr: SocketAddr, target: &str, content_type: &str, body: &[u8]) -> RawResponse {
    raw(
        addr,
        "POST",
        "/",
        &[("Content-Type", content_type), ("X-Amz-Target", target)],
        body,
    )
}

/// Text of the first `<tag>…</tag>` in an XML document.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}
