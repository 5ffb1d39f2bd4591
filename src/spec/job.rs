//! Validated job specifications: the second stage of loading. Every value
//! here has been checked, so a `JobSpec` cannot hold a wrong state (an
//! `allow` job without a limit, a queue without a depth, a job with two
//! executors).

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::schedule::Schedule;

/// A job's id: its file's path under the schedules root without `.toml`,
/// lowercase `[a-z0-9._-]` segments joined by `/`. Shared (`Arc<str>`):
/// the scheduler keys timers, queues and executions by it, and a clone must
/// not allocate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(Arc<str>);

/// Longest job id accepted.
pub const MAX_JOB_ID_LEN: usize = 200;

impl JobId {
    /// Checks an id.
    ///
    /// # Errors
    /// A message saying which segment is wrong and why.
    pub fn parse(id: &str) -> Result<JobId, String> {
        if id.is_empty() {
            return Err("empty job id".into());
        }
        if id.len() > MAX_JOB_ID_LEN {
            return Err(format!(
                "job id is {} bytes long; the limit is {MAX_JOB_ID_LEN}",
                id.len()
            ));
        }
        for seg in id.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err(format!("job id `{id}` has an empty or relative segment"));
            }
            if seg.starts_with('.') {
                return Err(format!(
                    "segment `{seg}` of job id `{id}` starts with a dot"
                ));
            }
            if let Some(c) = seg.chars().find(|c| {
                !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
            }) {
                return Err(format!(
                    "job id `{id}` contains {c:?}; ids use lowercase letters, digits, `.`, `_` and `-`"
                ));
            }
        }
        Ok(JobId(Arc::from(id)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A small immutable string map sorted by key (`labels`, `env`, HTTP
/// headers). A boxed slice instead of a `BTreeMap`: a job's three labels
/// cost a hundred bytes, not a 500-byte tree node, which matters at a
/// hundred thousand jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StrMap(Box<[(Box<str>, Box<str>)]>);

impl StrMap {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| &**k)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<BTreeMap<String, String>> for StrMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        StrMap(
            map.into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for StrMap {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        let map: BTreeMap<String, String> = iter
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.into()
    }
}

impl FromIterator<(String, String)> for StrMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        iter.into_iter().collect::<BTreeMap<_, _>>().into()
    }
}

impl<'a> IntoIterator for &'a StrMap {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Box<str>, Box<str>)>,
        fn(&'a (Box<str>, Box<str>)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        fn pair(e: &(Box<str>, Box<str>)) -> (&str, &str) {
            (&e.0, &e.1)
        }
        self.0.iter().map(pair)
    }
}

/// What a run executes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Executor {
    /// A program and its arguments, executed directly (no shell).
    Exec { argv: Vec<String> },
    /// A script run by `/bin/sh -c`.
    Shell { script: String },
    /// An HTTP request.
    Http(HttpSpec),
}

impl Executor {
    pub fn kind(&self) -> &'static str {
        match self {
            Executor::Exec { .. } => "command",
            Executor::Shell { .. } => "shell",
            Executor::Http(_) => "http",
        }
    }
}

/// HTTP methods a job may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl HttpMethod {
    pub const ALL: [(&'static str, HttpMethod); 7] = [
        ("GET", HttpMethod::Get),
        ("HEAD", HttpMethod::Head),
        ("POST", HttpMethod::Post),
        ("PUT", HttpMethod::Put),
        ("PATCH", HttpMethod::Patch),
        ("DELETE", HttpMethod::Delete),
        ("OPTIONS", HttpMethod::Options),
    ];

    pub fn as_str(self) -> &'static str {
        HttpMethod::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("GET", |(s, _)| s)
    }
}

/// Which response statuses count as success.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExpectStatus {
    /// Any 2xx.
    Success,
    /// Exactly these codes.
    Codes(Vec<u16>),
}

/// An HTTP request job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpSpec {
    pub url: String,
    pub method: HttpMethod,
    pub headers: StrMap,
    pub body: Option<String>,
    pub expect_status: ExpectStatus,
    pub tls_verify: bool,
}

/// What happens when a run is due while earlier runs of the job are still
/// going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Concurrency {
    /// Skip the new run (counted).
    Forbid,
    /// Run alongside, up to a limit.
    Allow { max_instances: NonZeroU32 },
    /// Cancel the running one, then start.
    Replace,
    /// Wait in a bounded per-job queue.
    Queue { depth: NonZeroU32 },
}

impl Concurrency {
    pub fn name(&self) -> &'static str {
        match self {
            Concurrency::Forbid => "forbid",
            Concurrency::Allow { .. } => "allow",
            Concurrency::Replace => "replace",
            Concurrency::Queue { .. } => "queue",
        }
    }
}

/// How the jitter delay is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JitterMode {
    /// Derived from the job id: the same delay every time and across
    /// restarts.
    Stable,
    /// Drawn anew for every run.
    Random,
}

/// A random delay added to each fire, to spread load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Jitter {
    pub max: Duration,
    pub mode: JitterMode,
}

impl Jitter {
    pub const NONE: Jitter = Jitter {
        max: Duration::ZERO,
        mode: JitterMode::Stable,
    };

    /// The stable delay for a job: a hash of its id scaled into
    /// `[0, max)`. FNV-1a, because it must not change between builds or
    /// platforms (std's hasher is randomly keyed).
    pub fn stable_delay(&self, id: &JobId) -> Duration {
        let nanos = self.max.as_nanos();
        if nanos == 0 {
            return Duration::ZERO;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.as_str().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let d = (u128::from(h) * nanos) >> 64;
        // Whole milliseconds: finer is noise, and it reads well in previews.
        Duration::from_millis((d / 1_000_000) as u64)
    }
}

/// What to do with slots that passed while a run could not start (the
/// daemon was down, the clock jumped, the machine slept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CatchUp {
    /// Skip them (counted as missed).
    None,
    /// Run once for the most recent.
    Latest,
    /// Run each, oldest first, at most `max` of them.
    All { max: NonZeroU32 },
}

impl CatchUp {
    pub fn name(&self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Latest => "latest",
            CatchUp::All { .. } => "all",
        }
    }
}

/// Retries of a failed run: exponential from `backoff`, capped at
/// `max_delay`, and never past the job's next slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    pub retries: u32,
    pub backoff: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// What happens to a running execution when its job leaves git.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnRemove {
    /// Let it finish (bounded by its timeout).
    Drain,
    /// Stop it: SIGTERM, then SIGKILL after the kill grace.
    Cancel,
}

/// A fully validated job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobSpec {
    pub id: JobId,
    pub description: Option<String>,
    pub labels: StrMap,
    /// `false` = suspended in git.
    pub enabled: bool,
    /// The expression as written, for display and diffs.
    pub schedule_text: String,
    pub schedule: Schedule,
    pub executor: Executor,
    pub env: StrMap,
    pub workdir: Option<String>,
    /// `None` = no timeout (`timeout = "none"`).
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub max_output: u64,
    pub concurrency: Concurrency,
    pub jitter: Jitter,
    pub starting_deadline: Option<Duration>,
    pub catch_up: CatchUp,
    pub retry: RetryPolicy,
    pub on_remove: OnRemove,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids() {
        assert!(JobId::parse("billing/invoice-sweep").is_ok());
        assert!(JobId::parse("a/b.c_d-1").is_ok());
        assert!(JobId::parse("Billing/x").unwrap_err().contains("'B'"));
        assert!(JobId::parse("a//b").is_err());
        assert!(JobId::parse("a/../b").is_err());
        assert!(JobId::parse("a b").is_err());
        assert!(JobId::parse(&"a".repeat(300)).is_err());
    }

    #[test]
    fn stable_jitter_is_stable_and_bounded() {
        let j = Jitter {
            max: Duration::from_secs(60),
            mode: JitterMode::Stable,
        };
        let a = JobId::parse("billing/sweep").unwrap();
        let b = JobId::parse("billing/sweep2").unwrap();
        assert_eq!(j.stable_delay(&a), j.stable_delay(&a));
        assert_ne!(j.stable_delay(&a), j.stable_delay(&b));
        assert!(j.stable_delay(&a) < Duration::from_secs(60));
        // Pinned: changing the hash would move every job's fire time.
        assert_eq!(j.stable_delay(&a).as_secs(), STABLE_SWEEP_SECS);
    }
    // FNV-1a 64 of "billing/sweep" scaled to 60s, computed independently in Python.
    const STABLE_SWEEP_SECS: u64 = 53;

    #[test]
    fn retry_backoff_is_capped() {
        let r = RetryPolicy {
            retries: 10,
            backoff: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
        };
        assert_eq!(r.delay(1), Duration::from_secs(10));
        assert_eq!(r.delay(2), Duration::from_secs(20));
        assert_eq!(r.delay(3), Duration::from_secs(40));
        assert_eq!(r.delay(4), Duration::from_secs(60));
        assert_eq!(r.delay(40), Duration::from_secs(60));
    }
}
