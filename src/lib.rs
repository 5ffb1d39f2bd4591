//! driftcron: a GitOps job scheduler. See DESIGN.md for the architecture.

pub mod cli;
pub mod report;
pub mod snapshot;
pub mod source;
pub mod spec;
