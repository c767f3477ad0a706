//! The derived SNS state: the catalog (topics, subscriptions, platform applications and
//! endpoints, SMS settings), pending HTTP deliveries, the outbox and FIFO dedup windows. It is
//! rebuilt by applying log [`Record`]s in order and is what a checkpoint snapshots. Applying is
//! deterministic: every generated value (ARNs, tokens, timestamps) travels inside the record.
//! This module does no I/O and no validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long a FIFO topic remembers a deduplication id.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Topic {
    pub arn: String,
    pub name: String,
    pub account: String,
    pub region: String,
    /// Attributes as set by the user (including the generated default `Policy`); computed ones
    /// (counts, `EffectiveDeliveryPolicy`, `Owner`, `TopicArn`) are added when read.
    pub attributes: BTreeMap<String, String>,
    pub tags: Vec<(String, String)>,
    pub data_protection_policy: Option<String>,
    pub subscriptions_deleted: u64,
}

impl Topic {
    pub fn is_fifo(&self) -> bool {
        self.attributes.get("FifoTopic").map(|v| v == "true") == Some(true)
    }
    pub fn content_based_dedup(&self) -> bool {
        self.attributes
            .get("ContentBasedDeduplication")
            .map(|v| v == "true")
            == Some(true)
    }
    /// The largest message (body and attributes) the topic takes: its `MaximumMessageSize`,
    /// 256 KiB by default.
    pub fn max_message_bytes(&self) -> usize {
        self.attributes
            .get("MaximumMessageSize")
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::sns::publish::MAX_MESSAGE_BYTES)
    }
    /// The key a publish's deduplication id is remembered under: the id itself, or with
    /// `FifoThroughputScope` `MessageGroup` the group and the id, since "the message
    /// deduplication scope is within each individual message group" (the model's Publish
    /// docs). Publish admits only graphic ASCII in either id (`valid_fifo_id`), so the
    /// space between them keeps two different pairs from making one key.
    pub fn dedup_key(&self, group_id: Option<&str>, dedup_id: &str) -> String {
        match self
            .attributes
            .get("FifoThroughputScope")
            .map(String::as_str)
        {
            Some("MessageGroup") => format!("{} {dedup_id}", group_id.unwrap_or_default()),
            _ => dedup_id.to_string(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Subscription {
    pub arn: String,
    pub topic_arn: String,
    pub owner: String,
    pub protocol: String,
    pub endpoint: String,
    /// User-settable attributes (FilterPolicy, RawMessageDelivery, ...).
    pub attributes: BTreeMap<String, String>,
    pub confirmed: bool,
    /// The confirmation token while pending confirmation.
    pub token: Option<String>,
    pub confirmation_authenticated: bool,
}

impl Subscription {
    pub fn raw(&self) -> bool {
        self.attributes
            .get("RawMessageDelivery")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlatformApplication {
    pub arn: String,
    pub name: String,
    pub platform: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlatformEndpoint {
    pub arn: String,
    pub application_arn: String,
    pub attributes: BTreeMap<String, String>,
}

/// Per (account, region) SMS settings and sandbox.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SmsSettings {
    pub attributes: BTreeMap<String, String>,
    pub opted_out: Vec<String>,
    /// Sandbox destination numbers and whether they are verified.
    pub sandbox: BTreeMap<String, bool>,
}

/// What kind of HTTP POST a pending delivery is (the `x-amz-sns-message-type` header).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum DeliveryKind {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Notification => "Notification",
            DeliveryKind::SubscriptionConfirmation => "SubscriptionConfirmation",
            DeliveryKind::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

/// An HTTP/HTTPS POST not yet acknowledged by its endpoint; survives restarts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PendingDelivery {
    pub id: u64,
    pub kind: DeliveryKind,
    pub subscription_arn: String,
    pub topic_arn: String,
    pub endpoint: String,
    pub message_id: String,
    /// The exact request body (envelope JSON, or the raw message).
    pub body: String,
    pub raw: bool,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub created_ms: u64,
}

/// A delivery to an endpoint millpond cannot reach (email, sms, mobile push, lambda, firehose),
/// kept for tests to read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutboxEntry {
    pub id: u64,
    pub timestamp_ms: u64,
    pub protocol: String,
    pub endpoint: String,
    pub subscription_arn: Option<String>,
    pub topic_arn: Option<String>,
    pub message_id: String,
    pub subject: Option<String>,
    /// What the endpoint would have received.
    pub payload: String,
    /// The publish's message attributes as JSON text.
    pub message_attributes: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FifoState {
    pub sequence: u64,
    /// dedup id -> (first seen ms, message id, sequence number); and, under
    /// [`unfinished_key`], the publishes whose deliveries may not all have been made, as
    /// (first seen ms, fingerprint of the message, sequence number).
    pub dedup: BTreeMap<String, (u64, String, u64)>,
    /// In memory only: the keys of `dedup` by first-seen time, so those past the window go
    /// without a scan of all of them: a topic publishing 1,000 messages/s holds 300,000.
    #[serde(skip)]
    order: ExpiryOrder,
}

/// `(first seen ms, key)` in the order entries were made, one per key and time (an unfinished
/// mark goes with its key). May hold keys since replaced or removed (each is checked against
/// `dedup` when it comes up). Built from `dedup` at the first prune, since a state loaded from
/// a checkpoint has none. Derived from the state, so it is neither compared nor shown.
#[derive(Clone, Default)]
struct ExpiryOrder {
    keys: std::collections::VecDeque<(u64, String)>,
    built: bool,
}

impl PartialEq for ExpiryOrder {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for ExpiryOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("_")
    }
}

impl FifoState {
    /// Records `entry` for deduplication key `key`.
    pub fn remember(&mut self, key: String, entry: (u64, String, u64)) {
        if self.dedup.get(&key).is_none_or(|e| e.0 != entry.0) {
            self.order.keys.push_back((entry.0, key.clone()));
        }
        self.dedup.insert(key, entry);
    }

    /// Drops the entries first seen a whole window before `at_ms`, unfinished marks with
    /// their keys. An entry made out of time order (a retry stamped with its first attempt's
    /// time) may stay a little longer; a lookup checks the time anyway.
    fn prune(&mut self, at_ms: u64) {
        if !self.order.built {
            let mut all: Vec<(u64, String)> = self
                .dedup
                .iter()
                .filter(|(k, _)| !k.starts_with(UNFINISHED))
                .map(|(k, e)| (e.0, k.clone()))
                .collect();
            all.sort_unstable();
            self.order = ExpiryOrder {
                keys: all.into(),
                built: true,
            };
        }
        while let Some((seen, _)) = self.order.keys.front() {
            if seen.saturating_add(DEDUP_WINDOW_MS) > at_ms {
                break;
            }
            let Some((seen, key)) = self.order.keys.pop_front() else {
                break;
            };
            if self.dedup.get(&key).is_some_and(|e| e.0 == seen) {
                self.dedup.remove(&key);
                let mark = unfinished_key(&key);
                if self.dedup.get(&mark).is_some_and(|e| e.0 == seen) {
                    self.dedup.remove(&mark);
                }
            }
        }
    }
}

/// The key under which [`FifoState::dedup`] marks the publish of deduplication key `key`
/// unfinished: recorded by its [`Record::FifoIntent`] before its deliveries, removed by its
/// [`Record::FifoPublished`] after them. A retry of an unfinished publish makes its
/// deliveries again, under its first MessageId. No deduplication key starts with the
/// control character (ids and group ids are printable ASCII), and a key of this form keeps
/// the checkpoint's layout unchanged.
pub fn unfinished_key(key: &str) -> String {
    format!("{UNFINISHED}{key}")
}

const UNFINISHED: char = '\u{1}';

/// One state change, as appended to the log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Record {
    PutTopic(Topic),
    DeleteTopic(String),
    PutSubscription(Subscription),
    DeleteSubscription(String),
    PutApplication(PlatformApplication),
    DeleteApplication(String),
    PutEndpoint(PlatformEndpoint),
    DeleteEndpoint(String),
    PutSms(String, SmsSettings),
    Pending(PendingDelivery),
    Attempted {
        id: u64,
        attempts: u32,
        next_attempt_ms: u64,
    },
    Delivered(u64),
    Outbox(OutboxEntry),
    OutboxCleared(Vec<u64>),
    FifoPublished {
        topic_arn: String,
        dedup_id: String,
        message_id: String,
        sequence: u64,
        at_ms: u64,
    },
    Reset,
    /// A FIFO publish about to make its deliveries: its deduplication id is taken, and the
    /// publish stays unfinished until its `FifoPublished`. `fingerprint`: what a retry must
    /// repeat to make the deliveries again (its group, subject, message and attributes).
    FifoIntent {
        topic_arn: String,
        dedup_id: String,
        message_id: String,
        sequence: u64,
        at_ms: u64,
        fingerprint: String,
    },
}

/// Log record kind byte of every SNS record.
pub const RECORD_KIND: u8 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub topics: BTreeMap<String, Topic>,
    pub subscriptions: BTreeMap<String, Subscription>,
    pub applications: BTreeMap<String, PlatformApplication>,
    pub endpoints: BTreeMap<String, PlatformEndpoint>,
    /// Keyed by "account:region".
    pub sms: BTreeMap<String, SmsSettings>,
    pub pending: BTreeMap<u64, PendingDelivery>,
    pub outbox: BTreeMap<u64, OutboxEntry>,
    pub fifo: BTreeMap<String, FifoState>,
    /// Next id for pending deliveries and outbox entries.
    pub next_id: u64,
}

impl State {
    /// The subscriptions of a topic (their ARNs extend the topic's ARN with `:<id>`).
    pub fn subscriptions_of<'a>(
        &'a self,
        topic_arn: &str,
    ) -> impl Iterator<Item = &'a Subscription> + 'a {
        let prefix = format!("{topic_arn}:");
        self.subscriptions
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, s)| s)
    }

    /// A FIFO topic's state with its sequence raised to `sequence` and the deduplication
    /// ids older than the window at `at_ms` dropped.
    fn fifo_window(&mut self, topic_arn: String, sequence: u64, at_ms: u64) -> &mut FifoState {
        let f = self.fifo.entry(topic_arn).or_default();
        f.sequence = f.sequence.max(sequence);
        f.prune(at_ms);
        f
    }

    pub fn apply(&mut self, rec: Record) {
        match rec {
            Record::PutTopic(t) => {
                self.topics.insert(t.arn.clone(), t);
            }
            Record::DeleteTopic(arn) => {
                self.topics.remove(&arn);
                self.fifo.remove(&arn);
                self.subscriptions.retain(|_, s| s.topic_arn != arn);
            }
            Record::PutSubscription(s) => {
                self.subscriptions.insert(s.arn.clone(), s);
            }
            Record::DeleteSubscription(arn) => {
                if let Some(s) = self.subscriptions.remove(&arn) {
                    if let Some(t) = self.topics.get_mut(&s.topic_arn) {
                        t.subscriptions_deleted += 1;
                    }
                }
            }
            Record::PutApplication(a) => {
                self.applications.insert(a.arn.clone(), a);
            }
            Record::DeleteApplication(arn) => {
                self.applications.remove(&arn);
                self.endpoints.retain(|_, e| e.application_arn != arn);
            }
            Record::PutEndpoint(e) => {
                self.endpoints.insert(e.arn.clone(), e);
            }
            Record::DeleteEndpoint(arn) => {
                self.endpoints.remove(&arn);
            }
            Record::PutSms(key, s) => {
                self.sms.insert(key, s);
            }
            Record::Pending(p) => {
                self.next_id = self.next_id.max(p.id + 1);
                self.pending.insert(p.id, p);
            }
            Record::Attempted {
                id,
                attempts,
                next_attempt_ms,
            } => {
                if let Some(p) = self.pending.get_mut(&id) {
                    p.attempts = attempts;
                    p.next_attempt_ms = next_attempt_ms;
                }
            }
            Record::Delivered(id) => {
                self.pending.remove(&id);
            }
            Record::Outbox(o) => {
                self.next_id = self.next_id.max(o.id + 1);
                self.outbox.insert(o.id, o);
            }
            Record::OutboxCleared(ids) => {
                for id in ids {
                    self.outbox.remove(&id);
                }
            }
            Record::FifoPublished {
                topic_arn,
                dedup_id,
                message_id,
                sequence,
                at_ms,
            } => {
                let f = self.fifo_window(topic_arn, sequence, at_ms);
                f.dedup.remove(&unfinished_key(&dedup_id));
                f.remember(dedup_id, (at_ms, message_id, sequence));
            }
            Record::FifoIntent {
                topic_arn,
                dedup_id,
                message_id,
                sequence,
                at_ms,
                fingerprint,
            } => {
                let f = self.fifo_window(topic_arn, sequence, at_ms);
                // Expires with its key (`prune`), so not in the order itself.
                f.dedup
                    .insert(unfinished_key(&dedup_id), (at_ms, fingerprint, sequence));
                f.remember(dedup_id, (at_ms, message_id, sequence));
            }
            Record::Reset => {
                // Ids stay monotonic across resets so a stale worker never confuses two deliveries.
                let next_id = self.next_id;
                *self = State {
                    next_id,
                    ..State::default()
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(key: &str, at_ms: u64) -> Record {
        Record::FifoPublished {
            topic_arn: "t".into(),
            dedup_id: key.into(),
            message_id: format!("m-{key}"),
            sequence: at_ms,
            at_ms,
        }
    }

    fn intent(key: &str, at_ms: u64) -> Record {
        Record::FifoIntent {
            topic_arn: "t".into(),
            dedup_id: key.into(),
            message_id: format!("m-{key}"),
            sequence: at_ms,
            at_ms,
            fingerprint: "f".into(),
        }
    }

    fn keys(st: &State) -> Vec<String> {
        st.fifo["t"].dedup.keys().cloned().collect()
    }

    /// Deduplication ids go once a whole window has passed since they were first seen, and
    /// not before; also in a state loaded from a checkpoint, which holds no expiry order.
    #[test]
    fn dedup_ids_expire_after_the_window_also_after_a_checkpoint() {
        let mut st = State::default();
        st.apply(published("a", 1_000));
        st.apply(intent("b", 2_000));
        st.apply(published("b", 2_000));
        // Never finished: its mark goes with it.
        st.apply(intent("u", 2_000));
        st.apply(published("c", 1_000 + DEDUP_WINDOW_MS - 1));
        assert_eq!(keys(&st), ["\u{1}u", "a", "b", "c", "u"]);
        let mut loaded: State = crate::codec::decode(&crate::codec::encode(&st)).unwrap();
        assert_eq!(loaded, st);
        for s in [&mut st, &mut loaded] {
            s.apply(published("d", 1_000 + DEDUP_WINDOW_MS));
            assert_eq!(keys(s), ["\u{1}u", "b", "c", "d", "u"]);
            s.apply(published("e", 2_000 + DEDUP_WINDOW_MS));
            assert_eq!(keys(s), ["c", "d", "e"]);
        }
    }

    /// An entry re-made later (an unfinished publish's intent, then its end) lasts from its
    /// newest time: the older expiry of the same key does not remove it.
    #[test]
    fn a_remade_dedup_id_is_not_removed_by_its_older_expiry() {
        let mut st = State::default();
        st.apply(published("a", 1_000));
        st.apply(published("a", 50_000));
        st.apply(published("x", 1_000 + DEDUP_WINDOW_MS));
        assert_eq!(keys(&st), ["a", "x"]);
    }
}
