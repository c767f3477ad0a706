//! AWS event-stream messages (`application/vnd.amazon.eventstream`), the framing of
//! SubscribeToShard responses.
//!
//! A message is a 12-byte prelude (total length, headers length, both u32 big-endian, and a
//! CRC32 of those 8 bytes), the headers, the payload, and a CRC32 of everything before it. A
//! header is a name (u8 length + bytes), a value type byte and the value. This module only
//! frames bytes: what the headers and payloads mean belongs to the caller.

/// The prelude (12 bytes) plus the trailing message CRC.
const OVERHEAD: usize = 16;
/// AWS's limits: 16 MiB per message, 128 KiB of headers.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
pub const MAX_HEADERS_BYTES: usize = 128 << 10;

/// A header value, by the type byte that precedes it on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 and 1: true and false, no value bytes.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Int16(i16),
    /// Type 4.
    Int32(i32),
    /// Type 5.
    Int64(i64),
    /// Type 6: u16 length + bytes.
    Bytes(Vec<u8>),
    /// Type 7: u16 length + UTF-8.
    String(String),
    /// Type 8: milliseconds since the epoch, i64.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid([u8; 16]),
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The value of a string header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Why bytes are not a valid message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("need {0} more bytes")]
    Incomplete(usize),
    #[error("invalid lengths in prelude")]
    InvalidLength,
    #[error("prelude checksum mismatch")]
    PreludeChecksum,
    #[error("message checksum mismatch")]
    MessageChecksum,
    #[error("malformed header")]
    InvalidHeader,
}

/// Encodes a message whose headers are all strings (all AWS's response framing needs).
/// Header names longer than 255 bytes or values longer than 65535 are truncated: callers
/// only pass fixed protocol names and short type names.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::with_capacity(128);
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(u8::MAX as usize)];
        let value = &value.as_bytes()[..value.len().min(u16::MAX as usize)];
        head.push(name.len() as u8);
        head.extend_from_slice(name);
        head.push(7);
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        head.extend_from_slice(value);
    }
    let total = OVERHEAD + head.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes the message at the start of `buf`, returning it and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    if buf.len() < 12 {
        return Err(DecodeError::Incomplete(12 - buf.len()));
    }
    let total = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let headers_len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    let prelude_crc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if crc32fast::hash(&buf[..8]) != prelude_crc {
        return Err(DecodeError::PreludeChecksum);
    }
    if !(OVERHEAD..=MAX_MESSAGE_BYTES).contains(&total)
        || headers_len > MAX_HEADERS_BYTES
        || headers_len > total - OVERHEAD
    {
        return Err(DecodeError::InvalidLength);
    }
    if buf.len() < total {
        return Err(DecodeError::Incomplete(total - buf.len()));
    }
    let body_end = total - 4;
    let crc = u32::from_be_bytes([
        buf[body_end],
        buf[body_end + 1],
        buf[body_end + 2],
        buf[body_end + 3],
    ]);
    if crc32fast::hash(&buf[..body_end]) != crc {
        return Err(DecodeError::MessageChecksum);
    }
    let headers = decode_headers(&buf[12..12 + headers_len])?;
    let payload = buf[12 + headers_len..body_end].to_vec();
    Ok((Message { headers, payload }, total))
}

/// Decodes every message in `buf`, which must hold whole messages only.
pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Message>, DecodeError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (m, used) = decode(buf)?;
        out.push(m);
        buf = &buf[used..];
    }
    Ok(out)
}

fn decode_headers(mut b: &[u8]) -> Result<Vec<(String, HeaderValue)>, DecodeError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
        if b.len() < n {
            return Err(DecodeError::InvalidHeader);
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn array<const N: usize>(b: &mut &[u8]) -> Result<[u8; N], DecodeError> {
        take(b, N)?
            .try_into()
            .map_err(|_| DecodeError::InvalidHeader)
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let name_len = take(&mut b, 1)?[0] as usize;
        if name_len == 0 {
            return Err(DecodeError::InvalidHeader);
        }
        let name = std::str::from_utf8(take(&mut b, name_len)?)
            .map_err(|_| DecodeError::InvalidHeader)?
            .to_string();
        let value = match take(&mut b, 1)?[0] {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(array(&mut b)?)),
            3 => HeaderValue::Int16(i16::from_be_bytes(array(&mut b)?)),
            4 => HeaderValue::Int32(i32::from_be_bytes(array(&mut b)?)),
            5 => HeaderValue::Int64(i64::from_be_bytes(array(&mut b)?)),
            t @ (6 | 7) => {
                let len = u16::from_be_bytes(array(&mut b)?) as usize;
                let bytes = take(&mut b, len)?;
                if t == 6 {
                    HeaderValue::Bytes(bytes.to_vec())
                } else {
                    HeaderValue::String(
                        std::str::from_utf8(bytes)
                            .map_err(|_| DecodeError::InvalidHeader)?
                            .to_string(),
                    )
                }
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(array(&mut b)?)),
            9 => HeaderValue::Uuid(array(&mut b)?),
            _ => return Err(DecodeError::InvalidHeader),
        };
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips_any_string_headers_and_payload(
            headers in proptest::collection::vec(("[a-z:-]{1,20}", "[ -~]{0,40}"), 0..6),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let refs: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let bytes = encode(&refs, &payload);
            let (m, used) = decode(&bytes).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(m.payload, payload);
            let back: Vec<(String, HeaderValue)> = headers
                .into_iter()
                .map(|(n, v)| (n, HeaderValue::String(v)))
                .collect();
            prop_assert_eq!(m.headers, back);
        }

        /// Damaged frames (any prefix, any flipped byte) are errors, never panics.
        #[test]
        fn damaged_frames_are_errors(cut in 0usize..80, flip in 0usize..80, bit in 0u8..8) {
            let mut bytes = ONE_HEADER.to_vec();
            if flip < bytes.len() {
                bytes[flip] ^= 1 << bit;
                prop_assert!(decode(&bytes).is_err());
            }
            let cut = cut.min(bytes.len());
            let _ = decode_all(&bytes[..cut]);
            if cut < ONE_HEADER.len() {
                prop_assert!(decode(&ONE_HEADER[..cut]).is_err());
            }
        }
    }

    /// The one-header message from aws-c-event-stream's deserializer tests.
    const ONE_HEADER: &[u8] = &[
        0x00, 0x00, 0x00, 0x3D, 0x00, 0x00, 0x00, 0x20, 0x07, 0xFD, 0x83, 0x96, 0x0C, b'c', b'o',
        b'n', b't', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e', 0x07, 0x00, 0x10, b'a', b'p',
        b'p', b'l', b'i', b'c', b'a', b't', b'i', b'o', b'n', b'/', b'j', b's', b'o', b'n', 0x7b,
        0x27, 0x66, 0x6f, 0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0x8D, 0x9C, 0x08,
        0xB1,
    ];
    /// The no-header message from the same suite.
    const NO_HEADERS: &[u8] = &[
        0x00, 0x00, 0x00, 0x1D, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x52, 0x8c, 0x5a, 0x7b, 0x27, 0x66,
        0x6f, 0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0xc3, 0x65, 0x39, 0x36,
    ];

    #[test]
    fn encodes_the_known_vectors() {
        assert_eq!(
            encode(&[("content-type", "application/json")], b"{'foo':'bar'}"),
            ONE_HEADER
        );
        assert_eq!(encode(&[], b"{'foo':'bar'}"), NO_HEADERS);
    }

    #[test]
    fn decodes_the_known_vectors() {
        let (m, used) = decode(ONE_HEADER).unwrap();
        assert_eq!(used, ONE_HEADER.len());
        assert_eq!(m.header("content-type"), Some("application/json"));
        assert_eq!(m.payload, b"{'foo':'bar'}");
        let (m, _) = decode(NO_HEADERS).unwrap();
        assert!(m.headers.is_empty());
        assert_eq!(m.payload, b"{'foo':'bar'}");
    }

    #[test]
    fn round_trips_several_messages() {
        let mut buf = encode(
            &[
                (":message-type", "event"),
                (":event-type", "initial-response"),
            ],
            b"{}",
        );
        buf.extend(encode(&[(":message-type", "exception")], b""));
        let all = decode_all(&buf).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].header(":event-type"), Some("initial-response"));
        assert_eq!(all[0].payload, b"{}");
        assert_eq!(all[1].header(":message-type"), Some("exception"));
        assert!(all[1].payload.is_empty());
    }

    #[test]
    fn decodes_every_header_type() {
        let mut head = Vec::new();
        let mut h = |name: &str, ty: u8, value: &[u8]| {
            head.push(name.len() as u8);
            head.extend_from_slice(name.as_bytes());
            head.push(ty);
            head.extend_from_slice(value);
        };
        h("t", 0, &[]);
        h("f", 1, &[]);
        h("b", 2, &[0xff]);
        h("s", 3, &[0x01, 0x02]);
        h("i", 4, &[0, 0, 0, 7]);
        h("l", 5, &[0, 0, 0, 0, 0, 0, 0, 9]);
        h("y", 6, &[0, 2, 0xab, 0xcd]);
        h("z", 7, &[0, 1, b'x']);
        h("ts", 8, &[0, 0, 0, 0, 0, 0, 0x03, 0xe8]);
        h("u", 9, &[5; 16]);
        let total = OVERHEAD + head.len();
        let mut buf = (total as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&(head.len() as u32).to_be_bytes());
        buf.extend_from_slice(&crc32fast::hash(&buf).to_be_bytes());
        buf.extend_from_slice(&head);
        buf.extend_from_slice(&crc32fast::hash(&buf).to_be_bytes());
        let (m, _) = decode(&buf).unwrap();
        let values: Vec<_> = m.headers.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            vec![
                HeaderValue::Bool(true),
                HeaderValue::Bool(false),
                HeaderValue::Byte(-1),
                HeaderValue::Int16(0x0102),
                HeaderValue::Int32(7),
                HeaderValue::Int64(9),
                HeaderValue::Bytes(vec![0xab, 0xcd]),
                HeaderValue::String("x".into()),
                HeaderValue::Timestamp(1000),
                HeaderValue::Uuid([5; 16]),
            ]
        );
    }

    #[test]
    fn rejects_damage() {
        assert_eq!(decode(&ONE_HEADER[..5]), Err(DecodeError::Incomplete(7)));
        assert_eq!(decode(&ONE_HEADER[..40]), Err(DecodeError::Incomplete(21)));
        let mut bad = ONE_HEADER.to_vec();
        bad[3] ^= 1;
        assert_eq!(decode(&bad), Err(DecodeError::PreludeChecksum));
        let mut bad = ONE_HEADER.to_vec();
        bad[50] ^= 1;
        assert_eq!(decode(&bad), Err(DecodeError::MessageChecksum));
        // Headers longer than the message, with a valid prelude checksum.
        let mut bad = vec![0, 0, 0, 16, 0, 0, 0, 1];
        bad.extend_from_slice(&crc32fast::hash(&bad).to_be_bytes());
        assert_eq!(decode(&bad), Err(DecodeError::InvalidLength));
        // An unknown header type, with valid checksums.
        let head = [1u8, b'a', 42];
        let mut bad = ((OVERHEAD + head.len()) as u32).to_be_bytes().to_vec();
        bad.extend_from_slice(&(head.len() as u32).to_be_bytes());
        bad.extend_from_slice(&crc32fast::hash(&bad).to_be_bytes());
        bad.extend_from_slice(&head);
        bad.extend_from_slice(&crc32fast::hash(&bad).to_be_bytes());
        assert_eq!(decode(&bad), Err(DecodeError::InvalidHeader));
    }
}
