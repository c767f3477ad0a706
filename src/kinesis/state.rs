//! The catalog: what Kinesis knows about streams, shards, consumers and accounts, as plain data.
//! Every change is one [`CatalogEvent`] appended to `<data_dir>/kinesis/catalog` before it is
//! applied here; a checkpoint is a [`Snapshot`] of this state. Records themselves live in the
//! per-shard logs and never pass through here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::keys;

pub const DEFAULT_RETENTION_HOURS: u32 = 24;
pub const DEFAULT_MAX_RECORD_KIB: u32 = 1024;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Active,
    Updating,
    Deleting,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "CREATING",
            Status::Active => "ACTIVE",
            Status::Updating => "UPDATING",
            Status::Deleting => "DELETING",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ShardMeta {
    pub index: u32,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    /// Hash keys as decimal strings: 128-bit integers kept as text so the record codec needs no
    /// u128 support.
    pub start_key: String,
    pub end_key: String,
    pub created_ms: u64,
    /// Set when a reshard closed this shard: the log offset past its last record, and when.
    pub closed: Option<Closed>,
    /// (first offset, writer epoch ms) for each broker run that wrote to this shard, ascending.
    pub epochs: Vec<(u64, u64)>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
pub struct Closed {
    pub end_offset: u64,
    pub closed_ms: u64,
}

impl ShardMeta {
    pub fn start(&self) -> u128 {
        keys::parse_hash_key(&self.start_key).unwrap_or(0)
    }
    pub fn end(&self) -> u128 {
        keys::parse_hash_key(&self.end_key).unwrap_or(u128::MAX)
    }
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    /// The writer epoch of the record at `offset` (see the sequence number layout in `keys`).
    pub fn epoch_at(&self, offset: u64) -> u64 {
        let i = self.epochs.partition_point(|(from, _)| *from <= offset);
        if i == 0 {
            0
        } else {
            self.epochs[i - 1].1
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ConsumerMeta {
    pub name: String,
    pub created_ms: u64,
    pub status: Status,
    /// When `status` (CREATING/DELETING) resolves (to ACTIVE / gone).
    pub ready_at_ms: u64,
    pub tags: BTreeMap<String, String>,
    pub policy: Option<String>,
}

impl ConsumerMeta {
    pub fn status_at(&self, now: u64) -> Option<Status> {
        if now < self.ready_at_ms {
            return Some(self.status);
        }
        match self.status {
            Status::Deleting => None,
            _ => Some(Status::Active),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StreamMeta {
    /// Unique per incarnation (a name can be reused after deletion); names the shard log dirs.
    pub id: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub created_ms: u64,
    pub status: Status,
    /// When a transitional `status` resolves: CREATING/UPDATING → ACTIVE, DELETING → gone.
    pub ready_at_ms: u64,
    pub on_demand: bool,
    pub retention_hours: u32,
    pub shards: Vec<ShardMeta>,
    pub tags: BTreeMap<String, String>,
    pub kms_key: Option<String>,
    pub metrics: BTreeSet<String>,
    pub max_record_kib: u32,
    pub warm_mibps: Option<u32>,
    pub policy: Option<String>,
    pub consumers: BTreeMap<String, ConsumerMeta>,
}

impl StreamMeta {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{}",
            self.region, self.account, self.name
        )
    }

    pub fn consumer_arn(&self, c: &ConsumerMeta) -> String {
        format!("{}/consumer/{}:{}", self.arn(), c.name, c.created_ms / 1000)
    }

    /// Effective status at `now`; `None` once a deletion has completed.
    pub fn status_at(&self, now: u64) -> Option<Status> {
        if now >= self.ready_at_ms {
            match self.status {
                Status::Deleting => None,
                _ => Some(Status::Active),
            }
        } else {
            Some(self.status)
        }
    }

    pub fn retention_ms(&self) -> u64 {
        self.retention_hours as u64 * 3_600_000
    }

    pub fn open_shards(&self) -> impl Iterator<Item = &ShardMeta> {
        self.shards.iter().filter(|s| s.is_open())
    }

    /// Shards clients still see: open ones, and closed ones whose records may still be within
    /// retention (AWS stops listing a closed shard once its retention has passed).
    pub fn visible_shards(&self, now: u64) -> impl Iterator<Item = &ShardMeta> {
        let retention = self.retention_ms();
        self.shards.iter().filter(move |s| match s.closed {
            None => true,
            Some(c) => c.closed_ms.saturating_add(retention) > now,
        })
    }

    pub fn shard(&self, index: u32) -> Option<&ShardMeta> {
        self.shards.get(index as usize)
    }

    /// The open shard whose hash range holds `key`.
    pub fn route(&self, key: u128) -> Option<&ShardMeta> {
        self.open_shards()
            .find(|s| s.start() <= key && key <= s.end())
    }

    pub fn children_of(&self, index: u32) -> Vec<&ShardMeta> {
        self.shards
            .iter()
            .filter(|s| s.parent == Some(index) || s.adjacent_parent == Some(index))
            .collect()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct AccountSettings {
    /// MinimumThroughputBillingCommitment: (enabled, started ms, ended ms).
    pub commitment_enabled: bool,
    pub commitment_started_ms: Option<u64>,
    pub commitment_ended_ms: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum CatalogEvent {
    /// Creates or replaces (by id) a stream's whole metadata.
    PutStream(Box<StreamMeta>),
    RemoveStream {
        id: String,
    },
    PutAccountSettings {
        account: String,
        settings: AccountSettings,
    },
    /// Appends one writer epoch to one shard: a run's first write to a shard. A record of its
    /// own, not a `PutStream`: that rewrote the whole stream, all its shards' epochs included,
    /// once per written shard per run, so a restart of a stream of n shards wrote O(n²) bytes.
    AddShardEpoch {
        stream_id: String,
        shard: u32,
        from: u64,
        epoch: u64,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Snapshot {
    pub streams: Vec<StreamMeta>,
    pub accounts: Vec<(String, AccountSettings)>,
}

/// In-memory catalog, indexed by id and by (account, region, name).
#[derive(Default)]
pub struct Catalog {
    pub streams: HashMap<String, StreamMeta>,
    pub by_name: BTreeMap<(String, String, String), String>,
    pub accounts: HashMap<String, AccountSettings>,
}

impl Catalog {
    pub fn apply(&mut self, ev: CatalogEvent) {
        match ev {
            CatalogEvent::PutStream(s) => {
                let s = *s;
                let key = (s.account.clone(), s.region.clone(), s.name.clone());
                if let Some(old) = self.by_name.insert(key, s.id.clone()) {
                    if old != s.id {
                        self.streams.remove(&old);
                    }
                }
                self.streams.insert(s.id.clone(), s);
            }
            CatalogEvent::RemoveStream { id } => {
                if let Some(s) = self.streams.remove(&id) {
                    let key = (s.account, s.region, s.name);
                    if self.by_name.get(&key) == Some(&id) {
                        self.by_name.remove(&key);
                    }
                }
            }
            CatalogEvent::PutAccountSettings { account, settings } => {
                self.accounts.insert(account, settings);
            }
            CatalogEvent::AddShardEpoch {
                stream_id,
                shard,
                from,
                epoch,
            } => {
                let sh = self
                    .streams
                    .get_mut(&stream_id)
                    .and_then(|s| s.shards.get_mut(shard as usize));
                // Epoch stamps are unique, so the same pair twice is one event applied twice,
                // not two runs (two runs may share a first offset: the later one counts).
                if let Some(sh) = sh {
                    if sh.epochs.last() != Some(&(from, epoch)) {
                        sh.epochs.push((from, epoch));
                    }
                }
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            streams: self.streams.values().cloned().collect(),
            accounts: self
                .accounts
                .iter()
                .map(|(a, s)| (a.clone(), s.clone()))
                .collect(),
        }
    }

    pub fn from_snapshot(s: Snapshot) -> Catalog {
        let mut c = Catalog::default();
        for st in s.streams {
            c.apply(CatalogEvent::PutStream(Box::new(st)));
        }
        for (a, set) in s.accounts {
            c.accounts.insert(a, set);
        }
        c
    }

    /// The stream named (account, region, name) as clients see it at `now`.
    pub fn lookup(&self, account: &str, region: &str, name: &str, now: u64) -> Option<&StreamMeta> {
        let id = self
            .by_name
            .get(&(account.to_string(), region.to_string(), name.to_string()))?;
        let s = self.streams.get(id)?;
        s.status_at(now).map(|_| s)
    }

    /// Open shards of every live stream of an account in a region (the shard limit's scope).
    pub fn open_shard_count(&self, account: &str, region: &str, now: u64) -> usize {
        self.streams
            .values()
            .filter(|s| s.account == account && s.region == region && s.status_at(now).is_some())
            .map(|s| s.open_shards().count())
            .sum()
    }
}

/// What a shard log record holds (kind [`RECORD_KIND`]); the arrival time is the log timestamp.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StoredRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

pub const RECORD_KIND: u8 = 1;
pub const CATALOG_KIND: u8 = 1;
