//! SNS delivery to `https://` endpoints: a TLS server with a test CA (rcgen) on loopback; the
//! broker trusts the CA through `--sns-ca-file` and delivers over TLS, or does not trust it and
//! refuses the endpoint's certificate.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Broker;
use http_body_util::BodyExt;
use millpond::sns::signing::{canonical, Signer};
use tokio::sync::mpsc;

/// A request the endpoint received: headers (lower-case names) and body.
struct Hit {
    headers: Vec<(String, String)>,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTPS endpoint on 127.0.0.1 with a certificate for `localhost` issued by a fresh CA.
struct Endpoint {
    port: u16,
    ca_pem: String,
    hits: mpsc::UnboundedReceiver<Hit>,
    /// TLS handshakes that failed (e.g. the client refused the certificate).
    handshake_failures: Arc<AtomicUsize>,
}

async fn https_endpoint() -> Endpoint {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "millpond test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, hits) = mpsc::unbounded_channel();
    let failures = Arc::new(AtomicUsize::new(0));
    let handshake_failures = failures.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, tx, failures) = (acceptor.clone(), tx.clone(), failures.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(s) => s,
                    Err(_) => {
                        failures.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                                })
                                .collect();
                            let body = req.into_body().collect().await?.to_bytes();
                            let body = String::from_utf8_lossy(&body).into_owned();
                            let _ = tx.send(Hit { headers, body });
                            Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::new(),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Endpoint {
        port,
        ca_pem: ca_cert.pem(),
        hits,
        handshake_failures,
    }
}

async fn next_hit(hits: &mut mpsc::UnboundedReceiver<Hit>) -> Hit {
    tokio::time::timeout(Duration::from_secs(20), hits.recv())
        .await
        .expect("a request reaches the https endpoint in time")
        .expect("endpoint running")
}

#[tokio::test]
async fn https_endpoint_with_trusted_ca_gets_confirmation_and_signed_notification() {
    let mut ep = https_endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ep.ca_pem).unwrap();
    let data = dir.path().join("data");
    let broker = Broker::spawn(&data, &["--sns-ca-file", ca_file.to_str().unwrap()]);
    let sns = common::sns(&broker.endpoint());
    let topic = sns
        .create_topic()
        .name("tls")
        .attributes("SignatureVersion", "2")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let url = format!("https://localhost:{}/hook", ep.port);
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("https")
        .endpoint(&url)
        .send()
        .await
        .unwrap();

    let confirm = next_hit(&mut ep.hits).await;
    assert_eq!(
        confirm.header("x-amz-sns-message-type"),
        Some("SubscriptionConfirmation")
    );
    let doc: serde_json::Value = serde_json::from_str(&confirm.body).unwrap();
    let subscribe_url = doc["SubscribeURL"].as_str().unwrap();
    let path = subscribe_url
        .strip_prefix(&broker.endpoint())
        .expect("SubscribeURL points at the broker")
        .to_string();
    let addr = broker.addr;
    let resp = tokio::task::spawn_blocking(move || common::raw(addr, "GET", &path, &[], b""))
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());

    sns.publish()
        .topic_arn(&topic)
        .subject("s")
        .message("over tls")
        .send()
        .await
        .unwrap();
    let hit = next_hit(&mut ep.hits).await;
    assert_eq!(hit.header("x-amz-sns-message-type"), Some("Notification"));
    assert_eq!(hit.header("x-amz-sns-topic-arn"), Some(topic.as_str()));
    let sub_arn = hit
        .header("x-amz-sns-subscription-arn")
        .expect("subscription header");
    assert!(sub_arn.starts_with(&topic), "{sub_arn}");
    let n: serde_json::Value = serde_json::from_str(&hit.body).unwrap();
    assert_eq!(hit.header("x-amz-sns-message-id"), n["MessageId"].as_str());
    assert_eq!(n["Message"], "over tls");
    assert_eq!(n["SignatureVersion"], "2");
    let text = canonical(&[
        ("Message", n["Message"].as_str()),
        ("MessageId", n["MessageId"].as_str()),
        ("Subject", n["Subject"].as_str()),
        ("Timestamp", n["Timestamp"].as_str()),
        ("TopicArn", n["TopicArn"].as_str()),
        ("Type", n["Type"].as_str()),
    ]);
    // The broker's own key, read from its data directory.
    let signer = Signer::load_or_create(&data.join("sns"), Default::default()).unwrap();
    assert!(signer.verify(text.as_bytes(), n["Signature"].as_str().unwrap(), "2"));
    assert!(!signer.verify(b"other", n["Signature"].as_str().unwrap(), "2"));
    assert_eq!(ep.handshake_failures.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn https_endpoint_with_untrusted_certificate_is_not_delivered_to() {
    let mut ep = https_endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    // No --sns-ca-file: the endpoint's CA is unknown to the broker.
    let broker = Broker::spawn(dir.path(), &[]);
    let sns = common::sns(&broker.endpoint());
    let topic = sns
        .create_topic()
        .name("untrusted")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("https")
        .endpoint(format!("https://localhost:{}/hook", ep.port))
        .send()
        .await
        .unwrap();
    // The broker reaches the endpoint, starts TLS, and aborts it on the certificate.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ep.handshake_failures.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no TLS attempt reached the endpoint"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        ep.hits.try_recv().is_err(),
        "nothing may be delivered over an unverified connection"
    );
}

#[test]
fn unreadable_or_empty_ca_file_stops_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for path in [empty, dir.path().join("missing.pem")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_millpond"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--sns-ca-file")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--sns-ca-file"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
