//! A plain folder as a source: walk it, read the `*.toml` files, and refuse
//! what must not be read (too large, symlinks out of the root).

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
/// the walk that filled `cache`.
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
    cache.pass = cache.pass.wrapping_add(1);
    let mut walk = Walk {
        root: canon_root,
        entries: 0,
        files: Vec::with_capacity(cache.files.len()),
        problems: Vec::new(),
        cache,
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    walk.dir(root, "", 0)?;
    let Walk {
        mut files,
        mut problems,
        cache,
        ..
    } = walk;
    let pass = cache.pass;
    cache.files.retain(|_, c| c.pass == pass);
    // The walk visits paths in order already (see `Walk::dir`); these sorts
    // only confirm it, in linear time.
    files.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    let revision = content_revision(&files, &problems);
    Ok(Snapshot {
        revision,
        files: files.into_iter().map(|(f, _)| f).collect(),
        problems,
    })
}

struct Walk<'c> {
    root: PathBuf,
    entries: usize,
    /// Files read, each with its SHA-256: the revision is a digest of these,
    /// so unchanged (cached) files are not hashed again.
    files: Vec<(SourceFile, [u8; 32])>,
    problems: Vec<FileProblem>,
    cache: &'c mut FolderCache,
    /// Seconds since the epoch when the walk started: a file modified within
    /// a second of it is not cached (git's "racy clean" rule: a same-size
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
}

/// Files read by earlier walks, by path: a one-file change reads one file.
#[derive(Debug, Default)]
pub struct FolderCache {
    files: std::collections::HashMap<String, Cached>,
    /// The number of the latest walk: entries it did not mark are files that
    /// are gone, and leave the cache.
    pass: u64,
}

#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    bytes: Vec<u8>,
    digest: [u8; 32],
    /// The last walk that found the file.
    pass: u64,
}

impl FolderCache {
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
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

impl Walk<'_> {
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
                // The target's stamp: a symlink is followed.
                let stamp = fs::metadata(&path).map(|m| Stamp::of(&m)).ok();
                self.read_file(|| path, rel_path, stamp);
            } else if !ft.is_file() {
                self.problem(&rel_path, "not a regular file".into(), None);
            } else {
                // Stat relative to the open folder, not by full path. It
                // does not follow a symlink, so a file swapped for one since
                // the listing has a new stamp and is read afresh.
                let stamp = entry.metadata().map(|m| Stamp::of(&m)).ok();
                self.read_file(|| entry.path(), rel_path, stamp);
            }
        }
        Ok(())
    }

    /// Takes a file from the cache when its stamp is unchanged; else reads
    /// it, and caches it unless it changed too recently to trust its stamp.
    /// `path` is only built for a read.
    fn read_file(&mut self, path: impl FnOnce() -> PathBuf, rel: String, stamp: Option<Stamp>) {
        if let Some(stamp) = stamp
            && let Some(c) = self.cache.files.get_mut(&rel)
            && c.stamp == stamp
        {
            c.pass = self.cache.pass;
            let file = SourceFile {
                path: rel,
                bytes: c.bytes.clone(),
            };
            self.files.push((file, c.digest));
            return;
        }
        let result = fs::File::open(path()).and_then(|f| {
            let len = f.metadata()?.len();
            if len > MAX_FILE_SIZE as u64 {
                return Ok(Err(len));
            }
            // Read at most one byte past the cap: the file may grow between
            // the size check and the read.
            let mut bytes = Vec::with_capacity(len as usize);
            f.take(MAX_FILE_SIZE as u64 + 1).read_to_end(&mut bytes)?;
            if bytes.len() > MAX_FILE_SIZE {
                return Ok(Err(bytes.len() as u64));
            }
            Ok(Ok(bytes))
        });
        match result {
            Ok(Ok(bytes)) => {
                let digest: [u8; 32] = {
                    use sha2::{Digest, Sha256};
                    Sha256::digest(&bytes).into()
                };
                if let Some(stamp) = stamp
                    && stamp.mtime.0 < self.started - 1
                    && stamp.ctime.0 < self.started - 1
                {
                    self.cache.files.insert(
                        rel.clone(),
                        Cached {
                            stamp,
                            bytes: bytes.clone(),
                            digest,
                            pass: self.cache.pass,
                        },
                    );
                }
                self.files.push((SourceFile { path: rel, bytes }, digest));
            }
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
fn content_revision(files: &[(SourceFile, [u8; 32])], problems: &[FileProblem]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (file, digest) in files {
        h.update(file.path.as_bytes());
        h.update([0]);
        h.update(digest);
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
