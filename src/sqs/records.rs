//! Log record types of SQS, and their kind bytes. Two kinds of logs:
//!
//! - the catalog (`<data_dir>/sqs/catalog`): queues, their attributes, tags, permissions (as the
//!   Policy attribute) and message move tasks — [`CatalogRec`], one kind byte each.
//! - one log per queue (`<data_dir>/sqs/queues/<queue id>`, the id a catalog-assigned u64 that
//!   is never reused): message lifecycle records, kinds `Q_*`.
//!
//! Queue records are applied in log order but are also made order-independent where concurrent
//! operations may append out of their in-memory order: every per-message change carries the
//! message's new `version`, and replay ignores a change whose version is not newer. Sends carry
//! a queue-local `seq`; a purge records the first seq it did not remove.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::md5::Attrs;

pub const C_CREATE: u8 = 1;
pub const C_SET_ATTRS: u8 = 2;
pub const C_DELETE: u8 = 3;
pub const C_TAG: u8 = 4;
pub const C_UNTAG: u8 = 5;
pub const C_MOVE_START: u8 = 6;
/// Written by builds before `C_MOVE_STEP`; still replayed.
pub const C_MOVE_PROGRESS: u8 = 7;
pub const C_MOVE_END: u8 = 8;
pub const C_MOVE_STEP: u8 = 9;

pub const Q_SEND: u8 = 1;
pub const Q_RECEIVE: u8 = 2;
pub const Q_VISIBILITY: u8 = 3;
pub const Q_DELETE: u8 = 4;
pub const Q_PURGE: u8 = 5;
/// A live message re-appended by compaction; carries its whole current state.
pub const Q_RELOCATE: u8 = 6;
/// Messages moved out (to a dead-letter queue or by a move task); replays as a delete.
pub const Q_MOVED: u8 = 7;
/// Messages past MessageRetentionPeriod; replays as a delete so a later raise of the period
/// cannot resurrect them.
pub const Q_EXPIRED: u8 = 8;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateQueueRec {
    pub id: u64,
    pub account: String,
    pub region: String,
    pub name: String,
    pub fifo: bool,
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetAttrsRec {
    pub id: u64,
    /// Empty values remove the attribute.
    pub attributes: BTreeMap<String, String>,
    pub modified_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteQueueRec {
    pub id: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TagRec {
    pub id: u64,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UntagRec {
    pub id: u64,
    pub keys: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MoveTaskRec {
    pub task_id: String,
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub rate: Option<u32>,
    pub started_ms: u64,
    pub to_move: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MoveProgressRec {
    pub task_id: String,
    pub moved: u64,
}

/// Logged before a move task moves one message: how many it had moved before, and the
/// source queue (catalog id) and `seq` of the message it takes. A task resumed after a
/// restart counts the message as moved if that queue no longer holds it: its removal is
/// logged in the source queue's log, after the send to the destination.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MoveStepRec {
    pub task_id: String,
    pub moved: u64,
    pub source_id: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MoveEndRec {
    pub task_id: String,
    pub moved: u64,
    /// COMPLETED, CANCELLED or FAILED.
    pub status: String,
    pub failure: Option<String>,
}

/// A whole message: written by SendMessage, redrive into a DLQ, move tasks, and (with its live
/// state) compaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SendRec {
    pub seq: u64,
    pub id: u128,
    pub sent_ms: u64,
    pub visible_at: u64,
    pub body: String,
    pub attrs: Attrs,
    pub system_attrs: Attrs,
    pub sender_id: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// The queue a dead-lettered message came from (DeadLetterQueueSourceArn).
    pub dlq_source: Option<String>,
    // Live state; zero for fresh sends, current for relocations.
    pub receive_count: u32,
    pub first_receive_ms: u64,
    pub version: u32,
    pub inflight: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ReceiveEntry {
    pub seq: u64,
    pub version: u32,
    pub visible_at: u64,
    pub receive_count: u32,
    pub first_receive_ms: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct VisibilityEntry {
    pub seq: u64,
    pub version: u32,
    pub visible_at: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PurgeRec {
    /// Every message with a smaller seq is gone.
    pub below_seq: u64,
}
