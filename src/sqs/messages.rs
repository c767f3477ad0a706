//! Message actions: SendMessage(Batch), ReceiveMessage (with long polling), DeleteMessage(Batch),
//! ChangeMessageVisibility(Batch), SNS's `send_to_arn`, and receipt handles.
//!
//! A receipt handle is URL-safe base64 of (queue id, message seq, receive number, message id,
//! receive time) and a check over them:
//! opaque to clients, bound to one queue incarnation (ids are never reused) and to one receive
//! of one message, so a stale handle is recognised as such, and a handle altered or made up by a
//! client is ReceiptHandleIsInvalid, as on AWS.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::attributes::QueueConfig;
use super::error as e;
use super::md5::{check_chars, hex_md5, md5_of_attributes, parse_attrs, to_hex, Attrs, StoredAttr};
use super::queue::Queue;
use super::queues::PARAM;
use super::records::*;
use super::state::{MsgMeta, Phase, VisError};
use super::{InternalSend, Sqs};
use crate::codec::encode;
use crate::context::RequestContext;
use crate::error::{ServiceError, ServiceResult};
use crate::service::{now_ms, parse_input, to_output, Input, Output};

/// AWS's in-flight message limit (received, not deleted, visibility running), the same for
/// both queue types since 2024. At the limit a standard queue answers `OverLimit`; a FIFO
/// queue answers no messages and no error (as the ChangeMessageVisibility docs state).
const MAX_INFLIGHT: usize = 120_000;

/// Sum of all bodies and attributes of one batch, whatever the queue's MaximumMessageSize.
const MAX_BATCH_BYTES: usize = 1_048_576;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Handle {
    pub queue_id: u64,
    pub seq: u64,
    pub generation: u32,
    pub id: u128,
    /// When this receive happened: a message's visibility may be extended to at most
    /// [`MAX_VISIBILITY_S`] after it.
    pub received_ms: u64,
}

/// AWS's 12-hour ceiling on a message's total visibility timeout from its receive.
const MAX_VISIBILITY_S: u64 = 43_200;

/// The handle's fields, then [`HANDLE_CHECK_LEN`] bytes of a SHA-256 over them.
const HANDLE_FIELDS_LEN: usize = 44;
const HANDLE_CHECK_LEN: usize = 8;
const HANDLE_LEN: usize = HANDLE_FIELDS_LEN + HANDLE_CHECK_LEN;

/// Catches altered and made-up handles (see [`crate::service::token_check`]).
fn handle_check(fields: &[u8]) -> [u8; HANDLE_CHECK_LEN] {
    crate::service::token_check(b"millpond receipt handle v1\0", fields)
}

impl Handle {
    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(HANDLE_LEN);
        b.extend_from_slice(&self.queue_id.to_be_bytes());
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.generation.to_be_bytes());
        b.extend_from_slice(&self.id.to_be_bytes());
        b.extend_from_slice(&self.received_ms.to_be_bytes());
        let check = handle_check(&b);
        b.extend_from_slice(&check);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    pub fn decode(s: &str) -> Option<Handle> {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        if b.len() != HANDLE_LEN || handle_check(&b[..HANDLE_FIELDS_LEN]) != b[HANDLE_FIELDS_LEN..]
        {
            return None;
        }
        Some(Handle {
            queue_id: u64::from_be_bytes(b[0..8].try_into().ok()?),
            seq: u64::from_be_bytes(b[8..16].try_into().ok()?),
            generation: u32::from_be_bytes(b[16..20].try_into().ok()?),
            id: u128::from_be_bytes(b[20..36].try_into().ok()?),
            received_ms: u64::from_be_bytes(b[36..44].try_into().ok()?),
        })
    }
}

fn parse_handle(q: &Queue, s: Option<&str>) -> ServiceResult<Handle> {
    let s = s.ok_or_else(|| e::missing_parameter("ReceiptHandle"))?;
    Handle::decode(s)
        .filter(|h| h.queue_id == q.id)
        .ok_or_else(|| e::receipt_handle_invalid(s))
}

pub(crate) fn message_id(id: u128) -> String {
    // Into a stack buffer, then one exact allocation: `to_string` goes through the formatting
    // machinery and grows its String as it writes.
    let mut buf = uuid::Uuid::encode_buffer();
    let s: &str = uuid::Uuid::from_u128(id)
        .hyphenated()
        .encode_lower(&mut buf);
    s.to_owned()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct SendEntry {
    id: Option<String>,
    message_body: Option<String>,
    delay_seconds: Option<i64>,
    message_attributes: Option<Map<String, Value>>,
    message_system_attributes: Option<Map<String, Value>>,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

/// SendMessage's input: an entry's members beside QueueUrl.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendIn {
    queue_url: Option<String>,
    #[serde(flatten)]
    entry: SendEntry,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendBatchIn {
    queue_url: Option<String>,
    #[serde(default)]
    entries: Vec<SendEntry>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct SendOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    message_id: String,
    #[serde(rename = "MD5OfMessageBody")]
    md5_of_message_body: String,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    md5_of_message_attributes: Option<String>,
    #[serde(
        rename = "MD5OfMessageSystemAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    md5_of_message_system_attributes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<String>,
}

impl SendOut {
    /// Records what the queue made of the message: its id (a FIFO duplicate's is the
    /// original's) and, on FIFO queues, its sequence number.
    fn fill(&mut self, q: &Queue, (seq, id): (u64, u128)) {
        self.message_id = message_id(id);
        if q.fifo {
            self.sequence_number = Some(seq_number(seq));
        }
    }
}

/// The answer of every batch action: what worked, what did not. An empty list is left out,
/// as AWS's JSON answer does (aws/aws-sdk#657: "SendMessageBatch does not contain `Failed: []`
/// anymore in case of successful sends"; the Java SDK v2's `hasFailed()` tells a failure by
/// the member being there, aws/aws-sdk-java-v2#4759). The query protocol has no element for
/// an empty list either way.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchOut<T> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    successful: Vec<T>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed: Vec<Failed>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchId {
    id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Failed {
    id: String,
    sender_fault: bool,
    code: String,
    message: String,
}

impl Failed {
    fn new(id: &str, err: &ServiceError) -> Failed {
        Failed {
            id: id.to_string(),
            sender_fault: err.fault == crate::error::Fault::Sender,
            code: err.code.to_string(),
            message: err.message.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveIn {
    queue_url: Option<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
    receive_request_attempt_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleIn {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleEntry {
    id: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleBatchIn {
    queue_url: Option<String>,
    #[serde(default)]
    entries: Vec<HandleEntry>,
}

/// The checks every batch shares, in AWS's order.
fn check_batch<'a>(
    ids: impl ExactSizeIterator<Item = Option<&'a str>>,
    entry_shape: &str,
) -> ServiceResult<()> {
    let n = ids.len();
    if n == 0 {
        return Err(e::empty_batch(entry_shape));
    }
    if n > 10 {
        return Err(e::too_many_entries(n));
    }
    // At most ten ids: comparing each with those before it is cheaper than hashing them.
    let mut seen: Vec<&str> = Vec::with_capacity(n);
    for id in ids {
        let id = id.ok_or_else(|| e::missing_parameter("Id"))?;
        if id.is_empty()
            || id.len() > 80
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(e::invalid_batch_entry_id());
        }
        if seen.contains(&id) {
            return Err(e::batch_ids_not_distinct(id));
        }
        seen.push(id);
    }
    Ok(())
}

fn check_visibility(v: i64) -> ServiceResult<u64> {
    if !(0..=43_200).contains(&v) {
        return Err(e::invalid_range(
            "VisibilityTimeout",
            v,
            "Must be between 0 and 43200, if provided.",
        ));
    }
    Ok(v as u64)
}

/// A validated message ready to append, and what SendMessage answers for it.
struct Prepared {
    rec: SendRec,
    out: SendOut,
    size: usize,
}

/// Who sends a message, for [`prepare`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sender {
    SendMessage,
    /// An entry of SendMessageBatch, whose size error AWS words differently (LocalStack's
    /// AWS-recorded test_send_batch_message_size: "cannot be validated").
    BatchEntry,
    /// The SNS fan-out: nobody answers with the message's digests, so they are skipped (the
    /// MD5 of a 1 KiB notification envelope is ~1.7 µs, ten per publish to ten queues).
    Internal,
}

/// `cfg` is the queue's configuration, read once per request rather than per entry.
///
/// `trace` is the request's X-Ray header: like AWS, a send that names no AWSTraceHeader
/// system attribute gets that one. It is not part of MD5OfMessageSystemAttributes, which
/// covers only what the request sent.
fn prepare(
    cfg: &QueueConfig,
    entry: SendEntry,
    sender_id: &str,
    trace: Option<&str>,
    sender: Sender,
) -> ServiceResult<Prepared> {
    let answered = sender != Sender::Internal;
    let body = entry
        .message_body
        .filter(|b| !b.is_empty())
        .ok_or_else(|| e::missing_parameter("MessageBody"))?;
    let attrs = parse_attrs(entry.message_attributes.as_ref(), false)?;
    let system_attrs = parse_attrs(entry.message_system_attributes.as_ref(), true)?;
    check_chars(&body)?;
    let size = body.len() + attrs.iter().map(|(n, a)| a.size(n)).sum::<usize>();
    if size as u64 > cfg.max_size {
        let verdict = match sender {
            Sender::BatchEntry => "cannot be validated",
            _ => "are invalid",
        };
        return Err(e::invalid_parameter_value(format!(
            "One or more parameters {verdict}. Reason: Message must be shorter than {} bytes.",
            cfg.max_size
        )));
    }
    let not_for_type = |p: &str| {
        e::invalid_parameter_value(format!(
            "The request include parameter {p} that is not valid for this queue type"
        ))
    };
    let delay_s = match entry.delay_seconds {
        Some(d) if !(0..=900).contains(&d) => {
            // AWS's words, as boto3 users and a connector's tests against AWS quote them.
            return Err(e::invalid_range(
                "DelaySeconds",
                d,
                "DelaySeconds must be >= 0 and <= 900.",
            ));
        }
        // FIFO queues have no per-message delay; AWS accepts an explicit 0 (and the queue's
        // delay applies) and rejects anything else.
        Some(0) if cfg.fifo => cfg.delay_s,
        Some(d) if cfg.fifo => {
            return Err(e::invalid_range(
                "DelaySeconds",
                d,
                "The request include parameter that is not valid for this queue type.",
            ))
        }
        Some(d) => d as u64,
        None => cfg.delay_s,
    };
    for (name, v) in [
        ("MessageGroupId", &entry.message_group_id),
        ("MessageDeduplicationId", &entry.message_deduplication_id),
    ] {
        if let Some(v) = v {
            check_fifo_token(name, v)?;
        }
    }
    let mut dedup_id = entry.message_deduplication_id;
    if cfg.fifo {
        if entry.message_group_id.is_none() {
            return Err(e::missing_parameter("MessageGroupId"));
        }
        if dedup_id.is_none() {
            if !cfg.content_based_dedup {
                return Err(e::invalid_parameter_value(
                    "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                ));
            }
            // AWS derives it as the SHA-256 of the body.
            dedup_id = Some(to_hex(&sha2::Sha256::digest(body.as_bytes())));
        }
    } else if dedup_id.is_some() {
        return Err(not_for_type("MessageDeduplicationId"));
    }
    let id = uuid::Uuid::new_v4().as_u128();
    let now = now_ms();
    let out = SendOut {
        id: entry.id,
        message_id: message_id(id),
        md5_of_message_body: if answered {
            hex_md5(body.as_bytes())
        } else {
            String::new()
        },
        md5_of_message_attributes: (answered && !attrs.is_empty())
            .then(|| md5_of_attributes(&attrs)),
        md5_of_message_system_attributes: (answered && !system_attrs.is_empty())
            .then(|| md5_of_attributes(&system_attrs)),
        sequence_number: None,
    };
    let mut system_attrs = system_attrs;
    if let (Some(t), false) = (trace, system_attrs.contains_key("AWSTraceHeader")) {
        system_attrs.insert(
            "AWSTraceHeader".into(),
            StoredAttr {
                data_type: "String".into(),
                string_value: Some(t.to_string()),
                binary_value: None,
            },
        );
    }
    Ok(Prepared {
        rec: SendRec {
            seq: 0,
            id,
            sent_ms: now,
            visible_at: now + delay_s * 1000,
            body,
            attrs,
            system_attrs,
            sender_id: sender_id.to_string(),
            group_id: entry.message_group_id,
            dedup_id,
            dlq_source: None,
            receive_count: 0,
            first_receive_ms: 0,
            version: 0,
            inflight: false,
        },
        out,
        size,
    })
}

/// The rule the model gives MessageGroupId, MessageDeduplicationId and ReceiveRequestAttemptId
/// alike: 1 to 128 characters, alphanumeric or punctuation.
fn check_fifo_token(name: &str, v: &str) -> ServiceResult<()> {
    if v.is_empty() || v.len() > 128 || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(e::invalid_parameter_value(format!(
            "Value {v} for parameter {name} is invalid. Reason: {name} can only include alphanumeric and punctuation characters. 1 to 128 in length."
        )));
    }
    Ok(())
}

fn seq_number(seq: u64) -> String {
    format!("{:020}", seq + 1)
}

/// Which system and user attributes a ReceiveMessage asked for.
struct Wanted {
    system: Vec<String>,
    all_system: bool,
    user: Vec<String>,
    /// Some usable attribute name was asked for ([`Wanted::asks_user`]).
    user_asked: bool,
}

impl Wanted {
    fn user_attr(&self, name: &str) -> bool {
        self.user.iter().any(|w| {
            // AWS matches `prefix.*` on the plain prefix (`Hel.*` returns `Hello` and
            // `Help.Me`), and `*` like `All` (LocalStack's AWS-validated
            // test_receive_message_message_attribute_names_filters).
            w == "All"
                || w == "*"
                || w == name
                || w.strip_suffix(".*").is_some_and(|p| name.starts_with(p))
        })
    }
    /// Whether any usable attribute name was asked for: AWS then answers the message's
    /// attributes as a map even when none matched (`{}`), and ignores illegal names such
    /// as `AWS.` or `..foo` (LocalStack's AWS-recorded
    /// test_receive_message_message_attribute_names_filters).
    fn asks_user(user: &[String]) -> bool {
        user.iter().any(|w| {
            let lower = w.to_ascii_lowercase();
            !w.is_empty()
                && !lower.starts_with("aws.")
                && !lower.starts_with("amazon.")
                && !w.starts_with('.')
                && !w.contains("..")
                || w == ".*"
        })
    }
    fn sys(&self, name: &str) -> bool {
        self.all_system || self.system.iter().any(|w| w == name)
    }
}

impl Sqs {
    pub(crate) async fn send_message(
        &self,
        ctx: &RequestContext,
        input: Input<'_>,
    ) -> ServiceResult<Output> {
        let i: SendIn = input.parse(PARAM)?;
        let q = self.queue_by_url(ctx, i.queue_url.as_deref())?;
        let mut p = prepare(
            &q.config(),
            i.entry,
            &ctx.account_id,
            ctx.trace_header.as_deref(),
            Sender::SendMessage,
        )?;
        let sent = q.send(vec![p.rec]).await?;
        p.out.fill(&q, sent[0]);
        Output::json(&p.out)
    }

    pub(crate) async fn send_message_batch(
        &self,
        ctx: &RequestContext,
        input: Input<'_>,
    ) -> ServiceResult<Output> {
        let i: SendBatchIn = input.parse(PARAM)?;
        let q = self.queue_by_url(ctx, i.queue_url.as_deref())?;
        check_batch(
            i.entries.iter().map(|e| e.id.as_deref()),
            "SendMessageBatchRequestEntry",
        )?;
        let total: usize = i
            .entries
            .iter()
            .map(|e| {
                e.message_body.as_ref().map_or(0, String::len)
                    + e.message_attributes.as_ref().map_or(0, |m| {
                        m.iter()
                            .map(|(k, v)| k.len() + v.to_string().len())
                            .sum::<usize>()
                    })
            })
            .sum();
        if total > MAX_BATCH_BYTES {
            return Err(e::batch_too_long(MAX_BATCH_BYTES, total));
        }
        let n = i.entries.len();
        let cfg = q.config();
        // On a FIFO queue a missing group or deduplication id fails the whole request, not
        // just its entry (LocalStack's AWS-validated
        // test_send_batch_missing_{message_group,deduplication}_id_for_fifo_queue).
        if cfg.fifo {
            if i.entries.iter().any(|e| e.message_group_id.is_none()) {
                return Err(e::invalid_parameter_value(
                    "The request must contain the parameter MessageGroupId.",
                ));
            }
            if !cfg.content_based_dedup
                && i.entries
                    .iter()
                    .any(|e| e.message_deduplication_id.is_none())
            {
                return Err(e::invalid_parameter_value(
                    "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                ));
            }
        }
        let mut recs = Vec::with_capacity(n);
        let mut outs = Vec::with_capacity(n);
        let mut failed = Vec::new();
        let mut size = 0;
        for mut entry in i.entries {
            // The entry's Id goes either into its answer or into its failure, so it is moved
            // out rather than cloned; `prepare` only ever copies it into the answer.
            let id = entry.id.take();
            match prepare(
                &cfg,
                entry,
                &ctx.account_id,
                ctx.trace_header.as_deref(),
                Sender::BatchEntry,
            ) {
                Ok(mut p) => {
                    size += p.size;
                    p.out.id = id;
                    recs.push(p.rec);
                    outs.push(p.out);
                }
                Err(err) => failed.push(Failed::new(id.as_deref().unwrap_or_default(), &err)),
            }
        }
        if size > MAX_BATCH_BYTES {
            return Err(e::batch_too_long(MAX_BATCH_BYTES, size));
        }
        if !recs.is_empty() {
            let sent = q.send(recs).await?;
            for (o, s) in outs.iter_mut().zip(sent) {
                o.fill(&q, s);
            }
        }
        // About 130 bytes per successful entry (Id, MessageId, MD5OfMessageBody and the keys),
        // more with attribute digests or a sequence number.
        let capacity = 64 + outs.len() * 160 + failed.len() * 200;
        Output::json_sized(
            &BatchOut {
                successful: outs,
                failed,
            },
            capacity,
        )
    }

    /// Sends into the queue with this ARN as SendMessage would (same validation, same log
    /// write); resolves once durable. Returns the MessageId. `QueueDoesNotExist` if absent.
    pub async fn send_to_arn(&self, queue_arn: &str, msg: InternalSend) -> ServiceResult<String> {
        let q = self
            .queue_by_arn(queue_arn)
            .ok_or_else(e::queue_does_not_exist)?;
        let entry = SendEntry {
            message_body: Some(msg.body),
            message_attributes: (!msg.message_attributes.is_empty())
                .then_some(msg.message_attributes),
            message_group_id: msg.message_group_id,
            message_deduplication_id: msg.message_deduplication_id,
            ..Default::default()
        };
        let p = prepare(
            &q.config(),
            entry,
            &q.account,
            msg.trace_header.as_deref(),
            Sender::Internal,
        )?;
        let sent = q.send(vec![p.rec]).await?;
        Ok(message_id(sent[0].1))
    }

    pub(crate) async fn receive_message(
        &self,
        ctx: &RequestContext,
        input: Input<'_>,
    ) -> ServiceResult<Output> {
        let i: ReceiveIn = input.parse(PARAM)?;
        let q = self.queue_by_url(ctx, i.queue_url.as_deref())?;
        let max = match i.max_number_of_messages {
            Some(n) if !(1..=10).contains(&n) => {
                return Err(e::invalid_range(
                    "MaxNumberOfMessages",
                    n,
                    "Must be between 1 and 10, if provided.",
                ))
            }
            Some(n) => n as usize,
            None => 1,
        };
        let visibility = i.visibility_timeout.map(check_visibility).transpose()?;
        let wait_s = match i.wait_time_seconds {
            Some(w) if !(0..=20).contains(&w) => {
                return Err(e::invalid_range(
                    "WaitTimeSeconds",
                    w,
                    "Must be >= 0 and <= 20, if provided.",
                ))
            }
            Some(w) => w as u64,
            None => q.config().wait_s,
        };
        let system: Vec<String> = i
            .attribute_names
            .into_iter()
            .chain(i.message_system_attribute_names)
            .collect();
        let wanted = Wanted {
            all_system: system.iter().any(|s| s == "All"),
            system,
            user_asked: Wanted::asks_user(&i.message_attribute_names),
            user: i.message_attribute_names,
        };
        let attempt = i.receive_request_attempt_id.filter(|_| q.fifo);
        if let Some(a) = &attempt {
            check_fifo_token("ReceiveRequestAttemptId", a)?;
        }
        if let Some(a) = &attempt {
            let visibility_ms = visibility.unwrap_or(q.config().visibility_s) * 1000;
            if let Some(msgs) = self.replay_attempt(&q, a, &wanted, visibility_ms).await? {
                return Output::json(&ReceiveOut { messages: msgs });
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_s);
        loop {
            // Nobody would read what a receive now took (hidden, its count bumped).
            if ctx.caller_gone.is_set() {
                return Ok(Output::Json(b"{}".to_vec()));
            }
            let notified = q.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (msgs, got) = self.receive_once(&q, max, visibility, &wanted).await?;
            if let Some(a) = attempt.as_ref().filter(|_| !got.is_empty()) {
                let mut attempts = q.attempts.lock();
                let now = now_ms();
                attempts.retain(|_, (exp, _)| *exp > now);
                attempts.insert(a.clone(), (now + super::state::DEDUP_WINDOW_MS, got));
            }
            if !msgs.is_empty() || q.is_deleted() {
                return Output::json(&ReceiveOut { messages: msgs });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Output::Json(b"{}".to_vec()));
            }
            let mut until = deadline;
            if let Some(t) = q.state.lock().next_deadline() {
                let ms = t.saturating_sub(now_ms());
                until = until.min(now + Duration::from_millis(ms.max(1)));
            }
            tokio::select! {
                _ = ctx.caller_gone.wait() => {}
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// A FIFO receive retried with the same ReceiveRequestAttemptId within the window gets the
    /// same messages and receipt handles back, as long as they are still in flight as then,
    /// and "it resets the visibility timeout" (ReceiveMessage, SQS API reference): they stay
    /// hidden for `visibility_ms` from the retry.
    async fn replay_attempt(
        &self,
        q: &Queue,
        attempt: &str,
        wanted: &Wanted,
        visibility_ms: u64,
    ) -> ServiceResult<Option<Vec<Received>>> {
        let now = now_ms();
        let Some(got) = q
            .attempts
            .lock()
            .get(attempt)
            .filter(|(exp, _)| *exp > now)
            .map(|(_, g)| g.clone())
        else {
            return Ok(None);
        };
        let _g = q.gate.read().await;
        let (metas, reset) = {
            let mut st = q.state.lock();
            st.promote(now);
            let mut metas: Vec<(u64, MsgMeta, u64)> = Vec::new();
            let mut reset = Vec::new();
            for &(seq, generation, received_ms, version) in &got {
                // Only "if none of the messages have been modified (deleted or had their
                // visibility changes)" (the model's ReceiveRequestAttemptId text): a timeout the
                // consumer set since is not silently replaced.
                let unchanged = st.get(seq).is_some_and(|m| {
                    m.receive_count == generation
                        && m.phase == Phase::Inflight
                        && m.version == version
                });
                if !unchanged {
                    continue;
                }
                // Never past the 12-hour ceiling counted from the receive.
                let deadline = (now + visibility_ms).min(received_ms + MAX_VISIBILITY_S * 1000);
                if let Ok(Some(entry)) = st.change_visibility(seq, generation, deadline, now, true)
                {
                    reset.push(entry);
                }
                if let Some(m) = st.get(seq) {
                    metas.push((seq, *m, received_ms));
                }
            }
            q.rearm(&mut st);
            (metas, reset)
        };
        if metas.is_empty() {
            return Ok(None);
        }
        if !reset.is_empty() {
            q.append(vec![(Q_VISIBILITY, encode(&reset))]).await?;
            // The next retry compares against the reset, not against the receive.
            if let Some((_, got)) = q.attempts.lock().get_mut(attempt) {
                for g in got.iter_mut() {
                    if let Some(e) = reset.iter().find(|e| e.seq == g.0) {
                        g.3 = e.version;
                    }
                }
            }
            if visibility_ms == 0 {
                q.wake(reset.len());
            }
        }
        let mut out = Vec::new();
        for (seq, m, received_ms) in &metas {
            if let Some(rec) = q.read_message(m.offset)? {
                out.push(render(q, *seq, m, *received_ms, rec, wanted));
            }
        }
        Ok(Some(out))
    }

    /// One non-blocking receive: takes, logs, and renders up to `max` messages; logs expiries
    /// and dead-letters messages over the redrive limit on the way. Also returns the (seq,
    /// receive number, receive time, version) of each delivered message.
    async fn receive_once(
        &self,
        q: &Arc<Queue>,
        max: usize,
        visibility: Option<u64>,
        wanted: &Wanted,
    ) -> ServiceResult<(Vec<Received>, Vec<(u64, u32, u64, u32)>)> {
        let cfg = q.config();
        let visibility_ms = visibility.unwrap_or(cfg.visibility_s) * 1000;
        let dlq = cfg.redrive.as_ref().and_then(|r| {
            self.queue_by_arn(&r.target_arn)
                .map(|d| (d, r.max_receive_count))
        });
        let (out, got, redrive) = {
            let _g = q.gate.read().await;
            let now = now_ms();
            if q.state.lock().counts(now).1 >= MAX_INFLIGHT {
                if q.fifo {
                    return Ok((Vec::new(), Vec::new()));
                }
                return Err(e::over_limit(format!(
                    "The maximum number of in flight messages ({MAX_INFLIGHT}) has been reached."
                )));
            }
            let taken = {
                let mut st = q.state.lock();
                let taken = st.take(
                    now,
                    max,
                    visibility_ms,
                    cfg.retention_s * 1000,
                    dlq.as_ref().map(|d| d.1),
                );
                q.rearm(&mut st);
                taken
            };
            let mut recs = Vec::new();
            if !taken.expired.is_empty() {
                recs.push((Q_EXPIRED, encode(&taken.expired)));
            }
            if !taken.delivered.is_empty() {
                let entries: Vec<ReceiveEntry> = taken
                    .delivered
                    .iter()
                    .map(|(seq, m)| ReceiveEntry {
                        seq: *seq,
                        version: m.version,
                        visible_at: m.visible_at,
                        receive_count: m.receive_count,
                        first_receive_ms: m.first_receive_ms,
                    })
                    .collect();
                recs.push((Q_RECEIVE, encode(&entries)));
            }
            if !recs.is_empty() {
                q.append(recs).await?;
            }
            let mut out = Vec::with_capacity(taken.delivered.len());
            for (seq, m) in &taken.delivered {
                if let Some(rec) = q.read_message(m.offset)? {
                    out.push(render(q, *seq, m, now, rec, wanted));
                }
            }
            let got = taken
                .delivered
                .iter()
                .map(|(s, m)| (*s, m.receive_count, now, m.version))
                .collect();
            (out, got, taken.redrive)
        };
        if let Some((dlq, _)) = dlq.filter(|_| !redrive.is_empty()) {
            self.dead_letter(q, &dlq, redrive).await?;
        }
        Ok((out, got))
    }

    pub(crate) async fn delete_message(
        &self,
        ctx: &RequestContext,
        input: Input<'_>,
    ) -> ServiceResult<Output> {
        let i: HandleIn = input.parse(PARAM)?;
        let q = self.queue_by_url(ctx, i.queue_url.as_deref())?;
        let h = parse_handle(&q, i.receipt_handle.as_deref())?;
        let _g = q.gate.read().await;
        if remove_by_handle(&q, &h, i.receipt_handle.as_deref().unwrap_or_default())? {
            q.log_removed(Q_DELETE, vec![h.seq]).await?;
            q.wake_unlocked();
        }
        Ok(Output::Json(b"{}".to_vec()))
    }

    pub(crate) async fn delete_message_batch(
        &self,
        ctx: &RequestContext,
        input: Input<'_>,
    ) -> ServiceResult<Output> {
        let i: HandleBatchIn = input.parse(PARAM)?;
        let q = self.queue_by_url(ctx, i.queue_url.as_deref())?;
        check_batch(
            i.entries.iter().map(|e| e.id.as_deref()),
            "DeleteMessageBatchRequestEntry",
        )?;
        let _g = q.gate.read().await;
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        let mut removed = Vec::new();
        for entry in &i.entries {
            let id = entry.id.clone().unwrap_or_default();
            match parse_handle(&q, entry.receipt_handle.as_deref()) {
                Ok(h) => {
                    let raw = entry.receipt_handle.as_deref().unwrap_or_default();
                    match remove_by_handle(&q, &h, raw) {
                        Ok(true) => {
                            removed.push(h.seq);
                            ok.push(BatchId { id });
                        }
                        Ok(false) => ok.push(BatchId { id }),
                        Err(err) => failed.push(Failed::new(&id, &err)),
                    }
                }
                Err(err) => failed.push(Failed::new(&id, &err)),
            }
        }
        q.log_removed(Q_DELETE, removed).await?;
        q.wake_unlocked();
        Output::json(&BatchOut {
            successful: ok,
            failed,
        })
    }

    pub(crate) async fn change_message_visibility(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: HandleIn = parse_input(input, PARAM)?;
        let q = self.queue_by_url(ctx, i.queue_url.as_deref())?;
        let h = parse_handle(&q, i.receipt_handle.as_deref())?;
        let v = check_visibility(
            i.visibility_timeout
                .ok_or_else(|| e::missing_parameter("VisibilityTimeout"))?,
        )?;
        let handle = i.receipt_handle.unwrap_or_default();
        let _g = q.gate.read().await;
        if let Some(entry) = change_visibility(&q, &h, v, &handle)? {
            q.append(vec![(Q_VISIBILITY, encode(&vec![entry]))]).await?;
        }
        if v == 0 {
            q.wake(1);
        }
        Ok(json!({}))
    }

    pub(crate) async fn change_message_visibility_batch(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: HandleBatchIn = parse_input(input, PARAM)?;
        let q = self.queue_by_url(ctx, i.queue_url.as_deref())?;
        check_batch(
            i.entries.iter().map(|e| e.id.as_deref()),
            "ChangeMessageVisibilityBatchRequestEntry",
        )?;
        let _g = q.gate.read().await;
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        let mut entries = Vec::new();
        let mut wake = 0;
        for entry in &i.entries {
            let id = entry.id.clone().unwrap_or_default();
            let r = parse_handle(&q, entry.receipt_handle.as_deref()).and_then(|h| {
                let v = check_visibility(
                    entry
                        .visibility_timeout
                        .ok_or_else(|| e::missing_parameter("VisibilityTimeout"))?,
                )?;
                wake += usize::from(v == 0);
                change_visibility(
                    &q,
                    &h,
                    v,
                    entry.receipt_handle.as_deref().unwrap_or_default(),
                )
            });
            match r {
                Ok(en) => {
                    entries.extend(en);
                    ok.push(BatchId { id });
                }
                Err(err) => failed.push(Failed::new(&id, &err)),
            }
        }
        if !entries.is_empty() {
            q.append(vec![(Q_VISIBILITY, encode(&entries))]).await?;
        }
        q.wake(wake);
        to_output(&BatchOut {
            successful: ok,
            failed,
        })
    }
}

/// Removes the message a receipt handle names; true if it did. A standard queue deletes
/// with the handle of any of its receives, also after the timeout ran out. On a FIFO queue a
/// handle whose visibility window has ended (the timeout ran out, or the message was received
/// again since) is an error, as on AWS, and the message stays.
fn remove_by_handle(q: &Queue, h: &Handle, raw: &str) -> ServiceResult<bool> {
    let mut st = q.state.lock();
    match st.get(h.seq) {
        Some(m) if m.tag == h.id as u32 => {
            let current = m.receive_count == h.generation;
            let in_flight = m.phase == Phase::Inflight && m.visible_at > now_ms();
            if q.fifo && !(current && in_flight) {
                return Err(e::receipt_handle_expired(raw));
            }
            // A standard queue deletes the message with any receive's handle of it, also after
            // it was received again, as AWS does (moto's
            // test_delete_message_using_old_receipt_handle); ChangeMessageVisibility takes an
            // earlier handle the same way (LocalStack's AWS-validated
            // test_terminate_visibility_timeout_after_receive).
            Ok(st.remove(h.seq).is_some())
        }
        _ => Ok(false),
    }
}

fn change_visibility(
    q: &Queue,
    h: &Handle,
    v: u64,
    raw: &str,
) -> ServiceResult<Option<VisibilityEntry>> {
    let now = now_ms();
    // Whole seconds since the receive, so the full 43200 is still allowed right after it.
    let elapsed_s = now.saturating_sub(h.received_ms) / 1000;
    if elapsed_s + v > MAX_VISIBILITY_S {
        return Err(e::invalid_parameter_value(format!(
            "Value {v} for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [{MAX_VISIBILITY_S} seconds]"
        )));
    }
    let mut st = q.state.lock();
    if st.get(h.seq).is_some_and(|m| m.tag != h.id as u32) {
        return Err(e::receipt_handle_invalid(raw));
    }
    let entry = st
        .change_visibility(h.seq, h.generation, now + v * 1000, now, q.fifo)
        .map_err(|err| match err {
            VisError::Expired => e::receipt_handle_not_available(raw),
            VisError::NotInflight => e::message_not_inflight(),
        })?;
    q.rearm(&mut st);
    Ok(entry)
}

/// ReceiveMessage's answer. No messages is `{}`: AWS leaves the empty list out in both
/// protocols, as it does ListQueues' (a .NET SDK conformance sweep against AWS,
/// floci-io/floci#773, expects `Messages` to be null; LocalStack's review of its AWS-validated
/// tests, localstack#9710: "AWS often omits the field entirely, independent of the
/// protocol"). An SDK then reports no list (null, undefined, a missing key), as it always has
/// over the query protocol.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    messages: Vec<Received>,
}

/// One received message in the ReceiveMessage output shape.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Received {
    message_id: String,
    receipt_handle: String,
    #[serde(rename = "MD5OfBody")]
    md5_of_body: String,
    body: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "system_attributes"
    )]
    attributes: Vec<(&'static str, String)>,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    md5_of_message_attributes: Option<String>,
    /// Present when some matched or any usable name was asked for ([`Wanted::asks_user`]).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "user_attributes"
    )]
    message_attributes: Option<Attrs>,
}

fn system_attributes<S: serde::Serializer>(
    v: &[(&'static str, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, v)| (k, v)))
}

fn user_attributes<S: serde::Serializer>(v: &Option<Attrs>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().flatten().map(|(k, a)| (k, a.to_json())))
}

fn render(
    q: &Queue,
    seq: u64,
    m: &MsgMeta,
    received_ms: u64,
    rec: SendRec,
    w: &Wanted,
) -> Received {
    let handle = Handle {
        queue_id: q.id,
        seq,
        generation: m.receive_count,
        id: rec.id,
        received_ms,
    };
    let mut sys = Vec::new();
    let mut put = |name: &'static str, v: String| {
        if w.sys(name) {
            sys.push((name, v));
        }
    };
    put("SenderId", rec.sender_id);
    put("SentTimestamp", rec.sent_ms.to_string());
    put("ApproximateReceiveCount", m.receive_count.to_string());
    put(
        "ApproximateFirstReceiveTimestamp",
        m.first_receive_ms.to_string(),
    );
    if let Some(t) = rec
        .system_attrs
        .get("AWSTraceHeader")
        .and_then(|a| a.string_value.clone())
    {
        put("AWSTraceHeader", t);
    }
    if let Some(s) = rec.dlq_source {
        put("DeadLetterQueueSourceArn", s);
    }
    if q.fifo {
        put("SequenceNumber", seq_number(seq));
    }
    if let Some(g) = rec.group_id {
        put("MessageGroupId", g);
    }
    if let Some(d) = rec.dedup_id.filter(|_| q.fifo) {
        put("MessageDeduplicationId", d);
    }
    // A message with attributes answers `{}` when none of them was asked for, but one with
    // none has no map at all (LocalStack's AWS-recorded SNS-to-SQS receives with `All`).
    let had_user = !rec.attrs.is_empty();
    let mut user = rec.attrs;
    user.retain(|n, _| w.user_attr(n));
    Received {
        message_id: message_id(rec.id),
        receipt_handle: handle.encode(),
        md5_of_body: hex_md5(rec.body.as_bytes()),
        body: rec.body,
        attributes: sys,
        md5_of_message_attributes: (!user.is_empty()).then(|| md5_of_attributes(&user)),
        message_attributes: (!user.is_empty() || w.user_asked && had_user).then_some(user),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_are_hyphenated_lowercase_uuids() {
        for id in [0, 1, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            assert_eq!(
                super::message_id(id),
                uuid::Uuid::from_u128(id).hyphenated().to_string()
            );
        }
    }
}
