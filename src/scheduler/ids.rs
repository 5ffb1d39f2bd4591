//! The names a snapshot gives runs and specs, kept as the values they are
//! made of and spelled out only when shown.
//!
//! A full snapshot of a hundred thousand jobs holds eight recent outcomes
//! per job; as strings, their run ids, the job ids and the digests were
//! eleven allocations per job per snapshot (a million for one `/state`),
//! and a daemon read every few seconds fragmented its heap with them. As
//! values they cost no allocation: a job id is a shared `Arc<str>`, a slot
//! is a time, a digest is a number. They serialize to the same strings.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::spec::JobId;

/// `<job>@<scheduled time, UTC RFC 3339>`: which run of which job, the
/// same string in the environment (`DRIFTCRON_RUN_ID`), the logs and the
/// API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId {
    job: JobId,
    slot: DateTime<Utc>,
}

impl RunId {
    pub fn new(job: JobId, slot: DateTime<Utc>) -> Self {
        RunId { job, slot }
    }

    pub fn job(&self) -> &JobId {
        &self.job
    }

    /// The slot the run was scheduled for.
    pub fn slot(&self) -> DateTime<Utc> {
        self.slot
    }

    /// Parses the string form, exactly as [`Display`](fmt::Display) writes
    /// it: in UTC (`Z`), so that what is read writes back the same. Slots
    /// are years 1677–2262 (the timer's range), which RFC 3339's four-digit
    /// years cover.
    ///
    /// # Errors
    /// Says which half is wrong: the id before the last `@` or the time
    /// after it.
    pub fn parse(s: &str) -> Result<RunId, String> {
        let (job, at) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("run id `{s}` has no `@<time>`"))?;
        let job = JobId::parse(job).map_err(|e| format!("run id `{s}`: {e}"))?;
        if !at.ends_with('Z') {
            return Err(format!("run id `{s}`: `{at}` is not in UTC (`...Z`)"));
        }
        let slot = DateTime::parse_from_rfc3339(at)
            .map_err(|e| format!("run id `{s}`: `{at}` is not an RFC 3339 time: {e}"))?;
        Ok(RunId::new(job, slot.with_timezone(&Utc)))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_run_id(f, &self.job, self.slot)
    }
}

/// The one spelling of a run id, for [`RunId`]'s `Display` and for
/// [`run_id`], which needs no `RunId` (nor a reference count) to make it.
fn write_run_id(out: &mut impl fmt::Write, job: &JobId, slot: DateTime<Utc>) -> fmt::Result {
    out.write_str(job.as_str())?;
    match whole_second_stamp(slot) {
        Some(stamp) => out.write_str(std::str::from_utf8(&stamp).expect("ASCII")),
        None => write!(
            out,
            "@{}",
            slot.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
    }
}

/// Reads a value serialized as a string through its own parser.
fn deserialize_parsed<'de, D, T>(
    d: D,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

impl PartialEq<str> for RunId {
    /// Equal to its own spelling only, not to another spelling of the
    /// same instant (which no run id is ever given).
    fn eq(&self, other: &str) -> bool {
        /// Matches what is written against what is left of `other`.
        struct Against<'a>(&'a str);
        impl fmt::Write for Against<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0 = self.0.strip_prefix(s).ok_or(fmt::Error)?;
                Ok(())
            }
        }
        let mut rest = Against(other);
        fmt::write(&mut rest, format_args!("{self}")).is_ok() && rest.0.is_empty()
    }
}

impl PartialEq<&str> for RunId {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for RunId {
    fn eq(&self, other: &String) -> bool {
        *self == **other
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_parsed(d, RunId::parse)
    }
}

/// `<job>@<scheduled time, UTC RFC 3339>`, as a string (an environment
/// variable, a header, a report). Every process run builds one: sized
/// once, and without a reference to the job id taken and given back.
pub fn run_id(job: &JobId, slot: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(job.as_str().len() + STAMP_LEN);
    write_run_id(&mut s, job, slot).expect("writing to a String cannot fail");
    s
}

/// A spec's digest ([`crate::plan::spec_digest`]), shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpecDigest(pub u64);

impl fmt::Display for SpecDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for SpecDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl SpecDigest {
    /// Parses exactly what `Display` writes: `from_str_radix` alone would
    /// also take a sign and capitals.
    ///
    /// # Errors
    /// Anything but 16 lowercase hex digits.
    pub fn parse(s: &str) -> Result<SpecDigest, String> {
        let hex = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        match u64::from_str_radix(s, 16) {
            Ok(v) if hex => Ok(SpecDigest(v)),
            _ => Err(format!("spec digest `{s}` is not 16 lowercase hex digits")),
        }
    }
}

impl<'de> Deserialize<'de> for SpecDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_parsed(d, SpecDigest::parse)
    }
}

/// `@YYYY-MM-DDTHH:MM:SSZ`.
const STAMP_LEN: usize = 21;

/// `@` and the slot in RFC 3339 UTC, for a slot on a whole second of years
/// 0–9999 (the common case), written digit by digit: chrono's formatter,
/// and even `write!`, cost more than the rest of a fire (run ids are built
/// for every process run's environment).
fn whole_second_stamp(slot: DateTime<Utc>) -> Option<[u8; STAMP_LEN]> {
    use chrono::{Datelike, Timelike};
    if slot.nanosecond() != 0 || !(0..=9999).contains(&slot.year()) {
        return None;
    }
    let year = slot.year() as u32;
    let mut out = *b"@0000-00-00T00:00:00Z";
    let fields = [
        (1, year / 100),
        (3, year % 100),
        (6, slot.month()),
        (9, slot.day()),
        (12, slot.hour()),
        (15, slot.minute()),
        (18, slot.second()),
    ];
    for (at, v) in fields {
        out[at] = b'0' + (v / 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_match_chrono_formatting() {
        let id = JobId::parse("a").unwrap();
        for ts in [0i64, 1_767_225_600, 4_102_444_799] {
            let t = DateTime::from_timestamp(ts, 0).unwrap();
            assert_eq!(
                run_id(&id, t),
                format!("a@{}", t.to_rfc3339_opts(SecondsFormat::Secs, true))
            );
        }
        let t = DateTime::from_timestamp(1, 500_000_000).unwrap();
        assert_eq!(run_id(&id, t), "a@1970-01-01T00:00:01.500Z");
    }

    /// The string forms round-trip through JSON; what is not one is an
    /// error, not a default.
    #[test]
    fn ids_serialize_as_their_strings_and_back() {
        let slot = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let r = RunId::new(JobId::parse("team/a").unwrap(), slot);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"team/a@2026-01-01T00:00:00Z\"");
        assert_eq!(serde_json::from_str::<RunId>(&json).unwrap(), r);
        assert_eq!(r, "team/a@2026-01-01T00:00:00Z");
        assert_ne!(r, "team/a@2026-01-01T00:00:00+00:00");
        assert_ne!(r, "team/b@2026-01-01T00:00:00Z");
        let frac = RunId::new(r.job().clone(), slot + chrono::TimeDelta::milliseconds(250));
        let back: RunId = serde_json::from_str(&serde_json::to_string(&frac).unwrap()).unwrap();
        assert_eq!(back, frac);

        for bad in [
            "\"no-at\"",
            "\"Bad@2026-01-01T00:00:00Z\"",
            "\"a@yesterday\"",
            "\"a@2026-01-01T01:00:00+01:00\"",
        ] {
            assert!(serde_json::from_str::<RunId>(bad).is_err(), "{bad}");
        }

        let d = SpecDigest(0x00ab_cdef_0123_4567);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, "\"00abcdef01234567\"");
        assert_eq!(serde_json::from_str::<SpecDigest>(&json).unwrap(), d);
        for bad in [
            "\"abc\"",
            "\"zzzzzzzzzzzzzzzz\"",
            "\"00abcdef012345678\"",
            "\"+0abcdef01234567\"",
            "\"00ABCDEF01234567\"",
        ] {
            assert!(serde_json::from_str::<SpecDigest>(bad).is_err(), "{bad}");
        }

        let id = JobId::parse("team/a").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"team/a\"");
        assert_eq!(serde_json::from_str::<JobId>("\"team/a\"").unwrap(), id);
        assert!(serde_json::from_str::<JobId>("\"../a\"").is_err());
    }
}
