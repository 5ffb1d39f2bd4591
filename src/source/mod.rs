//! Where schedule files come from. A source yields [`Snapshot`]s and knows
//! nothing of jobs.

pub mod folder;
pub mod git;
pub mod watch;

pub use folder::{FolderCache, FolderError, read_folder, read_folder_cached, read_folder_changed};
pub use git::{
    GitError, GitRef, GitSource, GitSpec, default_base, set_network_timeouts, snapshot_at,
    workdir_of,
};
pub use watch::{Changes, FolderWatch, MAX_CHANGED_PATHS, watch_folder};
