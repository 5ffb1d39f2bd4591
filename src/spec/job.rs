//! Validated job specifications: the second stage of loading. Every value
//! here has been checked, so a `JobSpec` cannot hold a wrong state (an
//! `allow` job without a limit, a queue without a depth, a job with two
//! executors).

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

/// As its string; read back through [`JobId::parse`], so a snapshot from
/// elsewhere cannot smuggle in an id the loader would refuse.
impl serde::Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        JobId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl PartialEq<str> for JobId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for JobId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A small immutable string map sorted by key (`labels`, `env`, HTTP
/// headers). Every entry sits in one byte buffer as a length-prefixed key
/// then a length-prefixed value (LEB128 lengths: see `push_len`). A
/// hundred thousand jobs each hold two of these in their `JobSpec`, so the
/// layout is picked for memory: a boxed slice is 16 bytes inline (a text
/// buffer plus an offset array was 32), a non-empty map is one heap block
/// (glibc puts a header on each block and rounds it up to 32 bytes, so a
/// second block costs more than its contents), and an empty map allocates
/// nothing. Lookups scan: a job has a handful of entries.
///
/// Entries are unique and sorted, the lengths keep each key apart from its
/// value, and a length has only one encoding, so two equal maps have equal
/// buffers and the derived `PartialEq` is map equality.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StrMap(Box<[u8]>);

/// Appends a length prefix: LEB128, seven bits a byte from the lowest, the
/// high bit set on every byte but the last. Labels, env names and values
/// are mostly under 128 bytes, so a prefix is one byte where a fixed `u32`
/// was four, and those bytes add up over every entry of two maps in each of
/// a hundred thousand jobs. Never more bytes than needed, so a length has
/// one encoding (buffer equality is map equality).
fn push_len(buf: &mut Vec<u8>, mut len: usize) {
    while len >= 0x80 {
        buf.push((len & 0x7f) as u8 | 0x80);
        len >>= 7;
    }
    buf.push(len as u8);
}

/// Bytes [`push_len`] writes for `len`.
fn len_bytes(len: usize) -> usize {
    let bits = usize::BITS - (len | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// Most bytes a prefix can take: enough for a `u64`.
const MAX_LEN_BYTES: usize = 10;

/// Splits a length prefix off `bytes`: the length and the bytes after it.
/// `None` if the prefix is cut short, runs past [`MAX_LEN_BYTES`] or does
/// not fit a `usize`.
fn take_len(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut len: u64 = 0;
    for (i, &b) in bytes.iter().take(MAX_LEN_BYTES).enumerate() {
        // `7 * i` is at most 63: no shift overflows.
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((usize::try_from(len).ok()?, bytes.get(i + 1..)?));
        }
    }
    None
}

/// Splits the first length-prefixed string off `bytes`: the string and the
/// bytes after it. `None` at the end of the buffer. The buffer was built
/// from `&str`s by [`StrMap::from_sorted`], so a prefix is never cut short
/// and the bytes are always UTF-8; were that ever not so, reads end early
/// or give `""` rather than panic.
fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = take_len(bytes)?;
    let (s, rest) = rest.split_at_checked(len)?;
    Some((std::str::from_utf8(s).unwrap_or(""), rest))
}

/// Splits the first entry off `bytes`, as [`take_str`] does a string.
fn take_entry(bytes: &[u8]) -> Option<((&str, &str), &[u8])> {
    let (k, rest) = take_str(bytes)?;
    let (v, rest) = take_str(rest)?;
    Some(((k, v), rest))
}

impl StrMap {
    /// Builds the map from entries already sorted by unique key.
    fn from_sorted<'a, I>(entries: I) -> StrMap
    where
        I: Iterator<Item = (&'a str, &'a str)> + Clone,
    {
        // Sized exactly, so `into_boxed_slice` does not reallocate.
        let bytes = entries
            .clone()
            .map(|(k, v)| len_bytes(k.len()) + k.len() + len_bytes(v.len()) + v.len())
            .sum();
        let mut buf = Vec::with_capacity(bytes);
        for (k, v) in entries {
            for s in [k, v] {
                push_len(&mut buf, s.len());
                buf.extend_from_slice(s.as_bytes());
            }
        }
        StrMap(buf.into_boxed_slice())
    }

    /// The entries in order, without the count [`Iter`] needs up front.
    fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut rest = &*self.0;
        std::iter::from_fn(move || {
            let (entry, after) = take_entry(rest)?;
            rest = after;
            Some(entry)
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries().find(|&(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            rest: &self.0,
            len: self.len(),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.entries().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
    /// The entries not yet yielded from either end, still encoded.
    rest: &'a [u8],
    /// How many entries `rest` holds.
    len: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.len == 0 {
            return None;
        }
        let Some((entry, rest)) = take_entry(self.rest) else {
            self.len = 0;
            return None;
        };
        self.rest = rest;
        self.len -= 1;
        Some(entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

/// Walks from the front to the last entry left: the prefixes only read
/// forward, and a map holds a handful of entries.
impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.len == 0 {
            return None;
        }
        let mut last = self.rest;
        for _ in 1..self.len {
            last = take_entry(last).map_or(&[][..], |(_, after)| after);
        }
        let Some((entry, _)) = take_entry(last) else {
            self.len = 0;
            return None;
        };
        self.rest = self
            .rest
            .get(..self.rest.len() - last.len())
            .unwrap_or_default();
        self.len -= 1;
        Some(entry)
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

/// A command's program and arguments. All of them sit in one `Box<str>`,
/// each followed by a `'\0'`: a hundred thousand jobs each hold one, and a
/// `Vec<String>` paid a heap block for its buffer plus one per argument
/// (glibc puts a header on each block and rounds it up to 32 bytes, so a
/// one-word command cost two blocks for a few bytes of text). NUL can
/// terminate because an argument cannot hold one: the OS takes arguments as
/// C strings, and `validate` rejects NUL in `command` with a position.
///
/// `Debug` and `Hash` are those of the `Vec<String>` this type used to be:
/// plan diffs print `{argv:?}`, and `plan::spec_digest` must not change.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Argv(Box<str>);

impl Argv {
    /// The program and then its arguments.
    pub fn iter(&self) -> std::str::SplitTerminator<'_, char> {
        self.0.split_terminator('\0')
    }

    pub fn len(&self) -> usize {
        self.0.bytes().filter(|&b| b == 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        self.iter().nth(i)
    }

    /// The first item; `""` when there is none (a validated job always has
    /// a non-empty program).
    pub fn program(&self) -> &str {
        self.iter().next().unwrap_or("")
    }

    /// The items after the program.
    pub fn args(&self) -> std::iter::Skip<std::str::SplitTerminator<'_, char>> {
        self.iter().skip(1)
    }
}

/// Prints as the `Vec<String>` it used to be: `["/bin/true", "--x"]`.
impl fmt::Debug for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The `Vec<String>` feed: the count, then each item as a `str`.
impl Hash for Argv {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for a in self {
            a.hash(state);
        }
    }
}

/// An item holding a NUL comes back as several items split there; loaded
/// jobs never hold one (`validate` rejects it).
impl<S: AsRef<str>> FromIterator<S> for Argv {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut buf = String::new();
        for a in iter {
            buf.push_str(a.as_ref());
            buf.push('\0');
        }
        Argv(buf.into_boxed_str())
    }
}

impl From<Vec<String>> for Argv {
    fn from(argv: Vec<String>) -> Self {
        // Sized exactly, so `into_boxed_str` does not reallocate.
        let mut buf = String::with_capacity(argv.iter().map(|a| a.len() + 1).sum());
        for a in &argv {
            buf.push_str(a);
            buf.push('\0');
        }
        Argv(buf.into_boxed_str())
    }
}

impl<'a> IntoIterator for &'a Argv {
    type Item = &'a str;
    type IntoIter = std::str::SplitTerminator<'a, char>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// What a run executes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Executor {
    /// A program and its arguments, executed directly (no shell).
    Exec { argv: Argv },
    /// A script run by `/bin/sh -c`. `Box<str>`: no capacity word in every
    /// job's executor.
    Shell { script: Box<str> },
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
    pub workdir: Option<Box<str>>,
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
    fn str_map_iterates_from_both_ends() {
        let m = map(&[("a", "1"), ("bb", ""), ("c", "333"), ("", "x")]);
        let mut it = m.iter();
        assert_eq!(it.next_back(), Some(("c", "333")));
        assert_eq!(it.next(), Some(("", "x")));
        assert_eq!(it.len(), 2);
        assert_eq!(it.next_back(), Some(("bb", "")));
        assert_eq!(it.next(), Some(("a", "1")));
        assert_eq!((it.next(), it.next_back(), it.len()), (None, None, 0));
    }

    /// Held twice in every `JobSpec`, a hundred thousand at a time.
    #[test]
    fn str_map_is_one_boxed_slice() {
        assert_eq!(size_of::<StrMap>(), 16);
        assert_eq!(size_of::<Option<StrMap>>(), 16);
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

    #[test]
    fn str_map_prefixes_are_as_short_as_the_length() {
        // One byte for a length under 128, two under 16,384, then three.
        assert_eq!(&*map(&[("a", "bc")]).0, b"\x01a\x02bc");
        assert_eq!(&*map(&[("", "")]).0, b"\x00\x00");
        for (len, prefix) in [
            (0, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        ] {
            let mut buf = Vec::new();
            push_len(&mut buf, len);
            assert_eq!(buf, prefix, "{len}");
            assert_eq!(len_bytes(len), prefix.len(), "{len}");
            assert_eq!(take_len(&buf), Some((len, &[][..])), "{len}");
        }
        for len in [u32::MAX as usize, usize::MAX] {
            let mut buf = Vec::new();
            push_len(&mut buf, len);
            assert_eq!(len_bytes(len), buf.len());
            assert!(buf.len() <= MAX_LEN_BYTES);
            assert_eq!(take_len(&buf), Some((len, &[][..])));
        }
    }

    #[test]
    fn str_map_long_keys_and_values() {
        let k128 = "k".repeat(128);
        let v16k = "v".repeat(16_384);
        let k16k = "K".repeat(16_383);
        let v2m = "w".repeat(2_097_152);
        let m = map(&[(&k128, &v16k), (&k16k, "x"), ("short", &v2m), ("z", "")]);
        let sorted = [(&*k16k, "x"), (&*k128, &*v16k), ("short", &*v2m), ("z", "")];
        assert_eq!(m.len(), 4);
        assert!(m.iter().eq(sorted));
        assert!(m.iter().rev().eq(sorted.into_iter().rev()));
        assert_eq!(m.get(&k128), Some(&*v16k));
        assert_eq!(m.get(&k16k), Some("x"));
        assert_eq!(m.get("short"), Some(&*v2m));
        assert_eq!(m.get("z"), Some(""));
        assert_eq!(m.get(&k128[..127]), None);
        // Prefixes: 2 + 3, 2 + 1, 1 + 4, 1 + 1.
        let text: usize = sorted.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(m.0.len(), text + 5 + 3 + 5 + 2);
        let owned: BTreeMap<String, String> = sorted
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(StrMap::from(owned), m);
    }

    /// A damaged buffer reads short; nothing panics.
    #[test]
    fn str_map_truncated_or_garbled_buffer_reads_short() {
        let long = "l".repeat(200);
        let m = map(&[("a", "1"), (&long, "x"), ("é", &long)]);
        let check = |bytes: &[u8]| {
            let t = StrMap(bytes.into());
            let n = t.len();
            assert!(n <= 3);
            assert_eq!(t.iter().count(), n);
            assert_eq!(t.iter().rev().count(), n);
            let _ = (t.get("a"), t.get(&long), format!("{t:?}"));
            let mut h = std::hash::DefaultHasher::new();
            t.hash(&mut h);
            n
        };
        assert_eq!(check(&m.0), 3);
        for cut in 0..m.0.len() {
            assert!(check(&m.0[..cut]) < 3, "cut at {cut}");
        }
        for garbage in [
            &[0x80][..],
            &[0xff; 11],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            &[0x05, b'a'],
            &[0x01, 0xff, 0x00],
        ] {
            check(garbage);
        }
    }

    mod old_layout {
        #[derive(Debug)]
        pub struct StrMap(#[allow(dead_code)] pub Box<[(Box<str>, Box<str>)]>);
    }

    fn argv(items: &[&str]) -> Argv {
        Argv::from(items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn argv_items() {
        for items in [
            &[][..],
            &[""],
            &["/bin/true"],
            &["/usr/bin/backup", "--full", ""],
            &["", "", "x", ""],
            &["snow \u{2603}", "tab\there", "\"q\""],
        ] {
            let a = argv(items);
            assert!(a.iter().eq(items.iter().copied()), "{a:?}");
            assert!(a.iter().rev().eq(items.iter().rev().copied()), "{a:?}");
            assert_eq!(a.len(), items.len());
            assert_eq!(a.is_empty(), items.is_empty());
            for i in 0..=items.len() {
                assert_eq!(a.get(i), items.get(i).copied());
            }
            assert_eq!(a.program(), items.first().copied().unwrap_or(""));
            assert!(a.args().eq(items.iter().skip(1).copied()));
            assert_eq!(a, items.iter().collect::<Argv>());
            assert_eq!(a, items.iter().map(|s| s.to_string()).collect::<Argv>());
        }
        // `[]` and `[""]` differ, as do the same bytes split differently.
        assert_ne!(argv(&[]), argv(&[""]));
        assert_ne!(argv(&["ab", "c"]), argv(&["a", "bc"]));
        assert_eq!(Argv::default(), argv(&[]));
    }

    /// A `command` holds one heap block, whatever its length, and every
    /// job's executor is 24 bytes (a `Vec` and a `String` made it 32).
    #[test]
    fn argv_is_one_boxed_str() {
        assert_eq!(size_of::<Argv>(), 16);
        assert_eq!(size_of::<Executor>(), 24);
        assert_eq!(&*argv(&["noop"]).0, "noop\0");
        assert_eq!(&*argv(&["a", "", "b"]).0, "a\0\0b\0");
        assert_eq!(&*argv(&[]).0, "");
    }

    /// A NUL cannot reach here from a job file (`validate` rejects it); in
    /// code it splits the item rather than panicking.
    #[test]
    fn argv_nul_splits_an_item() {
        assert_eq!(argv(&["a\0b"]), argv(&["a", "b"]));
    }

    /// Plan diffs print `{argv:?}` and `spec_digest` hashes it: both must
    /// match the `Vec<String>` `argv` used to be.
    #[test]
    fn argv_hash_and_debug_match_the_old_layout() {
        use std::hash::DefaultHasher;
        fn digest<H: Hasher + Default>(v: &impl Hash) -> u64 {
            let mut h = H::default();
            v.hash(&mut h);
            h.finish()
        }
        for items in [
            &[][..],
            &[""],
            &["/bin/true", "--x"],
            &["/usr/bin/backup", "--full", ""],
            &["snow \u{2603}", "tab\there", "\"q\"", "nl\n"],
        ] {
            let old: Vec<String> = items.iter().map(|s| s.to_string()).collect();
            let new = Argv::from(old.clone());
            assert_eq!(digest::<DefaultHasher>(&new), digest::<DefaultHasher>(&old));
            assert_eq!(
                digest::<crate::fxhash::FxHasher>(&new),
                digest::<crate::fxhash::FxHasher>(&old)
            );
            assert_eq!(format!("{new:?}"), format!("{old:?}"));
            assert_eq!(format!("{new:#?}"), format!("{old:#?}"));
        }
        assert_eq!(
            format!("{:?}", argv(&["/bin/true", "--x"])),
            r#"["/bin/true", "--x"]"#
        );
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
