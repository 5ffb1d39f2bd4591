//! Validated job specifications: the second stage of loading. Every value
//! here has been checked, so a `JobSpec` cannot hold a wrong state (an
//! `allow` job without a limit, a queue without a depth, a job with two
//! executors).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
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
/// headers). All keys and values sit back to back in one text buffer, with
/// one array of end offsets: a job's three labels cost two small heap
/// blocks instead of a pair slice plus a separate block per key and value
/// (each rounded up to 32 bytes by glibc), and an empty map allocates
/// nothing. That matters at a hundred thousand jobs.
///
/// Entries are unique and sorted, so two equal maps have equal buffers and
/// the derived `PartialEq` is map equality.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StrMap {
    /// Key 0, value 0, key 1, value 1, ... with no separators.
    text: Box<str>,
    /// Where each key and value ends in `text`, in the same order; each
    /// starts where the one before ends. `u32`, not `usize`, halves the
    /// array: a map comes from job files capped at a megabyte.
    ends: Box<[u32]>,
}

impl StrMap {
    /// Builds the map from entries already sorted by unique key.
    ///
    /// # Panics
    /// If keys and values total 4 GiB or more. Loaded maps come from files
    /// of at most [`super::load::MAX_FILE_SIZE`] bytes, so input cannot get
    /// here.
    fn from_sorted<'a, I>(entries: I) -> StrMap
    where
        I: Iterator<Item = (&'a str, &'a str)> + Clone,
    {
        let (mut count, mut bytes) = (0, 0);
        for (k, v) in entries.clone() {
            count += 1;
            bytes += k.len() + v.len();
        }
        let mut text = String::with_capacity(bytes);
        let mut ends = Vec::with_capacity(2 * count);
        for (k, v) in entries {
            for s in [k, v] {
                text.push_str(s);
                ends.push(u32::try_from(text.len()).expect("StrMap text under 4 GiB"));
            }
        }
        StrMap {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// The `i`th string: key `n` is part `2n`, its value part `2n + 1`.
    /// Out of range gives `""`; callers stay in range.
    fn part(&self, i: usize) -> &str {
        let start = i
            .checked_sub(1)
            .and_then(|p| self.ends.get(p))
            .map_or(0, |&e| e as usize);
        let end = self.ends.get(i).map_or(start, |&e| e as usize);
        self.text.get(start..end).unwrap_or("")
    }

    fn entry(&self, i: usize) -> (&str, &str) {
        (self.part(2 * i), self.part(2 * i + 1))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.part(2 * mid).cmp(key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(self.part(2 * mid + 1)),
            }
        }
        None
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            map: self,
            front: 0,
            back: self.len(),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Prints as the pair slice it used to be: `StrMap([("k", "v")])`.
impl fmt::Debug for StrMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Entries<'a>(&'a StrMap);
        impl fmt::Debug for Entries<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0).finish()
            }
        }
        f.debug_tuple("StrMap").field(&Entries(self)).finish()
    }
}

/// The same feed as the pair slice this type used to be (the count, then
/// each key and value as a `str`), so `plan::spec_digest` gives the same
/// digest as earlier builds for the same spec. A `str` feeds a terminator
/// after its bytes, which keeps `{"ab": "c"}` apart from `{"a": "bc"}`.
impl Hash for StrMap {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for (k, v) in self {
            k.hash(state);
            v.hash(state);
        }
    }
}

impl From<BTreeMap<String, String>> for StrMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        StrMap::from_sorted(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// A later entry for a key replaces an earlier one.
impl<'a> FromIterator<(&'a str, &'a str)> for StrMap {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        let map: BTreeMap<&str, &str> = iter.into_iter().collect();
        StrMap::from_sorted(map.iter().map(|(k, v)| (*k, *v)))
    }
}

/// A later entry for a key replaces an earlier one.
impl FromIterator<(String, String)> for StrMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        iter.into_iter().collect::<BTreeMap<_, _>>().into()
    }
}

/// The entries of a [`StrMap`] in key order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    map: &'a StrMap,
    /// Next entry from the front; `back` is one past the next from the back.
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        (self.front < self.back).then(|| {
            self.front += 1;
            self.map.entry(self.front - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        (self.front < self.back).then(|| {
            self.back -= 1;
            self.map.entry(self.back)
        })
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl std::iter::FusedIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a StrMap {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// What a run executes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Executor {
    /// A program and its arguments, executed directly (no shell).
    Exec { argv: Vec<String> },
    /// A script run by `/bin/sh -c`.
    Shell { script: String },
    /// An HTTP request. Boxed: most jobs run commands, and an inline
    /// `HttpSpec` would triple the size of every job's executor.
    Http(Box<HttpSpec>),
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

/// A fully validated job. Held as `Arc<JobSpec>` once per job, a hundred
/// thousand at a time, so its fixed strings are `Box<str>` (no capacity
/// word).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobSpec {
    pub id: JobId,
    pub description: Option<Box<str>>,
    pub labels: StrMap,
    /// `false` = suspended in git.
    pub enabled: bool,
    /// The expression as written, for display and diffs.
    pub schedule_text: Box<str>,
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

    fn map(pairs: &[(&str, &str)]) -> StrMap {
        pairs.iter().copied().collect()
    }

    #[test]
    fn str_map_lookups_and_order() {
        let m = map(&[
            ("tier", "1"),
            ("team", "billing"),
            ("", "empty key"),
            ("x", ""),
        ]);
        assert_eq!(m.len(), 4);
        assert_eq!(m.get("team"), Some("billing"));
        assert_eq!(m.get("tier"), Some("1"));
        assert_eq!(m.get(""), Some("empty key"));
        assert_eq!(m.get("x"), Some(""));
        assert_eq!(m.get("te"), None);
        assert_eq!(m.get("zzz"), None);
        assert!(m.contains_key("x") && !m.contains_key("y"));
        let sorted = [
            ("", "empty key"),
            ("team", "billing"),
            ("tier", "1"),
            ("x", ""),
        ];
        assert!(m.iter().eq(sorted));
        assert!(m.iter().rev().eq(sorted.into_iter().rev()));
        assert!(m.keys().eq(sorted.map(|(k, _)| k)));
        assert_eq!(m.iter().len(), 4);
        // Later entries win, as with a BTreeMap.
        assert_eq!(map(&[("a", "1"), ("a", "2")]), map(&[("a", "2")]));
        let owned: StrMap = [("b".to_string(), "2".to_string())].into_iter().collect();
        assert_eq!(owned, map(&[("b", "2")]));
    }

    #[test]
    fn str_map_empty() {
        let m = StrMap::default();
        assert!(m.is_empty() && m.iter().next().is_none());
        assert_eq!(m.len(), 0);
        assert_eq!(m.get(""), None);
        assert_eq!(m, map(&[]));
        assert_eq!(format!("{m:?}"), "StrMap([])");
    }

    #[test]
    fn str_map_equality_sees_the_split() {
        // Same text back to back, different entries.
        assert_ne!(map(&[("ab", "c")]), map(&[("a", "bc")]));
        assert_ne!(
            map(&[("a", "b"), ("c", "d")]),
            map(&[("a", "bc"), ("", "d")])
        );
    }

    /// The feed (and so `spec_digest`) must match the pair slice `StrMap`
    /// used to be, so digests agree with older builds.
    #[test]
    fn str_map_hash_and_debug_match_the_old_layout() {
        use std::hash::DefaultHasher;
        let pairs = [("team", "billing"), ("tier", "1")];
        let old: Box<[(Box<str>, Box<str>)]> =
            pairs.iter().map(|&(k, v)| (k.into(), v.into())).collect();
        let digest = |v: &dyn Fn(&mut DefaultHasher)| {
            let mut h = DefaultHasher::new();
            v(&mut h);
            h.finish()
        };
        let m = map(&pairs);
        assert_eq!(digest(&|h| m.hash(h)), digest(&|h| old.hash(h)));
        let old = old_layout::StrMap(old);
        assert_eq!(format!("{m:?}"), format!("{old:?}"));
        assert_eq!(format!("{m:#?}"), format!("{old:#?}"));
    }

    mod old_layout {
        #[derive(Debug)]
        pub struct StrMap(#[allow(dead_code)] pub Box<[(Box<str>, Box<str>)]>);
    }

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
