//! The daemon's HTTP API (axum): health, metrics, status, jobs, drift, the
//! mutating job actions, the git push webhook, and a small status page.
//!
//! Reads are open on loopback when no token is configured (and then only
//! for requests that name a loopback host, so a web page cannot read them
//! through DNS rebinding); once a token is configured every `/api/v1` call
//! needs it. Mutations always need it, so with no token they are disabled
//! (403). `/healthz`, `/readyz` and `/metrics` are always open and carry no
//! job content.
//!
//! Bounded by construction: at most [`MAX_CONNECTIONS`] connections, each
//! request within [`REQUEST_TIMEOUT`], headers within
//! [`HEADER_READ_TIMEOUT`], bodies within [`MAX_BODY`] (the webhook's within
//! [`MAX_WEBHOOK_BODY`], hashed as it streams, never held whole). However
//! many requests arrive, the scheduler builds at most one full snapshot per
//! [`SNAPSHOT_TTL`] for them (see [`ApiState::snapshot`]).

mod auth;
pub mod metrics;
mod page;
mod routes;
mod server;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

pub use auth::{Denied, GithubSignature, Secret, check_bearer, github_signature};
pub use metrics::Telemetry;
pub use routes::router;
pub use server::{is_loopback, serve};

use crate::drift::{self, DriftInput, DriftReport, RunningSpecs, SourceOrigin};
use crate::reconcile::View;
use crate::scheduler::state::JobFilter;
use crate::scheduler::{RunningState, Scheduler, SchedulerError};
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
/// How long `POST /api/v1/reconcile` waits, queueing and reconciling
/// together, before it answers 202.
pub const RECONCILE_WAIT: Duration = Duration::from_secs(20);
/// Reconcile requests waiting for the daemon loop; a webhook finding it
/// full is fine (a reconcile is already due).
pub const NUDGE_QUEUE: usize = 8;
/// Fire times shown for one job.
pub const NEXT_FIRES: usize = 10;
/// The version of the JSON documents of `/api/v1`.
pub const API_FORMAT_VERSION: u32 = 1;
/// How old a full snapshot (every job, and the drift computed from it) may
/// be when served again. Building one takes the scheduler's own task (about
/// a millisecond per thousand jobs), so a burst of scrapes or page loads
/// must not build one each. Any change made through the API, and every
/// reconcile, makes the next request build a fresh one.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

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

/// A full snapshot, shared by the requests that arrive within its TTL.
#[derive(Clone)]
pub struct Snapshot {
    taken: Instant,
    pub view: Arc<View>,
    pub running: Arc<RunningState>,
    pub drift: Arc<DriftReport>,
}

/// Everything the handlers share.
pub struct ApiState {
    /// Set once the scheduler exists (after the first read of the source);
    /// until then the API answers that the daemon is starting.
    scheduler: OnceLock<Arc<Scheduler>>,
    view: watch::Receiver<Arc<View>>,
    nudges: mpsc::Sender<Nudge>,
    token: Option<Secret>,
    webhook_secret: Option<Secret>,
    telemetry: Telemetry,
    /// The source, described for people.
    source: String,
    /// Accept only loopback `Host` headers (no token, loopback listener).
    loopback_hosts_only: bool,
    /// The last full snapshot; the lock makes concurrent requests wait for
    /// one snapshot instead of each asking the scheduler for its own.
    cache: Mutex<Option<Snapshot>>,
}

/// How the API is set up.
pub struct ApiConfig {
    pub view: watch::Receiver<Arc<View>>,
    pub nudges: mpsc::Sender<Nudge>,
    pub token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub telemetry: Telemetry,
    pub source: String,
    /// Whether the listener is on a loopback address.
    pub loopback: bool,
}

impl ApiState {
    pub fn new(c: ApiConfig) -> Arc<ApiState> {
        Arc::new(ApiState {
            scheduler: OnceLock::new(),
            view: c.view,
            nudges: c.nudges,
            loopback_hosts_only: c.loopback && c.token.is_none(),
            token: c.token,
            webhook_secret: c.webhook_secret,
            telemetry: c.telemetry,
            source: c.source,
            cache: Mutex::new(None),
        })
    }

    /// Hands the scheduler to the API once it runs.
    pub fn set_scheduler(&self, s: Arc<Scheduler>) {
        let _ = self.scheduler.set(s);
    }

    fn scheduler(&self) -> Result<&Arc<Scheduler>, ApiError> {
        self.scheduler.get().ok_or_else(|| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: the source is being read for the first time".into(),
            )
        })
    }

    fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// Forgets the cached snapshot (after a change made through the API).
    async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    /// Every job's state with the view it belongs to and the drift between
    /// them, at most [`SNAPSHOT_TTL`] old and never older than the last
    /// reconcile.
    async fn snapshot(&self) -> Result<Snapshot, ApiError> {
        let mut cache = self.cache.lock().await;
        let current = self.view();
        if let Some(s) = cache.as_ref()
            && s.taken.elapsed() < SNAPSHOT_TTL
            && Arc::ptr_eq(&s.view, &current)
        {
            return Ok(s.clone());
        }
        let sched = self.scheduler()?;
        // The scheduler and the view are two things: between an apply and
        // the view's update they disagree on the revision, and drift read
        // then would be wrong. Read both until they agree (briefly).
        let mut tries = 0;
        let (view, running) = loop {
            let view = self.view();
            let running = sched.state_of(JobFilter::All).await?;
            tries += 1;
            if running.revision == view.status.applied_revision || tries == 20 {
                break (view, running);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let drift = daemon_drift(&view, &running, Utc::now());
        let s = Snapshot {
            taken: Instant::now(),
            view,
            running: Arc::new(running),
            drift: Arc::new(drift),
        };
        *cache = Some(s.clone());
        Ok(s)
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
        running_specs: RunningSpecs::Specs(&view.applied_jobs),
        running,
        status: &view.status,
        origin: SourceOrigin::Daemon,
        now,
    })
}

/// An error response: a status and a JSON body with a message.
pub(crate) struct ApiError(StatusCode, String);

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
