//! The binary as a user runs it: real processes, real folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_driftcron")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run driftcron")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A schedules folder with one bad job (two errors) and one good one.
fn bad_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("schedules/team");
    std::fs::create_dir_all(&s).unwrap();
    std::fs::write(
        s.join("good.toml"),
        "schedule = \"@daily\"\ncommand = [\"true\"]\n",
    )
    .unwrap();
    std::fs::write(
        s.join("bad.toml"),
        "schedule = \"61 * * * *\"\ntimout = \"5m\"\nshell = \"true\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn bundled_schedules_validate_cleanly() {
    let o = run(&["validate"], &root());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("schedules: 6 jobs valid"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn validate_text_points_at_file_line_column_with_snippet_and_hint() {
    let dir = bad_tree();
    let o = run(&["validate"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("schedules/team/bad.toml:1:13: error: invalid schedule \"61 * * * *\": 61 is out of range for the minute field (0-59)"), "{out}");
    assert!(
        out.contains("1 | schedule = \"61 * * * *\"\n  |             ^^\n"),
        "{out}"
    );
    assert!(
        out.contains("schedules/team/bad.toml:2:1: error: unknown field \"timout\" in a job"),
        "{out}"
    );
    assert!(out.contains("= hint: did you mean \"timeout\"?"), "{out}");
    assert!(
        out.contains("invalid: 2 errors, 0 warnings (1 of 2 job files valid)"),
        "{out}"
    );
}

#[test]
fn validate_json_is_versioned_and_complete() {
    let dir = bad_tree();
    let o = run(&["validate", "schedules", "--format", "json"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format_version"], "1");
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"], 2);
    assert_eq!(v["jobs"], serde_json::json!(["team/good"]));
    let d = &v["diagnostics"][0];
    assert_eq!(d["file"], "schedules/team/bad.toml");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(1), Some(13))
    );
    assert_eq!(d["severity"], "error");
    assert_eq!(d["source_line"], "schedule = \"61 * * * *\"");

    let ok = run(&["validate", "--format", "json"], &root());
    assert!(ok.status.success());
    let v: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["errors"], 0);
}

#[test]
fn validate_github_prints_workflow_annotations() {
    let dir = bad_tree();
    let o = run(&["validate", "--format", "github"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("::error file=schedules/team/bad.toml,line=1,col=13,title=driftcron validate::invalid schedule"), "{out}");
    assert!(
        lines[1].contains("unknown field \"timout\" in a job%0Ahint: did you mean \"timeout\"?"),
        "{out}"
    );
}

#[test]
fn validate_missing_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["validate", "nope"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("schedules folder nope does not exist"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn next_prints_offsets_across_a_dst_gap() {
    let o = run(
        &[
            "next",
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-03-07T12:00:00-05:00",
            "--count",
            "3",
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "2026-03-08T03:00:00-04:00\n2026-03-09T02:30:00-04:00\n2026-03-10T02:30:00-04:00\n"
    );
}

#[test]
fn next_json_has_the_documented_shape() {
    let o = run(
        &[
            "next",
            "0 9 * * MON#1",
            "--after",
            "2026-01-01T00:00:00Z",
            "-n",
            "2",
            "--format",
            "json",
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["expr"], "0 9 * * MON#1");
    assert_eq!(v["timezone"], "UTC");
    assert_eq!(
        v["next"],
        serde_json::json!(["2026-01-05T09:00:00+00:00", "2026-02-02T09:00:00+00:00"])
    );
}

#[test]
fn next_rejects_invalid_expressions_with_the_reason_on_stderr() {
    let o = run(&["next", "* * 31 2 * * *"], &root());
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).contains("has 7 fields; expected 5 or 6"),
        "{}",
        stderr(&o)
    );
    let o = run(&["next", "0 0 * * FRI-MON"], &root());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("runs backwards"), "{}", stderr(&o));
    assert!(stderr(&o).contains("hint:"), "{}", stderr(&o));
    let o = run(&["next", "@daily", "--tz", "Europe/Berln"], &root());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("did you mean Europe/Berlin"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn next_job_previews_zone_policy_and_jitter_separately() {
    let o = run(
        &[
            "next",
            "--job",
            "billing/invoice-sweep",
            "--after",
            "2026-03-27T12:00:00Z",
            "-n",
            "2",
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("timezone  Europe/Berlin"), "{out}");
    assert!(out.contains("dst       gap = shift, fold = first"), "{out}");
    assert!(out.contains("jitter    up to 2m (stable: +"), "{out}");
    // Friday 27th is past 02:30; Monday the 30th is CEST (+02:00) already.
    assert!(
        out.ends_with("2026-03-30T02:30:00+02:00\n2026-03-31T02:30:00+02:00\n"),
        "{out}"
    );

    let o = run(&["next", "--job", "billing/invoice-swep"], &root());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("did you mean \"billing/invoice-sweep\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn every_subcommand_help_has_examples() {
    for sub in ["run", "validate", "next", "plan"] {
        let o = run(&[sub, "--help"], &root());
        assert!(o.status.success());
        assert!(stdout(&o).contains("Examples:"), "{sub}: {}", stdout(&o));
    }
}

/// Every `$ driftcron ...` line in the README runs and exits as the README
/// says (0, unless the line ends with `# exits 1`).
#[test]
fn readme_examples_work() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut ran = 0;
    for line in readme.lines() {
        let Some(cmd) = line.trim().strip_prefix("$ driftcron ") else {
            continue;
        };
        let (cmd, want) = match cmd.split_once("# exits ") {
            Some((c, code)) => (c.trim(), code.trim().parse::<i32>().unwrap()),
            None => (cmd.split(" # ").next().unwrap().trim(), 0),
        };
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("\"$DRIFTCRON\" {cmd}"))
            .env("DRIFTCRON", bin())
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(want),
            "README example `driftcron {cmd}`:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        ran += 1;
    }
    assert!(ran >= 5, "expected README examples, found {ran}");
}

#[test]
fn usage_errors_exit_1_not_2_and_help_exits_0() {
    // 2 means "changes" (plan) and "drift" (drift): a typo in a CI job
    // must not read as either.
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["drift"])
        .env_remove("DRIFTCRON_SERVER")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--server"), "{}", stderr(&o));
    let o = run(&["plan", "--formt", "json"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = run(&["drift", "--help"], dir.path());
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("Exit status: 0 in sync, 2 drift"));
}
