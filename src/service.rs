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
