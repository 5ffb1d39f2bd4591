//! `driftcron.toml` at the schedules root: daemon-wide settings that live
//! in git beside the jobs. Sections keep it open to later ones (`[api]`,
//! `[store]`, `[source]`) without breaking files written today.

use super::doc::Table;
use super::raw::Reporter;

/// The file name, at the root only.
pub const SETTINGS_FILE: &str = "driftcron.toml";

/// `[scheduler]`: bounds of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchedulerSettings {
    /// Executions running at once, across all jobs.
    pub max_running: u32,
    /// Runs waiting for a free slot, across all jobs; beyond it a run is
    /// dropped and counted as overflow.
    pub max_queued: u32,
}

/// `[limits]`: bounds of the configuration itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// More job files than this is an error: a runaway generator must not
    /// take the daemon down.
    pub max_jobs: usize,
}

/// All daemon-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    pub scheduler: SchedulerSettings,
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            scheduler: SchedulerSettings {
                max_running: 64,
                max_queued: 1024,
            },
            limits: Limits { max_jobs: 10_000 },
        }
    }
}

const SECTIONS: &[&str] = &["scheduler", "limits"];
const SCHEDULER_FIELDS: &[&str] = &["max_running", "max_queued"];
const LIMIT_FIELDS: &[&str] = &["max_jobs"];

impl Settings {
    /// Reads the settings table; values with errors keep their defaults
    /// (the errors make the tree invalid anyway).
    pub fn read(t: &Table, r: &mut Reporter<'_>) -> Settings {
        let mut s = Settings::default();
        r.unknown_keys(t, SECTIONS, "driftcron.toml");
        if let Some((_, sched)) = r.table(t, "scheduler", "{ max_running = 64 }") {
            r.unknown_keys(sched, SCHEDULER_FIELDS, "[scheduler]");
            if let Some(v) = r.integer(sched, "max_running", "64") {
                match u32::try_from(v.value) {
                    Ok(n) if (1..=100_000).contains(&n) => s.scheduler.max_running = n,
                    _ => r.error(
                        &v.at,
                        format!("`max_running` = {} is out of range (1 to 100000)", v.value),
                        None,
                    ),
                }
            }
            if let Some(v) = r.integer(sched, "max_queued", "1024") {
                match u32::try_from(v.value) {
                    Ok(n) if n <= 1_000_000 => s.scheduler.max_queued = n,
                    _ => r.error(
                        &v.at,
                        format!("`max_queued` = {} is out of range (0 to 1000000)", v.value),
                        None,
                    ),
                }
            }
        }
        if let Some((_, limits)) = r.table(t, "limits", "{ max_jobs = 10000 }") {
            r.unknown_keys(limits, LIMIT_FIELDS, "[limits]");
            if let Some(v) = r.integer(limits, "max_jobs", "10000") {
                match usize::try_from(v.value) {
                    Ok(n) if (1..=1_000_000).contains(&n) => s.limits.max_jobs = n,
                    _ => r.error(
                        &v.at,
                        format!("`max_jobs` = {} is out of range (1 to 1000000)", v.value),
                        None,
                    ),
                }
            }
        }
        s
    }
}
