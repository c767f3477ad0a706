//! Subscription actions: Subscribe, ConfirmSubscription, Unsubscribe, ListSubscriptions,
//! ListSubscriptionsByTopic, Get/SetSubscriptionAttributes. Owns endpoint and subscription
//! attribute validation and the confirmation handshake (http/https get a SubscriptionConfirmation
//! POST, email/email-json an outbox entry; everything else is confirmed at once).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::archive;
use super::delivery::{
    effective_subscription_delivery_policy, envelope, outbox_entry, shown_delivery_policy,
    validate_delivery_policy, Notice,
};
use super::error::parse_input;
use super::error::*;
use super::filter;
use super::state::{DeliveryKind, PendingDelivery, Record, State, Subscription, Topic};
use super::topics::find_topic;
use super::util::{check_arn, json_error, page, parse_bool, scope_prefix, uuid};
use super::Sns;
use crate::context::RequestContext;
use crate::error::ServiceResult;

const PROTOCOLS: &[&str] = &[
    "http",
    "https",
    "email",
    "email-json",
    "sms",
    "sqs",
    "application",
    "lambda",
    "firehose",
];

/// Topics may have at most this many subscriptions with a filter policy.
const MAX_FILTERED_PER_TOPIC: usize = 200;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeInput {
    topic_arn: String,
    protocol: String,
    endpoint: Option<String>,
    #[serde(default)]
    attributes: HashMap<String, String>,
    #[serde(default)]
    return_subscription_arn: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfirmInput {
    topic_arn: String,
    token: String,
    authenticate_on_unsubscribe: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubscriptionArnInput {
    subscription_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListByTopicInput {
    topic_arn: String,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetAttributesInput {
    subscription_arn: String,
    attribute_name: String,
    attribute_value: Option<String>,
}

const SETTABLE: &[&str] = &[
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "SubscriptionRoleArn",
    "ReplayPolicy",
];

fn confirms_at_once(protocol: &str) -> bool {
    !matches!(protocol, "http" | "https" | "email" | "email-json")
}

fn validate_endpoint(protocol: &str, endpoint: &str) -> ServiceResult<()> {
    let ok = match protocol {
        "http" => endpoint.starts_with("http://") && endpoint.len() > 7,
        "https" => endpoint.starts_with("https://") && endpoint.len() > 8,
        "email" | "email-json" => {
            let mut parts = endpoint.split('@');
            matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty())
        }
        "sms" => valid_sms_endpoint(endpoint),
        "sqs" => arn_of(endpoint, "sqs"),
        "lambda" => arn_of(endpoint, "lambda"),
        "firehose" => arn_of(endpoint, "firehose"),
        "application" => arn_of(endpoint, "sns") && endpoint.contains(":endpoint/"),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    if protocol == "sms" {
        return Err(invalid_parameter_bare(format!(
            "Invalid SMS endpoint: {endpoint}"
        )));
    }
    Err(invalid_parameter(match protocol {
        "http" | "https" => "Endpoint must match the specified protocol",
        "email" | "email-json" => "Email address",
        "sqs" => "SQS endpoint ARN",
        "lambda" => "Lambda endpoint ARN",
        "firehose" => "Firehose endpoint ARN",
        _ => "Endpoint",
    }))
}

fn arn_of(s: &str, service: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6 && parts[0] == "arn" && parts[2] == service && !parts[5].is_empty()
}

/// A subscription's phone number: AWS takes separators between its digits (LocalStack's
/// AWS-recorded test_subscribe_sms_obscure_phone_number: "+12/34-567.890"), but not two in a
/// row, nor one before the first digit or after the last (its AWS-validated
/// test_subscribe_invalid_sms: "+15--551234567", "+15551234567.", "/+15551234567").
fn valid_sms_endpoint(endpoint: &str) -> bool {
    let rest = endpoint.strip_prefix('+').unwrap_or(endpoint);
    let starts_well = rest.starts_with(|c: char| c.is_ascii_digit() || c == '(');
    let ends_well = rest.ends_with(|c: char| c.is_ascii_digit());
    let no_double = !rest
        .as_bytes()
        .windows(2)
        .any(|w| w.iter().all(|b| matches!(b, b'-' | b'.' | b'/')));
    starts_well
        && ends_well
        && no_double
        && valid_phone(
            &rest
                .chars()
                .filter(|c| !matches!(c, '-' | '.' | '/' | ' ' | '(' | ')'))
                .collect::<String>(),
        )
}

/// E.164: an optional `+` then up to 15 digits, not starting with 0.
pub fn valid_phone(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    !d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// The subscription an attribute is validated for.
struct Target<'a> {
    protocol: &'a str,
    topic_arn: &'a str,
    endpoint: &'a str,
}

/// Validates one subscription attribute. `subscribe` says whether this is Subscribe's
/// Attributes map, where AWS words value errors as "Attributes Reason: FilterPolicy: ..."
/// and SetSubscriptionAttributes as "FilterPolicy: ...".
fn validate_attribute(
    target: &Target,
    name: &str,
    value: &str,
    attrs: &BTreeMap<String, String>,
    subscribe: bool,
) -> ServiceResult<()> {
    let protocol = target.protocol;
    let value_err = |m: String| {
        if subscribe {
            invalid_parameter(format!("Attributes Reason: {m}"))
        } else {
            invalid_parameter(m)
        }
    };
    match name {
        "RawMessageDelivery" => {
            if parse_bool(value).is_none() {
                return Err(value_err(format!(
                    "RawMessageDelivery: Invalid value [{value}]. Must be true or false."
                )));
            }
            if !matches!(protocol, "sqs" | "http" | "https" | "firehose") {
                return Err(invalid_parameter(format!(
                    "Attributes Reason: Delivery protocol [{protocol}] does not support raw message delivery."
                )));
            }
        }
        "FilterPolicyScope" => {
            let Some(scope) = filter::Scope::parse(value) else {
                return Err(invalid_parameter(format!(
                    "FilterPolicyScope: Invalid value [{value}]. Please use either MessageBody or MessageAttributes"
                )));
            };
            if let Some(fp) = attrs.get("FilterPolicy").filter(|fp| !fp.is_empty()) {
                filter::parse(fp, scope).map_err(value_err)?;
            }
        }
        "FilterPolicy" => {
            if !value.is_empty() {
                let scope = attrs
                    .get("FilterPolicyScope")
                    .and_then(|s| filter::Scope::parse(s))
                    .unwrap_or(filter::Scope::MessageAttributes);
                filter::parse(value, scope).map_err(value_err)?;
            }
        }
        "RedrivePolicy" => {
            if !value.is_empty() {
                let v: Value = serde_json::from_str(value).map_err(|e| {
                    value_err(format!(
                        "RedrivePolicy: failed to parse JSON. {}",
                        json_error(value, &e)
                    ))
                })?;
                let arn = v.get("deadLetterTargetArn").and_then(Value::as_str);
                let Some(dlq) = arn.filter(|a| arn_of(a, "sqs")) else {
                    return Err(value_err(
                        "RedrivePolicy: deadLetterTargetArn is an invalid arn".into(),
                    ));
                };
                // A standard queue behind a FIFO topic may have any DLQ; a FIFO queue's must
                // keep the order too.
                if target.topic_arn.ends_with(".fifo")
                    && target.endpoint.ends_with(".fifo")
                    && !dlq.ends_with(".fifo")
                {
                    return Err(value_err(
                        "RedrivePolicy: must use a FIFO queue as DLQ for a FIFO Subscription to a FIFO Topic.".into(),
                    ));
                }
            }
        }
        "DeliveryPolicy" => {
            if !matches!(protocol, "http" | "https") && !value.is_empty() {
                return Err(invalid_parameter(
                    "DeliveryPolicy: Delivery policy is only supported for HTTP/S subscriptions",
                ));
            }
            validate_delivery_policy(value, false)?;
        }
        "SubscriptionRoleArn" => {
            if value.is_empty() && protocol == "firehose" {
                return Err(value_err(FIREHOSE_ROLE_REQUIRED.into()));
            }
            if !value.is_empty() && !value.starts_with("arn:") {
                return Err(invalid_parameter("SubscriptionRoleArn"));
            }
        }
        "ReplayPolicy" => {
            if !value.is_empty() {
                archive::replay_range(value, target.topic_arn)?;
            }
        }
        _ => {
            return Err(invalid_parameter(format!(
                "Attributes Reason: Unknown attribute {name}"
            )))
        }
    }
    Ok(())
}

/// Subscribe and SetSubscriptionAttributes docs: "Specifying a valid ARN for this attribute is
/// required for Firehose delivery stream subscriptions." AWS's exact wording is not recorded.
const FIREHOSE_ROLE_REQUIRED: &str =
    "SubscriptionRoleArn is required for Firehose delivery stream subscriptions";

/// What a settable subscription attribute is when it was never set.
fn default_attribute(name: &str) -> Option<&'static str> {
    match name {
        "RawMessageDelivery" => Some("false"),
        "FilterPolicyScope" => Some("MessageAttributes"),
        _ => None,
    }
}

fn check_subscription_arn(ctx: &RequestContext, arn: &str, action: &str) -> ServiceResult<()> {
    // A subscription ARN is its topic's ARN plus ":<id>". One of exactly six elements lacks
    // the id part (a topic's ARN, say), and AWS says so before it looks at account or region.
    if arn.split(':').count() == 6 {
        return Err(invalid_parameter("SubscriptionId"));
    }
    check_arn(ctx, arn, "SubscriptionArn", action)
}

fn find_subscription<'a>(
    st: &'a State,
    ctx: &RequestContext,
    arn: &str,
    action: &str,
) -> ServiceResult<&'a Subscription> {
    check_subscription_arn(ctx, arn, action)?;
    st.subscriptions.get(arn).ok_or_else(subscription_not_found)
}

fn list_entry(s: &Subscription) -> Value {
    json!({
        "SubscriptionArn": if s.confirmed { s.arn.as_str() } else { "PendingConfirmation" },
        "Owner": s.owner,
        "Protocol": s.protocol,
        "Endpoint": s.endpoint,
        "TopicArn": s.topic_arn,
    })
}

fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The confirmation (or unsubscribe-confirmation) message of an http/email subscription.
fn confirmation(
    sns: &Sns,
    ctx: &RequestContext,
    t: &Topic,
    s: &Subscription,
    kind: DeliveryKind,
    token: &str,
) -> Record {
    let message_id = uuid();
    let message = match kind {
        DeliveryKind::UnsubscribeConfirmation => format!(
            "You have chosen to deactivate subscription {}.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message.",
            s.arn
        ),
        _ => format!(
            "You have chosen to subscribe to the topic {}.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
            t.arn
        ),
    };
    let empty = Map::new();
    let body = envelope(&Notice {
        kind,
        message_id: &message_id,
        sequence_number: None,
        topic_arn: &t.arn,
        subject: None,
        message: &message,
        timestamp_ms: crate::service::now_ms(),
        base_url: &ctx.base_url,
        subscription_arn: &s.arn,
        attributes: &empty,
        token: Some(token),
        signature_version: t
            .attributes
            .get("SignatureVersion")
            .map(String::as_str)
            .unwrap_or("1"),
        signer: &sns.signer,
    });
    let id = sns.next_id();
    if matches!(s.protocol.as_str(), "http" | "https") {
        Record::Pending(PendingDelivery {
            id,
            kind,
            subscription_arn: s.arn.clone(),
            topic_arn: t.arn.clone(),
            endpoint: s.endpoint.clone(),
            message_id,
            body,
            raw: false,
            attempts: 0,
            next_attempt_ms: 0,
            created_ms: crate::service::now_ms(),
        })
    } else {
        Record::Outbox(outbox_entry(
            id,
            &s.protocol,
            &s.endpoint,
            Some(&s.arn),
            Some(&t.arn),
            &message_id,
            Some("AWS Notification - Subscription Confirmation"),
            body,
            &empty,
        ))
    }
}

/// Subscribe's endpoint and attributes, checked in AWS's order once the topic is known, and
/// the attributes as AWS stores them.
fn checked_request(
    st: &State,
    i: &SubscribeInput,
    endpoint: &str,
) -> ServiceResult<BTreeMap<String, String>> {
    if endpoint.is_empty() {
        return Err(invalid_parameter("Endpoint"));
    }
    validate_endpoint(&i.protocol, endpoint)?;
    if i.protocol == "application" && !st.endpoints.contains_key(endpoint) {
        // AWS's words, without a space after "arn" (moto's
        // test_publish_to_deleted_platform_endpoint, once verified against AWS).
        return Err(invalid_parameter(format!(
            "Endpoint Reason: Endpoint does not exist for endpoint arn{endpoint}"
        )));
    }
    let mut attrs: BTreeMap<String, String> = i.attributes.clone().into_iter().collect();
    let target = Target {
        protocol: &i.protocol,
        topic_arn: &i.topic_arn,
        endpoint,
    };
    // Scope first: FilterPolicy is validated against the scope given alongside it.
    for (k, v) in &attrs {
        if !SETTABLE.contains(&k.as_str()) {
            return Err(invalid_parameter(format!(
                "Attributes Reason: Unknown attribute {k}"
            )));
        }
        validate_attribute(&target, k, v, &attrs, true)?;
    }
    if i.protocol == "firehose"
        && attrs
            .get("SubscriptionRoleArn")
            .is_none_or(String::is_empty)
    {
        return Err(invalid_parameter(format!(
            "Attributes Reason: {FIREHOSE_ROLE_REQUIRED}"
        )));
    }
    // As AWS stores them (LocalStack's AWS-recorded test_create_subscriptions_with_attributes
    // and test_subscribe_idempotency): a boolean in lower case, and an empty FilterPolicy as no
    // policy at all, its scope with it.
    if let Some(v) = attrs.get_mut("RawMessageDelivery") {
        *v = v.to_ascii_lowercase();
    }
    if attrs.get("FilterPolicy").is_some_and(String::is_empty) {
        attrs.remove("FilterPolicy");
        attrs.remove("FilterPolicyScope");
    }
    Ok(attrs)
}

impl Sns {
    pub(super) async fn subscribe(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SubscribeInput = parse_input(input, PARSE_CODE)?;
        if !PROTOCOLS.contains(&i.protocol.as_str()) {
            return Err(invalid_parameter(format!(
                "Amazon SNS does not support this protocol string: {}",
                i.protocol
            )));
        }
        let endpoint = i.endpoint.clone().unwrap_or_default();
        let mut pending = false;
        let mut replay = None;
        let arn = self
            .mutate(|st| {
                // The topic before the endpoint: AWS answers NotFound to a subscription of a
                // topic that does not exist whatever the endpoint (moto's AWS-verified
                // test_subscribe_unknown_topic, with Endpoint "asdf").
                let t = find_topic(st, ctx, &i.topic_arn, "Subscribe")?;
                let attrs = checked_request(st, &i, &endpoint)?;
                if t.is_fifo() && i.protocol != "sqs" {
                    return Err(invalid_parameter(format!(
                        "Invalid protocol type: {}. FIFO topics only support the sqs protocol",
                        i.protocol
                    )));
                }
                if t.max_message_bytes() > super::publish::MAX_MESSAGE_BYTES
                    && !super::topics::large_message_protocol(&i.protocol)
                {
                    return Err(super::topics::large_message_protocol_error(&i.protocol));
                }
                if !t.is_fifo() && i.protocol == "sqs" && endpoint.ends_with(".fifo") {
                    return Err(invalid_parameter(
                        "Invalid parameter: Endpoint Reason: FIFO SQS Queues can not be subscribed to standard SNS topics",
                    ));
                }
                let existing = st.subscriptions.range(format!("{}:", t.arn)..).take_while(|(k, _)| k.starts_with(&format!("{}:", t.arn))).map(|(_, s)| s).find(|s| s.protocol == i.protocol && s.endpoint == endpoint);
                if let Some(s) = existing {
                    // Compared by effective value: a request that spells out a default
                    // (RawMessageDelivery=false, FilterPolicyScope=MessageAttributes) or
                    // changes only the case of a boolean still names the same subscription.
                    let same = attrs.iter().all(|(k, v)| {
                        let have = s.attributes.get(k).map(String::as_str).or(default_attribute(k));
                        match (k.as_str(), have) {
                            ("RawMessageDelivery", Some(h)) => parse_bool(h) == parse_bool(v),
                            (_, h) => h == Some(v.as_str()),
                        }
                    });
                    if !same {
                        return Err(invalid_parameter(
                            "Attributes Reason: Subscription already exists with different attributes",
                        ));
                    }
                    pending = !s.confirmed;
                    // Subscribing a pending endpoint again sends it a new confirmation
                    // request, as the console's "Request confirmation" does through this
                    // action (its token stays the subscription's one).
                    let resend = match (&s.token, s.confirmed) {
                        (Some(token), false) => vec![confirmation(self, ctx, t, s, DeliveryKind::SubscriptionConfirmation, token)],
                        _ => vec![],
                    };
                    return Ok((resend, s.arn.clone()));
                }
                if attrs.contains_key("FilterPolicy")
                    && st.subscriptions_of(&t.arn).filter(|s| s.attributes.contains_key("FilterPolicy")).count() >= MAX_FILTERED_PER_TOPIC
                {
                    return Err(filter_policy_limit_exceeded());
                }
                let confirmed = confirms_at_once(&i.protocol);
                let token = (!confirmed).then(new_token);
                let mut attrs = attrs;
                replay = archive::begin_replay(&mut attrs, t)?;
                let s = Subscription {
                    arn: format!("{}:{}", t.arn, uuid()),
                    topic_arn: t.arn.clone(),
                    owner: ctx.account_id.clone(),
                    protocol: i.protocol.clone(),
                    endpoint: endpoint.clone(),
                    attributes: attrs.clone(),
                    confirmed,
                    token: token.clone(),
                    confirmation_authenticated: confirmed,
                };
                pending = !confirmed;
                let mut recs = vec![Record::PutSubscription(s.clone())];
                if let Some(token) = &token {
                    recs.push(confirmation(self, ctx, t, &s, DeliveryKind::SubscriptionConfirmation, token));
                }
                Ok((recs, s.arn))
            })
            .await?;
        self.wake.notify_one();
        if let Some(policy) = replay {
            self.spawn_replay(&arn, &policy);
        }
        let shown = if pending && !i.return_subscription_arn {
            "pending confirmation".to_string()
        } else {
            arn
        };
        Ok(json!({ "SubscriptionArn": shown }))
    }

    pub(super) async fn confirm_subscription(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: ConfirmInput = parse_input(input, PARSE_CODE)?;
        // AWS words any unusable topic ARN here (malformed, another region) as "Topic"
        // (LocalStack's AWS-recorded test_subscribe_external_http_endpoint).
        check_arn(ctx, &i.topic_arn, "TopicArn", "ConfirmSubscription").map_err(|e| {
            if e.code == "InvalidParameter" {
                invalid_parameter("Topic")
            } else {
                e
            }
        })?;
        // Tokens are hex; anything else cannot have been issued, whatever the topic.
        if i.token.is_empty() || !i.token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid_parameter_bare("Invalid token"));
        }
        let auth = i
            .authenticate_on_unsubscribe
            .as_deref()
            .and_then(parse_bool)
            .unwrap_or(false);
        let arn = self.confirm_token(&i.topic_arn, &i.token, auth).await?;
        Ok(json!({ "SubscriptionArn": arn }))
    }

    pub(super) async fn confirm_token(
        &self,
        topic_arn: &str,
        token: &str,
        authenticated: bool,
    ) -> ServiceResult<String> {
        self.mutate(|st| {
            let prefix = format!("{topic_arn}:");
            let of_topic = st
                .subscriptions
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, s)| s)
                .find(|s| s.token.as_deref() == Some(token));
            // A token names its subscription by itself: AWS confirms it even when the URL's
            // topic does not exist (LocalStack's AWS-recorded
            // test_subscribe_external_http_endpoint, "nonexistent-token-confirm").
            // Only among the subscriptions of the topic ARN's own account and region.
            let scope = topic_arn
                .rsplit_once(':')
                .map_or(String::new(), |(s, _)| format!("{s}:"));
            let s = match of_topic {
                Some(s) => s,
                None if !st.topics.contains_key(topic_arn) && !scope.is_empty() => st
                    .subscriptions
                    .range(scope.clone()..)
                    .take_while(|(k, _)| k.starts_with(&scope))
                    .map(|(_, s)| s)
                    .find(|s| s.token.as_deref() == Some(token))
                    .ok_or_else(|| invalid_parameter("Token"))?,
                None => return Err(invalid_parameter("Token")),
            };
            if s.confirmed {
                return Ok((vec![], s.arn.clone()));
            }
            let mut s = s.clone();
            s.confirmed = true;
            s.confirmation_authenticated = authenticated;
            Ok((vec![Record::PutSubscription(s.clone())], s.arn))
        })
        .await
    }

    pub(super) async fn unsubscribe_action(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SubscriptionArnInput = parse_input(input, PARSE_CODE)?;
        check_subscription_arn(ctx, &i.subscription_arn, "Unsubscribe")?;
        self.unsubscribe_with(Some(ctx), &i.subscription_arn)
            .await?;
        Ok(json!({}))
    }

    pub(super) async fn unsubscribe_arn(&self, arn: &str) -> ServiceResult<()> {
        self.unsubscribe_with(None, arn).await
    }

    async fn unsubscribe_with(&self, ctx: Option<&RequestContext>, arn: &str) -> ServiceResult<()> {
        self.mutate(|st| {
            // Unsubscribing what is already gone succeeds, as on AWS (whose API reference
            // lists NotFound, but which answers a repeated Unsubscribe without an error), so
            // cleanup code may run twice.
            let Some(s) = st.subscriptions.get(arn) else {
                return Ok((Vec::new(), ()));
            };
            let mut recs = vec![Record::DeleteSubscription(arn.to_string())];
            if let (Some(ctx), Some(t), true) = (
                ctx,
                st.topics.get(&s.topic_arn),
                matches!(s.protocol.as_str(), "http" | "https") && s.confirmed,
            ) {
                // A token of its own, not the subscription's (LocalStack's AWS-recorded
                // test_subscribe_external_http_endpoint, "unsubscribe-request").
                let token = new_token();
                recs.push(confirmation(
                    self,
                    ctx,
                    t,
                    s,
                    DeliveryKind::UnsubscribeConfirmation,
                    &token,
                ));
            }
            Ok((recs, ()))
        })
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    pub(super) fn list_subscriptions(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: ListInput = parse_input(input, PARSE_CODE)?;
        let prefix = scope_prefix(ctx);
        let st = self.state.lock();
        let (items, next) = page(
            st.subscriptions
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, s)| (k, list_entry(s))),
            i.next_token.as_deref(),
        )?;
        let mut out = json!({ "Subscriptions": items });
        if let Some(n) = next {
            out["NextToken"] = json!(n);
        }
        Ok(out)
    }

    pub(super) fn list_subscriptions_by_topic(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: ListByTopicInput = parse_input(input, PARSE_CODE)?;
        let st = self.state.lock();
        let t = find_topic(&st, ctx, &i.topic_arn, "ListSubscriptionsByTopic")?;
        let prefix = format!("{}:", t.arn);
        let (items, next) = page(
            st.subscriptions
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, s)| (k, list_entry(s))),
            i.next_token.as_deref(),
        )?;
        let mut out = json!({ "Subscriptions": items });
        if let Some(n) = next {
            out["NextToken"] = json!(n);
        }
        Ok(out)
    }

    pub(super) fn get_subscription_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SubscriptionArnInput = parse_input(input, PARSE_CODE)?;
        let st = self.state.lock();
        let s = find_subscription(&st, ctx, &i.subscription_arn, "GetSubscriptionAttributes")?;
        let mut a = s.attributes.clone();
        if let Some(p) = a.get_mut("DeliveryPolicy") {
            *p = shown_delivery_policy(p, false);
        }
        a.insert("SubscriptionArn".into(), s.arn.clone());
        a.insert("TopicArn".into(), s.topic_arn.clone());
        a.insert("Owner".into(), s.owner.clone());
        a.insert("Protocol".into(), s.protocol.clone());
        a.insert("Endpoint".into(), s.endpoint.clone());
        a.insert("PendingConfirmation".into(), (!s.confirmed).to_string());
        a.insert(
            "ConfirmationWasAuthenticated".into(),
            s.confirmation_authenticated.to_string(),
        );
        // FilterPolicyScope is shown only alongside a FilterPolicy, as AWS does: also one set
        // before the policy is kept but not shown (LocalStack's AWS-recorded
        // test_set_subscription_filter_policy_scope).
        let has_policy = a.contains_key("FilterPolicy");
        if !has_policy {
            a.remove("FilterPolicyScope");
        }
        let shown: &[&str] = if has_policy {
            &["RawMessageDelivery", "FilterPolicyScope"]
        } else {
            &["RawMessageDelivery"]
        };
        for name in shown {
            if let Some(d) = default_attribute(name) {
                a.entry((*name).into()).or_insert_with(|| d.into());
            }
        }
        if matches!(s.protocol.as_str(), "http" | "https") {
            a.insert(
                "EffectiveDeliveryPolicy".into(),
                effective_subscription_delivery_policy(
                    st.topics.get(&s.topic_arn),
                    s.attributes.get("DeliveryPolicy").map(String::as_str),
                ),
            );
        }
        a.insert(
            "SubscriptionPrincipal".into(),
            format!("arn:aws:iam::{}:root", s.owner),
        );
        Ok(json!({ "Attributes": a }))
    }

    pub(super) async fn set_subscription_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SetAttributesInput = parse_input(input, PARSE_CODE)?;
        let value = i.attribute_value.unwrap_or_default();
        if !SETTABLE.contains(&i.attribute_name.as_str()) {
            return Err(invalid_parameter("AttributeName"));
        }
        self.mutate(|st| {
            let mut s =
                find_subscription(st, ctx, &i.subscription_arn, "SetSubscriptionAttributes")?
                    .clone();
            let target = Target {
                protocol: &s.protocol,
                topic_arn: &s.topic_arn,
                endpoint: &s.endpoint,
            };
            validate_attribute(&target, &i.attribute_name, &value, &s.attributes, false)?;
            if i.attribute_name == "FilterPolicy"
                && !value.is_empty()
                && !s.attributes.contains_key("FilterPolicy")
                && st
                    .subscriptions_of(&s.topic_arn)
                    .filter(|x| x.attributes.contains_key("FilterPolicy"))
                    .count()
                    >= MAX_FILTERED_PER_TOPIC
            {
                return Err(filter_policy_limit_exceeded());
            }
            if value.is_empty() && i.attribute_name != "RawMessageDelivery" {
                s.attributes.remove(&i.attribute_name);
            } else if i.attribute_name == "RawMessageDelivery" {
                s.attributes
                    .insert(i.attribute_name.clone(), value.to_ascii_lowercase());
            } else {
                s.attributes.insert(i.attribute_name.clone(), value.clone());
            }
            // A ReplayPolicy starts a replay, replacing one under way.
            let replay = if i.attribute_name == "ReplayPolicy" {
                let topic = st.topics.get(&s.topic_arn).ok_or_else(topic_not_found)?;
                archive::begin_replay(&mut s.attributes, topic)?
            } else {
                None
            };
            let arn = s.arn.clone();
            Ok((vec![Record::PutSubscription(s)], replay.map(|p| (arn, p))))
        })
        .await?
        .inspect(|(arn, policy)| self.spawn_replay(arn, policy));
        Ok(json!({}))
    }
}
