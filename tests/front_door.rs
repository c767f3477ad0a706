//! The front door over real HTTP: routing, every protocol's error shape, admin endpoints,
//! HTTP/2 cleartext, and bad input that must not hurt the server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_version_services_and_data_dir() {
    let srv = TestServer::start().await;
    let addr = srv.addr;
    let r = tokio::task::spawn_blocking(move || raw(addr, "GET", "/_millpond/health", &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["status"], "ok");
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
    for s in ["sqs", "sns", "kinesis"] {
        assert_eq!(j["services"][s], "running", "{j}");
    }
    assert_eq!(j["data_dir"], srv.dir.path().display().to_string());
    assert!(r.header("x-amzn-requestid").is_some());
    srv.stop().await;
}

/// Creates one queue, topic and stream through the SDKs.
async fn populate(endpoint: &str) {
    sqs(endpoint)
        .create_queue()
        .queue_name("q")
        .send()
        .await
        .unwrap();
    sns(endpoint).create_topic().name("t").send().await.unwrap();
    kinesis(endpoint)
        .create_stream()
        .stream_name("s")
        .shard_count(1)
        .send()
        .await
        .unwrap();
}

/// How many queues, topics and streams there are.
async fn census(endpoint: &str) -> (usize, usize, usize) {
    let q = sqs(endpoint)
        .list_queues()
        .send()
        .await
        .unwrap()
        .queue_urls
        .unwrap_or_default()
        .len();
    let t = sns(endpoint)
        .list_topics()
        .send()
        .await
        .unwrap()
        .topics
        .unwrap_or_default()
        .len();
    let s = kinesis(endpoint)
        .list_streams()
        .send()
        .await
        .unwrap()
        .stream_names
        .len();
    (q, t, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_wipes_every_service_durably() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    let addr = b.addr;
    for path in ["/_millpond/reset", "/moto-api/reset"] {
        populate(&b.endpoint()).await;
        assert_eq!(census(&b.endpoint()).await, (1, 1, 1));
        let r = tokio::task::spawn_blocking(move || raw(addr, "POST", path, &[], b""))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["reset"], true);
        assert_eq!(
            census(&b.endpoint()).await,
            (0, 0, 0),
            "{path} left resources behind"
        );
    }
    // Still empty after kill -9: the wipe was logged, not just applied in memory.
    b.kill9();
    let b = Broker::spawn(dir.path(), &[]);
    assert_eq!(census(&b.endpoint()).await, (0, 0, 0));
    b.kill9();
}

fn assert_query_error(r: &RawResponse, namespace: &str, code: &str) {
    let xml = r.text();
    assert_eq!(r.status, 400, "{xml}");
    assert!(r.header("content-type").unwrap().starts_with("text/xml"));
    assert!(
        xml.contains(&format!("<ErrorResponse xmlns=\"{namespace}\">")),
        "{xml}"
    );
    assert_eq!(xml_text(&xml, "Type").as_deref(), Some("Sender"), "{xml}");
    assert_eq!(xml_text(&xml, "Code").as_deref(), Some(code), "{xml}");
    assert!(
        !xml_text(&xml, "Message").unwrap_or_default().is_empty(),
        "{xml}"
    );
    assert_eq!(
        xml_text(&xml, "RequestId").as_deref(),
        r.header("x-amzn-requestid"),
        "{xml}"
    );
    // SQS's errors carry an empty Detail, SNS's none (boto3 would show it as Detail: None).
    let sqs = namespace.contains("queue.amazonaws.com");
    assert_eq!(xml.contains("<Detail/>"), sqs, "{xml}");
}

#[test]
fn query_protocol_errors_have_the_error_response_shape() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let sqs_ns = "http://queue.amazonaws.com/doc/2012-11-05/";
    let sns_ns = "http://sns.amazonaws.com/doc/2010-03-31/";
    assert_query_error(
        &query_post(
            srv.addr,
            "/",
            "sqs",
            "Action=NoSuchThing&Version=2012-11-05",
        ),
        sqs_ns,
        "InvalidAction",
    );
    assert_query_error(
        &query_post(
            srv.addr,
            "/",
            "sns",
            "Action=NoSuchThing&Version=2010-03-31",
        ),
        sns_ns,
        "InvalidAction",
    );
    assert_query_error(
        &query_post(srv.addr, "/", "sqs", "Version=2012-11-05"),
        sqs_ns,
        "MissingAction",
    );
    // Invalid UTF-8 in the form body.
    let r = raw(
        srv.addr,
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Action=ListQueues&QueueNamePrefix=\xff\xfe",
    );
    assert_query_error(&r, sqs_ns, "MalformedQueryString");
    // A GET with the query in the URL reaches the same parser.
    let r = raw(srv.addr, "GET", "/?Action=NoSuchThing", &[], b"");
    assert_query_error(&r, sqs_ns, "InvalidAction");
    rt.block_on(srv.stop());
}

#[test]
fn sts_get_caller_identity_names_the_account() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let r = query_post(
        srv.addr,
        "/",
        "sts",
        "Action=GetCallerIdentity&Version=2011-06-15",
    );
    assert_eq!(r.status, 200);
    let xml = r.text();
    assert_eq!(xml_text(&xml, "Account").as_deref(), Some("000000000000"));
    assert_eq!(
        xml_text(&xml, "Arn").as_deref(),
        Some("arn:aws:iam::000000000000:root")
    );
    // Unsigned, the action alone routes it.
    let r = raw(
        srv.addr,
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Action=GetCallerIdentity",
    );
    assert_eq!(
        xml_text(&r.text(), "UserId").as_deref(),
        Some("000000000000")
    );
    rt.block_on(srv.stop());
}

#[test]
fn json_protocol_errors_carry_type_and_message() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    // SQS JSON 1.0: unknown operation.
    let r = json_post(
        srv.addr,
        "AmazonSQS.NoSuchThing",
        "application/x-amz-json-1.0",
        b"{}",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["__type"],
        "com.amazon.coral.service#UnknownOperationException"
    );
    assert!(r.header("x-amzn-requestid").is_some());
    // SQS JSON 1.0: a body that is not JSON; the legacy code rides in x-amzn-query-error.
    let r = json_post(
        srv.addr,
        "AmazonSQS.ListQueues",
        "application/x-amz-json-1.0",
        b"{not json",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["__type"],
        "com.amazonaws.sqs#SerializationException"
    );
    assert_eq!(
        r.header("x-amzn-query-error"),
        Some("SerializationException;Sender")
    );
    // Kinesis JSON 1.1.
    let r = json_post(
        srv.addr,
        "Kinesis_20131202.NoSuchThing",
        "application/x-amz-json-1.1",
        b"{}",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "UnknownOperationException");
    let r = json_post(
        srv.addr,
        "Kinesis_20131202.ListStreams",
        "application/x-amz-json-1.1",
        b"[1,2]",
    );
    assert_eq!(r.json()["__type"], "SerializationException");
    // An unknown target prefix.
    let r = json_post(
        srv.addr,
        "Nope_2020.Do",
        "application/x-amz-json-1.1",
        b"{}",
    );
    assert_eq!(r.json()["__type"], "UnknownOperationException");
    rt.block_on(srv.stop());
}

#[test]
fn kinesis_refuses_a_missing_body_but_takes_an_empty_object() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let target = "Kinesis_20131202.ListStreams";
    let json = "application/x-amz-json-1.1";
    for body in [&b""[..], b" \r\n"] {
        let r = json_post(srv.addr, target, json, body);
        assert_eq!(r.status, 400, "{body:?}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(json));
        assert_eq!(r.header("x-amzn-errortype"), Some("SerializationException"));
        assert_eq!(
            r.json(),
            serde_json::json!({"__type": "SerializationException"})
        );
    }
    let r = json_post(srv.addr, target, json, b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["StreamNames"].is_array());
    // An unknown operation is still named as such, body or not.
    let r = json_post(srv.addr, "Kinesis_20131202.NoSuchThing", json, b"");
    assert_eq!(r.json()["__type"], "UnknownOperationException");

    let cbor = "application/x-amz-cbor-1.1";
    let r = json_post(srv.addr, target, cbor, b"");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some(cbor));
    let v: ciborium::Value = ciborium::de::from_reader(&r.body[..]).expect("CBOR error body");
    let expected = ciborium::Value::Map(vec![(
        ciborium::Value::Text("__type".into()),
        ciborium::Value::Text("SerializationException".into()),
    )]);
    assert_eq!(v, expected);
    // An empty CBOR map is a request like any other.
    let r = json_post(srv.addr, target, cbor, &[0xa0]);
    assert_eq!(r.status, 200);
    rt.block_on(srv.stop());
}

#[test]
fn cbor_errors_are_cbor() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    for (target, body, code) in [
        (
            "Kinesis_20131202.NoSuchThing",
            &[0xa0u8][..],
            "UnknownOperationException",
        ),
        (
            "Kinesis_20131202.ListStreams",
            &[0xff, 0x00, 0x13][..],
            "SerializationException",
        ),
    ] {
        let r = json_post(srv.addr, target, "application/x-amz-cbor-1.1", body);
        assert_eq!(r.status, 400);
        assert_eq!(r.header("content-type"), Some("application/x-amz-cbor-1.1"));
        let v: ciborium::Value = ciborium::de::from_reader(&r.body[..]).expect("CBOR error body");
        let map = v.as_map().expect("map");
        let get = |k: &str| {
            map.iter()
                .find(|(mk, _)| mk.as_text() == Some(k))
                .and_then(|(_, v)| v.as_text().map(str::to_string))
        };
        assert_eq!(get("__type").as_deref(), Some(code));
        assert!(get("message").is_some());
    }
    rt.block_on(srv.stop());
}

#[test]
fn oversized_body_is_refused_at_once_and_the_server_keeps_serving() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    let len = millpond::protocol::MAX_BODY_BYTES + 1;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n\
         Content-Type: application/x-amz-json-1.0\r\nContent-Length: {len}\r\n\r\n{{"
    )
    .unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("an answer before the body is sent");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let r = raw(srv.addr, "GET", "/_millpond/health", &[], b"");
    assert_eq!(r.status, 200);
    rt.block_on(srv.stop());
}

/// Sends an SQS JSON request on a connection of its own and returns the connection unread.
fn send_sqs_json(addr: std::net::SocketAddr, op: &str, body: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.{op}\r\n\
         Content-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

/// A client that goes away before the answer (a timeout, a killed process) must not leave a
/// write half done: in the log but not applied, so invisible until a restart. Before requests
/// ran in tasks of their own, a FIFO retry with the same deduplication id then got the first
/// send's MessageId back while that message could not be received.
#[test]
fn a_client_leaving_mid_request_leaves_no_half_done_write() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let c = sqs(&srv.endpoint());
    let url = rt.block_on(async {
        c.create_queue()
            .queue_name("left.fifo")
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap()
    });
    const N: usize = 20;
    for i in 0..N {
        let body = serde_json::json!({"QueueUrl": url, "MessageBody": format!("m{i}"),
            "MessageGroupId": "g", "MessageDeduplicationId": format!("d{i}")})
        .to_string();
        // Gone without reading the answer.
        drop(send_sqs_json(srv.addr, "SendMessage", &body));
    }
    let mut got = rt.block_on(async {
        // The retries: deduplicated where a first send landed, new sends where none did.
        for i in 0..N {
            c.send_message()
                .queue_url(&url)
                .message_body(format!("m{i}"))
                .message_group_id("g")
                .message_deduplication_id(format!("d{i}"))
                .send()
                .await
                .unwrap();
        }
        drain_bodies(&c, &url).await
    });
    // The abandoned sends ran concurrently, so they may have landed in any order.
    got.sort_by_key(|b| b[1..].parse::<usize>().unwrap());
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "every message once");
    rt.block_on(srv.stop());
}

/// A long poll whose client went away stops waiting: a message sent afterwards goes to the
/// next receive, not to a poll nobody reads (which would hide it for the visibility timeout).
#[test]
fn an_abandoned_long_poll_takes_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let c = sqs(&srv.endpoint());
    let url = rt.block_on(async {
        c.create_queue()
            .queue_name("polled")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap()
    });
    let body =
        serde_json::json!({"QueueUrl": url, "WaitTimeSeconds": 20, "MaxNumberOfMessages": 10})
            .to_string();
    let s = send_sqs_json(srv.addr, "ReceiveMessage", &body);
    // Long enough for the poll to start waiting, then the client leaves; then long enough
    // (with room for a loaded machine) for the server to see the connection close.
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(s);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let got = rt.block_on(async {
        c.send_message()
            .queue_url(&url)
            .message_body("after")
            .send()
            .await
            .unwrap();
        c.receive_message()
            .queue_url(&url)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    });
    assert_eq!(got.len(), 1, "the abandoned poll must not have taken it");
    assert_eq!(got[0].body.as_deref(), Some("after"));
    rt.block_on(srv.stop());
}

/// Only a body over the limit is 413; one that is malformed or breaks off is a 400, and a
/// chunked body over the limit (no Content-Length to refuse it by) is still a 413.
#[test]
fn broken_bodies_are_400_and_only_large_ones_413() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let head = "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                X-Amz-Target: AmazonSQS.ListQueues\r\nContent-Type: application/x-amz-json-1.0\r\n";
    let answer = |req: Vec<u8>, half_close: bool| {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        // Written from a thread, errors ignored: the server may answer and close before it
        // has read everything.
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&req);
            if half_close {
                let _ = w.shutdown(std::net::Shutdown::Write);
            }
        });
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let _ = writer.join();
        String::from_utf8_lossy(&out).to_string()
    };
    let bad_chunk = format!("{head}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n");
    let r = answer(bad_chunk.into_bytes(), false);
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("IncompleteBody"), "{r}");
    let short = format!("{head}Content-Length: 100\r\n\r\n{{}}");
    let r = answer(short.into_bytes(), true);
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let mut big = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    // One byte over the limit, so almost nothing is left unread when the server answers.
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..(millpond::protocol::MAX_BODY_BYTES >> 20) {
        big.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        big.extend_from_slice(&chunk);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b"1\r\n \r\n");
    big.extend_from_slice(b"0\r\n\r\n");
    let r = answer(big, false);
    assert!(r.starts_with("HTTP/1.1 413"), "{}", &r[..r.len().min(300)]);
    rt.block_on(srv.stop());
}

#[test]
fn garbage_requests_get_4xx_and_do_not_stop_the_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "/",
            vec![("Content-Type", "text/plain")],
            b"\x00\x01\x02garbage".to_vec(),
        ),
        (
            "/",
            vec![
                ("Content-Type", "application/x-amz-json-1.0"),
                ("X-Amz-Target", "AmazonSQS"),
            ],
            b"{}".to_vec(),
        ),
        (
            "/",
            vec![
                ("X-Amz-Target", "Kinesis_20131202.PutRecord"),
                ("Content-Type", "application/x-amz-json-1.1"),
            ],
            b"\xff\xfe".to_vec(),
        ),
        (
            "/",
            vec![("Content-Type", "application/x-www-form-urlencoded")],
            b"Action=SendMessage&Action=&&&==%zz".to_vec(),
        ),
    ];
    for (path, headers, body) in &cases {
        let r = raw(srv.addr, "POST", path, headers, body);
        assert!(
            (400..500).contains(&r.status),
            "{headers:?}: {} {}",
            r.status,
            r.text()
        );
    }
    // Headers larger than the server buffers are refused, not buffered without bound.
    // The server may answer 431 and close before the client finishes writing, which can reset
    // the connection under the answer; either way the request must not be served.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    let huge = "a".repeat(1 << 20);
    let _ = write!(s, "POST / HTTP/1.1\r\nHost: x\r\nX-Huge: {huge}\r\nContent-Length: 17\r\n\r\nAction=ListQueues");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 431"),
        "huge header answered {head:?}"
    );
    assert_eq!(
        raw(srv.addr, "GET", "/_millpond/health", &[], b"").status,
        200
    );
    rt.block_on(srv.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_is_served() {
    use http_body_util::BodyExt;
    let srv = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("http://{}/", srv.addr))
        .header("x-amz-target", "Kinesis_20131202.NoSuchThing")
        .header("content-type", "application/x-amz-json-1.1")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let resp = send.send_request(req).await.expect("h2 response");
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), 400);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["__type"], "UnknownOperationException");
    srv.stop().await;
}

#[test]
fn binary_serves_prints_its_address_and_dies_cleanly_on_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    let r = raw(b.addr, "GET", "/_millpond/health", &[], b"");
    assert_eq!(r.status, 200);
    b.kill9();
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Broker::spawn(dir.path(), &[]);
    assert_eq!(
        raw(b.addr, "GET", "/_millpond/health", &[], b"").status,
        200
    );
    // SAFETY: signalling our own child process by its pid.
    assert_eq!(unsafe { libc::kill(b.child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = b.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
}

/// `--advertised-url` sets what every URL handed out starts with: queue URLs (query and JSON)
/// and an SNS notification's UnsubscribeURL and SigningCertURL, whatever Host the client sent
/// (Ruby aws-sdk v1 sends one without the port it connects to). Without the flag, the Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertised_url_starts_every_url_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(
        dir.path(),
        &["--advertised-url", "http://millpond.test:4999/"],
    );
    let addr = b.addr;
    let xml = tokio::task::spawn_blocking(move || {
        query_post(addr, "/", "sqs", "Action=CreateQueue&QueueName=adv").text()
    })
    .await
    .unwrap();
    assert_eq!(
        xml_text(&xml, "QueueUrl").as_deref(),
        Some("http://millpond.test:4999/000000000000/adv"),
        "{xml}"
    );
    let (q, n) = (sqs(&b.endpoint()), sns(&b.endpoint()));
    let url = q
        .get_queue_url()
        .queue_name("adv")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert_eq!(url, "http://millpond.test:4999/000000000000/adv");
    let topic = create_topic(&n, "adv", &[]).await;
    subscribe(
        &n,
        &topic,
        "sqs",
        "arn:aws:sqs:us-east-1:000000000000:adv",
        &[],
    )
    .await;
    n.publish()
        .topic_arn(&topic)
        .message("m")
        .send()
        .await
        .unwrap();
    // The URL handed out is not where this test reaches the broker: use the real address.
    let body = drain_bodies(&q, &format!("{}/000000000000/adv", b.endpoint()))
        .await
        .pop()
        .unwrap();
    let env: serde_json::Value = serde_json::from_str(&body).unwrap();
    for k in ["UnsubscribeURL", "SigningCertURL"] {
        assert!(
            env[k]
                .as_str()
                .unwrap()
                .starts_with("http://millpond.test:4999/"),
            "{k}: {}",
            env[k]
        );
    }
    drop(b);
    // Without the flag: the request's Host.
    let b = Broker::spawn(dir.path(), &[]);
    let addr = b.addr;
    let xml = tokio::task::spawn_blocking(move || {
        query_post(addr, "/", "sqs", "Action=GetQueueUrl&QueueName=adv").text()
    })
    .await
    .unwrap();
    assert_eq!(
        xml_text(&xml, "QueueUrl"),
        Some(format!("http://{addr}/000000000000/adv"))
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_millpond"))
        .args([
            "--advertised-url",
            "millpond:4566",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
