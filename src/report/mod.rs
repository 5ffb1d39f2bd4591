//! Renderers. Reports are data (diagnostics, plans, drift); this module
//! turns them into text for people, versioned JSON for machines, and
//! GitHub workflow annotations.

pub mod diagnostics;
pub mod drift;
pub mod plan;

/// Version of every JSON document driftcron prints. Bumped only when a
/// field changes meaning or disappears; new fields may appear at any time.
pub const JSON_FORMAT_VERSION: &str = "1";
