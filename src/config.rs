//! Broker-wide settings, parsed once by the CLI and handed to the server and services.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::log::{Durability, LogOptions};
use crate::sns::signing::KeyBits;

/// Everything the broker needs to start; built from flags and env vars in `main.rs`.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub account_id: String,
    pub durability: Durability,
    /// Segment roll size for every log.
    pub segment_bytes: u64,
    /// Kinesis per-shard throughput limits; off (`None`) by default so tests are not throttled.
    pub kinesis_limits: Option<KinesisLimits>,
    /// Delay of Kinesis CREATING/UPDATING/DELETING transitions, in milliseconds.
    pub kinesis_transition_ms: u64,
    /// How long a deleted queue's name is refused by CreateQueue (QueueDeletedRecently), in
    /// milliseconds; 0 (the default) reuses it at once. AWS's is 60 s.
    pub sqs_delete_cooldown_ms: u64,
    /// PEM bundle of CAs trusted for `https://` SNS endpoints beside the web PKI roots.
    pub sns_ca_file: Option<PathBuf>,
    /// Size of the SNS signing key generated for a data directory that has none.
    pub sns_signing_key_bits: KeyBits,
    /// The scheme, host and port every URL the broker hands out starts with (queue URLs,
    /// SNS SubscribeURL, UnsubscribeURL and SigningCertURL). `None`: the request's `Host`.
    pub advertised_url: Option<AdvertisedUrl>,
}

/// `http(s)://host[:port]`, as a client should reach the broker; no path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertisedUrl(pub String);

impl std::str::FromStr for AdvertisedUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim_end_matches('/');
        let authority = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or("must start with http:// or https://")?;
        if authority.is_empty()
            || authority
                .chars()
                .any(|c| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c.is_control())
        {
            return Err("must be http(s)://host[:port], without a path".into());
        }
        Ok(AdvertisedUrl(s.to_string()))
    }
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
            kinesis_limits: None,
            kinesis_transition_ms: 0,
            sqs_delete_cooldown_ms: 0,
            sns_ca_file: None,
            sns_signing_key_bits: KeyBits::default(),
            advertised_url: None,
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

/// Per-shard throughput limits, as AWS provisions a shard. Enforced only when configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinesisLimits {
    pub records_in_per_sec: u64,
    pub bytes_in_per_sec: u64,
    pub bytes_out_per_sec: u64,
    pub reads_per_sec: u64,
}

impl Default for KinesisLimits {
    /// AWS's figures: 1,000 records/s and 1 MiB/s in, 2 MiB/s and 5 GetRecords calls/s out.
    fn default() -> Self {
        KinesisLimits {
            records_in_per_sec: 1000,
            bytes_in_per_sec: 1 << 20,
            bytes_out_per_sec: 2 << 20,
            reads_per_sec: 5,
        }
    }
}

impl std::str::FromStr for KinesisLimits {
    type Err = String;

    /// `records=1000,bytes-in=1048576,bytes-out=2097152,reads=5`; omitted figures keep AWS's.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut l = KinesisLimits::default();
        if matches!(s.trim(), "true" | "on" | "default") {
            return Ok(l);
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected name=value, got {part:?}"))?;
            let v: u64 = v
                .parse()
                .map_err(|_| format!("{k}: not a whole number: {v:?}"))?;
            if v == 0 {
                return Err(format!("{k}: must be at least 1"));
            }
            match k {
                "records" => l.records_in_per_sec = v,
                "bytes-in" => l.bytes_in_per_sec = v,
                "bytes-out" => l.bytes_out_per_sec = v,
                "reads" => l.reads_per_sec = v,
                _ => {
                    return Err(format!(
                        "unknown limit {k:?} (records, bytes-in, bytes-out, reads)"
                    ))
                }
            }
        }
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinesis_limits_parse_with_aws_defaults() {
        assert_eq!(
            "".parse::<KinesisLimits>().unwrap(),
            KinesisLimits::default()
        );
        assert_eq!(
            "true".parse::<KinesisLimits>().unwrap(),
            KinesisLimits::default()
        );
        let l: KinesisLimits = "records=10, reads=2".parse().unwrap();
        assert_eq!(
            (l.records_in_per_sec, l.reads_per_sec, l.bytes_in_per_sec),
            (10, 2, 1 << 20)
        );
        assert!("records=0".parse::<KinesisLimits>().is_err());
        assert!("speed=3".parse::<KinesisLimits>().is_err());
        assert!("records".parse::<KinesisLimits>().is_err());
    }
}
