//! Watching a folder with notify: changes only *nudge* the reconcile loop,
//! which then reads the whole folder. A nudge carries no content, so a
//! missed or coalesced event can never make the daemon run a wrong state.

use std::path::Path;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Pending nudges. One is all the loop needs ("something changed"); the
/// watcher's callback uses `try_send`, so a burst of events coalesces
/// instead of queueing.
pub const NUDGE_QUEUE: usize = 1;

/// A live watch; dropping it stops watching.
pub struct FolderWatch {
    _watcher: RecommendedWatcher,
    pub nudges: mpsc::Receiver<()>,
}

/// Watches `path` recursively.
///
/// # Errors
/// When the platform watcher cannot be set up (for example, inotify limits).
pub fn watch_folder(path: &Path) -> Result<FolderWatch, notify::Error> {
    let (tx, nudges) = mpsc::channel(NUDGE_QUEUE);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => !matches!(e.kind, notify::EventKind::Access(_)),
            // An error may mean lost events: read the folder again.
            Err(_) => true,
        };
        if relevant {
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(path, RecursiveMode::Recursive)?;
    Ok(FolderWatch {
        _watcher: watcher,
        nudges,
    })
}
