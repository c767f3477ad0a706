//! Pure encodings Kinesis exposes to clients: shard ids, hash keys, sequence numbers, shard
//! iterators, paging tokens and timestamps. No state, no I/O.
//!
//! # Sequence numbers
//! A sequence number is a 38-digit decimal string (it fits an unsigned 128-bit integer) made of
//! four fixed-width fields:
//!
//! ```text
//! 49 | writer epoch, ms since 1970 (13 digits) | shard index (7 digits) | log offset (16 digits)
//! ```
//!
//! The shard index is the number in `shardId-000000000007`; the log offset is the record's offset
//! in that shard's log, so AT/AFTER_SEQUENCE_NUMBER is an O(log n) offset lookup. The writer
//! epoch is stamped once per shard per broker run, at the run's first write to that shard, from a
//! clock that is strictly increasing across stream creations and epochs and starts each run above
//! everything recorded before. Each shard keeps in the catalog the first offset written under each
//! of its epochs, so a stored record's number is recomputed exactly on read. Hence numbers are
//! strictly increasing per shard (epoch, then offset), unique in the stream (the shard index
//! differs), every number issued after a restart is larger than every number issued before it,
//! stream-wide, and a number from a deleted stream of the same name is recognised because its
//! epoch predates the stream's creation. A shard's `StartingSequenceNumber` uses the shard's
//! creation time and offset 0; a closed shard's `EndingSequenceNumber` is all nines in epoch and
//! offset, above every real record. Limits of the layout: 10^7 shards per stream, 10^16 records
//! per shard, epochs until the year 2286.
//!
//! # Shard iterators
//! Base64 (standard) of: version byte 2, stream creation ms (u64 BE), shard index (u32 BE), next
//! offset (u64 BE), issued-at ms (u64 BE), then length-prefixed stream id, account and stream
//! name, and the first 8 bytes of a SHA-256 over all of that with a fixed salt as a checksum.
//! They carry all their state, so an iterator obtained before a restart keeps working until it is
//! 5 minutes old. The account and name are there for the error of an iterator whose stream is
//! gone, which AWS words by name; version 1 (without them) is still read.

use base64::Engine;
use sha2::Digest;

use crate::error::ServiceResult;

use super::error::{invalid_iterator, serialization};

pub const SEQ_PREFIX: &str = "49";
pub const SEQ_LEN: usize = 38;
/// Offset field value of a closed shard's EndingSequenceNumber.
pub const END_OFFSET_FIELD: u64 = 9_999_999_999_999_999;
/// Epoch field value of a closed shard's EndingSequenceNumber.
pub const END_EPOCH_FIELD: u64 = 9_999_999_999_999;
/// Iterators older than this are refused with ExpiredIteratorException.
pub const ITERATOR_TTL_MS: u64 = 300_000;

pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// Largest shard index a shard id may name (AWS answers larger ones as unknown shards).
pub const MAX_SHARD_INDEX: u32 = i32::MAX as u32;

/// A client-supplied shard id → its index. AWS accepts any prefix before a hyphen
/// (`shardId-000000000003`, `shardId-3`, `foo-3`, `-3`) or bare digits (`3`), and reports the
/// normalized `shardId-%012d` form back; the number is the second hyphen-separated segment.
pub fn parse_shard_id(id: &str) -> Option<u32> {
    let digits = id.split('-').nth(1).filter(|d| !d.is_empty()).unwrap_or(id);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()
        .filter(|v| *v <= MAX_SHARD_INDEX as u64)
        .map(|v| v as u32)
}

/// The 128-bit hash key of a partition key: its MD5 as a big-endian integer.
pub fn hash_partition_key(key: &str) -> u128 {
    use md5::Md5;
    let digest = Md5::digest(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest);
    u128::from_be_bytes(b)
}

/// A decimal hash key in 0..=2^128-1; `None` if malformed or out of range.
pub fn parse_hash_key(s: &str) -> Option<u128> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u128>().ok()
}

/// Starting hash key of piece `i` of `n` even pieces of the 128-bit space: floor(i * 2^128 / n).
pub fn even_start(i: u128, n: u128) -> u128 {
    if i == 0 {
        return 0;
    }
    // 2^128 = q*n + r without overflowing.
    let mut q = u128::MAX / n;
    let mut r = u128::MAX % n + 1;
    if r == n {
        q += 1;
        r = 0;
    }
    i * q + (i * r) / n
}

/// Even (start, end) ranges of `n` shards covering `lo..=hi`.
pub fn even_ranges(n: u32) -> Vec<(u128, u128)> {
    let n = n as u128;
    (0..n)
        .map(|i| {
            let start = even_start(i, n);
            let end = if i + 1 == n {
                u128::MAX
            } else {
                even_start(i + 1, n) - 1
            };
            (start, end)
        })
        .collect()
}

pub fn sequence_number(epoch_ms: u64, shard: u32, offset: u64) -> String {
    format!("{SEQ_PREFIX}{epoch_ms:013}{shard:07}{offset:016}")
}

pub fn ending_sequence_number(shard: u32) -> String {
    sequence_number(END_EPOCH_FIELD, shard, END_OFFSET_FIELD)
}

/// The fields of a sequence number this broker issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqParts {
    pub epoch_ms: u64,
    pub shard: u32,
    pub offset: u64,
}

pub fn parse_sequence_number(s: &str) -> Option<SeqParts> {
    if s.len() != SEQ_LEN || !s.starts_with(SEQ_PREFIX) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(SeqParts {
        epoch_ms: s[2..15].parse().ok()?,
        shard: s[15..22].parse().ok()?,
        offset: s[22..38].parse().ok()?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iterator {
    pub stream_id: String,
    /// Empty in version-1 iterators.
    pub account: String,
    /// Empty in version-1 iterators.
    pub stream_name: String,
    pub stream_created_ms: u64,
    pub shard: u32,
    pub offset: u64,
    pub issued_ms: u64,
}

const ITERATOR_SALT: &[u8] = b"millpond kinesis shard iterator v1";

fn mac(body: &[u8]) -> [u8; 8] {
    crate::service::token_check(ITERATOR_SALT, body)
}

fn push_str(b: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(255)];
    b.push(s.len() as u8);
    b.extend_from_slice(s);
}

pub fn encode_iterator(it: &Iterator) -> String {
    let mut b = Vec::with_capacity(96);
    b.push(2u8);
    b.extend_from_slice(&it.stream_created_ms.to_be_bytes());
    b.extend_from_slice(&it.shard.to_be_bytes());
    b.extend_from_slice(&it.offset.to_be_bytes());
    b.extend_from_slice(&it.issued_ms.to_be_bytes());
    push_str(&mut b, &it.stream_id);
    push_str(&mut b, &it.account);
    push_str(&mut b, &it.stream_name);
    let m = mac(&b);
    b.extend_from_slice(&m);
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub fn decode_iterator(s: &str) -> ServiceResult<Iterator> {
    // AWS takes an iterator wrapped in double quotes as the iterator (LocalStack's
    // AWS-validated test_get_records_shard_iterator_with_surrounding_quotes).
    let s = s
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s);
    let b = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| invalid_iterator())?;
    // version + 8 + 4 + 8 + 8 + len + mac
    if b.len() < 1 + 28 + 1 + 8 || !matches!(b[0], 1 | 2) {
        return Err(invalid_iterator());
    }
    let (body, m) = b.split_at(b.len() - 8);
    if mac(body) != m {
        return Err(invalid_iterator());
    }
    let u64_at = |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().unwrap_or([0; 8]));
    let mut rest = &body[29..];
    let mut take_str = || -> ServiceResult<String> {
        let (&len, tail) = rest.split_first().ok_or_else(invalid_iterator)?;
        let len = len as usize;
        if tail.len() < len {
            return Err(invalid_iterator());
        }
        let (s, tail) = tail.split_at(len);
        rest = tail;
        String::from_utf8(s.to_vec()).map_err(|_| invalid_iterator())
    };
    let stream_id = take_str()?;
    let (account, stream_name) = if body[0] == 2 {
        (take_str()?, take_str()?)
    } else {
        (String::new(), String::new())
    };
    if !rest.is_empty() {
        return Err(invalid_iterator());
    }
    Ok(Iterator {
        stream_created_ms: u64_at(1),
        shard: u32::from_be_bytes(body[9..13].try_into().unwrap_or([0; 4])),
        offset: u64_at(13),
        issued_ms: u64_at(21),
        stream_id,
        account,
        stream_name,
    })
}

/// Opaque paging token: base64 of a JSON array of strings.
pub fn encode_token(parts: &[&str]) -> String {
    let v = serde_json::to_vec(parts).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(v)
}

pub fn decode_token(s: &str) -> Option<Vec<String>> {
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// Epoch-seconds number (what the protocol layer hands us) or an ISO-8601 string → epoch ms.
pub fn parse_timestamp(v: &serde_json::Value, member: &str) -> ServiceResult<u64> {
    let bad = || serialization(format!("Invalid timestamp for {member}: {v}"));
    match v {
        serde_json::Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(bad)?;
            if !secs.is_finite() {
                return Err(bad());
            }
            Ok((secs * 1000.0).round().max(0.0) as u64)
        }
        serde_json::Value::String(s) => {
            if let Ok(secs) = s.parse::<f64>() {
                return Ok((secs * 1000.0).round().max(0.0) as u64);
            }
            crate::service::parse_iso8601(s).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// Epoch ms → the epoch-seconds number outputs carry.
pub fn ts_out(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// `Thu Jan 22 01:22:02 UTC 2015`, the format of AWS's iterator-expiry message.
pub fn amz_utc_string(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        WD[days.rem_euclid(7) as usize],
        MO[(m - 1) as usize],
        d,
        tod / 3600,
        (tod / 60) % 60,
        tod % 60,
        y
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ranges_match_aws() {
        let r = even_ranges(3);
        assert_eq!(r[0], (0, 113427455640312821154458202477256070484));
        assert_eq!(
            r[1],
            (
                113427455640312821154458202477256070485,
                226854911280625642308916404954512140969
            )
        );
        assert_eq!(r[2].1, u128::MAX);
        let r = even_ranges(2);
        assert_eq!(r[1].0, 1u128 << 127);
        assert_eq!(even_ranges(1), vec![(0, u128::MAX)]);
        let r = even_ranges(4);
        assert_eq!(r[1].0, 1u128 << 126);
    }

    #[test]
    fn sequence_numbers_round_trip_and_order() {
        let e = 1_800_000_000_000;
        let a = sequence_number(e, 3, 41);
        let b = sequence_number(e, 3, 42);
        assert_eq!(a.len(), SEQ_LEN);
        assert!(a.parse::<u128>().unwrap() < b.parse::<u128>().unwrap());
        assert!(a < b, "fixed width: string order is numeric order");
        assert!(sequence_number(e, 3, END_OFFSET_FIELD) < sequence_number(e, 4, 0));
        assert!(sequence_number(e, 9_999_999, END_OFFSET_FIELD) < sequence_number(e + 1, 0, 0));
        assert!(ending_sequence_number(3) > sequence_number(END_EPOCH_FIELD - 1, 3, 0));
        assert!(ending_sequence_number(9_999_999).parse::<u128>().is_ok());
        let p = parse_sequence_number(&b).unwrap();
        assert_eq!((p.epoch_ms, p.shard, p.offset), (e, 3, 42));
        assert!(parse_sequence_number("123").is_none());
        assert!(parse_sequence_number(&format!("48{}", &b[2..])).is_none());
    }

    #[test]
    fn iterator_round_trip_and_tamper() {
        let it = Iterator {
            stream_id: "abc".into(),
            account: "000000000000".into(),
            stream_name: "s1".into(),
            stream_created_ms: 7,
            shard: 2,
            offset: 99,
            issued_ms: 1234,
        };
        let s = encode_iterator(&it);
        assert_eq!(decode_iterator(&s).unwrap(), it);
        // Version 1 (before account and name were carried) still decodes.
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&7u64.to_be_bytes());
        v1.extend_from_slice(&2u32.to_be_bytes());
        v1.extend_from_slice(&99u64.to_be_bytes());
        v1.extend_from_slice(&1234u64.to_be_bytes());
        v1.push(3);
        v1.extend_from_slice(b"abc");
        let m = mac(&v1);
        v1.extend_from_slice(&m);
        let old = decode_iterator(&base64::engine::general_purpose::STANDARD.encode(v1)).unwrap();
        assert_eq!((old.stream_id.as_str(), old.offset), ("abc", 99));
        assert!(old.stream_name.is_empty());
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&s)
            .unwrap();
        raw[15] ^= 1;
        let t = base64::engine::general_purpose::STANDARD.encode(raw);
        assert!(decode_iterator(&t).is_err());
        assert!(decode_iterator("!!!").is_err());
        assert!(decode_iterator("AAAA").is_err());
    }

    #[test]
    fn md5_routing_key() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(
            hash_partition_key("a"),
            u128::from_str_radix("0cc175b9c0f1b6a831c399e269772661", 16).unwrap()
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            crate::service::parse_iso8601("1970-01-01T00:00:01Z"),
            Some(1000)
        );
        assert_eq!(
            crate::service::parse_iso8601("2016-04-04T19:58:46.480-00:00"),
            Some(1_459_799_926_480)
        );
        assert_eq!(
            crate::service::parse_iso8601("2016-04-04T21:58:46.480+02:00"),
            Some(1_459_799_926_480)
        );
        assert_eq!(crate::service::parse_iso8601("nope"), None);
        assert_eq!(
            amz_utc_string(1_421_889_722_000),
            "Thu Jan 22 01:22:02 UTC 2015"
        );
        assert_eq!(
            parse_timestamp(&serde_json::json!(1459799926.48), "Timestamp").unwrap(),
            1_459_799_926_480
        );
    }

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(parse_shard_id("shardId-000000000007"), Some(7));
        assert_eq!(parse_shard_id("shardId-7"), Some(7));
        assert_eq!(parse_shard_id("shard-x"), None);
        assert_eq!(parse_shard_id("foo-0"), Some(0));
        assert_eq!(parse_shard_id("shard-0"), Some(0));
        assert_eq!(parse_shard_id("7"), Some(7));
        assert_eq!(parse_shard_id("-00002147483647"), Some(2_147_483_647));
        assert_eq!(parse_shard_id("a-00002147483647"), Some(2_147_483_647));
        assert_eq!(parse_shard_id("2147483648"), None);
        assert_eq!(parse_shard_id("shardId-002147483648"), None);
        assert_eq!(parse_shard_id("ABKLFD8"), None);
        assert_eq!(parse_shard_id("2.14E4"), None);
    }
}
