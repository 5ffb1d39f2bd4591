//! `driftcron run`: the daemon. Follows a git repository (polled) or a
//! schedules folder (watched, and re-read on an interval), reconciles every
//! change into the scheduler,
//! and shuts down boundedly on SIGTERM/SIGINT (a second signal forces the
//! exit). SIGHUP reconciles now.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use clap::ValueEnum;
use tokio::signal::unix::{SignalKind, signal};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiConfig, ApiState, Nudge, ReconcileDone, Secret, Telemetry};
use crate::reconcile::{Outcome, Reconciler, View};
use crate::scheduler::{Scheduler, SchedulerConfig, SystemClock};
use crate::snapshot::Snapshot;
use crate::source::{
    Changes, FolderCache, GitRef, GitSource, GitSpec, read_folder_cached, read_folder_changed,
    watch_folder,
};
use crate::spec::load::{LoadCache, load_cached};
use crate::spec::{LoadOptions, Settings};

/// Quiet time after a change event before the folder is read: an editor's
/// save is several events, a `git checkout` many more.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Run the scheduler daemon on a schedules folder.
///
/// Every change to the folder is validated and, if valid, applied: created
/// jobs start, changed ones are re-keyed, deleted ones stop (their running
/// executions follow `on_remove`). An invalid change is not applied; the
/// last good state keeps running and the errors are logged with
/// file:line:col.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  driftcron run                                  # schedules/ of the git repository it stands in
  driftcron run --repo https://git.example/ops/schedules --branch main --path schedules
  driftcron run --source folder --path /etc/driftcron/schedules --poll 1m
  DRIFTCRON_LOG=debug driftcron run --log-format json")]
pub struct Args {
    /// The schedules folder: inside the repository in git mode, on disk in
    /// folder mode.
    #[arg(long, default_value = "schedules")]
    pub path: PathBuf,
    /// Where the schedules come from: `git` follows commits, `folder`
    /// follows files on disk, `auto` is git when --repo is given or when
    /// the working directory is inside a git repository, else folder.
    #[arg(long, value_enum, default_value_t = SourceKind::Auto)]
    pub source: SourceKind,
    /// The repository: a URL (https, ssh, file://) or a local path.
    #[arg(long, value_name = "URL|PATH")]
    pub repo: Option<String>,
    /// The branch to follow (default: the repository's HEAD).
    #[arg(long, conflicts_with = "rev")]
    pub branch: Option<String>,
    /// A pinned commit to run.
    #[arg(long, value_name = "SHA")]
    pub rev: Option<String>,
    /// Where a remote repository is cloned.
    #[arg(long, default_value = ".driftcron")]
    pub state_dir: PathBuf,
    /// Re-read the folder at least this often, even without change events.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll: Duration,
    /// At shutdown, how long running executions may finish before they are
    /// cancelled (SIGTERM, then SIGKILL after at most 5 s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Log format (logs go to stderr; level from DRIFTCRON_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where the HTTP API (health, metrics, status, drift, webhook)
    /// listens, or `off`. Port 0 picks a free port (logged).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR|off")]
    pub listen: String,
    /// A file holding the API's bearer token (default: the
    /// DRIFTCRON_API_TOKEN variable). Without a token the mutating
    /// endpoints are disabled.
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// A file holding the git webhook's secret (default: the
    /// DRIFTCRON_WEBHOOK_SECRET variable). Without one /hooks/git is
    /// disabled.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Allow listening on a non-loopback address without an API token.
    #[arg(long)]
    pub insecure: bool,
}

/// The API's listener and secrets, checked before anything starts: a
/// daemon that cannot serve what it was asked to serve says so at once.
struct ApiSetup {
    listener: tokio::net::TcpListener,
    loopback: bool,
    token: Option<Secret>,
    webhook_secret: Option<Secret>,
}

async fn api_setup(args: &Args) -> anyhow::Result<Option<ApiSetup>> {
    if args.listen == "off" {
        return Ok(None);
    }
    let addr: std::net::SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {:?}: expected an address like 127.0.0.1:8787, or off",
            args.listen
        )
    })?;
    let secret = |file: &Option<PathBuf>, var| -> anyhow::Result<Option<Secret>> {
        Ok(super::read_secret(file.as_deref(), var)?.and_then(|t| Secret::new(&t)))
    };
    let token = secret(&args.api_token_file, "DRIFTCRON_API_TOKEN")?;
    let webhook_secret = secret(&args.webhook_secret_file, "DRIFTCRON_WEBHOOK_SECRET")?;
    if !api::is_loopback(&addr) && token.is_none() && !args.insecure {
        anyhow::bail!(
            "--listen {addr} is not a loopback address and no API token is configured; \
             set DRIFTCRON_API_TOKEN or --api-token-file (or pass --insecure to serve the \
             read-only API to the network anyway)"
        );
    }
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (choose another with --listen ADDR, or --listen off)")
    })?;
    Ok(Some(ApiSetup {
        listener,
        loopback: api::is_loopback(&addr),
        token,
        webhook_secret,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    Auto,
    Git,
    Folder,
}

/// The source the daemon follows.
enum Source {
    /// The folder and the bytes of its files as last read.
    Folder(PathBuf, Arc<std::sync::Mutex<FolderCache>>),
    /// Behind a mutex because fetching runs on a blocking thread.
    Git(Arc<std::sync::Mutex<GitSource>>),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Folder(p, _) => format!("folder {}", p.display()),
            Source::Git(g) => {
                let g = g.lock().unwrap_or_else(|e| e.into_inner());
                let s = g.spec();
                format!(
                    "git {} ({:?}, path {})",
                    s.repo,
                    s.reference,
                    if s.path.is_empty() { "." } else { &s.path }
                )
            }
        }
    }

    /// Reads the source on a blocking thread (file I/O and git must not
    /// stall the runtime); errors keep their causes. `changed`: the only
    /// paths of a folder that changed since its last read, when the
    /// watcher vouches for that; else every file is stat'ed.
    async fn fetch(&self, changed: Option<BTreeSet<PathBuf>>) -> Result<Snapshot, String> {
        match self {
            Source::Folder(path, cache) => {
                let (p, cache) = (path.clone(), cache.clone());
                let read = move || {
                    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                    match &changed {
                        Some(changed) => read_folder_changed(&p, &mut cache, changed),
                        None => read_folder_cached(&p, &mut cache),
                    }
                };
                match tokio::task::spawn_blocking(read).await {
                    Ok(Ok(s)) => Ok(s),
                    Ok(Err(e)) => Err(format!("{:#}", anyhow::Error::from(e))),
                    Err(e) => Err(format!("reading the folder failed: {e}")),
                }
            }
            Source::Git(g) => {
                let g = g.clone();
                let r = tokio::task::spawn_blocking(move || {
                    g.lock().unwrap_or_else(|e| e.into_inner()).fetch()
                })
                .await;
                match r {
                    Ok(Ok(s)) => Ok(s),
                    Ok(Err(e)) => Err(format!("{:#}", anyhow::Error::from(e))),
                    Err(e) => Err(format!("fetching failed: {e}")),
                }
            }
        }
    }
}

fn folder(args: &Args) -> Source {
    Source::Folder(args.path.clone(), Arc::default())
}

/// Decides the source from the flags and the working directory.
fn choose_source(args: &Args) -> anyhow::Result<Source> {
    let reference = match (&args.branch, &args.rev) {
        (Some(b), _) => GitRef::Branch(b.clone()),
        (_, Some(r)) => GitRef::Rev(r.clone()),
        _ => GitRef::Head,
    };
    let git = |repo: String, path: String| {
        Source::Git(Arc::new(std::sync::Mutex::new(GitSource::new(GitSpec {
            repo,
            reference: reference.clone(),
            path,
            state_dir: args.state_dir.clone(),
        }))))
    };
    let in_repo = || -> Option<(PathBuf, String)> {
        let repo = git2::Repository::discover(".").ok()?;
        let root = repo.workdir()?.canonicalize().ok()?;
        let path = args.path.canonicalize().ok()?;
        let rel = path.strip_prefix(&root).ok()?;
        Some((root.clone(), rel.to_string_lossy().into_owned()))
    };
    match (args.source, &args.repo) {
        (SourceKind::Folder, _) => Ok(folder(args)),
        (_, Some(repo)) => Ok(git(repo.clone(), args.path.to_string_lossy().into_owned())),
        (SourceKind::Git, None) => match in_repo() {
            Some((root, rel)) => Ok(git(root.to_string_lossy().into_owned(), rel)),
            None => anyhow::bail!(
                "--source git: {} is not inside a git repository (or give --repo)",
                args.path.display()
            ),
        },
        (SourceKind::Auto, None) => Ok(match in_repo() {
            Some((root, rel)) => git(root.to_string_lossy().into_owned(), rel),
            None => folder(args),
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("DRIFTCRON_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Retries of a failing fetch: 1 s doubling to 5 min, ±20% jitter, so a
/// fleet of daemons does not hammer a recovering git server in step. The
/// poll interval keeps running as well; whichever comes first fetches.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<tokio::time::Instant>,
}

const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Backoff {
    fn record(&mut self, outcome: &Outcome) {
        if *outcome == Outcome::FetchFailed {
            self.failures = self.failures.saturating_add(1);
            let base = Duration::from_secs(1u64 << self.failures.min(9).saturating_sub(1))
                .min(BACKOFF_MAX);
            // Jitter from the clock's nanoseconds: spread, not secrecy.
            let nanos = u64::from(Utc::now().timestamp_subsec_nanos());
            let factor = 0.8 + (nanos % 400) as f64 / 1000.0;
            self.retry_at = Some(tokio::time::Instant::now() + base.mul_f64(factor));
        } else {
            self.failures = 0;
            self.retry_at = None;
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    // Before the runtime's threads exist (see `memory`).
    let tuning = crate::memory::tune_allocator();
    tracing::debug!(?tuning, "allocator tuned");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("driftcron")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(daemon(args));
    // A fetch still blocked in git (bounded by its timeouts) must not hold
    // the exit.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// The reconcile side of the daemon loop.
struct Loop {
    reconciler: Reconciler,
    backoff: Backoff,
    view: watch::Sender<Arc<View>>,
    telemetry: Telemetry,
}

impl Loop {
    /// Reconciles what was fetched, and publishes the result.
    async fn finish(&mut self, fetched: Result<Snapshot, String>, began: Instant) -> Outcome {
        let outcome = self.reconciler.reconcile(fetched, Utc::now()).await;
        self.backoff.record(&outcome);
        self.telemetry
            .reconcile_duration
            .observe(began.elapsed().as_secs_f64());
        self.view.send_replace(Arc::new(self.reconciler.view()));
        outcome
    }
}

/// Fetches unless SIGTERM/SIGINT arrives first (`None`): a slow source
/// never makes the daemon deaf to signals.
async fn fetch_unless_signalled(
    source: &Source,
    changed: Option<BTreeSet<PathBuf>>,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> Option<Result<Snapshot, String>> {
    tokio::select! {
        r = source.fetch(changed) => Some(r),
        _ = term.recv() => None,
        _ = int.recv() => None,
    }
}

async fn daemon(args: &Args) -> anyhow::Result<ExitCode> {
    let source = choose_source(args)?;
    // A folder that is not there at start is a mistake, not a transient.
    if let Source::Folder(path, _) = &source
        && !path.is_dir()
    {
        anyhow::bail!(
            "schedules folder {} does not exist or is not a folder",
            path.display()
        );
    }
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;

    crate::source::set_network_timeouts(Duration::from_secs(30), Duration::from_secs(120));
    // The API serves from the start: health checks answer (`starting`)
    // while a first clone of a large repository is still running.
    let api = api_setup(args).await?;
    let (view_tx, view_rx) = watch::channel(Arc::new(View::default()));
    let (nudge_tx, mut nudges) = mpsc::channel::<Nudge>(api::NUDGE_QUEUE);
    let telemetry = Telemetry::default();
    let stop_api = CancellationToken::new();
    // Whatever path leaves this function stops the server.
    let _stop_api_on_exit = stop_api.clone().drop_guard();
    let api_state = ApiState::new(ApiConfig {
        view: view_rx,
        nudges: nudge_tx.clone(),
        token: api.as_ref().and_then(|a| a.token.clone()),
        webhook_secret: api.as_ref().and_then(|a| a.webhook_secret.clone()),
        telemetry: telemetry.clone(),
        source: source.describe(),
        loopback: api.as_ref().is_some_and(|a| a.loopback),
    });
    let server = api.map(|setup| {
        if let Ok(addr) = setup.listener.local_addr() {
            tracing::info!(%addr, "api listening");
        }
        tokio::spawn(api::serve(
            setup.listener,
            api::router(api_state.clone()),
            stop_api.clone(),
            Duration::from_secs(2),
        ))
    });
    // Folders are watched; git sources are polled (a webhook will nudge
    // them later). The watch starts before the first read, and what it saw
    // until then is dropped (that read is a full one), so every change
    // after it is named to a later read.
    let mut watch = match &source {
        Source::Folder(path, _) => match watch_folder(path.as_path()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, poll = ?args.poll, "cannot watch the folder; polling only");
                None
            }
        },
        Source::Git(_) => None,
    };
    if let Some(w) = &watch {
        let _ = w.take_changes();
    }
    let began = Instant::now();
    let Some(first) = fetch_unless_signalled(&source, None, &mut term, &mut int).await else {
        return Ok(ExitCode::SUCCESS);
    };
    // Bounds come from the first valid driftcron.toml, else the defaults.
    // The load fills the cache the reconciler then reuses, so the first
    // revision is validated once, not twice.
    let mut cache = LoadCache::default();
    let settings = match &first {
        Ok(s) => {
            let l = load_cached(
                s,
                &LoadOptions {
                    now: Utc::now(),
                    max_jobs: None,
                },
                &mut cache,
            );
            if l.is_valid() {
                l.desired.settings
            } else {
                Settings::default()
            }
        }
        Err(_) => Settings::default(),
    };
    let scheduler = Arc::new(Scheduler::start(
        SchedulerConfig::from(&settings),
        Arc::new(SystemClock),
    ));
    tracing::info!(
        source = %source.describe(),
        max_running = settings.scheduler.max_running,
        max_queued = settings.scheduler.max_queued,
        "driftcron started"
    );
    api_state.set_scheduler(scheduler.clone());
    let mut daemon = Loop {
        reconciler: Reconciler::with_cache(scheduler.clone(), cache),
        backoff: Backoff::default(),
        view: view_tx,
        telemetry,
    };
    daemon.finish(first, began).await;

    let mut poll = tokio::time::interval(args.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;

    loop {
        let mut reply = None;
        let mut changed = None;
        tokio::select! {
            Some(()) = async {
                match watch.as_mut() {
                    Some(w) => w.nudges.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                // Let a burst of events settle, then read once: only the
                // paths the events named, unless the watcher had doubts.
                tokio::time::sleep(DEBOUNCE).await;
                if let Some(w) = watch.as_mut() {
                    while w.nudges.try_recv().is_ok() {}
                    if let Changes::Paths(p) = w.take_changes() {
                        changed = Some(p);
                    }
                }
            }
            _ = poll.tick() => {}
            _ = sleep_until_opt(daemon.backoff.retry_at) => {
                tracing::info!(attempt = daemon.backoff.failures + 1, "retrying the fetch");
            }
            _ = hup.recv() => tracing::info!("SIGHUP: reconciling now"),
            Some(n) = nudges.recv() => {
                tracing::info!(by = n.reason, "reconcile requested");
                reply = n.reply;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        let began = Instant::now();
        let Some(fetched) = fetch_unless_signalled(&source, changed, &mut term, &mut int).await
        else {
            break;
        };
        let outcome = daemon.finish(fetched, began).await;
        if let Some(reply) = reply {
            let _ = reply.send(ReconcileDone {
                outcome: outcome.name(),
                message: outcome.to_string(),
                status: daemon.reconciler.status().clone(),
            });
        }
    }
    // Reconcile requests still queued get "shutting down", not a timeout:
    // dropping the receiver drops their reply senders.
    drop(nudges);
    stop_api.cancel();
    if let Some(server) = server {
        let _ = server.await;
    }

    tracing::info!(timeout = ?args.shutdown_timeout, "shutting down: letting running executions finish");
    tokio::select! {
        report = scheduler.shutdown(args.shutdown_timeout) => {
            tracing::info!(
                drained = report.drained,
                cancelled = report.cancelled,
                killed = ?report.killed,
                abandoned = ?report.abandoned,
                dropped_queued = report.dropped_queued,
                "stopped"
            );
            Ok(ExitCode::SUCCESS)
        }
        _ = term.recv() => {
            tracing::warn!("second signal: exiting now");
            Ok(ExitCode::from(130))
        }
        _ = int.recv() => {
            tracing::warn!("second signal: exiting now");
            Ok(ExitCode::from(130))
        }
    }
}
