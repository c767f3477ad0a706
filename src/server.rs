//! The server: binds the port, opens the services, routes `/_millpond/` itself and every other
//! request to [`crate::protocol`], and shuts down gracefully (stop accepting, finish in-flight
//! requests, flush the logs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::context::CallerGone;
use crate::error::ServiceError;
use crate::kinesis::Kinesis;
use crate::protocol::{self, Services};
use crate::sns::delivery::OutboxFilter;
use crate::sns::Sns;
use crate::sqs::Sqs;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open {service}: {source}")]
    Service {
        service: &'static str,
        source: ServiceError,
    },
}

struct App {
    services: Services,
    config: Config,
}

/// A running broker. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    pub local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    app: Arc<App>,
}

/// mimalloc's `purge_delay` option (its index in `mimalloc.h`'s `mi_option_e`; the sys
/// crate exports no name for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tunes mimalloc for the broker; call first thing in a process whose global allocator is
/// mimalloc. By default mimalloc hands freed pages back to the OS 10 ms after they empty, and
/// the request path (buffers built and dropped on different worker threads) then faults the
/// same pages in again: 10x the page faults and ~10% of a SendMessage's CPU
/// (`cargo bench --bench server`). One second keeps the steady state warm; idle memory still
/// goes back, and start-up calls `mi_collect` anyway.
pub fn tune_allocator() {
    // SAFETY: setting an option only stores an integer in mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
}

/// Raises this process's soft limit on open files to its hard limit. Every queue and every
/// Kinesis shard is a log holding its active segment open, and a stream may have thousands
/// of shards (AWS's default quota is 20,000 per account in the large regions); the common
/// soft limit of 1,024 would fail such a stream's logs part way. Best effort: where the call
/// fails, the limit stays as it was.
pub fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both calls only read or write the `rlimit` struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Opens every service under `config.data_dir`, binds `config.listen` and starts serving.
pub async fn start(config: Config) -> Result<Server, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let svc = |service| move |source| StartError::Service { service, source };
    let sqs = Sqs::open(&config).map_err(svc("sqs"))?;
    let sns = Sns::open(&config, sqs.clone()).map_err(svc("sns"))?;
    let kinesis = Kinesis::open(&config).map_err(svc("kinesis"))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let app = Arc::new(App {
        services: Services {
            sqs,
            sns,
            kinesis,
            account_id: config.account_id.clone(),
            advertised_url: config.advertised_url.as_ref().map(|u| u.0.clone()),
            streams: Default::default(),
        },
        config,
    });
    let router = Router::new()
        .route("/_millpond/health", get(health))
        .route("/_millpond/reset", post(reset))
        .route("/moto-api/reset", post(reset))
        .route("/_millpond/sns/outbox", get(outbox).delete(clear_outbox))
        .route(
            "/_millpond/sns/SimpleNotificationService.pem",
            get(signing_cert),
        )
        .fallback(aws)
        .with_state(app.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Server {
        local_addr,
        stop: Some(stop),
        task,
        app,
    })
}

impl Server {
    /// Stops accepting, ends open event streams, waits for in-flight requests, then flushes every
    /// log.
    pub async fn shutdown(mut self) -> Result<(), ServiceError> {
        self.app.services.streams.close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        let s = &self.app.services;
        s.sqs.flush()?;
        s.sns.flush()?;
        s.kinesis.flush()
    }
}

/// Serves until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    serve_until_signal(start(config).await?).await
}

/// The second half of [`run`], for a server already started.
pub async fn serve_until_signal(server: Server) -> Result<(), Box<dyn std::error::Error>> {
    let stop = shutdown_signal();
    // Tests and scripts wait for this line to learn the port.
    println!("millpond listening on http://{}", server.local_addr);
    tracing::info!(addr = %server.local_addr, "listening");
    stop.await;
    tracing::info!("shutting down");
    server.shutdown().await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when it
/// is first polled, so a signal sent right after the listening line is not lost (the default
/// action would kill the process without a flush).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let int = signal(SignalKind::interrupt()).ok();
        let term = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! { _ = wait(int) => {}, _ = wait(term) => {} }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn with_request_id(mut resp: Response<Body>) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    with_request_id(resp)
}

async fn health(State(app): State<Arc<App>>) -> Response<Body> {
    json_response(
        StatusCode::OK,
        json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "services": {"sqs": "running", "sns": "running", "kinesis": "running"},
            "data_dir": app.config.data_dir.display().to_string(),
        }),
    )
}

/// Wipes every resource of every service, durably, for test suites that start each test clean.
async fn reset(State(app): State<Arc<App>>) -> Response<Body> {
    let s = &app.services;
    // SNS first: it delivers into SQS.
    let result = async {
        s.sns.reset().await?;
        s.sqs.reset().await?;
        s.kinesis.reset().await
    }
    .await;
    match result {
        Ok(()) => json_response(StatusCode::OK, json!({"reset": true})),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"reset": false, "error": e.to_string()}),
        ),
    }
}

/// `?subscription_arn=&endpoint=&topic_arn=&protocol=`: which outbox entries to read or clear.
#[derive(serde::Deserialize)]
struct OutboxQuery {
    subscription_arn: Option<String>,
    endpoint: Option<String>,
    topic_arn: Option<String>,
    protocol: Option<String>,
}

impl From<OutboxQuery> for OutboxFilter {
    fn from(q: OutboxQuery) -> Self {
        OutboxFilter {
            subscription_arn: q.subscription_arn,
            endpoint: q.endpoint,
            topic_arn: q.topic_arn,
            protocol: q.protocol,
        }
    }
}

/// Deliveries to endpoints millpond cannot reach (email, sms, application, lambda, firehose).
async fn outbox(State(app): State<Arc<App>>, Query(q): Query<OutboxQuery>) -> Response<Body> {
    let deliveries = app.services.sns.outbox(&q.into());
    json_response(StatusCode::OK, json!({ "deliveries": deliveries }))
}

async fn clear_outbox(State(app): State<Arc<App>>, Query(q): Query<OutboxQuery>) -> Response<Body> {
    match app.services.sns.clear_outbox(&q.into()).await {
        Ok(n) => json_response(StatusCode::OK, json!({ "cleared": n })),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": e.to_string() }),
        ),
    }
}

/// The certificate notifications are signed with: each notification's `SigningCertURL`.
async fn signing_cert(State(app): State<Arc<App>>) -> Response<Body> {
    let mut resp = Response::new(Body::from(app.services.sns.signing_cert_pem()));
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-pem-file"),
    );
    with_request_id(resp)
}

async fn aws(State(app): State<Arc<App>>, req: Request<Body>) -> Response<Body> {
    let caller_gone = CallerGone::default();
    RunToEnd {
        fut: Some(Box::pin(handle_logged(app, req, caller_gone.clone()))),
        caller_gone,
    }
    .await
}

/// A request's handler, polled in place, that runs to its end even if the client goes away.
///
/// Why: when a client leaves mid-request, hyper drops the request's future. Dropped there, a
/// write already in the log would never be applied in memory (a message sent, durable, and
/// invisible until a restart; a FIFO retry deduplicated against it). So on drop the rest of the
/// handler moves to a task of its own, and the caller is marked gone, which only stops waiting
/// (a long poll). Polling in place, not spawning every request, keeps the common path free of a
/// task hand-off (~1 µs a request, 3% of SendMessage's throughput when measured).
struct RunToEnd<F: std::future::Future<Output = Response<Body>> + Send + 'static> {
    fut: Option<std::pin::Pin<Box<F>>>,
    caller_gone: CallerGone,
}

impl<F: std::future::Future<Output = Response<Body>> + Send + 'static> std::future::Future
    for RunToEnd<F>
{
    type Output = Response<Body>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Response<Body>> {
        let Some(fut) = self.fut.as_mut() else {
            return std::task::Poll::Pending;
        };
        let out = fut.as_mut().poll(cx);
        if out.is_ready() {
            self.fut = None;
        }
        out
    }
}

impl<F: std::future::Future<Output = Response<Body>> + Send + 'static> Drop for RunToEnd<F> {
    fn drop(&mut self) {
        // A handler that panicked while polled here must not be polled again.
        if std::thread::panicking() {
            return;
        }
        if let Some(fut) = self.fut.take() {
            self.caller_gone.set();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(fut);
            }
        }
    }
}

async fn handle_logged(
    app: Arc<App>,
    req: Request<Body>,
    caller_gone: CallerGone,
) -> Response<Body> {
    // The per-request trace copies the path and target: only pay for it when it is printed.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return protocol::handle(&app.services, req, caller_gone).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let resp = protocol::handle(&app.services, req, caller_gone).await;
    let target = target.or_else(|| {
        resp.extensions()
            .get::<protocol::QueryAction>()
            .map(|a| a.to_string())
    });
    tracing::debug!(
        %method, %path, target = target.as_deref().unwrap_or("-"),
        status = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}
