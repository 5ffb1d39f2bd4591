//! Validation results as text, JSON and GitHub annotations.

use std::fmt::Write as _;

use serde::Serialize;

use super::JSON_FORMAT_VERSION;
use crate::spec::{Diagnostic, Loaded, Severity};

/// What a validation report says about: the loaded tree and how the user
/// named its root (paths are shown relative to where they ran the command).
pub struct ValidationReport<'a> {
    pub root: &'a str,
    pub loaded: &'a Loaded,
}

impl ValidationReport<'_> {
    /// The path a diagnostic is shown under: the root as the user wrote
    /// it, joined with the file's path inside it.
    fn display_path(&self, d: &Diagnostic) -> String {
        let root = self.root.trim_end_matches('/');
        match (root, d.file.as_str()) {
            (r, "") => r.to_string(),
            ("" | ".", f) => f.to_string(),
            (r, f) => format!("{r}/{f}"),
        }
    }

    fn summary(&self) -> String {
        let l = self.loaded;
        let jobs = l.desired.jobs.len();
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        if l.is_valid() {
            let mut s = format!("{}: {} valid", self.root, plural(jobs, "job"));
            if l.warnings() > 0 {
                write!(s, ", {}", plural(l.warnings(), "warning")).ok();
            }
            s
        } else {
            format!(
                "{}: invalid: {}, {} ({} of {} valid)",
                self.root,
                plural(l.errors(), "error"),
                plural(l.warnings(), "warning"),
                jobs,
                plural(l.job_files, "job file")
            )
        }
    }

    /// Human-readable: `path:line:col: severity: message`, the source line
    /// with a marker, the hint, then a summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for d in &self.loaded.diagnostics {
            let path = self.display_path(d);
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            match d.position {
                Some(p) => writeln!(out, "{path}:{}:{}: {sev}: {}", p.line, p.column, d.message),
                None => writeln!(out, "{path}: {sev}: {}", d.message),
            }
            .ok();
            if let (Some(s), Some(p)) = (&d.snippet, d.position) {
                let num = p.line.to_string();
                let pad = " ".repeat(num.len());
                writeln!(out, "{pad} |").ok();
                writeln!(out, "{num} | {}", s.text).ok();
                writeln!(
                    out,
                    "{pad} | {}{}",
                    " ".repeat(s.column - 1),
                    "^".repeat(s.width)
                )
                .ok();
            }
            if let Some(h) = &d.hint {
                writeln!(out, "  = hint: {h}").ok();
            }
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// Versioned JSON.
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            format_version: &'static str,
            root: &'a str,
            revision: &'a str,
            valid: bool,
            jobs: Vec<&'a str>,
            job_files: usize,
            errors: usize,
            warnings: usize,
            diagnostics: Vec<Item<'a>>,
        }
        #[derive(Serialize)]
        struct Item<'a> {
            severity: Severity,
            file: String,
            line: Option<usize>,
            column: Option<usize>,
            message: &'a str,
            hint: Option<&'a str>,
            source_line: Option<&'a str>,
        }
        let l = self.loaded;
        let doc = Doc {
            format_version: JSON_FORMAT_VERSION,
            root: self.root,
            revision: &l.desired.revision,
            valid: l.is_valid(),
            jobs: l.desired.jobs.keys().map(|k| k.as_str()).collect(),
            job_files: l.job_files,
            errors: l.errors(),
            warnings: l.warnings(),
            diagnostics: l
                .diagnostics
                .iter()
                .map(|d| Item {
                    severity: d.severity,
                    file: self.display_path(d),
                    line: d.position.map(|p| p.line),
                    column: d.position.map(|p| p.column),
                    message: &d.message,
                    hint: d.hint.as_deref(),
                    source_line: d.snippet.as_ref().map(|s| s.text.as_str()),
                })
                .collect(),
        };
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    }

    /// GitHub Actions workflow commands (`::error file=...,line=...::msg`),
    /// one per diagnostic, then the summary as a plain line.
    pub fn github(&self) -> String {
        let mut out = String::new();
        for d in &self.loaded.diagnostics {
            let cmd = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let mut props = format!("file={}", escape_property(&self.display_path(d)));
            if let Some(p) = d.position {
                write!(props, ",line={},col={}", p.line, p.column).ok();
            }
            props.push_str(",title=driftcron validate");
            let mut msg = d.message.clone();
            if let Some(h) = &d.hint {
                write!(msg, "\nhint: {h}").ok();
            }
            writeln!(out, "::{cmd} {props}::{}", escape_data(&msg)).ok();
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }
}

/// Escapes the message part of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escaping() {
        assert_eq!(escape_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
