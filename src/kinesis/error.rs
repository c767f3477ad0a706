//! Every error Kinesis answers with, one constructor per AWS error code. All are sender faults
//! (HTTP 400) whose query code equals the JSON code; messages follow AWS's wording.

use crate::error::ServiceError;

pub fn not_found(message: impl Into<String>) -> ServiceError {
    ServiceError::sender("ResourceNotFoundException", message)
}

pub fn stream_not_found(name: &str, account: &str) -> ServiceError {
    not_found(format!("Stream {name} under account {account} not found."))
}

pub fn in_use(message: impl Into<String>) -> ServiceError {
    ServiceError::sender("ResourceInUseException", message)
}

pub fn not_active(name: &str, account: &str, status: &str) -> ServiceError {
    in_use(format!(
        "Stream {name} under account {account} not ACTIVE, instead in state {status}"
    ))
}

pub fn limit_exceeded(message: impl Into<String>) -> ServiceError {
    ServiceError::sender("LimitExceededException", message)
}

pub fn invalid_argument(message: impl Into<String>) -> ServiceError {
    ServiceError::sender("InvalidArgumentException", message)
}

pub fn expired_iterator(message: impl Into<String>) -> ServiceError {
    ServiceError::sender("ExpiredIteratorException", message)
}

pub fn expired_next_token(message: impl Into<String>) -> ServiceError {
    ServiceError::sender("ExpiredNextTokenException", message)
}

pub fn throughput_exceeded(message: impl Into<String>) -> ServiceError {
    ServiceError::sender("ProvisionedThroughputExceededException", message)
}

pub fn validation(message: impl Into<String>) -> ServiceError {
    ServiceError::sender("ValidationException", message)
}

pub fn serialization(message: impl Into<String>) -> ServiceError {
    ServiceError::sender("SerializationException", message)
}

pub fn invalid_iterator() -> ServiceError {
    invalid_argument("Invalid ShardIterator.")
}
