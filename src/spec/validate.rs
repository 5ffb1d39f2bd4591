//! The second stage of loading: raw values become typed ones, or located
//! errors. Also the warnings for legal-but-suspect jobs.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::diag::did_you_mean;
use super::doc::At;
use super::job::{
    CatchUp, Concurrency, Executor, ExpectStatus, HttpMethod, HttpSpec, Jitter, JitterMode, JobId,
    JobSpec, OnRemove, RetryPolicy,
};
use super::raw::{RawJob, Reporter, Sp};
use super::schedule::{DstPolicy, FoldPolicy, GapPolicy, Schedule, ScheduleExpr, offset_secs};
use super::units::{format_duration, parse_duration, parse_size};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_OUTPUT: u64 = 64 * 1024;
pub const DEFAULT_MAX_INSTANCES: u32 = 2;
pub const DEFAULT_QUEUE_DEPTH: u32 = 1;
pub const DEFAULT_MAX_CATCH_UP: u32 = 10;
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(600);

/// Upper bounds that keep a typo from becoming a resource problem.
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_KILL_GRACE: Duration = Duration::from_secs(3600);
const MAX_OUTPUT_CAP: u64 = 64 * 1024 * 1024;
const MAX_INSTANCES_CAP: i64 = 1000;
const MAX_QUEUE_DEPTH: i64 = 1000;
const MAX_CATCH_UP_CAP: i64 = 1000;
const MAX_RETRIES: i64 = 100;
const MAX_LABELS: usize = 64;
/// Environment entries and HTTP headers per job: generous for real use,
/// small enough that a generated file cannot bloat every execution.
const MAX_ENV: usize = 256;
const MAX_HEADERS: usize = 64;
const MAX_LABEL_VALUE: usize = 256;
const MAX_DESCRIPTION: usize = 4096;

/// Any start works for "can never fire": the calendar search covers 400
/// years, a whole Gregorian cycle.
const NEVER_PROBE: chrono::NaiveDateTime = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
    .unwrap()
    .and_hms_opt(0, 0, 0)
    .unwrap();

/// Whether a raw table is a job or a `_defaults.toml`: defaults are checked
/// field by field, without the checks that need a whole job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Job,
    Defaults,
}

/// What validation needs from outside: the instant to look ahead from, for
/// DST warnings and "can never fire".
pub struct Context {
    pub now: DateTime<Utc>,
    /// The file the job itself lives in: warnings about fields that have no
    /// effect are only given where the field was written in the job's own
    /// file, not when it was inherited.
    pub own_file: usize,
}

fn enum_value<T: Copy>(
    r: &mut Reporter<'_>,
    field: &str,
    v: &Sp<String>,
    options: &[(&str, T)],
) -> Option<T> {
    if let Some((_, t)) = options.iter().find(|(name, _)| *name == v.value) {
        return Some(*t);
    }
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let hint = match did_you_mean(&v.value, names.iter().copied()) {
        Some(s) => format!("did you mean \"{s}\"?"),
        None => format!(
            "one of: {}",
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    r.error(
        &v.at,
        format!("invalid `{field}` value \"{}\"", v.value),
        Some(hint),
    );
    None
}

fn duration(r: &mut Reporter<'_>, field: &str, v: &Sp<String>, max: Duration) -> Option<Duration> {
    match parse_duration(&v.value) {
        Ok(d) if d > max => {
            r.error(
                &v.at,
                format!(
                    "`{field}` = \"{}\" is longer than the limit of {}",
                    v.value,
                    format_duration(max)
                ),
                None,
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            r.error(
                &v.at,
                format!("`{field}`: {e}"),
                Some("durations look like \"90s\", \"5m\", \"1h 30m\"".into()),
            );
            None
        }
    }
}

fn bounded_int(r: &mut Reporter<'_>, field: &str, v: &Sp<i64>, lo: i64, hi: i64) -> Option<u32> {
    if (lo..=hi).contains(&v.value) {
        Some(v.value as u32)
    } else {
        r.error(
            &v.at,
            format!("`{field}` = {} is out of range ({lo} to {hi})", v.value),
            None,
        );
        None
    }
}

/// Points a schedule error at the exact characters inside the TOML string
/// when the string is written plainly (no escapes), else at the value.
fn schedule_error_at(r: &Reporter<'_>, v: &Sp<String>, inner: &std::ops::Range<usize>) -> At {
    let src = r.source(&v.at);
    let raw = src.text.get(v.at.span.clone()).unwrap_or("");
    let quoted =
        raw.len() == v.value.len() + 2 && raw.get(1..raw.len() - 1) == Some(v.value.as_str());
    if quoted {
        let start = v.at.span.start + 1 + inner.start;
        let end = v.at.span.start + 1 + inner.end.max(inner.start);
        At {
            file: v.at.file,
            span: start..end,
        }
    } else {
        v.at.clone()
    }
}

fn check_string_map(
    r: &mut Reporter<'_>,
    field: &str,
    map: &BTreeMap<String, Sp<String>>,
    env: bool,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        if env {
            let valid = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                r.error(
                    &v.at,
                    format!("`{field}.{k}` is not a valid environment variable name"),
                    Some("use letters, digits and `_`, not starting with a digit".into()),
                );
                continue;
            }
            if k.starts_with("DRIFTCRON_") {
                r.error(
                    &v.at,
                    format!("`{field}.{k}`: the DRIFTCRON_ prefix is reserved"),
                    Some(
                        "driftcron sets DRIFTCRON_JOB, DRIFTCRON_RUN_ID and friends itself".into(),
                    ),
                );
                continue;
            }
        } else if k.is_empty()
            || k.len() > 63
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        {
            r.error(
                &v.at,
                format!("label name `{k}` is invalid"),
                Some(
                    "label names are 1-63 characters of letters, digits, `_`, `-`, `.` and `/`"
                        .into(),
                ),
            );
            continue;
        } else if v.value.len() > MAX_LABEL_VALUE {
            r.error(
                &v.at,
                format!("label `{k}` is longer than {MAX_LABEL_VALUE} bytes"),
                None,
            );
            continue;
        }
        if v.value.contains('\0') {
            r.error(&v.at, format!("`{field}.{k}` contains a NUL byte"), None);
            continue;
        }
        out.insert(k.clone(), v.value.clone());
    }
    out
}

fn http_spec(r: &mut Reporter<'_>, raw: &super::raw::RawHttp) -> Option<HttpSpec> {
    let errors = r.error_count();
    let url = match &raw.url {
        Some(u) => {
            let lower = u.value.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("http://")
                .or_else(|| lower.strip_prefix("https://"));
            match rest {
                Some(rest)
                    if !rest.is_empty()
                        && !rest.starts_with('/')
                        && !u.value.chars().any(char::is_whitespace) => {}
                _ => r.error(
                    &u.at,
                    format!(
                        "`http.url` \"{}\" is not an http:// or https:// URL with a host",
                        u.value
                    ),
                    Some("for example: url = \"https://example.com/ping\"".into()),
                ),
            }
            u.value.clone()
        }
        None if raw.url_written => String::new(),
        None => {
            r.error(
                &raw.at,
                "`[http]` has no `url`",
                Some("add: url = \"https://example.com/ping\"".into()),
            );
            String::new()
        }
    };
    let method = match &raw.method {
        Some(m) => {
            let upper = Sp {
                value: m.value.to_ascii_uppercase(),
                at: m.at.clone(),
            };
            enum_value(r, "http.method", &upper, &HttpMethod::ALL).unwrap_or(HttpMethod::Get)
        }
        None => HttpMethod::Get,
    };
    let headers = raw.headers.as_ref().map(|h| {
        if h.value.len() > MAX_HEADERS {
            r.error(
                &h.at,
                format!(
                    "{} `http.headers`; the limit is {MAX_HEADERS}",
                    h.value.len()
                ),
                None,
            );
        }
        for (k, v) in &h.value {
            let bad_name = k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if bad_name {
                r.error(
                    &v.at,
                    format!("`http.headers`: `{k}` is not a valid header name"),
                    None,
                );
            } else if v.value.contains(['\r', '\n', '\0']) {
                r.error(
                    &v.at,
                    format!("`http.headers.{k}` contains a line break or NUL"),
                    None,
                );
            }
        }
        h.value
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    });
    let expect_status = match &raw.expect_status {
        None => ExpectStatus::Success,
        Some(list) => {
            if list.value.is_empty() {
                r.error(
                    &list.at,
                    "`http.expect_status` is empty",
                    Some("omit it to accept any 2xx".into()),
                );
            }
            let mut codes = Vec::new();
            for c in &list.value {
                if (100..=599).contains(&c.value) {
                    codes.push(c.value as u16);
                } else {
                    r.error(
                        &c.at,
                        format!("HTTP status {} is out of range (100 to 599)", c.value),
                        None,
                    );
                }
            }
            ExpectStatus::Codes(codes)
        }
    };
    let spec = HttpSpec {
        url,
        method,
        headers: headers.unwrap_or_default(),
        body: raw.body.as_ref().map(|b| b.value.clone()),
        expect_status,
        tls_verify: raw.tls_verify.as_ref().is_none_or(|b| b.value),
    };
    if let Some(tls) = &raw.tls_verify
        && !tls.value
    {
        r.warning(
            &tls.at,
            "`http.tls_verify = false` accepts any certificate",
            Some("prefer adding the CA to the system trust store".into()),
        );
    }
    (r.error_count() == errors).then_some(spec)
}

/// Converts a raw job into a [`JobSpec`], reporting every problem. Returns
/// `None` if there were errors (the diagnostics say why).
pub fn build(
    id: Option<JobId>,
    raw: &RawJob,
    mode: Mode,
    ctx: &Context,
    r: &mut Reporter<'_>,
) -> Option<JobSpec> {
    let errors_before = r.error_count();
    let own = |at: &At| at.file == ctx.own_file;

    if mode == Mode::Defaults {
        for (name, at) in [
            ("description", raw.description.as_ref().map(|v| &v.at)),
            ("command", raw.command.as_ref().map(|v| &v.at)),
            ("shell", raw.shell.as_ref().map(|v| &v.at)),
            ("http", raw.http.as_ref().map(|v| &v.at)),
        ] {
            if let Some(at) = at {
                r.error(at, format!("`{name}` cannot be set in _defaults.toml"), Some("defaults are for shared settings (timezone, timeout, env, labels...); set this in each job file".into()));
            }
        }
    }

    if let Some(d) = &raw.description
        && d.value.len() > MAX_DESCRIPTION
    {
        r.error(
            &d.at,
            format!("`description` is longer than {MAX_DESCRIPTION} bytes"),
            None,
        );
    }
    let labels = raw.labels.as_ref().map(|l| {
        if l.value.len() > MAX_LABELS {
            r.error(
                &l.at,
                format!("{} labels; the limit is {MAX_LABELS}", l.value.len()),
                None,
            );
        }
        check_string_map(r, "labels", &l.value, false)
    });
    let env = raw.env.as_ref().map(|e| {
        if e.value.len() > MAX_ENV {
            r.error(
                &e.at,
                format!("{} `env` entries; the limit is {MAX_ENV}", e.value.len()),
                None,
            );
        }
        check_string_map(r, "env", &e.value, true)
    });

    // Time zone and DST policy.
    let tz = match &raw.timezone {
        Some(z) => match z.value.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                let hint = match did_you_mean(
                    &z.value.to_ascii_lowercase(),
                    chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()),
                ) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => {
                        "use an IANA name such as \"Europe/Berlin\" or \"America/New_York\"".into()
                    }
                };
                r.error(
                    &z.at,
                    format!("unknown time zone \"{}\"", z.value),
                    Some(hint),
                );
                None
            }
        },
        None => Some(Tz::UTC),
    };
    let gap = raw.dst.gap.as_ref().map_or(Some(GapPolicy::Shift), |g| {
        enum_value(
            r,
            "dst.gap",
            g,
            &[("shift", GapPolicy::Shift), ("skip", GapPolicy::Skip)],
        )
    });
    let fold = raw.dst.fold.as_ref().map_or(Some(FoldPolicy::First), |f| {
        enum_value(
            r,
            "dst.fold",
            f,
            &[
                ("first", FoldPolicy::First),
                ("last", FoldPolicy::Last),
                ("both", FoldPolicy::Both),
            ],
        )
    });

    let expr = match &raw.schedule {
        Some(s) => {
            match ScheduleExpr::parse(&s.value) {
                Ok(ScheduleExpr::Cron(c)) if c.next_naive(NEVER_PROBE).is_none() => {
                    r.error(&s.at, format!("schedule \"{}\" can never fire", s.value), Some("check the day-of-month against the month (February has no 30th or 31st)".into()));
                    None
                }
                Ok(e) => Some(e),
                Err(e) => {
                    let at = schedule_error_at(r, s, &e.span);
                    r.error(
                        &at,
                        format!("invalid schedule \"{}\": {}", s.value, e.message),
                        e.hint,
                    );
                    None
                }
            }
        }
        None => {
            if mode == Mode::Job && !raw.schedule_written {
                // Point at the top of the job file.
                let at = At {
                    file: ctx.own_file,
                    span: 0..0,
                };
                r.error(
                    &at,
                    "job has no `schedule`",
                    Some(
                        "add for example: schedule = \"30 2 * * *\" (cron), or \"@every 10m\""
                            .into(),
                    ),
                );
            }
            None
        }
    };

    // Executor: exactly one.
    let kinds: Vec<(&str, &At)> = raw.executor_keys.iter().map(|(k, at)| (*k, at)).collect();
    let executor = match (mode, kinds.len()) {
        (Mode::Defaults, _) => None,
        (Mode::Job, 0) => {
            let at = At {
                file: ctx.own_file,
                span: 0..0,
            };
            r.error(&at, "job has nothing to run", Some("set exactly one of: command = [\"prog\", \"arg\"], shell = \"...\", or an [http] table".into()));
            None
        }
        (Mode::Job, 1) => {
            if let Some(c) = &raw.command {
                if c.value.is_empty() {
                    r.error(
                        &c.at,
                        "`command` is empty",
                        Some("the first item is the program: [\"/usr/bin/env\", \"true\"]".into()),
                    );
                    None
                } else if c.value[0].value.is_empty() {
                    r.error(&c.value[0].at, "`command` program is an empty string", None);
                    None
                } else if let Some(nul) = c.value.iter().find(|a| a.value.contains('\0')) {
                    r.error(&nul.at, "`command` argument contains a NUL byte", None);
                    None
                } else {
                    Some(Executor::Exec {
                        argv: c.value.iter().map(|a| a.value.as_str()).collect(),
                    })
                }
            } else if let Some(s) = &raw.shell {
                if s.value.trim().is_empty() {
                    r.error(&s.at, "`shell` is empty", None);
                    None
                } else if s.value.contains('\0') {
                    r.error(&s.at, "`shell` contains a NUL byte", None);
                    None
                } else {
                    Some(Executor::Shell {
                        script: s.value.as_str().into(),
                    })
                }
            } else {
                raw.http
                    .as_ref()
                    .and_then(|h| http_spec(r, h))
                    .map(|h| Executor::Http(Box::new(h)))
            }
        }
        (Mode::Job, _) => {
            let names: Vec<&str> = kinds.iter().map(|(n, _)| *n).collect();
            for (name, at) in &kinds[1..] {
                r.error(at, format!("`{name}` conflicts with `{}`: a job runs exactly one of command, shell or [http]", kinds[0].0), Some(format!("keep one of: {}", names.join(", "))));
            }
            None
        }
    };
    if mode == Mode::Defaults
        && let Some(h) = &raw.http
    {
        // Still check the table's own values, once.
        http_spec(r, h);
    }

    let workdir = raw.workdir.as_ref().and_then(|w| {
        if w.value.starts_with('/') && !w.value.contains('\0') {
            Some(w.value.as_str().into())
        } else {
            r.error(
                &w.at,
                format!("`workdir` \"{}\" is not an absolute path", w.value),
                Some("write it from the root, for example \"/var/lib/app\"".into()),
            );
            None
        }
    });

    let timeout = match &raw.timeout {
        Some(t) if matches!(t.value.as_str(), "none" | "off" | "never") => Some(None),
        Some(t) => match duration(r, "timeout", t, MAX_TIMEOUT) {
            Some(d) if d.is_zero() => {
                r.error(
                    &t.at,
                    "`timeout` is zero",
                    Some("use \"none\" for no timeout".into()),
                );
                None
            }
            d => d.map(Some),
        },
        None => Some(Some(DEFAULT_TIMEOUT)),
    };
    let kill_grace = raw
        .kill_grace
        .as_ref()
        .map_or(Some(DEFAULT_KILL_GRACE), |k| {
            duration(r, "kill_grace", k, MAX_KILL_GRACE)
        });
    let max_output =
        raw.max_output
            .as_ref()
            .map_or(Some(DEFAULT_MAX_OUTPUT), |m| match parse_size(&m.value) {
                Ok(n) if n <= MAX_OUTPUT_CAP => Some(n),
                Ok(_) => {
                    r.error(
                        &m.at,
                        format!("`max_output` = {} is above the limit of 64MiB", m.value),
                        Some(
                            "captured output is kept in memory; write large output to a file"
                                .into(),
                        ),
                    );
                    None
                }
                Err(e) => {
                    r.error(
                        &m.at,
                        format!("`max_output`: {e}"),
                        Some("for example: max_output = \"64KiB\"".into()),
                    );
                    None
                }
            });

    // Concurrency, with its per-policy settings.
    #[derive(Clone, Copy)]
    enum C {
        Forbid,
        Allow,
        Replace,
        Queue,
    }
    let policy = raw.concurrency.as_ref().map_or(Some(C::Forbid), |c| {
        enum_value(
            r,
            "concurrency",
            c,
            &[
                ("forbid", C::Forbid),
                ("allow", C::Allow),
                ("replace", C::Replace),
                ("queue", C::Queue),
            ],
        )
    });
    let max_instances = raw
        .max_instances
        .as_ref()
        .map(|m| bounded_int(r, "max_instances", m, 1, MAX_INSTANCES_CAP));
    let queue_depth = raw
        .queue_depth
        .as_ref()
        .map(|q| bounded_int(r, "queue_depth", q, 1, MAX_QUEUE_DEPTH));
    let concurrency = policy.and_then(|p| {
        Some(match p {
            C::Forbid => Concurrency::Forbid,
            C::Replace => Concurrency::Replace,
            C::Allow => Concurrency::Allow {
                max_instances: NonZeroU32::new(
                    max_instances.unwrap_or(Some(DEFAULT_MAX_INSTANCES))?,
                )?,
            },
            C::Queue => Concurrency::Queue {
                depth: NonZeroU32::new(queue_depth.unwrap_or(Some(DEFAULT_QUEUE_DEPTH))?)?,
            },
        })
    });
    if mode == Mode::Job
        && let Some(c) = concurrency
    {
        if let Some(m) = &raw.max_instances
            && !matches!(c, Concurrency::Allow { .. })
            && own(&m.at)
        {
            r.warning(
                &m.at,
                format!(
                    "`max_instances` has no effect with concurrency = \"{}\"",
                    c.name()
                ),
                Some("it applies to concurrency = \"allow\"".into()),
            );
        }
        if let Some(q) = &raw.queue_depth
            && !matches!(c, Concurrency::Queue { .. })
            && own(&q.at)
        {
            r.warning(
                &q.at,
                format!(
                    "`queue_depth` has no effect with concurrency = \"{}\"",
                    c.name()
                ),
                Some("it applies to concurrency = \"queue\"".into()),
            );
        }
        if matches!(c, Concurrency::Allow { .. }) && timeout == Some(None) {
            let at = raw.concurrency.as_ref().map_or(
                At {
                    file: ctx.own_file,
                    span: 0..0,
                },
                |c| c.at.clone(),
            );
            r.warning(&at, "concurrency = \"allow\" with no timeout: overlapping runs can pile up until max_instances is reached and stay there", Some("set a timeout".into()));
        }
    }

    let jitter_max = raw.jitter.as_ref().map_or(Some(Duration::ZERO), |j| {
        duration(r, "jitter", j, Duration::from_secs(24 * 3600))
    });
    let jitter_mode = raw
        .jitter_mode
        .as_ref()
        .map_or(Some(JitterMode::Stable), |m| {
            enum_value(
                r,
                "jitter_mode",
                m,
                &[
                    ("stable", JitterMode::Stable),
                    ("random", JitterMode::Random),
                ],
            )
        });
    let starting_deadline = match &raw.starting_deadline {
        Some(s) => duration(
            r,
            "starting_deadline",
            s,
            Duration::from_secs(366 * 24 * 3600),
        )
        .map(Some),
        None => Some(None),
    };
    let max_catch_up = raw
        .max_catch_up
        .as_ref()
        .map(|m| bounded_int(r, "max_catch_up", m, 1, MAX_CATCH_UP_CAP));
    let catch_up = raw.catch_up.as_ref().map_or(Some("none"), |c| {
        enum_value(
            r,
            "catch_up",
            c,
            &[("none", "none"), ("latest", "latest"), ("all", "all")],
        )
    });
    let catch_up = catch_up.and_then(|c| {
        Some(match c {
            "latest" => CatchUp::Latest,
            "all" => CatchUp::All {
                max: NonZeroU32::new(max_catch_up.unwrap_or(Some(DEFAULT_MAX_CATCH_UP))?)?,
            },
            _ => CatchUp::None,
        })
    });
    if mode == Mode::Job
        && let (Some(m), Some(c)) = (&raw.max_catch_up, catch_up)
        && !matches!(c, CatchUp::All { .. })
        && own(&m.at)
    {
        r.warning(
            &m.at,
            format!(
                "`max_catch_up` has no effect with catch_up = \"{}\"",
                c.name()
            ),
            Some("it applies to catch_up = \"all\"".into()),
        );
    }

    let retries = raw
        .retries
        .as_ref()
        .map_or(Some(0), |n| bounded_int(r, "retries", n, 0, MAX_RETRIES));
    let backoff = raw
        .retry_backoff
        .as_ref()
        .map_or(Some(DEFAULT_RETRY_BACKOFF), |b| {
            duration(r, "retry_backoff", b, Duration::from_secs(24 * 3600))
        });
    let max_delay = raw
        .retry_max_delay
        .as_ref()
        .map_or(Some(DEFAULT_RETRY_MAX_DELAY), |b| {
            duration(r, "retry_max_delay", b, Duration::from_secs(7 * 24 * 3600))
        });
    // The cap must admit the first delay, whichever of the two was written
    // (a lone `retry_backoff = "20m"` is above the default cap).
    if let (Some(b), Some(m)) = (backoff, max_delay)
        && m < b
        && let Some(at) = raw
            .retry_max_delay
            .as_ref()
            .or(raw.retry_backoff.as_ref())
            .map(|v| v.at.clone())
    {
        r.error(
            &at,
            format!(
                "`retry_max_delay` ({}) is shorter than `retry_backoff` ({})",
                format_duration(m),
                format_duration(b)
            ),
            Some(format!(
                "the cap must be at least the first delay (defaults: retry_backoff = \"{}\", retry_max_delay = \"{}\")",
                format_duration(DEFAULT_RETRY_BACKOFF),
                format_duration(DEFAULT_RETRY_MAX_DELAY)
            )),
        );
    }
    let on_remove = raw.on_remove.as_ref().map_or(Some(OnRemove::Drain), |o| {
        enum_value(
            r,
            "on_remove",
            o,
            &[("drain", OnRemove::Drain), ("cancel", OnRemove::Cancel)],
        )
    });

    if r.error_count() > errors_before || mode == Mode::Defaults {
        return None;
    }
    let schedule = Schedule::new(
        expr?,
        tz?,
        DstPolicy {
            gap: gap?,
            fold: fold?,
        },
    );
    let spec = JobSpec {
        id: id?,
        description: raw.description.as_ref().map(|d| d.value.as_str().into()),
        labels: labels.unwrap_or_default().into(),
        enabled: raw.enabled.as_ref().is_none_or(|e| e.value),
        schedule_text: raw.schedule.as_ref()?.value.trim().into(),
        schedule,
        executor: executor?,
        env: env.unwrap_or_default().into(),
        workdir,
        timeout: timeout?,
        kill_grace: kill_grace?,
        max_output: max_output?,
        concurrency: concurrency?,
        jitter: Jitter {
            max: jitter_max?,
            mode: jitter_mode?,
        },
        starting_deadline: starting_deadline?,
        catch_up: catch_up?,
        retry: RetryPolicy {
            retries: retries?,
            backoff: backoff?,
            max_delay: max_delay?,
        },
        on_remove: on_remove?,
    };
    let explicit = (raw.dst.gap.is_some(), raw.dst.fold.is_some());
    schedule_checks(&spec, raw.schedule.as_ref()?, explicit, ctx, r);
    (r.error_count() == errors_before).then_some(spec)
}

/// Checks that need the whole schedule: never fires (error), sub-second
/// `@every`, jitter as long as the period, fixed times in DST gaps or folds
/// in the coming year (warnings).
fn schedule_checks(
    spec: &JobSpec,
    text: &Sp<String>,
    explicit: (bool, bool),
    ctx: &Context,
    r: &mut Reporter<'_>,
) {
    let s = &spec.schedule;
    let Some(first) = s.next_after(ctx.now) else {
        r.error(
            &text.at,
            format!("schedule \"{}\" can never fire", text.value),
            Some("check the day-of-month against the month (February has no 30th or 31st)".into()),
        );
        return;
    };
    match s.expr {
        ScheduleExpr::Every(every) => {
            if every.period() < Duration::from_secs(1) {
                r.warning(&text.at, format!("`{}` fires more than once a second", text.value), Some("sub-second schedules are rarely what a job needs; consider a long-running service".into()));
            }
            if !spec.jitter.max.is_zero() && spec.jitter.max >= every.period() {
                r.warning(
                    &text.at,
                    format!(
                        "jitter ({}) is not shorter than the period ({})",
                        format_duration(spec.jitter.max),
                        format_duration(every.period())
                    ),
                    Some("runs may bunch up or skip; keep jitter well below the period".into()),
                );
            }
        }
        ScheduleExpr::Cron(cron) => {
            if cron.is_fixed_time() && s.tz != Tz::UTC {
                dst_warnings(s, first, text, explicit, ctx, r);
            }
        }
    }
}

/// Warns once per kind (gap, fold) if a slot of a fixed-time job falls in
/// a DST change within a year of `now`.
fn dst_warnings(
    s: &Schedule,
    _first: DateTime<Utc>,
    text: &Sp<String>,
    explicit: (bool, bool),
    ctx: &Context,
    r: &mut Reporter<'_>,
) {
    let ScheduleExpr::Cron(cron) = s.expr else {
        return;
    };
    let tz = s.tz;
    let horizon = ctx.now + TimeDelta::days(366);
    let mut t = ctx.now;
    let mut off = offset_secs(tz, t);
    // An explicit [dst] setting is the user's acknowledgement: no warning.
    let (mut gap_done, mut fold_done) = explicit;
    while t < horizon && !(gap_done && fold_done) {
        let next = t + TimeDelta::days(1);
        let next_off = offset_secs(tz, next);
        if next_off != off {
            // Bisect to the change.
            let (mut a, mut b) = (t.timestamp(), next.timestamp());
            while b - a > 1 {
                let mid = a + (b - a) / 2;
                let m = DateTime::from_timestamp(mid, 0).unwrap_or(t);
                if offset_secs(tz, m) == off {
                    a = mid
                } else {
                    b = mid
                }
            }
            let change = DateTime::from_timestamp(b, 0).unwrap_or(next);
            // Wall-clock window affected: [change + min(off), change + max(off)).
            let lo = change.naive_utc() + TimeDelta::seconds(i64::from(off.min(next_off)));
            let hi = change.naive_utc() + TimeDelta::seconds(i64::from(off.max(next_off)));
            let hit = cron.next_naive(lo).is_some_and(|n| n < hi);
            let date = lo.date();
            let window = format!("{}–{}", lo.format("%H:%M"), hi.format("%H:%M"));
            if hit && next_off > off && !gap_done {
                gap_done = true;
                let what = match s.dst.gap {
                    GapPolicy::Shift => "it runs once at the end of the gap (dst.gap = \"shift\")",
                    GapPolicy::Skip => "it does not run that day (dst.gap = \"skip\")",
                };
                r.warning(&text.at, format!("schedule \"{}\" falls in the DST gap on {date} in {} ({window} does not exist); {what}", text.value, tz.name()), Some("move the job out of the gap, or set [dst] gap explicitly to silence this".into()));
            } else if hit && next_off < off && !fold_done {
                fold_done = true;
                let what = match s.dst.fold {
                    FoldPolicy::First => {
                        "it runs at the first occurrence only (dst.fold = \"first\")"
                    }
                    FoldPolicy::Last => {
                        "it runs at the second occurrence only (dst.fold = \"last\")"
                    }
                    FoldPolicy::Both => "it runs at both occurrences (dst.fold = \"both\")",
                };
                r.warning(&text.at, format!("schedule \"{}\" falls in the repeated hour on {date} in {} ({window} happens twice); {what}", text.value, tz.name()), Some("move the job out of the fold, or set [dst] fold explicitly to silence this".into()));
            }
            off = next_off;
        }
        t = next;
    }
}
