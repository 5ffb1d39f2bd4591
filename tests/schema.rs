//! The schedule language end to end: TOML files in a snapshot in, typed
//! `JobSpec`s and located diagnostics out. Every job field, its defaults,
//! its errors and warnings, `_defaults.toml` cascading, job ids, settings
//! and one-pass reporting.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use driftcron::snapshot::{FileProblem, Snapshot, SourceFile};
use driftcron::spec::job::*;
use driftcron::spec::schedule::*;
use driftcron::spec::{Diagnostic, JobId, LoadOptions, Loaded, Severity, load};

// ---------------------------------------------------------------- helpers

const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;

/// A minimal valid job: two lines, so a field appended to it is on line 3.
const BASE: &str = "schedule = \"0 * * * *\"\ncommand = [\"/bin/true\"]\n";
/// A minimal HTTP job: the field appended to it is on line 4, in `[http]`.
const HTTP_BASE: &str = "schedule = \"0 * * * *\"\n[http]\nurl = \"https://example.com/ping\"\n";
/// BASE with an open `[dst]` table: the field appended is on line 4.
const DST_BASE: &str = "schedule = \"0 * * * *\"\ncommand = [\"/bin/true\"]\n[dst]\n";
/// The job file most tests use.
const JOB: &str = "team/job.toml";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

fn snapshot(files: &[(&str, &str)]) -> Snapshot {
    let mut files: Vec<SourceFile> = files
        .iter()
        .map(|(p, t)| SourceFile {
            path: p.to_string(),
            bytes: t.as_bytes().to_vec(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Snapshot {
        revision: "test-rev".into(),
        files,
        problems: vec![],
    }
}

fn load_with(files: &[(&str, &str)], max_jobs: Option<usize>) -> Loaded {
    load(
        &snapshot(files),
        &LoadOptions {
            now: now(),
            max_jobs,
        },
    )
}

fn load_files(files: &[(&str, &str)]) -> Loaded {
    load_with(files, None)
}

/// Loads `text` as the only file, `team/job.toml`.
fn load_text(text: &str) -> Loaded {
    load_files(&[(JOB, text)])
}

/// Loads BASE + `extra` as `team/job.toml`.
fn load_job(extra: &str) -> Loaded {
    load_text(&format!("{BASE}{extra}"))
}

fn id(s: &str) -> JobId {
    JobId::parse(s).unwrap()
}

fn render(d: &Diagnostic) -> String {
    let pos = d
        .position
        .map_or(String::new(), |p| format!(":{}:{}", p.line, p.column));
    format!(
        "{:?} {}{pos}: {} [hint: {}]",
        d.severity,
        d.file,
        d.message,
        d.hint.as_deref().unwrap_or("-")
    )
}

fn dump(l: &Loaded) -> String {
    l.diagnostics
        .iter()
        .map(render)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The job `id` from a load that must have no diagnostics at all.
fn clean_spec(l: &Loaded, job: &str) -> JobSpec {
    assert!(
        l.diagnostics.is_empty(),
        "unexpected diagnostics:\n{}",
        dump(l)
    );
    l.desired
        .jobs
        .get(&id(job))
        .map(|s| JobSpec::clone(s))
        .unwrap_or_else(|| panic!("no job {job}"))
}

/// The spec of BASE + `extra`, which must load without any diagnostic.
fn spec(extra: &str) -> JobSpec {
    clean_spec(&load_job(extra), "team/job")
}

/// An expected diagnostic: severity, file, line and column (0, 0 = no
/// position), a substring of the message, a substring of the hint ("" =
/// not checked).
type Want<'a> = (Severity, &'a str, usize, usize, &'a str, &'a str);

fn matches(d: &Diagnostic, w: &Want<'_>) -> bool {
    let (sev, file, line, col, msg, hint) = *w;
    let pos = d.position.map_or((0, 0), |p| (p.line, p.column));
    d.severity == sev
        && d.file == file
        && pos == (line, col)
        && d.message.contains(msg)
        && (hint.is_empty() || d.hint.as_deref().is_some_and(|h| h.contains(hint)))
}

/// The diagnostics are exactly `want`, in this order.
fn expect(l: &Loaded, want: &[Want<'_>]) {
    let ok = l.diagnostics.len() == want.len()
        && l.diagnostics.iter().zip(want).all(|(d, w)| matches(d, w));
    assert!(
        ok,
        "diagnostics differ.\nwant:\n{}\ngot:\n{}",
        want.iter()
            .map(|w| format!("{w:?}"))
            .collect::<Vec<_>>()
            .join("\n"),
        dump(l)
    );
}

/// Each case is a file `prefix + extra` that must give exactly one error at
/// (line, column) in `team/job.toml`. (Whether the job is left out of
/// `desired` is checked in `jobs_with_errors_are_not_in_desired`.)
fn each_error(prefix: &str, cases: &[(&str, usize, usize, &str, &str)]) {
    for &(extra, line, col, msg, hint) in cases {
        let l = load_text(&format!("{prefix}{extra}"));
        let ok =
            l.diagnostics.len() == 1 && matches(&l.diagnostics[0], &(E, JOB, line, col, msg, hint));
        assert!(
            ok,
            "case {extra:?}: want error {line}:{col} {msg:?} [hint {hint:?}]\ngot:\n{}",
            dump(&l)
        );
        assert!(!l.is_valid());
    }
}

/// Errors on line 3 of BASE + extra.
fn line3_errors(cases: &[(&str, usize, &str, &str)]) {
    let cases: Vec<_> = cases.iter().map(|&(x, c, m, h)| (x, 3, c, m, h)).collect();
    each_error(BASE, &cases);
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn map(pairs: &[(&str, &str)]) -> driftcron::spec::job::StrMap {
    pairs.iter().copied().collect()
}

fn http(spec: &JobSpec) -> &HttpSpec {
    match &spec.executor {
        Executor::Http(h) => h,
        other => panic!("not an http job: {other:?}"),
    }
}

// ------------------------------------------------- typed values, defaults

#[test]
fn defaults_when_fields_are_absent() {
    let s = spec("");
    assert_eq!(s.id, id("team/job"));
    assert_eq!(s.description, None);
    assert!(s.labels.is_empty() && s.env.is_empty());
    assert!(s.enabled);
    assert_eq!(&*s.schedule_text, "0 * * * *");
    assert_eq!(s.schedule.tz, Tz::UTC);
    assert_eq!(
        s.schedule.dst,
        DstPolicy {
            gap: GapPolicy::Shift,
            fold: FoldPolicy::First
        }
    );
    assert_eq!(
        s.executor,
        Executor::Exec {
            argv: Argv::from(vec!["/bin/true".into()])
        }
    );
    assert_eq!(s.workdir, None);
    assert_eq!(s.timeout, Some(secs(3600)));
    assert_eq!(s.kill_grace, secs(30));
    assert_eq!(s.max_output, 64 * 1024);
    assert_eq!(s.concurrency, Concurrency::Forbid);
    assert_eq!(
        s.jitter,
        Jitter {
            max: Duration::ZERO,
            mode: JitterMode::Stable
        }
    );
    assert_eq!(s.starting_deadline, None);
    assert_eq!(s.catch_up, CatchUp::None);
    assert_eq!(
        s.retry,
        RetryPolicy {
            retries: 0,
            backoff: secs(10),
            max_delay: secs(600)
        }
    );
    assert_eq!(s.on_remove, OnRemove::Drain);
}

#[test]
fn description_enabled_and_labels() {
    let s = spec(
        "description = \"Nightly sweep\"\nenabled = false\nlabels = { team = \"billing\", \"app.kubernetes.io/name\" = \"sweep\" }\n",
    );
    assert_eq!(s.description.as_deref(), Some("Nightly sweep"));
    assert!(!s.enabled);
    assert_eq!(
        s.labels,
        map(&[("team", "billing"), ("app.kubernetes.io/name", "sweep")])
    );
}

#[test]
fn schedule_text_is_trimmed_and_every_is_parsed() {
    let s = clean_spec(
        &load_text("schedule = \"  @every 90s \"\ncommand = [\"/bin/true\"]\n"),
        "team/job",
    );
    assert_eq!(&*s.schedule_text, "@every 90s");
    let ScheduleExpr::Every(e) = s.schedule.expr else {
        panic!("not @every: {:?}", s.schedule.expr)
    };
    assert_eq!(e.period(), secs(90));
}

#[test]
fn timezone_and_dst_policy() {
    let s = spec("timezone = \"Europe/Berlin\"\n[dst]\ngap = \"skip\"\nfold = \"both\"\n");
    assert_eq!(s.schedule.tz, Tz::Europe__Berlin);
    assert_eq!(
        s.schedule.dst,
        DstPolicy {
            gap: GapPolicy::Skip,
            fold: FoldPolicy::Both
        }
    );
    let s = spec("[dst]\nfold = \"last\"\n");
    assert_eq!(
        s.schedule.dst,
        DstPolicy {
            gap: GapPolicy::Shift,
            fold: FoldPolicy::Last
        }
    );
}

#[test]
fn command_and_shell_executors() {
    let s = clean_spec(
        &load_text("schedule = \"@daily\"\ncommand = [\"/usr/bin/backup\", \"--full\", \"\"]\n"),
        "team/job",
    );
    assert_eq!(
        s.executor,
        Executor::Exec {
            argv: Argv::from(vec!["/usr/bin/backup".into(), "--full".into(), "".into()])
        }
    );
    let s = clean_spec(
        &load_text("schedule = \"@daily\"\nshell = 'echo \"$HOME\" | wc -c'\n"),
        "team/job",
    );
    assert_eq!(
        s.executor,
        Executor::Shell {
            script: "echo \"$HOME\" | wc -c".into()
        }
    );
}

#[test]
fn env_and_workdir() {
    let s = spec("env = { LOG_LEVEL = \"info\", _X1 = \"\" }\nworkdir = \"/var/lib/app\"\n");
    assert_eq!(s.env, map(&[("LOG_LEVEL", "info"), ("_X1", "")]));
    assert_eq!(s.workdir.as_deref(), Some("/var/lib/app"));
}

#[test]
fn timeout_duration_and_none() {
    assert_eq!(spec("timeout = \"90s\"\n").timeout, Some(secs(90)));
    assert_eq!(spec("timeout = \"1h 30m\"\n").timeout, Some(secs(5400)));
    for none in ["none", "off", "never"] {
        assert_eq!(
            spec(&format!("timeout = \"{none}\"\n")).timeout,
            None,
            "{none}"
        );
    }
}

#[test]
fn kill_grace_value() {
    assert_eq!(spec("kill_grace = \"5s\"\n").kill_grace, secs(5));
}

#[test]
fn max_output_as_size_string_and_integer() {
    assert_eq!(spec("max_output = \"16KiB\"\n").max_output, 16 * 1024);
    assert_eq!(spec("max_output = \"1MB\"\n").max_output, 1_000_000);
    assert_eq!(spec("max_output = 4096\n").max_output, 4096);
}

#[test]
fn concurrency_policies_with_their_settings() {
    let s = spec("concurrency = \"allow\"\nmax_instances = 3\n");
    assert_eq!(
        s.concurrency,
        Concurrency::Allow {
            max_instances: 3.try_into().unwrap()
        }
    );
    let s = spec("concurrency = \"allow\"\n");
    assert_eq!(
        s.concurrency,
        Concurrency::Allow {
            max_instances: 2.try_into().unwrap()
        }
    );
    let s = spec("concurrency = \"queue\"\nqueue_depth = 5\n");
    assert_eq!(
        s.concurrency,
        Concurrency::Queue {
            depth: 5.try_into().unwrap()
        }
    );
    let s = spec("concurrency = \"queue\"\n");
    assert_eq!(
        s.concurrency,
        Concurrency::Queue {
            depth: 1.try_into().unwrap()
        }
    );
    assert_eq!(
        spec("concurrency = \"replace\"\n").concurrency,
        Concurrency::Replace
    );
    assert_eq!(
        spec("concurrency = \"forbid\"\n").concurrency,
        Concurrency::Forbid
    );
}

#[test]
fn jitter_and_jitter_mode() {
    let s = spec("jitter = \"30s\"\njitter_mode = \"random\"\n");
    assert_eq!(
        s.jitter,
        Jitter {
            max: secs(30),
            mode: JitterMode::Random
        }
    );
    let s = spec("jitter = \"2m\"\n");
    assert_eq!(
        s.jitter,
        Jitter {
            max: secs(120),
            mode: JitterMode::Stable
        }
    );
}

#[test]
fn starting_deadline_value() {
    assert_eq!(
        spec("starting_deadline = \"5m\"\n").starting_deadline,
        Some(secs(300))
    );
}

#[test]
fn catch_up_modes_with_max() {
    assert_eq!(
        spec("catch_up = \"all\"\nmax_catch_up = 4\n").catch_up,
        CatchUp::All {
            max: 4.try_into().unwrap()
        }
    );
    assert_eq!(
        spec("catch_up = \"all\"\n").catch_up,
        CatchUp::All {
            max: 10.try_into().unwrap()
        }
    );
    assert_eq!(spec("catch_up = \"latest\"\n").catch_up, CatchUp::Latest);
    assert_eq!(spec("catch_up = \"none\"\n").catch_up, CatchUp::None);
}

#[test]
fn retries_backoff_and_max_delay() {
    let s = spec("retries = 3\nretry_backoff = \"5s\"\nretry_max_delay = \"1m\"\n");
    assert_eq!(
        s.retry,
        RetryPolicy {
            retries: 3,
            backoff: secs(5),
            max_delay: secs(60)
        }
    );
    let s = spec("retries = 0\nretry_backoff = \"1m\"\nretry_max_delay = \"1m\"\n");
    assert_eq!(
        s.retry,
        RetryPolicy {
            retries: 0,
            backoff: secs(60),
            max_delay: secs(60)
        }
    );
}

#[test]
fn on_remove_values() {
    assert_eq!(spec("on_remove = \"cancel\"\n").on_remove, OnRemove::Cancel);
    assert_eq!(spec("on_remove = \"drain\"\n").on_remove, OnRemove::Drain);
}

#[test]
fn http_job_with_every_field() {
    let text = "schedule = \"0 * * * *\"\n[http]\nurl = \"https://example.com/ping\"\nmethod = \"post\"\nheaders = { Authorization = \"Bearer t\", \"X-Trace\" = \"1\" }\nbody = '{\"ok\": true}'\nexpect_status = 204\ntls_verify = true\n";
    let s = clean_spec(&load_text(text), "team/job");
    let h = http(&s);
    assert_eq!(h.url, "https://example.com/ping");
    assert_eq!(h.method, HttpMethod::Post);
    assert_eq!(
        h.headers,
        map(&[("Authorization", "Bearer t"), ("X-Trace", "1")])
    );
    assert_eq!(h.body.as_deref(), Some("{\"ok\": true}"));
    assert_eq!(h.expect_status, ExpectStatus::Codes(vec![204]));
    assert!(h.tls_verify);
}

#[test]
fn http_expect_status_list_and_defaults() {
    let s = clean_spec(
        &load_text(&format!("{HTTP_BASE}expect_status = [200, 204]\n")),
        "team/job",
    );
    assert_eq!(http(&s).expect_status, ExpectStatus::Codes(vec![200, 204]));
    let s = clean_spec(&load_text(HTTP_BASE), "team/job");
    let h = http(&s);
    assert_eq!(
        (h.method, &h.expect_status, h.tls_verify),
        (HttpMethod::Get, &ExpectStatus::Success, true)
    );
    assert!(h.headers.is_empty() && h.body.is_none());
}

// ------------------------------------------------------ errors per field

#[test]
fn unknown_job_field_suggests_the_closest() {
    line3_errors(&[
        (
            "timout = \"5m\"\n",
            1,
            "unknown field \"timout\" in a job",
            "did you mean \"timeout\"?",
        ),
        (
            "shedule_x_y_z = 1\n",
            1,
            "unknown field \"shedule_x_y_z\"",
            "known a job fields: description",
        ),
    ]);
}

#[test]
fn description_errors() {
    let long = format!("description = \"{}\"\n", "x".repeat(4097));
    line3_errors(&[
        (
            "description = 5\n",
            15,
            "`description` must be a string, found an integer",
            "for example: description = ",
        ),
        (&long, 15, "`description` is longer than 4096 bytes", ""),
    ]);
}

#[test]
fn labels_errors() {
    let long = format!("labels = {{ team = \"{}\" }}\n", "x".repeat(257));
    let many: String = (0..65).map(|i| format!("l{i} = \"v\"\n")).collect();
    line3_errors(&[
        (
            "labels = \"team\"\n",
            10,
            "`labels` must be a table of strings, found a string",
            "for example: labels = { team = ",
        ),
        (
            "labels = { team = 1 }\n",
            19,
            "`labels.team` must be a string, found an integer",
            "quote the value",
        ),
        (
            "labels = { \"bad name\" = \"x\" }\n",
            25,
            "label name `bad name` is invalid",
            "1-63 characters",
        ),
        (&long, 19, "label `team` is longer than 256 bytes", ""),
        (
            &format!("[labels]\n{many}"),
            1,
            "65 labels; the limit is 64",
            "",
        ),
    ]);
}

#[test]
fn enabled_errors() {
    line3_errors(&[(
        "enabled = \"no\"\n",
        11,
        "`enabled` must be true or false, found a string",
        "for example: enabled = true",
    )]);
}

#[test]
fn schedule_errors_point_inside_the_string() {
    let prefix = "command = [\"/bin/true\"]\n";
    each_error(
        prefix,
        &[
            (
                "schedule = \"61 * * * *\"\n",
                2,
                13,
                "invalid schedule \"61 * * * *\": 61 is out of range for the minute field (0-59)",
                "",
            ),
            (
                "schedule = \"0 25 * * *\"\n",
                2,
                15,
                "25 is out of range for the hour field (0-23)",
                "",
            ),
            (
                "schedule = '0 0 * * FRY'\n",
                2,
                21,
                "`FRY` is not valid in the day-of-week field",
                "use a number or one of",
            ),
            (
                "schedule = \"* * *\"\n",
                2,
                13,
                "cron expression has 3 fields; expected 5 or 6",
                "5 fields are `min hour dom month dow`",
            ),
            (
                "schedule = \"@hourlyy\"\n",
                2,
                13,
                "unknown macro `@hourlyy`",
                "known macros: @yearly",
            ),
            (
                "schedule = \"@every soon\"\n",
                2,
                20,
                "invalid duration `soon`",
                "durations look like",
            ),
            (
                "schedule = \" 61 * * * *\"\n",
                2,
                14,
                "61 is out of range for the minute field",
                "",
            ),
            (
                "schedule = \"0 0 0 * * 8\"\n",
                2,
                23,
                "8 is out of range for the day-of-week field (0-7)",
                "",
            ),
            (
                "schedule = \"61\\u0020* * * *\"\n",
                2,
                12,
                "61 is out of range for the minute field",
                "",
            ),
            (
                "schedule = \"0 0 31 2 *\"\n",
                2,
                12,
                "schedule \"0 0 31 2 *\" can never fire",
                "February has no 30th or 31st",
            ),
        ],
    );
}

/// Library bug: a `schedule` or `http.url` of the wrong TOML type is also
/// reported as missing ("job has no `schedule`" at 1:1, "`[http]` has no
/// `url`"), although executors avoid exactly this with `executor_keys`.
#[test]
fn wrong_type_value_is_not_also_reported_missing() {
    each_error(
        "command = [\"/bin/true\"]\n",
        &[(
            "schedule = 5\n",
            2,
            12,
            "`schedule` must be a string, found an integer",
            "for example: schedule = \"30 2 * * *\"",
        )],
    );
    each_error(
        "schedule = \"@daily\"\n[http]\n",
        &[(
            "url = 5\n",
            3,
            7,
            "`url` must be a string, found an integer",
            "for example: url = \"https://example.com/ping\"",
        )],
    );
}

#[test]
fn timezone_errors() {
    line3_errors(&[
        (
            "timezone = \"Europe/Berln\"\n",
            12,
            "unknown time zone \"Europe/Berln\"",
            "did you mean \"Europe/Berlin\"?",
        ),
        (
            "timezone = \"Nowhere/Atlantis\"\n",
            12,
            "unknown time zone \"Nowhere/Atlantis\"",
            "use an IANA name",
        ),
        (
            "timezone = 1\n",
            12,
            "`timezone` must be a string, found an integer",
            "for example: timezone = \"Europe/Berlin\"",
        ),
    ]);
}

/// Library bug: `did_you_mean` lowercases the word but not the candidates,
/// so a time zone that differs only in case (`utc`) gets no suggestion.
#[test]
fn timezone_in_wrong_case_suggests_the_canonical_name() {
    line3_errors(&[(
        "timezone = \"utc\"\n",
        12,
        "unknown time zone \"utc\"",
        "did you mean \"UTC\"?",
    )]);
}

#[test]
fn dst_errors_and_unknown_dst_fields() {
    line3_errors(&[(
        "dst = \"shift\"\n",
        7,
        "`dst` must be a table, found a string",
        "for example: dst = { gap = ",
    )]);
    each_error(
        DST_BASE,
        &[
            (
                "gap = \"skp\"\n",
                4,
                7,
                "invalid `dst.gap` value \"skp\"",
                "did you mean \"skip\"?",
            ),
            (
                "gap = 1\n",
                4,
                7,
                "`gap` must be a string, found an integer",
                "for example: gap = \"shift\"",
            ),
            (
                "fold = \"bth\"\n",
                4,
                8,
                "invalid `dst.fold` value \"bth\"",
                "did you mean \"both\"?",
            ),
            (
                "fold = \"sometimes\"\n",
                4,
                8,
                "invalid `dst.fold` value \"sometimes\"",
                "one of: \"first\", \"last\", \"both\"",
            ),
            (
                "gaps = \"skip\"\n",
                4,
                1,
                "unknown field \"gaps\" in [dst]",
                "did you mean \"gap\"?",
            ),
        ],
    );
}

#[test]
fn command_errors() {
    each_error(
        "schedule = \"@daily\"\n",
        &[
            (
                "command = \"/bin/true\"\n",
                2,
                11,
                "`command` must be an array of strings, found a string",
                "for example: command = [\"/usr/bin/backup\"",
            ),
            (
                "command = [\"/bin/echo\", 1]\n",
                2,
                25,
                "`command` items must be strings, found an integer",
                "quote it: \"1\"",
            ),
            (
                "command = []\n",
                2,
                11,
                "`command` is empty",
                "the first item is the program",
            ),
            (
                "command = [\"\", \"x\"]\n",
                2,
                12,
                "`command` program is an empty string",
                "",
            ),
        ],
    );
}

#[test]
fn shell_errors() {
    each_error(
        "schedule = \"@daily\"\n",
        &[
            (
                "shell = [\"echo\"]\n",
                2,
                9,
                "`shell` must be a string, found an array",
                "for example: shell = \"echo hello\"",
            ),
            ("shell = \"   \"\n", 2, 9, "`shell` is empty", ""),
        ],
    );
}

#[test]
fn http_errors() {
    each_error(
        "schedule = \"@daily\"\n",
        &[(
            "http = \"https://example.com\"\n",
            2,
            8,
            "`http` must be a table, found a string",
            "for example: http = { url = ",
        )],
    );
    each_error(
        HTTP_BASE,
        &[
            (
                "method = \"FETCH\"\n",
                4,
                10,
                "invalid `http.method` value \"FETCH\"",
                "one of: \"GET\", \"HEAD\", \"POST\"",
            ),
            (
                "method = 1\n",
                4,
                10,
                "`method` must be a string, found an integer",
                "for example: method = \"POST\"",
            ),
            (
                "headers = \"x\"\n",
                4,
                11,
                "`headers` must be a table of strings, found a string",
                "for example: headers = { Authorization",
            ),
            (
                "headers = { \"Bad Header\" = \"x\" }\n",
                4,
                28,
                "`http.headers`: `Bad Header` is not a valid header name",
                "",
            ),
            (
                "headers = { X = \"a\\nb\" }\n",
                4,
                17,
                "`http.headers.X` contains a line break or NUL",
                "",
            ),
            (
                "headers = { X = 1 }\n",
                4,
                17,
                "`headers.X` must be a string, found an integer",
                "quote the value",
            ),
            (
                "body = 1\n",
                4,
                8,
                "`body` must be a string, found an integer",
                "for example: body = ",
            ),
            (
                "expect_status = \"200\"\n",
                4,
                17,
                "`expect_status` must be an integer or an array of integers, found a string",
                "for example: expect_status = [200, 204]",
            ),
            (
                "expect_status = [200, \"204\"]\n",
                4,
                23,
                "`expect_status` items must be integers",
                "for example: expect_status = [200, 204]",
            ),
            (
                "expect_status = []\n",
                4,
                17,
                "`http.expect_status` is empty",
                "omit it to accept any 2xx",
            ),
            (
                "expect_status = [200, 600]\n",
                4,
                23,
                "HTTP status 600 is out of range (100 to 599)",
                "",
            ),
            (
                "expect_status = 99\n",
                4,
                17,
                "HTTP status 99 is out of range (100 to 599)",
                "",
            ),
            (
                "tls_verify = \"no\"\n",
                4,
                14,
                "`tls_verify` must be true or false, found a string",
                "for example: tls_verify = true",
            ),
            (
                "metod = \"GET\"\n",
                4,
                1,
                "unknown field \"metod\" in [http]",
                "did you mean \"method\"?",
            ),
            (
                "retries_x = 1\n",
                4,
                1,
                "unknown field \"retries_x\" in [http]",
                "known [http] fields: url, method",
            ),
        ],
    );
    each_error(
        "schedule = \"@daily\"\n",
        &[
            (
                "[http]\nmethod = \"GET\"\n",
                2,
                2,
                "`[http]` has no `url`",
                "add: url = \"https://example.com/ping\"",
            ),
            (
                "[http]\nurl = \"ftp://example.com\"\n",
                3,
                7,
                "`http.url` \"ftp://example.com\" is not an http:// or https:// URL with a host",
                "for example: url = ",
            ),
            (
                "[http]\nurl = \"https:///path\"\n",
                3,
                7,
                "is not an http:// or https:// URL with a host",
                "",
            ),
        ],
    );
}

#[test]
fn executor_count_errors() {
    each_error(
        "schedule = \"@daily\"\n",
        &[
            (
                "command = [\"/bin/true\"]\nshell = \"echo\"\n",
                3,
                1,
                "`shell` conflicts with `command`: a job runs exactly one of command, shell or [http]",
                "keep one of: command, shell",
            ),
            (
                "shell = \"echo\"\n[http]\nurl = \"https://example.com\"\n",
                3,
                2,
                "`http` conflicts with `shell`",
                "keep one of: shell, http",
            ),
            (
                "",
                1,
                1,
                "job has nothing to run",
                "set exactly one of: command = ",
            ),
        ],
    );
    // Three executors: one error for each extra one.
    let l = load_text(
        "schedule = \"@daily\"\ncommand = [\"x\"]\nshell = \"y\"\n[http]\nurl = \"https://example.com\"\n",
    );
    expect(
        &l,
        &[
            (
                E,
                JOB,
                3,
                1,
                "`shell` conflicts with `command`",
                "keep one of: command, shell, http",
            ),
            (
                E,
                JOB,
                4,
                2,
                "`http` conflicts with `command`",
                "keep one of: command, shell, http",
            ),
        ],
    );
}

#[test]
fn missing_schedule_is_an_error_at_the_top_of_the_file() {
    each_error(
        "",
        &[(
            "command = [\"/bin/true\"]\n",
            1,
            1,
            "job has no `schedule`",
            "add for example: schedule = \"30 2 * * *\"",
        )],
    );
    // Both missing: both reported.
    let l = load_text("description = \"nothing\"\n");
    expect(
        &l,
        &[
            (E, JOB, 1, 1, "job has no `schedule`", "@every 10m"),
            (E, JOB, 1, 1, "job has nothing to run", "set exactly one of"),
        ],
    );
}

#[test]
fn env_errors() {
    line3_errors(&[
        (
            "env = [\"A=1\"]\n",
            7,
            "`env` must be a table of strings, found an array",
            "for example: env = { LOG_LEVEL = \"info\" }",
        ),
        (
            "env = { A = 1 }\n",
            13,
            "`env.A` must be a string, found an integer",
            "quote the value",
        ),
        (
            "env = { \"1BAD\" = \"x\" }\n",
            18,
            "`env.1BAD` is not a valid environment variable name",
            "use letters, digits and `_`",
        ),
        (
            "env = { \"A-B\" = \"x\" }\n",
            17,
            "`env.A-B` is not a valid environment variable name",
            "not starting with a digit",
        ),
        (
            "env = { DRIFTCRON_JOB = \"x\" }\n",
            25,
            "`env.DRIFTCRON_JOB`: the DRIFTCRON_ prefix is reserved",
            "driftcron sets DRIFTCRON_JOB",
        ),
    ]);
}

#[test]
fn workdir_errors() {
    line3_errors(&[
        (
            "workdir = \"var/lib/app\"\n",
            11,
            "`workdir` \"var/lib/app\" is not an absolute path",
            "write it from the root, for example \"/var/lib/app\"",
        ),
        (
            "workdir = true\n",
            11,
            "`workdir` must be a string, found a boolean",
            "for example: workdir = \"/var/lib/app\"",
        ),
    ]);
}

#[test]
fn timeout_errors() {
    line3_errors(&[
        (
            "timeout = 90\n",
            11,
            "`timeout` must be a string, found an integer",
            "for example: timeout = \"15m\"",
        ),
        (
            "timeout = \"soon\"\n",
            11,
            "`timeout`: invalid duration `soon`",
            "durations look like \"90s\"",
        ),
        (
            "timeout = \"90\"\n",
            11,
            "`timeout`: `90` has no unit",
            "durations look like",
        ),
        (
            "timeout = \"8days\"\n",
            11,
            "`timeout` = \"8days\" is longer than the limit of 7days",
            "",
        ),
        (
            "timeout = \"0s\"\n",
            11,
            "`timeout` is zero",
            "use \"none\" for no timeout",
        ),
    ]);
}

#[test]
fn kill_grace_errors() {
    line3_errors(&[
        (
            "kill_grace = 30\n",
            14,
            "`kill_grace` must be a string, found an integer",
            "for example: kill_grace = \"30s\"",
        ),
        (
            "kill_grace = \"a while\"\n",
            14,
            "`kill_grace`: invalid duration",
            "durations look like",
        ),
        (
            "kill_grace = \"2h\"\n",
            14,
            "`kill_grace` = \"2h\" is longer than the limit of 1h",
            "",
        ),
    ]);
}

#[test]
fn max_output_errors() {
    line3_errors(&[
        (
            "max_output = 1.5\n",
            14,
            "`max_output` must be a size string or an integer, found a float",
            "for example: max_output = \"64KiB\"",
        ),
        (
            "max_output = \"12 parsecs\"\n",
            14,
            "`max_output`: unknown size unit `parsecs`",
            "for example: max_output = \"64KiB\"",
        ),
        (
            "max_output = \"1GiB\"\n",
            14,
            "`max_output` = 1GiB is above the limit of 64MiB",
            "write large output to a file",
        ),
        (
            "max_output = 67108865\n",
            14,
            "`max_output` = 67108865 is above the limit of 64MiB",
            "write large output to a file",
        ),
        (
            "max_output = -1\n",
            14,
            "`max_output`: invalid size `-1`",
            "for example",
        ),
    ]);
}

#[test]
fn concurrency_errors() {
    line3_errors(&[
        (
            "concurrency = \"alow\"\n",
            15,
            "invalid `concurrency` value \"alow\"",
            "did you mean \"allow\"?",
        ),
        (
            "concurrency = \"parallel\"\n",
            15,
            "invalid `concurrency` value \"parallel\"",
            "one of: \"forbid\", \"allow\", \"replace\", \"queue\"",
        ),
        (
            "concurrency = true\n",
            15,
            "`concurrency` must be a string, found a boolean",
            "for example: concurrency = \"forbid\"",
        ),
    ]);
}

#[test]
fn max_instances_errors() {
    each_error(
        &format!("{BASE}concurrency = \"allow\"\n"),
        &[
            (
                "max_instances = 0\n",
                4,
                17,
                "`max_instances` = 0 is out of range (1 to 1000)",
                "",
            ),
            (
                "max_instances = 1001\n",
                4,
                17,
                "`max_instances` = 1001 is out of range (1 to 1000)",
                "",
            ),
            (
                "max_instances = \"3\"\n",
                4,
                17,
                "`max_instances` must be an integer, found a string",
                "for example: max_instances = 3",
            ),
            (
                "max_instances = 99999999999999999999\n",
                4,
                17,
                "`max_instances` is out of range",
                "",
            ),
        ],
    );
}

#[test]
fn queue_depth_errors() {
    each_error(
        &format!("{BASE}concurrency = \"queue\"\n"),
        &[
            (
                "queue_depth = 0\n",
                4,
                15,
                "`queue_depth` = 0 is out of range (1 to 1000)",
                "",
            ),
            (
                "queue_depth = 1001\n",
                4,
                15,
                "`queue_depth` = 1001 is out of range (1 to 1000)",
                "",
            ),
            (
                "queue_depth = 1.0\n",
                4,
                15,
                "`queue_depth` must be an integer, found a float",
                "for example: queue_depth = 2",
            ),
        ],
    );
}

#[test]
fn jitter_errors() {
    line3_errors(&[
        (
            "jitter = 30\n",
            10,
            "`jitter` must be a string, found an integer",
            "for example: jitter = \"30s\"",
        ),
        (
            "jitter = \"lots\"\n",
            10,
            "`jitter`: invalid duration `lots`",
            "durations look like",
        ),
        (
            "jitter = \"25h\"\n",
            10,
            "`jitter` = \"25h\" is longer than the limit of 1day",
            "",
        ),
        (
            "jitter_mode = \"stabel\"\n",
            15,
            "invalid `jitter_mode` value \"stabel\"",
            "did you mean \"stable\"?",
        ),
        (
            "jitter_mode = 1\n",
            15,
            "`jitter_mode` must be a string, found an integer",
            "for example: jitter_mode = \"stable\"",
        ),
    ]);
}

#[test]
fn starting_deadline_errors() {
    line3_errors(&[
        (
            "starting_deadline = 5\n",
            21,
            "`starting_deadline` must be a string, found an integer",
            "for example: starting_deadline = \"5m\"",
        ),
        (
            "starting_deadline = \"soon\"\n",
            21,
            "`starting_deadline`: invalid duration `soon`",
            "durations look like",
        ),
        (
            "starting_deadline = \"400days\"\n",
            21,
            "`starting_deadline` = \"400days\" is longer than the limit of",
            "",
        ),
    ]);
}

#[test]
fn catch_up_errors() {
    line3_errors(&[
        (
            "catch_up = \"lastest\"\n",
            12,
            "invalid `catch_up` value \"lastest\"",
            "did you mean \"latest\"?",
        ),
        (
            "catch_up = true\n",
            12,
            "`catch_up` must be a string, found a boolean",
            "for example: catch_up = \"latest\"",
        ),
    ]);
    each_error(
        &format!("{BASE}catch_up = \"all\"\n"),
        &[
            (
                "max_catch_up = 0\n",
                4,
                16,
                "`max_catch_up` = 0 is out of range (1 to 1000)",
                "",
            ),
            (
                "max_catch_up = 1001\n",
                4,
                16,
                "`max_catch_up` = 1001 is out of range (1 to 1000)",
                "",
            ),
            (
                "max_catch_up = \"10\"\n",
                4,
                16,
                "`max_catch_up` must be an integer, found a string",
                "for example: max_catch_up = 10",
            ),
        ],
    );
}

#[test]
fn retry_errors() {
    line3_errors(&[
        (
            "retries = -1\n",
            11,
            "`retries` = -1 is out of range (0 to 100)",
            "",
        ),
        (
            "retries = 101\n",
            11,
            "`retries` = 101 is out of range (0 to 100)",
            "",
        ),
        (
            "retries = \"3\"\n",
            11,
            "`retries` must be an integer, found a string",
            "for example: retries = 3",
        ),
        (
            "retry_backoff = 10\n",
            17,
            "`retry_backoff` must be a string, found an integer",
            "for example: retry_backoff = \"10s\"",
        ),
        (
            "retry_backoff = \"quick\"\n",
            17,
            "`retry_backoff`: invalid duration `quick`",
            "durations look like",
        ),
        (
            "retry_backoff = \"2days\"\n",
            17,
            "`retry_backoff` = \"2days\" is longer than the limit of 1day",
            "",
        ),
        (
            "retry_max_delay = 600\n",
            19,
            "`retry_max_delay` must be a string, found an integer",
            "for example: retry_max_delay = \"10m\"",
        ),
        (
            "retry_max_delay = \"8days\"\n",
            19,
            "`retry_max_delay` = \"8days\" is longer than the limit of 7days",
            "",
        ),
    ]);
}

#[test]
fn retry_max_delay_shorter_than_backoff() {
    each_error(
        BASE,
        &[(
            "retry_backoff = \"1m\"\nretry_max_delay = \"30s\"\n",
            4,
            19,
            "`retry_max_delay` (30s) is shorter than `retry_backoff` (1m)",
            "the cap must be at least the first delay",
        )],
    );
}

/// Library bug: the cap check only runs when both fields are written, so a
/// backoff above the default cap (10m) is accepted and silently capped.
#[test]
fn retry_backoff_above_the_default_cap_is_an_error() {
    each_error(
        BASE,
        &[(
            "retry_backoff = \"20m\"\n",
            3,
            17,
            "is shorter than `retry_backoff` (20m)",
            "",
        )],
    );
}

#[test]
fn on_remove_errors() {
    line3_errors(&[
        (
            "on_remove = \"cancle\"\n",
            13,
            "invalid `on_remove` value \"cancle\"",
            "did you mean \"cancel\"?",
        ),
        (
            "on_remove = 1\n",
            13,
            "`on_remove` must be a string, found an integer",
            "for example: on_remove = \"drain\"",
        ),
    ]);
}

/// Library bug: `validate::build` counts errors from its own start, so the
/// errors `RawJob::read` reported just before (wrong TOML type, unknown
/// field) do not stop the job: it lands in `desired.jobs` with the field
/// silently defaulted, and `validate` counts it as valid, `next` previews it.
#[test]
fn jobs_with_errors_are_not_in_desired() {
    let cases = [
        format!("{BASE}timeout = 90\n"),
        format!("{BASE}timezone = 1\n"),
        format!("{BASE}timout = \"5m\"\n"),
        format!("{BASE}[dst]\ngaps = \"skip\"\n"),
        format!("{BASE}env = {{ A = 1 }}\n"),
        format!("{HTTP_BASE}tls_verify = \"no\"\n"),
        format!("{BASE}retries = -1\n"),
        format!("{BASE}workdir = \"rel\"\n"),
    ];
    let mut leaked = Vec::new();
    for text in &cases {
        let l = load_text(text);
        assert!(!l.is_valid(), "{text:?}");
        if let Some(j) = l.desired.jobs.values().next() {
            leaked.push(format!("{:?} -> {j:?}", text.lines().last().unwrap()));
        }
    }
    assert!(
        leaked.is_empty(),
        "jobs with errors left in desired:\n{}",
        leaked.join("\n")
    );
}

#[test]
fn toml_syntax_error_is_located() {
    let l = load_job("timeout = \n");
    assert_eq!(l.errors(), 1, "{}", dump(&l));
    let d = &l.diagnostics[0];
    assert_eq!(
        (d.file.as_str(), d.position.map(|p| p.line)),
        (JOB, Some(3))
    );
    assert!(d.message.starts_with("invalid TOML"), "{}", render(d));
    assert!(d.hint.as_deref().unwrap().contains("toml.io"));
}

#[test]
fn columns_count_characters_and_crlf_is_handled() {
    let l = load_job("env = { \"Ä\" = \"x\" }\n");
    expect(
        &l,
        &[(
            E,
            JOB,
            3,
            15,
            "`env.Ä` is not a valid environment variable name",
            "",
        )],
    );
    let l =
        load_text("command = [\"/bin/true\"]\r\ntimeout = \"5m\"\r\nschedule = \"61 * * * *\"\r\n");
    expect(&l, &[(E, JOB, 3, 13, "61 is out of range", "")]);
    assert_eq!(
        l.diagnostics[0].snippet.as_ref().unwrap().text,
        "schedule = \"61 * * * *\""
    );
}

#[test]
fn diagnostics_carry_the_source_line_as_snippet() {
    let l = load_text("command = [\"/bin/true\"]\nschedule = \"61 * * * *\"\n");
    let s = l.diagnostics[0].snippet.clone().unwrap();
    assert_eq!(
        (s.text.as_str(), s.column, s.width),
        ("schedule = \"61 * * * *\"", 13, 2)
    );
}

// --------------------------------------------------------------- warnings

#[test]
fn allow_without_timeout_warns() {
    let l = load_job("concurrency = \"allow\"\ntimeout = \"none\"\n");
    expect(
        &l,
        &[(
            W,
            JOB,
            3,
            15,
            "concurrency = \"allow\" with no timeout",
            "set a timeout",
        )],
    );
    assert!(l.is_valid());
    assert_eq!(l.desired.jobs[&id("team/job")].timeout, None);
}

#[test]
fn fixed_time_in_dst_gap_warns() {
    let l = load_text(
        "schedule = \"30 2 * * *\"\ntimezone = \"America/New_York\"\ncommand = [\"/bin/true\"]\n",
    );
    expect(
        &l,
        &[(
            W,
            JOB,
            1,
            12,
            "schedule \"30 2 * * *\" falls in the DST gap on 2026-03-08 in America/New_York (02:00–03:00 does not exist); it runs once at the end of the gap (dst.gap = \"shift\")",
            "set [dst] gap explicitly to silence this",
        )],
    );
    assert!(l.is_valid());
}

#[test]
fn explicit_dst_gap_silences_the_gap_warning() {
    for gap in ["shift", "skip"] {
        let l = load_text(&format!(
            "schedule = \"30 2 * * *\"\ntimezone = \"America/New_York\"\ncommand = [\"/bin/true\"]\n[dst]\ngap = \"{gap}\"\n"
        ));
        expect(&l, &[]);
        assert_eq!(l.desired.jobs.len(), 1);
    }
}

#[test]
fn fixed_time_in_dst_fold_warns() {
    let l = load_text(
        "schedule = \"30 1 * * *\"\ntimezone = \"America/New_York\"\ncommand = [\"/bin/true\"]\n",
    );
    expect(
        &l,
        &[(
            W,
            JOB,
            1,
            12,
            "falls in the repeated hour on 2026-11-01 in America/New_York (01:00–02:00 happens twice); it runs at the first occurrence only",
            "set [dst] fold explicitly",
        )],
    );
    // An explicit gap policy does not acknowledge the fold.
    let l = load_text(
        "schedule = \"30 1 * * *\"\ntimezone = \"America/New_York\"\ncommand = [\"/bin/true\"]\n[dst]\ngap = \"skip\"\n",
    );
    expect(&l, &[(W, JOB, 1, 12, "falls in the repeated hour", "")]);
    let l = load_text(
        "schedule = \"30 1 * * *\"\ntimezone = \"America/New_York\"\ncommand = [\"/bin/true\"]\n[dst]\nfold = \"both\"\n",
    );
    expect(&l, &[]);
}

#[test]
fn jobs_outside_dst_changes_do_not_warn() {
    for (sched, tz) in [
        ("30 3 * * *", "America/New_York"),
        ("30 2 * * *", "UTC"),
        ("*/5 * * * *", "America/New_York"),
        ("30 2 * * *", "Asia/Tokyo"),
    ] {
        let l = load_text(&format!(
            "schedule = \"{sched}\"\ntimezone = \"{tz}\"\ncommand = [\"/bin/true\"]\n"
        ));
        expect(&l, &[]);
    }
}

#[test]
fn sub_second_every_warns() {
    let l = load_text("schedule = \"@every 500ms\"\ncommand = [\"/bin/true\"]\n");
    expect(
        &l,
        &[(
            W,
            JOB,
            1,
            12,
            "`@every 500ms` fires more than once a second",
            "consider a long-running service",
        )],
    );
    assert!(l.is_valid());
}

#[test]
fn jitter_not_shorter_than_every_period_warns() {
    let l = load_text("schedule = \"@every 1m\"\ncommand = [\"/bin/true\"]\njitter = \"1m\"\n");
    expect(
        &l,
        &[(
            W,
            JOB,
            1,
            12,
            "jitter (1m) is not shorter than the period (1m)",
            "keep jitter well below the period",
        )],
    );
}

#[test]
fn max_instances_with_forbid_warns_in_own_file() {
    let l = load_job("max_instances = 3\n");
    expect(
        &l,
        &[(
            W,
            JOB,
            3,
            17,
            "`max_instances` has no effect with concurrency = \"forbid\"",
            "it applies to concurrency = \"allow\"",
        )],
    );
    assert!(l.is_valid());
}

#[test]
fn max_instances_inherited_from_defaults_does_not_warn() {
    let l = load_files(&[
        (
            "team/_defaults.toml",
            "max_instances = 3\nqueue_depth = 4\nmax_catch_up = 5\n",
        ),
        (JOB, BASE),
    ]);
    expect(&l, &[]);
    let l = load_files(&[
        (
            "team/_defaults.toml",
            "concurrency = \"allow\"\nmax_instances = 3\n",
        ),
        (JOB, &format!("{BASE}concurrency = \"replace\"\n")),
    ]);
    expect(&l, &[]);
}

#[test]
fn queue_depth_and_max_catch_up_without_their_policy_warn() {
    let l = load_job("queue_depth = 2\nmax_catch_up = 3\n");
    expect(
        &l,
        &[
            (
                W,
                JOB,
                3,
                15,
                "`queue_depth` has no effect with concurrency = \"forbid\"",
                "it applies to concurrency = \"queue\"",
            ),
            (
                W,
                JOB,
                4,
                16,
                "`max_catch_up` has no effect with catch_up = \"none\"",
                "it applies to catch_up = \"all\"",
            ),
        ],
    );
}

#[test]
fn tls_verify_false_warns() {
    let l = load_text(&format!("{HTTP_BASE}tls_verify = false\n"));
    expect(
        &l,
        &[(
            W,
            JOB,
            4,
            14,
            "`http.tls_verify = false` accepts any certificate",
            "prefer adding the CA",
        )],
    );
    assert!(l.is_valid());
    assert!(!http(&l.desired.jobs[&id("team/job")]).tls_verify);
}

#[test]
fn tree_with_only_warnings_is_valid() {
    let l = load_files(&[
        (
            "a.toml",
            "schedule = \"@every 500ms\"\ncommand = [\"/bin/true\"]\n",
        ),
        ("b.toml", &format!("{BASE}max_instances = 3\n")),
        ("c.toml", &format!("{HTTP_BASE}tls_verify = false\n")),
    ]);
    assert!(l.is_valid(), "{}", dump(&l));
    assert_eq!((l.errors(), l.warnings()), (0, 3));
    assert_eq!(l.desired.jobs.len(), 3);
}

// ------------------------------------------------------------- cascading

#[test]
fn defaults_cascade_deeper_overrides_shallower_and_job_overrides_all() {
    let l = load_files(&[
        (
            "_defaults.toml",
            "timezone = \"Europe/Berlin\"\ntimeout = \"10m\"\nretries = 1\nenv = { A = \"root\", B = \"root\" }\nlabels = { team = \"root\", tier = \"1\" }\n",
        ),
        (
            "billing/_defaults.toml",
            "timeout = \"20m\"\nenv = { B = \"billing\", C = \"billing\" }\nlabels = { team = \"billing\" }\n",
        ),
        (
            "billing/eu/_defaults.toml",
            "kill_grace = \"1m\"\nenv = { C = \"eu\" }\n",
        ),
        (
            "billing/sweep.toml",
            &format!("{BASE}retries = 2\nenv = {{ C = \"job\", D = \"job\" }}\n"),
        ),
        (
            "billing/eu/late.toml",
            &format!("{BASE}timeout = \"5m\"\nlabels = {{ tier = \"2\" }}\n"),
        ),
        ("ops/x.toml", BASE),
    ]);
    assert!(l.diagnostics.is_empty(), "{}", dump(&l));
    let jobs = &l.desired.jobs;
    let sweep = &jobs[&id("billing/sweep")];
    assert_eq!(sweep.schedule.tz, Tz::Europe__Berlin);
    assert_eq!(sweep.timeout, Some(secs(1200)));
    assert_eq!(sweep.retry.retries, 2);
    assert_eq!(sweep.kill_grace, secs(30));
    assert_eq!(
        sweep.env,
        map(&[("A", "root"), ("B", "billing"), ("C", "job"), ("D", "job")])
    );
    assert_eq!(sweep.labels, map(&[("team", "billing"), ("tier", "1")]));
    let late = &jobs[&id("billing/eu/late")];
    assert_eq!(late.timeout, Some(secs(300)));
    assert_eq!(late.kill_grace, secs(60));
    assert_eq!(late.retry.retries, 1);
    assert_eq!(
        late.env,
        map(&[("A", "root"), ("B", "billing"), ("C", "eu")])
    );
    assert_eq!(late.labels, map(&[("team", "billing"), ("tier", "2")]));
    let x = &jobs[&id("ops/x")];
    assert_eq!(x.timeout, Some(secs(600)));
    assert_eq!(x.env, map(&[("A", "root"), ("B", "root")]));
    assert_eq!(x.labels, map(&[("team", "root"), ("tier", "1")]));
}

#[test]
fn defaults_dst_table_merges_with_the_job_dst_table() {
    let l = load_files(&[
        (
            "_defaults.toml",
            "timezone = \"America/New_York\"\n[dst]\ngap = \"skip\"\n",
        ),
        (JOB, &format!("{BASE}[dst]\nfold = \"last\"\n")),
    ]);
    let s = clean_spec(&l, "team/job");
    assert_eq!(s.schedule.tz, Tz::America__New_York);
    assert_eq!(
        s.schedule.dst,
        DstPolicy {
            gap: GapPolicy::Skip,
            fold: FoldPolicy::Last
        }
    );
}

#[test]
fn error_in_defaults_is_reported_once_at_the_defaults_line() {
    let l = load_files(&[
        (
            "_defaults.toml",
            "retries = 1\ntimeout = \"soon\"\ntimout = \"5m\"\nmax_output = 1.5\n",
        ),
        ("a.toml", BASE),
        ("b/c.toml", BASE),
        ("b/d/e.toml", BASE),
    ]);
    expect(
        &l,
        &[
            (
                E,
                "_defaults.toml",
                2,
                11,
                "`timeout`: invalid duration `soon`",
                "durations look like",
            ),
            (
                E,
                "_defaults.toml",
                3,
                1,
                "unknown field \"timout\" in a job",
                "did you mean \"timeout\"?",
            ),
            (
                E,
                "_defaults.toml",
                4,
                14,
                "`max_output` must be a size string or an integer, found a float",
                "for example",
            ),
        ],
    );
    assert!(
        l.desired.jobs.is_empty(),
        "jobs inheriting a bad value must not validate"
    );
}

#[test]
fn job_value_replaces_a_bad_inherited_value_but_defaults_error_stays() {
    let l = load_files(&[
        ("_defaults.toml", "timeout = \"soon\"\n"),
        ("a.toml", &format!("{BASE}timeout = \"5m\"\n")),
    ]);
    expect(
        &l,
        &[(
            E,
            "_defaults.toml",
            1,
            11,
            "`timeout`: invalid duration `soon`",
            "",
        )],
    );
    assert_eq!(l.desired.jobs[&id("a")].timeout, Some(secs(300)));
}

#[test]
fn warning_from_inherited_values_is_reported_once_at_the_defaults_line() {
    let l = load_files(&[
        (
            "_defaults.toml",
            "concurrency = \"allow\"\ntimeout = \"none\"\n",
        ),
        ("a.toml", BASE),
        ("b/c.toml", BASE),
    ]);
    expect(
        &l,
        &[(
            W,
            "_defaults.toml",
            1,
            15,
            "concurrency = \"allow\" with no timeout",
            "set a timeout",
        )],
    );
    assert_eq!(l.desired.jobs.len(), 2);
}

#[test]
fn job_only_fields_in_defaults_are_errors_and_do_not_leak() {
    let l = load_files(&[
        (
            "_defaults.toml",
            "description = \"shared\"\ncommand = [\"/bin/x\"]\nshell = \"echo\"\n[http]\nurl = \"https://example.com\"\n",
        ),
        ("a.toml", BASE),
        ("b.toml", "schedule = \"@daily\"\n"),
    ]);
    let hint = "set this in each job file";
    expect(
        &l,
        &[
            (
                E,
                "_defaults.toml",
                1,
                15,
                "`description` cannot be set in _defaults.toml",
                hint,
            ),
            (
                E,
                "_defaults.toml",
                2,
                11,
                "`command` cannot be set in _defaults.toml",
                hint,
            ),
            (
                E,
                "_defaults.toml",
                3,
                9,
                "`shell` cannot be set in _defaults.toml",
                hint,
            ),
            (
                E,
                "_defaults.toml",
                4,
                2,
                "`http` cannot be set in _defaults.toml",
                hint,
            ),
            (E, "b.toml", 1, 1, "job has nothing to run", ""),
        ],
    );
    let a = &l.desired.jobs[&id("a")];
    assert_eq!(a.description, None);
    assert_eq!(
        a.executor,
        Executor::Exec {
            argv: Argv::from(vec!["/bin/true".into()])
        }
    );
}

#[test]
fn defaults_with_a_syntax_error_are_reported_once() {
    let l = load_files(&[
        ("_defaults.toml", "timeout = \n"),
        ("a.toml", BASE),
        ("b.toml", BASE),
    ]);
    assert_eq!(l.errors(), 1, "{}", dump(&l));
    assert_eq!(l.diagnostics[0].file, "_defaults.toml");
}

// ------------------------------------------------------ ids, files, problems

#[test]
fn job_ids_come_from_paths() {
    let l = load_files(&[
        ("billing/invoice-sweep.toml", BASE),
        ("top.toml", BASE),
        ("a/b/c_d.e-1.toml", BASE),
    ]);
    assert!(l.diagnostics.is_empty(), "{}", dump(&l));
    let ids: Vec<&str> = l.desired.jobs.keys().map(JobId::as_str).collect();
    assert_eq!(ids, ["a/b/c_d.e-1", "billing/invoice-sweep", "top"]);
    assert_eq!(
        l.desired.jobs[&id("billing/invoice-sweep")].id.as_str(),
        "billing/invoice-sweep"
    );
    assert_eq!(l.desired.revision, "test-rev");
}

#[test]
fn invalid_job_ids_are_errors_naming_the_file() {
    let l = load_files(&[
        ("Billing/Sweep.toml", BASE),
        ("team/my job.toml", BASE),
        ("ok.toml", BASE),
    ]);
    let hint = "a job's id is its path; rename the file or folder";
    expect(
        &l,
        &[
            (
                E,
                "Billing/Sweep.toml",
                0,
                0,
                "invalid job id: job id `Billing/Sweep` contains 'B'",
                hint,
            ),
            (
                E,
                "team/my job.toml",
                0,
                0,
                "invalid job id: job id `team/my job` contains ' '",
                hint,
            ),
        ],
    );
    assert_eq!(
        l.desired.jobs.keys().map(JobId::as_str).collect::<Vec<_>>(),
        ["ok"]
    );
}

#[test]
fn invalid_id_file_still_gets_its_content_checked() {
    let l = load_files(&[("Bad.toml", &format!("{BASE}timeout = 5\n"))]);
    expect(
        &l,
        &[
            (E, "Bad.toml", 0, 0, "invalid job id", ""),
            (E, "Bad.toml", 3, 11, "`timeout` must be a string", ""),
        ],
    );
}

/// Library bug: `role()` strips `.toml` with `trim_end_matches`, which
/// removes it repeatedly, so `a.toml.toml` gets id `a` and silently replaces
/// the job from `a.toml`.
#[test]
fn only_one_toml_suffix_is_stripped_from_the_id() {
    let l = load_files(&[
        ("a.toml", BASE),
        ("a.toml.toml", &format!("{BASE}retries = 5\n")),
    ]);
    assert!(l.is_valid(), "{}", dump(&l));
    let ids: Vec<&str> = l.desired.jobs.keys().map(JobId::as_str).collect();
    assert_eq!(ids, ["a", "a.toml"], "two job files must give two jobs");
}

#[test]
fn non_toml_files_are_ignored() {
    let l = load_files(&[
        ("README.md", "not = [toml"),
        ("team/job.yaml", "schedule: nope"),
        ("team/notes.txt", "\u{0}\u{1}"),
        (JOB, BASE),
    ]);
    assert!(l.diagnostics.is_empty(), "{}", dump(&l));
    assert_eq!((l.files, l.job_files, l.desired.jobs.len()), (1, 1, 1));
}

#[test]
fn file_counts_include_defaults_and_settings() {
    let l = load_files(&[
        ("driftcron.toml", ""),
        ("_defaults.toml", ""),
        ("a.toml", BASE),
        ("b.toml", "x = "),
    ]);
    assert_eq!((l.files, l.job_files), (4, 2));
}

#[test]
fn snapshot_problems_and_bad_utf8_are_errors() {
    let mut snap = snapshot(&[(JOB, BASE)]);
    snap.files.push(SourceFile {
        path: "team/z.toml".into(),
        bytes: b"schedule = \"\xff\"\n".to_vec(),
    });
    snap.problems.push(FileProblem {
        path: "team/huge.toml".into(),
        message: "file is too large".into(),
        hint: Some("split it".into()),
    });
    let l = load(
        &snap,
        &LoadOptions {
            now: now(),
            max_jobs: None,
        },
    );
    expect(
        &l,
        &[
            (E, "team/huge.toml", 0, 0, "file is too large", "split it"),
            (
                E,
                "team/z.toml",
                1,
                13,
                "file is not valid UTF-8 (bad byte at offset 12)",
                "save the file as UTF-8",
            ),
        ],
    );
    assert_eq!(l.desired.jobs.len(), 1);
}

// -------------------------------------------------------------- settings

#[test]
fn settings_are_read() {
    let l = load_files(&[
        (
            "driftcron.toml",
            "[scheduler]\nmax_running = 8\nmax_queued = 0\n\n[limits]\nmax_jobs = 5\n",
        ),
        (JOB, BASE),
    ]);
    assert!(l.diagnostics.is_empty(), "{}", dump(&l));
    let s = l.desired.settings;
    assert_eq!(
        (
            s.scheduler.max_running,
            s.scheduler.max_queued,
            s.limits.max_jobs
        ),
        (8, 0, 5)
    );
}

#[test]
fn settings_defaults() {
    let s = load_files(&[(JOB, BASE)]).desired.settings;
    assert_eq!(
        (
            s.scheduler.max_running,
            s.scheduler.max_queued,
            s.limits.max_jobs
        ),
        (64, 1024, 10_000)
    );
}

#[test]
fn settings_errors() {
    let l = load_files(&[(
        "driftcron.toml",
        "[schedular]\nmax_running = 8\n\n[scheduler]\nmax_running = 0\nmax_queued = \"many\"\nmax_runing = 3\n\n[limits]\nmax_jobs = 0\n",
    )]);
    expect(
        &l,
        &[
            (
                E,
                "driftcron.toml",
                1,
                2,
                "unknown field \"schedular\" in driftcron.toml",
                "did you mean \"scheduler\"?",
            ),
            (
                E,
                "driftcron.toml",
                5,
                15,
                "`max_running` = 0 is out of range (1 to 100000)",
                "",
            ),
            (
                E,
                "driftcron.toml",
                6,
                14,
                "`max_queued` must be an integer, found a string",
                "for example: max_queued = 1024",
            ),
            (
                E,
                "driftcron.toml",
                7,
                1,
                "unknown field \"max_runing\" in [scheduler]",
                "did you mean \"max_running\"?",
            ),
            (
                E,
                "driftcron.toml",
                10,
                12,
                "`max_jobs` = 0 is out of range (1 to 1000000)",
                "",
            ),
        ],
    );
}

#[test]
fn exceeding_max_jobs_is_one_clear_error() {
    let l = load_files(&[
        ("driftcron.toml", "[limits]\nmax_jobs = 2\n"),
        ("a.toml", BASE),
        ("b.toml", BASE),
        ("c/d.toml", "timeout = 5\n"),
    ]);
    expect(
        &l,
        &[(
            E,
            "",
            0,
            0,
            "3 job files exceed the limit of 2",
            "raise [limits] max_jobs in driftcron.toml",
        )],
    );
    assert!(l.desired.jobs.is_empty());
    assert_eq!(l.job_files, 3);
}

#[test]
fn load_options_max_jobs_overrides_settings() {
    let files = [
        ("driftcron.toml", "[limits]\nmax_jobs = 2\n"),
        ("a.toml", BASE),
        ("b.toml", BASE),
        ("c.toml", BASE),
    ];
    let l = load_with(&files, Some(3));
    assert!(l.diagnostics.is_empty(), "{}", dump(&l));
    assert_eq!(
        (l.desired.jobs.len(), l.desired.settings.limits.max_jobs),
        (3, 3)
    );
    let l = load_with(&files[1..], Some(1));
    expect(
        &l,
        &[(E, "", 0, 0, "3 job files exceed the limit of 1", "")],
    );
}

// --------------------------------------------------------------- one pass

#[test]
fn all_problems_of_all_files_in_one_pass_sorted() {
    let l = load_files(&[
        ("a.toml", &format!("{BASE}retries = -1\ntimeout = 5\n")),
        (
            "b/c.toml",
            &format!("{BASE}concurrency = \"alow\"\nworkdir = \"rel\"\n"),
        ),
        (
            "b/d.toml",
            &format!("{BASE}timout = \"5m\"\n[dst]\ngap = \"skp\"\n"),
        ),
    ]);
    expect(
        &l,
        &[
            (E, "a.toml", 3, 11, "`retries` = -1 is out of range", ""),
            (E, "a.toml", 4, 11, "`timeout` must be a string", ""),
            (
                E,
                "b/c.toml",
                3,
                15,
                "invalid `concurrency` value \"alow\"",
                "did you mean \"allow\"?",
            ),
            (
                E,
                "b/c.toml",
                4,
                11,
                "`workdir` \"rel\" is not an absolute path",
                "",
            ),
            (
                E,
                "b/d.toml",
                3,
                1,
                "unknown field \"timout\"",
                "did you mean \"timeout\"?",
            ),
            (
                E,
                "b/d.toml",
                5,
                7,
                "invalid `dst.gap` value \"skp\"",
                "did you mean \"skip\"?",
            ),
        ],
    );
    assert_eq!((l.errors(), l.warnings()), (6, 0));
    assert!(l.desired.jobs.is_empty());
}

#[test]
fn several_errors_in_one_file_are_all_reported() {
    let l = load_text(
        "shedule = \"0 * * * *\"\ncommand = \"x\"\ntimeout = \"soon\"\nretries = 500\n[dst]\ngap = 1\n",
    );
    expect(
        &l,
        &[
            (E, JOB, 1, 1, "job has no `schedule`", ""),
            (
                E,
                JOB,
                1,
                1,
                "unknown field \"shedule\"",
                "did you mean \"schedule\"?",
            ),
            (E, JOB, 2, 11, "`command` must be an array of strings", ""),
            (E, JOB, 3, 11, "`timeout`: invalid duration", ""),
            (E, JOB, 4, 11, "`retries` = 500 is out of range", ""),
            (E, JOB, 6, 7, "`gap` must be a string", ""),
        ],
    );
}

/// The load cache gives exactly what a fresh load gives, through a series of
/// edits: job files, defaults files, errors appearing and disappearing.
#[test]
fn cached_loads_equal_fresh_loads_through_edits() {
    use driftcron::spec::load::{LoadCache, load_cached};
    let mut files: Vec<(String, String)> = vec![
        (
            "team/_defaults.toml".into(),
            "timezone = \"Europe/Berlin\"\n".into(),
        ),
        (
            "team/a.toml".into(),
            "schedule = \"30 2 * * *\"\ncommand = [\"true\"]\n".into(),
        ),
        (
            "team/b.toml".into(),
            "schedule = \"@daily\"\ncommand = [\"true\"]\n".into(),
        ),
        (
            "c.toml".into(),
            "schedule = \"61 * * * *\"\ncommand = [\"true\"]\n".into(),
        ),
        // Jobs of a folder share one cache key: a root default reaches a
        // job two folders down.
        ("_defaults.toml".into(), "kill_grace = \"20s\"\n".into()),
        (
            "team/sub/d.toml".into(),
            "schedule = \"@daily\"\ncommand = [\"true\"]\n".into(),
        ),
    ];
    let edits: Vec<(usize, &str)> = vec![
        (4, "kill_grace = \"30s\"\n"),
        (1, "schedule = \"0 3 * * *\"\ncommand = [\"true\"]\n"),
        (0, "timezone = \"America/New_York\"\n"),
        (3, "schedule = \"@hourly\"\ncommand = [\"true\"]\n"),
        (
            2,
            "schedule = \"@daily\"\ntimout = \"5m\"\ncommand = [\"true\"]\n",
        ),
        (0, "timezone = \"Mars/Olympus\"\n"),
        (0, "timezone = \"UTC\"\n"),
    ];
    let mut cache = LoadCache::default();
    let check = |files: &[(String, String)], cache: &mut LoadCache| {
        let snap = driftcron::snapshot::Snapshot {
            revision: "r".into(),
            files: files
                .iter()
                .map(|(p, t)| driftcron::snapshot::SourceFile {
                    path: p.clone(),
                    bytes: t.clone().into_bytes(),
                })
                .collect(),
            problems: vec![],
        };
        let opts = LoadOptions {
            now: now(),
            max_jobs: None,
        };
        let fresh = load(&snap, &opts);
        let cached = load_cached(&snap, &opts, cache);
        assert_eq!(cached.desired, fresh.desired);
        assert_eq!(cached.diagnostics, fresh.diagnostics);
    };
    check(&files, &mut cache);
    check(&files, &mut cache);
    for (i, text) in edits {
        files[i].1 = text.to_string();
        check(&files, &mut cache);
    }
    files.remove(2);
    check(&files, &mut cache);
    assert_eq!(cache.len(), 3, "entries of removed files are dropped");
}
