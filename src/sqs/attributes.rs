//! Queue attributes: names, AWS defaults and ranges, validation and normalisation of what
//! CreateQueue/SetQueueAttributes store, and the typed [`QueueConfig`] the state machine reads.
//! Redrive-target existence is checked by the caller (it needs the queue registry).

use std::collections::BTreeMap;

use serde_json::Value;

use super::error as e;
use crate::error::ServiceResult;

pub const DEFAULT_MAX_SIZE: u64 = 1_048_576;

/// Attributes a client may set on any queue.
const SETTABLE: &[&str] = &[
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
];

/// Attributes only FIFO queues know.
const FIFO_SETTABLE: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Computed attributes GetQueueAttributes reports but nobody sets.
pub const READ_ONLY: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
];

/// The parsed redrive policy of a source queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Redrive {
    pub target_arn: String,
    pub max_receive_count: u32,
}

/// Typed view of a queue's attributes with AWS defaults filled in.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    pub delay_s: u64,
    pub max_size: u64,
    pub retention_s: u64,
    pub wait_s: u64,
    pub visibility_s: u64,
    pub redrive: Option<Redrive>,
    pub fifo: bool,
    pub content_based_dedup: bool,
    /// FIFO deduplication ids are unique per queue (else per message group).
    pub dedup_scope_queue: bool,
}

fn int_attr(name: &str, v: &str, lo: u64, hi: u64) -> ServiceResult<String> {
    match v.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n.to_string()),
        _ => Err(e::invalid_attribute_value(name)),
    }
}

fn bool_attr(name: &str, v: &str) -> ServiceResult<String> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok("true".into()),
        "false" => Ok("false".into()),
        _ => Err(e::invalid_attribute_value(name)),
    }
}

fn redrive_invalid(v: &str, reason: &str) -> crate::error::ServiceError {
    e::invalid_parameter_value(format!(
        "Value {v} for parameter RedrivePolicy is invalid. Reason: {reason}"
    ))
}

/// Parses a RedrivePolicy value into its normalised JSON text and typed form.
pub fn parse_redrive(v: &str) -> ServiceResult<(String, Redrive)> {
    let json: Value = serde_json::from_str(v)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| redrive_invalid(v, "Redrive policy is not a valid JSON map."))?;
    let arn = json
        .get("deadLetterTargetArn")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            redrive_invalid(
                v,
                "Redrive policy does not contain mandatory attribute: deadLetterTargetArn.",
            )
        })?;
    let given = match json.get("maxReceiveCount") {
        Some(g) => g,
        None => {
            return Err(redrive_invalid(
                v,
                "Redrive policy does not contain mandatory attribute: maxReceiveCount.",
            ))
        }
    };
    let max = match given {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .filter(|n| (1..=1000).contains(n))
    .ok_or_else(|| {
        // AWS's wording, with the value as given.
        let shown = match given {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        redrive_invalid(
            v,
            &format!(
                "Invalid value for maxReceiveCount: {shown}, valid values are from 1 to 1000 both inclusive."
            ),
        )
    })?;
    if arn_parts(arn).is_none() {
        return Err(redrive_invalid(v, "Invalid value for deadLetterTargetArn."));
    }
    let text = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max}).to_string();
    Ok((
        text,
        Redrive {
            target_arn: arn.to_string(),
            max_receive_count: max as u32,
        },
    ))
}

/// Parsed RedriveAllowPolicy: who may use this queue as a dead-letter queue.
#[derive(Clone, Debug, PartialEq)]
pub enum RedriveAllow {
    AllowAll,
    DenyAll,
    ByQueue(Vec<String>),
}

pub fn parse_redrive_allow(v: &str) -> ServiceResult<RedriveAllow> {
    let bad = |reason: &str| {
        e::invalid_parameter_value(format!(
            "Value {v} for parameter RedriveAllowPolicy is invalid. Reason: {reason}"
        ))
    };
    let json: Value = serde_json::from_str(v)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| bad("Redrive allow policy is not a valid JSON map."))?;
    match json.get("redrivePermission").and_then(Value::as_str) {
        Some("allowAll") => Ok(RedriveAllow::AllowAll),
        Some("denyAll") => Ok(RedriveAllow::DenyAll),
        Some("byQueue") => {
            let arns: Vec<String> = json
                .get("sourceQueueArns")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if arns.is_empty() || arns.len() > 10 {
                return Err(bad("Please specify between 1 and 10 source queue ARNs when redrivePermission is byQueue."));
            }
            Ok(RedriveAllow::ByQueue(arns))
        }
        _ => Err(bad("Invalid value for redrivePermission.")),
    }
}

impl RedriveAllow {
    pub fn allows(&self, source_arn: &str) -> bool {
        match self {
            RedriveAllow::AllowAll => true,
            RedriveAllow::DenyAll => false,
            RedriveAllow::ByQueue(a) => a.iter().any(|s| s == source_arn),
        }
    }
}

/// `arn:aws:sqs:<region>:<account>:<name>` → (region, account, name).
pub fn arn_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let mut it = arn.splitn(6, ':');
    let (a, p, s, region, account, name) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    (a == "arn" && !p.is_empty() && s == "sqs" && !region.is_empty() && !account.is_empty())
        .then_some((region, account, name))
        .filter(|(_, _, n)| !n.is_empty())
}

/// Validates and normalises attributes from CreateQueue (`creating`) or SetQueueAttributes.
/// An empty value for Policy/RedrivePolicy/RedriveAllowPolicy/KmsMasterKeyId means "remove"
/// and is kept as "" so the caller can drop it.
pub fn validate(
    input: &BTreeMap<String, String>,
    creating: bool,
    fifo: bool,
) -> ServiceResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, v) in input {
        let n = name.as_str();
        let known =
            SETTABLE.contains(&n) || (fifo && FIFO_SETTABLE.contains(&n)) || n == "FifoQueue";
        if !known {
            return Err(match n {
                "DeduplicationScope" | "FifoThroughputLimit" => e::fifo_only_attribute(n),
                _ => e::invalid_attribute_name(n),
            });
        }
        if n == "FifoQueue" {
            // A standard queue cannot name it at all, not even as "false"; a FIFO queue may
            // restate "true" but not change its type.
            if !fifo {
                return Err(e::invalid_attribute_name(n));
            }
            if !creating {
                if v != "true" {
                    return Err(e::invalid_attribute_value_msg(
                        "Invalid value for the parameter FifoQueue. Reason: Modifying queue type is not supported.",
                    ));
                }
                continue;
            }
        }
        let norm = match n {
            "DelaySeconds" => int_attr(n, v, 0, 900)?,
            "MaximumMessageSize" => int_attr(n, v, 1024, 1_048_576)?,
            "MessageRetentionPeriod" => int_attr(n, v, 60, 1_209_600)?,
            "ReceiveMessageWaitTimeSeconds" => int_attr(n, v, 0, 20)?,
            "VisibilityTimeout" => int_attr(n, v, 0, 43_200)?,
            "KmsDataKeyReusePeriodSeconds" => int_attr(n, v, 60, 86_400)?,
            "SqsManagedSseEnabled" | "ContentBasedDeduplication" | "FifoQueue" => bool_attr(n, v)?,
            "Policy" => {
                if !v.is_empty() && !serde_json::from_str::<Value>(v).is_ok_and(|j| j.is_object()) {
                    return Err(e::invalid_attribute_value(n));
                }
                v.clone()
            }
            "RedrivePolicy" => {
                if v.is_empty() {
                    String::new()
                } else {
                    parse_redrive(v)?.0
                }
            }
            "RedriveAllowPolicy" => {
                if !v.is_empty() {
                    parse_redrive_allow(v)?;
                }
                v.clone()
            }
            "DeduplicationScope" => match v.as_str() {
                "messageGroup" | "queue" => v.clone(),
                _ => return Err(e::invalid_attribute_value(n)),
            },
            "FifoThroughputLimit" => match v.as_str() {
                "perQueue" | "perMessageGroupId" => v.clone(),
                _ => return Err(e::invalid_attribute_value(n)),
            },
            _ => v.clone(),
        };
        out.insert(name.clone(), norm);
    }
    if out.get("SqsManagedSseEnabled").map(String::as_str) == Some("true")
        && out.get("KmsMasterKeyId").is_some_and(|k| !k.is_empty())
    {
        return Err(e::invalid_attribute_name_msg(
            "You can use one type of server-side encryption (SSE) at one time. You can either enable KMS SSE or SQS SSE.",
        ));
    }
    if fifo
        && out.get("FifoThroughputLimit").map(String::as_str) == Some("perMessageGroupId")
        && out.get("DeduplicationScope").map(String::as_str) == Some("queue")
    {
        return Err(e::invalid_attribute_value_msg(
            "The perMessageGroupId value is allowed only when the value for DeduplicationScope is messageGroup",
        ));
    }
    Ok(out)
}

impl QueueConfig {
    pub fn from_attrs(a: &BTreeMap<String, String>, fifo: bool) -> QueueConfig {
        let num = |k: &str, d: u64| a.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        QueueConfig {
            delay_s: num("DelaySeconds", 0),
            max_size: num("MaximumMessageSize", DEFAULT_MAX_SIZE),
            retention_s: num("MessageRetentionPeriod", 345_600),
            wait_s: num("ReceiveMessageWaitTimeSeconds", 0),
            visibility_s: num("VisibilityTimeout", 30),
            redrive: a
                .get("RedrivePolicy")
                .and_then(|v| parse_redrive(v).ok())
                .map(|r| r.1),
            fifo,
            content_based_dedup: a.get("ContentBasedDeduplication").map(String::as_str)
                == Some("true"),
            dedup_scope_queue: a.get("DeduplicationScope").map(String::as_str)
                != Some("messageGroup"),
        }
    }
}

/// The stored (non-computed) attributes as GetQueueAttributes reports them, defaults included.
pub fn reported(a: &BTreeMap<String, String>, fifo: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let defaults: &[(&str, &str)] = &[
        ("DelaySeconds", "0"),
        ("MaximumMessageSize", "1048576"),
        ("MessageRetentionPeriod", "345600"),
        ("ReceiveMessageWaitTimeSeconds", "0"),
        ("VisibilityTimeout", "30"),
    ];
    for (k, d) in defaults {
        out.insert(
            k.to_string(),
            a.get(*k).cloned().unwrap_or_else(|| d.to_string()),
        );
    }
    for k in [
        "Policy",
        "RedrivePolicy",
        "RedriveAllowPolicy",
        "KmsMasterKeyId",
    ] {
        if let Some(v) = a.get(k).filter(|v| !v.is_empty()) {
            out.insert(k.into(), v.clone());
        }
    }
    let kms = a.get("KmsMasterKeyId").is_some_and(|v| !v.is_empty());
    if kms {
        out.insert(
            "KmsDataKeyReusePeriodSeconds".into(),
            a.get("KmsDataKeyReusePeriodSeconds")
                .cloned()
                .unwrap_or_else(|| "300".into()),
        );
    }
    out.insert(
        "SqsManagedSseEnabled".into(),
        a.get("SqsManagedSseEnabled")
            .cloned()
            .unwrap_or_else(|| if kms { "false" } else { "true" }.into()),
    );
    if fifo {
        out.insert("FifoQueue".into(), "true".into());
        out.insert(
            "ContentBasedDeduplication".into(),
            a.get("ContentBasedDeduplication")
                .cloned()
                .unwrap_or_else(|| "false".into()),
        );
        out.insert(
            "DeduplicationScope".into(),
            a.get("DeduplicationScope")
                .cloned()
                .unwrap_or_else(|| "queue".into()),
        );
        out.insert(
            "FifoThroughputLimit".into(),
            a.get("FifoThroughputLimit")
                .cloned()
                .unwrap_or_else(|| "perQueue".into()),
        );
    }
    out
}

/// Whether `name` is an attribute GetQueueAttributes may ask for on this kind of queue.
pub fn is_known(name: &str, fifo: bool) -> bool {
    name == "All"
        || SETTABLE.contains(&name)
        || READ_ONLY.contains(&name)
        || (fifo && (FIFO_SETTABLE.contains(&name) || name == "FifoQueue"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(k: &str, v: &str) -> BTreeMap<String, String> {
        [(k.to_string(), v.to_string())].into_iter().collect()
    }

    #[test]
    fn ranges() {
        assert!(validate(&m("DelaySeconds", "900"), true, false).is_ok());
        assert_eq!(
            validate(&m("DelaySeconds", "901"), true, false)
                .unwrap_err()
                .code,
            "InvalidAttributeValue"
        );
        assert_eq!(
            validate(&m("MaximumMessageSize", "1023"), true, false)
                .unwrap_err()
                .code,
            "InvalidAttributeValue"
        );
        assert_eq!(
            validate(&m("Bogus", "1"), true, false).unwrap_err().code,
            "InvalidAttributeName"
        );
        assert_eq!(
            validate(&m("ContentBasedDeduplication", "true"), true, false)
                .unwrap_err()
                .code,
            "InvalidAttributeName"
        );
        assert!(validate(&m("ContentBasedDeduplication", "true"), true, true).is_ok());
        // FIFO queues may restate their type, not change it; standard queues cannot name it.
        assert!(validate(&m("FifoQueue", "true"), false, true)
            .unwrap()
            .is_empty());
        let e = validate(&m("FifoQueue", "false"), false, true).unwrap_err();
        assert_eq!(
            (e.code.as_ref(), e.message.as_str()),
            (
                "InvalidAttributeValue",
                "Invalid value for the parameter FifoQueue. Reason: Modifying queue type is not supported."
            )
        );
        for creating in [true, false] {
            let e = validate(&m("FifoQueue", "false"), creating, false).unwrap_err();
            assert_eq!(
                (e.code.as_ref(), e.message.as_str()),
                ("InvalidAttributeName", "Unknown Attribute FifoQueue.")
            );
            let e = validate(&m("DeduplicationScope", "queue"), creating, false).unwrap_err();
            assert_eq!(
                (e.code.as_ref(), e.message.as_str()),
                (
                    "InvalidAttributeName",
                    "You can specify the DeduplicationScope only when FifoQueue is set to true."
                )
            );
        }
        let both: BTreeMap<String, String> = [
            ("KmsMasterKeyId".to_string(), "alias/k".to_string()),
            ("SqsManagedSseEnabled".to_string(), "true".to_string()),
        ]
        .into_iter()
        .collect();
        let e = validate(&both, true, false).unwrap_err();
        assert_eq!(e.code, "InvalidAttributeName");
        assert!(e
            .message
            .starts_with("You can use one type of server-side encryption"));
    }

    #[test]
    fn redrive_policy() {
        let (t, r) = parse_redrive(
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:dlq","maxReceiveCount":"3"}"#,
        )
        .unwrap();
        assert_eq!(r.max_receive_count, 3);
        assert!(t.contains("\"maxReceiveCount\":3"));
        assert!(parse_redrive("nope").is_err());
        assert!(parse_redrive(r#"{"maxReceiveCount":3}"#).is_err());
        for (count, shown) in [("0", "0"), ("1001", "1001"), ("\"x\"", "x")] {
            let p = format!(
                r#"{{"deadLetterTargetArn":"arn:aws:sqs:r:1:q","maxReceiveCount":{count}}}"#
            );
            let e = parse_redrive(&p).unwrap_err();
            assert!(
                e.message.ends_with(&format!(
                    "Reason: Invalid value for maxReceiveCount: {shown}, valid values are from 1 to 1000 both inclusive."
                )),
                "{}",
                e.message
            );
        }
    }
}
