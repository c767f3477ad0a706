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
    serde_json::from_value(input).map_err(|e| ServiceError::sender(code, e.to_string()))
}

/// Serializes a typed output into the document the protocol layer renders.
pub fn to_output<T: serde::Serialize>(output: &T) -> ServiceResult<Value> {
    serde_json::to_value(output).map_err(|e| ServiceError::internal(e.to_string()))
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
    use super::*;

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601_ms(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }
}
