//! The reconcile loop's one step: snapshot → load → plan → apply → record.
//! The only place that knows the source, the spec, the plan and the
//! scheduler together.
//!
//! Steps stop at the first failure, and the status is written on every
//! path: what was observed, what is applied, and why they differ. An
//! invalid revision is never applied; the last good one keeps running.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use crate::status::{Condition, MAX_STATUS_DIAGNOSTICS, Status};

use crate::plan::{diff, spec_digest};
use crate::scheduler::{Scheduler, SchedulerError};
use crate::snapshot::Snapshot;
use crate::spec::load::{LoadCache, load_cached};
use crate::spec::{Diagnostic, JobId, JobSpec, LoadOptions, Settings};

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The revision was already applied.
    Unchanged,
    Applied {
        created: usize,
        updated: usize,
        deleted: usize,
    },
    /// Invalid configuration: nothing applied.
    Stalled {
        errors: usize,
    },
    FetchFailed,
    /// The scheduler is gone (shutting down).
    Stopped,
}

/// Jobs by id, shared between the reconciler and its readers.
pub type Jobs = Arc<BTreeMap<JobId, Arc<JobSpec>>>;

/// What the reconciler knows after an attempt, for the API and drift:
/// cheap to clone (the job maps are shared, not copied).
#[derive(Debug, Clone, Default)]
pub struct View {
    pub status: Status,
    /// The jobs of the observed revision, when it is valid. `None` when it
    /// is invalid (drift then compares with the applied jobs and reports
    /// the revision as stale) or nothing was read yet.
    pub observed_jobs: Option<Jobs>,
    /// The jobs of the applied revision (empty before the first apply).
    pub applied_jobs: Jobs,
    /// When the source was last read successfully.
    pub last_fetch_ok: Option<DateTime<Utc>>,
}

impl Outcome {
    /// A short name (`applied`, `stalled`, ...), for logs and the API.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Applied { .. } => "applied",
            Outcome::Stalled { .. } => "stalled",
            Outcome::FetchFailed => "fetch_failed",
            Outcome::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Applied {
                created,
                updated,
                deleted,
            } => write!(
                f,
                "applied: {created} created, {updated} updated, {deleted} deleted"
            ),
            Outcome::Stalled { errors } => write!(f, "stalled: {errors} errors, nothing applied"),
            Outcome::FetchFailed => {
                f.write_str("fetch failed: the last good revision keeps running")
            }
            Outcome::Unchanged => f.write_str("unchanged: the revision is already applied"),
            Outcome::Stopped => f.write_str("stopped: the scheduler is shutting down"),
        }
    }
}

/// Drives the scheduler toward the snapshots it is given.
pub struct Reconciler {
    scheduler: Arc<Scheduler>,
    /// Digests of the specs last applied, by job.
    applied: BTreeMap<JobId, u64>,
    applied_jobs: Jobs,
    observed_jobs: Option<Jobs>,
    last_fetch_ok: Option<DateTime<Utc>>,
    applied_settings: Option<Settings>,
    status: Status,
    /// Validation results of unchanged jobs, reused across revisions.
    cache: LoadCache,
}

impl Reconciler {
    pub fn new(scheduler: Arc<Scheduler>) -> Self {
        Reconciler::with_cache(scheduler, LoadCache::default())
    }

    /// A reconciler that starts from the validation results already in
    /// `cache` (the daemon's start-up load).
    pub fn with_cache(scheduler: Arc<Scheduler>, cache: LoadCache) -> Self {
        Reconciler {
            scheduler,
            applied: BTreeMap::new(),
            applied_jobs: Jobs::default(),
            observed_jobs: None,
            last_fetch_ok: None,
            applied_settings: None,
            status: Status::default(),
            cache,
        }
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// A snapshot of what the reconciler knows.
    pub fn view(&self) -> View {
        View {
            status: self.status.clone(),
            observed_jobs: self.observed_jobs.clone(),
            applied_jobs: self.applied_jobs.clone(),
            last_fetch_ok: self.last_fetch_ok,
        }
    }

    fn set_condition(&mut self, c: Condition) {
        // Keep the original `since` while the same condition persists.
        let same_kind =
            |a: &Condition, b: &Condition| std::mem::discriminant(a) == std::mem::discriminant(b);
        let c = match (self.status.conditions.iter().find(|e| same_kind(e, &c)), c) {
            (Some(Condition::FetchFailed { since, .. }), Condition::FetchFailed { error, .. }) => {
                Condition::FetchFailed {
                    error,
                    since: *since,
                }
            }
            (
                Some(Condition::Stalled {
                    revision: r0,
                    since,
                    ..
                }),
                Condition::Stalled {
                    revision,
                    errors,
                    diagnostics,
                    ..
                },
            ) if *r0 == revision => Condition::Stalled {
                revision,
                since: *since,
                errors,
                diagnostics,
            },
            (_, c) => c,
        };
        self.status.conditions.retain(|e| !same_kind(e, &c));
        self.status.conditions.push(c);
    }

    fn clear(&mut self, kind: fn(&Condition) -> bool) {
        self.status.conditions.retain(|c| !kind(c));
    }

    /// One reconcile: `fetched` is the source's answer.
    pub async fn reconcile(
        &mut self,
        fetched: Result<Snapshot, String>,
        now: DateTime<Utc>,
    ) -> Outcome {
        self.status.last_attempt = Some(now);
        let snapshot = match fetched {
            Ok(s) => {
                self.clear(|c| matches!(c, Condition::FetchFailed { .. }));
                self.last_fetch_ok = Some(now);
                s
            }
            Err(error) => {
                tracing::warn!(%error, "fetching schedules failed; the last good revision keeps running");
                self.set_condition(Condition::FetchFailed { error, since: now });
                return Outcome::FetchFailed;
            }
        };
        let revision = snapshot.revision.clone();
        self.status.observed_revision = Some(revision.clone());
        if self.status.applied_revision.as_deref() == Some(revision.as_str()) {
            // Back on the applied revision (say, a bad commit reverted): an
            // earlier stall no longer describes what git holds.
            self.clear(|c| matches!(c, Condition::Stalled { .. }));
            if self.observed_jobs.is_none() {
                self.observed_jobs = Some(self.applied_jobs.clone());
                self.set_condition(Condition::Ready {
                    revision,
                    since: now,
                });
            }
            return Outcome::Unchanged;
        }
        let opts = LoadOptions {
            now,
            max_jobs: None,
        };
        let loaded = load_cached(&snapshot, &opts, &mut self.cache);
        for d in loaded.diagnostics.iter().filter(|d| !d.is_error()) {
            tracing::warn!(diagnostic = %one_line(d), "schedule warning");
        }
        if !loaded.is_valid() {
            let diagnostics: Vec<String> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .take(MAX_STATUS_DIAGNOSTICS)
                .map(one_line)
                .collect();
            for d in &diagnostics {
                tracing::error!(revision = %revision, diagnostic = %d, "invalid schedule");
            }
            tracing::warn!(
                revision = %revision,
                errors = loaded.errors(),
                applied = self.status.applied_revision.as_deref().unwrap_or("none"),
                "stalled: revision not applied; the last good revision keeps running"
            );
            let errors = loaded.errors();
            self.set_condition(Condition::Stalled {
                revision,
                since: now,
                errors,
                diagnostics,
            });
            self.clear(|c| matches!(c, Condition::Ready { .. }));
            self.observed_jobs = None;
            return Outcome::Stalled { errors };
        }
        if let Some(prev) = self.applied_settings
            && prev != loaded.desired.settings
        {
            tracing::warn!(
                "driftcron.toml [scheduler] settings changed; they take effect at the next restart"
            );
        }
        let plan = diff(&loaded.desired.jobs, &self.applied);
        // What the record must learn: unchanged jobs keep their digests, so
        // only the changed ones are hashed again.
        let deleted = plan.delete.clone();
        let changed: Vec<Arc<JobSpec>> = plan.create.iter().chain(&plan.update).cloned().collect();
        let report = match self.scheduler.apply(plan, revision.clone()).await {
            Ok(r) => r,
            Err(SchedulerError::Stopped) | Err(SchedulerError::UnknownJob(_)) => {
                return Outcome::Stopped;
            }
        };
        for id in &deleted {
            self.applied.remove(id);
        }
        for spec in changed {
            self.applied.insert(spec.id.clone(), spec_digest(&spec));
        }
        self.applied_settings.get_or_insert(loaded.desired.settings);
        self.applied_jobs = Arc::new(loaded.desired.jobs);
        self.observed_jobs = Some(self.applied_jobs.clone());
        self.status.applied_revision = Some(revision.clone());
        self.clear(|c| matches!(c, Condition::Stalled { .. }));
        self.set_condition(Condition::Ready {
            revision: revision.clone(),
            since: now,
        });
        tracing::info!(
            revision = %revision,
            jobs = self.applied.len(),
            created = report.created,
            updated = report.updated,
            deleted = report.deleted,
            "applied"
        );
        Outcome::Applied {
            created: report.created,
            updated: report.updated,
            deleted: report.deleted,
        }
    }
}

/// `path:line:col: message` (the path relative to the schedules root).
/// A diagnostic about the whole tree (too many jobs) has no file.
pub fn one_line(d: &Diagnostic) -> String {
    match (d.position, d.file.as_str()) {
        (_, "") => d.message.clone(),
        (Some(p), f) => format!("{f}:{}:{}: {}", p.line, p.column, d.message),
        (None, f) => format!("{f}: {}", d.message),
    }
}
