//! The schedule language: TOML job files in, validated [`JobSpec`]s and
//! located diagnostics out. Pure: no I/O and no clock (callers pass "now").
//!
//! Loading runs in two stages: [`raw`] mirrors the TOML with spans, then
//! [`validate`] converts it into typed values or errors. [`load`] ties them
//! to the file tree (ids from paths, `_defaults.toml` cascading).

pub mod cron;
pub mod diag;
pub mod doc;
pub mod job;
pub mod load;
pub mod raw;
pub mod schedule;
pub mod settings;
pub mod units;
pub mod validate;

pub use diag::{Diagnostic, Severity};
pub use job::{JobId, JobSpec};
pub use load::{DesiredState, LoadOptions, Loaded, load};
pub use schedule::Schedule;
pub use settings::Settings;
