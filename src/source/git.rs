//! A git repository as a source: the schedule files are read straight from
//! a commit's tree (no working checkout), so what runs is exactly what was
//! committed.
//!
//! A remote (https, ssh, `file://`) is fetched into a bare clone under the
//! state dir; the fetch is skipped when the remote ref has not moved, a
//! force-push is followed (the refspec is forced), and a clone that cannot
//! be opened or fetched into is re-cloned. A local path is read in place.
//! Credentials come from the environment and are never logged.
//!
//! Everything here blocks: callers run it on a blocking thread.

use std::path::{Path, PathBuf};

use git2::{
    Cred, CredentialType, Direction, FetchOptions, ObjectType, Oid, RemoteCallbacks, Repository,
    TreeWalkMode, TreeWalkResult,
};

use crate::snapshot::{FileProblem, Snapshot, SourceFile};
use crate::spec::load::MAX_FILE_SIZE;

/// Environment variable holding an HTTPS token (GitHub, GitLab, Gitea all
/// accept a token as the password).
pub const TOKEN_ENV: &str = "DRIFTCRON_GIT_TOKEN";
/// Environment variable naming an SSH private key file (else the agent).
pub const SSH_KEY_ENV: &str = "DRIFTCRON_GIT_SSH_KEY";

/// Most schedule files read from one commit (a guard against pointing the
/// daemon at the wrong repository).
pub const MAX_TREE_FILES: usize = 100_000;

/// Which commit to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// The repository's HEAD (a local repo's checked-out branch, a remote's
    /// default branch).
    Head,
    Branch(String),
    /// A pinned commit (or any revision git can parse).
    Rev(String),
}

/// Where the schedules are.
#[derive(Debug, Clone)]
pub struct GitSpec {
    /// A URL (`https://`, `ssh://`, `git@host:path`, `file://`) or a local
    /// path to a repository.
    pub repo: String,
    pub reference: GitRef,
    /// Folder inside the repository (`schedules`); empty for the root.
    pub path: String,
    /// Where a remote is cloned to.
    pub state_dir: PathBuf,
}

/// Why a fetch failed. `Transient` errors are retried with backoff;
/// `Config` ones wait for the operator (a wrong branch, a missing folder).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{context}")]
    Git {
        context: String,
        #[source]
        source: git2::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("cannot prepare the clone at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    /// The local clone itself is damaged (objects, refs): clone again. Not
    /// for network or credential failures, which a fresh clone would only
    /// repeat, at the cost of a full download each retry.
    pub fn is_corruption(&self) -> bool {
        match self {
            GitError::Git { source, .. } => matches!(
                source.class(),
                git2::ErrorClass::Odb
                    | git2::ErrorClass::Repository
                    | git2::ErrorClass::Reference
                    | git2::ErrorClass::Object
                    | git2::ErrorClass::Tree
                    | git2::ErrorClass::Index
            ),
            _ => false,
        }
    }

    /// Network and server trouble: worth retrying.
    pub fn is_transient(&self) -> bool {
        match self {
            GitError::Git { source, .. } => matches!(
                source.class(),
                git2::ErrorClass::Net
                    | git2::ErrorClass::Http
                    | git2::ErrorClass::Ssh
                    | git2::ErrorClass::Os
            ),
            GitError::Io { .. } => true,
            GitError::Config(_) => false,
        }
    }
}

fn ctx(context: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let context = context.into();
    move |source| GitError::Git { context, source }
}

/// Whether `repo` names something to clone rather than a local path.
fn is_url(repo: &str) -> bool {
    repo.contains("://") || (repo.contains('@') && repo.contains(':') && !Path::new(repo).exists())
}

/// A followed repository.
pub struct GitSource {
    spec: GitSpec,
    /// The last commit read, and its snapshot: reused while the ref does
    /// not move.
    last: Option<(Oid, Snapshot)>,
}

impl GitSource {
    pub fn new(spec: GitSpec) -> Self {
        GitSource { spec, last: None }
    }

    pub fn spec(&self) -> &GitSpec {
        &self.spec
    }

    /// Reads the schedules at the followed ref, fetching first for a remote.
    ///
    /// # Errors
    /// [`GitError`]; see [`GitError::is_transient`].
    pub fn fetch(&mut self) -> Result<Snapshot, GitError> {
        if is_url(&self.spec.repo) {
            self.fetch_remote()
        } else {
            let repo = Repository::discover(&self.spec.repo)
                .map_err(ctx(format!("{} is not a git repository", self.spec.repo)))?;
            let (oid, label) = resolve_local(&repo, &self.spec.reference)?;
            self.read(&repo, oid, &label)
        }
    }

    fn clone_dir(&self) -> PathBuf {
        self.spec.state_dir.join("repo.git")
    }

    /// Opens the bare clone, or makes it; a clone that cannot be opened is
    /// made again.
    fn open_clone(&self) -> Result<Repository, GitError> {
        let dir = self.clone_dir();
        if dir.exists() {
            match Repository::open_bare(&dir) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::warn!(error = %e, path = %dir.display(), "local clone is unusable; cloning again");
                    std::fs::remove_dir_all(&dir).map_err(|source| GitError::Io {
                        path: dir.clone(),
                        source,
                    })?;
                }
            }
        }
        std::fs::create_dir_all(&dir).map_err(|source| GitError::Io {
            path: dir.clone(),
            source,
        })?;
        let repo = Repository::init_bare(&dir).map_err(ctx("cannot create the local clone"))?;
        repo.remote("origin", &self.spec.repo)
            .map_err(ctx("cannot configure the remote"))?;
        Ok(repo)
    }

    fn fetch_remote(&mut self) -> Result<Snapshot, GitError> {
        match self.try_fetch_remote() {
            Err(e) if e.is_corruption() && self.clone_dir().exists() => {
                // A corrupt clone fails with odb/reference errors: start
                // over once before reporting.
                tracing::warn!(error = %e, "fetch into the local clone failed; cloning again");
                let dir = self.clone_dir();
                std::fs::remove_dir_all(&dir)
                    .map_err(|source| GitError::Io { path: dir, source })?;
                self.last = None;
                self.try_fetch_remote()
            }
            r => r,
        }
    }

    fn try_fetch_remote(&mut self) -> Result<Snapshot, GitError> {
        let repo = self.open_clone()?;
        let mut remote = repo
            .find_remote("origin")
            .map_err(ctx("the clone has no origin"))?;
        if remote.url().ok() != Some(self.spec.repo.as_str()) {
            repo.remote_set_url("origin", &self.spec.repo)
                .map_err(ctx("cannot update the remote URL"))?;
            remote = repo
                .find_remote("origin")
                .map_err(ctx("the clone has no origin"))?;
        }
        // What does the remote point at? (ls-remote: cheap, no objects.)
        let (remote_ref, want) = {
            let conn = remote
                .connect_auth(Direction::Fetch, Some(callbacks()), None)
                .map_err(ctx(format!("cannot reach {}", self.spec.repo)))?;
            let heads = conn.list().map_err(ctx("cannot list the remote's refs"))?;
            let find = |name: &str| {
                heads
                    .iter()
                    .find(|h| h.name() == name)
                    .map(|h| (name.to_string(), h.oid()))
            };
            match &self.spec.reference {
                GitRef::Branch(b) => find(&format!("refs/heads/{b}")).ok_or_else(|| {
                    GitError::Config(format!("branch {b} does not exist in {}", self.spec.repo))
                })?,
                GitRef::Head | GitRef::Rev(_) => {
                    let head = heads.iter().find(|h| h.name() == "HEAD");
                    let target = head.and_then(|h| h.symref_target()).map(str::to_string);
                    match (target, head) {
                        (Some(t), _) => find(&t).unwrap_or((t, Oid::ZERO_SHA1)),
                        (None, Some(h)) => ("HEAD".to_string(), h.oid()),
                        (None, None) => {
                            return Err(GitError::Config(format!(
                                "{} has no HEAD",
                                self.spec.repo
                            )));
                        }
                    }
                }
            }
        };
        let label = remote_ref
            .strip_prefix("refs/heads/")
            .unwrap_or(&remote_ref)
            .to_string();
        if let (GitRef::Branch(_) | GitRef::Head, Some((oid, snap))) =
            (&self.spec.reference, &self.last)
            && *oid == want
        {
            return Ok(snap.clone());
        }
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks());
        // Shallow where possible: only the followed commit is needed to
        // read its tree. libgit2's local transport (`file://`) cannot fetch
        // shallow, and a pinned revision may be anywhere in history.
        if !matches!(self.spec.reference, GitRef::Rev(_)) && !self.spec.repo.starts_with("file://")
        {
            opts.depth(1);
        }
        // Forced refspecs: a force-push is followed, not refused.
        let refspecs: Vec<String> = match &self.spec.reference {
            GitRef::Rev(_) => vec!["+refs/heads/*:refs/remotes/origin/*".into()],
            _ => vec![format!("+{remote_ref}:refs/remotes/origin/{label}")],
        };
        remote
            .fetch(&refspecs, Some(&mut opts), None)
            .map_err(ctx(format!("fetching {} failed", self.spec.repo)))?;
        drop(remote);
        let (oid, label) = match &self.spec.reference {
            GitRef::Rev(rev) => (peel_commit(&repo, rev)?, "sha1".to_string()),
            _ => (
                repo.refname_to_id(&format!("refs/remotes/origin/{label}"))
                    .map_err(ctx(format!("the fetched ref {label} is missing")))?,
                label,
            ),
        };
        self.read(&repo, oid, &label)
    }

    fn read(&mut self, repo: &Repository, oid: Oid, label: &str) -> Result<Snapshot, GitError> {
        if let Some((last, snap)) = &self.last
            && *last == oid
        {
            return Ok(snap.clone());
        }
        let snap = read_tree(repo, oid, &self.spec.path, label)?;
        self.last = Some((oid, snap.clone()));
        Ok(snap)
    }
}

fn peel_commit(repo: &Repository, rev: &str) -> Result<Oid, GitError> {
    let obj = repo
        .revparse_single(rev)
        .map_err(|e| GitError::Config(format!("revision {rev} not found: {}", e.message())))?;
    let commit = obj.peel_to_commit().map_err(|e| {
        GitError::Config(format!("revision {rev} is not a commit: {}", e.message()))
    })?;
    Ok(commit.id())
}

/// A local repository's commit for the ref, and the label for revisions.
fn resolve_local(repo: &Repository, r: &GitRef) -> Result<(Oid, String), GitError> {
    match r {
        GitRef::Head => {
            let head = repo
                .head()
                .map_err(ctx("the repository has no HEAD (no commits yet?)"))?;
            let label = head.shorthand().unwrap_or("HEAD").to_string();
            let oid = head
                .peel_to_commit()
                .map_err(ctx("HEAD is not a commit"))?
                .id();
            Ok((oid, label))
        }
        GitRef::Branch(b) => {
            let branch = repo
                .find_branch(b, git2::BranchType::Local)
                .map_err(|_| GitError::Config(format!("branch {b} does not exist")))?;
            let oid = branch
                .get()
                .peel_to_commit()
                .map_err(ctx(format!("branch {b} is not a commit")))?
                .id();
            Ok((oid, b.clone()))
        }
        GitRef::Rev(rev) => Ok((peel_commit(repo, rev)?, "sha1".to_string())),
    }
}

/// Reads every `*.toml` blob under `path` in commit `oid`.
fn read_tree(repo: &Repository, oid: Oid, path: &str, label: &str) -> Result<Snapshot, GitError> {
    let commit = repo
        .find_commit(oid)
        .map_err(ctx(format!("commit {oid} not found")))?;
    let root = commit.tree().map_err(ctx("commit has no tree"))?;
    let revision = if label == "sha1" {
        format!("sha1:{oid}")
    } else {
        format!("{label}@sha1:{oid}")
    };
    // A commit without the folder is an invalid revision (reported, not
    // applied), not "delete every job": a wrong --path must not stop
    // everything.
    let missing = |what: &str| {
        Snapshot {
        revision: revision.clone(),
        files: Vec::new(),
        problems: vec![FileProblem {
            path: String::new(),
            message: format!("{path} {what} in commit {oid}"),
            hint: Some("check --path; a commit that removes every job must keep the folder (a .keep file or driftcron.toml)".into()),
        }],
    }
    };
    let tree = if path.is_empty() || path == "." {
        root
    } else {
        let Ok(entry) = root.get_path(Path::new(path)) else {
            return Ok(missing("does not exist"));
        };
        match entry.to_object(repo).and_then(|o| o.peel_to_tree()) {
            Ok(t) => t,
            Err(_) => return Ok(missing("is not a folder")),
        }
    };
    let mut snap = Snapshot {
        revision,
        ..Snapshot::default()
    };
    let mut failure = None;
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = entry.name() else {
            return TreeWalkResult::Skip;
        };
        if name.starts_with('.') {
            return TreeWalkResult::Skip;
        }
        let rel = format!("{dir}{name}");
        match entry.kind() {
            Some(ObjectType::Tree) => TreeWalkResult::Ok,
            Some(ObjectType::Blob) if name.ends_with(".toml") => {
                if snap.files.len() + snap.problems.len() >= MAX_TREE_FILES {
                    failure = Some(format!(
                        "more than {MAX_TREE_FILES} schedule files in {path}"
                    ));
                    return TreeWalkResult::Abort;
                }
                if entry.filemode() == 0o120000 {
                    snap.problems.push(FileProblem {
                        path: rel,
                        message: "symlinks are not followed in a git source".into(),
                        hint: Some("commit the file itself".into()),
                    });
                    return TreeWalkResult::Ok;
                }
                match repo.find_blob(entry.id()) {
                    Ok(blob) if blob.size() > MAX_FILE_SIZE => snap.problems.push(FileProblem {
                        path: rel,
                        message: format!(
                            "file is {} bytes; the limit is {MAX_FILE_SIZE}",
                            blob.size()
                        ),
                        hint: Some(
                            "a job file is a few hundred bytes; is this the right file?".into(),
                        ),
                    }),
                    Ok(blob) => snap.files.push(SourceFile {
                        path: rel,
                        bytes: blob.content().to_vec(),
                    }),
                    Err(e) => snap.problems.push(FileProblem {
                        path: rel,
                        message: format!("cannot read the blob: {}", e.message()),
                        hint: None,
                    }),
                }
                TreeWalkResult::Ok
            }
            _ => TreeWalkResult::Ok,
        }
    })
    .map_err(ctx("cannot walk the tree"))
    .or_else(|e| if failure.is_some() { Ok(()) } else { Err(e) })?;
    if let Some(f) = failure {
        return Err(GitError::Config(f));
    }
    snap.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(snap)
}

/// Credentials from the environment: an SSH key file or the agent for SSH,
/// a token for HTTPS. Each kind is offered once: libgit2 asks again after a
/// rejection, and a loop would hang the fetch.
fn callbacks<'a>() -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    let mut tried = CredentialType::empty();
    cb.credentials(move |_url, username, allowed| {
        let user = username.unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY) && !tried.contains(CredentialType::SSH_KEY) {
            tried |= CredentialType::SSH_KEY;
            return match std::env::var(SSH_KEY_ENV) {
                Ok(key) => Cred::ssh_key(user, None, Path::new(&key), None),
                Err(_) => Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && !tried.contains(CredentialType::USER_PASS_PLAINTEXT)
        {
            tried |= CredentialType::USER_PASS_PLAINTEXT;
            if let Ok(token) = std::env::var(TOKEN_ENV) {
                return Cred::userpass_plaintext(username.unwrap_or("x-access-token"), &token);
            }
        }
        Err(git2::Error::from_str("no usable credentials (set DRIFTCRON_GIT_TOKEN, DRIFTCRON_GIT_SSH_KEY or an SSH agent)"))
    });
    cb
}

/// Bounds on git's network waits, set once per process: libgit2 has none
/// by default, and a stalled server must not hang a reconcile forever.
pub fn set_network_timeouts(connect: std::time::Duration, io: std::time::Duration) {
    let ms = |d: std::time::Duration| d.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: these only set libgit2's global options, before any fetch
    // runs (called once at daemon start).
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect));
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms(io));
    }
}

/// Reads the schedules at revision `rev` of the local repository that
/// contains `repo` (for `driftcron plan`).
///
/// # Errors
/// Not a repository, or no such revision.
pub fn snapshot_at(repo: &Path, rev: &str, path: &str) -> Result<Snapshot, GitError> {
    let r = Repository::discover(repo).map_err(ctx(format!(
        "{} is not inside a git repository",
        repo.display()
    )))?;
    let oid = peel_commit(&r, rev)?;
    // A commit id names itself; a ref name is kept as the label.
    let label = if rev.len() >= 7 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        "sha1"
    } else {
        rev
    };
    read_tree(&r, oid, path, label)
}

/// The revision a pull request is compared with: the merge base of HEAD
/// and the default branch's upstream (`origin/HEAD`, else `origin/main`,
/// `origin/master`, `main`, `master`).
///
/// # Errors
/// When none of those exists.
pub fn default_base(repo: &Path, head: Option<&str>) -> Result<String, GitError> {
    let r = Repository::discover(repo).map_err(ctx(format!(
        "{} is not inside a git repository",
        repo.display()
    )))?;
    // The merge base with the head being planned, not with whatever is
    // checked out.
    let head = match head {
        Some(rev) => peel_commit(&r, rev)?,
        None => r
            .head()
            .and_then(|h| h.peel_to_commit())
            .map_err(ctx("the repository has no commits"))?
            .id(),
    };
    for name in [
        "origin/HEAD",
        "origin/main",
        "origin/master",
        "main",
        "master",
    ] {
        if let Ok(obj) = r.revparse_single(name)
            && let Ok(commit) = obj.peel_to_commit()
        {
            let base = r.merge_base(head, commit.id()).unwrap_or(commit.id());
            return Ok(base.to_string());
        }
    }
    Err(GitError::Config(
        "cannot find the default branch (origin/HEAD, origin/main, main...); pass --base".into(),
    ))
}

/// The root of the working tree of the repository containing `dir`.
pub fn workdir_of(dir: &Path) -> Option<PathBuf> {
    Repository::discover(dir)
        .ok()?
        .workdir()
        .map(Path::to_path_buf)
}
