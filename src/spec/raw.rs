//! The first stage of loading: a raw model that mirrors the TOML, every
//! value with its origin, and nothing checked beyond TOML types and known
//! keys.
//!
//! It is read by walking the spanned tree rather than by serde derive: a
//! derive stops at the first problem in a file, and a reviewer wants every
//! problem of every file in one pass.

use std::collections::BTreeMap;

use super::diag::{Diagnostic, Severity, SourceText, did_you_mean};
use super::doc::{At, Key, Kind, Node, Table};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    pub value: T,
    pub at: At,
}

/// Collects diagnostics while reading; knows the files so it can locate
/// them.
pub struct Reporter<'a> {
    files: &'a [SourceText],
    pub diags: Vec<Diagnostic>,
    /// Errors reported through [`Reporter::error`]: callers compare it
    /// before and after a step (a count kept as it goes, not a scan, so a
    /// tree with thousands of errors stays linear).
    errors: usize,
}

impl<'a> Reporter<'a> {
    pub fn new(files: &'a [SourceText]) -> Self {
        Reporter {
            files,
            diags: Vec::new(),
            errors: 0,
        }
    }

    pub fn source(&self, at: &At) -> &SourceText {
        &self.files[at.file]
    }

    pub fn error(&mut self, at: &At, message: impl Into<String>, hint: Option<String>) {
        self.errors += 1;
        let d = self.files[at.file].at(Severity::Error, at.span.clone(), message);
        self.diags.push(d.with_hint_opt(hint));
    }

    pub fn warning(&mut self, at: &At, message: impl Into<String>, hint: Option<String>) {
        let d = self.files[at.file].at(Severity::Warning, at.span.clone(), message);
        self.diags.push(d.with_hint_opt(hint));
    }

    pub fn error_count(&self) -> usize {
        self.errors
    }

    /// Reports every key of `table` not in `known`, with a suggestion.
    pub fn unknown_keys(&mut self, table: &Table, known: &[&str], what: &str) {
        for (key, _) in &table.entries {
            if !known.contains(&key.name.as_str()) {
                let hint = match did_you_mean(&key.name, known.iter().copied()) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => format!("known {what} fields: {}", known.join(", ")),
                };
                self.error(
                    &key.at,
                    format!("unknown field \"{}\" in {what}", key.name),
                    Some(hint),
                );
            }
        }
    }

    fn wrong_type(&mut self, key: &Key, node: &Node, expected: &str, example: &str) {
        self.error(
            &node.at,
            format!(
                "`{}` must be {expected}, found {}",
                key.name,
                node.kind.type_name()
            ),
            Some(format!("for example: {} = {example}", key.name)),
        );
    }

    pub fn string(&mut self, t: &Table, name: &str, example: &str) -> Option<Sp<String>> {
        let (key, node) = t.get(name)?;
        match &node.kind {
            Kind::String(s) => Some(Sp {
                value: s.clone(),
                at: node.at.clone(),
            }),
            _ => {
                self.wrong_type(key, node, "a string", example);
                None
            }
        }
    }

    pub fn boolean(&mut self, t: &Table, name: &str) -> Option<Sp<bool>> {
        let (key, node) = t.get(name)?;
        match &node.kind {
            Kind::Bool(b) => Some(Sp {
                value: *b,
                at: node.at.clone(),
            }),
            _ => {
                self.wrong_type(key, node, "true or false", "true");
                None
            }
        }
    }

    pub fn integer(&mut self, t: &Table, name: &str, example: &str) -> Option<Sp<i64>> {
        let (key, node) = t.get(name)?;
        match &node.kind {
            Kind::Integer(i) => Some(Sp {
                value: *i,
                at: node.at.clone(),
            }),
            Kind::BigInteger(_) => {
                self.error(&node.at, format!("`{}` is out of range", key.name), None);
                None
            }
            _ => {
                self.wrong_type(key, node, "an integer", example);
                None
            }
        }
    }

    /// A string or an integer, kept as text (sizes: `"64KiB"` or `65536`).
    pub fn string_or_int(&mut self, t: &Table, name: &str, example: &str) -> Option<Sp<String>> {
        let (key, node) = t.get(name)?;
        match &node.kind {
            Kind::String(s) => Some(Sp {
                value: s.clone(),
                at: node.at.clone(),
            }),
            Kind::Integer(i) => Some(Sp {
                value: i.to_string(),
                at: node.at.clone(),
            }),
            Kind::BigInteger(_) => {
                self.error(&node.at, format!("`{}` is out of range", key.name), None);
                None
            }
            _ => {
                self.wrong_type(key, node, "a size string or an integer", example);
                None
            }
        }
    }

    pub fn string_array(
        &mut self,
        t: &Table,
        name: &str,
        example: &str,
    ) -> Option<Sp<Vec<Sp<String>>>> {
        let (key, node) = t.get(name)?;
        let Kind::Array(items) = &node.kind else {
            self.wrong_type(key, node, "an array of strings", example);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match &item.kind {
                Kind::String(s) => out.push(Sp {
                    value: s.clone(),
                    at: item.at.clone(),
                }),
                other => {
                    self.error(
                        &item.at,
                        format!(
                            "`{}` items must be strings, found {}",
                            key.name,
                            other.type_name()
                        ),
                        Some(format!(
                            "quote it: \"{}\"",
                            source_slice(self.source(&item.at), &item.at)
                        )),
                    );
                    ok = false;
                }
            }
        }
        ok.then(|| Sp {
            value: out,
            at: node.at.clone(),
        })
    }

    pub fn table<'t>(
        &mut self,
        t: &'t Table,
        name: &str,
        example: &str,
    ) -> Option<(&'t Key, &'t Table)> {
        let (key, node) = t.get(name)?;
        match &node.kind {
            Kind::Table(inner) => Some((key, inner)),
            _ => {
                self.wrong_type(key, node, "a table", example);
                None
            }
        }
    }

    /// A table of string values (`labels`, `env`, `headers`).
    pub fn string_map(
        &mut self,
        t: &Table,
        name: &str,
        example: &str,
    ) -> Option<Sp<BTreeMap<String, Sp<String>>>> {
        let (key, node) = t.get(name)?;
        let Kind::Table(inner) = &node.kind else {
            self.wrong_type(key, node, "a table of strings", example);
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, v) in &inner.entries {
            match &v.kind {
                Kind::String(s) => {
                    out.insert(
                        k.name.clone(),
                        Sp {
                            value: s.clone(),
                            at: v.at.clone(),
                        },
                    );
                }
                other => self.error(
                    &v.at,
                    format!(
                        "`{}.{}` must be a string, found {}",
                        key.name,
                        k.name,
                        other.type_name()
                    ),
                    Some("quote the value".into()),
                ),
            }
        }
        Some(Sp {
            value: out,
            at: node.at.clone(),
        })
    }
}

fn source_slice(src: &SourceText, at: &At) -> String {
    src.text
        .get(at.span.clone())
        .unwrap_or("")
        .chars()
        .take(40)
        .collect()
}

/// Fields a job file may set.
pub const JOB_FIELDS: &[&str] = &[
    "description",
    "labels",
    "enabled",
    "schedule",
    "timezone",
    "dst",
    "command",
    "shell",
    "http",
    "env",
    "workdir",
    "timeout",
    "kill_grace",
    "max_output",
    "concurrency",
    "max_instances",
    "queue_depth",
    "jitter",
    "jitter_mode",
    "starting_deadline",
    "catch_up",
    "max_catch_up",
    "retries",
    "retry_backoff",
    "retry_max_delay",
    "on_remove",
];

/// Fields that name what a job is; a `_defaults.toml` may not set them.
pub const JOB_ONLY_FIELDS: &[&str] = &["description", "command", "shell", "http"];

pub const DST_FIELDS: &[&str] = &["gap", "fold"];
pub const HTTP_FIELDS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "expect_status",
    "tls_verify",
];

/// `[dst]` as written.
#[derive(Debug, Clone, Default)]
pub struct RawDst {
    pub gap: Option<Sp<String>>,
    pub fold: Option<Sp<String>>,
}

/// `[http]` as written.
#[derive(Debug, Clone)]
pub struct RawHttp {
    pub at: At,
    /// `url` was written, even if with the wrong type (already reported).
    pub url_written: bool,
    pub url: Option<Sp<String>>,
    pub method: Option<Sp<String>>,
    pub headers: Option<Sp<BTreeMap<String, Sp<String>>>>,
    pub body: Option<Sp<String>>,
    pub expect_status: Option<Sp<Vec<Sp<i64>>>>,
    pub tls_verify: Option<Sp<bool>>,
}

/// A job (or a `_defaults.toml`) as written: every field optional, every
/// value located.
#[derive(Debug, Clone, Default)]
pub struct RawJob {
    pub description: Option<Sp<String>>,
    pub labels: Option<Sp<BTreeMap<String, Sp<String>>>>,
    pub enabled: Option<Sp<bool>>,
    pub schedule: Option<Sp<String>>,
    pub timezone: Option<Sp<String>>,
    pub dst: RawDst,
    pub command: Option<Sp<Vec<Sp<String>>>>,
    pub shell: Option<Sp<String>>,
    pub http: Option<RawHttp>,
    pub env: Option<Sp<BTreeMap<String, Sp<String>>>>,
    pub workdir: Option<Sp<String>>,
    pub timeout: Option<Sp<String>>,
    pub kill_grace: Option<Sp<String>>,
    pub max_output: Option<Sp<String>>,
    pub concurrency: Option<Sp<String>>,
    pub max_instances: Option<Sp<i64>>,
    pub queue_depth: Option<Sp<i64>>,
    pub jitter: Option<Sp<String>>,
    pub jitter_mode: Option<Sp<String>>,
    pub starting_deadline: Option<Sp<String>>,
    pub catch_up: Option<Sp<String>>,
    pub max_catch_up: Option<Sp<i64>>,
    pub retries: Option<Sp<i64>>,
    pub retry_backoff: Option<Sp<String>>,
    pub retry_max_delay: Option<Sp<String>>,
    pub on_remove: Option<Sp<String>>,
    /// Executor keys written (`command`, `shell`, `http`), valid or not, so
    /// that a malformed executor is not also reported as a missing one.
    pub executor_keys: Vec<(&'static str, At)>,
    /// `schedule` was written, even if with the wrong type (already
    /// reported): not to be reported as missing too.
    pub schedule_written: bool,
}

impl RawJob {
    /// Reads a job table, reporting unknown fields and wrong TOML types.
    pub fn read(t: &Table, r: &mut Reporter<'_>) -> RawJob {
        r.unknown_keys(t, JOB_FIELDS, "a job");
        let dst = match r.table(t, "dst", "{ gap = \"shift\", fold = \"first\" }") {
            Some((_, d)) => {
                r.unknown_keys(d, DST_FIELDS, "[dst]");
                RawDst {
                    gap: r.string(d, "gap", "\"shift\""),
                    fold: r.string(d, "fold", "\"first\""),
                }
            }
            None => RawDst::default(),
        };
        let http = r
            .table(t, "http", "{ url = \"https://example.com/ping\" }")
            .map(|(key, h)| {
                r.unknown_keys(h, HTTP_FIELDS, "[http]");
                RawHttp {
                    at: key.at.clone(),
                    url_written: h.get("url").is_some(),
                    url: r.string(h, "url", "\"https://example.com/ping\""),
                    method: r.string(h, "method", "\"POST\""),
                    headers: r.string_map(h, "headers", "{ Authorization = \"Bearer ...\" }"),
                    body: r.string(h, "body", "'{\"ok\": true}'"),
                    expect_status: read_status(h, r),
                    tls_verify: r.boolean(h, "tls_verify"),
                }
            });
        let executor_keys = ["command", "shell", "http"]
            .into_iter()
            .filter_map(|k| t.get(k).map(|(key, _)| (k, key.at.clone())))
            .collect();
        RawJob {
            executor_keys,
            schedule_written: t.get("schedule").is_some(),
            description: r.string(t, "description", "\"Nightly invoice sweep\""),
            labels: r.string_map(t, "labels", "{ team = \"billing\" }"),
            enabled: r.boolean(t, "enabled"),
            schedule: r.string(t, "schedule", "\"30 2 * * *\""),
            timezone: r.string(t, "timezone", "\"Europe/Berlin\""),
            dst,
            command: r.string_array(t, "command", "[\"/usr/bin/backup\", \"--full\"]"),
            shell: r.string(t, "shell", "\"echo hello\""),
            http,
            env: r.string_map(t, "env", "{ LOG_LEVEL = \"info\" }"),
            workdir: r.string(t, "workdir", "\"/var/lib/app\""),
            timeout: r.string(t, "timeout", "\"15m\""),
            kill_grace: r.string(t, "kill_grace", "\"30s\""),
            max_output: r.string_or_int(t, "max_output", "\"64KiB\""),
            concurrency: r.string(t, "concurrency", "\"forbid\""),
            max_instances: r.integer(t, "max_instances", "3"),
            queue_depth: r.integer(t, "queue_depth", "2"),
            jitter: r.string(t, "jitter", "\"30s\""),
            jitter_mode: r.string(t, "jitter_mode", "\"stable\""),
            starting_deadline: r.string(t, "starting_deadline", "\"5m\""),
            catch_up: r.string(t, "catch_up", "\"latest\""),
            max_catch_up: r.integer(t, "max_catch_up", "10"),
            retries: r.integer(t, "retries", "3"),
            retry_backoff: r.string(t, "retry_backoff", "\"10s\""),
            retry_max_delay: r.string(t, "retry_max_delay", "\"10m\""),
            on_remove: r.string(t, "on_remove", "\"drain\""),
        }
    }
}

fn read_status(h: &Table, r: &mut Reporter<'_>) -> Option<Sp<Vec<Sp<i64>>>> {
    let (key, node) = h.get("expect_status")?;
    let one = |n: &Node| match n.kind {
        Kind::Integer(i) => Some(Sp {
            value: i,
            at: n.at.clone(),
        }),
        _ => None,
    };
    match &node.kind {
        Kind::Integer(_) => Some(Sp {
            value: vec![one(node)?],
            at: node.at.clone(),
        }),
        Kind::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match one(item) {
                    Some(v) => out.push(v),
                    None => {
                        r.error(
                            &item.at,
                            "`expect_status` items must be integers",
                            Some("for example: expect_status = [200, 204]".into()),
                        );
                        return None;
                    }
                }
            }
            Some(Sp {
                value: out,
                at: node.at.clone(),
            })
        }
        _ => {
            r.wrong_type(
                key,
                node,
                "an integer or an array of integers",
                "[200, 204]",
            );
            None
        }
    }
}
