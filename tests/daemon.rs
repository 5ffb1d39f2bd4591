//! `driftcron run` as an operator runs it: the real binary as a child
//! process, on a real folder, with real jobs writing real files.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::git;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_driftcron")
}

struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(schedules: &Path, log: &Path) -> Daemon {
        Daemon::start_polling(schedules, log, "1s")
    }

    fn start_polling(schedules: &Path, log: &Path, poll: &str) -> Daemon {
        let child = Command::new(bin())
            .args(["run", "--listen", "127.0.0.1:0", "--path"])
            .arg(schedules)
            .args(["--poll", poll, "--shutdown-timeout", "2s"])
            .env("DRIFTCRON_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(p: &Path) -> usize {
    fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool, d: &Daemon) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}; daemon log:\n{}", d.log());
}

fn job(out: &Path) -> String {
    format!(
        "schedule = \"* * * * * *\"\nshell = 'echo \"$DRIFTCRON_RUN_ID\" >> {}'\n",
        out.display()
    )
}

#[test]
fn daemon_follows_the_folder_keeps_the_last_good_state_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let schedules = dir.path().join("schedules");
    fs::create_dir_all(&schedules).unwrap();
    let (a, b) = (dir.path().join("a.out"), dir.path().join("b.out"));
    fs::write(schedules.join("tick.toml"), job(&a)).unwrap();
    let d = Daemon::start(&schedules, &dir.path().join("log"));

    // A job in the folder runs every second.
    wait_for("two ticks", Duration::from_secs(10), || lines(&a) >= 2, &d);
    let first = fs::read_to_string(&a).unwrap();
    assert!(
        first.lines().next().unwrap().starts_with("tick@"),
        "{first}"
    );

    // An edit is picked up (watch, or the 1 s poll) and re-keys the job.
    fs::write(schedules.join("tick.toml"), job(&b)).unwrap();
    wait_for(
        "the edited job to run",
        Duration::from_secs(10),
        || lines(&b) >= 2,
        &d,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let a_after = lines(&a);
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(lines(&a), a_after, "the old version of the job still runs");

    // An invalid file stalls the new revision; the last good one keeps running.
    fs::write(
        schedules.join("broken.toml"),
        "schedule = \"61 * * * *\"\nshell = \"true\"\n",
    )
    .unwrap();
    wait_for(
        "the stall to be logged",
        Duration::from_secs(10),
        || d.log().contains("stalled"),
        &d,
    );
    assert!(
        d.log().contains("broken.toml:1:13: invalid schedule"),
        "{}",
        d.log()
    );
    let b_now = lines(&b);
    wait_for(
        "the good job to keep running",
        Duration::from_secs(10),
        || lines(&b) >= b_now + 2,
        &d,
    );

    // Fixing it and deleting the job stops it.
    fs::remove_file(schedules.join("broken.toml")).unwrap();
    fs::remove_file(schedules.join("tick.toml")).unwrap();
    wait_for(
        "the deletion to apply",
        Duration::from_secs(10),
        || d.log().contains("deleted=1"),
        &d,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let b_final = lines(&b);
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(lines(&b), b_final, "a deleted job still runs");

    // SIGTERM: a bounded, clean exit.
    let mut d = d;
    d.signal(libc::SIGTERM);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(d.log().contains("stopped"), "{}", d.log());
}

/// With no poll in sight, every change must come through the watcher: an
/// edit (re-read by its path alone), a new file and a removal (each a full
/// walk).
#[test]
fn daemon_follows_watched_changes_without_polling() {
    let dir = tempfile::tempdir().unwrap();
    let schedules = dir.path().join("schedules");
    fs::create_dir_all(schedules.join("team")).unwrap();
    let (a, b, c) = (
        dir.path().join("a.out"),
        dir.path().join("b.out"),
        dir.path().join("c.out"),
    );
    fs::write(schedules.join("team/tick.toml"), job(&a)).unwrap();
    fs::write(
        schedules.join("team/_defaults.toml"),
        "kill_grace = \"1s\"\n",
    )
    .unwrap();
    let d = Daemon::start_polling(&schedules, &dir.path().join("log"), "1h");
    wait_for("two ticks", Duration::from_secs(10), || lines(&a) >= 2, &d);

    // Same size: only the watcher's event says it changed.
    fs::write(schedules.join("team/tick.toml"), job(&b)).unwrap();
    wait_for(
        "the edited job to run",
        Duration::from_secs(10),
        || lines(&b) >= 2,
        &d,
    );
    fs::write(schedules.join("team/new.toml"), job(&c)).unwrap();
    wait_for(
        "the new job to run",
        Duration::from_secs(10),
        || lines(&c) >= 2,
        &d,
    );
    fs::remove_file(schedules.join("team/tick.toml")).unwrap();
    wait_for(
        "the deletion to apply",
        Duration::from_secs(10),
        || d.log().contains("deleted=1"),
        &d,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let b_final = lines(&b);
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(lines(&b), b_final, "a deleted job still runs");
}

#[test]
fn daemon_refuses_a_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["run", "--listen", "127.0.0.1:0", "--path"])
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn daemon_starts_on_the_bundled_schedules() {
    // The README's main command, for a few seconds: it starts, applies the
    // bundled jobs, and stops cleanly on SIGTERM.
    let dir = tempfile::tempdir().unwrap();
    let schedules = Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules");
    let d = Daemon::start(&schedules, &dir.path().join("log"));
    wait_for(
        "the bundled jobs to apply",
        Duration::from_secs(10),
        || d.log().contains("created=6"),
        &d,
    );
    d.signal(libc::SIGTERM);
    let mut d = d;
    let t = Instant::now();
    while d.child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!d.log().contains("ERROR"), "{}", d.log());
}

fn push(work: &Path, files: &[(&str, Option<String>)], msg: &str) {
    for (p, text) in files {
        let path = work.join(p);
        match text {
            Some(t) => {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, t).unwrap();
            }
            None => fs::remove_file(&path).unwrap(),
        }
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", msg]);
    git(work, &["push", "-q", "origin", "main"]);
}

#[test]
fn daemon_follows_a_git_remote() {
    let dir = tempfile::tempdir().unwrap();
    let (remote, work) = (dir.path().join("remote.git"), dir.path().join("work"));
    fs::create_dir_all(&remote).unwrap();
    fs::create_dir_all(&work).unwrap();
    git(&remote, &["init", "-q", "--bare", "-b", "main"]);
    git(&work, &["init", "-q", "-b", "main"]);
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    let (a, b) = (dir.path().join("a.out"), dir.path().join("b.out"));
    push(
        &work,
        &[
            ("schedules/tick.toml", Some(job(&a))),
            ("schedules/.keep", Some(String::new())),
        ],
        "tick",
    );

    let log = dir.path().join("log");
    let child = Command::new(bin())
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--repo",
            &format!("file://{}", remote.display()),
            "--branch",
            "main",
        ])
        .args([
            "--path",
            "schedules",
            "--poll",
            "500ms",
            "--shutdown-timeout",
            "1s",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .current_dir(dir.path())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon { child, log };

    wait_for(
        "the pushed job to run",
        Duration::from_secs(10),
        || lines(&a) >= 2,
        &d,
    );
    assert!(d.log().contains("main@sha1:"), "{}", d.log());

    // An update is fetched and applied.
    push(&work, &[("schedules/tick.toml", Some(job(&b)))], "to b");
    wait_for(
        "the update to run",
        Duration::from_secs(10),
        || lines(&b) >= 2,
        &d,
    );

    // An invalid commit stalls; the job keeps running.
    push(
        &work,
        &[("schedules/bad.toml", Some("timout = 1\n".into()))],
        "bad",
    );
    wait_for(
        "the stall",
        Duration::from_secs(10),
        || d.log().contains("stalled"),
        &d,
    );
    assert!(
        d.log().contains("bad.toml:1:1: unknown field"),
        "{}",
        d.log()
    );
    let now = lines(&b);
    wait_for(
        "the last good job to keep running",
        Duration::from_secs(10),
        || lines(&b) >= now + 2,
        &d,
    );

    // Fix and delete: the job stops.
    push(
        &work,
        &[("schedules/bad.toml", None), ("schedules/tick.toml", None)],
        "remove",
    );
    wait_for(
        "the deletion",
        Duration::from_secs(10),
        || d.log().contains("deleted=1"),
        &d,
    );
    assert!(d.log().contains("jobs=0"), "{}", d.log());
    std::thread::sleep(Duration::from_millis(1500));
    let fin = lines(&b);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(lines(&b), fin, "a deleted job still runs");
}

#[test]
fn sighup_reconciles_now() {
    let dir = tempfile::tempdir().unwrap();
    let (remote, work) = (dir.path().join("remote.git"), dir.path().join("work"));
    fs::create_dir_all(&remote).unwrap();
    fs::create_dir_all(&work).unwrap();
    git(&remote, &["init", "-q", "--bare", "-b", "main"]);
    git(&work, &["init", "-q", "-b", "main"]);
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    let a = dir.path().join("a.out");
    push(&work, &[("schedules/.keep", Some(String::new()))], "empty");

    let log = dir.path().join("log");
    let child = Command::new(bin())
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--repo",
            &format!("file://{}", remote.display()),
            "--poll",
            "1h",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .current_dir(dir.path())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon { child, log };
    wait_for(
        "the first apply",
        Duration::from_secs(10),
        || d.log().contains("applied"),
        &d,
    );

    // With an hour between polls, only SIGHUP can bring the new commit in.
    push(&work, &[("schedules/tick.toml", Some(job(&a)))], "tick");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !d.log().contains("created=1"),
        "applied before SIGHUP:\n{}",
        d.log()
    );
    d.signal(libc::SIGHUP);
    wait_for(
        "the SIGHUP reconcile",
        Duration::from_secs(10),
        || d.log().contains("created=1"),
        &d,
    );
    wait_for(
        "the job to run",
        Duration::from_secs(10),
        || lines(&a) >= 1,
        &d,
    );
}
