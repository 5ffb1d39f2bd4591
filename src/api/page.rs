//! `GET /`: a small status page for a person with a browser. Plain HTML, no
//! scripts, nothing fetched from elsewhere. Job content (ids, drift items)
//! is shown only to whoever may read `/api/v1`; the rest sees the summary.

use std::fmt::Write as _;

use crate::drift::DriftReport;
use crate::reconcile::View;
use crate::scheduler::RunningState;
use crate::status::Condition;

/// Jobs listed on the page; the API lists them all.
pub const PAGE_JOBS: usize = 500;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn condition(c: &Condition) -> String {
    match c {
        Condition::Ready { revision, since } => {
            format!("<b>Ready</b> {} since {since}", esc(revision))
        }
        Condition::Stalled {
            revision,
            since,
            errors,
            diagnostics,
        } => {
            let mut s = format!(
                "<b>Stalled</b> {} since {since}: {errors} errors<ul>",
                esc(revision)
            );
            for d in diagnostics {
                let _ = write!(s, "<li><code>{}</code></li>", esc(d));
            }
            s + "</ul>"
        }
        Condition::FetchFailed { error, since } => {
            format!("<b>FetchFailed</b> since {since}: {}", esc(error))
        }
    }
}

/// The page. `detailed`: whether job content may be shown.
pub fn render(
    source: &str,
    view: &View,
    state: &RunningState,
    drift: &DriftReport,
    detailed: bool,
) -> String {
    let st = &view.status;
    let c = &state.job_counts;
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>driftcron</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}\
         code{font-size:13px}</style></head><body><h1>driftcron</h1>",
    );
    // The source may name a host or a user, and diagnostics quote job
    // files: both are job content.
    let conditions: Vec<String> = st
        .conditions
        .iter()
        .map(|c| {
            if detailed {
                condition(c)
            } else {
                format!("<b>{}</b>", c.kind())
            }
        })
        .collect();
    let _ = write!(
        h,
        "<p>{}git {} · running {}</p><p>{}</p>",
        if detailed {
            format!("source {}<br>", esc(source))
        } else {
            String::new()
        },
        esc(st.observed_revision.as_deref().unwrap_or("(not read yet)")),
        esc(st.applied_revision.as_deref().unwrap_or("(nothing)")),
        conditions.join("<br>")
    );
    let _ = write!(
        h,
        "<p>{} jobs: {} active, {} suspended, {} disabled, {} overridden · {} running of {} · \
         {} queued of {} · {} leaked</p>",
        c.total,
        c.active,
        c.suspended,
        c.disabled,
        c.overridden,
        state.running,
        state.max_running,
        state.queued,
        state.max_queued,
        state.leaked.len()
    );
    let verdict = crate::report::drift::headline(drift);
    let _ = write!(h, "<h2>Drift</h2><p>{}</p>", esc(&verdict));
    if !detailed {
        h.push_str("<p>Job details need the API token: see <code>/api/v1/status</code>.</p>");
        return h + "</body></html>";
    }
    if !drift.items.is_empty() {
        h.push_str("<table><tr><th>kind</th><th>job</th><th>what</th><th>action</th></tr>");
        for i in &drift.items {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                i.kind.name(),
                esc(i.job.as_deref().unwrap_or("")),
                esc(&i.summary),
                esc(&i.action)
            );
        }
        h.push_str("</table>");
    }
    h.push_str(
        "<h2>Jobs</h2><table><tr><th>job</th><th>next fire (UTC)</th><th>state</th>\
         <th>running</th><th>last outcome</th></tr>",
    );
    for j in state.jobs.iter().take(PAGE_JOBS) {
        let status = if j.suspended {
            if j.enabled { "suspended" } else { "disabled" }
        } else {
            "active"
        };
        let _ = write!(
            h,
            "<tr><td><a href=\"/api/v1/jobs/{0}\">{0}</a></td><td>{1}</td><td>{2}{3}</td>\
             <td>{4}</td><td>{5}</td></tr>",
            esc(j.id.as_str()),
            j.next_fire.map(|t| t.to_rfc3339()).unwrap_or_default(),
            status,
            if j.overridden { " (overridden)" } else { "" },
            j.active.len(),
            esc(j.recent.last().map_or("", |r| &*r.outcome))
        );
    }
    h.push_str("</table>");
    if state.jobs.len() > PAGE_JOBS {
        let _ = write!(
            h,
            "<p>…and {} more: <code>/api/v1/jobs</code> lists all.</p>",
            state.jobs.len() - PAGE_JOBS
        );
    }
    h + "</body></html>"
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
