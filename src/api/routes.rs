//! The endpoints. Each checks who is asking before it does anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use serde::Serialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::auth::{Denied, GithubSignature, check_bearer};
use super::{
    API_FORMAT_VERSION, ApiError, ApiResult, ApiState, MAX_BODY, MAX_WEBHOOK_BODY, NEXT_FIRES,
    Nudge, RECONCILE_WAIT, REQUEST_TIMEOUT, metrics, page,
};
use crate::scheduler::SpecDigest;
use crate::scheduler::state::{JobCounts, JobFilter, JobState};
use crate::spec::JobId;
use crate::spec::schedule::format_instant;
use crate::status::{Condition, Status};

type Shared = Arc<ApiState>;

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

/// The router, without the listener.
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
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here (reads are GET, actions are POST)".into(),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), loopback_host))
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

/// With no token on a loopback listener, a read of job content (`/`,
/// `/api/v1`) must name a loopback host: a web page that rebinds its own
/// name to 127.0.0.1 sends its own name, and is refused. The webhook (it is
/// signed) and the probes (no job content) are exempt, as they may come
/// through a proxy under another name.
async fn loopback_host(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let content = path == "/" || path.starts_with("/api/");
    if st.loopback_hosts_only && content {
        // Every Host header must pass (a request may carry several).
        for host in req.headers().get_all(header::HOST) {
            let host = host.to_str().unwrap_or("");
            let name = if host.starts_with('[') {
                host.split_inclusive(']').next().unwrap_or("")
            } else {
                host.split(':').next().unwrap_or("")
            };
            if !matches!(
                name.to_ascii_lowercase().as_str(),
                "localhost" | "127.0.0.1" | "[::1]"
            ) {
                return ApiError(
                    StatusCode::FORBIDDEN,
                    format!(
                        "host {host:?} refused: without an API token only localhost, 127.0.0.1 and [::1] are served"
                    ),
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

fn job_path(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(s)| s)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

async fn healthz(State(st): State<Shared>) -> ApiResult {
    let Some(sched) = st.scheduler.get() else {
        return Ok(Json(json!({ "status": "starting" })).into_response());
    };
    // Alive means the scheduler task answers, not just that a socket is open.
    let limit = std::time::Duration::from_secs(5);
    match tokio::time::timeout(limit, sched.state_of(JobFilter::None)).await {
        Ok(Ok(_)) => Ok(Json(json!({ "status": "ok" })).into_response()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the scheduler did not answer within 5s".into(),
        )),
    }
}

async fn readyz(State(st): State<Shared>) -> ApiResult {
    let view = st.view();
    match &view.status.applied_revision {
        Some(rev) => Ok(Json(json!({ "ready": true, "revision": rev })).into_response()),
        // Open to anyone: the kinds of the conditions, not their details.
        None => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ready": false,
                "error": "no revision applied yet; see /api/v1/status",
                "conditions": view.status.conditions.iter().map(Condition::kind).collect::<Vec<_>>(),
            })),
        )
            .into_response()),
    }
}

async fn metrics_handler(State(st): State<Shared>) -> ApiResult {
    let snap = st.snapshot().await?;
    let body = metrics::render(&snap.running, &snap.view, &snap.drift, &st.telemetry);
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response())
}

async fn status_page(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    // Job content only for whoever may read the API; counts and the drift
    // verdict for everyone.
    let detailed = allow_read(&st, &headers).is_ok();
    let snap = st.snapshot().await?;
    let html = page::render(&st.source, &snap.view, &snap.running, &snap.drift, detailed);
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

async fn status(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_read(&st, &headers)?;
    let s = st.scheduler()?.state_of(JobFilter::None).await?;
    let view = st.view();
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

/// What `/api/v1/state` answers.
#[derive(Serialize)]
struct StateBody<'a> {
    format_version: u32,
    status: &'a Status,
    running: &'a crate::scheduler::RunningState,
    /// The spec of each running job, flattened: what `drift --ref`
    /// compares with git field by field (digests are per build).
    specs: FlatSpecs<'a>,
}

/// The specs of the running jobs, flattened one job at a time as they are
/// written: the JSON of a [`FieldsById`](crate::drift::FieldsById),
/// without ever holding one. Built
/// whole, that map was a peak of small strings (over a million at
/// 50,000 jobs), which glibc kept until the handler trimmed the heap.
struct FlatSpecs<'a> {
    running: &'a crate::scheduler::RunningState,
    applied: &'a crate::reconcile::Jobs,
}

impl<'a> FlatSpecs<'a> {
    /// Each running job whose applied spec is the one it runs (an apply in
    /// between would make them differ), in id order: the snapshot's jobs
    /// are sorted by id, which orders as the strings a `FieldsById` is
    /// keyed by.
    fn each(&self) -> impl Iterator<Item = (&'a JobId, &'a crate::spec::JobSpec)> + use<'a> {
        let applied = self.applied;
        self.running.jobs.iter().filter_map(move |j| {
            let spec = applied.get(&j.id)?;
            (SpecDigest(crate::plan::spec_digest(spec)) == j.spec_digest)
                .then_some((&j.id, &**spec))
        })
    }
}

impl Serialize for FlatSpecs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        debug_assert!(
            self.running
                .jobs
                .is_sorted_by(|a, b| a.id.as_str() < b.id.as_str()),
            "the snapshot's jobs are in the byte order of their ids"
        );
        let mut map = s.serialize_map(None)?;
        for (id, spec) in self.each() {
            map.serialize_entry(id.as_str(), &crate::plan::fields(spec))?;
        }
        map.end()
    }
}

/// Everything `drift --ref` needs to compute drift on the caller's side.
async fn full_state(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_read(&st, &headers)?;
    let snap = st.snapshot().await?;
    // Flattening every spec is CPU work: off the async workers.
    let (view, running) = (snap.view.clone(), snap.running.clone());
    let body = tokio::task::spawn_blocking(move || {
        let body = serde_json::to_vec(&StateBody {
            format_version: API_FORMAT_VERSION,
            status: &view.status,
            running: &running,
            specs: FlatSpecs {
                running: &running,
                applied: &view.applied_jobs,
            },
        });
        // The largest answer, and a reader of it reads the others too,
        // whose freed small blocks glibc keeps: a 50,000-job daemon held
        // 15-19 MB more after repeated reads without this trim
        // (`bench/api_at_scale.py`).
        crate::memory::release_free_memory();
        body
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Serialize)]
struct JobsBody<'a> {
    format_version: u32,
    revision: &'a Option<String>,
    counts: &'a JobCounts,
    jobs: &'a [JobState],
}

async fn jobs(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_read(&st, &headers)?;
    let snap = st.snapshot().await?;
    let s = &snap.running;
    Ok(Json(JobsBody {
        format_version: API_FORMAT_VERSION,
        revision: &s.revision,
        counts: &s.job_counts,
        jobs: &s.jobs,
    })
    .into_response())
}

fn parse_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).map_err(|e| ApiError(StatusCode::NOT_FOUND, format!("no job {raw:?}: {e}")))
}

async fn job(
    State(st): State<Shared>,
    headers: HeaderMap,
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult {
    allow_read(&st, &headers)?;
    let rest = job_path(rest)?;
    let id = parse_id(&rest)?;
    let s = st.scheduler()?.state_of(JobFilter::One(id.clone())).await?;
    let Some(state) = s.jobs.into_iter().next() else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no job {:?} is running", id.as_str()),
        ));
    };
    let view = st.view();
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
    rest: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let rest = job_path(rest)?;
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
    let sched = st.scheduler()?;
    let body = match action {
        "trigger" => json!({ "job": id.as_str(), "run_id": sched.trigger(&id).await? }),
        "suspend" => {
            sched.suspend(&id).await?;
            json!({ "job": id.as_str(), "suspended": true })
        }
        _ => {
            sched.resume(&id).await?;
            json!({ "job": id.as_str(), "suspended": false })
        }
    };
    st.invalidate().await;
    tracing::info!(job = %id, action, "job action through the API");
    Ok(Json(body).into_response())
}

async fn drift_handler(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_read(&st, &headers)?;
    let snap = st.snapshot().await?;
    Ok(Json(&*snap.drift).into_response())
}

async fn reconcile(State(st): State<Shared>, headers: HeaderMap) -> ApiResult {
    allow_write(&st, &headers)?;
    let give_up = tokio::time::Instant::now() + RECONCILE_WAIT;
    let (reply, done) = oneshot::channel();
    let nudge = Nudge {
        reason: "api",
        reply: Some(reply),
    };
    let pending = || {
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "outcome": "pending",
                "message": "the reconcile has not finished yet; see /api/v1/status"
            })),
        )
            .into_response())
    };
    match tokio::time::timeout_at(give_up, st.nudges.send(nudge)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the daemon is shutting down".into(),
            ));
        }
        Err(_) => return pending(),
    }
    let result = tokio::time::timeout_at(give_up, done).await;
    st.invalidate().await;
    match result {
        Ok(Ok(done)) => Ok(Json(done).into_response()),
        Ok(Err(_)) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down".into(),
        )),
        Err(_) => pending(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::FieldsById;
    use crate::scheduler::state::JobState;
    use crate::test_support::{job_state, running, specs};

    /// Streamed, the specs are the JSON the map of every job's fields was:
    /// the same jobs (a job running another spec left out), in the same
    /// order, with the same fields.
    #[test]
    fn flat_specs_are_written_as_the_map_was() {
        let files = [
            (
                "b/x.toml",
                "schedule = \"@daily\"\ncommand = [\"true\"]\nlabels = { team = \"b\" }\n",
            ),
            (
                "a.toml",
                "schedule = \"@hourly\"\nshell = \"echo hi\"\nenv = { K = \"v\" }\n",
            ),
            ("a-b.toml", "schedule = \"@daily\"\ncommand = [\"true\"]\n"),
            // Byte order puts `a-b` before `a/x`; a segment order would not.
            ("a/x.toml", "schedule = \"@daily\"\ncommand = [\"true\"]\n"),
            (
                "stale.toml",
                "schedule = \"@daily\"\ncommand = [\"true\"]\n",
            ),
        ];
        let applied: crate::reconcile::Jobs = Arc::new(specs(&files));
        let mut jobs: Vec<JobState> = applied
            .iter()
            .map(|(id, spec)| job_state(id.as_str(), spec))
            .collect();
        // This one runs a spec that is no longer the applied one.
        jobs.iter_mut()
            .find(|j| j.id.as_str() == "stale")
            .unwrap()
            .spec_digest = SpecDigest(1);
        jobs.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let running = running(jobs, vec![], "r");
        let map: FieldsById = applied
            .iter()
            .filter(|(id, _)| id.as_str() != "stale")
            .map(|(id, spec)| (id.to_string(), crate::plan::fields(spec)))
            .collect();
        let streamed = serde_json::to_string(&FlatSpecs {
            running: &running,
            applied: &applied,
        })
        .unwrap();
        assert_eq!(streamed, serde_json::to_string(&map).unwrap());
        assert!(streamed.contains("\"a\":") && streamed.contains("\"b/x\":"));
        assert!(!streamed.contains("stale"));
        // Read back as `drift --ref` reads it.
        let back: FieldsById = serde_json::from_str(&streamed).unwrap();
        assert_eq!(back, map);
    }
}
