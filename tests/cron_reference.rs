//! The cron engine against reference answers computed by Python's cronsim
//! (tests/fixtures/gen_cron_reference.py): DST transitions in several zones,
//! leap days, 5- and 6-field expressions.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use driftcron::spec::Schedule;
use driftcron::spec::schedule::{DstPolicy, ScheduleExpr, format_instant};
use serde_json::Value;

#[test]
fn engine_matches_cronsim_reference_cases() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cron_reference.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 500,
        "expected several hundred reference cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut six_field = 0;
    for case in cases {
        let expr = case["expr"].as_str().unwrap();
        let tz: Tz = case["tz"].as_str().unwrap().parse().unwrap();
        let after: DateTime<Utc> = DateTime::parse_from_rfc3339(case["after"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        let want: Vec<&str> = case["next"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        if expr.split_whitespace().count() == 6 {
            six_field += 1;
        }
        let schedule = Schedule::new(ScheduleExpr::parse(expr).unwrap(), tz, DstPolicy::default());
        let got: Vec<String> = schedule
            .upcoming(after, want.len())
            .into_iter()
            .map(|t| format_instant(t, tz))
            .collect();
        if got != want {
            failures.push(format!(
                "{expr:?} in {tz} after {after}:\n  want {want:?}\n  got  {got:?}"
            ));
        }
    }
    assert!(six_field > 20, "too few 6-field cases: {six_field}");
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
