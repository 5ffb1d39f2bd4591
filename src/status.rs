//! The reconcile status: what was observed, what is applied, and why they
//! differ. Shared by `reconcile` (which writes it) and `drift` (which reads
//! it), so neither imports the other.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Diagnostics kept in the status: enough to act on, bounded.
pub const MAX_STATUS_DIAGNOSTICS: usize = 20;

/// Why the applied revision is what it is (the Flux convention: one
/// condition of each kind, with the time it became true).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Condition {
    /// The observed revision is applied.
    Ready {
        revision: String,
        since: DateTime<Utc>,
    },
    /// The observed revision is invalid: it waits for the next commit.
    Stalled {
        revision: String,
        since: DateTime<Utc>,
        errors: usize,
        /// `path:line:col: message`, at most [`MAX_STATUS_DIAGNOSTICS`].
        diagnostics: Vec<String>,
    },
    /// Reading the source fails (network, permissions): retried.
    FetchFailed { error: String, since: DateTime<Utc> },
}

impl Condition {
    /// `Ready`, `Stalled` or `FetchFailed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Ready { .. } => "Ready",
            Condition::Stalled { .. } => "Stalled",
            Condition::FetchFailed { .. } => "FetchFailed",
        }
    }
}

/// What the reconciler knows, written on every attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub observed_revision: Option<String>,
    pub applied_revision: Option<String>,
    pub last_attempt: Option<DateTime<Utc>>,
    pub conditions: Vec<Condition>,
}
