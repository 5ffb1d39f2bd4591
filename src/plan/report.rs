//! What a change does, as data: the pull-request view of `driftcron plan`.
//! Pure: two loaded revisions and "now" in, a [`PlanReport`] out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;

use super::{FieldChange, field_changes, fields, spec_digest};
use crate::snapshot::Snapshot;
use crate::spec::schedule::format_instant;
use crate::spec::{JobId, JobSpec, Loaded};

/// Fire times shown per created or changed job.
pub const NEXT_FIRES: usize = 5;

/// How far ahead the load forecast looks.
pub const FORECAST_DAYS: i64 = 7;

/// Work cap of the forecast (fire minutes enumerated across all jobs): a
/// repository of every-minute jobs must not make CI wait.
pub const FORECAST_BUDGET: usize = 2_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// One job the change touches.
#[derive(Debug, Clone, Serialize)]
pub struct JobPlan {
    pub id: String,
    pub action: Action,
    /// For updates, what changed; for creates, every field; for deletes,
    /// nothing.
    pub changes: Vec<Change>,
    pub timezone: String,
    pub next_old: Vec<String>,
    pub next_new: Vec<String>,
}

/// A field change, serializable.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl From<FieldChange> for Change {
    fn from(c: FieldChange) -> Self {
        Change {
            field: c.field,
            old: c.old,
            new: c.new,
        }
    }
}

/// A changed file's unified diff.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    pub path: String,
    pub diff: String,
}

/// The busiest minute ahead: how many jobs start in the same minute.
#[derive(Debug, Clone, Serialize)]
pub struct Busiest {
    pub minute: Option<DateTime<Utc>>,
    pub jobs: usize,
}

/// Load before and after the change, against the global limit.
#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    pub days: i64,
    pub base: Busiest,
    pub head: Busiest,
    pub max_running: u32,
    /// The work cap was reached; the figures are a lower bound.
    pub truncated: bool,
}

impl Forecast {
    /// The change makes the busiest minute busier, or pushes it past the
    /// limit.
    pub fn worse(&self) -> bool {
        self.head.jobs > self.base.jobs
    }
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub base: String,
    pub head: String,
    pub jobs: Vec<JobPlan>,
    pub unchanged: usize,
    pub files: Vec<FileDiff>,
    /// DST notes and other warnings about the changed jobs.
    pub notes: Vec<String>,
    /// `driftcron.toml` differs between base and head.
    pub settings_changed: bool,
    pub forecast: Forecast,
}

impl PlanReport {
    pub fn count(&self, a: Action) -> usize {
        self.jobs.iter().filter(|j| j.action == a).count()
    }

    /// No job changes and no settings change.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && !self.settings_changed
    }

    /// `Plan: 2 to create, 1 to update, 0 to delete.`
    pub fn summary(&self) -> String {
        format!(
            "Plan: {} to create, {} to update, {} to delete.",
            self.count(Action::Create),
            self.count(Action::Update),
            self.count(Action::Delete)
        )
    }
}

fn next_fires(spec: &JobSpec, now: DateTime<Utc>) -> Vec<String> {
    if !spec.enabled {
        return Vec::new();
    }
    spec.schedule
        .upcoming(now, NEXT_FIRES)
        .into_iter()
        .map(|t| format_instant(t, spec.schedule.tz))
        .collect()
}

/// Builds the plan from base and head.
pub fn build(
    base: (&Snapshot, &Loaded),
    head: (&Snapshot, &Loaded),
    now: DateTime<Utc>,
) -> PlanReport {
    let (bs, bl) = base;
    let (hs, hl) = head;
    let old = &bl.desired.jobs;
    let new = &hl.desired.jobs;
    let mut jobs = Vec::new();
    let mut unchanged = 0;
    let ids: BTreeSet<&JobId> = old.keys().chain(new.keys()).collect();
    for id in ids {
        match (old.get(id), new.get(id)) {
            (None, Some(n)) => jobs.push(JobPlan {
                id: id.to_string(),
                action: Action::Create,
                changes: fields(n)
                    .into_iter()
                    .map(|(f, v)| Change {
                        field: f,
                        old: None,
                        new: Some(v),
                    })
                    .collect(),
                timezone: n.schedule.tz.name().to_string(),
                next_old: Vec::new(),
                next_new: next_fires(n, now),
            }),
            (Some(o), None) => jobs.push(JobPlan {
                id: id.to_string(),
                action: Action::Delete,
                changes: Vec::new(),
                timezone: o.schedule.tz.name().to_string(),
                next_old: next_fires(o, now),
                next_new: Vec::new(),
            }),
            (Some(o), Some(n)) if spec_digest(o) != spec_digest(n) => jobs.push(JobPlan {
                id: id.to_string(),
                action: Action::Update,
                changes: field_changes(o, n).into_iter().map(Change::from).collect(),
                timezone: n.schedule.tz.name().to_string(),
                next_old: next_fires(o, now),
                next_new: next_fires(n, now),
            }),
            _ => unchanged += 1,
        }
    }
    let changed: BTreeSet<String> = jobs
        .iter()
        .filter(|j| j.action != Action::Delete)
        .map(|j| format!("{}.toml", j.id))
        .collect();
    // Warnings about changed jobs: in their own file, or in a
    // `_defaults.toml` above them (where an inherited schedule or zone was
    // written).
    let applies = |file: &str| {
        changed.contains(file)
            || file
                .strip_suffix("_defaults.toml")
                .is_some_and(|dir| changed.iter().any(|c| c.starts_with(dir)))
    };
    let mut notes: Vec<String> = hl
        .diagnostics
        .iter()
        .filter(|d| !d.is_error() && applies(&d.file))
        .map(|d| format!("{}: {}", d.file.trim_end_matches(".toml"), d.message))
        .collect();
    notes.dedup();
    if bl.desired.settings != hl.desired.settings {
        notes.push(format!(
            "driftcron.toml settings change: {:?} -> {:?} (they take effect when the daemon restarts)",
            bl.desired.settings, hl.desired.settings
        ));
    }
    PlanReport {
        base: bs.revision.clone(),
        head: hs.revision.clone(),
        jobs,
        unchanged,
        files: file_diffs(bs, hs),
        notes,
        settings_changed: bl.desired.settings != hl.desired.settings,
        forecast: forecast(old, new, hl.desired.settings.scheduler.max_running, now),
    }
}

fn file_diffs(base: &Snapshot, head: &Snapshot) -> Vec<FileDiff> {
    let text = |s: &Snapshot| -> BTreeMap<String, String> {
        s.files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    String::from_utf8_lossy(&f.bytes).into_owned(),
                )
            })
            .collect()
    };
    let (a, b) = (text(base), text(head));
    let paths: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let empty = String::new();
    paths
        .into_iter()
        .filter_map(|p| {
            let (o, n) = (a.get(p).unwrap_or(&empty), b.get(p).unwrap_or(&empty));
            (o != n).then(|| {
                let diff = similar::TextDiff::from_lines(o, n)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("a/{p}"), &format!("b/{p}"))
                    .to_string();
                FileDiff {
                    path: p.clone(),
                    diff,
                }
            })
        })
        .collect()
}

/// The busiest minute of each side over the next week: how many distinct
/// jobs start in it.
fn forecast(
    old: &BTreeMap<JobId, Arc<JobSpec>>,
    new: &BTreeMap<JobId, Arc<JobSpec>>,
    max_running: u32,
    now: DateTime<Utc>,
) -> Forecast {
    // Each side has its own budget: a busy base must not starve the head.
    let (mut b1, mut b2) = (FORECAST_BUDGET / 2, FORECAST_BUDGET / 2);
    let base = busiest(old, now, &mut b1);
    let head = busiest(new, now, &mut b2);
    Forecast {
        days: FORECAST_DAYS,
        base,
        head,
        max_running,
        truncated: b1 == 0 || b2 == 0,
    }
}

fn busiest(
    jobs: &BTreeMap<JobId, Arc<JobSpec>>,
    now: DateTime<Utc>,
    budget: &mut usize,
) -> Busiest {
    let end = now + TimeDelta::days(FORECAST_DAYS);
    let mut per_minute: HashMap<DateTime<Utc>, usize> = HashMap::new();
    'jobs: for spec in jobs.values().filter(|s| s.enabled) {
        let mut t = now;
        // One count per job per minute: jump to the end of each minute
        // that has a fire.
        while let Some(next) = spec.schedule.next_after(t) {
            if next >= end {
                break;
            }
            if *budget == 0 {
                break 'jobs;
            }
            *budget -= 1;
            let minute = next.duration_trunc(TimeDelta::minutes(1)).unwrap_or(next);
            *per_minute.entry(minute).or_default() += 1;
            t = minute + TimeDelta::seconds(59) + TimeDelta::milliseconds(999);
        }
    }
    per_minute
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map_or(
            Busiest {
                minute: None,
                jobs: 0,
            },
            |(m, n)| Busiest {
                minute: Some(m),
                jobs: n,
            },
        )
}
