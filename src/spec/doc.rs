//! TOML documents as an owned tree in which every key and value remembers
//! the file and byte range it came from.
//!
//! Defaults cascade by merging these trees, so a value inherited from a
//! `_defaults.toml` still points at the line that wrote it.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostic, Severity, SourceText};

/// Index of a file in the loader's file list.
pub type FileId = usize;

/// Where something was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub file: FileId,
    pub span: Range<usize>,
}

/// A TOML value with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub at: At,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    String(String),
    Integer(i64),
    /// An integer outside the i64 range, as written.
    BigInteger(String),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Table),
}

impl Kind {
    /// The TOML type name, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::String(_) => "a string",
            Kind::Integer(_) | Kind::BigInteger(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime(_) => "a datetime",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

/// A key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub at: At,
}

/// A table: entries in source order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub entries: Vec<(Key, Node)>,
}

impl Table {
    pub fn get(&self, name: &str) -> Option<&(Key, Node)> {
        self.entries.iter().find(|(k, _)| k.name == name)
    }

    /// Merges `over` on top of `self`: tables merge key by key, anything
    /// else in `over` replaces what was there.
    pub fn merge(&mut self, over: &Table) {
        // Index the keys once: a file may hold many thousands of them, and
        // a lookup per key would make merging quadratic.
        let mut index: HashMap<String, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.name.clone(), i))
            .collect();
        for (key, node) in &over.entries {
            match index.get(&key.name) {
                Some(&i) => {
                    let (k, existing) = &mut self.entries[i];
                    match (&mut existing.kind, &node.kind) {
                        (Kind::Table(mine), Kind::Table(theirs)) => {
                            mine.merge(theirs);
                            // The most specific file that writes the table
                            // answers for it (a size limit, say).
                            *k = key.clone();
                            existing.at = node.at.clone();
                        }
                        _ => {
                            *k = key.clone();
                            *existing = node.clone();
                        }
                    }
                }
                None => {
                    index.insert(key.name.clone(), self.entries.len());
                    self.entries.push((key.clone(), node.clone()));
                }
            }
        }
    }
}

/// Deepest nesting a schedule file may reach, counted generously (see
/// [`nesting_bound`]). A job needs three or four levels; the bound keeps
/// the TOML tree (built and dropped recursively) far from the stack's end.
pub const MAX_NESTING: usize = 128;

/// An upper bound on the table/array nesting of a TOML text, without
/// parsing it: (deepest bracket nesting + 1) times (most dotted parts in one
/// key or value). Dotted keys inside nested inline tables multiply, which
/// the parser's own bracket limit does not see.
pub fn nesting_bound(text: &str) -> usize {
    nesting_scan(text).0
}

/// The bound, and the byte offset where the running bound first passed
/// [`MAX_NESTING`] (for the diagnostic's position).
fn nesting_scan(text: &str) -> (usize, Option<usize>) {
    let bytes = text.as_bytes();
    let mut first_over = None;
    let (mut depth, mut max_depth) = (0usize, 0usize);
    let (mut dots, mut max_dots) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            q @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(if q == b'"' { b"\"\"\"" } else { b"'''" });
                i += if triple { 3 } else { 1 };
                while i < bytes.len() {
                    if q == b'"' && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == q && (!triple || bytes[i..].starts_with(&[q, q, q])) {
                        i += if triple { 3 } else { 1 };
                        break;
                    }
                    if !triple && bytes[i] == b'\n' {
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
                dots = 0;
                if first_over.is_none() && (max_depth + 1) * (max_dots + 1) > MAX_NESTING {
                    first_over = Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'.' => {
                dots += 1;
                max_dots = max_dots.max(dots);
                if first_over.is_none() && (max_depth + 1) * (max_dots + 1) > MAX_NESTING {
                    first_over = Some(i);
                }
            }
            b'=' | b',' | b'\n' => dots = 0,
            _ => {}
        }
        i += 1;
    }
    ((max_depth + 1) * (max_dots + 1), first_over)
}

/// Parses a file into a table, turning every syntax error into a located
/// diagnostic. Returns `None` if the file has syntax errors (a half-parsed
/// job must not be validated: its errors would be guesses).
pub fn parse(file: FileId, src: &SourceText, diags: &mut Vec<Diagnostic>) -> Option<Table> {
    if let (bound, Some(at)) = nesting_scan(&src.text) {
        diags.push(
            src.at(
                Severity::Error,
                at..at + 1,
                format!(
                    "tables and arrays are nested too deeply (up to {bound} levels; the limit is {MAX_NESTING})"
                ),
            )
            .with_hint("a job file needs a few levels; flatten the nesting or shorten the dotted keys"),
        );
        return None;
    }
    let (doc, errors) = DeTable::parse_recoverable(&src.text);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().replace('\n', "; ");
            diags.push(
                src.at(Severity::Error, span, format!("invalid TOML: {msg}"))
                    .with_hint("see https://toml.io for the syntax"),
            );
        }
        return None;
    }
    Some(convert_table(file, doc.into_inner()))
}

fn convert_table(file: FileId, table: DeTable<'_>) -> Table {
    let entries = table
        .into_iter()
        .map(|(k, v)| {
            let key = Key {
                at: At {
                    file,
                    span: k.span(),
                },
                name: k.into_inner().into_owned(),
            };
            (key, convert_value(file, v))
        })
        .collect();
    Table { entries }
}

fn convert_value(file: FileId, v: toml::Spanned<DeValue<'_>>) -> Node {
    let at = At {
        file,
        span: v.span(),
    };
    let kind = match v.into_inner() {
        DeValue::String(s) => Kind::String(s.into_owned()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Kind::Integer(n),
            // Out of i64 range: keep it as text so the validator can say
            // "out of range" at the right place.
            Err(_) => Kind::BigInteger(i.as_str().to_string()),
        },
        DeValue::Float(f) => Kind::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Kind::Bool(b),
        DeValue::Datetime(d) => Kind::Datetime(d.to_string()),
        DeValue::Array(a) => Kind::Array(a.into_iter().map(|v| convert_value(file, v)).collect()),
        DeValue::Table(t) => Kind::Table(convert_table(file, t)),
    };
    Node { kind, at }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        let src = SourceText::new("t.toml", text);
        let mut d = vec![];
        parse(0, &src, &mut d).unwrap()
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = "a = 1\n[dst]\ngap = \"skip\"\n";
        let t = table(text);
        let (k, v) = t.get("a").unwrap();
        assert_eq!(&text[k.at.span.clone()], "a");
        assert_eq!(&text[v.at.span.clone()], "1");
        let (_, dst) = t.get("dst").unwrap();
        let Kind::Table(dst) = &dst.kind else {
            panic!()
        };
        let (_, gap) = dst.get("gap").unwrap();
        assert_eq!(&text[gap.at.span.clone()], "\"skip\"");
    }

    #[test]
    fn merge_is_deep_for_tables_only() {
        let mut base =
            table("timezone = \"UTC\"\nenv = { A = \"1\", B = \"2\" }\nlabels = { x = \"1\" }\n");
        let over = table("timezone = \"Europe/Berlin\"\nenv = { B = \"3\" }\n");
        base.merge(&over);
        let Kind::Table(env) = &base.get("env").unwrap().1.kind else {
            panic!()
        };
        assert_eq!(env.entries.len(), 2);
        assert_eq!(env.get("B").unwrap().1.kind, Kind::String("3".into()));
        assert_eq!(
            base.get("timezone").unwrap().1.kind,
            Kind::String("Europe/Berlin".into())
        );
    }

    #[test]
    fn nesting_bound_sees_dotted_keys_inside_inline_tables() {
        assert!(nesting_bound("a = 1\n[dst]\ngap = \"skip\"\nenv = { A = \"x.y.z\" }\n") < 10);
        let dotted = "a.".repeat(40) + "a";
        let bomb = format!(
            "labels = {}{}\n",
            format!("{{ {dotted} = ").repeat(10),
            "1}".repeat(10)
        );
        assert!(nesting_bound(&bomb) > MAX_NESTING);
        let src = SourceText::new("bomb.toml", bomb);
        let mut d = vec![];
        assert!(parse(0, &src, &mut d).is_none());
        assert!(
            d[0].message.contains("nested too deeply"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let src = SourceText::new("bad.toml", "a = 1\nb = \n");
        let mut d = vec![];
        assert!(parse(0, &src, &mut d).is_none());
        assert!(!d.is_empty());
        assert_eq!(d[0].position.unwrap().line, 2);
        assert!(d[0].message.starts_with("invalid TOML"));
    }
}
