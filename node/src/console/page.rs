//! HTML building blocks of the console: escaping, the page frame, job and outcome tables.
//! Every value that comes from a record, a config or the peer goes through [`esc`].

use std::fmt::Write;

use crate::jobs::record::{JobRecord, StepState};

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Who is looking at a page: the signed-in operator and the session's CSRF token.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub operator: String,
    pub csrf: String,
}

impl Viewer {
    /// The hidden form field every POST form carries.
    pub fn csrf_field(&self) -> String {
        format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(&self.csrf))
    }
}

/// A whole page: navigation (when signed in), the title as heading, then `body` (already HTML).
pub fn frame(node: &str, title: &str, viewer: Option<&Viewer>, body: &str) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Tandem {}</title><link rel=\"stylesheet\" href=\"/console/static/console.css\">\
         <script src=\"/console/static/console.js\" defer></script></head><body>",
        esc(title),
        esc(node)
    );
    if let Some(v) = viewer {
        let _ = write!(
            o,
            "<header><nav><b>Tandem · {}</b> <a href=\"/console\">Node</a> <a href=\"/console/jobs\">Jobs</a> \
             <a href=\"/console/new\">New job</a> <a href=\"/console/models\">Models</a> \
             <a href=\"/console/audit\">Audit</a><span class=\"who\">signed in as <b id=\"operator\">{}</b> \
             <form method=\"post\" action=\"/console/logout\" class=\"inline\">{}<button>Sign out</button></form>\
             </span></nav></header>",
            esc(node),
            esc(&v.operator),
            v.csrf_field()
        );
    }
    let _ = write!(o, "<main><h1>{}</h1>{body}</main></body></html>", esc(title));
    o
}

fn step_name(s: StepState) -> &'static str {
    match s {
        StepState::Pending => "pending",
        StepState::Running => "running",
        StepState::Done => "done",
        StepState::Failed => "failed",
    }
}

/// `unix ms` as RFC 3339 UTC, to the second.
pub fn time(ms: u64) -> String {
    crate::audit::record::format_rfc3339((ms / 1000) as i64, 0).replace(".000000", "")
}

/// A scalar for a table cell: numbers to 4 decimals, strings as they are (escaped; shortened).
fn scalar(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::Number(n) if n.is_f64() => n.as_f64().map_or(n.to_string(), |x| format!("{x:.4}")),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    };
    let short: String = text.chars().take(400).collect();
    let more = if short.len() < text.len() { " …" } else { "" };
    format!("{}{more}", esc(&short))
}

/// Rows of one table shown before "… N more".
const MAX_ROWS: usize = 200;
/// Nesting shown as tables; deeper values are shown as compact JSON text.
const MAX_DEPTH: usize = 6;

/// A value for a table cell: scalars as text, objects as nested two-column tables, arrays of
/// objects as tables with a column per key, arrays of arrays as plain tables, arrays of scalars
/// as a list (escaped; long tables shortened, saying how many rows are left out).
pub fn value(v: &serde_json::Value) -> String {
    nested(v, 0)
}

fn nested(v: &serde_json::Value, depth: usize) -> String {
    use serde_json::Value;
    if depth >= MAX_DEPTH {
        return scalar(&Value::String(v.to_string()));
    }
    match v {
        Value::Object(map) if map.is_empty() => "—".into(),
        Value::Object(map) => kv_table(map, depth),
        Value::Array(items) if items.is_empty() => "none".into(),
        Value::Array(items) if items.iter().all(Value::is_object) => {
            let mut columns: Vec<&String> = Vec::new();
            for item in items {
                for k in item.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !columns.contains(&k) {
                        columns.push(k);
                    }
                }
            }
            let mut o = String::from("<table class=\"nested\"><tr>");
            for c in &columns {
                let _ = write!(o, "<th>{}</th>", esc(c));
            }
            o.push_str("</tr>");
            for item in items.iter().take(MAX_ROWS) {
                o.push_str("<tr>");
                for c in &columns {
                    let cell = item.get(c.as_str()).map_or(String::new(), |x| nested(x, depth + 1));
                    let _ = write!(o, "<td>{cell}</td>");
                }
                o.push_str("</tr>");
            }
            o.push_str("</table>");
            o + &more_rows(items.len())
        }
        Value::Array(items) if items.iter().all(Value::is_array) => {
            let mut o = String::from("<table class=\"nested\">");
            for row in items.iter().take(MAX_ROWS) {
                o.push_str("<tr>");
                for x in row.as_array().into_iter().flatten() {
                    let _ = write!(o, "<td>{}</td>", nested(x, depth + 1));
                }
                o.push_str("</tr>");
            }
            o.push_str("</table>");
            o + &more_rows(items.len())
        }
        Value::Array(items) if items.iter().any(|x| x.is_object() || x.is_array()) => {
            let mut o = String::from("<ol class=\"nested\">");
            for x in items.iter().take(MAX_ROWS) {
                let _ = write!(o, "<li>{}</li>", nested(x, depth + 1));
            }
            o.push_str("</ol>");
            o + &more_rows(items.len())
        }
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let mut o = String::from("<ul class=\"nested\">");
            for x in items.iter().take(MAX_ROWS) {
                let _ = write!(o, "<li>{}</li>", scalar(x));
            }
            o.push_str("</ul>");
            o + &more_rows(items.len())
        }
        Value::Array(items) => {
            let shown: Vec<String> = items.iter().take(MAX_ROWS).map(scalar).collect();
            shown.join(", ") + &more_rows(items.len())
        }
        scalar_value => scalar(scalar_value),
    }
}

fn more_rows(total: usize) -> String {
    if total > MAX_ROWS {
        format!("<p class=\"note\">… {} more not shown</p>", total - MAX_ROWS)
    } else {
        String::new()
    }
}

fn kv_table(map: &serde_json::Map<String, serde_json::Value>, depth: usize) -> String {
    let mut o = String::from("<table class=\"kv\">");
    for (k, v) in map {
        let _ = write!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), nested(v, depth + 1));
    }
    o.push_str("</table>");
    o
}

/// A two-column table of a JSON object, nested values as nested tables ([`value`]).
pub fn map_table(map: &serde_json::Map<String, serde_json::Value>, empty: &str) -> String {
    if map.is_empty() {
        return format!("<p>{}</p>", esc(empty));
    }
    kv_table(map, 0)
}

/// Overall progress of a job: the mean of its steps' progress (done steps count as 1).
fn progress(r: &JobRecord) -> f64 {
    if r.steps.is_empty() {
        return 0.0;
    }
    let sum: f64 =
        r.steps.iter().map(|s| if s.state == StepState::Done { 1.0 } else { s.progress.clamp(0.0, 1.0) }).sum();
    sum / r.steps.len() as f64
}

/// The job list as a table (newest first), with live progress bars.
pub fn jobs_table(records: &[&JobRecord]) -> String {
    if records.is_empty() {
        return "<p>No jobs.</p>".into();
    }
    let mut o = String::from(
        "<table class=\"jobs\"><tr><th>job</th><th>kind</th><th>state</th><th>progress</th><th>description</th>\
         <th>operator</th><th>proposed by</th><th>created (UTC)</th></tr>",
    );
    for r in records.iter().rev() {
        let _ = write!(
            o,
            "<tr><td><a href=\"/console/jobs/{id}\">{id}</a></td><td>{}</td><td><span class=\"state s-{st}\">{st}</span></td>\
             <td><progress max=\"1\" value=\"{:.3}\"></progress></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r.spec.kind().as_str()),
            progress(r),
            esc(&r.spec.description),
            esc(&r.operator),
            esc(&r.submitted_by),
            time(r.created_ms),
            id = esc(&r.id),
            st = r.state.as_str(),
        );
    }
    o.push_str("</table>");
    o
}

/// The part of a job page that changes while it runs: state, steps, error, outcome.
pub fn job_live(r: &JobRecord) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<table class=\"kv\"><tr><th>state</th><td><span id=\"state\" class=\"state s-{st}\">{st}</span></td></tr>\
         <tr><th>updated</th><td>{}</td></tr></table><h2>Steps</h2><table><tr><th>step</th><th>state</th>\
         <th>progress</th><th>message</th></tr>",
        time(r.updated_ms),
        st = r.state.as_str()
    );
    for s in &r.steps {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td><progress max=\"1\" value=\"{:.3}\"></progress></td><td>{}</td></tr>",
            esc(&s.name),
            step_name(s.state),
            if s.state == StepState::Done { 1.0 } else { s.progress.clamp(0.0, 1.0) },
            esc(&s.message)
        );
    }
    o.push_str("</table>");
    if let Some(e) = &r.error {
        let _ = write!(o, "<h2>Error</h2><p class=\"bad\" id=\"error\">{}</p>", esc(e));
    }
    let _ = write!(o, "<h2>Outcome</h2><div id=\"outcome\">{}</div>", map_table(&r.outcome, "Nothing yet."));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_leaves_no_markup_or_attribute_break() {
        let hostile = "<script>alert(\"x\")</script>&'onload='";
        let e = esc(hostile);
        assert_eq!(e, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;onload=&#39;");
        for c in ['<', '>', '"', '\''] {
            assert!(!e.contains(c), "{e}");
        }
    }

    #[test]
    fn nested_outcomes_render_as_tables_not_json() {
        let outcome = serde_json::json!({
            "calibration": {"a": 1.25, "b": -0.5},
            "scorecard_table": [
                {"feature": "x1", "iv": 0.31234, "bins": [{"range": "<b>low</b>", "points": 12}]},
                {"feature": "x2", "iv": 0.02}
            ],
            "matrix": [[1, 2], [3, 4]],
            "warnings": ["w1", "w2"],
            "sizes": [3, 5],
            "n": 7
        });
        let html = map_table(outcome.as_object().unwrap(), "none");
        assert!(!html.contains('{') && !html.contains("\":"), "no JSON text left: {html}");
        // The object inside a cell is a table of its own, keys as headers, values formatted.
        assert!(
            html.contains("<th>calibration</th><td><table class=\"kv\"><tr><th>a</th><td>1.2500</td></tr>"),
            "{html}"
        );
        // An array of objects is one table with a column per key (the union of keys).
        assert!(html.contains("<tr><th>bins</th><th>feature</th><th>iv</th></tr><tr><td><table"), "{html}");
        assert!(html.contains("</table></td><td>x1</td><td>0.3123</td></tr>"), "{html}");
        assert!(
            html.contains("<tr><td></td><td>x2</td><td>0.0200</td></tr>"),
            "a missing key is an empty cell: {html}"
        );
        // Nested two levels down, and still escaped.
        assert!(
            html.contains("<tr><th>points</th><th>range</th></tr><tr><td>12</td><td>&lt;b&gt;low&lt;/b&gt;</td>"),
            "{html}"
        );
        assert!(html.contains("<tr><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr>"), "{html}");
        assert!(html.contains("<ul class=\"nested\"><li>w1</li><li>w2</li></ul>"), "{html}");
        assert!(html.contains("<th>sizes</th><td>3, 5</td>"), "{html}");
        // Long arrays are cut, saying how much is left out.
        let long = serde_json::json!({ "rows": (0..250).map(|i| serde_json::json!({ "i": i })).collect::<Vec<_>>() });
        let html = map_table(long.as_object().unwrap(), "none");
        assert_eq!(html.matches("<tr><td>").count(), MAX_ROWS);
        assert!(html.contains("… 50 more not shown"), "{html}");
    }
}
