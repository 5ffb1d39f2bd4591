//! From a [`Snapshot`] of files to the desired state: job ids from paths,
//! `_defaults.toml` cascading, settings, and every diagnostic of every file
//! in one pass.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::diag::{self, Diagnostic, Severity, SourceText};
use super::doc::{self, Table};
use super::job::{JobId, JobSpec};
use super::raw::{JOB_ONLY_FIELDS, RawJob, Reporter};
use super::settings::{SETTINGS_FILE, Settings};
use super::validate::{self, Context, Mode};
use crate::snapshot::Snapshot;

/// Largest schedule file read. A job is a few hundred bytes; anything near
/// this is a mistake or an attack, and must not cost the daemon memory.
pub const MAX_FILE_SIZE: usize = 1024 * 1024;

/// The file that holds a folder's defaults.
pub const DEFAULTS_FILE: &str = "_defaults.toml";

/// What loading needs besides the files.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The instant "can never fire" and DST warnings look ahead from.
    pub now: DateTime<Utc>,
    /// Overrides `[limits] max_jobs` (from the command line).
    pub max_jobs: Option<usize>,
}

/// The jobs git asks for, and the settings they run under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub revision: String,
    /// Shared with the load cache and, once applied, the scheduler: an
    /// unchanged job costs a reference count, not a deep copy of its spec.
    pub jobs: BTreeMap<JobId, Arc<JobSpec>>,
    pub settings: Settings,
}

/// The outcome of loading: the valid jobs, and every diagnostic.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Jobs that validated. When [`Loaded::is_valid`] is false this is a
    /// partial view, for reports; it must not be applied.
    pub desired: DesiredState,
    /// Sorted by file and position, without repeats.
    pub diagnostics: Vec<Diagnostic>,
    /// Schedule files read (jobs, defaults and settings).
    pub files: usize,
    /// Job files found, valid or not.
    pub job_files: usize,
}

impl Loaded {
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

enum Role<'a> {
    Settings,
    /// Defaults for the folder (`""` for the root).
    Defaults(&'a str),
    Job(&'a str),
}

fn role(path: &str) -> Role<'_> {
    if path == SETTINGS_FILE {
        return Role::Settings;
    }
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    if name == DEFAULTS_FILE {
        Role::Defaults(dir)
    } else {
        Role::Job(path.strip_suffix(".toml").unwrap_or(path))
    }
}

/// The folders whose defaults apply to a job, root first.
fn ancestors(id: &str) -> Vec<&str> {
    let mut out = vec![""];
    out.extend(id.match_indices('/').map(|(i, _)| &id[..i]));
    out
}

/// Turns bytes into text, or says where the first bad byte is.
fn decode(path: &str, bytes: &[u8]) -> Result<String, Box<Diagnostic>> {
    if bytes.len() > MAX_FILE_SIZE {
        return Err(Box::new(
            Diagnostic::file(
                Severity::Error,
                path,
                format!(
                    "file is {} bytes; the limit is {MAX_FILE_SIZE}",
                    bytes.len()
                ),
            )
            .with_hint("a job file is a few hundred bytes; is this the right file?"),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            // The valid prefix is UTF-8 by definition; columns count
            // characters, as everywhere else.
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let col = std::str::from_utf8(&good[line_start..]).map_or(1, |l| l.chars().count() + 1);
            let mut d = Diagnostic::file(
                Severity::Error,
                path,
                format!(
                    "file is not valid UTF-8 (bad byte at offset {})",
                    e.valid_up_to()
                ),
            )
            .with_hint("save the file as UTF-8");
            d.position = Some(diag::Position { line, column: col });
            Err(Box::new(d))
        }
    }
}

/// How long a cached job result stays valid: its DST warnings and "can
/// never fire" look ahead from the load's "now".
const CACHE_TTL: TimeDelta = TimeDelta::minutes(10);

/// The work of earlier loads, reused for jobs whose file and defaults did
/// not change: a one-file change re-validates one job, not ten thousand.
/// Keyed by path; an entry also records a digest of the job's bytes and of
/// every `_defaults.toml` above it, and when it was made.
#[derive(Debug)]
pub struct LoadCache {
    jobs: HashMap<String, CachedJob>,
    /// `false` for a one-shot [`load`]: nothing would read the entries,
    /// and building them is not free. Each holds a copy of its file's
    /// text, made between one job's spec and the next, so a throwaway
    /// cache left a hole of about a file's size between every two specs
    /// when it was dropped: ~200 bytes of resident free memory per job
    /// at 100,000 jobs (glibc cannot return a page with a spec in it).
    keep: bool,
    /// The number of the latest load: entries it did not mark are files
    /// that are gone, and leave the cache.
    pass: u64,
}

#[derive(Debug)]
struct CachedJob {
    /// The job file's text, compared exactly (no hash collision can reuse
    /// a stale result).
    text: String,
    /// Digest of the `_defaults.toml` texts above the job.
    key: u64,
    at: DateTime<Utc>,
    spec: Option<Arc<JobSpec>>,
    diagnostics: Vec<Diagnostic>,
    /// The last load that found the file.
    pass: u64,
}

impl Default for LoadCache {
    fn default() -> Self {
        LoadCache {
            jobs: HashMap::new(),
            keep: true,
            pass: 0,
        }
    }
}

impl LoadCache {
    /// A cache that keeps nothing.
    fn none() -> Self {
        LoadCache {
            keep: false,
            ..LoadCache::default()
        }
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// Loads a snapshot. Never panics on input; every problem becomes a
/// diagnostic.
pub fn load(snapshot: &Snapshot, opts: &LoadOptions) -> Loaded {
    load_cached(snapshot, opts, &mut LoadCache::none())
}

/// [`load`], reusing (and refreshing) `cache`.
pub fn load_cached(snapshot: &Snapshot, opts: &LoadOptions, cache: &mut LoadCache) -> Loaded {
    let mut diags: Vec<Diagnostic> = snapshot
        .problems
        .iter()
        .map(|p| {
            Diagnostic::file(Severity::Error, &p.path, p.message.clone())
                .with_hint_opt(p.hint.clone())
        })
        .collect();

    // Settings and defaults are decoded first: every job's cache key
    // includes the defaults above it.
    let mut sources = Vec::new();
    let mut roles = Vec::new();
    for f in snapshot.files.iter().filter(|f| f.path.ends_with(".toml")) {
        let role = role(&f.path);
        if matches!(role, Role::Job(_)) {
            continue;
        }
        match decode(&f.path, &f.bytes) {
            Ok(text) => {
                sources.push(SourceText::new(f.path.clone(), text));
                roles.push(role);
            }
            Err(d) => diags.push(*d),
        }
    }
    // Each folder's defaults, as an index into `sources`.
    let defaults_at: HashMap<&str, usize> = roles
        .iter()
        .enumerate()
        .filter_map(|(i, role)| match role {
            Role::Defaults(dir) => Some((*dir, i)),
            _ => None,
        })
        .collect();
    // Jobs of one folder share the defaults above them, so their cache key
    // is computed once per folder.
    let mut keys: HashMap<&str, u64> = HashMap::new();
    cache.pass = cache.pass.wrapping_add(1);
    let pass = cache.pass;
    // Jobs: a cache hit (same bytes, same defaults, fresh) is reused as is,
    // without even decoding the file; the rest are decoded for validation.
    let mut hits: Vec<(Option<Arc<JobSpec>>, Vec<Diagnostic>)> = Vec::new();
    let mut misses: Vec<(usize, u64)> = Vec::new();
    let mut decoded_jobs = 0;
    for f in snapshot.files.iter().filter(|f| f.path.ends_with(".toml")) {
        let role = role(&f.path);
        let Role::Job(id_text) = role else { continue };
        let folder = id_text.rsplit_once('/').map_or("", |(dir, _)| dir);
        let key = *keys.entry(folder).or_insert_with(|| {
            let mut h = DefaultHasher::new();
            for dir in ancestors(id_text) {
                if let Some(&i) = defaults_at.get(dir) {
                    dir.hash(&mut h);
                    sources[i].text.hash(&mut h);
                }
            }
            h.finish()
        });
        if let Some(c) = cache.jobs.get_mut(f.path.as_str()) {
            c.pass = pass;
            if c.key == key
                && c.text.as_bytes() == f.bytes.as_slice()
                && (opts.now - c.at).abs() < CACHE_TTL
            {
                decoded_jobs += 1;
                hits.push((c.spec.clone(), c.diagnostics.clone()));
                continue;
            }
        }
        match decode(&f.path, &f.bytes) {
            Ok(text) => {
                decoded_jobs += 1;
                misses.push((sources.len(), key));
                sources.push(SourceText::new(f.path.clone(), text));
                roles.push(role);
            }
            Err(d) => diags.push(*d),
        }
    }
    // Count job files by path, whether or not they decoded: a file that is
    // not text is still a job that failed, and still counts toward max_jobs.
    let job_files = snapshot
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(snapshot.problems.iter().map(|p| p.path.as_str()))
        .filter(|p| p.ends_with(".toml") && matches!(role(p), Role::Job(_)))
        .count();
    let files = sources.len() - misses.len() + decoded_jobs;

    let mut r = Reporter::new(&sources);
    // Settings and defaults are parsed here; job files when validated.
    let mut tables: Vec<Option<Table>> = Vec::with_capacity(sources.len());
    for (i, src) in sources.iter().enumerate() {
        tables.push(match roles[i] {
            Role::Job(_) => None,
            _ => doc::parse(i, src, &mut r.diags),
        });
    }

    // Settings first: they bound the rest.
    let mut settings = Settings::default();
    for (i, role) in roles.iter().enumerate() {
        if let (Role::Settings, Some(t)) = (role, &tables[i]) {
            settings = Settings::read(t, &mut r);
        }
    }
    if let Some(m) = opts.max_jobs {
        settings.limits.max_jobs = m;
    }
    let mut desired = DesiredState {
        revision: snapshot.revision.clone(),
        jobs: BTreeMap::new(),
        settings,
    };
    if job_files > settings.limits.max_jobs {
        r.diags.push(
            Diagnostic::file(
                Severity::Error,
                "",
                format!(
                    "{job_files} job files exceed the limit of {} ({})",
                    settings.limits.max_jobs,
                    if opts.max_jobs.is_some() {
                        "--max-jobs"
                    } else {
                        "driftcron.toml [limits] max_jobs"
                    }
                ),
            )
            .with_hint("raise [limits] max_jobs in driftcron.toml if this many jobs is intended"),
        );
        let mut all = diags;
        all.append(&mut r.diags);
        diag::normalize(&mut all);
        return Loaded {
            desired,
            diagnostics: all,
            files,
            job_files,
        };
    }

    // Defaults: checked once on their own, then stripped of job-only
    // fields (already reported) before they cascade.
    let mut defaults: HashMap<&str, Table> = HashMap::new();
    for (i, role) in roles.iter().enumerate() {
        if let (Role::Defaults(dir), Some(t)) = (role, &tables[i]) {
            let raw = RawJob::read(t, &mut r);
            let ctx = Context {
                now: opts.now,
                own_file: i,
            };
            validate::build(None, &raw, Mode::Defaults, &ctx, &mut r);
            let mut cascading = t.clone();
            cascading
                .entries
                .retain(|(k, _)| !JOB_ONLY_FIELDS.contains(&k.name.as_str()));
            defaults.insert(dir, cascading);
        }
    }

    // Collected, then built in one go: the map is built from sorted pairs
    // without a search per job.
    let mut jobs: Vec<(JobId, Arc<JobSpec>)> = Vec::with_capacity(hits.len() + misses.len());
    for (spec, job_diags) in hits {
        r.diags.extend(job_diags);
        if let Some(spec) = spec {
            jobs.push((spec.id.clone(), spec));
        }
    }
    for (i, key) in misses {
        let Role::Job(id_text) = roles[i] else {
            continue;
        };
        let first_diag = r.diags.len();
        let spec = job(i, id_text, &sources, &defaults, opts, &mut r).map(Arc::new);
        if let Some(spec) = &spec {
            jobs.push((spec.id.clone(), Arc::clone(spec)));
        }
        if !cache.keep {
            continue;
        }
        cache.jobs.insert(
            sources[i].name.clone(),
            CachedJob {
                text: sources[i].text.clone(),
                key,
                at: opts.now,
                spec,
                diagnostics: r.diags[first_diag..].to_vec(),
                pass,
            },
        );
    }
    // Later pairs win over earlier ones with the same id, as inserts would.
    desired.jobs = jobs.into_iter().collect();
    cache.jobs.retain(|_, c| c.pass == pass);

    let mut all = diags;
    all.append(&mut r.diags);
    diag::normalize(&mut all);
    Loaded {
        desired,
        diagnostics: all,
        files,
        job_files,
    }
}

/// Parses and validates one job file with the defaults above it.
fn job(
    i: usize,
    id_text: &str,
    sources: &[SourceText],
    defaults: &HashMap<&str, Table>,
    opts: &LoadOptions,
    r: &mut Reporter<'_>,
) -> Option<JobSpec> {
    let id = match JobId::parse(id_text) {
        Ok(id) => Some(id),
        Err(msg) => {
            r.diags.push(
                Diagnostic::file(
                    Severity::Error,
                    &sources[i].name,
                    format!("invalid job id: {msg}"),
                )
                .with_hint(
                    "a job's id is its path; rename the file or folder (for example to lowercase)",
                ),
            );
            None
        }
    };
    let own = doc::parse(i, &sources[i], &mut r.diags)?;
    let mut merged = Table::default();
    for dir in ancestors(id_text) {
        if let Some(d) = defaults.get(dir) {
            merged.merge(d);
        }
    }
    merged.merge(&own);
    // Errors of this job start here: problems found while reading the
    // raw table (wrong types, unknown fields) disqualify it as much as
    // those found while validating.
    let errors_before = r.error_count();
    let raw = RawJob::read(&merged, r);
    let ctx = Context {
        now: opts.now,
        own_file: i,
    };
    let spec = validate::build(id, &raw, Mode::Job, &ctx, r)?;
    (r.error_count() == errors_before).then_some(spec)
}
