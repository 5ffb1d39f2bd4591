//! driftcron: a GitOps job scheduler. See DESIGN.md for the architecture.

pub mod api;
pub mod cli;
pub mod drift;
pub mod fxhash;
pub mod memory;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod scheduler;
pub mod snapshot;
pub mod source;
pub mod spec;
pub mod status;
#[cfg(test)]
mod test_support;
