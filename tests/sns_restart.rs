//! SNS across `kill -9`: an acknowledged publish to an HTTP subscription whose endpoint is
//! failing stays pending with its retry state, and is delivered by the restarted broker; FIFO
//! deduplication survives too. Needs the storage engine (the SNS branch's stub log is in memory).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// An HTTP endpoint that answers 200 to confirmations and, while `healthy` is false, 500 to
/// notifications. Every request's (message type, body) goes to the channel.
async fn flaky_endpoint(
    healthy: Arc<AtomicBool>,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (tx, healthy) = (tx.clone(), healthy.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                    };
                    let len: usize = header("content-length:")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let kind = header("x-amz-sns-message-type:").unwrap_or_default();
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                    let ok = kind != "notification" || healthy.load(Ordering::SeqCst);
                    let _ = tx.send((kind, body));
                    let status = if ok {
                        "200 OK"
                    } else {
                        "500 Internal Server Error"
                    };
                    let _ = s
                        .write_all(
                            format!(
                                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            )
                            .as_bytes(),
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, rx)
}

async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    kind: &str,
) -> serde_json::Value {
    loop {
        let (k, body) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} POST"))
            .unwrap();
        if k == kind {
            return serde_json::from_str(&body).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_http_delivery_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Arc::new(AtomicBool::new(false));
    let (hook, mut rx) = flaky_endpoint(healthy.clone()).await;
    let b = Broker::spawn(dir.path(), &[]);
    let n = sns(&b.endpoint());
    let topic = n
        .create_topic()
        .name("durable-http")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let policy =
        r#"{"healthyRetryPolicy":{"numRetries":100,"minDelayTarget":1,"maxDelayTarget":1}}"#;
    n.subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&hook)
        .attributes("DeliveryPolicy", policy)
        .send()
        .await
        .unwrap();
    let conf = next(&mut rx, "subscriptionconfirmation").await;
    n.confirm_subscription()
        .topic_arn(&topic)
        .token(conf["Token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let published = n
        .publish()
        .topic_arn(&topic)
        .message("must arrive")
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap();
    // At least one failed attempt, so there is retry state to keep.
    let first = next(&mut rx, "notification").await;
    assert_eq!(first["MessageId"], published.as_str());
    b.kill9();

    healthy.store(true, Ordering::SeqCst);
    let b = Broker::spawn(dir.path(), &[]);
    let delivered = loop {
        let n = next(&mut rx, "notification").await;
        if n["MessageId"] == published.as_str() {
            break n;
        }
    };
    assert_eq!(delivered["Message"], "must arrive");
    b.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_deduplication_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    let n = sns(&b.endpoint());
    let topic = create_topic(&n, "dedup.fifo", &[("FifoTopic", "true")]).await;
    let first = n
        .publish()
        .topic_arn(&topic)
        .message("once")
        .message_group_id("g")
        .message_deduplication_id("same")
        .send()
        .await
        .unwrap();
    b.kill9();
    let b = Broker::spawn(dir.path(), &[]);
    let n = sns(&b.endpoint());
    let retry = n
        .publish()
        .topic_arn(&topic)
        .message("once")
        .message_group_id("g")
        .message_deduplication_id("same")
        .send()
        .await
        .unwrap();
    assert_eq!(retry.message_id, first.message_id);
    assert_eq!(retry.sequence_number, first.sequence_number);
    let next = n
        .publish()
        .topic_arn(&topic)
        .message("twice")
        .message_group_id("g")
        .message_deduplication_id("other")
        .send()
        .await
        .unwrap();
    assert!(next.sequence_number.unwrap() > first.sequence_number.unwrap());
    b.kill9();
}

/// A FIFO topic's archive survives `kill -9`: after a restart, a new subscription with a
/// ReplayPolicy gets every message published before the kill, in order, raw, and its
/// ReplayStatus reaches Completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_topic_archive_survives_sigkill_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    let n = sns(&b.endpoint());
    let topic = create_topic(
        &n,
        "archived.fifo",
        &[
            ("FifoTopic", "true"),
            ("ArchivePolicy", r#"{"MessageRetentionPeriod":"1"}"#),
        ],
    )
    .await;
    publish_fifo_series(&n, &topic, 5).await;
    b.kill9();
    let b = Broker::spawn(dir.path(), &[]);
    let (n, q) = (sns(&b.endpoint()), sqs(&b.endpoint()));
    let began = topic_attributes(&n, &topic).await["BeginningArchiveTime"].clone();
    let (url, arn) = queue(&q, "replayed.fifo", true).await;
    let policy = format!(r#"{{"PointType":"Timestamp","StartingPoint":"{began}"}}"#);
    let sub = subscribe(
        &n,
        &topic,
        "sqs",
        &arn,
        &[("RawMessageDelivery", "true"), ("ReplayPolicy", &policy)],
    )
    .await;
    let completed = || async {
        for _ in 0..200 {
            if subscription_attributes(&n, &sub).await["ReplayStatus"] == "Completed" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the replay did not complete");
    };
    completed().await;
    let all: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    assert_eq!(drain_bodies(&q, &url).await, all);
    // Replayed again into the same FIFO queue within its 5-minute deduplication window: the
    // copies carry deduplication ids of their own replay, so the queue takes them again.
    n.set_subscription_attributes()
        .subscription_arn(&sub)
        .attribute_name("ReplayPolicy")
        .attribute_value(format!(
            r#"{{"PointType":"Timestamp","StartingPoint":"{began}","EndingPoint":"2099-01-01T00:00:00Z"}}"#
        ))
        .send()
        .await
        .unwrap();
    completed().await;
    assert_eq!(drain_bodies(&q, &url).await, all);
    b.kill9();
}

/// `--sns-signing-key-bits` sizes the key a fresh data directory gets; a restart with another
/// size (or the default) keeps the key already there. Other sizes are refused at start-up.
#[tokio::test]
async fn signing_key_size_is_chosen_once_and_kept() {
    use millpond::sns::signing::{KeyBits, Signer};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pem = |addr| {
        let r = raw(
            addr,
            "GET",
            "/_millpond/sns/SimpleNotificationService.pem",
            &[],
            b"",
        );
        assert_eq!(r.status, 200);
        r.text()
    };
    let broker = Broker::spawn(&data, &["--sns-signing-key-bits", "2048"]);
    let addr = broker.addr;
    let first = tokio::task::spawn_blocking(move || pem(addr))
        .await
        .unwrap();
    broker.kill9();
    let stored = Signer::load_or_create(&data.join("sns"), KeyBits::Rsa1024).unwrap();
    assert_eq!(stored.key_bits(), 2048, "the flag sized the generated key");
    let broker = Broker::spawn(&data, &[]);
    let addr = broker.addr;
    let again = tokio::task::spawn_blocking(move || pem(addr))
        .await
        .unwrap();
    assert_eq!(
        again, first,
        "the default size does not replace an existing key"
    );
    broker.kill9();

    let fresh = dir.path().join("fresh");
    let broker = Broker::spawn(&fresh, &[]);
    let addr = broker.addr;
    tokio::task::spawn_blocking(move || pem(addr))
        .await
        .unwrap();
    broker.kill9();
    let stored = Signer::load_or_create(&fresh.join("sns"), KeyBits::Rsa2048).unwrap();
    assert_eq!(stored.key_bits(), 1024, "1024 bits by default");

    for bad in ["512", "4096", "big"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_millpond"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("never"))
            .env("MILLPOND_SNS_SIGNING_KEY_BITS", bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("must be 1024 or 2048 bits"), "{err}");
    }
}
