//! Publish and PublishBatch: validation of messages and attributes, filter evaluation, fan-out to
//! SQS (awaited: a publish is acknowledged only once every matching queue holds it durably),
//! durable pending records for HTTP deliveries and outbox entries for unreachable endpoints, and
//! FIFO topic semantics (group ids, 5-minute deduplication, sequence numbers, per-topic order).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::archive;
use super::delivery::{dead_letter_arn, outbox_entry, signature, Notice, SharedEnvelope, SqsSink};
use super::error::parse_input;
use super::error::*;
use super::filter;
use super::signing::Signer;
use super::state::{
    unfinished_key, DeliveryKind, PendingDelivery, Record, Subscription, Topic, DEDUP_WINDOW_MS,
};
use super::subscriptions::valid_phone;
use super::topics::find_topic;
use super::util::{check_arn, parse_arn, uuid};
use super::Sns;
use crate::context::RequestContext;
use crate::error::{ServiceError, ServiceResult};
use crate::sqs::InternalSend;

/// Message plus attributes may total at most 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishInput {
    topic_arn: Option<String>,
    target_arn: Option<String>,
    phone_number: Option<String>,
    #[serde(flatten)]
    msg: MessageInput,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct MessageInput {
    message: String,
    subject: Option<String>,
    message_structure: Option<String>,
    #[serde(default)]
    message_attributes: Map<String, Value>,
    message_group_id: Option<String>,
    message_deduplication_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchEntry {
    id: String,
    #[serde(flatten)]
    msg: MessageInput,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishBatchInput {
    topic_arn: String,
    publish_batch_request_entries: Vec<BatchEntry>,
}

/// A validated message.
struct Msg {
    message: String,
    subject: Option<String>,
    /// Per-protocol messages when MessageStructure=json.
    structure: Option<Map<String, Value>>,
    attributes: Map<String, Value>,
    group_id: Option<String>,
    dedup_id: Option<String>,
}

impl Msg {
    /// The message for a mobile endpoint: its platform's key (GCM, APNS, ...) when
    /// MessageStructure=json gives one, else `default`.
    fn for_platform_endpoint(&self, endpoint_arn: &str) -> &str {
        let platform = parse_arn(endpoint_arn)
            .and_then(|a| a.resource.split('/').nth(1))
            .unwrap_or("");
        self.structure
            .as_ref()
            .and_then(|s| s.get(platform))
            .and_then(Value::as_str)
            .unwrap_or_else(|| self.for_protocol("default"))
    }

    /// A protocol's entry counts only if it is a string: AWS delivers `default` in place of
    /// an object (LocalStack's AWS-recorded test_message_structure_json_to_sqs).
    fn for_protocol(&self, protocol: &str) -> &str {
        self.structure
            .as_ref()
            .and_then(|s| {
                s.get(protocol)
                    .and_then(Value::as_str)
                    .or_else(|| s.get("default").and_then(Value::as_str))
            })
            .unwrap_or(&self.message)
    }
}

/// AWS's reason for an unusable message attribute name, checked in AWS's order.
fn attribute_name_error(n: &str) -> Option<String> {
    if n.len() > 256 {
        return Some("Length of message attribute name must be less than 256 bytes.".into());
    }
    if n.starts_with('.') {
        return Some(
            "Invalid message attribute name starting with character '.' was found.".into(),
        );
    }
    if n.ends_with('.') {
        return Some("Invalid message attribute name ending with character '.' was found.".into());
    }
    let mut prev = None;
    for c in n.chars() {
        if !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Some(format!(
                "Invalid non-alphanumeric character '#x{:X}' was found in the message attribute name. Can only include alphanumeric characters, hyphens, underscores, or dots.",
                c as u32
            ));
        }
        if c == '.' && prev == Some('.') {
            return Some("Message attribute name can not have successive '.' character.".into());
        }
        prev = Some(c);
    }
    let lower = n.to_ascii_lowercase();
    if n.is_empty() || lower.starts_with("aws.") || lower.starts_with("amazon.") {
        return Some(format!(
            "The message attribute name '{n}' is invalid. Message attribute name can only contain upper and lower case alphabets, digits, periods (.), hyphens (-) and underscores (_). It must not start or end with a period, have two consecutive periods, or start with 'AWS.' or 'Amazon.'."
        ));
    }
    None
}

/// Validates message attributes; returns their size toward the message limit. `entry` is the
/// 1-based PublishBatch entry they belong to: AWS names it in the path of a missing DataType.
fn validate_attributes(attrs: &Map<String, Value>, entry: Option<usize>) -> ServiceResult<usize> {
    let mut size = 0;
    for (name, v) in attrs {
        if let Some(reason) = attribute_name_error(name) {
            return Err(invalid_parameter_value(reason));
        }
        let Some(dt) = v.get("DataType").and_then(Value::as_str) else {
            let at = format!("messageAttributes.{name}.member.dataType");
            return Err(null_member(&match entry {
                Some(n) => format!("publishBatchRequestEntries.{n}.member.{at}"),
                None => at,
            }));
        };
        let base = dt.split('.').next().unwrap_or("");
        // A custom type needs a suffix, of any characters: AWS refuses `String.` and takes
        // `String.  prefixed.` (LocalStack's AWS-recorded test_message_attributes_prefixes).
        if !matches!(base, "String" | "Number" | "Binary") || dt.len() == base.len() + 1 {
            return Err(invalid_parameter_value(format!(
                "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
            )));
        }
        let empty = || {
            invalid_parameter_value(format!(
                "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{base}'."
            ))
        };
        let string_value = v.get("StringValue").and_then(Value::as_str);
        let binary_value = v.get("BinaryValue").and_then(Value::as_str);
        if string_value.is_none() && binary_value.is_none() {
            return Err(empty());
        }
        // Only the value field of the type's own kind counts; the other one is a mistake AWS
        // names rather than ignores.
        let field = if base == "Binary" { "Binary" } else { "String" };
        let wrong_field = || {
            invalid_parameter_value(format!(
                "The message attribute '{name}' with type '{dt}' must use field '{field}'."
            ))
        };
        size += name.len() + dt.len();
        if base == "Binary" {
            let b = binary_value.ok_or_else(wrong_field)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default();
            if bytes.is_empty() {
                return Err(empty());
            }
            size += bytes.len();
            continue;
        }
        let sv = string_value.ok_or_else(wrong_field)?;
        if sv.is_empty() {
            return Err(empty());
        }
        if base == "Number" && !crate::service::is_attribute_number(sv) {
            return Err(invalid_parameter_value(format!(
                "Could not cast message attribute '{name}' value to number."
            )));
        }
        // A String.Array value that is not a JSON array is published all the same: AWS's guide
        // asks for valid JSON "to ensure the message is delivered to a subscription with
        // message attribute filtering", so a bad value costs matching, not the publish (moto's
        // tests, "the correct behavior from SNS"; see `filter::Policy::matches_attributes`).
        size += sv.len();
    }
    Ok(size)
}

fn parse_structure(m: &MessageInput) -> ServiceResult<Option<Map<String, Value>>> {
    match m.message_structure.as_deref() {
        None => Ok(None),
        Some("json") => {
            let v: Value = serde_json::from_str(&m.message).map_err(|_| {
                invalid_parameter("Message Structure - JSON message body failed to parse")
            })?;
            let Value::Object(o) = v else {
                return Err(invalid_parameter(
                    "Message Structure - JSON message body failed to parse",
                ));
            };
            if !o.get("default").is_some_and(Value::is_string) {
                return Err(invalid_parameter(
                    "Message Structure - No default entry in JSON message body",
                ));
            }
            Ok(Some(o))
        }
        Some(_) => Err(invalid_parameter("MessageStructure")),
    }
}

const GROUP_ID_REQUIRED: &str = "The MessageGroupId parameter is required for FIFO topics";
const DEDUP_ID_REQUIRED: &str = "The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly";

/// The ids a FIFO topic cannot do without.
fn check_fifo_required(m: &MessageInput, t: &Topic) -> ServiceResult<()> {
    if m.message_group_id.is_none() {
        return Err(invalid_parameter(GROUP_ID_REQUIRED));
    }
    if m.message_deduplication_id.is_none() && !t.content_based_dedup() {
        return Err(invalid_parameter(DEDUP_ID_REQUIRED));
    }
    Ok(())
}

/// The checks by which AWS refuses a whole PublishBatch rather than report one entry as
/// failed: message attributes, MessageStructure, and the ids a FIFO topic requires. The first
/// offending entry, in request order, names the error.
fn check_batch_request(entries: &[BatchEntry], topic: &Topic) -> ServiceResult<()> {
    for (n, e) in entries.iter().enumerate() {
        validate_attributes(&e.msg.message_attributes, Some(n + 1))?;
        parse_structure(&e.msg)?;
        if topic.is_fifo() {
            check_fifo_required(&e.msg, topic)?;
        }
    }
    Ok(())
}

/// A digest of what a FIFO publish delivers (group, subject, message, attributes), kept
/// with its intent: a retry that repeats it may make an unfinished publish's deliveries
/// again under the first MessageId.
fn fingerprint(msg: &Msg) -> String {
    let mut h = Sha256::new();
    let attributes = serde_json::to_string(&msg.attributes).unwrap_or_default();
    let parts = [
        msg.group_id.as_deref().unwrap_or_default(),
        msg.subject.as_deref().unwrap_or_default(),
        msg.message.as_str(),
        attributes.as_str(),
    ];
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update([u8::from(msg.structure.is_some())]);
    hex::encode(h.finalize())
}

fn validate_message(m: MessageInput, topic: Option<&Topic>) -> ServiceResult<Msg> {
    if m.message.is_empty() {
        return Err(invalid_parameter("Empty message"));
    }
    if let Some(s) = &m.subject {
        // "UTF-8 text with no line breaks or control characters, and less than 100 characters
        // long" (the model): letters of any script are fine, and 100 itself is too long.
        if s.is_empty() || s.chars().count() >= 100 || s.chars().any(char::is_control) {
            return Err(invalid_parameter("Subject"));
        }
    }
    let size = validate_attributes(&m.message_attributes, None)?;
    let limit = topic.map_or(MAX_MESSAGE_BYTES, Topic::max_message_bytes);
    if m.message.len() + size > limit {
        return Err(invalid_parameter("Message too long"));
    }
    let structure = parse_structure(&m)?;
    let mut dedup_id = m.message_deduplication_id.clone();
    match topic {
        Some(t) if t.is_fifo() => {
            let Some(g) = &m.message_group_id else {
                return Err(invalid_parameter(GROUP_ID_REQUIRED));
            };
            if !valid_fifo_id(g) {
                return Err(invalid_parameter("MessageGroupId"));
            }
            match &dedup_id {
                Some(d) if !valid_fifo_id(d) => {
                    return Err(invalid_parameter("MessageDeduplicationId"))
                }
                Some(_) => {}
                None if t.content_based_dedup() => {
                    dedup_id = Some(hex::encode(Sha256::digest(m.message.as_bytes())));
                }
                None => return Err(invalid_parameter(DEDUP_ID_REQUIRED)),
            }
        }
        _ => {
            if m.message_deduplication_id.is_some() {
                return Err(invalid_parameter(
                    "MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type",
                ));
            }
            if m.message_group_id
                .as_deref()
                .is_some_and(|g| !valid_fifo_id(g))
            {
                return Err(invalid_parameter("MessageGroupId"));
            }
        }
    }
    Ok(Msg {
        message: m.message,
        subject: m.subject,
        structure,
        attributes: m.message_attributes,
        group_id: m.message_group_id,
        dedup_id,
    })
}

/// Characters of a message published straight to a phone number.
const MAX_SMS_CHARS: usize = 1600;

fn valid_fifo_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The signature of each text as the Message of one Notification: what every envelope of
/// that text carries, whichever subscription it goes to (the subscription is not signed).
fn sign_notifications(
    texts: Vec<String>,
    message_id: &str,
    topic_arn: &str,
    subject: Option<&str>,
    timestamp_ms: u64,
    signature_version: &str,
    signer: &Signer,
) -> Vec<(String, String)> {
    let no_attributes = Map::new();
    texts
        .into_iter()
        .map(|text| {
            let sig = signature(&Notice {
                kind: DeliveryKind::Notification,
                message_id,
                sequence_number: None,
                topic_arn,
                subject,
                message: &text,
                timestamp_ms,
                base_url: "",
                subscription_arn: "",
                attributes: &no_attributes,
                token: None,
                signature_version,
                signer,
            });
            (text, sig)
        })
        .collect()
}

fn filter_matches(sns: &Sns, sub: &Subscription, msg: &Msg) -> bool {
    filter_passes(sns, sub, &msg.attributes, msg.for_protocol(&sub.protocol))
}

/// Whether a message with these attributes and this body (as the subscription's protocol
/// receives it) passes the subscription's filter policy. Live publishes and archive replays.
pub(super) fn filter_passes(
    sns: &Sns,
    sub: &Subscription,
    attributes: &Map<String, Value>,
    body: &str,
) -> bool {
    let Some(fp) = sub.attributes.get("FilterPolicy") else {
        return true;
    };
    let scope = sub
        .attributes
        .get("FilterPolicyScope")
        .and_then(|s| filter::Scope::parse(s))
        .unwrap_or(filter::Scope::MessageAttributes);
    match sns.parsed_filter(fp, scope) {
        Ok(p) => match scope {
            filter::Scope::MessageAttributes => p.matches_attributes(attributes),
            filter::Scope::MessageBody => p.matches_body(body),
        },
        // Validated when set; an unparsable stored policy matches nothing rather than everything.
        Err(_) => false,
    }
}

/// Whether a subscription receives the signed JSON envelope (rather than the bare message).
fn needs_envelope(sub: &Subscription) -> bool {
    match sub.protocol.as_str() {
        "sqs" | "http" | "https" | "firehose" => !sub.raw(),
        "email" | "sms" | "application" => false,
        _ => true,
    }
}

pub(super) fn is_fifo_queue(arn: &str) -> bool {
    arn.ends_with(".fifo")
}

impl Sns {
    /// Holds a FIFO topic's publish lock (`None` for a standard topic, whose publishes take
    /// none): held by each publish to it from the dedup check to the dedup record, so group
    /// order into FIFO queues is kept, a replay can hand a subscription over to live delivery
    /// between two publishes, and DeleteTopic or SetTopicAttributes never fall inside one.
    pub(super) async fn fifo_order(
        &self,
        topic_arn: &str,
    ) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        if !topic_arn.ends_with(".fifo") {
            return None;
        }
        let lock = self
            .fifo_locks
            .lock()
            .entry(topic_arn.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        Some(lock.lock_owned().await)
    }

    pub(super) async fn publish(&self, ctx: &RequestContext, input: Value) -> ServiceResult<Value> {
        let i: PublishInput = parse_input(input, PARSE_CODE)?;
        let targets = [&i.topic_arn, &i.target_arn, &i.phone_number]
            .iter()
            .filter(|t| t.as_deref().is_some_and(|s| !s.is_empty()))
            .count();
        // An empty TopicArn or TargetArn is given, not missing: AWS judges it as an ARN.
        if targets == 0 && i.topic_arn.is_none() && i.target_arn.is_none() {
            return Err(invalid_parameter(
                "TopicArn or TargetArn Reason: no value for required parameter",
            ));
        }
        if targets > 1 {
            return Err(invalid_parameter(
                "TopicArn Reason: Only one of TopicArn, TargetArn or PhoneNumber may be specified",
            ));
        }
        if let Some(phone) = i.phone_number.as_deref().filter(|s| !s.is_empty()) {
            if !valid_phone(phone) {
                return Err(invalid_parameter(format!(
                    "PhoneNumber Reason: {phone} is not valid to publish to"
                )));
            }
            let msg = validate_message(i.msg, None)?;
            // "The total size limit for a single SMS Publish action is 1,600 characters" (the
            // API reference); over it, AWS's usual answer to a message too long.
            if msg.for_protocol("sms").chars().count() > MAX_SMS_CHARS {
                return Err(invalid_parameter("Message too long"));
            }
            return self.publish_direct(ctx, "sms", phone, None, msg).await;
        }
        let (arn, param) = match (&i.topic_arn, &i.target_arn) {
            (Some(t), _) if !t.is_empty() => (t.clone(), "TopicArn"),
            (_, Some(t)) if !t.is_empty() => (t.clone(), "TargetArn"),
            (Some(t), _) => (t.clone(), "TopicArn"),
            (_, Some(t)) => (t.clone(), "TargetArn"),
            _ => return Err(invalid_parameter("TopicArn")),
        };
        check_arn(ctx, &arn, param, "Publish")?;
        if parse_arn(&arn).is_some_and(|a| a.resource.starts_with("endpoint/")) {
            // The endpoint is checked before the message: a disabled endpoint answers
            // EndpointDisabled even to a message that would not parse (moto's AWS-verified
            // test_publish_to_disabled_platform_endpoint).
            let (enabled, app_enabled) = {
                let st = self.state.lock();
                let e = st.endpoints.get(&arn).ok_or_else(|| {
                    invalid_parameter(
                        "TargetArn Reason: No endpoint found for the target arn specified",
                    )
                })?;
                let app_enabled = st.applications.get(&e.application_arn).is_none_or(|a| {
                    a.attributes.get("Enabled").map(String::as_str) != Some("false")
                });
                (
                    e.attributes.get("Enabled").map(String::as_str) != Some("false"),
                    app_enabled,
                )
            };
            if !app_enabled {
                return Err(platform_application_disabled());
            }
            if !enabled {
                return Err(endpoint_disabled());
            }
            let msg = validate_message(i.msg, None)?;
            return self
                .publish_direct(ctx, "application", &arn, None, msg)
                .await;
        }
        let topic = {
            let st = self.state.lock();
            find_topic(&st, ctx, &arn, "Publish")?.clone()
        };
        let msg = validate_message(i.msg, Some(&topic))?;
        let (message_id, seq) = self.publish_to_topic(ctx, &topic, msg).await?;
        let mut out = json!({ "MessageId": message_id });
        if let Some(s) = seq {
            out["SequenceNumber"] = json!(s);
        }
        Ok(out)
    }

    /// A publish straight to a phone number or platform endpoint: recorded in the outbox.
    async fn publish_direct(
        &self,
        _ctx: &RequestContext,
        protocol: &str,
        endpoint: &str,
        topic_arn: Option<&str>,
        msg: Msg,
    ) -> ServiceResult<Value> {
        let message_id = uuid();
        let payload = if protocol == "application" {
            msg.for_platform_endpoint(endpoint)
        } else {
            msg.for_protocol(protocol)
        }
        .to_string();
        let entry = outbox_entry(
            self.next_id(),
            protocol,
            endpoint,
            None,
            topic_arn,
            &message_id,
            msg.subject.as_deref(),
            payload,
            &msg.attributes,
        );
        self.commit(vec![Record::Outbox(entry)]).await?;
        Ok(json!({ "MessageId": message_id }))
    }

    /// Fans one validated message out to the topic's matching subscriptions. Returns the message
    /// id and, for FIFO topics, the sequence number.
    async fn publish_to_topic(
        &self,
        ctx: &RequestContext,
        topic: &Topic,
        msg: Msg,
    ) -> ServiceResult<(String, Option<String>)> {
        let fifo = topic.is_fifo();
        // FIFO topics: one publish at a time per topic keeps group order into FIFO queues and
        // makes the dedup check-then-record atomic.
        let _order = self.fifo_order(&topic.arn).await;
        let now = crate::service::now_ms();
        let (subs, sequence, archive_days, dedup_key, redo) = {
            let st = self.state.lock();
            // Read under the topic's lock, which DeleteTopic and SetTopicAttributes take too:
            // a publish that waited for a DeleteTopic finds the topic gone (and records no
            // deduplication id for it), and never archives into an archive just removed.
            if fifo && !st.topics.contains_key(&topic.arn) {
                return Err(topic_not_found());
            }
            let archive_days = st
                .topics
                .get(&topic.arn)
                .filter(|_| fifo)
                .and_then(archive::archiving_days);
            let prefix = format!("{}:", topic.arn);
            let subs: Vec<Subscription> = st
                .subscriptions
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, s)| s)
                .filter(|s| s.confirmed && archive::receives_live(s))
                .cloned()
                .collect();
            let mut sequence = None;
            // The topic as it is under its lock (SetTopicAttributes may have changed its
            // FifoThroughputScope since it was looked up).
            let dedup_key = match (st.topics.get(&topic.arn), msg.dedup_id.as_deref()) {
                (Some(t), Some(d)) => Some(t.dedup_key(msg.group_id.as_deref(), d)),
                _ => None,
            };
            // An unfinished publish of this deduplication id (see `unfinished_key`): its
            // first MessageId, SequenceNumber and time, to make its deliveries again.
            let mut redo = None;
            if fifo {
                let f = st.fifo.get(&topic.arn);
                let live = |key: &str| {
                    f.and_then(|f| f.dedup.get(key))
                        .filter(|(seen, _, _)| seen + DEDUP_WINDOW_MS > now)
                };
                let key = dedup_key.as_deref().unwrap_or("");
                if let Some((seen, id, seq)) = live(key) {
                    // Made again only for a retry of the same message: another message under
                    // the id is a duplicate, as on AWS (and must not go out under these ids).
                    let unfinished = live(&unfinished_key(key))
                        .is_some_and(|(_, print, _)| *print == fingerprint(&msg));
                    if !unfinished {
                        return Ok((id.clone(), Some(format_seq(*seq))));
                    }
                    redo = Some((*seen, id.clone(), *seq));
                }
                // Above every number given out before, and above the clock's count (ms x
                // 10,000): a data directory from before intents were recorded may have lost
                // the last number given (a crash after the sends, before the deduplication
                // record), and a restart must not give it again to another message. Shown x
                // 1000, that is 20 significant digits, as AWS's have.
                let last = f.map_or(0, |f| f.sequence);
                sequence = match &redo {
                    Some((_, _, seq)) => Some(*seq),
                    None => Some((last + 1).max(now.saturating_mul(10_000))),
                };
            }
            (subs, sequence, archive_days, dedup_key, redo)
        };
        // A redone publish is stamped as it was the first time (the FIFO queues that have its
        // deliveries drop the new ones by their deduplication id either way).
        let (message_id, now) = match &redo {
            Some((seen, id, _)) => (id.clone(), *seen),
            None => (uuid(), now),
        };
        let seq_str = sequence.map(format_seq);
        let signature_version = topic
            .attributes
            .get("SignatureVersion")
            .cloned()
            .unwrap_or_else(|| "1".into());
        let mut records = Vec::new();
        let mut signatures: HashMap<String, String> = HashMap::new();
        // Borrowed from `subs`: the sends are awaited below, while `subs` is alive.
        let mut sqs_sends: Vec<(&Subscription, InternalSend)> = Vec::new();
        // AWS delivers message attributes only with plain (not MessageStructure=json) messages;
        // they still drive filter policies.
        let no_attributes = Map::new();
        let delivered_attributes = if msg.structure.is_some() {
            &no_attributes
        } else {
            &msg.attributes
        };
        let matched: Vec<&Subscription> = subs
            .iter()
            .filter(|s| filter_matches(self, s, &msg))
            .collect();
        let text_for = |sub: &Subscription| -> &str {
            if sub.protocol == "application" {
                msg.for_platform_endpoint(&sub.endpoint)
            } else {
                msg.for_protocol(&sub.protocol)
            }
        };
        // Sign each distinct text once, on the blocking pool: ~17 µs at 1024 bits, ~120 µs at
        // 2048 (benches/sign.rs), or a key still being made. Made on an async worker instead,
        // a signature holds up every connection and commit wake-up queued behind it: with 16
        // publishing connections that cost more than the pool's hop (sns-publish$, same build,
        // three interleaved runs: 11.0–11.6k publishes/s signing in place, 12.3–12.7k on the
        // pool, 12.1–12.2k on one dedicated thread; ~10% less CPU per publish on the pool).
        // A FIFO topic's notifications are not signed (see `SharedEnvelope::new`).
        let mut to_sign: Vec<String> = matched
            .iter()
            .filter(|s| !fifo && needs_envelope(s))
            .map(|s| text_for(s).to_string())
            .collect();
        to_sign.sort();
        to_sign.dedup();
        if !to_sign.is_empty() {
            let signer = self.signer.clone();
            let (mid, subject, arn, version) = (
                message_id.clone(),
                msg.subject.clone(),
                topic.arn.clone(),
                signature_version.clone(),
            );
            let signed = tokio::task::spawn_blocking(move || {
                sign_notifications(
                    to_sign,
                    &mid,
                    &arn,
                    subject.as_deref(),
                    now,
                    &version,
                    &signer,
                )
            })
            .await
            .map_err(|e| ServiceError::internal(format!("signing task failed: {e}")))?;
            signatures.extend(signed);
        }
        let mut envelopes: HashMap<&str, SharedEnvelope> = HashMap::new();
        for sub in matched {
            let text = text_for(sub);
            let notice = Notice {
                kind: DeliveryKind::Notification,
                message_id: &message_id,
                sequence_number: seq_str.as_deref(),
                topic_arn: &topic.arn,
                subject: msg.subject.as_deref(),
                message: text,
                timestamp_ms: now,
                base_url: &ctx.base_url,
                subscription_arn: &sub.arn,
                attributes: delivered_attributes,
                token: None,
                signature_version: &signature_version,
                signer: &self.signer,
            };
            // One signature and one shared envelope per distinct message text, not per
            // subscription: every other member of `notice` but the subscription ARN is the
            // same for all subscriptions of a publish (a member that is not must not be
            // shared this way).
            let mut env = || {
                envelopes
                    .entry(text)
                    .or_insert_with(|| {
                        if fifo {
                            return SharedEnvelope::new(&notice, "");
                        }
                        let sig = signatures
                            .entry(text.to_string())
                            .or_insert_with(|| signature(&notice));
                        SharedEnvelope::new(&notice, sig)
                    })
                    .for_subscription(&sub.arn)
            };
            match sub.protocol.as_str() {
                "sqs" => {
                    // Raw: the attributes as published. `String.Array` stays as it is: SQS
                    // takes it as a String with a custom type suffix, and LocalStack, whose SNS
                    // tests are checked against AWS, passes the type through unchanged.
                    let (body, message_attributes) = if sub.raw() {
                        (text.to_string(), delivered_attributes.clone())
                    } else {
                        (env(), Map::new())
                    };
                    let into_fifo = is_fifo_queue(&sub.endpoint);
                    sqs_sends.push((
                        sub,
                        InternalSend {
                            body,
                            message_attributes,
                            // A standard topic forwards the group id to standard queues too
                            // (their fair queueing); a FIFO topic only to FIFO queues.
                            message_group_id: (into_fifo || !fifo)
                                .then(|| msg.group_id.clone())
                                .flatten(),
                            message_deduplication_id: msg.dedup_id.clone().filter(|_| into_fifo),
                            trace_header: ctx.trace_header.clone(),
                        },
                    ));
                }
                "http" | "https" => {
                    let raw = sub.raw();
                    records.push(Record::Pending(PendingDelivery {
                        id: self.next_id(),
                        kind: DeliveryKind::Notification,
                        subscription_arn: sub.arn.clone(),
                        topic_arn: topic.arn.clone(),
                        endpoint: sub.endpoint.clone(),
                        message_id: message_id.clone(),
                        body: if raw { text.to_string() } else { env() },
                        raw,
                        attempts: 0,
                        next_attempt_ms: 0,
                        created_ms: now,
                    }));
                }
                protocol => {
                    let payload = match protocol {
                        "email" | "sms" | "application" => text.to_string(),
                        "firehose" if sub.raw() => text.to_string(),
                        "lambda" => lambda_event(&sub.arn, &env()),
                        _ => env(),
                    };
                    records.push(Record::Outbox(outbox_entry(
                        self.next_id(),
                        protocol,
                        &sub.endpoint,
                        Some(&sub.arn),
                        Some(&topic.arn),
                        &message_id,
                        msg.subject.as_deref(),
                        payload,
                        delivered_attributes,
                    )));
                }
            }
        }
        if redo.is_some() {
            // Recorded with the first attempt's intent. (None today: a FIFO topic takes
            // SQS subscriptions only.)
            records.clear();
        }
        let wake = records.iter().any(|r| matches!(r, Record::Pending(_)));
        match (sequence, &dedup_key) {
            (Some(seq), Some(dedup)) if redo.is_none() => {
                // Before any delivery: a crash during them leaves the publish unfinished, and
                // its retry makes them again under this MessageId instead of answering with
                // it, or sending a new message the FIFO queues would drop as a duplicate.
                // First in the batch: a crash that keeps part of it keeps the intent.
                records.insert(
                    0,
                    Record::FifoIntent {
                        topic_arn: topic.arn.clone(),
                        dedup_id: dedup.clone(),
                        message_id: message_id.clone(),
                        sequence: seq,
                        at_ms: now,
                        fingerprint: fingerprint(&msg),
                    },
                );
                if !self.commit_for_topic(&topic.arn, records).await? {
                    return Err(topic_not_found());
                }
            }
            _ => self.commit(records).await?,
        }
        if wake {
            self.wake.notify_one();
        }
        // Every queue is sent to at once; the publish is acknowledged when all are durable.
        join_all_sends(
            sqs_sends
                .into_iter()
                .map(|(sub, send)| send_sqs(self.sinks.sqs.clone(), sub, send))
                .collect(),
        )
        .await?;
        // A reset (which takes no topic lock) may have emptied everything meanwhile.
        let archive_days =
            archive_days.filter(|_| self.state.lock().topics.contains_key(&topic.arn));
        if let (Some(seq), Some(days)) = (sequence, archive_days) {
            // Archived after the sends and before the deduplication record: after a crash
            // between, the archive tells that the publish finished (`recover_dedup`).
            let archived = archive::Archived {
                message_id: message_id.clone(),
                sequence: seq,
                timestamp_ms: now,
                subject: msg.subject.clone(),
                message: msg.for_protocol("sqs").to_string(),
                attributes: Value::Object(msg.attributes.clone()).to_string(),
                structured: msg.structure.is_some(),
                group_id: msg.group_id.clone(),
                dedup_id: msg.dedup_id.clone(),
                base_url: ctx.base_url.clone(),
            };
            self.archives.append(&topic.arn, days, &archived).await?;
        }
        if let (Some(seq), Some(dedup)) = (sequence, dedup_key) {
            // Recorded after the sends: a crash before this line leaves the publish
            // unfinished, and its retry sends again (the FIFO queues drop what they have).
            let done = Record::FifoPublished {
                topic_arn: topic.arn.clone(),
                dedup_id: dedup,
                message_id: message_id.clone(),
                sequence: seq,
                at_ms: now,
            };
            self.commit_for_topic(&topic.arn, vec![done]).await?;
        }
        Ok((message_id, seq_str))
    }

    pub(super) async fn publish_batch(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: PublishBatchInput = parse_input(input, PARSE_CODE)?;
        let entries = i.publish_batch_request_entries;
        if entries.is_empty() {
            return Err(empty_batch());
        }
        if entries.len() > 10 {
            return Err(too_many_entries());
        }
        let mut ids = HashSet::new();
        for e in &entries {
            if e.id.is_empty()
                || e.id.len() > 80
                || !e
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid_batch_entry_id());
            }
            if !ids.insert(e.id.as_str()) {
                return Err(batch_ids_not_distinct());
            }
        }
        let total: usize = entries
            .iter()
            .map(|e| e.msg.message.len() + attributes_size(&e.msg.message_attributes))
            .sum();
        // Looked up once; a batch too long for the topic's own limit ("the combined size of
        // all messages in the batch ... must not exceed the topic's MaximumMessageSize") is
        // refused before a missing topic is reported.
        let topic = {
            let st = self.state.lock();
            find_topic(&st, ctx, &i.topic_arn, "Publish").cloned()
        };
        let limit = topic
            .as_ref()
            .map_or(MAX_MESSAGE_BYTES, Topic::max_message_bytes);
        if total > limit {
            return Err(batch_request_too_long());
        }
        let topic = topic?;
        check_batch_request(&entries, &topic)?;
        let (ids, msgs): (Vec<String>, Vec<ServiceResult<Msg>>) = entries
            .into_iter()
            .map(|e| (e.id, validate_message(e.msg, Some(&topic))))
            .unzip();
        let topic = &topic;
        let publish =
            |msg: ServiceResult<Msg>| async move { self.publish_to_topic(ctx, topic, msg?).await };
        let results = if topic.is_fifo() {
            // One after another: a FIFO topic's entries keep their order into FIFO queues.
            // A server-side failure ends the batch, leaving the later entries unpublished.
            let mut out = Vec::with_capacity(msgs.len());
            for msg in msgs {
                let r = publish(msg).await;
                let stop = matches!(&r, Err(e) if is_receiver(e));
                out.push(r);
                if stop {
                    break;
                }
            }
            out
        } else {
            // All at once: the entries' fan-outs then share commit rounds instead of waiting
            // for one round each, ten in a row for a full batch.
            join_in_task(msgs.into_iter().map(publish).collect()).await
        };
        let mut successful = Vec::new();
        let mut failed = Vec::new();
        for (id, result) in ids.into_iter().zip(results) {
            match result {
                Ok((message_id, seq)) => {
                    let mut v = json!({"Id": id, "MessageId": message_id});
                    if let Some(s) = seq {
                        v["SequenceNumber"] = json!(s);
                    }
                    successful.push(v);
                }
                Err(err) if is_receiver(&err) => return Err(err),
                Err(err) => failed.push(batch_error(&id, &err)),
            }
        }
        Ok(json!({ "Successful": successful, "Failed": failed }))
    }
}

/// Sends into a subscribed queue. A queue that refuses the message (deleted, wrong kind) is
/// a failed delivery: the message goes to the subscription's DLQ if it has one. A storage
/// failure fails the publish so the client retries.
/// Runs the sends concurrently inside the calling task and returns the first error once all
/// are done. Not a `JoinSet`: the sends are short and mostly wait on the queues' group commits,
/// so a task each only adds spawns and cross-thread wake-ups; sixteen concurrent publishes
/// already keep both cores busy.
async fn join_all_sends<F>(sends: Vec<F>) -> ServiceResult<()>
where
    F: std::future::Future<Output = ServiceResult<()>>,
{
    join_in_task(sends)
        .await
        .into_iter()
        .find_map(Result::err)
        .map_or(Ok(()), Err)
}

/// Runs `futures` concurrently inside the calling task; their outputs, in order.
async fn join_in_task<F: std::future::Future>(mut futures: Vec<F>) -> Vec<F::Output> {
    enum Slot<F: std::future::Future> {
        Running(std::pin::Pin<Box<F>>),
        Done(F::Output),
    }
    if futures.len() == 1 {
        if let Some(f) = futures.pop() {
            return vec![f.await];
        }
    }
    let mut slots: Vec<Slot<F>> = futures
        .into_iter()
        .map(|f| Slot::Running(Box::pin(f)))
        .collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in slots.iter_mut() {
            if let Slot::Running(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => *slot = Slot::Done(r),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    slots
        .into_iter()
        .filter_map(|slot| match slot {
            Slot::Done(r) => Some(r),
            Slot::Running(_) => None,
        })
        .collect()
}

async fn send_sqs(
    sink: Arc<dyn SqsSink>,
    sub: &Subscription,
    send: InternalSend,
) -> ServiceResult<()> {
    // The body is copied only when a dead-letter queue may need it after a failure.
    let retry = sub
        .attributes
        .contains_key("RedrivePolicy")
        .then(|| send.clone());
    match sink.send(&sub.endpoint, send).await {
        Ok(_) => Ok(()),
        Err(e) if is_receiver(&e) => Err(e),
        Err(e) => {
            tracing::info!(error = %e, queue = sub.endpoint, "sns: sqs delivery failed");
            if let (Some(dlq), Some(send)) = (dead_letter_arn(sub), retry) {
                let into_fifo = is_fifo_queue(&dlq);
                let send = InternalSend {
                    message_group_id: send.message_group_id.filter(|_| into_fifo),
                    message_deduplication_id: send.message_deduplication_id.filter(|_| into_fifo),
                    ..send
                };
                match sink.send(&dlq, send).await {
                    Ok(_) => {}
                    Err(e) if is_receiver(&e) => return Err(e),
                    Err(e) => tracing::warn!(error = %e, dlq, "sns: dead-letter send failed"),
                }
            }
            Ok(())
        }
    }
}

fn attributes_size(attrs: &Map<String, Value>) -> usize {
    attrs
        .iter()
        .map(|(k, v)| {
            k.len()
                + v.get("DataType")
                    .and_then(Value::as_str)
                    .map_or(0, str::len)
                + v.get("StringValue")
                    .and_then(Value::as_str)
                    .map_or(0, str::len)
                + v.get("BinaryValue")
                    .and_then(Value::as_str)
                    .map_or(0, |b| b.len() * 3 / 4)
        })
        .sum()
}

fn batch_error(id: &str, e: &ServiceError) -> Value {
    json!({
        "Id": id,
        "Code": e.query_code,
        "Message": e.message,
        "SenderFault": !is_receiver(e),
    })
}

/// A FIFO sequence number as SNS prints it: 20 digits.
pub(super) fn format_seq(n: u64) -> String {
    format!("{:020}", (n as u128) * 1000)
}

/// The event a Lambda subscription would be invoked with.
fn lambda_event(sub_arn: &str, envelope: &str) -> String {
    let sns: Value = serde_json::from_str(envelope).unwrap_or(Value::Null);
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": sub_arn,
        "Sns": sns,
    }]})
    .to_string()
}
