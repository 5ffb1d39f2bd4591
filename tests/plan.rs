//! `driftcron plan` on real repositories made in temp dirs.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::git;

fn plan(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftcron"))
        .arg("plan")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A repo on main with three jobs committed.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    write(
        d,
        "schedules/keep.toml",
        "schedule = \"@daily\"\ncommand = [\"true\"]\n",
    );
    write(
        d,
        "schedules/change.toml",
        "schedule = \"*/15 * * * *\"\ncommand = [\"true\"]\n",
    );
    write(
        d,
        "schedules/gone.toml",
        "schedule = \"@hourly\"\ncommand = [\"true\"]\n",
    );
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "base"]);
    dir
}

#[test]
fn no_changes_exit_zero() {
    let dir = repo();
    let o = plan(dir.path(), &["--base", "main"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("No changes") && out.contains("Plan: 0 to create, 0 to update, 0 to delete."),
        "{out}"
    );
}

#[test]
fn create_update_delete_with_fires_dst_notes_diffs_and_forecast() {
    let dir = repo();
    let d = dir.path();
    write(
        d,
        "schedules/team/new.toml",
        "schedule = \"30 2 * * *\"\ntimezone = \"America/New_York\"\ncommand = [\"true\"]\n",
    );
    write(
        d,
        "schedules/change.toml",
        "schedule = \"*/5 * * * *\"\ncommand = [\"true\"]\ntimeout = \"5m\"\n",
    );
    fs::remove_file(d.join("schedules/gone.toml")).unwrap();

    let o = plan(d, &["--base", "main"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("+ team/new (create)"), "{out}");
    assert!(out.contains("~ change (update)"), "{out}");
    assert!(
        out.contains("schedule: \"*/15 * * * *\" -> \"*/5 * * * *\""),
        "{out}"
    );
    assert!(out.contains("timeout: \"1h\" -> \"5m\""), "{out}");
    assert!(out.contains("- gone (delete)"), "{out}");
    assert!(out.contains("next fires (America/New_York): "), "{out}");
    assert!(
        out.contains("next fires before (UTC)") && out.contains("next fires after  (UTC)"),
        "{out}"
    );
    assert!(
        out.contains("note: team/new: schedule \"30 2 * * *\" falls in the DST gap"),
        "{out}"
    );
    assert!(
        out.contains("-schedule = \"*/15 * * * *\"\n+schedule = \"*/5 * * * *\""),
        "{out}"
    );
    assert!(
        out.contains("Load forecast (7 days): busiest minute"),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with("Plan: 1 to create, 1 to update, 1 to delete."),
        "{out}"
    );

    let o = plan(d, &["--base", "main", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format_version"], "1");
    assert_eq!(
        v["summary"],
        serde_json::json!({"create": 1, "update": 1, "delete": 1, "unchanged": 1})
    );
    assert_eq!(v["jobs"][0]["id"], "change");
    assert_eq!(v["jobs"][0]["next_new"].as_array().unwrap().len(), 5);

    // Committed head vs base: same answer.
    git(d, &["checkout", "-q", "-b", "feature"]);
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "change"]);
    let o = plan(
        d,
        &[
            "--base", "main", "--head", "feature", "--format", "markdown",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(
        md.contains("**Plan: 1 to create, 1 to update, 1 to delete.**"),
        "{md}"
    );
    assert!(
        md.contains("| ~ | `change` | `schedule`, `timeout` |"),
        "{md}"
    );
    // Default base: the merge base of HEAD (feature) with main, i.e. main's
    // commit; the head is the working tree (feature's content).
    let o = plan(d, &[]);
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("driftcron plan: sha1:"), "{out}");
    assert!(
        out.contains("Plan: 1 to create, 1 to update, 1 to delete."),
        "{out}"
    );
}

#[test]
fn an_invalid_head_exits_one_with_the_diagnostics() {
    let dir = repo();
    write(
        dir.path(),
        "schedules/bad.toml",
        "schedule = \"61 * * * *\"\ncommand = [\"true\"]\n",
    );
    let o = plan(dir.path(), &["--base", "main"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("schedules/bad.toml:1:13: error: invalid schedule"),
        "{out}"
    );
    let o = plan(dir.path(), &["--base", "no-such-rev"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-rev"));
}

#[test]
fn markdown_stays_under_the_comment_limit() {
    let dir = repo();
    let long = "x".repeat(3000);
    for i in 0..300 {
        write(
            dir.path(),
            &format!("schedules/bulk/j{i:03}.toml"),
            &format!("description = \"{long}\"\nschedule = \"@daily\"\ncommand = [\"true\"]\n"),
        );
    }
    let o = plan(dir.path(), &["--base", "main", "--format", "markdown"]);
    assert_eq!(o.status.code(), Some(2));
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.len() <= 65_000, "{} bytes", md.len());
    assert!(
        md.contains("Truncated to fit a comment"),
        "{}",
        &md[md.len() - 500..]
    );
    assert!(md.contains("**Plan: 300 to create, 0 to update, 0 to delete.**"));
    // No table row is cut in half.
    for line in md.lines().filter(|l| l.starts_with("| + |")) {
        assert!(line.ends_with("| create |"), "{line}");
    }
}

// Regressions found in review.

#[test]
fn a_settings_only_change_is_a_change() {
    let dir = repo();
    write(
        dir.path(),
        "schedules/driftcron.toml",
        "[scheduler]\nmax_running = 1\n",
    );
    let o = plan(dir.path(), &["--base", "main"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("driftcron.toml settings change"));
}

#[test]
fn dst_notes_come_from_inherited_schedules_too() {
    let dir = repo();
    write(
        dir.path(),
        "schedules/team/_defaults.toml",
        "timezone = \"Europe/Berlin\"\n",
    );
    write(
        dir.path(),
        "schedules/team/new.toml",
        "schedule = \"30 2 * * *\"\ncommand = [\"true\"]\n",
    );
    let out = String::from_utf8_lossy(&plan(dir.path(), &["--base", "main"]).stdout).into_owned();
    assert!(out.contains("falls in the DST gap"), "{out}");
}

#[test]
fn invalid_head_diagnostics_follow_the_format_and_fences_survive_backticks() {
    let dir = repo();
    write(
        dir.path(),
        "schedules/bad.toml",
        "schedule = \"61 * * * *\"\ncommand = [\"true\"]\n",
    );
    let o = plan(dir.path(), &["--base", "main", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON even for an invalid head");
    assert_eq!(v["valid"], false);
    fs::remove_file(dir.path().join("schedules/bad.toml")).unwrap();

    write(
        dir.path(),
        "schedules/tick.toml",
        "schedule = \"@daily\"\nshell = 'echo ```; echo done'\n",
    );
    let md = String::from_utf8_lossy(
        &plan(dir.path(), &["--base", "main", "--format", "markdown"]).stdout,
    )
    .into_owned();
    assert!(
        md.contains("````\n"),
        "a fence longer than the content's backticks: {md}"
    );
}

#[test]
fn thousands_of_creates_stay_under_the_limit() {
    let dir = repo();
    for i in 0..5000 {
        write(
            dir.path(),
            &format!("schedules/bulk/job-with-a-long-name-{i:05}.toml"),
            "schedule = \"* * * * *\"\ncommand = [\"true\"]\n",
        );
    }
    let md = String::from_utf8_lossy(
        &plan(dir.path(), &["--base", "main", "--format", "markdown"]).stdout,
    )
    .into_owned();
    assert!(md.chars().count() <= 65_000, "{} chars", md.chars().count());
    assert!(md.contains("Truncated to fit a comment"));
}
