//! `driftcron drift`: how far a running daemon is from git, for CI and
//! alerts. Exit status follows terraform's `-detailed-exitcode`: 0 in sync,
//! 2 drift (of the kinds `--fail-on` names), 1 error.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::Utc;
use clap::ValueEnum;
use serde::Deserialize;

use crate::drift::{
    self, DriftInput, DriftKind, DriftReport, FieldsById, RunningSpecs, SourceOrigin,
};
use crate::report::diagnostics::ValidationReport;
use crate::report::drift as render;
use crate::scheduler::RunningState;
use crate::source::snapshot_at;
use crate::spec::{LoadOptions, load};
use crate::status::Status;

/// Compare a running daemon with git.
///
/// By default the daemon is compared with its own source head (what it last
/// read from git). With --ref, it is compared with a revision of a local
/// checkout, loaded and validated here: the server is not trusted for what
/// git says.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  driftcron drift --server http://127.0.0.1:8787
  driftcron drift --server https://cron.internal:8787 --token-file token --ref origin/main
  driftcron drift --server $URL --format github --append-markdown \"$GITHUB_STEP_SUMMARY\"
  driftcron drift --server $URL --fail-on missing,changed,leaked

Exit status: 0 in sync, 2 drift of a --fail-on kind, 1 error (server
unreachable, refused token, unknown ref, invalid schedules at --ref).")]
pub struct Args {
    /// The daemon's API, e.g. http://127.0.0.1:8787.
    #[arg(long, env = "DRIFTCRON_SERVER", value_name = "URL")]
    pub server: String,
    /// A file holding the API token (default: the DRIFTCRON_API_TOKEN
    /// variable).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Compare with this revision of the local repository instead of the
    /// daemon's own source head.
    #[arg(long = "ref", value_name = "REV")]
    pub reference: Option<String>,
    /// The local repository (with --ref).
    #[arg(long, default_value = ".", value_name = "PATH")]
    pub repo: PathBuf,
    /// The schedules folder inside the repository (with --ref).
    #[arg(long, default_value = "schedules", value_name = "DIR")]
    pub path: String,
    #[arg(long, value_enum, default_value_t = DriftFormat::Text)]
    pub format: DriftFormat,
    /// The kinds that make the exit status 2 (comma-separated: stale,
    /// missing, unexpected, changed, overridden, leaked). Others are still
    /// shown.
    #[arg(long, value_name = "KINDS", value_delimiter = ',', value_parser = parse_kind)]
    pub fail_on: Vec<DriftKind>,
    /// Also append the Markdown report to FILE (e.g. "$GITHUB_STEP_SUMMARY"),
    /// so one request feeds both the annotations and the summary.
    #[arg(long, value_name = "FILE")]
    pub append_markdown: Option<PathBuf>,
    /// How long to wait for the server.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriftFormat {
    Text,
    Json,
    Markdown,
    Github,
}

fn parse_kind(s: &str) -> Result<DriftKind, String> {
    DriftKind::parse(s.trim()).ok_or_else(|| {
        format!(
            "unknown drift kind {s:?}; kinds: {}",
            DriftKind::ALL.map(DriftKind::name).join(", ")
        )
    })
}

/// What `/api/v1/state` returns.
#[derive(Debug, Deserialize)]
struct ServerState {
    status: Status,
    running: RunningState,
    /// The running jobs' specs, flattened.
    #[serde(default)]
    specs: FieldsById,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the driftcron API at {url}"))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {url} failed"))?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            bail!("{url} answered {status}: {msg}");
        }
        // The cause names what did not fit, with its line and column: a
        // job id this build refuses, say, from a daemon of another version.
        serde_json::from_slice(&body).with_context(|| {
            format!(
                "{url} did not answer with the JSON this build reads \
                 (is it a driftcron daemon, of the same version?)"
            )
        })
    }
}

async fn report(args: &Args, client: &Client) -> anyhow::Result<DriftReport> {
    let Some(reference) = &args.reference else {
        return client.get("/api/v1/drift").await;
    };
    let snap = snapshot_at(&args.repo, reference, &args.path)
        .with_context(|| format!("cannot read --ref {reference} in {}", args.repo.display()))?;
    let loaded = load(
        &snap,
        &LoadOptions {
            now: Utc::now(),
            max_jobs: None,
        },
    );
    if !loaded.is_valid() {
        let text = ValidationReport {
            root: &args.path,
            loaded: &loaded,
        }
        .text();
        bail!(
            "the schedules at --ref {reference} are invalid (the daemon would not apply them):\n{text}"
        );
    }
    let server: ServerState = client.get("/api/v1/state").await?;
    Ok(drift::compute(&DriftInput {
        desired: &loaded.desired.jobs,
        source_revision: Some(&snap.revision),
        // Field by field: this binary and the daemon may be different
        // builds, and spec digests are only stable within one.
        running_specs: RunningSpecs::Fields(&server.specs),
        running: &server.running,
        status: &server.status,
        origin: SourceOrigin::Local,
        now: Utc::now(),
    }))
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(args.timeout)
            .connect_timeout(args.timeout)
            .build()
            .context("cannot set up the HTTP client")?,
        base: args.server.trim_end_matches('/').to_string(),
        token: super::read_secret(args.token_file.as_deref(), "DRIFTCRON_API_TOKEN")?,
    };
    if !client.base.starts_with("http://") && !client.base.starts_with("https://") {
        bail!(
            "--server {:?}: expected an http:// or https:// URL",
            args.server
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(report(args, &client))?;
    let fail_on: BTreeSet<DriftKind> = if args.fail_on.is_empty() {
        DriftKind::ALL.into_iter().collect()
    } else {
        args.fail_on.iter().copied().collect()
    };
    let out = match args.format {
        DriftFormat::Text => render::text(&report),
        DriftFormat::Json => render::json(&report),
        DriftFormat::Markdown => render::markdown(&report),
        DriftFormat::Github => render::github(&report, &fail_on),
    };
    if let Some(file) = &args.append_markdown {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .with_context(|| format!("cannot open {} to append the report", file.display()))?;
        f.write_all(render::markdown(&report).as_bytes())
            .with_context(|| format!("cannot write the report to {}", file.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .context("cannot write the report")?;
    stdout.flush().ok();
    let failing = report.items.iter().any(|i| fail_on.contains(&i.kind));
    Ok(ExitCode::from(if failing { 2 } else { 0 }))
}
