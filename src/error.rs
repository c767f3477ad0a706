//! The one error model every service returns and only the protocol layer renders.
//!
//! A service never formats XML or JSON errors itself: it returns a [`ServiceError`] naming the
//! AWS error code (as the JSON protocols and current SDKs spell it), the legacy query-protocol code
//! where it differs, who is at fault and the HTTP status. `src/protocol/` turns that into
//! `ErrorResponse` XML, `{"__type", "message"}` JSON with `x-amzn-query-error`, or CBOR.

use std::borrow::Cow;

/// Who caused the error, as the query protocol's `Error/Type` and the batch `SenderFault` say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The request was wrong; retrying it unchanged fails again. HTTP 4xx.
    Sender,
    /// The broker failed (I/O, a poisoned log); the request may succeed later. HTTP 5xx.
    Receiver,
}

/// An AWS-shaped error: code, message, fault and status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    /// The code the JSON protocols put in `__type` (e.g. `QueueDoesNotExist`).
    pub code: Cow<'static, str>,
    /// The code the query protocol puts in `Error/Code`, and SQS JSON in `x-amzn-query-error`
    /// (e.g. `AWS.SimpleQueueService.NonExistentQueue`). Same as `code` when AWS has no legacy name.
    pub query_code: Cow<'static, str>,
    pub message: String,
    /// The message the query protocol shows instead, where AWS's legacy endpoint words it
    /// differently (SQS's "… does not exist for this wsdl version.").
    pub query_message: Option<&'static str>,
    pub fault: Fault,
    pub status: u16,
}

impl ServiceError {
    /// A 400 sender error whose query code equals its JSON code.
    pub fn sender(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        let code = code.into();
        ServiceError {
            query_code: code.clone(),
            code,
            message: message.into(),
            query_message: None,
            fault: Fault::Sender,
            status: 400,
        }
    }

    /// A 500 receiver error (`InternalFailure` unless told otherwise).
    pub fn internal(message: impl Into<String>) -> Self {
        ServiceError {
            code: Cow::Borrowed("InternalFailure"),
            query_code: Cow::Borrowed("InternalFailure"),
            message: message.into(),
            query_message: None,
            fault: Fault::Receiver,
            status: 500,
        }
    }

    /// 503 `ServiceUnavailable`: storage refused the write (ENOSPC, a poisoned log).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ServiceError {
            code: Cow::Borrowed("ServiceUnavailable"),
            query_code: Cow::Borrowed("ServiceUnavailable"),
            message: message.into(),
            query_message: None,
            fault: Fault::Receiver,
            status: 503,
        }
    }

    /// Sets the legacy query-protocol code (SQS's `AWS.SimpleQueueService.*` names).
    pub fn with_query_code(mut self, query_code: impl Into<Cow<'static, str>>) -> Self {
        self.query_code = query_code.into();
        self
    }

    /// Sets the query protocol's own wording of the message.
    pub fn with_query_message(mut self, message: &'static str) -> Self {
        self.query_message = Some(message);
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    // Errors shared by every service and protocol.

    pub fn invalid_action(action: &str) -> Self {
        ServiceError::sender(
            "InvalidAction",
            format!("The action or operation requested is invalid. Verify that the action is typed correctly: {action}"),
        )
    }

    pub fn missing_parameter(name: &str) -> Self {
        ServiceError::sender(
            "MissingParameter",
            format!("The request must contain the parameter {name}."),
        )
    }

    pub fn invalid_parameter_value(message: impl Into<String>) -> Self {
        ServiceError::sender("InvalidParameterValue", message)
    }
}

impl From<crate::codec::CodecError> for ServiceError {
    fn from(e: crate::codec::CodecError) -> Self {
        ServiceError::internal(format!("stored record could not be decoded: {e}"))
    }
}

/// Storage failures surface as 503 so clients retry; the detail goes to the broker's log.
impl From<crate::log::LogError> for ServiceError {
    fn from(e: crate::log::LogError) -> Self {
        tracing::error!(error = %e, "storage error");
        ServiceError::unavailable(format!("storage error: {e}"))
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
