//! The HTTP API, `/metrics` and `driftcron drift`, against the real daemon
//! (a child process) on real folders and real git repositories. HTTP is
//! spoken over plain sockets so that malformed requests can be sent too.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::git;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_driftcron")
}

const TOKEN: &str = "t0ken-for-tests";

struct Daemon {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Daemon {
    /// Starts `driftcron run` with `args` (plus a free loopback port) and
    /// waits until the API listens.
    fn start(args: &[&str], env: &[(&str, &str)], cwd: &Path, log: &Path) -> Daemon {
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .args(["--listen", "127.0.0.1:0", "--shutdown-timeout", "2s"])
            .args(args)
            .env("DRIFTCRON_LOG", "info")
            .env_remove("DRIFTCRON_API_TOKEN")
            .env_remove("DRIFTCRON_WEBHOOK_SECRET")
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut d = Daemon {
            child,
            log: log.to_path_buf(),
            port: 0,
        };
        let end = Instant::now() + Duration::from_secs(20);
        while d.port == 0 {
            assert!(Instant::now() < end, "the API never listened:\n{}", d.log());
            if let Some(rest) = d.log().split("api listening addr=127.0.0.1:").nth(1) {
                d.port = rest
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n"));
        http(self.port, "GET", path, auth.as_deref().unwrap_or(""), b"")
    }

    fn post(&self, path: &str, token: Option<&str>) -> Resp {
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n"));
        http(self.port, "POST", path, auth.as_deref().unwrap_or(""), b"")
    }

    fn json(&self, path: &str, token: Option<&str>) -> serde_json::Value {
        let r = self.get(path, token);
        assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.body, self.log());
        r.json()
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; daemon log:\n{}", self.log());
    }

    /// `driftcron drift` against this daemon.
    fn drift(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(["drift", "--server", &self.url()])
            .args(args)
            .env_remove("DRIFTCRON_API_TOKEN")
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection.
fn http(port: u16, method: &str, path: &str, headers: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let host = if headers.to_lowercase().contains("host:") {
        ""
    } else {
        "Host: localhost\r\n"
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\n{host}Connection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(s)
}

fn read_response(mut s: TcpStream) -> Resp {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// `driftcron run` in folder mode on a temp `schedules/` holding `files`.
/// Returns the temp dir (which also holds the log) with the daemon.
fn folder_daemon(files: &[(&str, &str)], args: &[&str]) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let schedules = dir.path().join("schedules");
    for (name, text) in files {
        write(&schedules.join(name), text);
    }
    let mut all = vec!["--source", "folder", "--path", "schedules"];
    all.extend_from_slice(args);
    let d = Daemon::start(&all, &[], dir.path(), &dir.path().join("log"));
    (dir, d)
}

const EVERY_MINUTE: &str = "schedule = \"* * * * *\"\ncommand = [\"true\"]\n";

#[test]
fn auth_jobs_overrides_and_drift_exit_codes() {
    let tokdir = tempfile::tempdir().unwrap();
    let token = tokdir.path().join("token");
    fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let (_dir, d) = folder_daemon(
        &[("a.toml", EVERY_MINUTE), ("team/b.toml", EVERY_MINUTE)],
        &["--api-token-file", token.to_str().unwrap()],
    );
    d.wait_for("ready", Duration::from_secs(10), || {
        d.get("/readyz", None).status == 200
    });
    assert_eq!(d.get("/healthz", None).status, 200);

    // The status page: counts and the verdict for anyone, job content
    // only with the token.
    let page = d.get("/", None);
    assert_eq!(page.status, 200);
    assert!(page.head.to_lowercase().contains("text/html"));
    assert!(page.body.contains("2 jobs: 2 active"), "{}", page.body);
    assert!(page.body.contains("In sync"), "{}", page.body);
    assert!(!page.body.contains("team/b"), "{}", page.body);
    let page = d.get("/", Some(TOKEN));
    assert!(page.body.contains(">team/b</a>"), "{}", page.body);

    // A configured token guards reads too.
    let r = d.get("/api/v1/jobs", None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.head.to_lowercase().contains("www-authenticate: bearer"));
    assert!(r.json()["error"].as_str().unwrap().contains("Bearer"));
    assert_eq!(d.get("/api/v1/jobs", Some("wrong")).status, 401);
    let jobs = d.json("/api/v1/jobs", Some(TOKEN));
    let ids: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "team/b"]);
    assert_eq!(jobs["counts"]["active"], 2);

    // One job: spec, digest, ten next fires, state.
    let b = d.json("/api/v1/jobs/team/b", Some(TOKEN));
    assert_eq!(b["spec"]["schedule"], "\"* * * * *\"");
    assert_eq!(b["next_fires"].as_array().unwrap().len(), 10);
    assert_eq!(b["digest"], b["state"]["spec_digest"]);
    let r = d.get("/api/v1/jobs/nope", Some(TOKEN));
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    assert_eq!(d.get("/api/v1/nothing-here", Some(TOKEN)).status, 404);

    // In sync: exit 0.
    let tok = token.to_str().unwrap();
    let out = d.drift(&["--token-file", tok]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).starts_with("In sync"), "{}", stdout(&out));

    // Mutations: no token, a wrong one, the right one.
    assert_eq!(d.post("/api/v1/jobs/team/b/suspend", None).status, 401);
    assert_eq!(
        d.post("/api/v1/jobs/team/b/suspend", Some("nope")).status,
        401
    );
    assert_eq!(
        d.post("/api/v1/jobs/team/b/explode", Some(TOKEN)).status,
        404
    );
    assert_eq!(
        d.post("/api/v1/jobs/ghost/suspend", Some(TOKEN)).status,
        404
    );
    let r = d.post("/api/v1/jobs/team/b/suspend", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);

    // Suspended through the API: overridden, exit 2, unless --fail-on
    // leaves the kind out.
    let report = d.json("/api/v1/drift", Some(TOKEN));
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["items"][0]["kind"], "overridden");
    assert_eq!(report["items"][0]["job"], "team/b");
    let out = d.drift(&["--token-file", tok]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).contains("overridden"), "{}", stdout(&out));
    assert!(stdout(&out).contains("team/b is suspended through the API"));
    let out = d.drift(&["--token-file", tok, "--fail-on", "missing,leaked"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = d.drift(&["--token-file", tok, "--format", "markdown"]);
    assert!(
        stdout(&out).contains("| overridden | `team/b` |"),
        "{}",
        stdout(&out)
    );
    let out = d.drift(&["--token-file", tok, "--format", "github"]);
    assert!(
        stdout(&out).contains("::error title=drift%3A overridden team/b::"),
        "{}",
        stdout(&out)
    );
    let out = d.drift(&["--token-file", tok, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);

    // Resumed: in sync again.
    assert_eq!(
        d.post("/api/v1/jobs/team/b/resume", Some(TOKEN)).status,
        200
    );
    assert_eq!(d.drift(&["--token-file", tok]).status.code(), Some(0));

    // A trigger returns the run id it started.
    let r = d.post("/api/v1/jobs/a/trigger", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["run_id"].as_str().unwrap().starts_with("a@"));

    // Errors are exit 1: a refused token, no server, a bad flag.
    let out = d.drift(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    let out = Command::new(bin())
        .args(["drift", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
    let out = d.drift(&["--token-file", tok, "--fail-on", "nonsense"]);
    assert_eq!(out.status.code(), Some(1), "a usage error is not drift");
    assert!(
        stderr(&out).contains("unknown drift kind"),
        "{}",
        stderr(&out)
    );
}

/// `/metrics` as Prometheus' own Python client parses it (OpenMetrics,
/// strict), flattened to `name{labels} value` lines.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{fam.type} {s.name}{{{labels}}} {s.value}")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (ci/test installs it with prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected /metrics: {}\n{text}",
        stderr(&out)
    );
    stdout(&out)
        .lines()
        .map(|l| {
            let mut parts = l.splitn(2, ' ');
            let _type = parts.next();
            let rest = parts.next().unwrap();
            let (name, value) = rest.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_parse_as_openmetrics_and_count_runs() {
    let (_dir, d) = folder_daemon(
        &[
            (
                "tick.toml",
                "schedule = \"* * * * * *\"\ncommand = [\"true\"]\n",
            ),
            (
                "off.toml",
                "enabled = false\nschedule = \"@daily\"\ncommand = [\"true\"]\n",
            ),
        ],
        &[],
    );
    d.wait_for("two runs", Duration::from_secs(15), || {
        d.json("/api/v1/status", None)["counters"]["succeeded"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    });
    let r = d.get("/metrics", None);
    assert_eq!(r.status, 200);
    assert!(
        r.head
            .to_lowercase()
            .contains("application/openmetrics-text"),
        "{}",
        r.head
    );
    let samples = parse_metrics(&r.body);
    let value = |name: &str| {
        samples
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no sample {name} in:\n{}", r.body))
            .1
    };
    assert!(value("driftcron_runs_total{outcome=\"succeeded\"}") >= 2.0);
    assert_eq!(value("driftcron_runs_total{outcome=\"failed\"}"), 0.0);
    assert_eq!(value("driftcron_jobs{state=\"active\"}"), 1.0);
    assert_eq!(value("driftcron_jobs{state=\"disabled\"}"), 1.0);
    assert!(value("driftcron_fire_lateness_seconds_count{}") >= 2.0);
    assert!(value("driftcron_fire_lateness_seconds_bucket{le=\"+Inf\"}") >= 2.0);
    assert!(value("driftcron_run_duration_seconds_count{}") >= 2.0);
    assert!(value("driftcron_reconcile_duration_seconds_count{}") >= 1.0);
    assert_eq!(value("driftcron_drift_items{kind=\"missing\"}"), 0.0);
    assert_eq!(value("driftcron_leaked_tasks{}"), 0.0);
    assert_eq!(value("driftcron_condition{type=\"Ready\"}"), 1.0);
    assert!(value("driftcron_last_successful_fetch_timestamp_seconds{}") > 1.7e9);
    assert!(
        samples.iter().any(|(n, v)| n
            .starts_with("driftcron_applied_revision_info{revision=\"dir@sha256:")
            && *v == 1.0),
        "{}",
        r.body
    );
    // No per-job labels: the series count does not grow with the jobs.
    assert!(!r.body.contains("tick"), "{}", r.body);
}

/// A bare remote, a working clone that pushes to it, and helpers.
struct Repo {
    remote: PathBuf,
    work: PathBuf,
}

impl Repo {
    fn new(dir: &Path) -> Repo {
        let remote = dir.join("remote.git");
        let work = dir.join("work");
        fs::create_dir_all(&work).unwrap();
        git(
            dir,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                remote.to_str().unwrap(),
            ],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", remote.to_str().unwrap()],
        );
        Repo { remote, work }
    }

    /// Writes (`Some`) or deletes (`None`) files, commits, and pushes
    /// unless `push` is false.
    fn commit(&self, files: &[(&str, Option<&str>)], msg: &str, push: bool) -> String {
        for (path, text) in files {
            let p = self.work.join(path);
            match text {
                Some(t) => write(&p, t),
                None => {
                    let _ = fs::remove_file(&p);
                }
            }
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", msg]);
        if push {
            git(&self.work, &["push", "-q", "-f", "origin", "main"]);
        }
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn url(&self) -> String {
        format!("file://{}", self.remote.display())
    }
}

/// A job whose process ignores SIGTERM and runs long: once its job leaves
/// git, `drain` lets it run on, and past its grace it is a leaked task.
const STUBBORN: &str = r#"schedule = "* * * * * *"
shell = "trap '' TERM; echo started; sleep 600"
kill_grace = "1s"
on_remove = "drain"
concurrency = "forbid"
"#;

#[test]
fn drift_kinds_appear_and_disappear_on_a_live_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    repo.commit(
        &[
            ("schedules/keep.toml", Some(EVERY_MINUTE)),
            ("schedules/stubborn.toml", Some(STUBBORN)),
        ],
        "two jobs",
        true,
    );
    let d = Daemon::start(
        &[
            "--repo",
            &repo.url(),
            "--branch",
            "main",
            "--poll",
            "1h",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
        &[("DRIFTCRON_API_TOKEN", TOKEN)],
        dir.path(),
        &dir.path().join("log"),
    );
    let tok = dir.path().join("token");
    fs::write(&tok, TOKEN).unwrap();
    let tok = tok.to_str().unwrap();
    let work = repo.work.to_str().unwrap();
    d.wait_for("stubborn to run", Duration::from_secs(15), || {
        let j = d.get("/api/v1/jobs/stubborn", Some(TOKEN));
        j.status == 200 && !j.json()["state"]["active"].as_array().unwrap().is_empty()
    });
    let out = d.drift(&["--token-file", tok]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = d.drift(&["--token-file", tok, "--ref", "HEAD", "--repo", work]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // --ref ahead of the daemon (committed, not pushed): stale and missing,
    // computed from the local checkout.
    repo.commit(
        &[("schedules/extra.toml", Some(EVERY_MINUTE))],
        "extra",
        false,
    );
    let out = d.drift(&[
        "--token-file",
        tok,
        "--ref",
        "HEAD",
        "--repo",
        work,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<(&str, Option<&str>)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["kind"].as_str().unwrap(), i["job"].as_str()))
        .collect();
    assert_eq!(kinds, [("stale", None), ("missing", Some("extra"))]);
    assert!(
        v["items"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("not applied yet")
    );
    // The daemon's own view does not know yet: it has not fetched.
    assert_eq!(d.drift(&["--token-file", tok]).status.code(), Some(0));
    // A ref that does not exist is an error, not drift.
    let out = d.drift(&["--token-file", tok, "--ref", "no-such-ref", "--repo", work]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("no-such-ref"), "{}", stderr(&out));

    // An invalid commit: stale, with file:line, and the jobs run on.
    repo.commit(
        &[(
            "schedules/broken.toml",
            Some("schedule = \"61 * * * *\"\ncommand = [\"true\"]\n"),
        )],
        "broken",
        true,
    );
    let r = d.post("/api/v1/reconcile", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "stalled", "{}", r.body);
    let report = d.json("/api/v1/drift", Some(TOKEN));
    let stale = &report["items"][0];
    assert_eq!(stale["kind"], "stale", "{report}");
    assert!(
        stale["summary"].as_str().unwrap().contains("invalid"),
        "{report}"
    );
    assert!(
        stale["details"][0]
            .as_str()
            .unwrap()
            .starts_with("broken.toml:1:"),
        "{report}"
    );
    assert_eq!(
        d.get("/readyz", None).status,
        200,
        "still serving the last good revision"
    );
    let out = d.drift(&["--token-file", tok]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("broken.toml:1:"), "{}", stdout(&out));

    // Fixed (and `extra` pushed with it): stale is gone, and --ref agrees.
    repo.commit(&[("schedules/broken.toml", None)], "fix", true);
    let r = d.post("/api/v1/reconcile", Some(TOKEN));
    assert_eq!(r.json()["outcome"], "applied", "{}", r.body);
    let out = d.drift(&["--token-file", tok]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = d.drift(&["--token-file", tok, "--ref", "HEAD", "--repo", work]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // The stubborn job leaves git: its execution drains, ignores SIGTERM,
    // outlives its 1 s grace, and is reported as leaked with its pid.
    repo.commit(
        &[("schedules/stubborn.toml", None)],
        "remove stubborn",
        true,
    );
    assert_eq!(
        d.post("/api/v1/reconcile", Some(TOKEN)).json()["outcome"],
        "applied"
    );
    let mut pid = 0;
    d.wait_for("a leaked task", Duration::from_secs(15), || {
        let report = d.json("/api/v1/drift", Some(TOKEN));
        let leaked = report["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == "leaked")
            .cloned();
        if let Some(l) = leaked {
            assert_eq!(l["job"], "stubborn");
            let summary = l["summary"].as_str().unwrap();
            pid = summary
                .split("(pid ")
                .nth(1)
                .unwrap()
                .split(')')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            return true;
        }
        false
    });
    assert!(pid > 1);
    let out = d.drift(&["--token-file", tok, "--fail-on", "leaked"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("leaked"), "{}", stdout(&out));
    let metrics = d.get("/metrics", None).body;
    assert!(metrics.contains("driftcron_leaked_tasks 1"), "{metrics}");

    // Killed by hand: the leak is gone.
    // SAFETY: kill(2) on the process group the daemon reported.
    assert_eq!(unsafe { libc::kill(-pid, libc::SIGKILL) }, 0);
    d.wait_for("the leak to clear", Duration::from_secs(15), || {
        d.drift(&["--token-file", tok]).status.code() == Some(0)
    });
}

#[test]
fn webhook_signatures_bodies_and_disabled_mutations() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    repo.commit(&[("schedules/one.toml", Some(EVERY_MINUTE))], "one", true);
    const SECRET: &str = "hook-secret";
    let d = Daemon::start(
        &[
            "--repo",
            &repo.url(),
            "--poll",
            "1h",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
        &[("DRIFTCRON_WEBHOOK_SECRET", SECRET)],
        dir.path(),
        &dir.path().join("log"),
    );
    d.wait_for("ready", Duration::from_secs(15), || {
        d.get("/readyz", None).status == 200
    });

    // No API token configured: reads are open, mutations are disabled.
    assert_eq!(d.get("/api/v1/status", None).status, 200);
    let r = d.post("/api/v1/reconcile", Some("anything"));
    assert_eq!(r.status, 403);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("DRIFTCRON_API_TOKEN")
    );
    assert_eq!(d.post("/api/v1/jobs/one/suspend", None).status, 403);

    repo.commit(&[("schedules/two.toml", Some(EVERY_MINUTE))], "two", true);
    let before = d.json("/api/v1/status", None);
    let body = br#"{"ref":"refs/heads/main","after":"0000"}"#;
    let sig = driftcron::api::github_signature(SECRET, body);
    let hook = |headers: &str, body: &[u8]| http(d.port, "POST", "/hooks/git", headers, body);

    // Missing, invalid, malformed, and wrong-token signatures.
    assert_eq!(hook("", body).status, 401);
    let r = hook("X-Hub-Signature-256: sha256=00\r\n", body);
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].as_str().unwrap().contains("signature"));
    let wrong = driftcron::api::github_signature("not-the-secret", body);
    assert_eq!(
        hook(&format!("X-Hub-Signature-256: {wrong}\r\n"), body).status,
        401
    );
    // The signature of another body does not pass for this one.
    assert_eq!(
        hook(
            &format!("X-Hub-Signature-256: {sig}\r\n"),
            b"{\"ref\":\"evil\"}"
        )
        .status,
        401
    );
    assert_eq!(hook("X-Gitlab-Token: nope\r\n", body).status, 401);
    // Oversized: refused from the declared length, before reading.
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /hooks/git HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: 30000000\r\n\r\nabc"
    )
    .unwrap();
    assert_eq!(read_response(s).status, 413);
    // Not HTTP at all: the connection is dropped, the daemon lives on.
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"\x00\x01garbage\r\n\r\n\xff\xfe").unwrap();
    let _ = read_response(s);
    assert_eq!(d.get("/healthz", None).status, 200);
    // None of that made the daemon fetch: its last attempt is the same a
    // moment later.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        d.json("/api/v1/status", None)["last_attempt"],
        before["last_attempt"]
    );
    assert_eq!(
        d.json("/api/v1/jobs", None)["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // With no token, job content is served only to loopback host names
    // (DNS rebinding); the probes and the webhook answer any name.
    let rebind = http(
        d.port,
        "GET",
        "/api/v1/status",
        "Host: evil.example\r\n",
        b"",
    );
    assert_eq!(rebind.status, 403, "{}", rebind.body);
    assert!(
        rebind.json()["error"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );
    assert_eq!(
        http(d.port, "GET", "/", "Host: evil.example:8787\r\n", b"").status,
        403
    );
    assert_eq!(
        http(d.port, "GET", "/metrics", "Host: evil.example\r\n", b"").status,
        200
    );
    // The wrong method is a JSON error too.
    let r = http(d.port, "DELETE", "/api/v1/jobs", "", b"");
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].as_str().unwrap().contains("method"));

    // A valid GitHub signature: accepted, and the push is applied (the
    // body's content is never used: any bytes, correctly signed, nudge).
    let garbage = b"\x00not json at all\xff";
    let gsig = driftcron::api::github_signature(SECRET, garbage);
    let r = hook(&format!("X-Hub-Signature-256: {gsig}\r\n"), garbage);
    assert_eq!(r.status, 202, "{}", r.body);
    d.wait_for("the pushed job", Duration::from_secs(10), || {
        d.json("/api/v1/jobs", None)["jobs"]
            .as_array()
            .unwrap()
            .len()
            == 2
    });

    // GitLab's token works as well.
    repo.commit(
        &[("schedules/three.toml", Some(EVERY_MINUTE))],
        "three",
        true,
    );
    let r = hook(&format!("X-Gitlab-Token: {SECRET}\r\n"), body);
    assert_eq!(r.status, 202, "{}", r.body);
    d.wait_for("the second pushed job", Duration::from_secs(10), || {
        d.json("/api/v1/jobs", None)["jobs"]
            .as_array()
            .unwrap()
            .len()
            == 3
    });
}

#[test]
fn readyz_waits_for_a_valid_revision() {
    let (dir, d) = folder_daemon(
        &[("bad.toml", "schedule = \"nope\"\ncommand = [\"true\"]\n")],
        &[],
    );
    let schedules = dir.path().join("schedules");
    d.wait_for("a stalled status", Duration::from_secs(10), || {
        d.json("/api/v1/status", None)["conditions"]
            .to_string()
            .contains("Stalled")
    });
    let r = d.get("/readyz", None);
    assert_eq!(r.status, 503, "{}", r.body);
    // Open to anyone: the condition's kind, not the job file's content.
    assert_eq!(
        r.json()["conditions"],
        serde_json::json!(["Stalled"]),
        "{}",
        r.body
    );
    let status = d.json("/api/v1/status", None);
    assert!(
        status["conditions"].to_string().contains("bad.toml:1:"),
        "{status}"
    );
    assert_eq!(d.get("/healthz", None).status, 200, "alive, just not ready");
    write(&schedules.join("bad.toml"), EVERY_MINUTE);
    d.wait_for("ready", Duration::from_secs(10), || {
        d.get("/readyz", None).status == 200
    });
}

#[test]
fn the_api_refuses_the_network_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let schedules = Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules");
    // A regression would start a daemon that never exits: it is killed
    // after 10 s so the test fails instead of hanging.
    let run = |listen: &str| {
        let child = Command::new(bin())
            .args(["run", "--source", "folder", "--listen", listen, "--path"])
            .arg(&schedules)
            .env_remove("DRIFTCRON_API_TOKEN")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = child;
        let end = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > end {
                let _ = child.kill();
                panic!("--listen {listen} was not refused: the daemon is still running");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    };
    let out = run("0.0.0.0:0");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a loopback address"),
        "{}",
        stderr(&out)
    );
    let out = run("localhost");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected an address"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_daemon_that_never_read_its_source_is_not_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let gone = format!("file://{}/no-such-repo.git", dir.path().display());
    let d = Daemon::start(
        &[
            "--repo",
            &gone,
            "--poll",
            "1h",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
        &[],
        dir.path(),
        &dir.path().join("log"),
    );
    d.wait_for("the failed first fetch", Duration::from_secs(10), || {
        d.get("/readyz", None).body.contains("FetchFailed")
    });
    assert_eq!(d.get("/readyz", None).status, 503);
    assert_eq!(d.get("/healthz", None).status, 200);
    let out = d.drift(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("nothing was read from git yet: fetching fails since"),
        "{}",
        stdout(&out)
    );
    let metrics = d.get("/metrics", None).body;
    assert!(
        metrics.contains("driftcron_drift_items{kind=\"stale\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("driftcron_condition{type=\"FetchFailed\"} 1"),
        "{metrics}"
    );
}
