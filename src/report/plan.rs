//! `driftcron plan` output: terraform-style text, a Markdown PR comment that
//! stays under GitHub's size limit, and versioned JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::JSON_FORMAT_VERSION;
use crate::plan::report::{Action, JobPlan, PlanReport};

/// GitHub rejects comments over 65,536 characters; keep a margin.
pub const MARKDOWN_LIMIT: usize = 65_000;

/// Room kept for the truncation footer.
const FOOTER_MAX: usize = 200;

/// A code fence longer than any run of backticks in `body`, so content
/// cannot close it early.
fn fence(body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

fn sign(a: Action) -> char {
    match a {
        Action::Create => '+',
        Action::Update => '~',
        Action::Delete => '-',
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
    }
}

fn job_lines(j: &JobPlan, out: &mut String, indent: &str) {
    for c in &j.changes {
        match (&c.old, &c.new) {
            (Some(o), Some(n)) => writeln!(out, "{indent}{}: {o} -> {n}", c.field),
            (None, Some(n)) => writeln!(out, "{indent}{} = {n}", c.field),
            (Some(o), None) => writeln!(out, "{indent}{}: {o} -> (removed)", c.field),
            (None, None) => Ok(()),
        }
        .ok();
    }
    match j.action {
        Action::Create => {
            writeln!(
                out,
                "{indent}next fires ({}): {}",
                j.timezone,
                list(&j.next_new)
            )
            .ok();
        }
        Action::Update if j.next_old != j.next_new => {
            writeln!(
                out,
                "{indent}next fires before ({}): {}",
                j.timezone,
                list(&j.next_old)
            )
            .ok();
            writeln!(
                out,
                "{indent}next fires after  ({}): {}",
                j.timezone,
                list(&j.next_new)
            )
            .ok();
        }
        _ => {}
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none (disabled or never)".into()
    } else {
        v.join(", ")
    }
}

fn forecast_line(p: &PlanReport) -> String {
    let f = &p.forecast;
    let at = |m: &Option<chrono::DateTime<chrono::Utc>>| {
        m.map_or("-".to_string(), |m| {
            m.format("%Y-%m-%d %H:%M UTC").to_string()
        })
    };
    let mut s = format!(
        "Load forecast ({} days): busiest minute {} jobs at {} (before: {} at {}), max_running {}",
        f.days,
        f.head.jobs,
        at(&f.head.minute),
        f.base.jobs,
        at(&f.base.minute),
        f.max_running
    );
    if f.worse() {
        write!(s, "; WARNING: this change makes the busiest minute busier").ok();
    }
    if f.head.jobs > f.max_running as usize {
        write!(
            s,
            "; WARNING: more jobs start together than max_running allows (the rest queue)"
        )
        .ok();
    }
    if f.truncated {
        write!(s, " (forecast truncated: too many fires to enumerate)").ok();
    }
    s
}

/// Terminal text.
pub fn text(p: &PlanReport) -> String {
    let mut out = format!("driftcron plan: {} -> {}\n\n", p.base, p.head);
    if p.jobs.is_empty() && p.is_empty() {
        out.push_str("No changes. The running jobs match.\n");
    }
    for j in &p.jobs {
        writeln!(out, "{} {} ({})", sign(j.action), j.id, verb(j.action)).ok();
        job_lines(j, &mut out, "    ");
        out.push('\n');
    }
    for n in &p.notes {
        writeln!(out, "note: {n}").ok();
    }
    if !p.notes.is_empty() {
        out.push('\n');
    }
    for f in &p.files {
        out.push_str(&f.diff);
        if !f.diff.ends_with('\n') {
            out.push('\n');
        }
    }
    if !p.files.is_empty() {
        out.push('\n');
    }
    writeln!(out, "{}", forecast_line(p)).ok();
    writeln!(out, "{}", p.summary()).ok();
    out
}

/// A PR comment. Sections are dropped from the end (file diffs first, then
/// job details) to stay under [`MARKDOWN_LIMIT`]; a table is never cut in
/// the middle.
pub fn markdown(p: &PlanReport) -> String {
    let head = format!(
        "### driftcron plan\n\n`{}` → `{}`\n\n**{}**\n\n",
        p.base,
        p.head,
        p.summary()
    );
    let mut table = String::from("| | job | change |\n|---|---|---|\n");
    for j in &p.jobs {
        let what = match j.action {
            Action::Update => j
                .changes
                .iter()
                .map(|c| format!("`{}`", c.field))
                .collect::<Vec<_>>()
                .join(", "),
            _ => verb(j.action).to_string(),
        };
        writeln!(table, "| {} | `{}` | {} |", sign(j.action), j.id, what).ok();
    }
    if p.jobs.is_empty() {
        table = if p.is_empty() {
            "No changes. The running jobs match.\n".into()
        } else {
            "No job changes.\n".into()
        };
    }
    let mut details = String::new();
    for j in p.jobs.iter().filter(|j| j.action != Action::Delete) {
        let mut body = String::new();
        job_lines(j, &mut body, "");
        let f = fence(&body);
        write!(
            details,
            "<details><summary>{} {}</summary>\n\n{f}\n{}{f}\n</details>\n\n",
            sign(j.action),
            j.id,
            body
        )
        .ok();
    }
    let mut notes = String::new();
    for n in &p.notes {
        writeln!(notes, "> ⚠️ {n}").ok();
    }
    let mut diffs = String::new();
    for f in &p.files {
        let fc = fence(&f.diff);
        write!(
            diffs,
            "<details><summary>diff {}</summary>\n\n{fc}diff\n{}{fc}\n</details>\n\n",
            f.path, f.diff
        )
        .ok();
    }
    let forecast = format!("\n{}\n", forecast_line(p));
    // Reserved for the forecast and a truncation footer, whatever happens.
    let reserve = forecast.len() + FOOTER_MAX;
    let mut out = head;
    out.push_str(&table);
    out.push('\n');
    out.push_str(&notes);
    let mut dropped = Vec::new();
    for (name, section) in [("job details", details), ("file diffs", diffs)] {
        if out.len() + section.len() + reserve <= MARKDOWN_LIMIT {
            out.push_str(&section);
        } else {
            dropped.push(name);
        }
    }
    if out.len() + reserve > MARKDOWN_LIMIT {
        // Even the table is too long: keep whole rows only.
        let mut cut = String::new();
        for line in out.lines() {
            if cut.len() + line.len() + 1 + reserve > MARKDOWN_LIMIT {
                break;
            }
            cut.push_str(line);
            cut.push('\n');
        }
        out = cut;
        dropped.push("table rows");
    }
    out.push_str(&forecast);
    if !dropped.is_empty() {
        write!(
            out,
            "\n_Truncated to fit a comment: {} left out; run `driftcron plan` for everything._\n",
            dropped.join(", ")
        )
        .ok();
    }
    out
}

/// Versioned JSON.
pub fn json(p: &PlanReport) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        format_version: &'static str,
        summary: Summary,
        #[serde(flatten)]
        plan: &'a PlanReport,
    }
    #[derive(Serialize)]
    struct Summary {
        create: usize,
        update: usize,
        delete: usize,
        unchanged: usize,
    }
    let doc = Doc {
        format_version: JSON_FORMAT_VERSION,
        summary: Summary {
            create: p.count(Action::Create),
            update: p.count(Action::Update),
            delete: p.count(Action::Delete),
            unchanged: p.unchanged,
        },
        plan: p,
    };
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
