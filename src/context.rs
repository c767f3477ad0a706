//! What a service knows about the request that reached it: who asked, where, and how to name
//! resources in the answer. Built by the protocol layer; carries nothing of HTTP itself.

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
        }
    }
}
