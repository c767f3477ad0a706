//! Where notifications go: the seams to SQS ([`SqsSink`]) and HTTP ([`HttpSink`]), the
//! notification envelope, delivery policies, the outbox view, and the worker that retries
//! pending HTTP deliveries (durably: every attempt's outcome is a log record, so retries resume
//! after a restart). Owns no catalog state; reads it through [`Sns`].
//!
//! `https://` endpoints are reached over rustls (ring provider) with certificate verification
//! on, as AWS does: the web PKI roots plus the CAs of `--sns-ca-file`. An endpoint whose
//! certificate does not verify fails the attempt, which follows the retry policy, then the DLQ.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::signing::{canonical, Signer};
use super::state::{DeliveryKind, OutboxEntry, PendingDelivery, Record, Topic};
use super::util::iso8601;
use super::Sns;
use crate::error::{ServiceError, ServiceResult};
use crate::sqs::{InternalSend, Sqs};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends a message into an SQS queue by ARN (the real one is `Sqs::send_to_arn`).
pub trait SqsSink: Send + Sync {
    fn send(&self, queue_arn: &str, msg: InternalSend) -> BoxFuture<'_, ServiceResult<String>>;
}

/// POSTs a body to a URL; `Ok(status)` once the endpoint answered, `Err` if it could not be
/// reached.
pub trait HttpSink: Send + Sync {
    fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: String,
    ) -> BoxFuture<'_, Result<u16, String>>;
}

#[derive(Clone)]
pub struct Sinks {
    pub sqs: Arc<dyn SqsSink>,
    pub http: Arc<dyn HttpSink>,
}

impl Sinks {
    /// The real sinks; `ca_file` adds trusted CAs for https endpoints (an unreadable or empty
    /// bundle is an error, so a typo does not silently fall back to the web PKI alone).
    pub fn real(sqs: Arc<Sqs>, ca_file: Option<&Path>) -> ServiceResult<Sinks> {
        let http = HyperHttp::with_ca_file(ca_file).map_err(ServiceError::internal)?;
        Ok(Sinks {
            sqs: Arc::new(SqsDirect(sqs)),
            http: Arc::new(http),
        })
    }
}

struct SqsDirect(Arc<Sqs>);

impl SqsSink for SqsDirect {
    fn send(&self, queue_arn: &str, msg: InternalSend) -> BoxFuture<'_, ServiceResult<String>> {
        let arn = queue_arn.to_string();
        Box::pin(async move { self.0.send_to_arn(&arn, msg).await })
    }
}

/// HTTP/1.1 client for `http://` and `https://` endpoints.
pub struct HyperHttp {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl HyperHttp {
    /// Trusting the web PKI roots only.
    pub fn new() -> Self {
        match Self::with_ca_file(None) {
            Ok(h) => h,
            // Only reading a CA file can fail.
            Err(e) => unreachable!("TLS client without a CA file: {e}"),
        }
    }

    /// Trusting the web PKI roots and every certificate of the PEM bundle at `ca_file`.
    pub fn with_ca_file(ca_file: Option<&Path>) -> Result<Self, String> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_file {
            let what = || format!("--sns-ca-file {}", path.display());
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", what()))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", what()))?;
                roots.add(cert).map_err(|e| format!("{}: {e}", what()))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!("{}: no PEM certificate in the file", what()));
            }
        }
        // ring, not the default aws-lc-rs: no cmake/nasm in the build.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HyperHttp {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build(connector),
        })
    }
}

impl Default for HyperHttp {
    fn default() -> Self {
        Self::new()
    }
}

/// AWS's HTTP delivery timeout.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

impl HttpSink for HyperHttp {
    fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: String,
    ) -> BoxFuture<'_, Result<u16, String>> {
        let url = url.to_string();
        Box::pin(async move {
            let uri: hyper::Uri = url.parse().map_err(|e| format!("bad url: {e}"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return Err("only http:// and https:// endpoints are supported".into());
            }
            let mut req = hyper::Request::post(uri);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let req = req
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            match tokio::time::timeout(HTTP_TIMEOUT, self.client.request(req)).await {
                Ok(Ok(resp)) => Ok(resp.status().as_u16()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".into()),
            }
        })
    }
}

/// Which outbox entries to read or clear; unset fields match everything.
#[derive(Clone, Debug, Default)]
pub struct OutboxFilter {
    pub subscription_arn: Option<String>,
    pub endpoint: Option<String>,
    pub topic_arn: Option<String>,
    pub protocol: Option<String>,
}

impl OutboxFilter {
    pub fn matches(&self, e: &OutboxEntry) -> bool {
        self.subscription_arn
            .as_ref()
            .is_none_or(|s| e.subscription_arn.as_ref() == Some(s))
            && self.endpoint.as_ref().is_none_or(|s| *s == e.endpoint)
            && self
                .topic_arn
                .as_ref()
                .is_none_or(|s| e.topic_arn.as_ref() == Some(s))
            && self.protocol.as_ref().is_none_or(|s| *s == e.protocol)
    }
}

pub fn outbox_json(e: &OutboxEntry) -> Value {
    let mut v = json!({
        "Id": e.id,
        "Timestamp": iso8601(e.timestamp_ms),
        "Protocol": e.protocol,
        "Endpoint": e.endpoint,
        "MessageId": e.message_id,
        "Payload": e.payload,
        "MessageAttributes": serde_json::from_str::<Value>(&e.message_attributes).unwrap_or(json!({})),
    });
    if let Some(s) = &e.subscription_arn {
        v["SubscriptionArn"] = json!(s);
    }
    if let Some(s) = &e.topic_arn {
        v["TopicArn"] = json!(s);
    }
    if let Some(s) = &e.subject {
        v["Subject"] = json!(s);
    }
    v
}

/// Everything an envelope needs.
pub struct Notice<'a> {
    pub kind: DeliveryKind,
    pub message_id: &'a str,
    pub sequence_number: Option<&'a str>,
    pub topic_arn: &'a str,
    pub subject: Option<&'a str>,
    pub message: &'a str,
    pub timestamp_ms: u64,
    pub base_url: &'a str,
    pub subscription_arn: &'a str,
    /// JSON-shaped message attributes of the publish.
    pub attributes: &'a Map<String, Value>,
    pub token: Option<&'a str>,
    pub signature_version: &'a str,
    pub signer: &'a Signer,
}

pub fn signing_cert_url(base_url: &str) -> String {
    format!("{base_url}/_millpond/sns/SimpleNotificationService.pem")
}

fn subscribe_url(n: &Notice) -> Option<String> {
    n.token.map(|t| {
        format!(
            "{}/?Action=ConfirmSubscription&TopicArn={}&Token={}",
            n.base_url,
            arn_in_url(n.topic_arn),
            urlencode(t)
        )
    })
}

/// The base64 signature of a notice: its canonical string (the members AWS signs, in AWS's
/// order), RSA-signed with SHA1 for SignatureVersion 1 and SHA256 for 2.
pub fn signature(n: &Notice) -> String {
    let ts = iso8601(n.timestamp_ms);
    let url = subscribe_url(n);
    let text = match n.kind {
        DeliveryKind::Notification => canonical(&[
            ("Message", Some(n.message)),
            ("MessageId", Some(n.message_id)),
            ("Subject", n.subject),
            ("Timestamp", Some(&ts)),
            ("TopicArn", Some(n.topic_arn)),
            ("Type", Some(n.kind.as_str())),
        ]),
        _ => canonical(&[
            ("Message", Some(n.message)),
            ("MessageId", Some(n.message_id)),
            ("SubscribeURL", url.as_deref()),
            ("Timestamp", Some(&ts)),
            ("Token", n.token),
            ("TopicArn", Some(n.topic_arn)),
            ("Type", Some(n.kind.as_str())),
        ]),
    };
    base64::engine::general_purpose::STANDARD
        .encode(n.signer.sign(text.as_bytes(), n.signature_version))
}

/// The JSON document SNS delivers (to SQS without raw delivery, to HTTP, email-json...), laid
/// out as AWS lays it out (two-space indent, `" : "` separators, members in AWS's order).
pub fn envelope(n: &Notice) -> String {
    envelope_signed(n, &signature(n))
}

/// [`envelope`] with a signature computed earlier (one per message, not per subscription).
pub fn envelope_signed(n: &Notice, signature: &str) -> String {
    SharedEnvelope::new(n, signature).for_subscription(n.subscription_arn)
}

/// A notification's envelope built once for all the subscriptions it goes to: every member
/// but the UnsubscribeURL (each subscription's own) is the same bytes for each of them.
/// Escaping the message and formatting the rest once per publish instead of once per
/// subscription matters most for large messages to many queues.
pub struct SharedEnvelope {
    /// Everything before the UnsubscribeURL member; for a kind without one, every member.
    head: Vec<u8>,
    /// The members after the UnsubscribeURL (absent for a kind without one). The closing
    /// brace is `build`'s, so a member only some copies carry can go before it.
    tail: Option<Vec<u8>>,
    /// The broker's base URL, which the UnsubscribeURL starts with as the SigningCertURL does.
    base_url: String,
}

impl SharedEnvelope {
    pub fn new(n: &Notice, signature: &str) -> Self {
        // Written straight into one buffer: going through `Value`s and `format!` per member
        // was ~7% of the CPU of a publish to ten queues.
        let mut out = Envelope::open(n.message.len() + 768);
        out.member("Type", n.kind.as_str());
        out.member("MessageId", n.message_id);
        if let Some(seq) = n.sequence_number {
            out.member("SequenceNumber", seq);
        }
        if let Some(t) = n.token {
            out.member("Token", t);
        }
        out.member("TopicArn", n.topic_arn);
        if let Some(s) = n.subject {
            out.member("Subject", s);
        }
        out.member("Message", n.message);
        if let Some(url) = subscribe_url(n) {
            out.member("SubscribeURL", &url);
        }
        out.member("Timestamp", &iso8601(n.timestamp_ms));
        // A FIFO topic's notifications (the ones with a sequence number) are not signed
        // (LocalStack's AWS-recorded test_message_to_fifo_sqs and others).
        if n.sequence_number.is_none() {
            out.member("SignatureVersion", n.signature_version);
            out.member("Signature", signature);
            out.member("SigningCertURL", &signing_cert_url(n.base_url));
        }
        if n.kind != DeliveryKind::Notification {
            return SharedEnvelope {
                head: out.buf,
                tail: None,
                base_url: n.base_url.to_string(),
            };
        }
        // Follows the UnsubscribeURL member, so its first member needs the separator.
        let mut tail = Envelope {
            buf: Vec::new(),
            members: 1,
        };
        if !n.attributes.is_empty() {
            let mut attrs = Map::new();
            for (k, v) in n.attributes {
                let dt = v
                    .get("DataType")
                    .and_then(Value::as_str)
                    .unwrap_or("String");
                let value = if dt.starts_with("Binary") {
                    v.get("BinaryValue").cloned().unwrap_or(json!(""))
                } else {
                    v.get("StringValue").cloned().unwrap_or(json!(""))
                };
                attrs.insert(k.clone(), json!({"Type": dt, "Value": value}));
            }
            tail.member_value("MessageAttributes", &Value::Object(attrs));
        }
        SharedEnvelope {
            head: out.buf,
            tail: Some(tail.buf),
            base_url: n.base_url.to_string(),
        }
    }

    /// The envelope as delivered to one subscription.
    pub fn for_subscription(&self, subscription_arn: &str) -> String {
        self.build(subscription_arn, false)
    }

    /// The envelope of a message replayed from a FIFO topic's archive to one subscription:
    /// AWS marks it with a `Replayed` member ("The message includes a Replayed attribute").
    pub fn for_replay(&self, subscription_arn: &str) -> String {
        self.build(subscription_arn, true)
    }

    fn build(&self, subscription_arn: &str, replayed: bool) -> String {
        let mut out = Envelope {
            buf: Vec::with_capacity(self.head.len() + self.tail.as_ref().map_or(0, Vec::len) + 180),
            members: 1,
        };
        out.buf.extend_from_slice(&self.head);
        if let Some(tail) = &self.tail {
            let url = format!(
                "{}/?Action=Unsubscribe&SubscriptionArn={}",
                self.base_url,
                arn_in_url(subscription_arn)
            );
            out.member("UnsubscribeURL", &url);
            out.buf.extend_from_slice(tail);
        }
        if replayed {
            out.member_value("Replayed", &Value::Bool(true));
        }
        out.buf.extend_from_slice(b"\n}");
        // serde_json writes UTF-8 only and everything else pushed is UTF-8 text.
        String::from_utf8(out.buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// The members of an envelope in AWS's layout: `  "Key" : value`, separated by `,\n`.
struct Envelope {
    buf: Vec<u8>,
    /// Members written so far (or before `buf`, for a part that follows others).
    members: usize,
}

impl Envelope {
    /// An envelope's opening brace, with room for `capacity` bytes.
    fn open(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(b"{\n");
        Envelope { buf, members: 0 }
    }

    fn key(&mut self, k: &str) {
        if self.members > 0 {
            self.buf.extend_from_slice(b",\n");
        }
        self.members += 1;
        self.buf.extend_from_slice(b"  \"");
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\" : ");
    }

    fn member(&mut self, k: &str, v: &str) {
        self.key(k);
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, v);
    }

    fn member_value(&mut self, k: &str, v: &Value) {
        self.key(k);
        let _ = serde_json::to_writer(&mut self.buf, v);
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An ARN in the query of a SubscribeURL or UnsubscribeURL, as AWS writes it there: colons
/// as they are (LocalStack's AWS-recorded envelopes and its exact-URL assertions); anything
/// but an unreserved character or `:` is percent-encoded.
pub fn arn_in_url(arn: &str) -> String {
    let mut out = String::with_capacity(arn.len());
    for b in arn.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// AWS's default HTTP retry policy.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    min_delay: 20,
    max_delay: 20,
    num_retries: 3,
    num_no_delay: 0,
    num_min_delay: 0,
    num_max_delay: 0,
    backoff: Backoff::Linear,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    Arithmetic,
    Exponential,
    Geometric,
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub min_delay: u32,
    pub max_delay: u32,
    pub num_retries: u32,
    pub num_no_delay: u32,
    pub num_min_delay: u32,
    pub num_max_delay: u32,
    pub backoff: Backoff,
}

impl RetryPolicy {
    fn parse(v: &Value) -> Result<RetryPolicy, String> {
        let Value::Object(o) = v else {
            return Err("healthyRetryPolicy must be an object".into());
        };
        let get = |k: &str, d: u32| -> Result<u32, String> {
            match o.get(k) {
                None => Ok(d),
                Some(x) => x
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{k} must be a non-negative integer")),
            }
        };
        let p = RetryPolicy {
            min_delay: get("minDelayTarget", 20)?,
            max_delay: get("maxDelayTarget", 20)?,
            num_retries: get("numRetries", 3)?,
            num_no_delay: get("numNoDelayRetries", 0)?,
            num_min_delay: get("numMinDelayRetries", 0)?,
            num_max_delay: get("numMaxDelayRetries", 0)?,
            backoff: match o.get("backoffFunction").and_then(Value::as_str) {
                None => Backoff::Linear,
                Some("arithmetic") => Backoff::Arithmetic,
                Some("exponential") => Backoff::Exponential,
                Some("geometric") => Backoff::Geometric,
                Some("linear") => Backoff::Linear,
                Some(other) => return Err(format!("backoffFunction {other} is not supported")),
            },
        };
        if p.num_retries > 100 {
            return Err("numRetries must be between 0 and 100".into());
        }
        if p.min_delay < 1 || p.min_delay > p.max_delay {
            return Err("minDelayTarget must be between 1 and maxDelayTarget".into());
        }
        if p.max_delay > 3600 {
            return Err("maxDelayTarget must be at most 3600".into());
        }
        // Summed wide: the counts are any u32 a client sends. Checked before `delay_secs`, whose
        // arithmetic relies on it.
        let phases =
            u64::from(p.num_no_delay) + u64::from(p.num_min_delay) + u64::from(p.num_max_delay);
        if phases > u64::from(p.num_retries) {
            return Err(
                "numNoDelayRetries + numMinDelayRetries + numMaxDelayRetries must not exceed numRetries".into(),
            );
        }
        let total: u64 = (1..=p.num_retries).map(|k| p.delay_secs(k) as u64).sum();
        if total > 3600 {
            return Err(format!(
                "the total retry time of the policy is {total} seconds, more than 3600"
            ));
        }
        Ok(p)
    }

    /// Seconds to wait before retry number `k` (1-based).
    pub fn delay_secs(&self, k: u32) -> u32 {
        if k <= self.num_no_delay {
            return 0;
        }
        if k <= self.num_no_delay + self.num_min_delay {
            return self.min_delay;
        }
        if k > self.num_retries.saturating_sub(self.num_max_delay) {
            return self.max_delay;
        }
        let backoff_n = self
            .num_retries
            .saturating_sub(self.num_no_delay + self.num_min_delay + self.num_max_delay)
            .max(1);
        let i = k - self.num_no_delay - self.num_min_delay;
        let (lo, hi) = (self.min_delay as f64, self.max_delay as f64);
        let frac = i as f64 / backoff_n as f64;
        let d = match self.backoff {
            Backoff::Linear | Backoff::Arithmetic => lo + (hi - lo) * frac,
            Backoff::Exponential | Backoff::Geometric => lo * (hi / lo).powf(frac),
        };
        d.round().clamp(lo, hi) as u32
    }
}

/// Validates a DeliveryPolicy attribute (topic: `{"http": {...}}`; subscription:
/// `{"healthyRetryPolicy": {...}}`). Empty means "unset".
pub fn validate_delivery_policy(text: &str, topic: bool) -> ServiceResult<()> {
    if text.is_empty() {
        return Ok(());
    }
    let bad = |m: String| super::error::invalid_parameter(format!("DeliveryPolicy: {m}"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let retry = if topic {
        v.get("http")
            .and_then(|h| h.get("defaultHealthyRetryPolicy"))
    } else {
        v.get("healthyRetryPolicy")
    };
    if !v.is_object() {
        return Err(bad("must be a JSON object".into()));
    }
    // A null policy is no policy: AWS takes `{"http": {"defaultHealthyRetryPolicy": null}}`.
    if let Some(r) = retry.filter(|r| !r.is_null()) {
        RetryPolicy::parse(r).map_err(bad)?;
    }
    Ok(())
}

/// A stored DeliveryPolicy as AWS shows it back (LocalStack's AWS-recorded
/// test_topic_delivery_policy_crud and test_subscribe_external_http_endpoint_content_type):
/// a topic's `http` member without its null members and with `disableSubscriptionOverrides`
/// (false unless set); a subscription's with every member, null where unset, and
/// `guaranteed` false, its `healthyRetryPolicy` likewise. Anything else is shown as stored.
pub fn shown_delivery_policy(text: &str, topic: bool) -> String {
    let Ok(Value::Object(mut v)) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let mut out = Map::new();
    if topic {
        let Some(Value::Object(mut http)) = v.remove("http") else {
            return text.to_string();
        };
        http.retain(|_, x| !x.is_null());
        let mut shown = Map::new();
        for k in [
            "defaultHealthyRetryPolicy",
            "defaultSicklyRetryPolicy",
            "defaultThrottlePolicy",
        ] {
            if let Some(x) = http.remove(k) {
                shown.insert(k.into(), x);
            }
        }
        let overrides = http
            .remove("disableSubscriptionOverrides")
            .unwrap_or(Value::Bool(false));
        shown.insert("disableSubscriptionOverrides".into(), overrides);
        shown.extend(http);
        out.insert("http".into(), Value::Object(shown));
    } else {
        for k in [
            "healthyRetryPolicy",
            "sicklyRetryPolicy",
            "throttlePolicy",
            "requestPolicy",
        ] {
            out.insert(k.into(), v.remove(k).unwrap_or(Value::Null));
        }
        let guaranteed = v.remove("guaranteed").unwrap_or(Value::Bool(false));
        out.insert("guaranteed".into(), guaranteed);
        // Its retry policy with every member in AWS's order, null where unset (the string
        // AWS hands back in the Terraform AWS provider's
        // TestSuppressEquivalentTopicSubscriptionDeliveryPolicy fixture).
        if let Some(Value::Object(retry)) = out.get_mut("healthyRetryPolicy") {
            let mut shown = Map::new();
            for k in [
                "minDelayTarget",
                "maxDelayTarget",
                "numRetries",
                "numMaxDelayRetries",
                "numNoDelayRetries",
                "numMinDelayRetries",
                "backoffFunction",
            ] {
                shown.insert(k.into(), retry.remove(k).unwrap_or(Value::Null));
            }
            shown.extend(std::mem::take(retry));
            *retry = shown;
        }
    }
    out.extend(v);
    Value::Object(out).to_string()
}

fn default_topic_policy_json() -> Value {
    json!({"http": {
        "defaultHealthyRetryPolicy": {
            "minDelayTarget": 20, "maxDelayTarget": 20, "numRetries": 3,
            "numMaxDelayRetries": 0, "numNoDelayRetries": 0, "numMinDelayRetries": 0,
            "backoffFunction": "linear"
        },
        "disableSubscriptionOverrides": false,
        "defaultRequestPolicy": {"headerContentType": "text/plain; charset=UTF-8"}
    }})
}

pub fn effective_topic_delivery_policy(t: &Topic) -> String {
    let mut base = default_topic_policy_json();
    if let Some(user) = t
        .attributes
        .get("DeliveryPolicy")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
    {
        merge(&mut base, &user);
    }
    base.to_string()
}

pub fn effective_subscription_delivery_policy(
    t: Option<&Topic>,
    sub_policy: Option<&str>,
) -> String {
    let topic: Value = t
        .map(|t| serde_json::from_str(&effective_topic_delivery_policy(t)).unwrap_or(json!({})))
        .unwrap_or_else(default_topic_policy_json);
    let mut base = json!({
        "healthyRetryPolicy": topic["http"]["defaultHealthyRetryPolicy"].clone(),
        "sicklyRetryPolicy": null,
        "throttlePolicy": null,
        "requestPolicy": topic["http"]["defaultRequestPolicy"].clone(),
        "guaranteed": false,
    });
    let overrides_off = topic["http"]["disableSubscriptionOverrides"] == json!(true);
    if !overrides_off {
        if let Some(user) = sub_policy.and_then(|p| serde_json::from_str::<Value>(p).ok()) {
            merge(&mut base, &user);
        }
    }
    base.to_string()
}

/// A user's policy over the defaults. A null member keeps the default: AWS shows the default
/// retry policy in the effective policy of a topic set to `{"http":
/// {"defaultHealthyRetryPolicy": null}}` (LocalStack's AWS-recorded
/// test_topic_delivery_policy_crud).
fn merge(base: &mut Value, user: &Value) {
    match (base, user) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (_, Value::Null) => {}
        (b, u) => *b = u.clone(),
    }
}

fn retry_policy_of(effective_sub_policy: &str) -> RetryPolicy {
    serde_json::from_str::<Value>(effective_sub_policy)
        .ok()
        .and_then(|v| RetryPolicy::parse(&v["healthyRetryPolicy"]).ok())
        .unwrap_or(DEFAULT_RETRY)
}

/// HTTP attempts under way at once, so a dead endpoint with a deep backlog cannot open
/// thousands of connections.
pub(super) const MAX_IN_FLIGHT: usize = 64;

/// Retries due pending deliveries until the service is dropped.
pub(super) async fn run_worker(me: Weak<Sns>) {
    loop {
        let Some(sns) = me.upgrade() else { return };
        let now = crate::service::now_ms();
        let mut next_due: Option<u64> = None;
        let due: Vec<PendingDelivery> = {
            let st = sns.state.lock();
            let mut in_flight = sns.in_flight.lock();
            let mut due = Vec::new();
            for p in st.pending.values() {
                if in_flight.contains(&p.id) {
                    continue;
                }
                if p.next_attempt_ms <= now {
                    if in_flight.len() >= MAX_IN_FLIGHT {
                        // Woken again as attempts finish.
                        continue;
                    }
                    in_flight.insert(p.id);
                    due.push(p.clone());
                } else {
                    next_due =
                        Some(next_due.map_or(p.next_attempt_ms, |d| d.min(p.next_attempt_ms)));
                }
            }
            due
        };
        for d in due {
            let s = sns.clone();
            tokio::spawn(async move {
                let id = d.id;
                s.attempt(d).await;
                s.in_flight.lock().remove(&id);
                s.wake.notify_one();
            });
        }
        // Cap the wait so a dropped service's worker notices within a second.
        let wait = next_due
            .map(|t| t.saturating_sub(now))
            .unwrap_or(1000)
            .clamp(1, 1000);
        tokio::select! {
            _ = sns.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
}

impl Sns {
    /// One attempt at a pending delivery; records the outcome durably.
    async fn attempt(&self, d: PendingDelivery) {
        let (sub, topic) = {
            let st = self.state.lock();
            let sub = st.subscriptions.get(&d.subscription_arn).cloned();
            let topic = st.topics.get(&d.topic_arn).cloned();
            (sub, topic)
        };
        if d.kind == DeliveryKind::Notification && sub.is_none() {
            // Unsubscribed since: AWS stops delivering.
            let _ = self.commit(vec![Record::Delivered(d.id)]).await;
            return;
        }
        let effective = effective_subscription_delivery_policy(
            topic.as_ref(),
            sub.as_ref()
                .and_then(|s| s.attributes.get("DeliveryPolicy"))
                .map(String::as_str),
        );
        let content_type = serde_json::from_str::<Value>(&effective)
            .ok()
            .and_then(|v| {
                v["requestPolicy"]["headerContentType"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "text/plain; charset=UTF-8".to_string());
        let mut headers = vec![
            (
                "x-amz-sns-message-type".to_string(),
                d.kind.as_str().to_string(),
            ),
            ("x-amz-sns-message-id".to_string(), d.message_id.clone()),
            ("x-amz-sns-topic-arn".to_string(), d.topic_arn.clone()),
            ("content-type".to_string(), content_type),
            (
                "user-agent".to_string(),
                "Amazon Simple Notification Service Agent".to_string(),
            ),
            ("accept-encoding".to_string(), "gzip,deflate".to_string()),
        ];
        // Notifications and UnsubscribeConfirmations name the subscription (LocalStack's
        // AWS-recorded test_subscribe_external_http_endpoint and ..._lambda_url_sig_validation);
        // a SubscriptionConfirmation does not.
        if d.kind != DeliveryKind::SubscriptionConfirmation {
            headers.push((
                "x-amz-sns-subscription-arn".to_string(),
                d.subscription_arn.clone(),
            ));
        }
        if d.raw {
            headers.push(("x-amz-sns-rawdelivery".to_string(), "true".to_string()));
        }
        let outcome = self
            .sinks
            .http
            .post(&d.endpoint, headers, d.body.clone())
            .await;
        // AWS retries server-side failures (5xx, throttling, no answer); a 4xx is the endpoint
        // refusing the message, which no retry fixes: it goes to the DLQ at once.
        let ok = matches!(outcome, Ok(200..=299));
        let refused = matches!(outcome, Ok(s) if (400..=499).contains(&s) && s != 429);
        let rec = if ok {
            Record::Delivered(d.id)
        } else {
            let policy = retry_policy_of(&effective);
            let attempts = d.attempts + 1;
            if refused || attempts > policy.num_retries {
                if let Some(dlq) = sub.as_ref().and_then(dead_letter_arn) {
                    let msg = InternalSend {
                        body: d.body.clone(),
                        ..Default::default()
                    };
                    if let Err(e) = self.sinks.sqs.send(&dlq, msg).await {
                        tracing::warn!(error = %e, dlq, "sns: dead-letter send failed");
                        if super::error::is_receiver(&e) {
                            // Keep it pending: the DLQ may accept it on a later pass.
                            let _ = self
                                .commit(vec![Record::Attempted {
                                    id: d.id,
                                    attempts: d.attempts,
                                    next_attempt_ms: crate::service::now_ms() + 1000,
                                }])
                                .await;
                            return;
                        }
                    }
                } else {
                    tracing::info!(
                        endpoint = d.endpoint,
                        "sns: http delivery failed, retries exhausted"
                    );
                }
                Record::Delivered(d.id)
            } else {
                Record::Attempted {
                    id: d.id,
                    attempts,
                    next_attempt_ms: crate::service::now_ms()
                        + policy.delay_secs(attempts) as u64 * 1000,
                }
            }
        };
        if let Err(e) = self.commit(vec![rec]).await {
            tracing::warn!(error = %e, "sns: recording delivery outcome failed");
        }
    }
}

/// The subscription's dead-letter queue ARN, from its RedrivePolicy.
pub fn dead_letter_arn(sub: &super::state::Subscription) -> Option<String> {
    let p: Value = serde_json::from_str(sub.attributes.get("RedrivePolicy")?).ok()?;
    p.get("deadLetterTargetArn")?.as_str().map(str::to_string)
}

/// Builds an outbox entry.
#[allow(clippy::too_many_arguments)]
pub fn outbox_entry(
    id: u64,
    protocol: &str,
    endpoint: &str,
    subscription_arn: Option<&str>,
    topic_arn: Option<&str>,
    message_id: &str,
    subject: Option<&str>,
    payload: String,
    attributes: &Map<String, Value>,
) -> OutboxEntry {
    OutboxEntry {
        id,
        timestamp_ms: crate::service::now_ms(),
        protocol: protocol.to_string(),
        endpoint: endpoint.to_string(),
        subscription_arn: subscription_arn.map(str::to_string),
        topic_arn: topic_arn.map(str::to_string),
        message_id: message_id.to_string(),
        subject: subject.map(str::to_string),
        payload,
        message_attributes: Value::Object(attributes.clone()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedule() {
        assert_eq!(DEFAULT_RETRY.delay_secs(1), 20);
        let p = RetryPolicy::parse(&json!({
            "minDelayTarget": 1, "maxDelayTarget": 10, "numRetries": 6,
            "numNoDelayRetries": 1, "numMinDelayRetries": 1, "numMaxDelayRetries": 1,
            "backoffFunction": "linear"
        }))
        .unwrap();
        let d: Vec<u32> = (1..=6).map(|k| p.delay_secs(k)).collect();
        assert_eq!(d[0], 0);
        assert_eq!(d[1], 1);
        assert_eq!(d[5], 10);
        assert!(d[2] <= d[3] && d[3] <= d[4], "{d:?}");
        assert!(RetryPolicy::parse(&json!({"numRetries": 101})).is_err());
        assert!(RetryPolicy::parse(&json!({"minDelayTarget": 30, "maxDelayTarget": 20})).is_err());
        assert!(RetryPolicy::parse(&json!({"backoffFunction": "cubic"})).is_err());
        // Phase counts that wrap a u32 when added are refused, not taken (or, with overflow
        // checks, a panic).
        assert!(RetryPolicy::parse(&json!({
            "numRetries": 3, "minDelayTarget": 1, "maxDelayTarget": 1,
            "numNoDelayRetries": u32::MAX, "numMinDelayRetries": 1
        }))
        .is_err());
        // At most an hour of retrying in all.
        assert!(RetryPolicy::parse(
            &json!({"numRetries": 100, "minDelayTarget": 36, "maxDelayTarget": 36})
        )
        .is_ok());
        assert!(RetryPolicy::parse(
            &json!({"numRetries": 100, "minDelayTarget": 37, "maxDelayTarget": 37})
        )
        .is_err());
    }

    #[test]
    fn envelope_layout() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path(), Default::default()).unwrap();
        let attrs: Map<String, Value> =
            serde_json::from_value(json!({"a": {"DataType": "String", "StringValue": "v"}}))
                .unwrap();
        let n = Notice {
            kind: DeliveryKind::Notification,
            message_id: "m",
            sequence_number: None,
            topic_arn: "arn:aws:sns:us-east-1:0:t",
            subject: None,
            message: "hello",
            timestamp_ms: 0,
            base_url: "http://h",
            subscription_arn: "arn:aws:sns:us-east-1:0:t:s",
            attributes: &attrs,
            token: None,
            signature_version: "1",
            signer: &signer,
        };
        let e = envelope(&n);
        let sig = serde_json::from_str::<Value>(&e).unwrap()["Signature"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{{\n  \"Type\" : \"Notification\",\n  \"MessageId\" : \"m\",\n  \
                 \"TopicArn\" : \"arn:aws:sns:us-east-1:0:t\",\n  \"Message\" : \"hello\",\n  \
                 \"Timestamp\" : \"1970-01-01T00:00:00.000Z\",\n  \"SignatureVersion\" : \"1\",\n  \
                 \"Signature\" : \"{sig}\",\n  \
                 \"SigningCertURL\" : \"http://h/_millpond/sns/SimpleNotificationService.pem\",\n  \
                 \"UnsubscribeURL\" : \"http://h/?Action=Unsubscribe&SubscriptionArn=\
                 arn:aws:sns:us-east-1:0:t:s\",\n  \
                 \"MessageAttributes\" : {{\"a\":{{\"Type\":\"String\",\"Value\":\"v\"}}}}\n}}"
            )
        );
        let v: Value = serde_json::from_str(&e).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "Type",
                "MessageId",
                "TopicArn",
                "Message",
                "Timestamp",
                "SignatureVersion",
                "Signature",
                "SigningCertURL",
                "UnsubscribeURL",
                "MessageAttributes"
            ]
        );
        assert_eq!(v["Timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(
            v["MessageAttributes"]["a"],
            json!({"Type": "String", "Value": "v"})
        );
        assert_eq!(
            v["UnsubscribeURL"],
            "http://h/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:0:t:s"
        );
        // A FIFO topic's notification (it has a sequence number) carries no signature.
        let fifo = Notice {
            sequence_number: Some("10000000000000001000"),
            ..n
        };
        let v: Value = serde_json::from_str(&envelope(&fifo)).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "Type",
                "MessageId",
                "SequenceNumber",
                "TopicArn",
                "Message",
                "Timestamp",
                "UnsubscribeURL",
                "MessageAttributes"
            ]
        );
    }
}
