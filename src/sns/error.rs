//! Every SNS error, one constructor per AWS error shape. Codes and statuses are the query-protocol
//! ones from the `error` metadata of botocore's SNS model (SNS speaks only the query protocol, so
//! the JSON code and the query code are the same string).

use crate::error::{Fault, ServiceError, ServiceResult};

fn err(code: &'static str, status: u16, message: impl Into<String>) -> ServiceError {
    ServiceError::sender(code, message).with_status(status)
}

/// `InvalidParameter`: AWS phrases these as "Invalid parameter: <what>".
pub fn invalid_parameter(what: impl std::fmt::Display) -> ServiceError {
    err(
        "InvalidParameter",
        400,
        format!("Invalid parameter: {what}"),
    )
}

/// `InvalidParameter` whose message AWS words without the "Invalid parameter: " lead-in
/// ("Invalid SMS endpoint: ...", "Invalid token").
pub fn invalid_parameter_bare(message: impl Into<String>) -> ServiceError {
    err("InvalidParameter", 400, message)
}

/// `ParameterValueInvalid` (the model's `InvalidParameterValueException`): bad message attributes.
pub fn invalid_parameter_value(message: impl Into<String>) -> ServiceError {
    err("ParameterValueInvalid", 400, message)
}

pub fn not_found(message: impl Into<String>) -> ServiceError {
    err("NotFound", 404, message)
}

pub fn topic_not_found() -> ServiceError {
    not_found("Topic does not exist")
}

pub fn subscription_not_found() -> ServiceError {
    not_found("Subscription does not exist")
}

pub fn endpoint_not_found() -> ServiceError {
    not_found("Endpoint does not exist")
}

pub fn application_not_found() -> ServiceError {
    not_found("PlatformApplication does not exist")
}

pub fn resource_not_found() -> ServiceError {
    err("ResourceNotFound", 404, "Resource does not exist")
}

pub fn authorization_error(message: impl Into<String>) -> ServiceError {
    err("AuthorizationError", 403, message)
}

pub fn tag_limit_exceeded() -> ServiceError {
    err(
        "TagLimitExceeded",
        400,
        "Could not complete request: tag quota of per resource exceeded",
    )
}

pub fn tag_policy(message: impl Into<String>) -> ServiceError {
    err("TagPolicy", 400, message)
}

pub fn filter_policy_limit_exceeded() -> ServiceError {
    err(
        "FilterPolicyLimitExceeded",
        403,
        "Filter policy limit exceeded: a topic can have at most 200 subscriptions with filter policies",
    )
}

pub fn subscription_limit_exceeded() -> ServiceError {
    err(
        "SubscriptionLimitExceeded",
        403,
        "Subscription limit exceeded",
    )
}

pub fn empty_batch() -> ServiceError {
    err(
        "EmptyBatchRequest",
        400,
        "The batch request doesn't contain any entries",
    )
}

pub fn too_many_entries() -> ServiceError {
    err(
        "TooManyEntriesInBatchRequest",
        400,
        "The batch request contains more entries than permissible.",
    )
}

pub fn batch_ids_not_distinct() -> ServiceError {
    err(
        "BatchEntryIdsNotDistinct",
        400,
        "Two or more batch entries in the request have the same Id.",
    )
}

pub fn invalid_batch_entry_id() -> ServiceError {
    err(
        "InvalidBatchEntryId",
        400,
        "The Id of a batch entry in a batch request doesn't abide by the specification",
    )
}

pub fn batch_request_too_long() -> ServiceError {
    err(
        "BatchRequestTooLong",
        400,
        "The length of all the messages put together is more than the limit.",
    )
}

pub fn validation(message: impl Into<String>) -> ServiceError {
    err("ValidationException", 400, message)
}

/// A required member missing from the request, as SNS's query protocol reports it (code
/// `ValidationError`, not the JSON protocols' `ValidationException`). `at` is the member's
/// path, e.g. `messageAttributes.a.member.dataType`.
pub fn null_member(at: &str) -> ServiceError {
    err(
        "ValidationError",
        400,
        format!("1 validation error detected: Value null at '{at}' failed to satisfy constraint: Member must not be null"),
    )
}

pub fn user_error(message: impl Into<String>) -> ServiceError {
    err("UserError", 400, message)
}

pub fn verification(message: impl Into<String>) -> ServiceError {
    err("VerificationException", 400, message)
}

pub fn endpoint_disabled() -> ServiceError {
    err("EndpointDisabled", 400, "Endpoint is disabled")
}

pub fn platform_application_disabled() -> ServiceError {
    err(
        "PlatformApplicationDisabled",
        400,
        "Platform application is disabled",
    )
}

/// Wrong-typed request documents: SNS reports them as `InvalidParameter`.
pub const PARSE_CODE: &str = "InvalidParameter";

/// [`crate::service::parse_input`], with a missing required member worded as AWS words it:
/// "Invalid parameter: SubscriptionArn Reason: no value for required parameter" (LocalStack's
/// AWS-recorded test_unsubscribe_wrong_arn_format).
pub fn parse_input<T: serde::de::DeserializeOwned>(
    input: serde_json::Value,
    code: &'static str,
) -> ServiceResult<T> {
    crate::service::parse_input(input, code).map_err(|mut e| {
        let missing = e
            .message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .map(str::to_string);
        if let Some(name) = missing {
            e.message =
                format!("Invalid parameter: {name} Reason: no value for required parameter");
        }
        e
    })
}

/// True when an error is the broker's fault (a storage failure), not the request's.
pub fn is_receiver(e: &ServiceError) -> bool {
    e.fault == Fault::Receiver
}
