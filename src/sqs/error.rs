//! Every SQS error this service returns, one constructor per AWS error, with AWS's JSON code,
//! legacy query code and (where known) AWS's exact wording. Nothing else builds SQS errors.

use crate::error::ServiceError;

fn sqs(code: &'static str, query: &'static str, msg: impl Into<String>) -> ServiceError {
    ServiceError::sender(code, msg).with_query_code(query)
}

pub fn queue_does_not_exist() -> ServiceError {
    sqs(
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "The specified queue does not exist.",
    )
    .with_query_message("The specified queue does not exist for this wsdl version.")
}

pub fn queue_name_exists(attr: &str) -> ServiceError {
    sqs(
        "QueueNameExists",
        "QueueAlreadyExists",
        format!(
            "A queue already exists with the same name and a different value for attribute {attr}"
        ),
    )
}

pub fn purge_in_progress(name: &str) -> ServiceError {
    sqs(
        "PurgeQueueInProgress",
        "AWS.SimpleQueueService.PurgeQueueInProgress",
        format!("Only one PurgeQueue operation on {name} is allowed every 60 seconds."),
    )
    .with_status(403)
}

pub fn queue_deleted_recently() -> ServiceError {
    sqs(
        "QueueDeletedRecently",
        "AWS.SimpleQueueService.QueueDeletedRecently",
        "You must wait 60 seconds after deleting a queue before you can create another queue with the same name.",
    )
}

pub fn batch_ids_not_distinct(id: &str) -> ServiceError {
    sqs(
        "BatchEntryIdsNotDistinct",
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
        format!("Id {id} repeated."),
    )
}

pub fn empty_batch(entry_shape: &str) -> ServiceError {
    sqs(
        "EmptyBatchRequest",
        "AWS.SimpleQueueService.EmptyBatchRequest",
        format!("There should be at least one {entry_shape} in the request."),
    )
}

pub fn too_many_entries(n: usize) -> ServiceError {
    sqs(
        "TooManyEntriesInBatchRequest",
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        format!("Maximum number of entries per request are 10. You have sent {n}."),
    )
}

pub fn batch_too_long(limit: usize, n: usize) -> ServiceError {
    sqs(
        "BatchRequestTooLong",
        "AWS.SimpleQueueService.BatchRequestTooLong",
        format!("Batch requests cannot be longer than {limit} bytes. You have sent {n} bytes."),
    )
}

pub fn invalid_batch_entry_id() -> ServiceError {
    sqs(
        "InvalidBatchEntryId",
        "AWS.SimpleQueueService.InvalidBatchEntryId",
        "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
    )
}

pub fn message_not_inflight() -> ServiceError {
    sqs(
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
        "The message referred to isn't in flight.",
    )
}

pub fn unsupported_operation(msg: impl Into<String>) -> ServiceError {
    sqs(
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
        msg,
    )
}

pub fn receipt_handle_invalid(handle: &str) -> ServiceError {
    sqs(
        "ReceiptHandleIsInvalid",
        "ReceiptHandleIsInvalid",
        format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
    )
}

/// ChangeMessageVisibility with the handle of a message that is gone or was received again
/// since: AWS's wording (client test suites and SDK error-parsing tests quote it).
pub fn receipt_handle_not_available(handle: &str) -> ServiceError {
    invalid_value(
        "ReceiptHandle",
        handle,
        "Message does not exist or is not available for visibility timeout change.",
    )
}

pub fn receipt_handle_expired(handle: &str) -> ServiceError {
    invalid_value("ReceiptHandle", handle, "The receipt handle has expired.")
}

pub fn invalid_attribute_name(name: &str) -> ServiceError {
    sqs(
        "InvalidAttributeName",
        "InvalidAttributeName",
        format!("Unknown Attribute {name}."),
    )
}

pub fn invalid_attribute_name_msg(msg: &str) -> ServiceError {
    sqs("InvalidAttributeName", "InvalidAttributeName", msg)
}

/// A FIFO-only attribute named for a standard queue.
pub fn fifo_only_attribute(name: &str) -> ServiceError {
    invalid_attribute_name_msg(&format!(
        "You can specify the {name} only when FifoQueue is set to true."
    ))
}

pub fn invalid_attribute_value(name: &str) -> ServiceError {
    sqs(
        "InvalidAttributeValue",
        "InvalidAttributeValue",
        format!("Invalid value for the parameter {name}."),
    )
}

pub fn invalid_attribute_value_msg(msg: impl Into<String>) -> ServiceError {
    sqs("InvalidAttributeValue", "InvalidAttributeValue", msg)
}

pub fn invalid_message_contents(c: u32) -> ServiceError {
    sqs(
        "InvalidMessageContents",
        "InvalidMessageContents",
        format!(
            "Invalid binary character '#x{c:X}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
        ),
    )
}

pub fn invalid_parameter_value(msg: impl Into<String>) -> ServiceError {
    ServiceError::invalid_parameter_value(msg)
}

/// AWS's wording for a parameter value it refuses.
pub fn invalid_value(param: &str, v: impl std::fmt::Display, reason: &str) -> ServiceError {
    invalid_parameter_value(format!(
        "Value {v} for parameter {param} is invalid. Reason: {reason}"
    ))
}

/// AWS's wording for a numeric parameter out of its range.
pub fn invalid_range(param: &str, v: i64, reason: &str) -> ServiceError {
    invalid_value(param, v, reason)
}

pub fn missing_parameter(name: &str) -> ServiceError {
    ServiceError::missing_parameter(name)
}

pub fn over_limit(msg: impl Into<String>) -> ServiceError {
    // 403 as in the query-protocol model's error shape (and moto's test_add_permission_errors).
    sqs("OverLimit", "OverLimit", msg).with_status(403)
}

pub fn resource_not_found(msg: impl Into<String>) -> ServiceError {
    sqs(
        "ResourceNotFoundException",
        "ResourceNotFoundException",
        msg,
    )
    .with_status(404)
}

pub fn invalid_queue_name() -> ServiceError {
    invalid_parameter_value(
        "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
    )
}
