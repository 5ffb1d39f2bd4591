//! Watching a folder with notify: changes *nudge* the reconcile loop and
//! name the paths they touched, so the next read can re-read just those
//! (see [`read_folder_changed`](super::read_folder_changed)). A nudge carries
//! no content; any doubt (an error, a rescan notice, too many paths, the
//! time before the watch started) turns into [`Changes::Unknown`], a full
//! read. A missed or coalesced event can therefore never make the daemon
//! run a wrong state for longer than the poll interval, whose reads are
//! always full.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Pending nudges. One is all the loop needs ("something changed"); the
/// watcher's callback uses `try_send`, so a burst of events coalesces
/// instead of queueing.
pub const NUDGE_QUEUE: usize = 1;

/// Changed paths kept between two reads. An editor's save touches one to
/// three; a `git checkout` may touch thousands, and then a full read is as
/// cheap as re-reading each and bounds the watcher's memory.
pub const MAX_CHANGED_PATHS: usize = 256;

/// What changed in the folder since the last [`FolderWatch::take_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Only these paths (absolute, as the watcher reports them), at most
    /// [`MAX_CHANGED_PATHS`].
    Paths(BTreeSet<PathBuf>),
    /// Anything may have changed: read the whole folder.
    Unknown,
}

impl Changes {
    fn add(&mut self, event: &notify::Result<notify::Event>) {
        let Changes::Paths(paths) = self else { return };
        match event {
            Ok(e) if !e.need_rescan() && !e.paths.is_empty() => {
                paths.extend(e.paths.iter().cloned());
                if paths.len() > MAX_CHANGED_PATHS {
                    *self = Changes::Unknown;
                }
            }
            // An error may mean lost events; a rescan notice (the kernel's
            // queue overflowed) or an event without a path names nothing.
            _ => *self = Changes::Unknown,
        }
    }
}

/// A live watch; dropping it stops watching.
pub struct FolderWatch {
    _watcher: RecommendedWatcher,
    pub nudges: mpsc::Receiver<()>,
    changes: Arc<Mutex<Changes>>,
}

impl FolderWatch {
    /// The changes seen since the last call, leaving none. Take them
    /// *before* reading: a change during the read is then kept for the
    /// next one. The first call answers [`Changes::Unknown`]: the watch
    /// cannot vouch for what happened before it started.
    pub fn take_changes(&self) -> Changes {
        let mut c = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *c, Changes::Paths(BTreeSet::new()))
    }
}

/// Watches `path` recursively. Event paths start with `path` canonicalized
/// (symlinks resolved), as [`read_folder_changed`](super::read_folder_changed)
/// expects.
///
/// # Errors
/// When the platform watcher cannot be set up (for example, inotify limits).
pub fn watch_folder(path: &Path) -> Result<FolderWatch, notify::Error> {
    let path = path.canonicalize().map_err(notify::Error::io)?;
    let (tx, nudges) = mpsc::channel(NUDGE_QUEUE);
    let changes = Arc::new(Mutex::new(Changes::Unknown));
    let seen = changes.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reads do not change anything (a close after writing comes with a
        // modify event of its own).
        if matches!(&event, Ok(e) if matches!(e.kind, notify::EventKind::Access(_))) {
            return;
        }
        seen.lock().unwrap_or_else(|e| e.into_inner()).add(&event);
        let _ = tx.try_send(());
    })?;
    watcher.watch(&path, RecursiveMode::Recursive)?;
    Ok(FolderWatch {
        _watcher: watcher,
        nudges,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, Event, EventKind, Flag};

    fn created(p: &str) -> notify::Result<Event> {
        Ok(Event::new(EventKind::Create(CreateKind::File)).add_path(PathBuf::from(p)))
    }

    #[test]
    fn changes_collect_paths_and_give_up_on_doubt() {
        let mut c = Changes::Paths(BTreeSet::new());
        c.add(&created("/s/a.toml"));
        c.add(&created("/s/a.toml"));
        c.add(&created("/s/b.toml"));
        assert_eq!(
            c,
            Changes::Paths(["/s/a.toml", "/s/b.toml"].map(PathBuf::from).into())
        );
        let mut rescan = c.clone();
        rescan.add(&Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)));
        assert_eq!(rescan, Changes::Unknown);
        let mut error = c.clone();
        error.add(&Err(notify::Error::generic("lost")));
        assert_eq!(error, Changes::Unknown);
        let mut nameless = c.clone();
        nameless.add(&Ok(Event::new(EventKind::Any)));
        assert_eq!(nameless, Changes::Unknown);
        let mut many = c;
        for i in 0..MAX_CHANGED_PATHS {
            many.add(&created(&format!("/s/{i}.toml")));
        }
        assert_eq!(many, Changes::Unknown, "a bounded set");
        many.add(&created("/s/c.toml"));
        assert_eq!(many, Changes::Unknown, "unknown stays unknown");
    }

    #[test]
    fn the_first_take_is_unknown_then_edits_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.toml"), "a").unwrap();
        let w = watch_folder(&root).unwrap();
        assert_eq!(w.take_changes(), Changes::Unknown);
        std::fs::write(root.join("a.toml"), "b").unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut seen = BTreeSet::new();
        while std::time::Instant::now() < end && !seen.contains(&root.join("a.toml")) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            match w.take_changes() {
                Changes::Paths(p) => seen.extend(p),
                Changes::Unknown => panic!("a plain edit is not a doubt"),
            }
        }
        assert!(seen.contains(&root.join("a.toml")), "{seen:?}");
    }
}
