//! The daemon's HTTP API (axum): health, metrics, status, jobs, drift, the
//! mutating job actions, and the git push webhook.
//!
//! Reads are open on loopback when no token is configured; once a token is
//! configured every `/api/v1` call needs it. Mutations always need it, so
//! with no token they are disabled (403). `/healthz`, `/readyz` and
//! `/metrics` are always open (they carry no job content).
//!
//! Bounded by construction: at most [`MAX_CONNECTIONS`] connections, each
//! request within [`REQUEST_TIMEOUT`], headers within
//! [`HEADER_READ_TIMEOUT`], bodies within [`MAX_BODY`] (the webhook's within
//! [`MAX_WEBHOOK_BODY`], hashed as it streams, never held whole).

mod auth;
pub mod metrics;
mod page;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt as _;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use auth::{Denied, GithubSignature, Secret, check_bearer, github_signature};
pub use metrics::Telemetry;

use crate::drift::{self, DriftInput, DriftReport, SourceOrigin};
use crate::reconcile::View;
use crate::scheduler::state::JobFilter;
use crate::scheduler::{RunningState, Scheduler, SchedulerError};
use crate::spec::JobId;
use crate::spec::schedule::format_instant;
use crate::status::Status;

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// A request (handler included) that takes longer is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that has not sent its headers by then is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Request bodies of the API (none of its calls needs one).
pub const MAX_BODY: usize = 64 * 1024;
/// GitHub's own limit on webhook payloads.
pub const MAX_WEBHOOK_BODY: usize = 25 * 1024 * 1024;
/// How long `POST /api/v1/reconcile` waits for the reconcile it asked for.
pub const RECONCILE_WAIT: Duration = Duration::from_secs(20);
/// Reconcile requests waiting for the daemon loop; a webhook finding it
/// full is fine (a reconcile is already due).
pub const NUDGE_QUEUE: usize = 8;
/// Fire times shown for one job.
pub const NEXT_FIRES: usize = 10;
/// The version of the JSON documents of `/api/v1`.
pub const API_FORMAT_VERSION: u32 = 1;

/// What a reconcile request gets back.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileDone {
    /// `applied`, `unchanged`, `stalled`, `fetch_failed` or `stopped`.
    pub outcome: &'static str,
    /// One line for people.
    pub message: String,
    pub status: Status,
}

/// A request for the daemon loop to reconcile now.
#[derive(Debug)]
pub struct Nudge {
    /// Who asked (logged).
    pub reason: &'static str,
    /// Where to send the result, if anyone waits for it.
    pub reply: Option<oneshot::Sender<ReconcileDone>>,
}

/// Everything the handlers share.
pub struct ApiState {
    pub scheduler: Arc<Scheduler>,
    pub view: watch::Receiver<Arc<View>>,
    pub nudges: mpsc::Sender<Nudge>,
    pub token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub telemetry: Telemetry,
    /// The source, described for people.
    pub source: String,
}

type Shared = Arc<ApiState>;

/// An error response: a status and a JSON body with a message.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        }
        r
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        let code = match d {
            Denied::Disabled | Denied::WebhookDisabled => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError(code, d.to_string())
    }
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::UnknownJob(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            SchedulerError::Stopped => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

fn authorization(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())
}

/// Reads need the token only when one is configured.
fn allow_read(st: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    match &st.token {
        None => Ok(()),
        Some(t) => Ok(check_bearer(Some(t), authorization(headers))?),
    }
}

fn allow_write(st: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    Ok(check_bearer(st.token.as_ref(), authorization(headers))?)
}

/// The router, without the listener (tests and `serve` share it).
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/status", get(status))
        .route("/api/v1/state", get(full_state))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{*rest}", get(job).post(job_action))
        .route("/api/v1/drift", get(drift_handler))
        .route("/api/v1/reconcile", post(reconcile))
        .route("/hooks/git", post(webhook))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(deadline))
        .with_state(state)
}

async fn deadline(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "request timed out".into()).into_response()
        }
    }
}

async fn healthz(State(st): State<Shared>) -> ApiResult {
    // Alive means the scheduler task answers, not just that a socket is open.
    match tokio::time::timeout(
        Duration::from_secs(5),
        st.scheduler.state_of(JobFilter::None),
    )
    .await
    {
        Ok(Ok(_)) => Ok(Json(json!({ "status": "ok" })).into_response()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the scheduler did not answer within 5s".into(),
        )),
    }
}

async fn readyz(State(st): State<Shared>) -> ApiResult {
    let view = st.view.borrow().clone();
    match &view.status.applied_revision {
        Some(rev) => Ok(Json(json!({ "ready": true, "revision": rev })).into_response()),
        None => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ready": false,
                "error": "no revision applied yet",
                "conditions": view.status.conditions,
            })),
        )
            .into_response()),
    }
}

/// The drift of the daemon against its own source head.
pub fn daemon_drift(view: &View, running: &RunningState, now: DateTime<Utc>) -> DriftReport {
    // An invalid head has no jobs to compare with: compare with what was
    // applied, and let `stale` carry the diagnostics.
    let desired = view.observed_jobs.as_ref().unwrap_or(&view.applied_jobs);
    drift::compute(&DriftInput {
        desired,
        source_revision: view.status.observed_revision.as_deref(),
        running_specs: Some(&view.applied_jobs),
        running,
        status: &view.status,
        origin: SourceOrigin::Daemon,
        now,
    })
}

async fn metrics_handler(State(st): State<Shared>) -> ApiResult {
    let running = st.scheduler.state().await?;
    let view = st.view.borrow().clone();
    let drift = daemon_drift(&view, &running, Utc::now());
    let body = metrics::render(running, (*view).clone(), drift, &st.telemetry);
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response())
}

async fn status_page(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    // Job content only for whoever may read the API; the drift verdict
    // and the counts for everyone.
    let detailed = allow_read(&st, &headers).is_ok();
    let running = st.scheduler.state().await?;
    let view = st.view.borrow().clone();
    let drift = daemon_drift(&view, &running, Utc::now());
    let html = page::render(&st.source, &view, &running, &drift, detailed);
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

async fn status(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_read(&st, &headers)?;
    let s = st.scheduler.state_of(JobFilter::None).await?;
    let view = st.view.borrow().clone();
    Ok(Json(json!({
        "format_version": API_FORMAT_VERSION,
        "source": st.source,
        "observed_revision": view.status.observed_revision,
        "applied_revision": view.status.applied_revision,
        "last_attempt": view.status.last_attempt,
        "last_successful_fetch": view.last_fetch_ok,
        "conditions": view.status.conditions,
        "jobs": s.job_counts,
        "running": s.running,
        "max_running": s.max_running,
        "queued": s.queued,
        "max_queued": s.max_queued,
        "leaked": s.leaked,
        "counters": s.counters,
        "audit": s.audit,
    }))
    .into_response())
}

/// Everything `drift --ref` needs to compute drift on the caller's side.
async fn full_state(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_read(&st, &headers)?;
    let running = st.scheduler.state().await?;
    let view = st.view.borrow().clone();
    Ok(Json(json!({
        "format_version": API_FORMAT_VERSION,
        "status": view.status,
        "running": running,
    }))
    .into_response())
}

async fn jobs(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_read(&st, &headers)?;
    let s = st.scheduler.state().await?;
    Ok(Json(json!({
        "format_version": API_FORMAT_VERSION,
        "revision": s.revision,
        "counts": s.job_counts,
        "jobs": s.jobs,
    }))
    .into_response())
}

fn parse_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).map_err(|e| ApiError(StatusCode::NOT_FOUND, format!("no job {raw:?}: {e}")))
}

async fn job(State(st): State<Shared>, headers: HeaderMap, Path(rest): Path<String>) -> ApiResult {
    allow_read(&st, &headers)?;
    let id = parse_id(&rest)?;
    let s = st.scheduler.state_of(JobFilter::One(id.clone())).await?;
    let Some(state) = s.jobs.into_iter().next() else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no job {:?} is running", id.as_str()),
        ));
    };
    let view = st.view.borrow().clone();
    let spec = view.applied_jobs.get(&id);
    let fields: BTreeMap<String, String> = spec
        .map(|s| crate::plan::fields(s).into_iter().collect())
        .unwrap_or_default();
    let next: Vec<serde_json::Value> = spec
        .map(|sp| {
            sp.schedule
                .upcoming(s.now, NEXT_FIRES)
                .into_iter()
                .map(|t| json!({ "utc": t, "local": format_instant(t, sp.schedule.tz) }))
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({
        "format_version": API_FORMAT_VERSION,
        "id": id.as_str(),
        "digest": state.spec_digest,
        "spec": fields,
        "next_fires": next,
        "state": state,
    }))
    .into_response())
}

async fn job_action(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(rest): Path<String>,
) -> ApiResult {
    let Some((raw, action)) = rest.rsplit_once('/') else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "use POST /api/v1/jobs/{id}/trigger, /suspend or /resume".into(),
        ));
    };
    if !matches!(action, "trigger" | "suspend" | "resume") {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown action {action:?}: use trigger, suspend or resume"),
        ));
    }
    allow_write(&st, &headers)?;
    let id = parse_id(raw)?;
    let body = match action {
        "trigger" => json!({ "job": id.as_str(), "run_id": st.scheduler.trigger(&id).await? }),
        "suspend" => {
            st.scheduler.suspend(&id).await?;
            json!({ "job": id.as_str(), "suspended": true })
        }
        _ => {
            st.scheduler.resume(&id).await?;
            json!({ "job": id.as_str(), "suspended": false })
        }
    };
    tracing::info!(job = %id, action, "job action through the API");
    Ok(Json(body).into_response())
}

async fn drift_handler(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_read(&st, &headers)?;
    let running = st.scheduler.state().await?;
    let view = st.view.borrow().clone();
    Ok(Json(daemon_drift(&view, &running, Utc::now())).into_response())
}

async fn reconcile(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_write(&st, &headers)?;
    let (reply, done) = oneshot::channel();
    let nudge = Nudge {
        reason: "api",
        reply: Some(reply),
    };
    let sent = tokio::time::timeout(RECONCILE_WAIT, st.nudges.send(nudge)).await;
    if !matches!(sent, Ok(Ok(()))) {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is not taking reconcile requests (busy or shutting down)".into(),
        ));
    }
    match tokio::time::timeout(RECONCILE_WAIT, done).await {
        Ok(Ok(done)) => Ok(Json(done).into_response()),
        Ok(Err(_)) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down".into(),
        )),
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "outcome": "pending", "message": "the reconcile is still running; see /api/v1/status" })),
        )
            .into_response()),
    }
}

/// `POST /hooks/git`: verified, then a nudge to fetch now. The payload is
/// never read for content: the source is fetched as usual.
async fn webhook(State(st): State<Shared>, headers: HeaderMap, body: Body) -> ApiResult {
    let secret = st.webhook_secret.as_ref().ok_or(Denied::WebhookDisabled)?;
    // Refused before a byte is read when the sender says it is too big.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_WEBHOOK_BODY as u64) {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("webhook body over {MAX_WEBHOOK_BODY} bytes"),
        ));
    }
    if let Some(sig) = headers.get("x-hub-signature-256") {
        let mut check = GithubSignature::start(secret, sig.as_bytes())?;
        // Limited by hand: `DefaultBodyLimit` does not apply to a raw body.
        let mut body = http_body_util::Limited::new(body, MAX_WEBHOOK_BODY);
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(data) = f.data_ref() {
                        check.update(data);
                    }
                }
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(ApiError(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("webhook body over {MAX_WEBHOOK_BODY} bytes"),
                    ));
                }
                Err(e) => {
                    return Err(ApiError(
                        StatusCode::BAD_REQUEST,
                        format!("reading the body failed: {e}"),
                    ));
                }
            }
        }
        check.finish()?;
    } else if let Some(token) = headers.get("x-gitlab-token") {
        if !secret.matches(token.as_bytes()) {
            return Err(Denied::BadSignature.into());
        }
    } else {
        return Err(Denied::Unsigned.into());
    }
    let queued = st
        .nudges
        .try_send(Nudge {
            reason: "webhook",
            reply: None,
        })
        .is_ok();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": true, "queued": queued })),
    )
        .into_response())
}

/// Whether an address is loopback (the only kind served without a token
/// unless the operator says `--insecure`).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Serves `router` on `listener` until `stop` is cancelled; then lets
/// requests in flight finish for up to `grace`. Every connection is a task
/// in one owned set, at most [`MAX_CONNECTIONS`] at a time.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    grace: Duration,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.cancelled() => break,
        };
        let (stream, _peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        conns.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Reap finished connections so the set holds only live ones.
        while conns.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
}
