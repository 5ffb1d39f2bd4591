//! The CI recipes under ci/ that users copy: the scripts run for real
//! (the real binary, real git repositories, a live daemon), with temp
//! files standing in for GitHub's `GITHUB_STEP_SUMMARY` and
//! `GITHUB_OUTPUT`; the workflow files parse and name scripts that exist.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::git;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    root().join("ci/scripts").join(name)
}

/// Runs a script with the test's binary as `$DRIFTCRON`, GitHub's files as
/// temp files, and returns (output, summary, outputs).
fn run(name: &str, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> (Output, String, String) {
    let summary = cwd.join(".summary.md");
    let outputs = cwd.join(".outputs");
    let _ = fs::remove_file(&summary);
    let _ = fs::remove_file(&outputs);
    let mut cmd = Command::new("bash");
    cmd.arg(script(name))
        .args(args)
        .current_dir(cwd)
        .env("DRIFTCRON", env!("CARGO_BIN_EXE_driftcron"))
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs)
        .env_remove("DRIFTCRON_API_TOKEN")
        .env_remove("GITHUB_ACTIONS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out,
        fs::read_to_string(summary).unwrap_or_default(),
        fs::read_to_string(outputs).unwrap_or_default(),
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

const JOB: &str = "schedule = \"0 3 * * *\"\ncommand = [\"true\"]\n";

#[test]
fn validate_script_annotates_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("schedules/ok.toml"), JOB);
    let (out, summary, _) = run("validate.sh", &[], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(summary.contains("### driftcron validate"), "{summary}");
    assert!(summary.contains("1 job valid"), "{summary}");

    write(
        &dir.path().join("schedules/bad.toml"),
        "schedule = \"0 25 * * *\"\ncommand = [\"true\"]\n",
    );
    let (out, summary, _) = run("validate.sh", &["schedules"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("::error file=schedules/bad.toml,line=1,"),
        "{}",
        stdout(&out)
    );
    assert!(summary.contains("schedules/bad.toml:1:"), "{summary}");
}

#[test]
fn plan_script_writes_the_comment_and_the_step_output() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    git(work, &["init", "-q", "-b", "main"]);
    write(&work.join("schedules/a.toml"), JOB);
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", "base"]);

    // No change: exit 0, changes=false.
    let (out, summary, outputs) = run("plan.sh", &["--base", "main"], work, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(outputs, "changes=false\n");
    assert!(summary.contains("Plan: 0 to create"), "{summary}");

    // A new job in the working tree: still exit 0, changes=true, and the
    // plan file is the PR comment.
    write(&work.join("schedules/b.toml"), JOB);
    let plan_file = work.join("comment.md");
    let (out, summary, outputs) = run(
        "plan.sh",
        &["--base", "main"],
        work,
        &[("DRIFTCRON_PLAN_FILE", plan_file.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(outputs, "changes=true\n");
    let comment = fs::read_to_string(&plan_file).unwrap();
    assert!(
        comment.contains("Plan: 1 to create, 0 to update, 0 to delete."),
        "{comment}"
    );
    assert_eq!(summary, comment);

    // An invalid head: exit 1, and the comment carries the diagnostics.
    write(&work.join("schedules/b.toml"), "schedule = \"nope\"\n");
    let (out, _, outputs) = run(
        "plan.sh",
        &["--base", "main"],
        work,
        &[("DRIFTCRON_PLAN_FILE", plan_file.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outputs, "changes=false\n");
    let comment = fs::read_to_string(&plan_file).unwrap();
    assert!(comment.contains("nothing would be applied"), "{comment}");
    assert!(comment.contains("b.toml:1:"), "{comment}");

    // Not a plan at all (unknown base): the comment says what failed.
    let (out, _, _) = run(
        "plan.sh",
        &["--base", "no-such-branch"],
        work,
        &[("DRIFTCRON_PLAN_FILE", plan_file.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    let comment = fs::read_to_string(&plan_file).unwrap();
    assert!(comment.contains("driftcron plan failed"), "{comment}");
    assert!(comment.contains("no-such-branch"), "{comment}");
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn drift_script_reports_to_the_summary_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("schedules/a.toml"), JOB);
    let log = dir.path().join("log");
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_driftcron"))
            .args(["run", "--source", "folder", "--listen", "127.0.0.1:0"])
            .args(["--path", "schedules"])
            .current_dir(dir.path())
            .env("DRIFTCRON_API_TOKEN", "tok")
            .stderr(fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.contains("applied")
            && let Some(rest) = text.split("api listening addr=").nth(1)
        {
            break format!("http://{}", rest.split_whitespace().next().unwrap());
        }
        assert!(Instant::now() < end, "daemon did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let env = [
        ("DRIFTCRON_SERVER", url.as_str()),
        ("DRIFTCRON_API_TOKEN", "tok"),
    ];
    let (out, summary, _) = run("drift.sh", &[], dir.path(), &env);
    assert_eq!(out.status.code(), Some(0), "{}\n{summary}", stdout(&out));
    assert!(summary.contains("**In sync"), "{summary}");

    // Drift: a job suspended at run time.
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    s.write_all(
        b"POST /api/v1/jobs/a/suspend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let report = dir.path().join("drift.md");
    let (out, summary, _) = run(
        "drift.sh",
        &[],
        dir.path(),
        &[
            env[0],
            env[1],
            ("GITHUB_ACTIONS", "true"),
            ("DRIFTCRON_REPORT_FILE", report.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(summary.contains("| overridden | `a` |"), "{summary}");
    assert_eq!(fs::read_to_string(report).unwrap(), summary);
    assert!(stdout(&out).contains("::error title=drift%3A overridden a::"));

    // Unreachable: exit 1, nothing in the summary.
    let (out, summary, _) = run(
        "drift.sh",
        &[],
        dir.path(),
        &[("DRIFTCRON_SERVER", "http://127.0.0.1:9")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(summary.is_empty(), "{summary}");
    drop(daemon);
}

#[test]
fn workflows_parse_and_name_scripts_that_exist() {
    for file in [
        "ci/github/driftcron-pr.yml",
        "ci/github/driftcron-drift.yml",
        "ci/gitlab/driftcron.gitlab-ci.yml",
    ] {
        let path = root().join(file);
        let out = Command::new("python3")
            .args(["-c", "import sys, yaml; yaml.safe_load(open(sys.argv[1]))"])
            .arg(&path)
            .output()
            .expect("python3 with PyYAML (ci/test installs it)");
        assert!(
            out.status.success(),
            "{file} is not valid YAML: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = fs::read_to_string(&path).unwrap();
        // On `schedule` events GitHub leaves github.event.repository empty.
        if text.contains("schedule:") {
            assert!(
                !text.contains("${{ github.event.repository"),
                "{file}: github.event.repository is empty on scheduled runs"
            );
        }
        for used in text.split("ci/scripts/").skip(1) {
            let name: String = used
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            if name.is_empty() {
                continue; // "copy ci/scripts/ to ..." in a comment
            }
            let p = script(&name);
            assert!(
                p.is_file(),
                "{file} uses ci/scripts/{name}, which does not exist"
            );
            use std::os::unix::fs::PermissionsExt;
            assert!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o111 != 0,
                "ci/scripts/{name} is not executable"
            );
        }
    }
}
