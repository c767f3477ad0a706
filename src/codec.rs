//! The one place bincode is used: compact binary encoding of service record payloads and
//! checkpoints.
//!
//! Configuration: fixed-width little-endian integers (stable, seekable layouts) and a 64 MiB
//! decode limit so a hostile length prefix cannot make the decoder allocate unboundedly.
//! Decoding rejects trailing bytes, so a value has exactly one valid encoding length.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};

/// Largest number of bytes a decode may claim (64 MiB).
pub const DECODE_LIMIT: usize = 64 << 20;

type Config = Configuration<LittleEndian, Fixint, Limit<DECODE_LIMIT>>;

fn config() -> Config {
    limited::<DECODE_LIMIT>()
}

fn limited<const L: usize>() -> Configuration<LittleEndian, Fixint, Limit<L>> {
    bincode::config::standard()
        .with_fixed_int_encoding()
        .with_little_endian()
        .with_limit::<L>()
}

/// Why bytes could not be decoded (or a value encoded).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("decode failed: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("encode failed: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
}

/// Encodes `v`. Panics only if `T`'s `Serialize` impl is unsupported by bincode (e.g. a
/// sequence of unknown length) — a programming error, never data-dependent for derived
/// impls. Use [`try_encode`] to get an error instead.
pub fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    match try_encode(v) {
        Ok(b) => b,
        Err(e) => panic!("codec::encode: type not encodable: {e}"),
    }
}

/// Encodes `v`, reporting unsupported `Serialize` impls as an error.
///
/// Sizes the value first (a walk that copies nothing), then writes it into one buffer of
/// exactly that size: bincode's own `encode_to_vec` starts empty and doubles, which for a
/// message record of a few hundred bytes means half a dozen reallocations and copies.
pub fn try_encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, CodecError> {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(v, &mut size, config())?;
    let mut out = vec![0; size.bytes_written];
    let n = bincode::serde::encode_into_slice(v, &mut out, config())?;
    out.truncate(n);
    Ok(out)
}

/// Decodes exactly one `T` from all of `b`.
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
    let (v, used) = bincode::serde::decode_from_slice(b, config())?;
    if used != b.len() {
        return Err(CodecError::TrailingBytes(b.len() - used));
    }
    Ok(v)
}

fn decode_limited<const L: usize, T: serde::de::DeserializeOwned>(
    b: &[u8],
) -> Result<T, CodecError> {
    let (v, used) = bincode::serde::decode_from_slice(b, limited::<L>())?;
    if used != b.len() {
        return Err(CodecError::TrailingBytes(b.len() - used));
    }
    Ok(v)
}

/// Decodes a checkpoint snapshot, which may be far larger than [`DECODE_LIMIT`] (a queue of
/// a million messages snapshots ~80 MB). The limit grows with the input instead — the
/// smallest tier at least 16 times its length, enough for what decoding claims (encoded
/// bytes plus in-memory container sizes) — so a bad length prefix still fails before a huge
/// allocation.
pub fn decode_snapshot<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
    const GIB: usize = 1 << 30;
    match b.len().saturating_mul(16) {
        n if n <= DECODE_LIMIT => decode(b),
        n if n <= GIB => decode_limited::<GIB, T>(b),
        n if n <= 16 * GIB => decode_limited::<{ 16 * GIB }, T>(b),
        _ => decode_limited::<{ 256 * GIB }, T>(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct S {
        a: u32,
        b: String,
        c: Vec<u64>,
    }

    /// Snapshots beyond the record limit decode; a length prefix beyond what the bytes can
    /// back still fails.
    #[test]
    fn snapshots_may_exceed_the_record_limit() {
        let big = "x".repeat(DECODE_LIMIT + 1);
        let b = encode(&big);
        assert!(decode::<String>(&b).is_err());
        assert_eq!(
            decode_snapshot::<String>(&b).unwrap().len(),
            DECODE_LIMIT + 1
        );
        let mut lying = encode(&vec![1u64; 4]);
        lying[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode_snapshot::<Vec<u64>>(&lying).is_err());
    }

    #[test]
    fn roundtrip_fixed_le() {
        let s = S {
            a: 1,
            b: "hi".into(),
            c: vec![7],
        };
        let b = encode(&s);
        assert_eq!(&b[..4], &[1, 0, 0, 0]);
        assert_eq!(decode::<S>(&b).unwrap(), s);
    }

    /// The sized encoding is bincode's own, byte for byte, and fills its buffer exactly.
    #[test]
    fn sized_encoding_matches_bincode() {
        let s = S {
            a: 9,
            b: "x".repeat(300),
            c: vec![1, 2, 3],
        };
        let b = encode(&s);
        assert_eq!(b, bincode::serde::encode_to_vec(&s, config()).unwrap());
        assert_eq!(b.len(), b.capacity());
    }

    #[test]
    fn rejects_trailing_and_truncated() {
        let mut b = encode(&5u32);
        b.push(0);
        assert!(matches!(
            decode::<u32>(&b),
            Err(CodecError::TrailingBytes(1))
        ));
        assert!(decode::<u32>(&b[..2]).is_err());
    }

    #[test]
    fn hostile_length_is_bounded() {
        // A Vec<u8> claiming u64::MAX / 2^40 elements must fail without allocating it.
        for n in [u64::MAX, 1u64 << 40, (DECODE_LIMIT as u64) + 1] {
            let b = n.to_le_bytes();
            assert!(decode::<Vec<u8>>(&b).is_err());
            assert!(decode::<Vec<u64>>(&b).is_err());
            assert!(decode::<String>(&b).is_err());
        }
    }
}
