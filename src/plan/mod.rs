//! The pure diff between what git asks for and what the scheduler runs.
//!
//! `diff(desired, running)` is used by the daemon (to apply) and, later, by
//! `driftcron plan` (to show a pull request's effect). It compares spec
//! digests, so it is cheap for ten thousand jobs.

pub mod report;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::spec::{JobId, JobSpec};

/// A digest of a job spec: FxHash over its `Hash` feed, word at a time.
/// Stable for a given build (it names a spec version in running state and
/// reports; it is not persisted).
pub fn spec_digest(spec: &JobSpec) -> u64 {
    let mut h = crate::fxhash::FxHasher::default();
    spec.hash(&mut h);
    h.finish()
}

/// What must change to make the running jobs match git.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub create: Vec<Arc<JobSpec>>,
    pub update: Vec<Arc<JobSpec>>,
    pub delete: Vec<JobId>,
    pub unchanged: Vec<JobId>,
}

/// One field that differs between two versions of a job. Values are shown
/// as a user would write them; `None` means the field is absent (a map
/// entry added or removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A job flattened into `(field, value)` pairs, in schema order, for
/// field-level diffs. Maps contribute one pair per key (`env.LOG_LEVEL`).
pub fn fields(spec: &JobSpec) -> Vec<(String, String)> {
    use crate::spec::job::{CatchUp, Concurrency, Executor, ExpectStatus, JitterMode, OnRemove};
    use crate::spec::units::{format_duration, format_size};
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| out.push((k.to_string(), v));
    let q = |s: &str| format!("{s:?}");
    if let Some(d) = &spec.description {
        push("description", q(d));
    }
    for (k, v) in &spec.labels {
        push(&format!("labels.{k}"), q(v));
    }
    push("enabled", spec.enabled.to_string());
    push("schedule", q(&spec.schedule_text));
    push("timezone", q(spec.schedule.tz.name()));
    push("dst.gap", q(&spec.schedule.dst.gap.to_string()));
    push("dst.fold", q(&spec.schedule.dst.fold.to_string()));
    match &spec.executor {
        Executor::Exec { argv } => push("command", format!("{argv:?}")),
        Executor::Shell { script } => push("shell", q(script)),
        Executor::Http(h) => {
            push("http.url", q(&h.url));
            push("http.method", q(h.method.as_str()));
            for (k, v) in &h.headers {
                push(&format!("http.headers.{k}"), q(v));
            }
            if let Some(b) = &h.body {
                push("http.body", q(b));
            }
            push(
                "http.expect_status",
                match &h.expect_status {
                    ExpectStatus::Success => "2xx".to_string(),
                    ExpectStatus::Codes(c) => format!("{c:?}"),
                },
            );
            push("http.tls_verify", h.tls_verify.to_string());
        }
    }
    for (k, v) in &spec.env {
        push(&format!("env.{k}"), q(v));
    }
    if let Some(w) = &spec.workdir {
        push("workdir", q(w));
    }
    push(
        "timeout",
        spec.timeout.map_or(q("none"), |t| q(&format_duration(t))),
    );
    push("kill_grace", q(&format_duration(spec.kill_grace)));
    push("max_output", q(&format_size(spec.max_output)));
    push("concurrency", q(spec.concurrency.name()));
    match spec.concurrency {
        Concurrency::Allow { max_instances } => push("max_instances", max_instances.to_string()),
        Concurrency::Queue { depth } => push("queue_depth", depth.to_string()),
        _ => {}
    }
    // Every field that feeds the spec digest is listed, even when it has
    // no effect (jitter_mode without jitter): a change the daemon applies
    // must be a change the plan shows.
    push("jitter", q(&format_duration(spec.jitter.max)));
    let mode = match spec.jitter.mode {
        JitterMode::Stable => "stable",
        JitterMode::Random => "random",
    };
    push("jitter_mode", q(mode));
    if let Some(d) = spec.starting_deadline {
        push("starting_deadline", q(&format_duration(d)));
    }
    push("catch_up", q(spec.catch_up.name()));
    if let CatchUp::All { max } = spec.catch_up {
        push("max_catch_up", max.to_string());
    }
    push("retries", spec.retry.retries.to_string());
    push("retry_backoff", q(&format_duration(spec.retry.backoff)));
    push("retry_max_delay", q(&format_duration(spec.retry.max_delay)));
    let on_remove = match spec.on_remove {
        OnRemove::Drain => "drain",
        OnRemove::Cancel => "cancel",
    };
    push("on_remove", q(on_remove));
    out
}

/// The fields that differ between two versions of a job, in schema order.
pub fn field_changes(old: &JobSpec, new: &JobSpec) -> Vec<FieldChange> {
    field_changes_of(&fields(old), &fields(new))
}

/// [`field_changes`] on flattened jobs, which is how a job crosses a
/// process boundary (`/api/v1/state`): the values are as a user writes
/// them, so two builds of driftcron compare equal where a hash might not.
pub fn field_changes_of(
    old_fields: &[(String, String)],
    new_fields: &[(String, String)],
) -> Vec<FieldChange> {
    let old_map: BTreeMap<&str, &str> = old_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let new_map: BTreeMap<&str, &str> = new_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, _) in old_fields.iter().chain(new_fields.iter()) {
        if !seen.insert(k.as_str()) {
            continue;
        }
        let (o, n) = (old_map.get(k.as_str()), new_map.get(k.as_str()));
        if o != n {
            out.push(FieldChange {
                field: k.clone(),
                old: o.map(|s| s.to_string()),
                new: n.map(|s| s.to_string()),
            });
        }
    }
    out
}

impl Plan {
    /// Whether applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Diffs desired specs against running ones (id → digest). The plan
/// shares the desired specs rather than copying them.
pub fn diff(desired: &BTreeMap<JobId, Arc<JobSpec>>, running: &BTreeMap<JobId, u64>) -> Plan {
    let mut plan = Plan::default();
    // Both maps are sorted by id: one merge pass, no search per job.
    let mut running = running.iter().peekable();
    for (id, spec) in desired {
        while let Some((gone, _)) = running.next_if(|(r, _)| *r < id) {
            plan.delete.push(gone.clone());
        }
        match running.next_if(|(r, _)| *r == id) {
            None => plan.create.push(Arc::clone(spec)),
            Some((_, &d)) if d == spec_digest(spec) => plan.unchanged.push(id.clone()),
            Some(_) => plan.update.push(Arc::clone(spec)),
        }
    }
    plan.delete.extend(running.map(|(gone, _)| gone.clone()));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::specs;

    #[test]
    fn diff_sorts_jobs_into_create_update_delete_unchanged() {
        let old = specs(&[
            ("a.toml", "schedule = \"@daily\"\ncommand = [\"true\"]\n"),
            ("b.toml", "schedule = \"@daily\"\ncommand = [\"true\"]\n"),
            ("c.toml", "schedule = \"@daily\"\ncommand = [\"true\"]\n"),
        ]);
        let running: BTreeMap<JobId, u64> = old
            .iter()
            .map(|(k, v)| (k.clone(), spec_digest(v)))
            .collect();
        let new = specs(&[
            ("a.toml", "schedule = \"@daily\"\ncommand = [\"true\"]\n"),
            ("b.toml", "schedule = \"@hourly\"\ncommand = [\"true\"]\n"),
            ("d.toml", "schedule = \"@daily\"\ncommand = [\"true\"]\n"),
        ]);
        let plan = diff(&new, &running);
        let ids = |v: &[Arc<JobSpec>]| v.iter().map(|s| s.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&plan.create), ["d"]);
        assert_eq!(ids(&plan.update), ["b"]);
        assert_eq!(
            plan.delete
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(
            plan.unchanged
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert!(
            diff(
                &new,
                &new.iter()
                    .map(|(k, v)| (k.clone(), spec_digest(v)))
                    .collect()
            )
            .is_empty()
        );
    }

    /// Maps keep their keys and values in one buffer; the digest must still
    /// see where each key ends, and which map an entry is in.
    #[test]
    fn digest_tells_maps_with_the_same_text_apart() {
        let digest = |extra: &str| {
            let text = format!("schedule = \"@daily\"\ncommand = [\"true\"]\n{extra}");
            let jobs = specs(&[("j.toml", &text)]);
            spec_digest(jobs.values().next().unwrap())
        };
        let cases = [
            "",
            "labels = { ab = \"c\" }\n",
            "labels = { a = \"bc\" }\n",
            "labels = { a = \"b\", c = \"d\" }\n",
            "labels = { a = \"bcd\" }\n",
            "env = { ab = \"c\" }\n",
            "env = { a = \"bc\" }\n",
            "labels = { ab = \"c\" }\nenv = { ab = \"c\" }\n",
        ];
        let digests: Vec<u64> = cases.iter().map(|c| digest(c)).collect();
        for (i, a) in digests.iter().enumerate() {
            for (j, b) in digests.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{:?} vs {:?}", cases[i], cases[j]);
            }
        }
        assert_eq!(digest(cases[1]), digest(cases[1]));
    }

    #[test]
    fn diff_finds_deletions_before_between_and_after_desired_jobs() {
        let job = "schedule = \"@daily\"\ncommand = [\"true\"]\n";
        let old = specs(&[
            ("a.toml", job),
            ("c.toml", job),
            ("e.toml", job),
            ("g.toml", job),
        ]);
        let running: BTreeMap<JobId, u64> = old
            .iter()
            .map(|(k, v)| (k.clone(), spec_digest(v)))
            .collect();
        let plan = diff(
            &specs(&[("b.toml", job), ("c.toml", job), ("f.toml", job)]),
            &running,
        );
        let ids = |v: &[Arc<JobSpec>]| v.iter().map(|s| s.id.to_string()).collect::<Vec<_>>();
        let names = |v: &[JobId]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&plan.create), ["b", "f"]);
        assert!(plan.update.is_empty());
        assert_eq!(names(&plan.unchanged), ["c"]);
        assert_eq!(names(&plan.delete), ["a", "e", "g"]);
    }

    #[test]
    fn field_changes_name_each_field() {
        let old = specs(&[(
            "j.toml",
            "schedule = \"@daily\"\ncommand = [\"true\"]\nenv = { A = \"1\", B = \"2\" }\n",
        )]);
        let new = specs(&[(
            "j.toml",
            "schedule = \"0 3 * * *\"\ncommand = [\"true\"]\nenv = { A = \"1\", C = \"3\" }\ntimeout = \"5m\"\n",
        )]);
        let (o, n) = (old.values().next().unwrap(), new.values().next().unwrap());
        let changes: Vec<(String, Option<String>, Option<String>)> = field_changes(o, n)
            .into_iter()
            .map(|c| (c.field, c.old, c.new))
            .collect();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            changes,
            [
                ("schedule".into(), s("\"@daily\""), s("\"0 3 * * *\"")),
                ("env.B".into(), s("\"2\""), None),
                ("timeout".into(), s("\"1h\""), s("\"5m\"")),
                ("env.C".into(), None, s("\"3\"")),
            ]
        );
    }
}
