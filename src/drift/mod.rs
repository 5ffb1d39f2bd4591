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
use serde::{Deserialize, Serialize};

use crate::plan::{FieldChange, field_changes, field_changes_of, fields, spec_digest};
use crate::scheduler::SpecDigest;
use crate::scheduler::state::{LeakReason, RunningState};
use crate::spec::{JobId, JobSpec};
use crate::status::{Condition, Status};

/// The kinds of difference, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

    /// The kind named `name` (as in `--fail-on`).
    pub fn parse(name: &str) -> Option<DriftKind> {
        DriftKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The version of the JSON form of [`DriftReport`]; bumped on any change a
/// consumer could notice.
pub const DRIFT_FORMAT_VERSION: u32 = 1;

/// Where the desired revision came from, which decides what a failing
/// fetch means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceOrigin {
    /// The daemon's own last read of its source: while fetching fails,
    /// nobody knows whether git moved on, and that is itself drift.
    Daemon,
    /// A revision the caller read itself (`drift --ref`): authoritative.
    Local,
}

/// A revision as people read it in a sentence: the digest cut to 12 hex
/// digits, like git's short ids (the full one is in the report's fields).
pub fn short(rev: Option<&str>) -> String {
    let Some(rev) = rev else {
        return "nothing".to_string();
    };
    match rev.rsplit_once(':') {
        Some((head, digest))
            if digest.len() > 12 && digest.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            format!("{head}:{}", &digest[..12])
        }
        _ => rev.to_string(),
    }
}

/// A condition's time, to the second.
fn when(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Whether two revision names name the same content: `main@sha1:abc` and
/// `origin/main@sha1:abc` do (the part after the last `@` is the digest).
pub fn same_revision(a: &str, b: &str) -> bool {
    let digest = |r: &str| r.rsplit_once('@').map_or(r, |(_, d)| d).to_string();
    digest(a) == digest(b)
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    /// [`DRIFT_FORMAT_VERSION`].
    pub format_version: u32,
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

/// Job fields as [`crate::plan::fields`] flattens them, by job id.
pub type FieldsById = BTreeMap<String, Vec<(String, String)>>;

/// The specs behind the running jobs, which decides how `changed` is found.
#[derive(Debug, Clone, Copy)]
pub enum RunningSpecs<'a> {
    /// Unknown: specs are compared by digest, and a change has no details.
    Unknown,
    /// Specs of this very build (the daemon's own drift): compared by
    /// digest, detailed field by field.
    Specs(&'a BTreeMap<JobId, Arc<JobSpec>>),
    /// Specs flattened by another process (`drift --ref` reads them from
    /// `/api/v1/state`): compared field by field, since spec digests are
    /// only stable within one build.
    Fields(&'a FieldsById),
}

/// What is compared.
pub struct DriftInput<'a> {
    /// The jobs of the source revision (valid ones).
    pub desired: &'a BTreeMap<JobId, Arc<JobSpec>>,
    /// The revision `desired` came from.
    pub source_revision: Option<&'a str>,
    /// What is known of the specs the scheduler runs.
    pub running_specs: RunningSpecs<'a>,
    pub running: &'a RunningState,
    pub status: &'a Status,
    pub origin: SourceOrigin,
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
    let fetch_failing = input
        .status
        .conditions
        .iter()
        .any(|c| matches!(c, Condition::FetchFailed { .. }));
    let behind = |src: &str| applied.is_none_or(|a| !same_revision(a, src));
    let daemon = input.origin == SourceOrigin::Daemon;
    // The daemon's own view is stale when it is behind, but also when it
    // cannot tell: nothing read yet, or fetching fails.
    let stale = match input.source_revision {
        Some(src) => behind(src) || (daemon && fetch_failing),
        None => daemon,
    };
    if stale {
        let src = input.source_revision.unwrap_or("(not read yet)");
        let unread = input.source_revision.is_none();
        let mut details = Vec::new();
        let mut reason = if unread {
            "the daemon has not read its source yet (starting)".to_string()
        } else {
            "not applied yet (the next reconcile will apply it)".to_string()
        };
        let mut action =
            "wait for the next poll, or reconcile now (POST /api/v1/reconcile, or SIGHUP)"
                .to_string();
        for c in &input.status.conditions {
            match c {
                Condition::Stalled {
                    revision,
                    errors,
                    diagnostics,
                    since,
                } if same_revision(revision, src) => {
                    reason = format!(
                        "it is invalid ({errors} error{}) and was not applied, since {}",
                        if *errors == 1 { "" } else { "s" },
                        when(since)
                    );
                    action = "fix the errors shown and push; the last good revision keeps running"
                        .into();
                    details.extend(diagnostics.iter().cloned());
                }
                Condition::FetchFailed { error, since } => {
                    reason = if unread {
                        format!(
                            "nothing was read from git yet: fetching fails since {}: {error}",
                            when(since)
                        )
                    } else if behind(src) {
                        format!("fetching fails since {}: {error}", when(since))
                    } else {
                        format!(
                            "git may have moved on since: fetching fails since {}: {error}",
                            when(since)
                        )
                    };
                    action = "check the source's URL, credentials and network; it is retried with backoff".into();
                }
                _ => {}
            }
        }
        items.push(DriftItem {
            kind: DriftKind::Stale,
            job: None,
            summary: if unread {
                format!("running {}: {reason}", short(applied))
            } else if behind(src) {
                format!(
                    "running {} but git is at {}: {reason}",
                    short(applied),
                    short(Some(src))
                )
            } else {
                format!(
                    "running {}, the last revision read from git; {reason}",
                    short(Some(src))
                )
            },
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
            Some(r) => {
                let by_digest = || r.spec_digest != SpecDigest(spec_digest(spec));
                let changes: Option<Vec<FieldChange>> = match input.running_specs {
                    RunningSpecs::Fields(m) => match m.get(id.as_str()) {
                        Some(old) => {
                            let c = field_changes_of(old, &fields(spec));
                            (!c.is_empty()).then_some(c)
                        }
                        None => by_digest().then(Vec::new),
                    },
                    RunningSpecs::Specs(m) => by_digest().then(|| {
                        m.get(id)
                            .map(|old| field_changes(old, spec))
                            .unwrap_or_default()
                    }),
                    RunningSpecs::Unknown => by_digest().then(Vec::new),
                };
                let Some(changes) = changes else { continue };
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
        }
    }
    for r in &input.running.jobs {
        if !input.desired.contains_key(&r.id) {
            items.push(DriftItem {
                kind: DriftKind::Unexpected,
                job: Some(r.id.to_string()),
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
                job: Some(r.id.to_string()),
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
        format_version: DRIFT_FORMAT_VERSION,
        generated_at: input.now,
        source_revision: input.source_revision.map(str::to_string),
        applied_revision: applied.map(str::to_string),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::state::LeakedTask;
    use crate::test_support::{job_state, running, specs};

    const JOB: &str = "schedule = \"@daily\"\ncommand = [\"true\"]\n";

    /// A daemon's state is read as strictly as it was written (`drift
    /// --ref` reads it over HTTP): an id this build refuses is an error
    /// that names it, never a job quietly compared under another name.
    #[test]
    fn a_state_is_read_back_whole_or_not_at_all() {
        let desired = specs(&[("a.toml", JOB)]);
        let run = running(
            vec![job_state("a", desired.values().next().unwrap())],
            vec![],
            "r1",
        );
        let json = serde_json::to_string(&run).unwrap();
        assert_eq!(serde_json::from_str::<RunningState>(&json).unwrap(), run);
        let foreign = json.replace("\"id\":\"a\"", "\"id\":\"Team/A\"");
        assert_ne!(foreign, json);
        let err = serde_json::from_str::<RunningState>(&foreign)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Team/A") && err.contains("column"), "{err}");
    }

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
            running_specs: RunningSpecs::Unknown,
            running: &run,
            status: &status,
            origin: SourceOrigin::Daemon,
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
            running_specs: RunningSpecs::Specs(&old),
            running: &run,
            status: &status,
            origin: SourceOrigin::Daemon,
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
            report.items[0].summary.contains("invalid (1 error)"),
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

    #[test]
    fn another_builds_fields_decide_changed_not_its_digests() {
        let desired = specs(&[("a.toml", JOB), ("b.toml", JOB)]);
        let a = JobId::parse("a").unwrap();
        let b = JobId::parse("b").unwrap();
        // Another build: digests that mean nothing here.
        let mut ja = job_state("a", &desired[&a]);
        ja.spec_digest = SpecDigest(0x0123_4567_89ab_cdef);
        let mut jb = ja.clone();
        jb.id = JobId::parse("b").unwrap();
        let run = running(vec![ja, jb], vec![], "r1");
        let hourly = specs(&[("b.toml", "schedule = \"@hourly\"\ncommand = [\"true\"]\n")]);
        let flat: FieldsById = [
            ("a".to_string(), fields(&desired[&a])),
            ("b".to_string(), fields(&hourly[&b])),
        ]
        .into();
        let status = Status {
            applied_revision: Some("main@sha1:abc".into()),
            ..Status::default()
        };
        let report = compute(&DriftInput {
            desired: &desired,
            source_revision: Some("HEAD@sha1:abc"),
            running_specs: RunningSpecs::Fields(&flat),
            running: &run,
            status: &status,
            origin: SourceOrigin::Local,
            now: run.now,
        });
        // a: same fields, in sync; b: one field differs; the revisions
        // name the same commit differently, so nothing is stale.
        assert_eq!(report.items.len(), 1, "{report:?}");
        assert_eq!(report.items[0].kind, DriftKind::Changed);
        assert_eq!(report.items[0].job.as_deref(), Some("b"));
        assert_eq!(
            report.items[0].details,
            ["schedule: \"@hourly\" -> \"@daily\""]
        );
    }

    #[test]
    fn a_daemon_that_read_nothing_is_stale() {
        let desired = BTreeMap::new();
        let run = running(vec![], vec![], "r1");
        let mut status = Status::default();
        let input = |status: &Status| {
            compute(&DriftInput {
                desired: &desired,
                source_revision: None,
                running_specs: RunningSpecs::Unknown,
                running: &run,
                status,
                origin: SourceOrigin::Daemon,
                now: run.now,
            })
        };
        assert!(
            input(&status).items[0]
                .summary
                .contains("not read its source yet")
        );
        status.conditions.push(Condition::FetchFailed {
            error: "connection refused".into(),
            since: run.now,
        });
        let report = input(&status);
        assert_eq!(report.items.len(), 1);
        assert!(
            report.items[0]
                .summary
                .contains("nothing was read from git yet"),
            "{report:?}"
        );
    }

    #[test]
    fn revisions_are_shortened_for_sentences_only() {
        let full = format!("main@sha1:{}", "a".repeat(40));
        assert_eq!(short(Some(&full)), "main@sha1:aaaaaaaaaaaa");
        assert_eq!(short(Some("r1")), "r1");
        assert_eq!(short(None), "nothing");
        assert!(same_revision(
            &full,
            &format!("HEAD@sha1:{}", "a".repeat(40))
        ));
    }
}
