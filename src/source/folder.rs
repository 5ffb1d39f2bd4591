//! A plain folder as a source: walk it, read the `*.toml` files, and refuse
//! what must not be read (too large, symlinks out of the root).

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::snapshot::{FileProblem, Snapshot, SourceFile};
use crate::spec::load::MAX_FILE_SIZE;

/// Entries (files and folders) walked before giving up: a schedules folder
/// pointed at `/` by mistake must fail fast, not read the disk.
pub const MAX_ENTRIES: usize = 100_000;

/// Folder nesting walked; deeper is reported, not followed.
pub const MAX_DEPTH: usize = 16;

/// Why a folder could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("schedules folder {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("{path} is not a folder")]
    NotADirectory { path: PathBuf },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds more than {MAX_ENTRIES} entries; is it the right folder?")]
    TooManyEntries { path: PathBuf },
}

/// Reads every `*.toml` file under `root` (hidden entries skipped), in path
/// order, with a content-hash revision.
///
/// # Errors
/// [`FolderError`] when the root itself cannot be read; problems with single
/// files are returned inside the snapshot instead, so they are reported with
/// the other diagnostics.
pub fn read_folder(root: &Path) -> Result<Snapshot, FolderError> {
    read_folder_cached(root, &mut FolderCache::default())
}

/// [`read_folder`], reusing the bytes of files that did not change since
/// the walk that filled `cache`: every file is still stat'ed.
///
/// # Errors
/// As [`read_folder`].
pub fn read_folder_cached(root: &Path, cache: &mut FolderCache) -> Result<Snapshot, FolderError> {
    let meta = fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FolderError::NotFound {
            path: root.to_path_buf(),
        },
        _ => FolderError::Io {
            path: root.to_path_buf(),
            source: e,
        },
    })?;
    if !meta.is_dir() {
        return Err(FolderError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let canon_root = fs::canonicalize(root).map_err(|e| FolderError::Io {
        path: root.to_path_buf(),
        source: e,
    })?;
    // A failed walk leaves an empty cache, never a partial one.
    let old = std::mem::take(&mut cache.files);
    cache.exact = false;
    let mut walk = Walk {
        root: canon_root,
        entries: 0,
        new: Vec::with_capacity(old.len()),
        old,
        problems: Vec::new(),
        symlinks: false,
        started: now_secs(),
    };
    walk.dir(root, "", 0)?;
    let Walk {
        root: canon_root,
        mut new,
        mut problems,
        symlinks,
        ..
    } = walk;
    // The walk visits paths in order already (see `Walk::dir`); these sorts
    // only confirm it, in linear time.
    new.sort_by(|a, b| a.path.cmp(&b.path));
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    cache.exact = problems.is_empty() && !symlinks;
    cache.root = canon_root;
    cache.files = new;
    Ok(cache.snapshot(problems))
}

/// [`read_folder_cached`] for a folder in which, since the last read with
/// `cache`, only the paths in `changed` (absolute, under the canonical
/// root, as [`watch_folder`](super::watch_folder) reports them) can have
/// changed: those are read again, whatever their stamps say, and no other
/// file is looked at. Anything it cannot redo exactly as a full walk would
/// (a new file, a folder, a symlink, a problem, a path outside the root, a
/// cache from a walk that met any of these) makes it fall back to
/// [`read_folder_cached`]. The revision still covers every file.
///
/// Correct only if `changed` is complete: a file changed but not named is
/// missed until the next full read (the daemon's poll is one).
///
/// # Errors
/// As [`read_folder`].
pub fn read_folder_changed(
    root: &Path,
    cache: &mut FolderCache,
    changed: &BTreeSet<PathBuf>,
) -> Result<Snapshot, FolderError> {
    match cache.patch(root, changed) {
        Some(()) => Ok(cache.snapshot(Vec::new())),
        None => read_folder_cached(root, cache),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

struct Walk {
    root: PathBuf,
    entries: usize,
    /// The cache of the previous walk, sorted by path; the bytes of the
    /// files found unchanged are moved out into `new`.
    old: Vec<Cached>,
    /// Every file read by this walk, in path order: the next cache.
    new: Vec<Cached>,
    problems: Vec<FileProblem>,
    /// Whether a symlinked file was read: a change to its target is not a
    /// change to its path, so only a full walk sees it.
    symlinks: bool,
    /// Seconds since the epoch when the walk started: a file modified within
    /// a second of it gets no stamp (git's "racy clean" rule: a same-size
    /// rewrite within the timestamp granularity would look unchanged).
    started: i64,
}

/// What a file looked like when it was last read: a file whose size,
/// times and inode are all unchanged is not read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        }
    }

    /// The stamp, if the file last changed long enough before `started`
    /// for it to be trusted.
    fn trusted(self, started: i64) -> Option<Stamp> {
        (self.mtime.0 < started - 1 && self.ctime.0 < started - 1).then_some(self)
    }
}

/// Every file of the last read, so that the next one reads only what
/// changed: by stamp ([`read_folder_cached`]) or by name
/// ([`read_folder_changed`]).
#[derive(Debug, Default)]
pub struct FolderCache {
    /// Sorted by path.
    files: Vec<Cached>,
    /// The canonical root the files were read under.
    root: PathBuf,
    /// The last read found neither a problem nor a symlink, so `files` is
    /// the whole snapshot and a changed path can be re-read on its own.
    exact: bool,
}

#[derive(Debug)]
struct Cached {
    path: String,
    /// `None` when the file changed too recently to trust its stamp: the
    /// next walk reads it again.
    stamp: Option<Stamp>,
    bytes: Vec<u8>,
    digest: [u8; 32],
}

impl FolderCache {
    /// Files a walk may take from the cache without reading them.
    pub fn len(&self) -> usize {
        self.files.iter().filter(|c| c.stamp.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self, problems: Vec<FileProblem>) -> Snapshot {
        Snapshot {
            revision: content_revision(&self.files, &problems),
            files: self
                .files
                .iter()
                .map(|c| SourceFile {
                    path: c.path.clone(),
                    bytes: c.bytes.clone(),
                })
                .collect(),
            problems,
        }
    }

    /// Applies `changed` to the cache; `None` when a full walk is needed
    /// (the cache may then hold some changed files already, each with the
    /// stamp it was read under, which the walk checks as any other).
    fn patch(&mut self, root: &Path, changed: &BTreeSet<PathBuf>) -> Option<()> {
        if !self.exact || fs::canonicalize(root).ok()? != self.root {
            return None;
        }
        let started = now_secs();
        for abs in changed {
            let mut rel = String::new();
            let mut hidden = false;
            for c in abs.strip_prefix(&self.root).ok()?.components() {
                let std::path::Component::Normal(name) = c else {
                    return None;
                };
                let name = name.to_str()?;
                hidden |= name.starts_with('.');
                if !rel.is_empty() {
                    rel.push('/');
                }
                rel.push_str(name);
            }
            if rel.is_empty() {
                // The root itself: moved, removed, its permissions changed.
                return None;
            }
            if hidden {
                // The walk skips hidden entries and all below them.
                continue;
            }
            let at = self.files.binary_search_by(|c| c.path.as_str().cmp(&rel));
            match fs::symlink_metadata(abs) {
                Ok(m) if m.is_file() && rel.ends_with(".toml") => {
                    // Not cached: a new file, which the walk places and counts.
                    let i = at.ok()?;
                    let (bytes, stamp) = read_capped(abs, false).ok()?.ok()?;
                    self.files[i] = Cached {
                        digest: sha256(&bytes),
                        path: rel,
                        stamp: stamp.trusted(started),
                        bytes,
                    };
                }
                // Files of other names are not schedules.
                Ok(m) if m.is_file() => {}
                // A folder may hold any number of files; a symlink or a
                // special file named `*.toml` is the walk's to judge.
                Ok(m) if m.is_dir() || rel.ends_with(".toml") => return None,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match at {
                    Ok(i) => {
                        self.files.remove(i);
                    }
                    Err(_) => {
                        // A removed folder: were any files read under it?
                        let prefix = format!("{rel}/");
                        let i = self.files.partition_point(|c| c.path < prefix);
                        if self
                            .files
                            .get(i)
                            .is_some_and(|c| c.path.starts_with(&prefix))
                        {
                            return None;
                        }
                    }
                },
                Err(_) => return None,
            }
        }
        Some(())
    }
}

/// A file's bytes and the stamp taken before reading them (so a change
/// during the read makes the stamp stale, not the bytes), or its size when
/// over [`MAX_FILE_SIZE`]. Unless `follow`, a symlink is refused: a path
/// found as a regular file may have been swapped for one since, and a
/// symlink is only read after the walk has checked where it points.
fn read_capped(path: &Path, follow: bool) -> std::io::Result<Result<(Vec<u8>, Stamp), u64>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::File::options()
        .read(true)
        .custom_flags(if follow { 0 } else { libc::O_NOFOLLOW })
        .open(path)?;
    let meta = f.metadata()?;
    let len = meta.len();
    if len > MAX_FILE_SIZE as u64 {
        return Ok(Err(len));
    }
    // Read at most one byte past the cap: the file may grow between the
    // size check and the read.
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(MAX_FILE_SIZE as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > MAX_FILE_SIZE {
        return Ok(Err(bytes.len() as u64));
    }
    Ok(Ok((bytes, Stamp::of(&meta))))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

/// A directory entry kept for the walk, under its sort key: its path from
/// the root, with a trailing `/` for a folder. Visiting each folder's
/// entries in key order visits all paths in plain string order (`a.toml`
/// before `a/b.toml`, as `.` sorts before `/`), so the files come out
/// sorted without a sort of the whole tree.
struct Entry {
    key: String,
    ft: fs::FileType,
    entry: fs::DirEntry,
}

impl Walk {
    fn problem(&mut self, path: &str, message: String, hint: Option<&str>) {
        self.problems.push(FileProblem {
            path: path.to_string(),
            message,
            hint: hint.map(str::to_string),
        });
    }

    fn dir(&mut self, dir: &Path, rel: &str, depth: usize) -> Result<(), FolderError> {
        let read = fs::read_dir(dir).map_err(|e| FolderError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let mut list = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| FolderError::Io {
                path: dir.to_path_buf(),
                source: e,
            })?;
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(FolderError::TooManyEntries {
                    path: self.root.clone(),
                });
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                let shown = name.to_string_lossy().into_owned();
                self.problem(
                    &join(rel, &shown),
                    "file name is not valid UTF-8".into(),
                    Some("rename it"),
                );
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            // The dirent's type: no system call on file systems that fill it.
            let ft = entry.file_type().map_err(|e| FolderError::Io {
                path: entry.path(),
                source: e,
            })?;
            if !ft.is_dir() && !name.ends_with(".toml") {
                continue;
            }
            let mut key = join(rel, name);
            if ft.is_dir() {
                key.push('/');
            }
            list.push(Entry { key, ft, entry });
        }
        list.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        for Entry { mut key, ft, entry } in list {
            if ft.is_dir() {
                key.pop();
                if depth + 1 > MAX_DEPTH {
                    self.problem(
                        &key,
                        format!("folder nesting deeper than {MAX_DEPTH} levels is not read"),
                        None,
                    );
                } else {
                    self.dir(&entry.path(), &key, depth + 1)?;
                }
                continue;
            }
            let rel_path = key;
            if ft.is_symlink() {
                let path = entry.path();
                match fs::canonicalize(&path) {
                    Ok(target) if target.starts_with(&self.root) && target.is_file() => {}
                    Ok(target) if target.starts_with(&self.root) => {
                        self.problem(&rel_path, "symlink does not point at a file".into(), None);
                        continue;
                    }
                    Ok(target) => {
                        self.problem(
                            &rel_path,
                            format!(
                                "symlink leaves the schedules root (points at {})",
                                target.display()
                            ),
                            Some(
                                "schedules must live inside the repository; copy the file instead",
                            ),
                        );
                        continue;
                    }
                    Err(e) => {
                        self.problem(&rel_path, format!("broken symlink: {e}"), None);
                        continue;
                    }
                }
                self.symlinks = true;
                // The target's stamp: a symlink is followed.
                let stamp = fs::metadata(&path).map(|m| Stamp::of(&m)).ok();
                self.read_file(|| path, true, rel_path, stamp);
            } else if !ft.is_file() {
                self.problem(&rel_path, "not a regular file".into(), None);
            } else {
                // Stat relative to the open folder, not by full path. It
                // does not follow a symlink: a file swapped for one since the
                // listing has a new stamp, and the read refuses it.
                let stamp = entry.metadata().map(|m| Stamp::of(&m)).ok();
                self.read_file(|| entry.path(), false, rel_path, stamp);
            }
        }
        Ok(())
    }

    /// Takes a file from the old cache when its stamp is unchanged; else
    /// reads it (through a symlink only if `follow`). `path` is only built
    /// for a read.
    fn read_file(
        &mut self,
        path: impl FnOnce() -> PathBuf,
        follow: bool,
        rel: String,
        stamp: Option<Stamp>,
    ) {
        if let Some(stamp) = stamp
            && let Ok(i) = self.old.binary_search_by(|c| c.path.as_str().cmp(&rel))
            && self.old[i].stamp == Some(stamp)
        {
            // Each path is visited once: the old entry is not needed again.
            let bytes = std::mem::take(&mut self.old[i].bytes);
            let digest = self.old[i].digest;
            self.new.push(Cached {
                path: rel,
                stamp: Some(stamp),
                bytes,
                digest,
            });
            return;
        }
        match read_capped(&path(), follow) {
            Ok(Ok((bytes, _))) => self.new.push(Cached {
                digest: sha256(&bytes),
                path: rel,
                // The listing's stamp, taken before the read (the read's
                // own is of the same instant or later).
                stamp: stamp.and_then(|s| s.trusted(self.started)),
                bytes,
            }),
            Ok(Err(len)) => self.problem(
                &rel,
                format!("file is {len} bytes; the limit is {MAX_FILE_SIZE}"),
                Some("a job file is a few hundred bytes; is this the right file?"),
            ),
            Err(e) => self.problem(&rel, format!("cannot read: {e}"), None),
        }
    }
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        // With room for the `/` a folder's sort key adds.
        let mut s = String::with_capacity(rel.len() + name.len() + 2);
        s.push_str(rel);
        s.push('/');
        s.push_str(name);
        s
    }
}

/// A revision id for a folder: SHA-256 over each file's path and SHA-256
/// (the Flux convention `dir@sha256:<digest>`), so the same files give the
/// same revision on every machine, and an unchanged file is never hashed
/// twice.
fn content_revision(files: &[Cached], problems: &[FileProblem]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for file in files {
        h.update(file.path.as_bytes());
        h.update([0]);
        h.update(file.digest);
    }
    // Problems are part of the revision: a new oversized file or broken
    // symlink is a change that must be reported, not skipped as unchanged.
    for p in problems {
        h.update([1]);
        h.update(p.path.as_bytes());
        h.update([0]);
        h.update(p.message.as_bytes());
    }
    let digest = h.finalize();
    let mut revision = String::with_capacity(11 + 64);
    revision.push_str("dir@sha256:");
    for b in digest {
        use std::fmt::Write;
        let _ = write!(revision, "{b:02x}");
    }
    revision
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_toml_skips_hidden_and_reports_escaping_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("schedules");
        fs::create_dir_all(root.join("team/.git")).unwrap();
        fs::write(root.join("a.toml"), "x").unwrap();
        fs::write(root.join("README.md"), "x").unwrap();
        fs::write(root.join("team/b.toml"), "y").unwrap();
        fs::write(root.join("team/.git/c.toml"), "z").unwrap();
        fs::write(dir.path().join("outside.toml"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.toml"), root.join("leak.toml"))
            .unwrap();
        std::os::unix::fs::symlink(root.join("a.toml"), root.join("alias.toml")).unwrap();
        fs::write(root.join("big.toml"), vec![b'#'; MAX_FILE_SIZE + 1]).unwrap();

        let s = read_folder(&root).unwrap();
        let paths: Vec<&str> = s.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.toml", "alias.toml", "team/b.toml"]);
        let problems: Vec<(&str, &str)> = s
            .problems
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].0 == "big.toml" && problems[0].1.contains("limit"));
        assert!(
            problems[1].0 == "leak.toml" && problems[1].1.contains("leaves the schedules root")
        );
        assert!(s.revision.starts_with("dir@sha256:") && s.revision.len() == 11 + 64);

        let again = read_folder(&root).unwrap();
        assert_eq!(s.revision, again.revision);
        fs::write(root.join("a.toml"), "changed").unwrap();
        assert_ne!(read_folder(&root).unwrap().revision, s.revision);
    }

    #[test]
    fn the_cache_rereads_only_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a.toml"), "a").unwrap();
        fs::write(root.join("b.toml"), "b").unwrap();
        let mut cache = FolderCache::default();
        // Files written within the last second are not cached (racy clean).
        assert_eq!(
            read_folder_cached(root, &mut cache)
                .map(|_| cache.len())
                .unwrap(),
            0
        );
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for f in ["a.toml", "b.toml"] {
            fs::File::options()
                .write(true)
                .open(root.join(f))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        // ctime moved with set_modified; wait out the one-second margin.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let first = read_folder_cached(root, &mut cache).unwrap();
        assert_eq!(cache.len(), 2);
        // Same size, new content: the stamp (mtime/ctime) still differs.
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(root.join("a.toml"), "A").unwrap();
        let second = read_folder_cached(root, &mut cache).unwrap();
        assert_eq!(second.files[0].bytes, b"A");
        assert_ne!(first.revision, second.revision);
        assert_eq!(second, read_folder(root).unwrap());
        fs::remove_file(root.join("b.toml")).unwrap();
        fs::File::options()
            .write(true)
            .open(root.join("a.toml"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2100));
        read_folder_cached(root, &mut cache).unwrap();
        assert_eq!(
            cache.len(),
            1,
            "removed files leave the cache; a.toml is cached again"
        );
    }

    #[test]
    fn files_come_out_in_path_order_across_folders() {
        // `.` and `-` sort before `/`, `0` after it: a walk that visited a
        // folder before its sibling files would get these wrong.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for p in [
            "a/b.toml",
            "a.toml",
            "a-b/c.toml",
            "a0.toml",
            "a/z/y.toml",
            "b.toml",
        ] {
            let path = root.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "x").unwrap();
        }
        let s = read_folder(root).unwrap();
        let paths: Vec<&str> = s.files.iter().map(|f| f.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert_eq!(paths.len(), 6);
    }

    fn paths(root: &Path, rel: &[&str]) -> BTreeSet<PathBuf> {
        let root = root.canonicalize().unwrap();
        rel.iter().map(|r| root.join(r)).collect()
    }

    #[test]
    fn a_changed_paths_read_equals_a_full_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("team/.git")).unwrap();
        for (p, text) in [
            ("team/a.toml", "a"),
            ("team/b.toml", "b"),
            ("team/_defaults.toml", "d"),
            ("c.toml", "c"),
        ] {
            fs::write(root.join(p), text).unwrap();
        }
        let mut cache = FolderCache::default();
        read_folder_cached(root, &mut cache).unwrap();
        let mut step = |what: &str, change: &dyn Fn(), changed: &[&str]| {
            change();
            let fast = read_folder_changed(root, &mut cache, &paths(root, changed)).unwrap();
            assert_eq!(fast, read_folder(root).unwrap(), "{what}");
        };
        // Same size, within the same second: only the name says it changed.
        step(
            "an edit",
            &|| fs::write(root.join("team/a.toml"), "A").unwrap(),
            &["team/a.toml"],
        );
        step(
            "other names",
            &|| fs::write(root.join("team/notes.txt"), "n").unwrap(),
            &["team/notes.txt"],
        );
        step(
            "hidden",
            &|| fs::write(root.join("team/.git/x.toml"), "x").unwrap(),
            &["team/.git/x.toml"],
        );
        step(
            "a removal",
            &|| fs::remove_file(root.join("team/b.toml")).unwrap(),
            &["team/b.toml"],
        );
        step(
            "a new file",
            &|| fs::write(root.join("d.toml"), "d").unwrap(),
            &["d.toml"],
        );
        step(
            "a new folder",
            &|| {
                fs::create_dir(root.join("new")).unwrap();
                fs::write(root.join("new/e.toml"), "e").unwrap();
            },
            &["new"],
        );
        step(
            "a removed folder, named alone",
            &|| fs::remove_dir_all(root.join("team")).unwrap(),
            &["team"],
        );
        step(
            "outside the root",
            &|| fs::write(root.join("c.toml"), "C").unwrap(),
            &["c.toml", "/elsewhere/c.toml"],
        );
        step(
            "swapped for a symlink",
            &|| {
                fs::remove_file(root.join("d.toml")).unwrap();
                std::os::unix::fs::symlink("/nonexistent/d.toml", root.join("d.toml")).unwrap();
            },
            &["d.toml"],
        );
        step(
            "too large",
            &|| fs::write(root.join("c.toml"), vec![b'#'; MAX_FILE_SIZE + 1]).unwrap(),
            &["c.toml"],
        );
        step(
            "after a problem, a full walk",
            &|| {
                fs::remove_file(root.join("d.toml")).unwrap();
                fs::write(root.join("d.toml"), "D").unwrap();
            },
            &[],
        );
    }

    #[test]
    fn a_changed_paths_read_reads_only_what_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a.toml"), "a").unwrap();
        fs::write(root.join("b.toml"), "b").unwrap();
        let mut cache = FolderCache::default();
        read_folder_cached(root, &mut cache).unwrap();
        fs::write(root.join("a.toml"), "A").unwrap();
        fs::write(root.join("b.toml"), "B").unwrap();
        let fast = read_folder_changed(root, &mut cache, &paths(root, &["a.toml"])).unwrap();
        let bytes: Vec<&[u8]> = fast.files.iter().map(|f| f.bytes.as_slice()).collect();
        assert_eq!(bytes, [b"A", b"b"], "b.toml was not named: not looked at");
        // A full read (the daemon's poll) sees it.
        assert_eq!(
            read_folder_cached(root, &mut cache).unwrap(),
            read_folder(root).unwrap()
        );
    }

    #[test]
    fn a_file_found_regular_is_not_read_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), "s").unwrap();
        let link = dir.path().join("a.toml");
        std::os::unix::fs::symlink(dir.path().join("secret"), &link).unwrap();
        assert!(read_capped(&link, false).is_err());
        assert_eq!(read_capped(&link, true).unwrap().unwrap().0, b"s");
    }

    #[test]
    fn a_symlink_makes_every_read_a_full_walk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a.toml"), "a").unwrap();
        std::os::unix::fs::symlink(root.join("a.toml"), root.join("alias.toml")).unwrap();
        let mut cache = FolderCache::default();
        read_folder_cached(root, &mut cache).unwrap();
        // The target changes; the watcher would name a.toml, not the alias.
        fs::write(root.join("a.toml"), "A").unwrap();
        let fast = read_folder_changed(root, &mut cache, &paths(root, &["a.toml"])).unwrap();
        assert_eq!(fast, read_folder(root).unwrap());
        assert_eq!(fast.files[1].bytes, b"A");
    }

    #[test]
    fn a_new_problem_changes_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.toml"), "a").unwrap();
        let before = read_folder(dir.path()).unwrap().revision;
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("broken.toml")).unwrap();
        let after = read_folder(dir.path()).unwrap();
        assert_eq!(after.problems.len(), 1);
        assert_ne!(
            after.revision, before,
            "a problem must not look like an unchanged revision"
        );
    }

    #[test]
    fn missing_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_folder(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }
}
