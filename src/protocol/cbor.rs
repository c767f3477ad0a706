//! CBOR (`application/x-amz-cbor-1.1`), as the Java SDK and the KCL speak it to Kinesis.
//!
//! Requests become the same JSON-shaped documents as JSON 1.1 requests: byte strings turn into
//! base64 strings and tagged epoch timestamps into numbers, so no service sees CBOR. Responses
//! go the other way, driven by the output shape: a `blob` member becomes a byte string, a
//! `timestamp` member a tag-1 epoch time.
//!
//! AWS's CBOR counts tag-1 timestamps in epoch *milliseconds*, as integers (the Java SDK v1
//! writes `Date.getTime()` after tag 1; v2 declares `UNIX_TIMESTAMP_MILLIS` for CBOR payloads
//! and parses them with `Long.parseLong`), not in the seconds RFC 8949 gives tag 1 or the
//! fractional seconds of JSON 1.1.

use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value};

use super::model::ShapeRef;
use crate::error::ServiceError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Decodes a CBOR request body into a JSON-shaped document.
pub fn decode(body: &[u8]) -> Result<Value, ServiceError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let cbor: Cbor = ciborium::de::from_reader_with_recursion_limit(body, 64).map_err(|e| {
        ServiceError::sender("SerializationException", format!("invalid CBOR body: {e}"))
    })?;
    to_json(cbor)
}

fn to_json(v: Cbor) -> Result<Value, ServiceError> {
    Ok(match v {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let i: i128 = i.into();
            match i64::try_from(i) {
                Ok(i) => Value::Number(i.into()),
                Err(_) => Value::String(i.to_string()),
            }
        }
        Cbor::Float(f) => Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => Value::String(B64.encode(b)),
        // Tag 1: epoch milliseconds, made the epoch seconds JSON 1.1 requests carry.
        Cbor::Tag(1, inner) => match *inner {
            Cbor::Integer(i) => seconds_of_millis(i128::from(i) as f64),
            Cbor::Float(f) => seconds_of_millis(f),
            other => to_json(other)?,
        },
        // Other tags carry no meaning in AWS's CBOR, so look through them.
        Cbor::Tag(_, inner) => to_json(*inner)?,
        Cbor::Array(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Cbor::Map(entries) => {
            let mut obj = Map::new();
            for (k, v) in entries {
                let Cbor::Text(k) = k else {
                    return Err(ServiceError::sender(
                        "SerializationException",
                        "CBOR map keys must be text",
                    ));
                };
                obj.insert(k, to_json(v)?);
            }
            Value::Object(obj)
        }
        _ => {
            return Err(ServiceError::sender(
                "SerializationException",
                "unsupported CBOR value",
            ))
        }
    })
}

fn seconds_of_millis(ms: f64) -> Value {
    Number::from_f64(ms / 1000.0)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Encodes a response document as CBOR, using `shape` to find blobs and timestamps.
pub fn encode(shape: Option<ShapeRef<'_>>, doc: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Writing a Value to a Vec cannot fail.
    let _ = ciborium::ser::into_writer(&from_json(shape, doc), &mut out);
    out
}

fn from_json(shape: Option<ShapeRef<'_>>, v: &Value) -> Cbor {
    let kind = shape.map(|s| s.kind()).unwrap_or("");
    match v {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) if kind == "timestamp" => {
            let ms = (n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            Cbor::Tag(1, Box::new(Cbor::Integer(ms.into())))
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) if kind == "blob" => Cbor::Bytes(B64.decode(s).unwrap_or_default()),
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(items) => {
            let member = shape.and_then(|s| s.member());
            Cbor::Array(items.iter().map(|i| from_json(member, i)).collect())
        }
        Value::Object(obj) => {
            let value_shape = if kind == "map" {
                shape.and_then(|s| s.value())
            } else {
                None
            };
            Cbor::Map(
                obj.iter()
                    .map(|(k, v)| {
                        let s = match kind {
                            "structure" => shape
                                .and_then(|s| s.members().find(|(n, _)| *n == k).map(|(_, r)| r)),
                            _ => value_shape,
                        };
                        (Cbor::Text(k.clone()), from_json(s, v))
                    })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::model::{model, ServiceName};
    use serde_json::json;

    #[test]
    fn blobs_and_timestamps_round_trip_through_the_output_shape() {
        let m = model(ServiceName::Kinesis);
        let doc = json!({"Records": [{"Data": "aGk=", "PartitionKey": "p", "SequenceNumber": "1",
            "ApproximateArrivalTimestamp": 1700000000.5}], "MillisBehindLatest": 0});
        let bytes = encode(m.output("GetRecords"), &doc);
        let back: Cbor = ciborium::de::from_reader(&bytes[..]).unwrap();
        let rec = &back.as_map().unwrap()[0].1.as_array().unwrap()[0];
        let fields: std::collections::HashMap<_, _> = rec
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_text().unwrap().to_string(), v.clone()))
            .collect();
        assert_eq!(fields["Data"], Cbor::Bytes(b"hi".to_vec()));
        // Epoch milliseconds, an integer, as the Java SDK parses them.
        assert_eq!(
            fields["ApproximateArrivalTimestamp"],
            Cbor::Tag(1, Box::new(Cbor::Integer(1_700_000_000_500i64.into())))
        );
        assert_eq!(decode(&bytes).unwrap(), doc);
    }

    #[test]
    fn request_timestamps_are_epoch_millis() {
        // {"Timestamp": tag 1 (1700000000123)}, as the Java SDK sends AT_TIMESTAMP.
        let mut body = Vec::new();
        let doc = Cbor::Map(vec![(
            Cbor::Text("Timestamp".into()),
            Cbor::Tag(1, Box::new(Cbor::Integer(1_700_000_000_123i64.into()))),
        )]);
        ciborium::ser::into_writer(&doc, &mut body).unwrap();
        assert_eq!(decode(&body).unwrap(), json!({"Timestamp": 1700000000.123}));
    }

    #[test]
    fn garbage_is_a_serialization_exception() {
        for body in [&b"\xff\xff"[..], b"\x9f", b"\xa1\x01\x02"] {
            assert_eq!(decode(body).unwrap_err().code, "SerializationException");
        }
    }
}
