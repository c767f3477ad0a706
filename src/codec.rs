//! STUB — replaced by the storage branch. The one place bincode is used.
#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(String);

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_fixed_int_encoding()
        .with_little_endian()
        .with_limit::<{ 64 << 20 }>()
}

pub fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, config()).expect("encoding to a Vec cannot fail")
}

pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
    let (v, n) =
        bincode::serde::decode_from_slice(b, config()).map_err(|e| CodecError(e.to_string()))?;
    if n != b.len() {
        return Err(CodecError("trailing bytes".into()));
    }
    Ok(v)
}
