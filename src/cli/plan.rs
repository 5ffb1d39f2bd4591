//! `driftcron plan`: what a change to the schedules would do, for a pull
//! request: jobs created, changed (field by field) and deleted, their next
//! fire times before and after, DST notes, each file's diff, and the load
//! forecast against `max_running`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::ValueEnum;

use crate::plan::report;
use crate::report::diagnostics::ValidationReport;
use crate::report::plan as render;
use crate::source::{default_base, read_folder, snapshot_at, workdir_of};
use crate::spec::{LoadOptions, load};

/// Show what a change to the schedules would do.
///
/// Compares `--base` (default: the merge base with the default branch) with
/// `--head` (default: the working tree). Exit status: 0 no changes, 2
/// changes, 1 error (including an invalid head, with the validator's
/// diagnostics).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  driftcron plan                                  # working tree vs the merge base with origin/main
  driftcron plan --base origin/main --head HEAD --format markdown > plan.md
  driftcron plan --format json | jq .summary")]
pub struct Args {
    /// The revision the change is compared with.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The changed revision (default: the working tree).
    #[arg(long, value_name = "REV")]
    pub head: Option<String>,
    /// The schedules folder, relative to the repository root.
    #[arg(long, default_value = "schedules")]
    pub path: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let root: PathBuf = workdir_of(&cwd).context("driftcron plan runs inside a git checkout")?;
    let base_rev = match &args.base {
        Some(b) => b.clone(),
        None => {
            default_base(&root, args.head.as_deref()).context("cannot choose the base revision")?
        }
    };
    let base = snapshot_at(&root, &base_rev, &args.path)
        .with_context(|| format!("cannot read {base_rev}"))?;
    let head = match &args.head {
        Some(h) => snapshot_at(&root, h, &args.path).with_context(|| format!("cannot read {h}"))?,
        None => {
            let mut s =
                read_folder(&root.join(&args.path)).context("cannot read the working tree")?;
            s.revision = "working tree".into();
            s
        }
    };
    let now = Utc::now();
    let opts = LoadOptions {
        now,
        max_jobs: None,
    };
    let (base_loaded, head_loaded) = (load(&base, &opts), load(&head, &opts));
    if !head_loaded.is_valid() {
        let report = ValidationReport {
            root: &args.path,
            loaded: &head_loaded,
        };
        // The validator's diagnostics, in the format asked for.
        let out = match args.format {
            PlanFormat::Text => report.text(),
            PlanFormat::Json => report.json(),
            PlanFormat::Markdown => format!(
                "### driftcron plan\n\nThe change is invalid; nothing would be applied.\n\n````\n{}````\n",
                report.text()
            ),
        };
        std::io::stdout().lock().write_all(out.as_bytes())?;
        return Ok(ExitCode::from(1));
    }
    if !base_loaded.is_valid() {
        eprintln!(
            "warning: the base revision {base_rev} is invalid ({} errors); its valid jobs are compared",
            base_loaded.errors()
        );
    }
    let plan = report::build((&base, &base_loaded), (&head, &head_loaded), now);
    let out = match args.format {
        PlanFormat::Text => render::text(&plan),
        PlanFormat::Markdown => render::markdown(&plan),
        PlanFormat::Json => render::json(&plan),
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(if plan.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
