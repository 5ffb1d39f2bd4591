//! Drift: how far the running scheduler is from git, at one moment, as
//! data. Pure: desired specs, the running state, the reconcile status and
//! the source head in; a [`DriftReport`] out. Renderers live in `report`.
//!
//! Kinds (see DESIGN.md, "Drift, precisely"): `missing`, `unexpected`,
//! `changed`, `overridden`, `stale`, `leaked`. Each item carries a one-line
//! explanation and what to do about it.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::plan::{FieldChange, field_changes, spec_digest};
use crate::scheduler::state::{LeakReason, RunningState};
use crate::spec::{JobId, JobSpec};
use crate::status::{Condition, Status};

/// The kinds of difference, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    Stale,
    Missing,
    Unexpected,
    Changed,
    Overridden,
    Leaked,
}

impl DriftKind {
    pub const ALL: [DriftKind; 6] = [
        DriftKind::Stale,
        DriftKind::Missing,
        DriftKind::Unexpected,
        DriftKind::Changed,
        DriftKind::Overridden,
        DriftKind::Leaked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DriftKind::Stale => "stale",
            DriftKind::Missing => "missing",
            DriftKind::Unexpected => "unexpected",
            DriftKind::Changed => "changed",
            DriftKind::Overridden => "overridden",
            DriftKind::Leaked => "leaked",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftItem {
    pub kind: DriftKind,
    /// The job it is about, if any (`stale` is about the whole revision).
    pub job: Option<String>,
    /// One line a person reads.
    pub summary: String,
    /// What to do about it.
    pub action: String,
    /// Field changes (`changed`), diagnostics (`stale`), or the execution
    /// (`leaked`: run id, pid, age).
    pub details: Vec<String>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftReport {
    pub generated_at: DateTime<Utc>,
    /// The revision git says should run.
    pub source_revision: Option<String>,
    /// The revision the scheduler runs.
    pub applied_revision: Option<String>,
    pub items: Vec<DriftItem>,
}

impl DriftReport {
    pub fn in_sync(&self) -> bool {
        self.items.is_empty()
    }

    pub fn count(&self, kind: DriftKind) -> usize {
        self.items.iter().filter(|i| i.kind == kind).count()
    }
}

/// What is compared.
pub struct DriftInput<'a> {
    /// The jobs of the source revision (valid ones).
    pub desired: &'a BTreeMap<JobId, Arc<JobSpec>>,
    /// The revision `desired` came from.
    pub source_revision: Option<&'a str>,
    /// The specs the scheduler runs, when known (for field diffs).
    pub running_specs: Option<&'a BTreeMap<JobId, Arc<JobSpec>>>,
    pub running: &'a RunningState,
    pub status: &'a Status,
    pub now: DateTime<Utc>,
}

/// Computes the drift.
pub fn compute(input: &DriftInput<'_>) -> DriftReport {
    let mut items = Vec::new();
    let running: BTreeMap<&str, &crate::scheduler::state::JobState> = input
        .running
        .jobs
        .iter()
        .map(|j| (j.id.as_str(), j))
        .collect();

    // Stale: the scheduler does not run the source's revision.
    let applied = input
        .status
        .applied_revision
        .as_deref()
        .or(input.running.revision.as_deref());
    if let Some(src) = input.source_revision
        && applied != Some(src)
    {
        let mut details = Vec::new();
        let mut reason = "not applied yet (the next reconcile will apply it)".to_string();
        let mut action = "wait for the next poll, or reconcile now (SIGHUP)".to_string();
        for c in &input.status.conditions {
            match c {
                Condition::Stalled {
                    revision,
                    errors,
                    diagnostics,
                    since,
                } if revision == src => {
                    reason = format!(
                        "it is invalid ({errors} errors) and was not applied, since {since}"
                    );
                    action = "fix the errors below and push; the last good revision keeps running"
                        .into();
                    details.extend(diagnostics.iter().cloned());
                }
                Condition::FetchFailed { error, since } => {
                    reason = format!("fetching it fails since {since}: {error}");
                    action = "check the source's URL, credentials and network; it is retried with backoff".into();
                }
                _ => {}
            }
        }
        items.push(DriftItem {
            kind: DriftKind::Stale,
            job: None,
            summary: format!(
                "running {} but git is at {src}: {reason}",
                applied.unwrap_or("nothing")
            ),
            action,
            details,
        });
    }

    for (id, spec) in input.desired {
        match running.get(id.as_str()) {
            None => items.push(DriftItem {
                kind: DriftKind::Missing,
                job: Some(id.to_string()),
                summary: format!("{id} is in git but not running"),
                action: "reconcile; if it stays missing, its revision did not apply (see stale)"
                    .into(),
                details: Vec::new(),
            }),
            Some(r) if r.spec_digest != format!("{:016x}", spec_digest(spec)) => {
                let changes: Vec<FieldChange> = input
                    .running_specs
                    .and_then(|m| m.get(id))
                    .map(|old| field_changes(old, spec))
                    .unwrap_or_default();
                items.push(DriftItem {
                    kind: DriftKind::Changed,
                    job: Some(id.to_string()),
                    summary: format!("{id} runs a different spec than git"),
                    action: "reconcile to apply git's version".into(),
                    details: changes
                        .into_iter()
                        .map(|c| {
                            format!(
                                "{}: {} -> {}",
                                c.field,
                                c.old.as_deref().unwrap_or("(none)"),
                                c.new.as_deref().unwrap_or("(none)")
                            )
                        })
                        .collect(),
                });
            }
            Some(_) => {}
        }
    }
    for r in &input.running.jobs {
        let id = JobId::parse(&r.id).ok();
        if id.as_ref().is_none_or(|id| !input.desired.contains_key(id)) {
            items.push(DriftItem {
                kind: DriftKind::Unexpected,
                job: Some(r.id.clone()),
                summary: format!("{} is running but not in git", r.id),
                action: "reconcile to remove it, or add it back to git".into(),
                details: Vec::new(),
            });
        }
        if r.overridden {
            let what = if r.suspended == r.enabled {
                if r.suspended {
                    "suspended through the API"
                } else {
                    "resumed through the API against git's enabled = false"
                }
            } else {
                "running a manually triggered execution"
            };
            items.push(DriftItem {
                kind: DriftKind::Overridden,
                job: Some(r.id.clone()),
                summary: format!("{} is {what}", r.id),
                action: "resume it (or set enabled in git) to follow git again".into(),
                details: Vec::new(),
            });
        }
    }
    for l in &input.running.leaked {
        let why = match l.reason {
            LeakReason::JobRemoved => "its job left git and it outlived its kill grace",
            LeakReason::JobChanged => "its job changed and it outlived its kill grace",
            LeakReason::PastTimeout => "it is past its timeout and still alive",
            LeakReason::UntrackedProcess => {
                "a process group driftcron started is alive without an execution"
            }
        };
        items.push(DriftItem {
            kind: DriftKind::Leaked,
            job: (!l.job.is_empty()).then(|| l.job.clone()),
            summary: format!(
                "{} (pid {}): {why}",
                l.run_id.as_deref().unwrap_or("process"),
                l.pid
            ),
            action: format!(
                "kill process group {} if it should not run (kill -TERM -{})",
                l.pid, l.pid
            ),
            details: vec![format!("age {}s", l.age_secs)],
        });
    }
    items.sort_by(|a, b| (a.kind, &a.job).cmp(&(b.kind, &b.job)));
    DriftReport {
        generated_at: input.now,
        source_revision: input.source_revision.map(str::to_string),
        applied_revision: applied.map(str::to_string),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::state::{AuditReport, Counters, JobState, LeakedTask};
    use crate::snapshot::Snapshot;
    use crate::spec::{LoadOptions, load};

    fn specs(files: &[(&str, &str)]) -> BTreeMap<JobId, Arc<JobSpec>> {
        let snap = Snapshot::from_texts("r", files);
        let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let l = load(
            &snap,
            &LoadOptions {
                now,
                max_jobs: None,
            },
        );
        assert!(l.is_valid());
        l.desired.jobs
    }

    fn job_state(id: &str, spec: &JobSpec) -> JobState {
        JobState {
            id: id.into(),
            spec_digest: format!("{:016x}", spec_digest(spec)),
            generation: 1,
            enabled: true,
            suspended: false,
            overridden: false,
            next_fire: None,
            active: vec![],
            queued: 0,
            recent: vec![],
        }
    }

    fn running(jobs: Vec<JobState>, leaked: Vec<LeakedTask>, rev: &str) -> RunningState {
        RunningState {
            now: DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
            revision: Some(rev.into()),
            jobs,
            running: 0,
            max_running: 64,
            queued: 0,
            max_queued: 1024,
            leaked,
            counters: Counters::default(),
            audit: AuditReport::default(),
        }
    }

    const JOB: &str = "schedule = \"@daily\"\ncommand = [\"true\"]\n";

    #[test]
    fn in_sync_when_everything_matches() {
        let desired = specs(&[("a.toml", JOB)]);
        let run = running(
            vec![job_state("a", &desired.values().next().unwrap().clone())],
            vec![],
            "r1",
        );
        let status = Status {
            applied_revision: Some("r1".into()),
            ..Status::default()
        };
        let report = compute(&DriftInput {
            desired: &desired,
            source_revision: Some("r1"),
            running_specs: None,
            running: &run,
            status: &status,
            now: run.now,
        });
        assert!(report.in_sync(), "{report:?}");
    }

    #[test]
    fn every_kind_is_named() {
        let old = specs(&[("b.toml", JOB), ("c.toml", JOB), ("d.toml", JOB)]);
        let desired = specs(&[
            ("a.toml", JOB),
            ("b.toml", "schedule = \"@hourly\"\ncommand = [\"true\"]\n"),
            ("d.toml", JOB),
        ]);
        let mut d = job_state("d", &old[&JobId::parse("d").unwrap()]);
        d.suspended = true;
        d.overridden = true;
        let run = running(
            vec![
                job_state("b", &old[&JobId::parse("b").unwrap()]),
                job_state("c", &old[&JobId::parse("c").unwrap()]),
                d,
            ],
            vec![LeakedTask {
                reason: LeakReason::JobRemoved,
                job: "gone".into(),
                run_id: Some("gone@2026-01-01T00:00:00Z".into()),
                pid: 4242,
                started: None,
                age_secs: 90,
            }],
            "r1",
        );
        let status = Status {
            applied_revision: Some("r1".into()),
            conditions: vec![Condition::Stalled {
                revision: "r2".into(),
                since: run.now,
                errors: 1,
                diagnostics: vec!["x.toml:1:13: invalid schedule".into()],
            }],
            ..Status::default()
        };
        let report = compute(&DriftInput {
            desired: &desired,
            source_revision: Some("r2"),
            running_specs: Some(&old),
            running: &run,
            status: &status,
            now: run.now,
        });
        let kinds: Vec<(DriftKind, Option<&str>)> = report
            .items
            .iter()
            .map(|i| (i.kind, i.job.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                (DriftKind::Stale, None),
                (DriftKind::Missing, Some("a")),
                (DriftKind::Unexpected, Some("c")),
                (DriftKind::Changed, Some("b")),
                (DriftKind::Overridden, Some("d")),
                (DriftKind::Leaked, Some("gone")),
            ]
        );
        assert!(
            report.items[0].summary.contains("invalid (1 errors)"),
            "{}",
            report.items[0].summary
        );
        assert_eq!(report.items[0].details, ["x.toml:1:13: invalid schedule"]);
        assert_eq!(
            report.items[3].details,
            ["schedule: \"@daily\" -> \"@hourly\""]
        );
        assert!(
            report.items[4]
                .summary
                .contains("suspended through the API")
        );
        assert!(report.items[5].summary.contains("pid 4242"));
        assert_eq!(report.count(DriftKind::Leaked), 1);
    }
}
