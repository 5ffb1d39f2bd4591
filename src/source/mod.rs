//! Where schedule files come from. A source yields [`Snapshot`]s and knows
//! nothing of jobs.

pub mod folder;
pub mod watch;

pub use folder::{FolderError, read_folder};
pub use watch::{FolderWatch, watch_folder};
