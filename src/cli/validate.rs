//! `driftcron validate`: check every schedule file, report every problem.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

use super::Format;
use crate::report::diagnostics::ValidationReport;
use crate::source::read_folder;
use crate::spec::{LoadOptions, Loaded, load};

/// Validate the schedule files under PATH.
///
/// Exit status: 0 when valid (warnings allowed), 1 when any file has an
/// error or PATH cannot be read.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  driftcron validate                       # the ./schedules folder
  driftcron validate path/to/schedules --format json
  driftcron validate --format github       # annotations in a GitHub Actions job")]
pub struct Args {
    /// The schedules root.
    #[arg(default_value = "schedules")]
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Most job files accepted (overrides `[limits] max_jobs`).
    #[arg(long, value_name = "N")]
    pub max_jobs: Option<usize>,
}

/// Reads and loads a schedules folder, as every command that needs the
/// desired state does.
///
/// # Errors
/// When the folder itself cannot be read.
pub fn load_folder(path: &std::path::Path, max_jobs: Option<usize>) -> anyhow::Result<Loaded> {
    let snapshot = read_folder(path).context("cannot load schedules")?;
    Ok(load(
        &snapshot,
        &LoadOptions {
            now: Utc::now(),
            max_jobs,
        },
    ))
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let loaded = load_folder(&args.path, args.max_jobs)?;
    let root = args.path.to_string_lossy();
    let report = ValidationReport {
        root: &root,
        loaded: &loaded,
    };
    let out = match args.format {
        Format::Text => report.text(),
        Format::Json => report.json(),
        Format::Github => report.github(),
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(if loaded.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
