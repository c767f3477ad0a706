//! What a service knows about the request that reached it: who asked, where, how to name
//! resources in the answer, and whether the caller still waits for it. Built by the protocol
//! layer; carries nothing of HTTP itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Per-request facts a service needs to scope and name resources.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The account every resource of this request belongs to (the broker's `--account-id`).
    pub account_id: String,
    /// From the SigV4 credential scope, default `us-east-1`. Resources live in (account, region).
    pub region: String,
    /// `scheme://host[:port]` the client used, for queue URLs and SNS callback URLs.
    pub base_url: String,
    /// The `x-amzn-RequestId` of this request.
    pub request_id: String,
    /// The X-Ray trace header the client sent (`X-Amzn-Trace-Id`), which SQS keeps as a
    /// message's AWSTraceHeader when the send names none.
    pub trace_header: Option<String>,
    /// Set when the caller stops waiting for the answer (its connection closed).
    pub caller_gone: CallerGone,
}

/// Whether the caller of a request has gone away. A request runs to its end either way (what it
/// wrote must also be applied); only waiting for something to happen, as a long poll does, stops
/// early, so that a poll nobody will read does not take messages.
#[derive(Clone, Debug, Default)]
pub struct CallerGone(Arc<GoneFlag>);

#[derive(Debug, Default)]
struct GoneFlag {
    gone: AtomicBool,
    notify: Notify,
}

impl CallerGone {
    /// Marks the caller gone and wakes whoever waits in [`CallerGone::wait`].
    pub fn set(&self) {
        self.0.gone.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.0.gone.load(Ordering::Acquire)
    }

    /// Resolves once the caller is gone.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a `set` in between is not missed.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

impl RequestContext {
    /// A context for tests and internal callers.
    pub fn local(account_id: &str, region: &str) -> Self {
        RequestContext {
            account_id: account_id.to_string(),
            region: region.to_string(),
            base_url: "http://127.0.0.1:4566".to_string(),
            request_id: uuid::Uuid::new_v4().to_string(),
            trace_header: None,
            caller_gone: CallerGone::default(),
        }
    }
}
