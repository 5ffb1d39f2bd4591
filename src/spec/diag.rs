//! Diagnostics: every problem found in the schedule files, located to a
//! file, line and column, with the source line and a hint.
//!
//! Diagnostics are resolved to lines and columns when they are made, so the
//! renderers in `report` need nothing but this data.

use std::ops::Range;

use serde::Serialize;

/// How bad a diagnostic is: errors make the tree invalid, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The source line a diagnostic points into, and the marked part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Snippet {
    pub text: String,
    /// 1-based character column where the marker starts.
    pub column: usize,
    /// Marker width in characters (at least 1).
    pub width: usize,
}

/// One problem in one place.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Path relative to the schedules root, `/`-separated; empty for
    /// problems of the tree as a whole.
    pub file: String,
    pub position: Option<Position>,
    pub snippet: Option<Snippet>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A problem of a file as a whole (no position).
    pub fn file(severity: Severity, file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            file: file.to_string(),
            position: None,
            snippet: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint if there is one.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A file's text with its line starts, to turn byte offsets into
/// positions and snippets.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

/// Longest snippet line shown; longer lines are cut around the marker so a
/// minified or hostile file cannot flood the output.
const MAX_SNIPPET_CHARS: usize = 160;

impl SourceText {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceText {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// Position of a byte offset (clamped into the text, snapped back to a
    /// character boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        Position {
            line: line + 1,
            column: self.text[start..offset].chars().count() + 1,
        }
    }

    fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&e| e - 1);
        self.text[start..end].trim_end_matches('\r')
    }

    /// A located diagnostic for a byte range of this file.
    pub fn at(
        &self,
        severity: Severity,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let pos = self.position(span.start);
        let line = self.line_text(pos.line);
        let end = self.position(span.end.max(span.start));
        let width = if end.line == pos.line {
            end.column.saturating_sub(pos.column).max(1)
        } else {
            line.chars().count().saturating_sub(pos.column - 1).max(1)
        };
        Diagnostic {
            severity,
            file: self.name.clone(),
            position: Some(pos),
            snippet: Some(cut_snippet(line, pos.column, width)),
            message: message.into(),
            hint: None,
        }
    }
}

fn cut_snippet(line: &str, column: usize, width: usize) -> Snippet {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= MAX_SNIPPET_CHARS {
        return Snippet {
            text: line.replace('\t', " "),
            column,
            width,
        };
    }
    // Keep the marker in view, and the window inside the line (a marker may
    // sit just past the line's end, at a missing value).
    let start = column
        .saturating_sub(1 + MAX_SNIPPET_CHARS / 4)
        .min(chars.len() - MAX_SNIPPET_CHARS);
    let end = start + MAX_SNIPPET_CHARS;
    let text: String = chars[start..end].iter().collect();
    Snippet {
        text: text.replace('\t', " "),
        column: column - start,
        width: width.min(end.saturating_sub(column - 1)).max(1),
    }
}

/// Sorts diagnostics by file and position and drops exact repeats (a bad
/// value in a `_defaults.toml` is seen once per job that inherits it, and
/// must be reported once).
pub fn normalize(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| {
        (a.file.as_str(), a.position, a.severity, a.message.as_str()).cmp(&(
            b.file.as_str(),
            b.position,
            b.severity,
            b.message.as_str(),
        ))
    });
    diags.dedup();
    cap_per_file(diags);
}

/// Most diagnostics listed for one file. A generated file with a hundred
/// thousand bad keys must produce a readable report, not a flood.
pub const MAX_DIAGNOSTICS_PER_FILE: usize = 50;

fn cap_per_file(diags: &mut Vec<Diagnostic>) {
    let mut out: Vec<Diagnostic> = Vec::with_capacity(diags.len().min(4096));
    let mut i = 0;
    while i < diags.len() {
        let file = diags[i].file.clone();
        let end = i + diags[i..].iter().take_while(|d| d.file == file).count();
        let group = &diags[i..end];
        if group.len() <= MAX_DIAGNOSTICS_PER_FILE {
            out.extend_from_slice(group);
        } else {
            // Keep errors first so a capped file still shows why it fails.
            let mut kept: Vec<&Diagnostic> = group.iter().filter(|d| d.is_error()).collect();
            kept.extend(group.iter().filter(|d| !d.is_error()));
            kept.truncate(MAX_DIAGNOSTICS_PER_FILE);
            kept.sort_by_key(|d| d.position);
            let errors_left = group.iter().filter(|d| d.is_error()).count()
                - kept.iter().filter(|d| d.is_error()).count();
            let dropped = group.len() - kept.len();
            out.extend(kept.into_iter().cloned());
            let severity = if errors_left > 0 {
                Severity::Error
            } else {
                Severity::Warning
            };
            out.push(
                Diagnostic::file(
                    severity,
                    &file,
                    format!("{dropped} more problems in this file are not listed"),
                )
                .with_hint("fix the ones above and validate again"),
            );
        }
        i = end;
    }
    *diags = out;
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let src = SourceText::new("a.toml", "x = 1\né = \"ü\"\n");
        assert_eq!(src.position(0), Position { line: 1, column: 1 });
        let off = src.text.find('"').unwrap();
        assert_eq!(src.position(off), Position { line: 2, column: 5 });
        let d = src.at(Severity::Error, off..off + 4, "m");
        let s = d.snippet.unwrap();
        assert_eq!((s.text.as_str(), s.column, s.width), ("é = \"ü\"", 5, 3));
    }

    #[test]
    fn typo_suggestions() {
        let keys = ["timeout", "timezone", "schedule"];
        assert_eq!(did_you_mean("timout", keys), Some("timeout"));
        assert_eq!(did_you_mean("shedule", keys), Some("schedule"));
        assert_eq!(did_you_mean("banana", keys), None);
    }

    #[test]
    fn long_lines_are_cut_around_the_marker() {
        let line = "a".repeat(1000);
        let s = cut_snippet(&line, 900, 5);
        assert!(s.text.chars().count() <= MAX_SNIPPET_CHARS);
        assert_eq!(s.width, 5);
        assert!(s.column > 1 && s.column < MAX_SNIPPET_CHARS);
        // A marker past the end of a long line (a missing value at EOL).
        let s = cut_snippet(&line, 1001, 1);
        assert_eq!(s.text.chars().count(), MAX_SNIPPET_CHARS);
        assert_eq!((s.column, s.width), (MAX_SNIPPET_CHARS + 1, 1));
    }
}
