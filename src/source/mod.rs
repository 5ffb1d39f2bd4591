//! Where schedule files come from. A source yields [`Snapshot`]s and knows
//! nothing of jobs.

pub mod folder;
pub mod git;
pub mod watch;

pub use folder::{FolderError, read_folder};
pub use git::{GitError, GitRef, GitSource, GitSpec};
pub use watch::{FolderWatch, watch_folder};
