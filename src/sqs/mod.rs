//! SQS: queues, messages and their state machines. Typed requests in, typed responses or
//! [`ServiceError`]s out; every state change is appended to the log before it is acknowledged.
//! Knows nothing of HTTP or wire formats.

use std::sync::Arc;

use serde_json::Value;

use crate::config::Config;
use crate::context::RequestContext;
use crate::error::{ServiceError, ServiceResult};

pub struct Sqs {}

impl Sqs {
    /// Opens (recovers) every queue under `<data_dir>/sqs`.
    pub fn open(_config: &Config) -> ServiceResult<Arc<Sqs>> {
        Ok(Arc::new(Sqs {}))
    }

    /// Runs one action. `op` is an operation name from the SQS model (the protocol layer has
    /// already rejected unknown ones); `input` is its JSON-shaped request document.
    pub async fn dispatch(
        &self,
        _ctx: &RequestContext,
        op: &str,
        _input: Value,
    ) -> ServiceResult<Value> {
        Err(ServiceError::invalid_action(op))
    }

    /// Wipes every queue of every account and region, durably.
    pub async fn reset(&self) -> ServiceResult<()> {
        Ok(())
    }

    /// Makes everything appended so far durable (graceful shutdown in interval/none modes).
    pub fn flush(&self) -> ServiceResult<()> {
        Ok(())
    }
}

/// A message another service (SNS fan-out) sends into a queue named by ARN.
#[derive(Clone, Debug, Default)]
pub struct InternalSend {
    pub body: String,
    /// JSON-shaped `MessageAttributes`: `{"name": {"DataType": "String", "StringValue": "v"}}`.
    pub message_attributes: serde_json::Map<String, Value>,
    pub message_group_id: Option<String>,
    pub message_deduplication_id: Option<String>,
}

impl Sqs {
    /// Sends into the queue with this ARN as SendMessage would (same validation, same log
    /// write); resolves once durable. Returns the MessageId. `QueueDoesNotExist` if absent.
    pub async fn send_to_arn(&self, _queue_arn: &str, _msg: InternalSend) -> ServiceResult<String> {
        Err(
            ServiceError::sender("QueueDoesNotExist", "The specified queue does not exist.")
                .with_query_code("AWS.SimpleQueueService.NonExistentQueue"),
        )
    }
}
