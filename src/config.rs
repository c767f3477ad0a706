//! Broker-wide settings, parsed once by the CLI and handed to the server and services.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::log::{Durability, LogOptions};

/// Everything the broker needs to start; built from flags and env vars in `main.rs`.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub account_id: String,
    pub durability: Durability,
    /// Segment roll size for every log.
    pub segment_bytes: u64,
    /// Kinesis per-shard throughput limits; off by default so tests are not throttled.
    pub kinesis_limits: bool,
    /// Delay of Kinesis CREATING/UPDATING/DELETING transitions, in milliseconds.
    pub kinesis_transition_ms: u64,
}

impl Config {
    /// Defaults for tests: a given data dir, an ephemeral port.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            data_dir: data_dir.into(),
            account_id: "000000000000".into(),
            durability: Durability::Fsync,
            segment_bytes: 64 << 20,
            kinesis_limits: false,
            kinesis_transition_ms: 0,
        }
    }

    /// Log options every service starts from.
    pub fn log_options(&self) -> LogOptions {
        LogOptions {
            segment_bytes: self.segment_bytes,
            durability: self.durability,
            ..LogOptions::default()
        }
    }
}
