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
    bincode::config::standard()
        .with_fixed_int_encoding()
        .with_little_endian()
        .with_limit::<DECODE_LIMIT>()
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
pub fn try_encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(v, config())?)
}

/// Decodes exactly one `T` from all of `b`.
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
    let (v, used) = bincode::serde::decode_from_slice(b, config())?;
    if used != b.len() {
        return Err(CodecError::TrailingBytes(b.len() - used));
    }
    Ok(v)
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
