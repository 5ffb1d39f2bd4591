//! Malformed input must never panic, hang or crash the loader, and every bad
//! file must get its own clear error naming the file (with line:column when
//! the problem has a place).
//!
//! - a committed corpus of broken job files (`tests/corpus/malformed/`),
//!   loaded in-process one by one and all together;
//! - generated inputs: deep nesting, a megabyte of keys, every truncation of
//!   a valid job, a few thousand seeded byte mutations, and fuzzed cron /
//!   schedule expressions whose next fire time is checked in UTC and
//!   America/New_York;
//! - folder-level problems through `read_folder` (size cap, symlinks, non-UTF-8,
//!   FIFOs, the job-count limit);
//! - the real binary's `validate` on the corpus.
//!
//! Everything random is seeded (a tiny xorshift generator), so a failure
//! reproduces exactly; failures print the offending bytes.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use driftcron::snapshot::{Snapshot, SourceFile};
use driftcron::source::read_folder;
use driftcron::spec::cron::CronExpr;
use driftcron::spec::load::MAX_FILE_SIZE;
use driftcron::spec::schedule::{DstPolicy, FoldPolicy, GapPolicy, Schedule, ScheduleExpr};
use driftcron::spec::{Diagnostic, LoadOptions, Loaded, load};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/malformed");
const BIN: &str = env!("CARGO_BIN_EXE_driftcron");

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn now() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn opts(max_jobs: Option<usize>) -> LoadOptions {
    LoadOptions {
        now: now(),
        max_jobs,
    }
}

fn snapshot(files: &[(&str, &[u8])]) -> Snapshot {
    let mut files: Vec<SourceFile> = files
        .iter()
        .map(|(path, bytes)| SourceFile {
            path: (*path).to_string(),
            bytes: bytes.to_vec(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Snapshot {
        revision: "test".into(),
        files,
        problems: vec![],
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Loads without letting a panic escape: a panic becomes `Err(message)`.
fn try_load(s: &Snapshot, o: &LoadOptions) -> Result<Loaded, String> {
    panic::catch_unwind(AssertUnwindSafe(|| load(s, o))).map_err(|p| panic_message(&*p))
}

/// Bytes as a Rust-ish literal, cut to a readable length, for reproducers.
fn show(bytes: &[u8]) -> String {
    let shown: String = bytes.escape_ascii().to_string();
    if shown.len() > 400 {
        format!("b\"{}...\" ({} bytes)", &shown[..400], bytes.len())
    } else {
        format!("b\"{shown}\"")
    }
}

fn line_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Checks what must hold for every diagnostic of a load of `files`: it names
/// one of the files (or the tree, `""`), its position lies inside the file,
/// and its snippet is sane. Returns the violations.
fn diagnostic_problems(loaded: &Loaded, files: &[(&str, &[u8])]) -> Vec<String> {
    let mut out = Vec::new();
    for d in &loaded.diagnostics {
        let Some((_, bytes)) = files.iter().find(|(p, _)| *p == d.file) else {
            if !d.file.is_empty() {
                out.push(format!("diagnostic names an unknown file: {d:?}"));
            }
            continue;
        };
        if let Some(p) = d.position
            && (p.line == 0 || p.column == 0 || p.line > line_count(bytes))
        {
            out.push(format!("position outside the file: {d:?}"));
        }
        if let Some(s) = &d.snippet {
            if s.column == 0 || s.width == 0 || s.text.chars().count() > 160 {
                out.push(format!("bad snippet: {d:?}"));
            }
            if d.position.is_none() {
                out.push(format!("snippet without a position: {d:?}"));
            }
        }
        if d.message.trim().is_empty() {
            out.push(format!("empty message: {d:?}"));
        }
    }
    out
}

fn errors_for<'a>(loaded: &'a Loaded, path: &str) -> Vec<&'a Diagnostic> {
    loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && d.file == path)
        .collect()
}

/// xorshift64: tiny, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix the seed so that small seeds do not start in a weak state.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            (name, fs::read(e.path()).unwrap())
        })
        .filter(|(name, _)| name.ends_with(".toml"))
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// 1. The corpus
// ---------------------------------------------------------------------------

/// What each corpus file must be told: a piece of the error message and
/// where it points (line, and column when the column is unambiguous).
/// Columns count characters, as `diag::Position` documents.
const EXPECTED: &[(&str, &str, usize, Option<usize>)] = &[
    (
        "array-of-tables-http.toml",
        "`http` must be a table, found an array",
        3,
        Some(1),
    ),
    (
        "array-of-tables-schedule.toml",
        "`schedule` must be a string, found an array",
        2,
        Some(1),
    ),
    (
        "bom-then-bad-cron.toml",
        "25 is out of range for the hour field",
        2,
        Some(16),
    ),
    (
        "crlf-bad-duration.toml",
        "unknown time unit \"fortnights\"",
        3,
        Some(11),
    ),
    ("crlf-long-unterminated.toml", "invalid TOML", 3, None),
    ("cron-2000-chars.toml", "the limit is 1024", 1, Some(13)),
    (
        "cron-huge-range.toml",
        "99999 is out of range for the minute field",
        1,
        Some(15),
    ),
    (
        "cron-long-list.toml",
        "60 is out of range for the minute field",
        1,
        Some(1011),
    ),
    ("cron-never-fires.toml", "can never fire", 1, Some(12)),
    (
        "cron-step-zero.toml",
        "step 0 in the minute field",
        1,
        Some(15),
    ),
    ("dotted-then-table.toml", "invalid TOML", 4, None),
    (
        "duplicate-key.toml",
        "invalid TOML: duplicate key",
        3,
        Some(1),
    ),
    ("emoji-bare-key.toml", "invalid TOML", 3, Some(1)),
    ("emoji-key.toml", "unknown field \"\u{23f0}\"", 3, Some(1)),
    ("empty.toml", "job has no `schedule`", 1, Some(1)),
    (
        "huge-integers.toml",
        "`retries` is out of range",
        3,
        Some(11),
    ),
    ("invalid-escape.toml", "invalid TOML", 2, Some(13)),
    ("missing-value.toml", "invalid TOML", 2, Some(11)),
    (
        "mixed-array.toml",
        "`command` items must be strings, found an integer",
        2,
        Some(31),
    ),
    (
        "nested-arrays.toml",
        "invalid TOML: cannot recurse further",
        3,
        None,
    ),
    // `description = "café cr\xe8me"`: the bad byte is the 23rd character
    // of line 3 (the 24th byte: `é` is two).
    ("not-utf8.toml", "not valid UTF-8", 3, Some(23)),
    ("nul-byte.toml", "invalid TOML", 2, Some(31)),
    ("nul-escape.toml", "`shell` contains a NUL byte", 2, Some(9)),
    ("only-comments.toml", "job has no `schedule`", 1, Some(1)),
    ("table-redefined.toml", "invalid TOML", 6, None),
    ("unknown-macro.toml", "unknown macro `@reboot`", 1, Some(13)),
    ("unterminated-multiline.toml", "invalid TOML", 6, None),
    ("unterminated-string.toml", "invalid TOML", 1, Some(23)),
    (
        "wrong-types.toml",
        "`schedule` must be a string, found an integer",
        2,
        Some(12),
    ),
];

#[test]
fn corpus_is_complete_and_small() {
    let files = corpus_files();
    assert!(
        (15..=30).contains(&files.len()),
        "the corpus holds {} files",
        files.len()
    );
    let names: BTreeSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let expected: BTreeSet<&str> = EXPECTED.iter().map(|e| e.0).collect();
    assert_eq!(names, expected, "every corpus file needs an EXPECTED entry");
    for (name, bytes) in &files {
        assert!(bytes.len() < 8 * 1024, "{name} is {} bytes", bytes.len());
    }
}

#[test]
fn each_corpus_file_gets_its_own_located_error() {
    let mut failures = Vec::new();
    for (name, bytes) in corpus_files() {
        let files = [(name.as_str(), bytes.as_slice())];
        let loaded = match try_load(&snapshot(&files), &opts(None)) {
            Ok(l) => l,
            Err(msg) => {
                failures.push(format!("{name}: load panicked: {msg}"));
                continue;
            }
        };
        failures.extend(
            diagnostic_problems(&loaded, &files)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
        let errors = errors_for(&loaded, &name);
        if errors.is_empty() {
            failures.push(format!(
                "{name}: no error names the file; got {:?}",
                loaded.diagnostics
            ));
            continue;
        }
        for e in &errors {
            if e.position.is_none() {
                failures.push(format!("{name}: error without a position: {e:?}"));
            }
        }
        let Some(&(_, needle, line, column)) = EXPECTED.iter().find(|e| e.0 == name) else {
            continue;
        };
        let found = errors.iter().find(|e| e.message.contains(needle));
        match found {
            None => failures.push(format!(
                "{name}: no error contains {needle:?}; got {:?}",
                errors.iter().map(|e| &e.message).collect::<Vec<_>>()
            )),
            Some(e) => {
                let p = e
                    .position
                    .unwrap_or(driftcron::spec::diag::Position { line: 0, column: 0 });
                if p.line != line || column.is_some_and(|c| c != p.column) {
                    failures.push(format!(
                        "{name}: {needle:?} reported at {}:{}, expected {line}:{}",
                        p.line,
                        p.column,
                        column.map_or("*".to_string(), |c| c.to_string())
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// All corpus files in one snapshot: each still gets its own errors, and
/// nothing bleeds from one file into another.
#[test]
fn corpus_loaded_together_reports_every_file() {
    let owned = corpus_files();
    let files: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let loaded = try_load(&snapshot(&files), &opts(None))
        .unwrap_or_else(|msg| panic!("loading the whole corpus panicked: {msg}"));
    let problems = diagnostic_problems(&loaded, &files);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(!loaded.is_valid());
    assert_eq!(
        loaded.job_files,
        files.len(),
        "Loaded::job_files (\"job files found, valid or not\") should count every corpus file"
    );
    assert!(loaded.desired.jobs.is_empty(), "{:?}", loaded.desired.jobs);
    for (name, _) in &files {
        assert!(
            !errors_for(&loaded, name).is_empty(),
            "{name} has no error of its own"
        );
    }
}

/// A `schedule` that is present but of the wrong type must be reported as
/// such, not also as missing.
#[test]
fn wrongly_typed_schedule_is_not_reported_as_missing() {
    let mut failures = Vec::new();
    for name in ["wrong-types.toml", "array-of-tables-schedule.toml"] {
        let bytes = fs::read(Path::new(CORPUS).join(name)).unwrap();
        let loaded = try_load(&snapshot(&[(name, &bytes)]), &opts(None)).unwrap();
        for d in errors_for(&loaded, name) {
            if d.message.contains("has no `schedule`") {
                failures.push(format!(
                    "{name}: spurious {:?} at {:?} although the file sets `schedule`",
                    d.message, d.position
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `wrong-types.toml` sets 15 fields, each with the wrong TOML type: each
/// gets its own error, on its own line.
#[test]
fn every_wrongly_typed_field_is_reported() {
    let name = "wrong-types.toml";
    let bytes = fs::read(Path::new(CORPUS).join(name)).unwrap();
    let loaded = try_load(&snapshot(&[(name, &bytes)]), &opts(None)).unwrap();
    let lines: BTreeSet<usize> = errors_for(&loaded, name)
        .iter()
        .filter(|d| d.message.contains(" must be "))
        .filter_map(|d| d.position.map(|p| p.line))
        .collect();
    assert_eq!(lines, (1..=15).collect(), "{:#?}", loaded.diagnostics);
}

// ---------------------------------------------------------------------------
// Deep nesting
// ---------------------------------------------------------------------------

/// Nesting that the TOML parser's own depth limit rejects: 10,000 levels of
/// arrays, inline tables, both mixed, and dotted keys / table headers.
#[test]
fn ten_thousand_levels_of_nesting_are_rejected() {
    const N: usize = 10_000;
    let job = "schedule = \"30 2 * * *\"\ncommand = [\"true\"]\n";
    let dotted = vec!["a"; N].join(".");
    let cases: Vec<(&str, String)> = vec![
        (
            "arrays.toml",
            format!("{job}labels = {}{}\n", "[".repeat(N), "]".repeat(N)),
        ),
        (
            "tables.toml",
            format!("{job}labels = {}1{}\n", "{ a = ".repeat(N), " }".repeat(N)),
        ),
        (
            "mixed.toml",
            format!("{job}labels = {}1{}\n", "[{a=".repeat(N), "}]".repeat(N)),
        ),
        (
            "unclosed.toml",
            format!("{job}labels = {}\n", "[{a=".repeat(N)),
        ),
        ("dotted-key.toml", format!("{job}{dotted} = 1\n")),
        ("header.toml", format!("{job}[{dotted}]\nx = 1\n")),
        ("array-header.toml", format!("{job}[[{dotted}]]\nx = 1\n")),
    ];
    let mut failures = Vec::new();
    for (name, text) in &cases {
        let start = Instant::now();
        let files = [(*name, text.as_bytes())];
        match try_load(&snapshot(&files), &opts(None)) {
            Err(msg) => failures.push(format!("{name}: panicked: {msg}")),
            Ok(l) => {
                let errors = errors_for(&l, name);
                if errors.is_empty() || errors.iter().any(|e| e.position.is_none()) {
                    failures.push(format!("{name}: {:?}", l.diagnostics));
                }
                failures.extend(diagnostic_problems(&l, &files));
            }
        }
        if start.elapsed() > Duration::from_secs(2) {
            failures.push(format!("{name}: took {:?}", start.elapsed()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const DEEP_CHILD_ENV: &str = "DRIFTCRON_MALFORMED_DEEP_CHILD";

/// A file nesting `levels` inline tables, each opened by a 79-part dotted
/// key: the parser limits inline nesting to 80 and dotted keys to 80 parts,
/// but not their product, so this is `79 * levels` tables deep in a file of
/// about `160 * levels` bytes.
fn dotted_inline_bomb(levels: usize) -> String {
    let key = vec!["a"; 79].join(".");
    format!(
        "schedule = \"30 2 * * *\"\ncommand = [\"true\"]\nlabels = {}\"x\"{}\n",
        format!("{{ {key} = ").repeat(levels),
        " }".repeat(levels)
    )
}

/// Dotted keys inside nested inline tables build tables thousands of levels
/// deep. Loading must report an error, not overflow the stack (which aborts
/// the whole process, so the check runs in a child process).
#[test]
fn dotted_keys_in_nested_inline_tables_do_not_overflow_the_stack() {
    if std::env::var_os(DEEP_CHILD_ENV).is_some() {
        // Child: load on a thread with Rust's default 2 MiB stack.
        for levels in [10, 79] {
            let text = dotted_inline_bomb(levels);
            let name = format!("bomb-{levels}.toml");
            eprintln!(
                "child: loading {name} ({} bytes, {} levels deep)",
                text.len(),
                79 * levels
            );
            let loaded = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn({
                    let name = name.clone();
                    move || load(&snapshot(&[(name.as_str(), text.as_bytes())]), &opts(None))
                })
                .unwrap()
                .join()
                .expect("load panicked");
            assert!(!errors_for(&loaded, &name).is_empty(), "{name}: no error");
        }
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "dotted_keys_in_nested_inline_tables_do_not_overflow_the_stack",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(DEEP_CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "load() on a 2 MiB thread crashed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("child:") || l.contains("overflow") || l.contains("panick"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The same bomb through the real binary (main thread, default stack).
#[test]
fn validate_binary_survives_the_dotted_key_bomb() {
    let dir = tempfile::tempdir().unwrap();
    let text = dotted_inline_bomb(79);
    fs::write(dir.path().join("bomb.toml"), &text).unwrap();
    let out = Command::new(BIN)
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "`driftcron validate` on a {}-byte file nested {} levels deep: {}\nstderr: {}",
        text.len(),
        79 * 79,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bomb.toml"), "{stdout}");
}

/// Runs a command with stdout and stderr in files, killing it after `limit`.
fn run_with_timeout(
    cmd: &mut Command,
    dir: &Path,
    limit: Duration,
) -> Result<(i32, String), String> {
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    let mut child = cmd
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stdout = fs::read_to_string(&out_path).unwrap_or_default();
            return match status.code() {
                Some(code) => Ok((code, stdout)),
                None => Err(format!(
                    "killed by {status}: {}",
                    fs::read_to_string(&err_path).unwrap_or_default()
                )),
            };
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            return Err(format!("still running after {limit:?}; killed"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A 1 MiB job whose `[env]` has ~100,000 entries, under a `_defaults.toml`
/// that also sets `env`: cascading must stay linear in the number of keys.
/// (Without the defaults file the same job loads in well under a second.)
#[test]
fn a_megabyte_of_keys_under_defaults_loads_in_linear_time() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("schedules");
    write(root.join("team/_defaults.toml"), "env = { A = \"1\" }\n");
    let mut job = String::from("schedule = \"30 2 * * *\"\ncommand = [\"true\"]\n[env]\n");
    let mut keys = 0;
    while job.len() < MAX_FILE_SIZE - 32 {
        job.push_str(&format!("K{keys}=\"\"\n"));
        keys += 1;
    }
    write(root.join("team/job.toml"), &job);
    let result = run_with_timeout(
        Command::new(BIN).arg("validate").arg(&root),
        tmp.path(),
        Duration::from_secs(5),
    );
    match result {
        Ok((code, stdout)) => {
            assert!(code == 0 || code == 1, "exit {code}: {stdout}");
            if code == 1 {
                // A cap on env entries is a fine answer, if it names the file.
                assert!(stdout.contains("team/job.toml"), "{stdout}");
            }
        }
        Err(e) => panic!(
            "`driftcron validate` on a {}-byte job with {keys} env keys and a \
             _defaults.toml setting env: {e}",
            job.len()
        ),
    }
}

// ---------------------------------------------------------------------------
// 2. Generated mutations of a valid job
// ---------------------------------------------------------------------------

/// About 300 bytes, touching most of the grammar: comments, strings with
/// non-ASCII text, arrays, inline tables, a table header, integers.
const VALID_JOB: &str = r#"# Sweeps unpaid invoices — every weekday night.
description = "Invoice sweep (café billing)"
schedule = "30 2 * * MON-FRI"
timezone = "America/New_York"
command = ["/usr/bin/sweep", "--all"]
timeout = "15m"
retries = 2
labels = { team = "billing", tier = "1" }
env = { LOG_LEVEL = "info" }

[dst]
gap = "skip"
fold = "first"
"#;

/// Loads `bytes` as `path` (alone, or beside a valid job when it is a
/// `_defaults.toml`) and returns what went wrong, if anything.
fn check_mutant(path: &str, bytes: &[u8]) -> Option<String> {
    let other = VALID_JOB.as_bytes();
    let files: Vec<(&str, &[u8])> = if path.ends_with("_defaults.toml") {
        vec![(path, bytes), ("team/other.toml", other)]
    } else {
        vec![(path, bytes)]
    };
    let start = Instant::now();
    let loaded = match try_load(&snapshot(&files), &opts(None)) {
        Ok(l) => l,
        Err(msg) => return Some(format!("panic: {msg}")),
    };
    let mut problems = diagnostic_problems(&loaded, &files);
    if !loaded.is_valid() && errors_for(&loaded, path).is_empty() {
        problems.push(format!(
            "invalid, but no error names {path}: {:?}",
            loaded.diagnostics
        ));
    }
    if start.elapsed() > Duration::from_secs(2) {
        problems.push(format!("load took {:?}", start.elapsed()));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[test]
fn the_base_job_is_valid() {
    assert!(
        (250..400).contains(&VALID_JOB.len()),
        "{} bytes",
        VALID_JOB.len()
    );
    for text in [VALID_JOB.to_string(), VALID_JOB.replace('\n', "\r\n")] {
        let loaded = load(&snapshot(&[("job.toml", text.as_bytes())]), &opts(None));
        assert!(loaded.is_valid(), "{:#?}", loaded.diagnostics);
        assert_eq!(loaded.desired.jobs.len(), 1);
    }
}

#[test]
fn every_truncation_of_a_valid_job_loads_without_panic() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for base in [VALID_JOB.to_string(), VALID_JOB.replace('\n', "\r\n")] {
        let bytes = base.as_bytes();
        for len in 0..=bytes.len() {
            cases += 1;
            if let Some(p) = check_mutant("job.toml", &bytes[..len]) {
                failures.push(format!(
                    "prefix of {len} bytes {}: {p}",
                    show(&bytes[..len])
                ));
            }
        }
    }
    assert!(cases > 600);
    assert!(
        failures.is_empty(),
        "{} of {cases} truncations failed; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}

/// Bytes a mutation likes to insert: TOML syntax, line ends, NUL, a BOM,
/// bytes that break UTF-8.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"'",
    b"[",
    b"]",
    b"[[",
    b"{",
    b"}",
    b"=",
    b",",
    b".",
    b"#",
    b"\\",
    b"\n",
    b"\r",
    b"\r\n",
    b"\0",
    b"\t",
    b" ",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc3",
    b"\xe2\x8f\xb0",
    b"\"\"\"",
    b"'''",
    b"0",
    b"9",
    b"-",
    b"*",
    b"/",
    b"99999999999999999999",
    b"1979-05-27T07:32:00Z",
    b"inf",
    b"nan",
    b"true",
    b"schedule",
    b"@every",
    b"L",
    b"W",
    b"#",
    b"?",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.range(1, 4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            // Flip one byte to anything.
            0 if at < out.len() => out[at] = rng.next() as u8,
            // Flip one byte to an interesting ASCII byte.
            1 if at < out.len() => out[at] = rng.pick(INTERESTING)[0],
            // Insert an interesting sequence.
            2 => {
                let ins = rng.pick(INTERESTING);
                out.splice(at..at, ins.iter().copied());
            }
            // Delete a short run.
            3 => {
                let end = (at + rng.range(1, 8) as usize).min(out.len());
                out.drain(at.min(end)..end);
            }
            // Duplicate a chunk elsewhere (repeated keys and tables).
            4 if !out.is_empty() => {
                let from = rng.below(out.len());
                let end = (from + rng.range(1, 40) as usize).min(out.len());
                let chunk: Vec<u8> = out[from..end].to_vec();
                let at = at.min(out.len());
                out.splice(at..at, chunk);
            }
            // Swap two lines.
            _ => {
                let mut lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                }
                out = lines.join(&b'\n');
            }
        }
    }
    out
}

#[test]
fn random_byte_mutations_load_without_panic() {
    const CASES: usize = 5000;
    let mut rng = Rng::new(0x00d1_f7c7_0000_0001);
    let mut failures = Vec::new();
    let mut invalid = 0;
    let start = Instant::now();
    for i in 0..CASES {
        let base = if i % 2 == 0 {
            VALID_JOB.to_string()
        } else {
            VALID_JOB.replace('\n', "\r\n")
        };
        let bytes = mutate(&mut rng, base.as_bytes());
        // Every fourth mutant is a folder's defaults, to exercise cascading.
        let path = if i % 4 == 3 {
            "team/_defaults.toml"
        } else {
            "job.toml"
        };
        if let Some(p) = check_mutant(path, &bytes) {
            failures.push(format!("case {i} as {path} {}: {p}", show(&bytes)));
        }
        let files = [(path, bytes.as_slice())];
        if path == "job.toml" && !load(&snapshot(&files), &opts(None)).is_valid() {
            invalid += 1;
        }
    }
    // The mutations must actually break things most of the time.
    assert!(
        invalid > CASES / 4,
        "only {invalid} of {CASES} mutants invalid"
    );
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{CASES} mutants took {:?}",
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {CASES} mutants failed; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}

// ---------------------------------------------------------------------------
// Fuzzed cron and schedule expressions
// ---------------------------------------------------------------------------

const CRON_ALPHABET: &[u8] = b"0123456789*/,-LW#?@ABCDEFGHIJKLMNOPQRSTUVWXYZ     ";
const NAMES: &[&str] = &[
    "JAN", "feb", "Mar", "DEC", "MON", "tue", "FRI", "SUN", "SAT", "XYZ", "MONDAY", "L", "W", "LW",
];

/// Valid and invalid terms per field (index into `BOUNDS`), for noise.
const BOUNDS: [(u32, u32); 6] = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
const DOM: usize = 3;
const MONTH: usize = 4;
const DOW: usize = 5;

/// One term of a field. `clean` terms are meant to be valid for the field
/// (so that enough expressions parse and get searched); the others mix in
/// out-of-range numbers, empty parts, zero steps and misplaced letters.
fn cron_term(rng: &mut Rng, field: usize, clean: bool) -> String {
    let (lo, hi) = BOUNDS[field];
    let num = |rng: &mut Rng| -> String {
        if clean {
            return rng.range(lo, hi).to_string();
        }
        match rng.below(10) {
            0 => "99999".into(),
            1 => "4294967296".into(),
            2 => String::new(),
            3 => rng.range(0, 80).to_string(),
            _ => rng.range(lo, hi).to_string(),
        }
    };
    let step = |rng: &mut Rng| -> String {
        match rng.below(if clean { 10 } else { 12 }) {
            10 => "0".into(),
            11 => rng.range(60, 200).to_string(),
            _ => rng.range(1, 30).to_string(),
        }
    };
    let range = |rng: &mut Rng| -> String {
        let (a, b) = (num(rng), num(rng));
        match (a.parse::<u32>(), b.parse::<u32>()) {
            (Ok(x), Ok(y)) if clean && x > y => format!("{b}-{a}"),
            _ => format!("{a}-{b}"),
        }
    };
    let choice = rng.below(16);
    match (field, choice) {
        (_, 0..=2) => "*".into(),
        (_, 3..=5) => num(rng),
        (_, 6) => range(rng),
        (_, 7) => format!("*/{}", step(rng)),
        (_, 8) => format!("{}/{}", range(rng), step(rng)),
        (_, 9) => format!("{}/{}", num(rng), step(rng)),
        (DOM | DOW, 10) => "?".into(),
        (DOM, 11) => format!("{}W", num(rng)),
        (DOM, 12) => rng.pick(&["L", "LW"]).to_string(),
        (DOW, 11) => format!("{}L", num(rng).replace('7', "6")),
        (DOW, 12) => format!("{}#{}", num(rng), rng.range(1, 5)),
        (DOW, 13) => rng.pick(&["MON", "tue", "FRI", "SUN", "sat"]).to_string(),
        (MONTH, 10..=13) => rng.pick(&["JAN", "feb", "Jun", "DEC"]).to_string(),
        _ if clean => num(rng),
        _ => rng.pick(NAMES).to_string(),
    }
}

fn cron_expression(rng: &mut Rng) -> String {
    match rng.below(10) {
        // Pure noise from the cron alphabet.
        0 | 1 => (0..rng.below(40))
            .map(|_| char::from(*rng.pick(CRON_ALPHABET)))
            .collect(),
        // Macros and `@every`, good and bad.
        2 => rng
            .pick(&[
                "@yearly",
                "@DAILY",
                "@hourly",
                "@reboot",
                "@",
                "@every",
                "@every 90s",
                "@every 1h 30m",
                "@every 500ms",
                "@every 0s",
                "@every 1ns",
                "@every 366d",
                "@every 367d",
                "@every 99999999999999999999s",
                "@every -5m",
                "@everyday",
                "  @weekly  ",
                "@every\t5m",
                "@every 5 m",
                "@every 1y",
            ])
            .to_string(),
        // Structured: 5 or 6 fields (sometimes a wrong count), each a list.
        n => {
            let clean = n >= 6;
            let fields: Vec<usize> = if rng.one_in(3) {
                (0..6).collect()
            } else {
                (1..6).collect()
            };
            let mut fields: Vec<String> = fields
                .into_iter()
                .map(|f| {
                    let count = if rng.one_in(4) { rng.range(2, 4) } else { 1 };
                    (0..count)
                        .map(|_| cron_term(rng, f, clean))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            if !clean && rng.one_in(10) {
                fields.pop();
            }
            if !clean && rng.one_in(10) {
                fields.push("*".into());
            }
            let sep = if rng.one_in(10) { " \t " } else { " " };
            let mut s = fields.join(sep);
            // A little noise now and then.
            if !clean && rng.one_in(3) {
                let at = rng.below(s.len() + 1);
                s.insert(at, char::from(*rng.pick(CRON_ALPHABET)));
            }
            s
        }
    }
}

/// An instant to search from: anywhere in 1970-2100, or near a New York
/// DST change (where the gap and fold rules matter).
fn search_start(rng: &mut Rng) -> DateTime<Utc> {
    const Y1800: i64 = -5_364_662_400;
    const Y2400: i64 = 13_569_465_600;
    let base: i64 = match rng.below(6) {
        0 | 1 => i64::from(rng.range(0, 4_102_444_800)), // 1970 to 2100
        // 1800 to 2400: local mean time before 1883, no DST rules after 2100.
        2 => Y1800 + (rng.next() % (Y2400 - Y1800) as u64) as i64,
        3 | 4 => 1_772_953_200, // 2026-03-08T07:00:00Z, spring forward in New York
        _ => 1_793_512_800,     // 2026-11-01T06:00:00Z, fall back in New York
    };
    let jitter = i64::from(rng.range(0, 6 * 3600)) - 3 * 3600;
    DateTime::from_timestamp(base + jitter, 0).unwrap()
}

/// Checks a parse error's span against the text it came from.
fn span_problem(text: &str, span: &std::ops::Range<usize>) -> Option<String> {
    if span.start > span.end || span.start > text.len() || !text.is_char_boundary(span.start) {
        return Some(format!("bad span {span:?} for {text:?}"));
    }
    if !text.is_char_boundary(span.end.min(text.len())) {
        return Some(format!("span {span:?} ends inside a character of {text:?}"));
    }
    None
}

/// Parses and, when that works, searches: returns what went wrong.
fn check_expression(rng: &mut Rng, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let start = Instant::now();
    if !text.trim_start().starts_with('@') {
        match panic::catch_unwind(|| CronExpr::parse(text)) {
            Err(p) => problems.push(format!("CronExpr::parse panicked: {}", panic_message(&*p))),
            Ok(Err(e)) => problems.extend(span_problem(text, &e.span)),
            Ok(Ok(_)) => {}
        }
    }
    let expr = match panic::catch_unwind(|| ScheduleExpr::parse(text)) {
        Err(p) => {
            problems.push(format!(
                "ScheduleExpr::parse panicked: {}",
                panic_message(&*p)
            ));
            return problems;
        }
        Ok(Err(e)) => {
            problems.extend(span_problem(text, &e.span));
            if e.message.trim().is_empty() {
                problems.push("empty error message".into());
            }
            return problems;
        }
        Ok(Ok(expr)) => expr,
    };
    let dst = DstPolicy {
        gap: *rng.pick(&[GapPolicy::Shift, GapPolicy::Skip]),
        fold: *rng.pick(&[FoldPolicy::First, FoldPolicy::Last, FoldPolicy::Both]),
    };
    let t = search_start(rng);
    for tz in [Tz::UTC, Tz::America__New_York] {
        let schedule = Schedule::new(expr, tz, dst);
        let next = match panic::catch_unwind(|| schedule.next_after(t)) {
            Err(p) => {
                problems.push(format!(
                    "next_after({t}) in {tz} with {dst:?} panicked: {}",
                    panic_message(&*p)
                ));
                continue;
            }
            Ok(n) => n,
        };
        if let Some(n) = next
            && n <= t
        {
            problems.push(format!(
                "next_after({t}) in {tz} with {dst:?} = {n}, not later"
            ));
        }
        if let (ScheduleExpr::Cron(cron), Some(n)) = (expr, next) {
            if tz == Tz::UTC {
                // In UTC the answer is simply the next matching second.
                let want = cron.next_naive(t.naive_utc() + TimeDelta::seconds(1));
                if want != Some(n.naive_utc()) {
                    problems.push(format!(
                        "next_after({t}) in UTC = {n}, but the next match is {want:?}"
                    ));
                }
            } else if !cron.is_fixed_time() {
                // Real-time jobs only ever fire at matching wall-clock times.
                let local = n.with_timezone(&tz).naive_local();
                if cron.next_naive(local) != Some(local) {
                    problems.push(format!(
                        "next_after({t}) in {tz} = {n} (local {local}), which does not match"
                    ));
                }
            }
        }
        let upcoming = match panic::catch_unwind(|| schedule.upcoming(t, 4)) {
            Err(p) => {
                problems.push(format!("upcoming panicked: {}", panic_message(&*p)));
                continue;
            }
            Ok(u) => u,
        };
        if upcoming.windows(2).any(|w| w[0] >= w[1]) || upcoming.first().is_some_and(|f| *f <= t) {
            problems.push(format!(
                "upcoming({t}) in {tz} is not increasing: {upcoming:?}"
            ));
        }
    }
    if start.elapsed() > Duration::from_secs(2) {
        problems.push(format!("took {:?}", start.elapsed()));
    }
    problems
}

#[test]
fn fuzzed_cron_expressions_parse_and_search_without_panic() {
    const CASES: usize = 20_000;
    let mut rng = Rng::new(0x00c0_ffee_0000_0002);
    let mut failures = Vec::new();
    let mut parsed = 0;
    let start = Instant::now();
    for i in 0..CASES {
        let text = cron_expression(&mut rng);
        if ScheduleExpr::parse(&text).is_ok() {
            parsed += 1;
        }
        let problems = check_expression(&mut rng, &text);
        if !problems.is_empty() {
            failures.push(format!("case {i} {text:?}: {}", problems.join("; ")));
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{CASES} expressions took {:?}",
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {CASES} expressions failed; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(8)].join("\n")
    );
    assert!(
        parsed > CASES / 4,
        "only {parsed} of {CASES} expressions parsed: the generator is too wild"
    );
}

/// Hand-picked hostile expressions: each must be rejected with a span inside
/// the text, quickly, or searched without panicking.
#[test]
fn absurd_cron_expressions_are_rejected_or_searched_safely() {
    let thousands = (0..3000).map(|i| (i % 60).to_string()).collect::<Vec<_>>();
    let cases: Vec<(String, bool)> = vec![
        (format!("{} * * * *", thousands.join(",")), false),
        (format!("{} * * * *", thousands[..300].join(",")), true),
        ("1-99999 * * * *".into(), false),
        ("0-4294967295 * * * *".into(), false),
        ("*/0 * * * *".into(), false),
        ("*/4294967296 * * * *".into(), false),
        ("0/1/2 * * * *".into(), false),
        (format!("{} * * * *", "*".repeat(2000)), false),
        (format!("* * * * {}", "MON,".repeat(500)), false),
        (format!("0 0 1 1 {}", "1-5,".repeat(250)), false),
        ("59-0 * * * *".into(), false),
        ("* * * * MON#0".into(), false),
        ("* * * * MON#".into(), false),
        ("* * * * #1".into(), false),
        ("* * * * 7L".into(), true),
        ("* * * * 0#5".into(), true),
        ("0 0 0W * *".into(), false),
        ("0 0 32W * *".into(), false),
        // Parses; `load` reports it as never firing.
        ("0 0 31W 2 *".into(), true),
        ("0 0 L-3 * *".into(), false),
        ("0 0 LW 2 *".into(), true),
        ("0 0 29 2 MON".into(), true),
        ("* * */31 2 MON".into(), true),
        ("0 0 30 2 ?".into(), true),
        ("30 2 ? 3 SUN#2".into(), true),
        ("* 2 ? 3 SUN#2".into(), true),
        ("* * * * * * *".into(), false),
        ("*\u{3000}*\u{3000}*\u{3000}*\u{3000}*".into(), true),
        ("* * * * é".into(), false),
        ("* * * * MONé".into(), false),
        ("1, * * * *".into(), false),
        ("* * * * 1,".into(), false),
        (",".into(), false),
        ("".into(), false),
        ("@every 99999999999999999999s".into(), false),
        ("@every 1ns".into(), false),
        ("@every 18446744073709551615s".into(), false),
        ("@every 1ms".into(), true),
    ];
    let mut rng = Rng::new(3);
    let mut failures = Vec::new();
    for (text, should_parse) in &cases {
        let shown: String = text.chars().take(60).collect();
        let parsed = panic::catch_unwind(|| ScheduleExpr::parse(text));
        match &parsed {
            Ok(r) if r.is_ok() != *should_parse => failures.push(format!(
                "{shown:?}: expected {}, got {r:?}",
                if *should_parse {
                    "a schedule"
                } else {
                    "an error"
                }
            )),
            _ => {}
        }
        let problems = check_expression(&mut rng, text);
        if !problems.is_empty() {
            failures.push(format!("{shown:?}: {}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// 3. Folder-level problems
// ---------------------------------------------------------------------------

fn write(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) {
    let path = path.as_ref();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

const OK_JOB: &str = "schedule = \"@every 10m\"\ncommand = [\"true\"]\n";

#[test]
fn folder_problems_each_get_a_distinct_clear_error() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("schedules");
    fs::create_dir(&root).unwrap();
    // Outside the root: a perfectly valid job that must still not be read.
    write(tmp.path().join("outside.toml"), OK_JOB);

    write(root.join("ok.toml"), OK_JOB);
    write(root.join("big.toml"), vec![b'#'; MAX_FILE_SIZE + 1]);
    // Exactly at the cap: read, and reported for what it says (nothing).
    let mut at_cap = b"# padding\n".repeat(MAX_FILE_SIZE / 10);
    at_cap.resize(MAX_FILE_SIZE, b'#');
    write(root.join("at-cap.toml"), &at_cap);
    symlink(tmp.path().join("outside.toml"), root.join("leak.toml")).unwrap();
    symlink(tmp.path().join("missing.toml"), root.join("dangling.toml")).unwrap();
    symlink(root.join("loop.toml"), root.join("loop.toml")).unwrap();
    symlink(root.join("ok.toml"), root.join("alias.toml")).unwrap();
    write(
        root.join("latin1.toml"),
        b"schedule = \"@every 10m\"\ncommand = [\"caf\xe9\"]\n",
    );
    write(root.join(".hidden.toml"), b"\xff\xfe garbage [[[");
    write(root.join(".git/objects/x.toml"), b"\xff garbage");
    let bad_name = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9.toml"));
    write(&bad_name, OK_JOB);
    let deep: PathBuf = (0..20).fold(root.join("deep"), |p, i| p.join(format!("d{i}")));
    write(deep.join("job.toml"), OK_JOB);
    let fifo = Command::new("mkfifo")
        .arg(root.join("fifo.toml"))
        .status()
        .is_ok_and(|s| s.success());

    let start = Instant::now();
    let snap = read_folder(&root).unwrap();
    let loaded = try_load(&snap, &opts(None)).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );

    // (path, a piece of the message, whether it has a position)
    let mut expected: Vec<(&str, &str, bool)> = vec![
        ("big.toml", "the limit is 1048576", false),
        ("at-cap.toml", "job has no `schedule`", true),
        ("leak.toml", "symlink leaves the schedules root", false),
        ("dangling.toml", "broken symlink", false),
        ("loop.toml", "broken symlink", false),
        ("latin1.toml", "not valid UTF-8", true),
        ("caf\u{fffd}.toml", "file name is not valid UTF-8", false),
        (
            "deep/d0/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15",
            "folder nesting",
            false,
        ),
    ];
    if fifo {
        expected.push(("fifo.toml", "not a regular file", false));
    }
    let mut failures = Vec::new();
    let mut messages = BTreeSet::new();
    for (path, needle, positioned) in &expected {
        let errors = errors_for(&loaded, path);
        match errors.iter().find(|d| d.message.contains(needle)) {
            None => failures.push(format!(
                "{path}: no error containing {needle:?}; got {:?}",
                errors.iter().map(|e| &e.message).collect::<Vec<_>>()
            )),
            Some(d) => {
                if d.position.is_some() != *positioned {
                    failures.push(format!("{path}: position {:?}", d.position));
                }
                messages.insert(d.message.clone());
            }
        }
    }
    // latin1.toml: `command = ["caf\xe9`: the bad byte is on line 2, column 16.
    if let Some(d) = errors_for(&loaded, "latin1.toml").first()
        && d.position.map(|p| (p.line, p.column)) != Some((2, 16))
    {
        failures.push(format!(
            "latin1.toml: bad byte reported at {:?}",
            d.position
        ));
    }
    // Distinct problems get distinct messages (the two broken symlinks may
    // share the kind, not the text).
    assert!(messages.len() >= expected.len() - 1, "{messages:#?}");
    for quiet in [
        "ok.toml",
        "alias.toml",
        ".hidden.toml",
        ".git/objects/x.toml",
        "outside.toml",
    ] {
        if loaded.diagnostics.iter().any(|d| d.file == quiet) {
            failures.push(format!(
                "{quiet} should not be reported: {:?}",
                loaded.diagnostics
            ));
        }
    }
    assert!(loaded.desired.jobs.keys().any(|k| k.as_str() == "ok"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn more_job_files_than_max_jobs_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for i in 0..5 {
        write(root.join(format!("team/job-{i}.toml")), OK_JOB);
    }
    write(root.join("team/_defaults.toml"), "timeout = \"5m\"\n");
    let snap = read_folder(root).unwrap();

    let loaded = try_load(&snap, &opts(Some(3))).unwrap();
    let errors: Vec<&Diagnostic> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]
            .message
            .contains("5 job files exceed the limit of 3"),
        "{}",
        errors[0].message
    );
    assert!(loaded.desired.jobs.is_empty());

    // At the limit: fine. From driftcron.toml: the same error.
    assert!(try_load(&snap, &opts(Some(5))).unwrap().is_valid());
    write(root.join("driftcron.toml"), "[limits]\nmax_jobs = 4\n");
    let snap = read_folder(root).unwrap();
    let loaded = try_load(&snap, &opts(None)).unwrap();
    assert!(
        loaded
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.message.contains("5 job files exceed the limit of 4")),
        "{:#?}",
        loaded.diagnostics
    );
    // Absurd limits do not panic.
    for m in [0, 1, usize::MAX] {
        try_load(&snap, &opts(Some(m))).unwrap();
    }

    // The binary says so too.
    let out = Command::new(BIN)
        .args(["validate", "--max-jobs", "2"])
        .arg(root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("exceed the limit of 2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---------------------------------------------------------------------------
// 4. End to end
// ---------------------------------------------------------------------------

#[test]
fn validate_binary_reports_every_corpus_file() {
    let tmp = tempfile::tempdir().unwrap();
    let files = corpus_files();
    for (name, bytes) in &files {
        fs::write(tmp.path().join(name), bytes).unwrap();
    }
    let out = Command::new(BIN)
        .arg("validate")
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status {} (1 expected)\nstderr:\n{stderr}",
        out.status
    );
    let missing: Vec<&str> = files
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !stdout.contains(&format!("/{n}:")))
        .collect();
    assert!(
        missing.is_empty(),
        "stdout does not name {missing:?}:\n{stdout}"
    );
    let summary = stdout.lines().last().unwrap_or("");
    assert!(
        summary.contains(&format!("of {} job files", files.len())),
        "the summary should count all {} corpus files as job files: {summary}",
        files.len()
    );
}
