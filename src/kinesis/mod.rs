//! Kinesis: streams, shards and records. Typed requests in, typed responses or
//! [`ServiceError`]s out; every state change is appended to the log before it is acknowledged.
//! Knows nothing of HTTP or wire formats.

use std::sync::Arc;

use serde_json::Value;

use crate::config::Config;
use crate::context::RequestContext;
use crate::error::{ServiceError, ServiceResult};

pub struct Kinesis {}

impl Kinesis {
    /// Opens (recovers) every stream under `<data_dir>/kinesis`.
    pub fn open(_config: &Config) -> ServiceResult<Arc<Kinesis>> {
        Ok(Arc::new(Kinesis {}))
    }

    /// Runs one action. `op` is an operation name from the Kinesis model (the protocol layer has
    /// already rejected unknown ones); `input` is its JSON-shaped request document.
    pub async fn dispatch(
        &self,
        _ctx: &RequestContext,
        op: &str,
        _input: Value,
    ) -> ServiceResult<Value> {
        Err(ServiceError::invalid_action(op))
    }

    /// Wipes every stream of every account and region, durably.
    pub async fn reset(&self) -> ServiceResult<()> {
        Ok(())
    }

    /// Makes everything appended so far durable (graceful shutdown in interval/none modes).
    pub fn flush(&self) -> ServiceResult<()> {
        Ok(())
    }
}
