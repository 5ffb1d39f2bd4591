//! The one type the edges and the core share: a snapshot of the schedule
//! files at one revision, as bytes, with what could not be read.
//!
//! `source` produces it and knows nothing of jobs; `spec` consumes it and
//! does no I/O.

/// One file under the schedules root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the root, `/`-separated (`billing/sweep.toml`).
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A file the source found but would not read (too large, a symlink out of
/// the root, unreadable). It is reported as an error at that path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

/// The schedule files at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// A commit id, or a content hash for a plain folder.
    pub revision: String,
    /// Sorted by path.
    pub files: Vec<SourceFile>,
    pub problems: Vec<FileProblem>,
}

impl Snapshot {
    /// A snapshot of in-memory files, `(path, text)`: for callers that
    /// already hold the schedules (tests, tools), not a source.
    pub fn from_texts(revision: &str, files: &[(&str, &str)]) -> Snapshot {
        let mut files: Vec<SourceFile> = files
            .iter()
            .map(|(p, t)| SourceFile {
                path: p.to_string(),
                bytes: t.as_bytes().to_vec(),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Snapshot {
            revision: revision.to_string(),
            files,
            problems: Vec::new(),
        }
    }
}
