//! The git source against real repositories made in temp dirs: a local
//! repository read in place, and a bare "remote" cloned over `file://`.

use std::fs;
use std::path::Path;
use std::process::Command;

use driftcron::source::{GitRef, GitSource, GitSpec};

mod common;
use common::git;

/// A work repo on branch main with one commit of `files`.
fn work_repo(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    commit(dir, files, "first");
}

fn commit(dir: &Path, files: &[(&str, &str)], msg: &str) -> String {
    for (p, text) in files {
        let path = dir.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

const JOB: &str = "schedule = \"@daily\"\ncommand = [\"true\"]\n";

fn paths(s: &driftcron::snapshot::Snapshot) -> Vec<&str> {
    s.files.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn a_local_repository_is_read_from_its_commit_not_its_working_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    work_repo(
        &work,
        &[
            ("schedules/a.toml", JOB),
            ("schedules/team/b.toml", JOB),
            ("README.md", "x"),
        ],
    );
    let head = git(&work, &["rev-parse", "HEAD"]);
    // Uncommitted edits are not what runs.
    fs::write(work.join("schedules/uncommitted.toml"), JOB).unwrap();

    let mut src = GitSource::new(GitSpec {
        repo: work.to_string_lossy().into(),
        reference: GitRef::Head,
        path: "schedules".into(),
        state_dir: tmp.path().join("state"),
    });
    let snap = src.fetch().unwrap();
    assert_eq!(snap.revision, format!("main@sha1:{head}"));
    assert_eq!(paths(&snap), ["a.toml", "team/b.toml"]);
    assert_eq!(snap.files[0].bytes, JOB.as_bytes());

    // A pinned commit, and a missing folder.
    fs::remove_file(work.join("schedules/uncommitted.toml")).unwrap();
    let second = commit(&work, &[("schedules/c.toml", JOB)], "second");
    let mut pinned = GitSource::new(GitSpec {
        reference: GitRef::Rev(head.clone()),
        ..src.spec().clone()
    });
    assert_eq!(pinned.fetch().unwrap().revision, format!("sha1:{head}"));
    assert_eq!(paths(&src.fetch().unwrap()).len(), 3);
    assert!(src.fetch().unwrap().revision.ends_with(&second));
    let mut wrong = GitSource::new(GitSpec {
        path: "nope".into(),
        ..src.spec().clone()
    });
    // A commit without the folder is an invalid revision, not an empty one.
    let snap = wrong.fetch().unwrap();
    assert!(snap.files.is_empty());
    assert!(
        snap.problems[0]
            .message
            .starts_with("nope does not exist in commit"),
        "{:?}",
        snap.problems
    );
}

#[test]
fn a_remote_is_cloned_followed_and_force_pushes_are_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    let work = tmp.path().join("work");
    fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "-q", "--bare", "-b", "main"]);
    work_repo(&work, &[("schedules/a.toml", JOB)]);
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&work, &["push", "-q", "origin", "main"]);
    let first = git(&work, &["rev-parse", "HEAD"]);

    let url = format!("file://{}", remote.display());
    let mut src = GitSource::new(GitSpec {
        repo: url.clone(),
        reference: GitRef::Branch("main".into()),
        path: "schedules".into(),
        state_dir: tmp.path().join("state"),
    });
    let snap = src.fetch().unwrap();
    assert_eq!(snap.revision, format!("main@sha1:{first}"));
    assert!(
        tmp.path().join("state/repo.git").is_dir(),
        "cloned into the state dir"
    );

    // A new commit is fetched.
    let second = commit(&work, &[("schedules/b.toml", JOB)], "b");
    git(&work, &["push", "-q", "origin", "main"]);
    let snap = src.fetch().unwrap();
    assert_eq!(snap.revision, format!("main@sha1:{second}"));
    assert_eq!(paths(&snap), ["a.toml", "b.toml"]);

    // A force-push back to the first commit is followed.
    git(&work, &["reset", "-q", "--hard", &first]);
    git(&work, &["push", "-q", "-f", "origin", "main"]);
    let snap = src.fetch().unwrap();
    assert_eq!(snap.revision, format!("main@sha1:{first}"));
    assert_eq!(paths(&snap), ["a.toml"]);

    // The remote going away is a transient error; its return recovers.
    let moved = tmp.path().join("moved.git");
    fs::rename(&remote, &moved).unwrap();
    let err = src.fetch().unwrap_err();
    assert!(err.to_string().contains("cannot reach"), "{err:#}");
    fs::rename(&moved, &remote).unwrap();
    assert_eq!(src.fetch().unwrap().revision, format!("main@sha1:{first}"));

    // A corrupt clone is cloned again.
    fs::remove_dir_all(tmp.path().join("state/repo.git/objects")).unwrap();
    fs::write(tmp.path().join("state/repo.git/HEAD"), "garbage").unwrap();
    let third = commit(&work, &[("schedules/c.toml", JOB)], "c");
    git(&work, &["push", "-q", "origin", "main"]);
    assert_eq!(src.fetch().unwrap().revision, format!("main@sha1:{third}"));

    // A branch that does not exist is a configuration error.
    let mut wrong = GitSource::new(GitSpec {
        reference: GitRef::Branch("nope".into()),
        ..src.spec().clone()
    });
    let err = wrong.fetch().unwrap_err();
    assert!(
        !err.is_transient() && err.to_string().contains("branch nope does not exist"),
        "{err}"
    );
}

/// A remote over the git protocol, served by a real `git daemon` on
/// loopback: fetched shallow (one commit), and still followed.
#[test]
fn a_smart_remote_is_fetched_shallow() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("served");
    let remote = base.join("remote.git");
    let work = tmp.path().join("work");
    fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "-q", "--bare", "-b", "main"]);
    work_repo(&work, &[("schedules/a.toml", JOB)]);
    commit(&work, &[("schedules/b.toml", JOB)], "second");
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&work, &["push", "-q", "origin", "main"]);

    // The daemon binary itself (not the `git` wrapper, whose child would
    // outlive a kill and hold the test's output open).
    let exec_path = git(tmp.path(), &["--exec-path"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemon = Command::new(Path::new(&exec_path).join("git-daemon"))
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(&base)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git daemon starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "git daemon did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    driftcron::source::set_network_timeouts(
        std::time::Duration::from_secs(5),
        std::time::Duration::from_secs(10),
    );
    let mut src = GitSource::new(GitSpec {
        repo: format!("git://127.0.0.1:{port}/remote.git"),
        reference: GitRef::Branch("main".into()),
        path: "schedules".into(),
        state_dir: tmp.path().join("state"),
    });
    let result = src.fetch();
    let shallow = tmp.path().join("state/repo.git/shallow").exists();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(paths(&result.unwrap()).len(), 2);
    assert!(shallow, "the clone holds one commit, not the history");
}
