//! Runs one execution: a child process in its own process group, or an
//! HTTP request. Owns nothing beyond the run: it gets a spec and the
//! state it shares with the scheduler (pid, grace, cancellation), and
//! returns an outcome.
//!
//! Termination is always of the whole process group: timeout or cancel →
//! SIGTERM to the group → SIGKILL after the grace. When the leader exits on
//! its own, whatever it left behind in its group is killed too, so a run's
//! processes never outlive it.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};

use crate::spec::job::{Executor, ExpectStatus, HttpSpec};
use crate::spec::{JobId, JobSpec};

/// How long output is still read after the process group is gone: a
/// process that escaped the group (setsid) may hold the pipe open, and
/// must not hold the execution.
const OUTPUT_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Read buffer for child output.
const READ_CHUNK: usize = 8 * 1024;

/// How long an `[http]` job may take to connect: name resolution, TCP and
/// TLS together. A job's `timeout` bounds its whole request, but with
/// `timeout = "none"` nothing else would bound the connect: the kernel
/// gives up on a blackholed address (SYNs silently dropped) only after
/// about two minutes of SYN retries, and a peer that accepts but never
/// completes the TLS handshake holds the run for ever, a `forbid` job
/// skipping every slot meanwhile. 10 s still lets a connect survive three
/// lost SYNs (resent after 1, 3 and 7 s), and is far above what a
/// reachable server takes. It is a client-wide setting, so the shared
/// clients carry it.
pub const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// PATH given to jobs when the daemon has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A run as the scheduler starts it, handed to [`Runner::run`]: borrowed
/// from the scheduler's own state, so a runner takes (and pays a reference
/// count for) only what its future keeps. [`to_request`](Self::to_request)
/// takes everything, as the process runner does; a runner that keeps
/// nothing takes nothing. Three shared values taken and given back per
/// run (the spec, the revision, the shared block, one of them twice) were
/// most of what a fire cost the scheduler beyond the fire itself in a
/// 100k-job burst: each is an atomic read-modify-write, and a job's spec
/// is a cold cache line.
///
/// [`Runner::run`]: super::Runner::run
pub struct ExecStart<'a> {
    pub scheduled_at: DateTime<Utc>,
    pub attempt: u32,
    /// The revision of the last apply.
    pub revision: &'a Arc<str>,
    pub spec: &'a Arc<JobSpec>,
    /// The run's [`ExecShared`], made on first ask (see [`shared`](Self::shared)).
    shared: &'a std::cell::OnceCell<Arc<ExecShared>>,
}

impl<'a> ExecStart<'a> {
    /// A start for `spec`'s run of `scheduled_at`, whose shared block (if
    /// the runner asks for one) is made in `shared`, where the scheduler
    /// (or a test) finds it.
    pub fn new(
        scheduled_at: DateTime<Utc>,
        attempt: u32,
        revision: &'a Arc<str>,
        spec: &'a Arc<JobSpec>,
        shared: &'a std::cell::OnceCell<Arc<ExecShared>>,
    ) -> Self {
        ExecStart {
            scheduled_at,
            attempt,
            revision,
            spec,
            shared,
        }
    }

    pub fn job(&self) -> &JobId {
        &self.spec.id
    }

    /// See [`ExecRequest::run_id`].
    pub fn run_id(&self) -> String {
        super::ids::run_id(self.job(), self.scheduled_at)
    }

    /// The run's cancellation, pid and grace, shared with the scheduler.
    /// Made on the first call: a run that never asks for it cannot be asked
    /// to stop (cancel, replace, shutdown) and has no process group to
    /// show. The scheduler still drops its future, and the audit reports
    /// it as leaked once it outlives its timeout or its job. A runner that
    /// starts anything that must be stopped asks for it.
    pub fn shared(&self) -> Arc<ExecShared> {
        Arc::clone(
            self.shared
                .get_or_init(|| ExecShared::new(self.spec.kill_grace)),
        )
    }

    /// Everything, owned: what a runner whose future needs the whole run
    /// keeps.
    pub fn to_request(&self) -> ExecRequest {
        ExecRequest {
            scheduled_at: self.scheduled_at,
            attempt: self.attempt,
            revision: Arc::clone(self.revision),
            spec: Arc::clone(self.spec),
            shared: self.shared(),
        }
    }
}

/// Everything one execution needs, owned. No handle into the scheduler's
/// state: a job is plain data.
pub struct ExecRequest {
    pub scheduled_at: DateTime<Utc>,
    pub attempt: u32,
    pub revision: Arc<str>,
    pub spec: Arc<JobSpec>,
    /// What the scheduler and the execution both see while it runs,
    /// cancellation included.
    pub shared: Arc<ExecShared>,
}

impl ExecRequest {
    /// The job: its spec's id (one reference count fewer per run than a
    /// field of its own).
    pub fn job(&self) -> &JobId {
        &self.spec.id
    }

    /// `<job>@<scheduled time, UTC RFC 3339>`. Built on demand by the
    /// runner that shows it (an environment variable, a header), so
    /// scheduling a run allocates no string.
    pub fn run_id(&self) -> String {
        super::ids::run_id(self.job(), self.scheduled_at)
    }
}

/// The few values an execution and the scheduler share while it runs: one
/// allocation per execution for all of them. Cancellation lives here too,
/// not in a `CancellationToken`: a token is a second allocation and a tree
/// node per run, and a run's cancellation has one sender and one listener.
#[derive(Debug, Default)]
pub struct ExecShared {
    /// Published once the child is spawned (0 before, and for HTTP runs),
    /// so the scheduler can show and audit it.
    pub pid: AtomicU32,
    /// SIGTERM → SIGKILL delay in milliseconds; the scheduler may shorten
    /// it (shutdown) before cancelling.
    pub grace_ms: AtomicU64,
    cancelled: AtomicBool,
    /// Wakes whoever waits on either flag (the run on `cancelled`,
    /// shutdown on `detached`): each waiter re-reads its own flag, so one
    /// `Notify` (32 bytes, per running execution) serves both.
    wake: Notify,
    /// Set while the run's work lives in a task of its own (see
    /// [`detach`](Self::detach)). Aborting a task only asks it to stop at
    /// its next await, so after dropping the runs shutdown waits,
    /// boundedly, for these to be gone.
    detached: AtomicBool,
}

/// Held by a run's own task (see [`ExecShared::detach`]): dropped with the
/// task's future, when it ends or once an abort takes effect.
#[derive(Debug)]
pub struct Detached(Arc<ExecShared>);

impl Drop for Detached {
    fn drop(&mut self) {
        self.0.detached.store(false, Ordering::SeqCst);
        self.0.wake.notify_waiters();
    }
}

impl ExecShared {
    pub fn new(grace: Duration) -> Arc<ExecShared> {
        Arc::new(ExecShared {
            pid: AtomicU32::new(0),
            grace_ms: AtomicU64::new(grace.as_millis() as u64),
            cancelled: AtomicBool::new(false),
            wake: Notify::new(),
            detached: AtomicBool::new(false),
        })
    }

    /// Marks the run's work as living in a task of its own until the
    /// returned guard, which that task's future must own, is dropped.
    pub fn detach(self: &Arc<Self>) -> Detached {
        self.detached.store(true, Ordering::SeqCst);
        Detached(Arc::clone(self))
    }

    pub fn is_detached(&self) -> bool {
        self.detached.load(Ordering::SeqCst)
    }

    /// Resolves once no task of the run's own is left (at once if it
    /// never had one).
    pub async fn reaped(&self) {
        self.wait_until(|s| !s.is_detached()).await;
    }

    /// Asks the run to stop (SIGTERM, then SIGKILL after the grace).
    /// Idempotent.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves once [`cancel`](Self::cancel) has been called, at once if
    /// it already was.
    pub async fn cancelled(&self) {
        self.wait_until(Self::is_cancelled).await;
    }

    /// Resolves once `done` holds, re-read after every wake-up of `wake`
    /// (which serves both flags).
    async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            // Registered before the flag is read, so a change between the
            // read and the await still wakes this waiter.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(self) {
                return;
            }
            notified.await;
        }
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Non-zero exit, or killed by a signal it was not sent by us.
    Failed {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Ran past its timeout and was terminated.
    TimedOut,
    /// Cancelled by the scheduler (replaced, job removed, shutdown).
    Cancelled,
    /// Could not start (no such program, bad workdir, ...).
    SpawnFailed(String),
}

impl Outcome {
    /// Whether a retry may follow.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Failed { .. } | Outcome::TimedOut | Outcome::SpawnFailed(_)
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed { .. } => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
            Outcome::SpawnFailed(_) => "spawn_failed",
        }
    }
}

/// What an execution returns.
#[derive(Debug, Clone)]
pub struct ExecResult {
    pub outcome: Outcome,
    /// The tail of stdout and stderr, interleaved as they arrived.
    pub output: Vec<u8>,
    /// Output bytes dropped from the front to respect `max_output`.
    pub output_dropped: u64,
    /// SIGKILL was needed (the group ignored SIGTERM for the whole grace).
    pub killed: bool,
    /// Processes were still in the group after the leader exited, and were
    /// killed.
    pub stragglers_killed: bool,
    /// When the run ended, if its runner says: a process run does, as its
    /// end may wait for the scheduler while a burst fires. `None` is
    /// stamped by the scheduler's own clock (the one its start time comes
    /// from) when it takes the end: a run that ends where it fires would
    /// otherwise read the wall clock once more per run, a tenth of the
    /// scheduler's time in the 100k-job benchmark.
    pub finished: Option<DateTime<Utc>>,
}

impl ExecResult {
    /// An execution that ended with `outcome`, without output or kills (a
    /// spawn failure, a cancellation, a test runner's run), stamped by the
    /// scheduler when it takes the end.
    pub fn ended(outcome: Outcome) -> ExecResult {
        ExecResult {
            outcome,
            output: Vec::new(),
            output_dropped: 0,
            killed: false,
            stragglers_killed: false,
            finished: None,
        }
    }
}

/// Keeps the last `cap` bytes written to it and counts the rest.
#[derive(Debug)]
pub struct Tail {
    cap: usize,
    buf: VecDeque<u8>,
    dropped: u64,
}

impl Tail {
    pub fn new(cap: usize) -> Self {
        Tail {
            cap,
            buf: VecDeque::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.cap {
            self.dropped += (self.buf.len() + bytes.len() - self.cap) as u64;
            self.buf.clear();
            self.buf.extend(&bytes[bytes.len() - self.cap..]);
            return;
        }
        let over = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        self.buf.drain(..over);
        self.dropped += over as u64;
        self.buf.extend(bytes);
    }

    pub fn into_parts(self) -> (Vec<u8>, u64) {
        (self.buf.into(), self.dropped)
    }
}

/// The environment a job runs with: a minimal base (the daemon's own
/// environment may hold credentials, such as a git token, that jobs must
/// not see), the job's `env`, and the run's identity.
fn job_env(req: &ExecRequest) -> Vec<(String, String)> {
    let mut env = vec![(
        "PATH".to_string(),
        std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string()),
    )];
    for key in ["HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(key) {
            env.push((key.to_string(), v));
        }
    }
    env.extend(
        req.spec
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env.push(("DRIFTCRON_JOB".into(), req.job().to_string()));
    env.push(("DRIFTCRON_RUN_ID".into(), req.run_id()));
    env.push((
        "DRIFTCRON_SCHEDULED_AT".into(),
        req.scheduled_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    ));
    env.push(("DRIFTCRON_ATTEMPT".into(), req.attempt.to_string()));
    env.push(("DRIFTCRON_REVISION".into(), req.revision.to_string()));
    env
}

/// Kills a run's process group when dropped while armed.
struct GroupGuard {
    pgid: u32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, libc::SIGKILL);
        }
    }
}

/// Sends `sig` to process group `pgid`; true if the group existed.
pub fn signal_group(pgid: u32, sig: i32) -> bool {
    if pgid == 0 {
        return false;
    }
    // SAFETY: killpg has no memory effects; a stale pgid yields ESRCH.
    unsafe { libc::killpg(pgid as libc::pid_t, sig) == 0 }
}

/// Whether any process of group `pgid` is alive. Zombies do not count:
/// they are dead and only wait to be reaped (by init, which in a container
/// may never happen), so counting them would report leaks that are not.
pub fn group_alive(pgid: u32) -> bool {
    if !signal_group(pgid, 0) {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces and
        // parentheses): state, ppid, pgrp, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
        if pgrp == Some(pgid) && state != "Z" && state != "X" {
            return true;
        }
    }
    false
}

/// Runs the execution to its end. Never panics on the job's behaviour.
pub async fn run(req: ExecRequest) -> ExecResult {
    let spec = req.spec.clone();
    match &spec.executor {
        Executor::Exec { argv } => {
            // Validation rejects an empty `command`; a spec built in code
            // could still hold one.
            if argv.is_empty() {
                return ExecResult::ended(Outcome::SpawnFailed(
                    "the job's `command` is empty: no program to run".into(),
                ));
            }
            let mut cmd = Command::new(argv.program());
            cmd.args(argv.args());
            run_process(cmd, &req).await
        }
        Executor::Shell { script } => {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(&**script);
            run_process(cmd, &req).await
        }
        Executor::Http(http) => run_http(http, &req).await,
    }
}

/// HTTP clients, built once: building one parses the root store, which is
/// too slow to repeat per run. Two, because certificate checking is a
/// client-wide setting (as is [`HTTP_CONNECT_TIMEOUT`], the same for both).
fn http_client(verify: bool) -> Result<&'static reqwest::Client, String> {
    static VERIFIED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static UNVERIFIED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let cell = if verify { &VERIFIED } else { &UNVERIFIED };
    cell.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("driftcron/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(!verify)
            .connect_timeout(HTTP_CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Runs an HTTP job: the response's status decides the outcome; the status
/// line and the body's tail are its output.
async fn run_http(http: &HttpSpec, req: &ExecRequest) -> ExecResult {
    let spec = &req.spec;
    let mut tail = Tail::new(spec.max_output as usize);
    let done = |outcome, tail: Tail| {
        let (output, output_dropped) = tail.into_parts();
        ExecResult {
            outcome,
            output,
            output_dropped,
            killed: false,
            stragglers_killed: false,
            finished: Some(Utc::now()),
        }
    };
    let client = match http_client(http.tls_verify) {
        Ok(c) => c,
        Err(e) => return done(Outcome::SpawnFailed(e), tail),
    };
    let method = match reqwest::Method::from_bytes(http.method.as_str().as_bytes()) {
        Ok(m) => m,
        Err(e) => return done(Outcome::SpawnFailed(e.to_string()), tail),
    };
    let mut rb = client
        .request(method, &http.url)
        .header("X-Driftcron-Job", req.job().as_str())
        .header("X-Driftcron-Run-Id", req.run_id())
        .header("X-Driftcron-Attempt", req.attempt.to_string());
    for (k, v) in &http.headers {
        rb = rb.header(k, v);
    }
    if let Some(body) = &http.body {
        rb = rb.body(body.clone());
    }
    if let Some(t) = spec.timeout {
        rb = rb.timeout(t);
    }
    let exchange = async {
        let mut resp = rb.send().await?;
        let status = resp.status();
        tail.push(format!("HTTP {status}\n").as_bytes());
        while let Some(chunk) = resp.chunk().await? {
            tail.push(&chunk);
        }
        Ok::<_, reqwest::Error>(status)
    };
    let result = tokio::select! {
        r = exchange => r,
        _ = req.shared.cancelled() => return done(Outcome::Cancelled, Tail::new(0)),
    };
    match result {
        Ok(status) => {
            let ok = match &http.expect_status {
                ExpectStatus::Success => status.is_success(),
                ExpectStatus::Codes(codes) => codes.contains(&status.as_u16()),
            };
            let outcome = if ok {
                Outcome::Succeeded
            } else {
                Outcome::Failed {
                    code: Some(i32::from(status.as_u16())),
                    signal: None,
                }
            };
            done(outcome, tail)
        }
        // The job's own `timeout` ran out. A connect that ran past
        // HTTP_CONNECT_TIMEOUT is a timeout too, but not the job's: it
        // fails like any other connect error, saying why. So does a
        // timeout without a job timeout (the kernel's ETIMEDOUT on an
        // established connection, which reqwest also calls a timeout).
        Err(e) if e.is_timeout() && !e.is_connect() && spec.timeout.is_some() => {
            done(Outcome::TimedOut, tail)
        }
        Err(e) => {
            // Keep the whole error chain: "error sending request" alone
            // does not say connection refused.
            let mut msg = if e.is_connect() && e.is_timeout() {
                format!(
                    "connect timed out (bounded at {}): ",
                    humantime::format_duration(HTTP_CONNECT_TIMEOUT)
                )
            } else {
                String::new()
            };
            msg.push_str(&e.to_string());
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            tail.push(msg.as_bytes());
            done(
                Outcome::Failed {
                    code: None,
                    signal: None,
                },
                tail,
            )
        }
    }
}

enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
}

async fn run_process(mut cmd: Command, req: &ExecRequest) -> ExecResult {
    let spec = &req.spec;
    cmd.env_clear()
        .envs(job_env(req))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.workdir {
        cmd.current_dir(&**dir);
    }
    let mut tail = Tail::new(spec.max_output as usize);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ExecResult::ended(Outcome::SpawnFailed(e.to_string()));
        }
    };
    let pgid = child.id().unwrap_or(0);
    req.shared.pid.store(pgid, Ordering::SeqCst);
    // If this execution is dropped mid-run (its lane aborted at shutdown,
    // or its scheduler or runtime gone), the whole group dies with it, not
    // just the leader that `kill_on_drop` knows about.
    let mut guard = GroupGuard { pgid, armed: true };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let deadline = spec.timeout.map(|t| Instant::now() + t);

    let supervise = supervise(&mut child, pgid, deadline, req);
    tokio::pin!(supervise);
    let mut ended: Option<(Ending, bool)> = None;
    let mut drain_until: Option<Instant> = None;
    let (mut out_buf, mut err_buf) = (vec![0u8; READ_CHUNK], vec![0u8; READ_CHUNK]);
    loop {
        if ended.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            r = read_some(&mut stdout, &mut out_buf) => match r {
                Some(n) => tail.push(&out_buf[..n]),
                None => stdout = None,
            },
            r = read_some(&mut stderr, &mut err_buf) => match r {
                Some(n) => tail.push(&err_buf[..n]),
                None => stderr = None,
            },
            e = &mut supervise, if ended.is_none() => {
                ended = Some(e);
                drain_until = Some(Instant::now() + OUTPUT_DRAIN_GRACE);
            },
            _ = sleep_until(drain_until.unwrap_or_else(Instant::now)), if drain_until.is_some() => break,
        }
    }
    let (ending, killed) = ended.unwrap_or((Ending::Cancelled, false));
    // Kill what the leader left behind in its group. Counted only when the
    // leader ended on its own: after a group kill, the stragglers are
    // merely still dying.
    let stragglers_killed = matches!(ending, Ending::Exited(_))
        && group_alive(pgid)
        && signal_group(pgid, libc::SIGKILL);
    signal_group(pgid, libc::SIGKILL);
    guard.armed = false;
    let outcome = match ending {
        Ending::TimedOut => Outcome::TimedOut,
        Ending::Cancelled => Outcome::Cancelled,
        Ending::Exited(Err(e)) => Outcome::SpawnFailed(format!("waiting for the child: {e}")),
        Ending::Exited(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            if status.success() {
                Outcome::Succeeded
            } else {
                Outcome::Failed {
                    code: status.code(),
                    signal: status.signal(),
                }
            }
        }
    };
    let (output, output_dropped) = tail.into_parts();
    ExecResult {
        outcome,
        output,
        output_dropped,
        killed,
        stragglers_killed,
        finished: Some(Utc::now()),
    }
}

/// Reads once from a pipe; `None` at EOF or error. Pends forever on a
/// closed (None) pipe so `select!` ignores it.
async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    pipe: &mut Option<R>,
    buf: &mut [u8],
) -> Option<usize> {
    match pipe {
        Some(p) => match p.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// Waits for the leader; on timeout or cancel terminates the group:
/// SIGTERM, then SIGKILL after the grace. Returns how it ended and whether
/// SIGKILL was needed.
async fn supervise(
    child: &mut Child,
    pgid: u32,
    deadline: Option<Instant>,
    req: &ExecRequest,
) -> (Ending, bool) {
    let ending = tokio::select! {
        s = child.wait() => return (Ending::Exited(s), false),
        _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Ending::TimedOut,
        _ = req.shared.cancelled() => Ending::Cancelled,
    };
    signal_group(pgid, libc::SIGTERM);
    let grace = Duration::from_millis(req.shared.grace_ms.load(Ordering::SeqCst));
    tokio::select! {
        _ = child.wait() => (ending, false),
        _ = sleep(grace) => {
            signal_group(pgid, libc::SIGKILL);
            let _ = child.wait().await;
            (ending, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_and_counts_the_rest() {
        let mut t = Tail::new(5);
        t.push(b"abc");
        t.push(b"defg");
        let (out, dropped) = Tail::into_parts(std::mem::replace(&mut t, Tail::new(5)));
        assert_eq!((out.as_slice(), dropped), (&b"cdefg"[..], 2));
        t.push(b"0123456789");
        t.push(b"x");
        let (out, dropped) = t.into_parts();
        assert_eq!((out.as_slice(), dropped), (&b"6789x"[..], 6));
    }
}
