//! `/metrics` in the OpenMetrics text format (prometheus-client).
//!
//! The scheduler keeps plain counters and fixed histograms in its own task;
//! a scrape asks it for a snapshot and encodes that, so the hot path never
//! touches an atomic or a lock for metrics. Only the reconcile duration is
//! a live histogram (the daemon loop observes it).
//!
//! No metric has a per-job label: a label per job would make the series
//! count grow with the repository. Per-job detail is in `/api/v1/jobs`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::drift::{DriftKind, DriftReport};
use crate::reconcile::View;
use crate::scheduler::RunningState;
use crate::scheduler::state::{DURATION_BUCKETS, Histogram as Fixed, LATENESS_BUCKETS};

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets of the reconcile duration histogram, seconds.
const RECONCILE_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

/// Live metrics the daemon updates.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub reconcile_duration: Histogram,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            reconcile_duration: Histogram::new(RECONCILE_BUCKETS),
        }
    }
}

/// One scrape's data, owned so the registry can hold it (the snapshot is
/// shared, not copied).
#[derive(Debug)]
struct Scrape {
    state: Arc<RunningState>,
    view: Arc<View>,
    drift: Arc<DriftReport>,
}

/// A label value as OpenMetrics spells it: the encoder writes values as
/// they are, and a branch name may hold a quote.
fn label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

type Fmt = Result<(), std::fmt::Error>;

fn counter_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> Fmt {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, *value)];
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(n, None)?;
    }
    Ok(())
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, n: u64) -> Fmt {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&n, None)
}

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> Fmt {
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn gauge_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, i64)],
) -> Fmt {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, n) in values {
        let labels = [(label, *value)];
        m.encode_family(&labels)?.encode_gauge(n)?;
    }
    Ok(())
}

fn histogram(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    bounds: &[f64; 10],
    h: &Fixed,
) -> Fmt {
    // Per-bucket counts: the encoder accumulates them, and spells the
    // last bound (`f64::MAX`) `+Inf`.
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .copied()
        .chain([f64::MAX])
        .zip(h.buckets)
        .collect();
    enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum_ms as f64 / 1000.0, h.count, &buckets, None)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Fmt {
        let s = &self.state;
        let c = &s.counters;
        let jc = &s.job_counts;
        gauge_family(
            &mut enc,
            "jobs",
            "Jobs the scheduler holds, by state.",
            "state",
            &[
                ("active", count(jc.active)),
                ("suspended", count(jc.suspended)),
                ("disabled", count(jc.disabled)),
            ],
        )?;
        gauge(
            &mut enc,
            "jobs_overridden",
            "Jobs whose run-time state differs from git (suspended, resumed or triggered through the API).",
            count(jc.overridden),
        )?;
        counter(&mut enc, "fires", "Schedule slots that came due.", c.fires)?;
        counter(&mut enc, "runs_started", "Executions started.", c.started)?;
        counter_family(
            &mut enc,
            "runs",
            "Finished executions, by outcome.",
            "outcome",
            &[
                ("succeeded", c.succeeded),
                ("failed", c.failed),
                ("timed_out", c.timed_out),
                ("cancelled", c.cancelled),
                ("spawn_failed", c.spawn_failed),
            ],
        )?;
        counter_family(
            &mut enc,
            "runs_missed",
            "Slots that did not run because they were too late, by reason.",
            "reason",
            &[
                ("misfire", c.missed_misfire),
                ("starting_deadline", c.missed_starting_deadline),
                ("retry_abandoned", c.retries_abandoned),
            ],
        )?;
        counter_family(
            &mut enc,
            "runs_skipped",
            "Runs not started because a policy or a bound said so, by reason.",
            "reason",
            &[
                ("forbid", c.skipped_forbid),
                ("max_instances", c.skipped_max_instances),
                ("job_queue_full", c.job_queue_overflow),
                ("global_queue_full", c.global_queue_overflow),
                ("job_changed", c.dropped_on_change),
                ("shutdown", c.dropped_on_shutdown),
            ],
        )?;
        counter(
            &mut enc,
            "runs_replaced",
            "Executions cancelled by concurrency = \"replace\".",
            c.replaced,
        )?;
        counter(
            &mut enc,
            "runs_triggered",
            "Executions started by hand (API).",
            c.triggered,
        )?;
        counter(
            &mut enc,
            "retries_scheduled",
            "Retries scheduled after a failure.",
            c.retries_scheduled,
        )?;
        counter_family(
            &mut enc,
            "processes_killed",
            "Process groups that needed SIGKILL, by why.",
            "reason",
            &[("kill_grace", c.killed), ("straggler", c.stragglers_killed)],
        )?;
        histogram(
            &mut enc,
            "run_duration",
            "Duration of finished executions.",
            &DURATION_BUCKETS,
            &c.duration,
        )?;
        histogram(
            &mut enc,
            "fire_lateness",
            "How long after its slot an execution started (jitter and queueing included).",
            &LATENESS_BUCKETS,
            &c.lateness,
        )?;
        gauge(
            &mut enc,
            "running_executions",
            "Executions running now.",
            count(s.running),
        )?;
        gauge(
            &mut enc,
            "running_executions_limit",
            "The global max_running.",
            i64::from(s.max_running),
        )?;
        gauge(
            &mut enc,
            "queue_depth",
            "Runs waiting for a free slot.",
            count(s.queued),
        )?;
        gauge(
            &mut enc,
            "queue_limit",
            "The global max_queued.",
            i64::from(s.max_queued),
        )?;
        gauge(
            &mut enc,
            "leaked_tasks",
            "Executions or process groups that should not exist any more.",
            count(s.leaked.len()),
        )?;
        counter(
            &mut enc,
            "audit_runs",
            "Invariant audits run.",
            c.audit_runs,
        )?;
        counter(
            &mut enc,
            "audit_violations",
            "Invariant violations the audit found.",
            c.audit_violations,
        )?;
        let kinds: Vec<(&str, i64)> = DriftKind::ALL
            .iter()
            .map(|k| (k.name(), count(self.drift.count(*k))))
            .collect();
        gauge_family(
            &mut enc,
            "drift_items",
            "Differences between git and what runs, by kind.",
            "kind",
            &kinds,
        )?;
        let status = &self.view.status;
        let has = |kind: &str| i64::from(status.conditions.iter().any(|c| c.kind() == kind));
        let conditions: Vec<(&str, i64)> = ["Ready", "Stalled", "FetchFailed"]
            .into_iter()
            .map(|k| (k, has(k)))
            .collect();
        gauge_family(
            &mut enc,
            "condition",
            "Reconcile conditions (1 = true).",
            "type",
            &conditions,
        )?;
        if let Some(t) = self.view.last_fetch_ok {
            gauge(
                &mut enc,
                "last_successful_fetch_timestamp_seconds",
                "When the source was last read successfully (Unix time).",
                t.timestamp(),
            )?;
        }
        if let Some(rev) = &status.applied_revision {
            let rev = label_value(rev);
            let labels = [("revision", rev.as_str())];
            enc.encode_descriptor(
                "applied_revision",
                "The revision the scheduler runs.",
                None,
                MetricType::Info,
            )?
            .encode_info(&labels)?;
        }
        Ok(())
    }
}

/// Encodes one scrape.
pub fn render(
    state: &Arc<RunningState>,
    view: &Arc<View>,
    drift: &Arc<DriftReport>,
    live: &Telemetry,
) -> String {
    let mut registry = Registry::with_prefix("driftcron");
    registry.register_with_unit(
        "reconcile_duration",
        "Duration of reconcile attempts (fetch, load, plan, apply)",
        Unit::Seconds,
        live.reconcile_duration.clone(),
    );
    registry.register_collector(Box::new(Scrape {
        state: state.clone(),
        view: view.clone(),
        drift: drift.clone(),
    }));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
