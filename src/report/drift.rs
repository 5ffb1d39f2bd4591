//! Drift reports for people (text), pull requests and job summaries
//! (Markdown), machines (JSON) and GitHub workflow annotations.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::drift::{DriftItem, DriftKind, DriftReport};
use crate::report::diagnostics::{escape_data, escape_property};
use crate::report::plan::MARKDOWN_LIMIT;

/// Room kept at the end of the Markdown for the truncation note.
const MARKDOWN_RESERVE: usize = 300;

fn mark(k: DriftKind) -> &'static str {
    match k {
        DriftKind::Stale => "!",
        DriftKind::Missing => "+",
        DriftKind::Unexpected => "-",
        DriftKind::Changed => "~",
        DriftKind::Overridden => "*",
        DriftKind::Leaked => "x",
    }
}

/// `2 missing, 1 leaked`, in report order.
fn tally(r: &DriftReport) -> String {
    DriftKind::ALL
        .iter()
        .filter_map(|k| {
            let n = r.count(*k);
            (n > 0).then(|| format!("{n} {}", k.name()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn revisions(r: &DriftReport) -> String {
    format!(
        "git {} · running {}",
        r.source_revision
            .as_deref()
            .map_or("(not read yet)".to_string(), |s| crate::drift::short(Some(
                s
            ))),
        crate::drift::short(r.applied_revision.as_deref())
    )
}

/// The one-line verdict.
pub fn headline(r: &DriftReport) -> String {
    if r.in_sync() {
        "In sync: what runs is what git says.".to_string()
    } else {
        format!(
            "Drift: {} item{} ({}).",
            r.items.len(),
            if r.items.len() == 1 { "" } else { "s" },
            tally(r)
        )
    }
}

pub fn text(r: &DriftReport) -> String {
    let mut out = format!("{}\n{}\n", headline(r), revisions(r));
    if !r.items.is_empty() {
        out.push('\n');
    }
    for i in &r.items {
        let _ = writeln!(out, "{} {:<10} {}", mark(i.kind), i.kind.name(), i.summary);
        for d in &i.details {
            let _ = writeln!(out, "  {:<10}   {d}", "");
        }
        let _ = writeln!(out, "  {:<10}   -> {}", "", i.action);
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn row(i: &DriftItem) -> String {
    let mut what = cell(&i.summary);
    for d in &i.details {
        let _ = write!(what, "<br>`{}`", d.replace('`', "'").replace('|', "\\|"));
    }
    format!(
        "| {} | {} | {} | {} |\n",
        i.kind.name(),
        i.job
            .as_deref()
            .map_or("—".to_string(), |j| format!("`{j}`")),
        what,
        cell(&i.action)
    )
}

/// Markdown for a PR comment or a job summary: under
/// [`MARKDOWN_LIMIT`] characters, cut between whole rows with a note.
pub fn markdown(r: &DriftReport) -> String {
    let mut out = format!(
        "### driftcron drift\n\n**{}**\n\n{}\n",
        headline(r),
        revisions(r)
    );
    if r.items.is_empty() {
        return out;
    }
    out.push_str("\n| kind | job | what | action |\n|---|---|---|---|\n");
    for (n, i) in r.items.iter().enumerate() {
        let line = row(i);
        if out.len() + line.len() > MARKDOWN_LIMIT - MARKDOWN_RESERVE {
            let _ = write!(
                out,
                "\n_…and {} more items, cut to fit; `driftcron drift --format json` lists all._\n",
                r.items.len() - n
            );
            return out;
        }
        out.push_str(&line);
    }
    out
}

pub fn json(r: &DriftReport) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default() + "\n"
}

/// GitHub workflow commands: an error for each item of a failing kind, a
/// warning for the others, then a notice with the verdict.
pub fn github(r: &DriftReport, fail_on: &BTreeSet<DriftKind>) -> String {
    let mut out = String::new();
    for i in &r.items {
        let level = if fail_on.contains(&i.kind) {
            "error"
        } else {
            "warning"
        };
        let title = match &i.job {
            Some(j) => format!("drift: {} {j}", i.kind.name()),
            None => format!("drift: {}", i.kind.name()),
        };
        let mut msg = i.summary.clone();
        for d in &i.details {
            msg.push('\n');
            msg.push_str(d);
        }
        msg.push_str("\n-> ");
        msg.push_str(&i.action);
        let _ = writeln!(
            out,
            "::{level} title={}::{}",
            escape_property(&title),
            escape_data(&msg)
        );
    }
    let _ = writeln!(
        out,
        "::notice title=driftcron drift::{}",
        escape_data(&headline(r))
    );
    out
}
