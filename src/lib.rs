//! driftcron: a GitOps job scheduler. See DESIGN.md for the architecture.

pub mod snapshot;
pub mod spec;
