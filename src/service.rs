//! What every service shares: turning a JSON-shaped request document into its typed input.
//!
//! The protocol layer hands services `serde_json::Value`s shaped like the AWS JSON protocol
//! (members by their model names, blobs as base64 strings, timestamps as epoch seconds), whatever
//! wire format the client spoke. Services deserialize them into typed inputs here.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ServiceError, ServiceResult};

/// Deserializes a request document into `T`; a wrong type or shape becomes `code` (each service
/// names its own: `InvalidParameterValue` for SQS/SNS, `SerializationException` for Kinesis).
pub fn parse_input<T: DeserializeOwned>(input: Value, code: &'static str) -> ServiceResult<T> {
    let input = if input.is_null() {
        Value::Object(Default::default())
    } else {
        input
    };
    serde_json::from_value(input).map_err(|e| shape_error(code, &e))
}

/// A request member of the wrong type or shape. serde's text names the value and the expected
/// type; the value is cut short, so a megabyte-long wrong value is not echoed back whole.
fn shape_error(code: &'static str, e: &serde_json::Error) -> ServiceError {
    // The start and the end are kept: the end says what was expected.
    const HEAD: usize = 200;
    const TAIL: usize = 56;
    let text = e.to_string();
    let n = text.chars().count();
    let message = if n > HEAD + TAIL {
        let head: String = text.chars().take(HEAD).collect();
        let tail: String = text.chars().skip(n - TAIL).collect();
        format!("{head}…{tail}")
    } else {
        text
    };
    ServiceError::sender(code, message)
}

/// A request as the protocol layer hands it over: a JSON-shaped document it built (from a query
/// form or CBOR), or the raw body of an AWS JSON request, which hot actions deserialize straight
/// into their typed input (building a `Value` tree first costs an allocation per member).
pub enum Input<'a> {
    Doc(Value),
    Json(&'a [u8]),
}

impl Input<'_> {
    /// The typed input; a wrong type or shape becomes `code`, as [`parse_input`].
    pub fn parse<T: DeserializeOwned>(self, code: &'static str) -> ServiceResult<T> {
        match self {
            Input::Doc(v) => parse_input(v, code),
            Input::Json(body) => match first_non_space(body) {
                None => parse_input(Value::Null, code),
                Some(b'{') => serde_json::from_slice(body).map_err(|e| {
                    // A shape error may come before a syntax error later in the body; the
                    // body being malformed JSON is what the client needs to hear first.
                    match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                        Err(syntax) => unparsable(&syntax),
                        Ok(_) if e.is_data() => shape_error(code, &e),
                        Ok(_) => unparsable(&e),
                    }
                }),
                Some(_) => Err(not_an_object()),
            },
        }
    }

    /// The request as a document, for actions that work on the tree.
    pub fn into_doc(self) -> ServiceResult<Value> {
        match self {
            Input::Doc(v) => Ok(v),
            Input::Json(body) => parse_json_body(body),
        }
    }
}

/// An answer: a document (rendered per wire by the protocol layer) or, from hot actions, the
/// AWS JSON bytes already serialized from the typed output.
pub enum Output {
    Doc(Value),
    Json(Vec<u8>),
}

impl Output {
    /// Serializes a typed output straight to AWS JSON bytes.
    pub fn json<T: serde::Serialize>(output: &T) -> ServiceResult<Output> {
        // serde_json's own `to_vec` starts at 128 bytes too.
        Output::json_sized(output, 128)
    }

    /// As [`Output::json`], into a buffer of `capacity` bytes to start with: for answers whose
    /// size is known roughly (a batch's), so the buffer is not regrown and copied as it fills.
    pub fn json_sized<T: serde::Serialize>(output: &T, capacity: usize) -> ServiceResult<Output> {
        let mut b = Vec::with_capacity(capacity);
        serde_json::to_writer(&mut b, output)
            .map(|()| Output::Json(b))
            .map_err(|e| ServiceError::internal(e.to_string()))
    }

    /// The answer as a document (what query/XML and CBOR rendering walk).
    pub fn into_doc(self) -> ServiceResult<Value> {
        match self {
            Output::Doc(v) => Ok(v),
            Output::Json(b) => {
                serde_json::from_slice(&b).map_err(|e| ServiceError::internal(e.to_string()))
            }
        }
    }

    /// The answer as AWS JSON bytes; an absent output is `{}`.
    pub fn into_json(self) -> Vec<u8> {
        match self {
            Output::Json(b) => b,
            Output::Doc(Value::Null) => b"{}".to_vec(),
            Output::Doc(v) => v.to_string().into_bytes(),
        }
    }
}

/// The first byte of `body` that is not ASCII whitespace (`None`: an empty body).
pub fn first_non_space(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn not_an_object() -> ServiceError {
    ServiceError::sender(
        "SerializationException",
        "The request body must be a JSON object.",
    )
}

fn unparsable(e: &serde_json::Error) -> ServiceError {
    ServiceError::sender(
        "SerializationException",
        format!("Could not parse the request body: {e}"),
    )
}

/// Parses an AWS JSON request body: empty means `{}`, anything but an object is refused.
pub fn parse_json_body(body: &[u8]) -> ServiceResult<Value> {
    match first_non_space(body) {
        None => Ok(Value::Object(Default::default())),
        Some(b'{') => match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(not_an_object()),
            Err(e) => Err(unparsable(&e)),
        },
        Some(_) => Err(not_an_object()),
    }
}

/// Serializes a typed output into the document the protocol layer renders.
pub fn to_output<T: serde::Serialize>(output: &T) -> ServiceResult<Value> {
    serde_json::to_value(output).map_err(|e| ServiceError::internal(e.to_string()))
}

/// Whether `s` is a valid `Number` message attribute value, as SQS and SNS define it: a decimal
/// (optionally signed, with a fraction and an exponent) of at most 38 significant digits whose
/// magnitude, unless it is zero, lies between 10^-128 and 10^+126. Leading and trailing zeros
/// are not significant ("Leading and trailing zeroes are trimmed"). Surrounding whitespace is
/// allowed, as it always was here; `inf`, `NaN` and hexadecimal are not numbers.
pub fn is_attribute_number(s: &str) -> bool {
    let t = s.trim();
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !digits(int) || !digits(frac) {
        return false;
    }
    let exp: i64 = match exp {
        None => 0,
        Some(e) => {
            let body = e.strip_prefix(['+', '-']).unwrap_or(e);
            if body.is_empty() || !digits(body) {
                return false;
            }
            // Saturates: an exponent of 10 or more digits is out of range for any mantissa.
            let mag = body.trim_start_matches('0');
            let v = if mag.len() > 9 {
                1_000_000_000
            } else {
                mag.parse().unwrap_or(0)
            };
            if e.starts_with('-') {
                -v
            } else {
                v
            }
        }
    };
    let ds: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let Some(lead) = ds.iter().position(|&b| b != b'0') else {
        return true; // zero, whatever its exponent
    };
    let last = ds.iter().rposition(|&b| b != b'0').unwrap_or(lead);
    if last - lead + 1 > 38 {
        return false;
    }
    // The value is d.ddd × 10^k, with d the first significant digit.
    let k = int.len() as i64 - 1 - lead as i64 + exp;
    let exactly_one = ds[lead] == b'1' && last == lead;
    k >= -128 && (k < 126 || (k == 126 && exactly_one))
}

/// The first 8 bytes of SHA-256 over `salt` and `body`: the check a token handed to clients
/// (a receipt handle, a shard iterator) carries, so that an altered or made-up one is refused.
/// Not a secret, only a checksum with a per-kind salt.
pub fn token_check(salt: &[u8], body: &[u8]) -> [u8; 8] {
    use sha2::Digest;
    let d = sha2::Sha256::new()
        .chain_update(salt)
        .chain_update(body)
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// Milliseconds since the Unix epoch, the clock every service stamps records with.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2024-05-01T12:34:56.789Z` for a time in epoch milliseconds (ISO 8601, UTC, as AWS writes
/// timestamps in XML and in SNS envelopes).
pub fn iso8601_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` → epoch ms.
pub fn parse_iso8601(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b't' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n];
        let padded = format!("{:0<3}", &digits[..n.min(3)]);
        ms = padded.parse().ok()?;
        rest = &frac[n..];
    }
    let offset_min: i64 = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let t = rest[1..].replace(':', "");
            if t.len() != 4 || !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let hh: i64 = t[..2].parse().ok()?;
            let mm: i64 = t[2..].parse().ok()?;
            sign * (hh * 60 + mm)
        }
    };
    // Days from civil (Howard Hinnant).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    let total = secs * 1000 + ms;
    u64::try_from(total).ok()
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {

    #[test]
    fn shape_errors_do_not_echo_long_values_whole() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct In {
            n: i64,
        }
        let long = "x".repeat(1 << 20);
        let e = parse_input::<In>(serde_json::json!({"n": long}), "SerializationException")
            .unwrap_err();
        assert_eq!(e.code, "SerializationException");
        assert!(e.message.chars().count() <= 257, "{}", e.message.len());
        assert!(
            e.message.starts_with("invalid type: string"),
            "{}",
            e.message
        );
        let e = Input::Json(format!("{{\"n\": \"{long}\"}}").as_bytes())
            .parse::<In>("SerializationException")
            .unwrap_err();
        assert!(e.message.chars().count() <= 257, "{}", e.message.len());
    }

    #[test]
    fn attribute_numbers() {
        let ok = [
            "0",
            "-0",
            "+7",
            "1.5",
            ".5",
            "5.",
            "1e126",
            "1E+126",
            "-1e126",
            "1e-128",
            "0.00000000000000000000000000000000000000000000001", // 1 significant digit
            "12345678901234567890123456789012345678",            // 38 digits
            "1234567890123456789012345678901234567800000",
            "0e99999999999",
            " 42 ",
            "9.9999999999999999999999999999999999999e125",
        ];
        let bad = [
            "",
            " ",
            "-",
            "+",
            ".",
            "e5",
            "1e",
            "1e+",
            "abc",
            "1.2.3",
            "1e5.5",
            "inf",
            "NaN",
            "0x10",
            "1_000",
            "--1",
            "1 2",
            "1.1e126",
            "2e126",
            "1e127",
            "9.9e-129",
            "1e-129",
            "123456789012345678901234567890123456789", // 39 digits
            "1e9999999999",
            "1.000000000000000000000000000000000001e126",
        ];
        let ten_to_126 = format!("1{}", "0".repeat(126));
        assert!(is_attribute_number(&ten_to_126));
        assert!(!is_attribute_number(&format!("2{}", "0".repeat(126))));
        assert!(!is_attribute_number(&format!("1{}", "0".repeat(127))));
        for s in ok {
            assert!(is_attribute_number(s), "{s:?} should be a number");
        }
        for s in bad {
            assert!(!is_attribute_number(s), "{s:?} should not be a number");
        }
    }
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        name: Option<String>,
        count: Option<i64>,
    }

    /// Raw JSON bodies parsed straight into typed inputs fail exactly as the document path does.
    #[test]
    fn raw_json_inputs_match_the_document_path() {
        for body in [
            &b"{\"Name\":\"a\",\"Count\":2}"[..],
            b"",
            b"  ",
            b"{}",
            b"{\"Count\":\"x\"}",
            b"{not json",
            b"[1,2]",
            b"null",
            b"{\"Name\":1} trailing",
        ] {
            let raw = Input::Json(body).parse::<In>("InvalidParameterValue");
            let doc = parse_json_body(body)
                .and_then(|d| Input::Doc(d).parse::<In>("InvalidParameterValue"));
            match (raw, doc) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a.code, b.code, "{body:?}"),
                (a, b) => panic!("{body:?}: {a:?} vs {b:?}"),
            }
        }
        let e = Input::Json(b"{\"Count\":\"x\"}")
            .parse::<In>("InvalidParameterValue")
            .unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        let e = Input::Json(b"[1]").parse::<In>("X").unwrap_err();
        assert_eq!(e.code, "SerializationException");
    }

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601_ms(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }
}
