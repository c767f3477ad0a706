//! Wire protocols: from an HTTP request to a service call and back.
//!
//! Routing: `X-Amz-Target: AmazonSQS.<Op>` is SQS over AWS JSON 1.0; `Kinesis_20131202.<Op>` is
//! Kinesis over JSON 1.1 or CBOR (by content type); anything else with an `Action` parameter is
//! the query protocol, for SQS, SNS or STS as the SigV4 scope, the action name or the path says
//! (a POST to `/<account>/<queue>` is SQS with that queue implied).
//!
//! Every format is turned into one JSON-shaped document per request, in the shape of the AWS JSON
//! protocol of that operation, and every answer or [`ServiceError`] is rendered back here. This
//! module knows nothing of files and holds no state; services know nothing of HTTP.

pub mod cbor;
pub mod eventstream;
pub mod model;
pub mod query;
pub mod sigv4;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::context::{CallerGone, RequestContext};
use crate::error::{Fault, ServiceError};
use crate::kinesis::Kinesis;
use crate::service::Input;
use crate::sns::Sns;
use crate::sqs::Sqs;
use model::{model, ServiceName};

/// Largest request body read: a Kinesis PutRecords of 10 MiB records, base64-encoded, with room.
/// Each service applies its own smaller limits to what is inside.
pub const MAX_BODY_BYTES: usize = 32 << 20;

const SQS_NAMESPACE: &str = "http://queue.amazonaws.com/doc/2012-11-05/";
const SNS_NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";
const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The services a request can reach.
pub struct Services {
    pub sqs: Arc<Sqs>,
    pub sns: Arc<Sns>,
    pub kinesis: Arc<Kinesis>,
    pub account_id: String,
    /// What every URL handed out starts with; `None`: `http://` and the request's Host.
    pub advertised_url: Option<String>,
    /// Ends open event streams when the server shuts down.
    pub streams: StreamGate,
}

/// Open event-stream responses (SubscribeToShard lasts up to 5 minutes) would hold a graceful
/// shutdown back; closing the gate ends them cleanly, and clients resubscribe from their
/// continuation sequence number.
pub struct StreamGate(tokio::sync::watch::Sender<bool>);

impl Default for StreamGate {
    fn default() -> Self {
        StreamGate(tokio::sync::watch::channel(false).0)
    }
}

impl StreamGate {
    /// Ends every open event stream and any opened later.
    pub fn close(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the gate is closed.
    fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|closed| *closed).await;
        }
    }
}

/// How the request was encoded, which decides how the answer and errors are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    /// AWS JSON 1.0, SQS (query-compatible errors).
    SqsJson,
    /// AWS JSON 1.1, Kinesis.
    KinesisJson,
    /// CBOR 1.1, Kinesis.
    KinesisCbor,
    /// Query protocol, XML answers, with the service's namespace.
    Query(&'static str),
}

/// Handles one AWS API request (everything outside `/_millpond/`). `caller_gone` is set by the
/// caller when the client stops waiting for the answer.
pub async fn handle(
    services: &Services,
    req: Request<Body>,
    caller_gone: CallerGone,
) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let target = header_str(headers, "x-amz-target");
    let content_type = header_str(headers, header::CONTENT_TYPE.as_str()).unwrap_or("");
    // Errors before the wire is known are answered in the shape the request most likely expects.
    let early_wire = match target {
        Some(t) if t.starts_with("Kinesis_") && content_type.contains("cbor") => Wire::KinesisCbor,
        Some(t) if t.starts_with("Kinesis_") => Wire::KinesisJson,
        Some(_) => Wire::SqsJson,
        None => Wire::Query(SQS_NAMESPACE),
    };
    // A declared length over the limit is refused before a byte of the body is read.
    let declared =
        header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ServiceError::sender(
            "RequestEntityTooLarge",
            format!("Request body is larger than {MAX_BODY_BYTES} bytes."),
        )
        .with_status(413)
    };
    let body = match declared.filter(|&n| n > MAX_BODY_BYTES as u64) {
        None => axum::body::to_bytes(body, MAX_BODY_BYTES).await,
        Some(_) => return error_response(early_wire, &too_large(), &request_id),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            // Only a body over the limit is too large; one that breaks off or is malformed
            // (a bad chunk, fewer bytes than its Content-Length) is a bad request.
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let err = if over {
                too_large()
            } else {
                ServiceError::sender(
                    "IncompleteBody",
                    "The request body could not be read to its end.",
                )
            };
            return error_response(early_wire, &err, &request_id);
        }
    };
    let query = parts.uri.query().unwrap_or("");
    let mut params = query::Params::new();
    let scope_owner;
    let presigned = if query.contains("X-Amz-Credential") {
        let _ = query::parse_form(query.as_bytes(), &mut params);
        scope_owner = params.get("X-Amz-Credential").cloned();
        scope_owner.as_deref()
    } else {
        None
    };
    let scope = sigv4::scope(header_str(headers, "authorization"), presigned);
    let host = header_str(headers, "host")
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let ctx = RequestContext {
        account_id: services.account_id.clone(),
        region: scope.region.unwrap_or("us-east-1").to_string(),
        base_url: services
            .advertised_url
            .clone()
            .unwrap_or_else(|| format!("http://{host}")),
        request_id: request_id.clone(),
        trace_header: header_str(headers, "x-amzn-trace-id")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        caller_gone,
    };

    if let Some(target) = target {
        return json_request(services, &ctx, target, content_type, &body).await;
    }

    params.clear();
    let mut parsed = query::parse_form(query.as_bytes(), &mut params);
    if parsed.is_ok()
        && parts.method == Method::POST
        && !content_type.starts_with("application/json")
    {
        parsed = query::parse_form(&body, &mut params);
    }
    let path = parts.uri.path();
    let queue_path = queue_path(path);
    let service = query_service(
        scope.service,
        params.get("Action").map(String::as_str),
        queue_path.is_some(),
        &params,
    );
    let wire = Wire::Query(match service {
        QueryService::Sns => SNS_NAMESPACE,
        QueryService::Sts => STS_NAMESPACE,
        QueryService::Sqs => SQS_NAMESPACE,
    });
    if let Err(e) = parsed {
        return error_response(wire, &e, &request_id);
    }
    let on_queue_path = service == QueryService::Sqs && queue_path.is_some();
    let Some(action) = params.get("Action").cloned() else {
        if on_queue_path {
            // AWS answers a queue URL without an Action with this bare 404 rather than an
            // ErrorResponse document, whatever the Accept header asks for.
            return respond(
                StatusCode::NOT_FOUND,
                "text/xml",
                b"<UnknownOperationException/>".to_vec(),
                &request_id,
            );
        }
        let err = ServiceError::sender(
            "MissingAction",
            "The request must contain the parameter Action.",
        );
        return error_response(wire, &err, &request_id);
    };
    // AWS refuses these two on a queue URL, yet serves GetQueueUrl there, for any queue.
    if on_queue_path && matches!(action.as_str(), "CreateQueue" | "ListQueues") {
        return error_response(wire, &sqs_invalid_action(&action), &request_id);
    }
    if let (QueryService::Sqs, Some(path), false) =
        (service, queue_path, params.contains_key("QueueUrl"))
    {
        params.insert("QueueUrl".into(), format!("{}{path}", ctx.base_url));
    }
    let result = match service {
        QueryService::Sts => sts(&ctx, &action),
        QueryService::Sqs => {
            query_call(
                ServiceName::Sqs,
                &action,
                &params,
                &request_id,
                |op, doc| services.sqs.dispatch(&ctx, op, doc),
            )
            .await
        }
        QueryService::Sns => {
            query_call(
                ServiceName::Sns,
                &action,
                &params,
                &request_id,
                |op, doc| services.sns.dispatch(&ctx, op, doc),
            )
            .await
        }
    };
    let mut resp = match result {
        Ok(xml) => respond(StatusCode::OK, "text/xml", xml.into_bytes(), &request_id),
        Err(e) => error_response(wire, &e, &request_id),
    };
    // Only the server's debug request log reads it (hence its target): nothing to do on the
    // request path otherwise.
    if tracing::enabled!(target: "millpond::server", tracing::Level::DEBUG) {
        let service = match service {
            QueryService::Sqs => "SQS",
            QueryService::Sns => "SNS",
            QueryService::Sts => "STS",
        };
        resp.extensions_mut()
            .insert(QueryAction { service, action });
    }
    resp
}

/// The service and Action a query-protocol request named, on its response when debug logging
/// is on: the request log shows them (`SNS.Publish`) where a JSON request shows its
/// `X-Amz-Target`.
#[derive(Clone, Debug)]
pub struct QueryAction {
    pub service: &'static str,
    pub action: String,
}

impl std::fmt::Display for QueryAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.service, self.action)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueryService {
    Sqs,
    Sns,
    Sts,
}

/// Which query-protocol service a request is for: the signing scope first, then the path, then
/// whichever model has the action (SQS and SNS share `AddPermission`/`RemovePermission`; the
/// parameters tell them apart).
fn query_service(
    scope: Option<&str>,
    action: Option<&str>,
    queue_path: bool,
    params: &query::Params,
) -> QueryService {
    match scope {
        Some("sqs") => return QueryService::Sqs,
        Some("sns") => return QueryService::Sns,
        Some("sts") => return QueryService::Sts,
        _ => {}
    }
    if queue_path {
        return QueryService::Sqs;
    }
    let Some(action) = action else {
        return QueryService::Sqs;
    };
    if action == "GetCallerIdentity" {
        return QueryService::Sts;
    }
    let in_sqs = model(ServiceName::Sqs).has_operation(action);
    let in_sns = model(ServiceName::Sns).has_operation(action);
    match (in_sqs, in_sns) {
        (true, true) if params.contains_key("TopicArn") => QueryService::Sns,
        (false, true) => QueryService::Sns,
        _ => QueryService::Sqs,
    }
}

/// `/<account>/<queue-name>`: the path older SDKs POST to.
fn queue_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (account, name) = rest.split_once('/')?;
    let ok = !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_alphanumeric())
        && !name.is_empty()
        && !name.contains('/');
    ok.then_some(path)
}

async fn query_call<'a, F, Fut>(
    svc: ServiceName,
    action: &'a str,
    params: &query::Params,
    request_id: &str,
    call: F,
) -> Result<String, ServiceError>
where
    F: FnOnce(&'a str, Value) -> Fut,
    Fut: std::future::Future<Output = Result<Value, ServiceError>>,
{
    let m = model(svc);
    if !m.has_operation(action) {
        // SQS words it its own way (LocalStack's AWS-validated
        // test_invalid_action_raises_exception).
        return Err(if svc == ServiceName::Sqs {
            sqs_invalid_action(action)
        } else {
            ServiceError::invalid_action(action)
        });
    }
    let doc = query::input_document(m, action, params)?;
    let out = call(action, doc).await?;
    Ok(query::render_response(m, action, &out, request_id))
}

fn sts(ctx: &RequestContext, action: &str) -> Result<String, ServiceError> {
    if action != "GetCallerIdentity" {
        return Err(ServiceError::invalid_action(action));
    }
    let a = &ctx.account_id;
    Ok(format!(
        "<?xml version=\"1.0\"?><GetCallerIdentityResponse xmlns=\"{STS_NAMESPACE}\"><GetCallerIdentityResult>\
         <Arn>arn:aws:iam::{a}:root</Arn><UserId>{a}</UserId><Account>{a}</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
        ctx.request_id
    ))
}

async fn json_request(
    services: &Services,
    ctx: &RequestContext,
    target: &str,
    content_type: &str,
    body: &[u8],
) -> Response<Body> {
    let rid = &ctx.request_id;
    let (prefix, op) = target.split_once('.').unwrap_or((target, ""));
    let wire = match prefix {
        "Kinesis_20131202" if content_type.contains("cbor") => Wire::KinesisCbor,
        "Kinesis_20131202" => Wire::KinesisJson,
        "AmazonSQS" => Wire::SqsJson,
        "AWSSecurityTokenServiceV20110615" if op == "GetCallerIdentity" => {
            let a = &ctx.account_id;
            let doc = json!({"Arn": format!("arn:aws:iam::{a}:root"), "UserId": a, "Account": a});
            return respond(
                StatusCode::OK,
                "application/x-amz-json-1.0",
                doc.to_string().into_bytes(),
                rid,
            );
        }
        _ => {
            let wire = if content_type.contains("1.1") {
                Wire::KinesisJson
            } else {
                Wire::SqsJson
            };
            return error_response(wire, &unknown_operation(target), rid);
        }
    };
    let svc = if wire == Wire::SqsJson {
        ServiceName::Sqs
    } else {
        ServiceName::Kinesis
    };
    let m = model(svc);
    if !m.has_operation(op) {
        return error_response(wire, &unknown_operation(target), rid);
    }
    if svc == ServiceName::Sqs {
        return match services.sqs.call(ctx, op, Input::Json(body)).await {
            Ok(out) => respond(
                StatusCode::OK,
                "application/x-amz-json-1.0",
                out.into_json(),
                rid,
            ),
            Err(e) => error_response(wire, &e, rid),
        };
    }
    let doc = match wire {
        Wire::KinesisCbor if body.is_empty() => Err(empty_kinesis_body()),
        Wire::KinesisCbor => cbor::decode(body),
        _ if crate::service::first_non_space(body).is_none() => Err(empty_kinesis_body()),
        _ => parse_json_body(body),
    };
    let doc = match doc {
        Ok(d) => d,
        Err(e) => return error_response(wire, &e, rid),
    };
    if svc == ServiceName::Kinesis && op == "SubscribeToShard" {
        return subscribe_to_shard(services, ctx, wire, doc).await;
    }
    let result = services.kinesis.dispatch(ctx, op, doc).await;
    match (result, wire) {
        (Ok(out), Wire::KinesisCbor) => respond(
            StatusCode::OK,
            "application/x-amz-cbor-1.1",
            cbor::encode(m.output(op), &out),
            rid,
        ),
        (Ok(out), _) => {
            let out = if out.is_null() {
                Value::Object(Map::new())
            } else {
                out
            };
            let ct = "application/x-amz-json-1.1";
            respond(StatusCode::OK, ct, out.to_string().into_bytes(), rid)
        }
        (Err(e), _) => error_response(wire, &e, rid),
    }
}

/// SubscribeToShard: validation errors are ordinary error responses; once subscribed, the
/// answer is a 200 whose body is an event stream: an `initial-response` event, one
/// `SubscribeToShardEvent` per batch, and, if the subscription fails midway, one exception
/// message that ends it.
async fn subscribe_to_shard(
    services: &Services,
    ctx: &RequestContext,
    wire: Wire,
    doc: Value,
) -> Response<Body> {
    let rid = &ctx.request_id;
    let mut sub = match services.kinesis.subscribe(ctx, doc).await {
        Ok(s) => s,
        Err(e) => return error_response(wire, &e, rid),
    };
    let cbor = wire == Wire::KinesisCbor;
    let payload_type = if cbor {
        "application/x-amz-cbor-1.1"
    } else {
        "application/json"
    };
    let render = move |shape: Option<model::ShapeRef<'_>>, doc: &Value| -> Vec<u8> {
        if cbor {
            cbor::encode(shape, doc)
        } else {
            doc.to_string().into_bytes()
        }
    };
    let event_shape = subscribe_stream_member("SubscribeToShardEvent");
    // One frame in flight: a slow reader holds the subscription back instead of buffering.
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
    let first = eventstream::encode(
        &[
            (":message-type", "event"),
            (":event-type", "initial-response"),
            (":content-type", payload_type),
        ],
        &render(None, &json!({})),
    );
    let closed = services.streams.closed();
    tokio::spawn(async move {
        tokio::pin!(closed);
        if tx.send(first.into()).await.is_err() {
            return;
        }
        loop {
            // A client that went away ends the subscription now, not at its next event.
            let item = tokio::select! {
                item = sub.next() => item,
                _ = &mut closed => None,
                _ = tx.closed() => None,
            };
            let Some(item) = item else { return };
            let frame = match item {
                Ok(event) => eventstream::encode(
                    &[
                        (":message-type", "event"),
                        (":event-type", "SubscribeToShardEvent"),
                        (":content-type", payload_type),
                    ],
                    &render(event_shape, &event),
                ),
                Err(e) => {
                    let frame = eventstream::encode(
                        &[
                            (":message-type", "exception"),
                            (":exception-type", stream_exception_type(&e.code)),
                            (":content-type", payload_type),
                        ],
                        &render(None, &json!({"message": e.message})),
                    );
                    let _ = tx.send(frame.into()).await;
                    return;
                }
            };
            // The reader went away: dropping `sub` ends the subscription.
            if tx.send(frame.into()).await.is_err() {
                return;
            }
        }
    });
    let mut resp = Response::new(Body::new(FrameBody { rx }));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// A member of SubscribeToShardOutput.EventStream, the union of events and exceptions the
/// stream can carry.
fn subscribe_stream_member(name: &str) -> Option<model::ShapeRef<'static>> {
    let member = |s: model::ShapeRef<'static>, name: &str| {
        s.members().find(|(n, _)| *n == name).map(|(_, r)| r)
    };
    model(ServiceName::Kinesis)
        .output("SubscribeToShard")
        .and_then(|o| member(o, "EventStream"))
        .and_then(|s| member(s, name))
}

/// The `:exception-type` of an error ending a subscription: the model lists the exceptions an
/// event stream carries, and SDKs only know those; anything else (a storage failure) is the
/// stream's InternalFailureException.
fn stream_exception_type(code: &str) -> &str {
    match subscribe_stream_member(code) {
        Some(s) if s.kind() == "structure" && code != "SubscribeToShardEvent" => code,
        _ => "InternalFailureException",
    }
}

/// A response body made of the event-stream frames a task sends, ending when it stops.
struct FrameBody {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
}

impl hyper::body::Body for FrameBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|frame| frame.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

pub use crate::service::parse_json_body;

/// A Kinesis request without a body is not read as `{}`: Smithy asks that only of operations
/// without input, and Kinesis has none. AWS answers a bare SerializationException, with no
/// message, in JSON and CBOR alike.
fn empty_kinesis_body() -> ServiceError {
    ServiceError::sender("SerializationException", "")
}

/// An action SQS does not serve here, in its query endpoint's words.
fn sqs_invalid_action(action: &str) -> ServiceError {
    ServiceError::sender(
        "InvalidAction",
        format!("The action {action} is not valid for this endpoint."),
    )
}

fn unknown_operation(target: &str) -> ServiceError {
    ServiceError::sender(
        "UnknownOperationException",
        format!("Unknown operation {target}"),
    )
    .with_query_code("InvalidAction")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A response with the request id header every AWS response carries.
fn respond(
    status: StatusCode,
    content_type: &str,
    body: Vec<u8>,
    request_id: &str,
) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// Renders `err` in the shape of `wire`.
fn error_response(wire: Wire, err: &ServiceError, request_id: &str) -> Response<Body> {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    match wire {
        Wire::Query(ns) => {
            let xml = query::render_error(ns, ns == SQS_NAMESPACE, err, request_id);
            respond(status, "text/xml", xml.into_bytes(), request_id)
        }
        Wire::SqsJson => {
            // SQS is "query-compatible": SDKs read the legacy code from this header.
            let code = err.code.as_ref();
            let type_ = match code {
                "UnknownOperationException" => format!("com.amazon.coral.service#{code}"),
                // Codes outside the model's error shapes, which AWS types by their Coral
                // exception names (the legacy code is in the header).
                "InvalidParameterValue" => {
                    "com.amazonaws.sqs#InvalidParameterValueException".into()
                }
                "MissingParameter" => "com.amazonaws.sqs#MissingRequiredParameterException".into(),
                _ => format!("com.amazonaws.sqs#{code}"),
            };
            let body = json!({"__type": type_, "message": err.message}).to_string();
            let mut resp = respond(
                status,
                "application/x-amz-json-1.0",
                body.into_bytes(),
                request_id,
            );
            let fault = if err.fault == Fault::Sender {
                "Sender"
            } else {
                "Receiver"
            };
            if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", err.query_code)) {
                resp.headers_mut().insert("x-amzn-query-error", v);
            }
            resp
        }
        Wire::KinesisJson => {
            let body = kinesis_error_doc(err).to_string();
            let mut resp = respond(
                status,
                "application/x-amz-json-1.1",
                body.into_bytes(),
                request_id,
            );
            if let Ok(v) = HeaderValue::from_str(&err.code) {
                resp.headers_mut().insert("x-amzn-errortype", v);
            }
            resp
        }
        Wire::KinesisCbor => {
            let doc = kinesis_error_doc(err);
            let mut resp = respond(
                status,
                "application/x-amz-cbor-1.1",
                cbor::encode(None, &doc),
                request_id,
            );
            if let Ok(v) = HeaderValue::from_str(&err.code) {
                resp.headers_mut().insert("x-amzn-errortype", v);
            }
            resp
        }
    }
}

/// `{"__type", "message"}`; AWS leaves the message out where it has none to give.
fn kinesis_error_doc(err: &ServiceError) -> Value {
    let mut doc = json!({"__type": err.code});
    if !err.message.is_empty() {
        doc["message"] = json!(err.message);
    }
    doc
}

/// Runs every request parser on `data` the way a request would reach it: the first byte picks
/// the parser (mod 5: JSON, CBOR, SQS query, SNS query, event-stream frames) and, for the query
/// protocol, the operation whose input shape drives it. For the fuzz targets in `fuzz/` and the
/// property test below; must never panic.
pub fn parse_any(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => {
            let _ = parse_json_body(rest);
        }
        1 => {
            let _ = cbor::decode(rest);
        }
        4 => {
            // Event-stream frames, and their payloads as the content type says.
            if let Ok(messages) = eventstream::decode_all(rest) {
                for m in messages {
                    match m.header(":content-type") {
                        Some(ct) if ct.contains("cbor") => {
                            let _ = cbor::decode(&m.payload);
                        }
                        _ => {
                            let _ = parse_json_body(&m.payload);
                        }
                    }
                }
            }
        }
        _ => {
            let svc = if selector % 5 == 2 {
                ServiceName::Sqs
            } else {
                ServiceName::Sns
            };
            let m = model(svc);
            let ops: Vec<&str> = m.operation_names().collect();
            let op = ops[usize::from(selector / 5) % ops.len()];
            let mut params = query::Params::new();
            if query::parse_form(rest, &mut params).is_ok() {
                let _ = query::input_document(m, op, &params);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            parse_any(&data);
        }

        #[test]
        fn query_forms_of_any_shape_never_panic(
            selector in any::<u8>(),
            pairs in proptest::collection::vec(("[A-Za-z.0-9]{1,40}", "[ -~]{0,20}"), 0..30),
        ) {
            let form: String = pairs.iter().map(|(k, v)| format!("{k}={v}&")).collect();
            // Selectors 2 and 3 (mod 5) are the query parsers.
            let mut data = vec![selector % 50 * 5 + 2 + (selector & 1)];
            data.extend_from_slice(form.as_bytes());
            parse_any(&data);
        }
    }

    #[test]
    fn event_stream_frames_reach_the_fuzz_entry() {
        let mut data = vec![4u8];
        data.extend(eventstream::encode(
            &[(":content-type", "application/json")],
            b"{\"a\":1}",
        ));
        data.extend(eventstream::encode(
            &[(":content-type", "application/x-amz-cbor-1.1")],
            b"\xff",
        ));
        parse_any(&data);
        parse_any(&data[..data.len() - 3]);
    }

    #[test]
    fn stream_exceptions_are_those_the_model_lists() {
        assert!(subscribe_stream_member("SubscribeToShardEvent").is_some());
        for code in ["ResourceNotFoundException", "ResourceInUseException"] {
            assert_eq!(stream_exception_type(code), code);
        }
        for code in ["ServiceUnavailable", "SubscribeToShardEvent", "Records", ""] {
            assert_eq!(stream_exception_type(code), "InternalFailureException");
        }
    }

    #[test]
    fn queue_paths() {
        assert_eq!(queue_path("/000000000000/q1"), Some("/000000000000/q1"));
        assert_eq!(queue_path("/"), None);
        assert_eq!(queue_path("/a/b/c"), None);
        assert_eq!(queue_path("/_millpond/health"), None);
    }

    #[test]
    fn query_service_selection() {
        let p = query::Params::new();
        assert_eq!(
            query_service(Some("sns"), Some("ListQueues"), false, &p),
            QueryService::Sns
        );
        assert_eq!(
            query_service(None, Some("Publish"), false, &p),
            QueryService::Sns
        );
        assert_eq!(
            query_service(None, Some("SendMessage"), false, &p),
            QueryService::Sqs
        );
        assert_eq!(
            query_service(None, Some("GetCallerIdentity"), false, &p),
            QueryService::Sts
        );
        assert_eq!(
            query_service(None, Some("Publish"), true, &p),
            QueryService::Sqs
        );
        let mut p = query::Params::new();
        p.insert("TopicArn".into(), "arn".into());
        assert_eq!(
            query_service(None, Some("AddPermission"), false, &p),
            QueryService::Sns
        );
    }
}

#[cfg(test)]
mod action_tests {
    use super::*;

    /// A query-protocol response names its service and Action, for the request log (a JSON
    /// request's log line shows its X-Amz-Target instead).
    #[tokio::test]
    async fn query_responses_name_their_action() {
        // As with `--log-level debug`, for this (current-thread) test.
        let _debug = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(std::io::sink)
                .finish(),
        );
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::for_tests(dir.path());
        let sqs = Sqs::open(&config).unwrap();
        let services = Services {
            sns: Sns::open(&config, sqs.clone()).unwrap(),
            kinesis: Kinesis::open(&config).unwrap(),
            sqs,
            account_id: config.account_id.clone(),
            advertised_url: None,
            streams: Default::default(),
        };
        for (scope, form, named) in [
            ("sns", "Action=ListTopics", "SNS.ListTopics"),
            ("sqs", "Action=ListQueues", "SQS.ListQueues"),
            ("sns", "Action=NoSuchThing", "SNS.NoSuchThing"),
        ] {
            let req = Request::post("/")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(
                    "authorization",
                    format!("AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/{scope}/aws4_request, SignedHeaders=host, Signature=0"),
                )
                .body(Body::from(form))
                .unwrap();
            let resp = handle(&services, req, CallerGone::default()).await;
            let got = resp
                .extensions()
                .get::<QueryAction>()
                .map(|a| a.to_string());
            assert_eq!(got.as_deref(), Some(named), "{form}");
        }
    }
}
