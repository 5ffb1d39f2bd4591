//! `driftcron next`: preview when a schedule fires.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::ValueEnum;
use serde_json::json;

use crate::report::JSON_FORMAT_VERSION;
use crate::spec::diag::did_you_mean;
use crate::spec::job::{JitterMode, JobSpec};
use crate::spec::schedule::{DstPolicy, FoldPolicy, GapPolicy, ScheduleExpr, format_instant};
use crate::spec::units::format_duration;
use crate::spec::{JobId, Schedule};

/// Most instants one call prints.
const MAX_COUNT: usize = 10_000;

/// Print the next fire instants of a cron expression, or of a job.
///
/// Instants are strictly after --after (default: now), in RFC 3339 with the
/// zone's UTC offset at each instant. An invalid expression exits 1 with
/// the reason on stderr.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  driftcron next '30 2 * * *' --tz America/New_York --after 2026-03-07T00:00:00-05:00
  driftcron next '@every 90s' --count 3
  driftcron next '0 9 * * MON#1' --count 12 --format json
  driftcron next --job billing/invoice-sweep     # a job from ./schedules, with its zone and DST policy")]
pub struct Args {
    /// A cron expression (5 fields, or 6 with seconds first), a macro such
    /// as `@daily`, or `@every <duration>`.
    #[arg(required_unless_present = "job", conflicts_with = "job")]
    pub expr: Option<String>,
    /// Preview this job (its id is its path under the schedules root,
    /// without `.toml`).
    #[arg(long, value_name = "ID")]
    pub job: Option<String>,
    /// The schedules root, with --job.
    #[arg(long, default_value = "schedules", requires = "job")]
    pub path: PathBuf,
    /// IANA time zone of the expression.
    #[arg(long, default_value = "UTC", conflicts_with = "job")]
    pub tz: String,
    /// What a fixed-time expression does in a DST gap.
    #[arg(long, value_enum, default_value_t = Gap::Shift, conflicts_with = "job")]
    pub dst_gap: Gap,
    /// What a fixed-time expression does in a DST fold.
    #[arg(long, value_enum, default_value_t = Fold::First, conflicts_with = "job")]
    pub dst_fold: Fold,
    /// Start after this instant (RFC 3339, for example 2026-03-08T01:00:00-05:00).
    #[arg(long, value_name = "RFC3339")]
    pub after: Option<String>,
    /// How many instants to print.
    #[arg(long, short = 'n', default_value_t = 5)]
    pub count: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = NextFormat::Text)]
    pub format: NextFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NextFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Gap {
    Shift,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fold {
    First,
    Last,
    Both,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.count > MAX_COUNT {
        bail!("--count {} is above the limit of {MAX_COUNT}", args.count);
    }
    let after = match &args.after {
        Some(a) => DateTime::parse_from_rfc3339(a)
            .with_context(|| format!("--after {a:?} is not an RFC 3339 instant (for example 2026-03-08T01:00:00-05:00)"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let out = match &args.job {
        Some(id) => job_preview(args, id, after)?,
        None => {
            let expr = args.expr.as_deref().unwrap_or_default();
            let tz: Tz = match args.tz.parse() {
                Ok(tz) => tz,
                Err(_) => {
                    let hint = did_you_mean(
                        &args.tz.to_ascii_lowercase(),
                        chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()),
                    )
                    .map_or(String::new(), |s| format!(" (did you mean {s}?)"));
                    bail!("unknown time zone {:?}{hint}", args.tz);
                }
            };
            let parsed = match ScheduleExpr::parse(expr) {
                Ok(p) => p,
                Err(e) => {
                    let mut msg = format!(
                        "error: invalid schedule {expr:?}: {}\n  {expr}\n  {}{}\n",
                        e.message,
                        " ".repeat(expr[..e.span.start.min(expr.len())].chars().count()),
                        "^".repeat(
                            expr.get(e.span.clone())
                                .map_or(1, |s| s.chars().count().max(1))
                        )
                    );
                    if let Some(h) = e.hint {
                        writeln!(msg, "  hint: {h}").ok();
                    }
                    eprint!("{msg}");
                    return Ok(ExitCode::from(1));
                }
            };
            let dst = DstPolicy {
                gap: match args.dst_gap {
                    Gap::Shift => GapPolicy::Shift,
                    Gap::Skip => GapPolicy::Skip,
                },
                fold: match args.dst_fold {
                    Fold::First => FoldPolicy::First,
                    Fold::Last => FoldPolicy::Last,
                    Fold::Both => FoldPolicy::Both,
                },
            };
            let schedule = Schedule::new(parsed, tz, dst);
            let next = instants(&schedule, after, args.count);
            if next.is_empty() && args.count > 0 {
                eprintln!(
                    "error: schedule {expr:?} can never fire\n  hint: check the day-of-month against the month (February has no 30th or 31st)"
                );
                return Ok(ExitCode::from(1));
            }
            match args.format {
                NextFormat::Text => next.iter().map(|s| format!("{s}\n")).collect(),
                NextFormat::Json => json_line(&json!({
                    "format_version": JSON_FORMAT_VERSION,
                    "expr": expr,
                    "timezone": tz.name(),
                    "next": next,
                })),
            }
        }
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn instants(s: &Schedule, after: DateTime<Utc>, count: usize) -> Vec<String> {
    s.upcoming(after, count)
        .into_iter()
        .map(|t| format_instant(t, s.tz))
        .collect()
}

fn json_line(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn job_preview(args: &Args, id: &str, after: DateTime<Utc>) -> anyhow::Result<String> {
    let loaded = super::validate::load_folder(&args.path, None)?;
    let job: &JobSpec = match JobId::parse(id)
        .ok()
        .and_then(|id| loaded.desired.jobs.get(&id))
    {
        Some(j) => j,
        None => {
            let file = format!("{id}.toml");
            let problems: Vec<String> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.is_error() && d.file == file)
                .map(|d| match d.position {
                    Some(p) => format!(
                        "  {}/{file}:{}:{}: {}",
                        args.path.display(),
                        p.line,
                        p.column,
                        d.message
                    ),
                    None => format!("  {}/{file}: {}", args.path.display(), d.message),
                })
                .collect();
            if !problems.is_empty() {
                bail!("job {id:?} is invalid:\n{}", problems.join("\n"));
            }
            let hint = did_you_mean(id, loaded.desired.jobs.keys().map(|k| k.as_str()))
                .map_or(String::new(), |s| format!("; did you mean {s:?}?"));
            bail!("no job {id:?} under {}{hint}", args.path.display());
        }
    };
    let s = &job.schedule;
    let next = instants(s, after, args.count);
    let fixed = matches!(s.expr, ScheduleExpr::Cron(c) if c.is_fixed_time());
    let jitter_delay = match job.jitter.mode {
        JitterMode::Stable => Some(job.jitter.stable_delay(&job.id)),
        JitterMode::Random => None,
    };
    let mode = match job.jitter.mode {
        JitterMode::Stable => "stable",
        JitterMode::Random => "random",
    };
    Ok(match args.format {
        NextFormat::Json => json_line(&json!({
            "format_version": JSON_FORMAT_VERSION,
            "job": job.id.as_str(),
            "expr": job.schedule_text,
            "timezone": s.tz.name(),
            "dst": { "applies": fixed, "gap": s.dst.gap.to_string(), "fold": s.dst.fold.to_string() },
            "enabled": job.enabled,
            "jitter": {
                "max": format_duration(job.jitter.max),
                "mode": mode,
                "delay": jitter_delay.map(format_duration),
                "included": false,
            },
            "next": next,
        })),
        NextFormat::Text => {
            let mut o = String::new();
            writeln!(o, "job       {}", job.id).ok();
            writeln!(o, "schedule  {}", job.schedule_text).ok();
            writeln!(o, "timezone  {}", s.tz.name()).ok();
            if fixed {
                writeln!(
                    o,
                    "dst       gap = {}, fold = {} (fixed-time schedule)",
                    s.dst.gap, s.dst.fold
                )
                .ok();
            } else {
                writeln!(o, "dst       follows real time (not a fixed-time schedule)").ok();
            }
            if !job.enabled {
                writeln!(
                    o,
                    "enabled   false (suspended in git: these instants will not run)"
                )
                .ok();
            }
            if job.jitter.max.is_zero() {
                writeln!(o, "jitter    none").ok();
            } else {
                let delay = jitter_delay.map_or("a new random delay each run".to_string(), |d| {
                    format!("+{}", format_duration(d))
                });
                writeln!(
                    o,
                    "jitter    up to {} ({mode}: {delay}; not included below)",
                    format_duration(job.jitter.max)
                )
                .ok();
            }
            for n in &next {
                writeln!(o, "{n}").ok();
            }
            o
        }
    })
}
