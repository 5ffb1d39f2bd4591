//! `driftcron run`: the daemon. Follows a schedules folder (watched, and
//! re-read on an interval), reconciles every change into the scheduler,
//! and shuts down boundedly on SIGTERM/SIGINT (a second signal forces the
//! exit). SIGHUP reconciles now.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use clap::ValueEnum;
use tokio::signal::unix::{SignalKind, signal};

use crate::reconcile::Reconciler;
use crate::scheduler::{Scheduler, SchedulerConfig, SystemClock};
use crate::snapshot::Snapshot;
use crate::source::{read_folder, watch_folder};
use crate::spec::{LoadOptions, Settings, load};

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
  driftcron run                                  # the ./schedules folder
  driftcron run --path /etc/driftcron/schedules --poll 1m
  DRIFTCRON_LOG=debug driftcron run --log-format json")]
pub struct Args {
    /// The schedules folder to follow.
    #[arg(long, default_value = "schedules")]
    pub path: PathBuf,
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

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("driftcron")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(daemon(args))
}

/// Reads the folder on a blocking thread (file I/O must not stall the
/// runtime); the error keeps its causes.
async fn fetch(path: &Path) -> Result<Snapshot, String> {
    let p = path.to_path_buf();
    match tokio::task::spawn_blocking(move || read_folder(&p)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("{:#}", anyhow::Error::from(e))),
        Err(e) => Err(format!("reading the folder failed: {e}")),
    }
}

async fn daemon(args: &Args) -> anyhow::Result<ExitCode> {
    // A folder that is not there at start is a mistake, not a transient.
    if !args.path.is_dir() {
        anyhow::bail!(
            "schedules folder {} does not exist or is not a folder",
            args.path.display()
        );
    }
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;

    let first = fetch(&args.path).await;
    // Bounds come from the first valid driftcron.toml, else the defaults.
    let settings = match &first {
        Ok(s) => {
            let l = load(
                s,
                &LoadOptions {
                    now: Utc::now(),
                    max_jobs: None,
                },
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
        path = %args.path.display(),
        max_running = settings.scheduler.max_running,
        max_queued = settings.scheduler.max_queued,
        "driftcron started"
    );
    let mut reconciler = Reconciler::new(scheduler.clone());
    reconciler.reconcile(first, Utc::now()).await;

    let mut watch = match watch_folder(&args.path) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, poll = ?args.poll, "cannot watch the folder; polling only");
            None
        }
    };
    let mut poll = tokio::time::interval(args.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;

    loop {
        tokio::select! {
            Some(()) = async {
                match watch.as_mut() {
                    Some(w) => w.nudges.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                // Let a burst of events settle, then read once.
                tokio::time::sleep(DEBOUNCE).await;
                if let Some(w) = watch.as_mut() {
                    while w.nudges.try_recv().is_ok() {}
                }
                reconciler.reconcile(fetch(&args.path).await, Utc::now()).await;
            }
            _ = poll.tick() => {
                reconciler.reconcile(fetch(&args.path).await, Utc::now()).await;
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reconciling now");
                reconciler.reconcile(fetch(&args.path).await, Utc::now()).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
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
