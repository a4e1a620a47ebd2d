//! Readable summaries of a verified transcript: plain text for the terminal, HTML for the file.
//! Who took part, when, which data, per reveal what left whom under which rule (and the frames
//! that carried it), traffic per phase, duration, and the outcome with who signed it; the HTML adds metrics (from reveals whose summary is a JSON object) and, for
//! training jobs, an ROC curve and score distribution when the outcome record carries them; both
//! add the model evaluation, scorecard and stability tables the outcome carries
//! ([`super::model_report`]).

use std::fmt::Write;

use protocol::Role;
use protocol::transcript::Direction;

use super::record::{Outcome, PhaseHeads, Record, Reveal, ScoreHist, Status, parse_rfc3339};
use super::verify::{RevealInfo, Verification};

/// Frames and bytes of one phase, per direction.
#[derive(Default)]
struct Traffic {
    phase: String,
    sent: (u64, u64),
    received: (u64, u64),
}

/// The facts both renderers show.
struct Facts<'a> {
    v: &'a Verification,
    start: Option<&'a str>,
    end: Option<&'a str>,
    traffic: Vec<Traffic>,
    /// Each reveal with what the verifier found out about it.
    reveals: Vec<(&'a Reveal, Option<&'a RevealInfo>)>,
    phase_ends: Vec<&'a PhaseHeads>,
    outcome: Option<&'a Outcome>,
}

impl<'a> Facts<'a> {
    fn of(v: &'a Verification) -> Facts<'a> {
        let records = &v.transcript.records;
        let mut traffic: Vec<Traffic> = Vec::new();
        let (mut reveals, mut phase_ends, mut outcome) = (Vec::new(), Vec::new(), None);
        for (n, r) in records {
            match r {
                Record::Frame { phase, dir, len, .. } => {
                    let i = match traffic.iter().position(|t| &t.phase == phase) {
                        Some(i) => i,
                        None => {
                            traffic.push(Traffic { phase: phase.clone(), ..Traffic::default() });
                            traffic.len() - 1
                        }
                    };
                    let slot = match dir {
                        Direction::Sent => &mut traffic[i].sent,
                        Direction::Received => &mut traffic[i].received,
                    };
                    slot.0 += 1;
                    slot.1 += len;
                }
                Record::Reveal { reveal, .. } => {
                    reveals.push((reveal, v.transcript.reveals.iter().find(|i| i.record == *n)))
                }
                Record::PhaseEnd { heads, .. } => phase_ends.push(heads),
                Record::Outcome { outcome: o, .. } => outcome = Some(o),
                Record::Manifest { .. } => {}
            }
        }
        Facts {
            v,
            start: records.first().map(|(_, r)| r.time()),
            end: records.last().map(|(_, r)| r.time()),
            traffic,
            reveals,
            phase_ends,
            outcome,
        }
    }

    fn duration(&self) -> String {
        match (self.start.and_then(parse_rfc3339), self.end.and_then(parse_rfc3339)) {
            (Some(a), Some(b)) if b >= a => format!("{:.3} s", (b - a) as f64 / 1e6),
            _ => "unknown".into(),
        }
    }

    fn verdict(&self) -> String {
        let v = self.v;
        if v.ok() {
            let phases = self.phase_ends.len();
            format!(
                "OK: {} records, chain intact, manifest signature and {phases} phase end(s) signed by both nodes \
                 verify; records 1..={} are covered by both nodes' signatures{}",
                v.transcript.records.len(),
                v.transcript.covered,
                if v.transcript.payloads_checked { ", payloads re-hashed" } else { "" }
            )
        } else {
            format!("FAILED: {} problem(s), listed at the end; do not rely on this transcript", v.failures.len())
        }
    }

    fn outcome_line(&self) -> String {
        let owner = self.v.transcript.node.map_or("unknown".to_string(), |r| r.to_string());
        match (self.outcome, self.v.transcript.completion_signed_at) {
            (Some(Outcome { status: Status::Completed, .. }), Some(at)) => {
                format!("completed, signed by both nodes at record {at}")
            }
            (Some(Outcome { status: Status::Completed, .. }), None) => {
                "completed, but NOT signed by both nodes (see the failures)".into()
            }
            (Some(Outcome { status: Status::Failed, reason, .. }), _) => {
                format!("failed: {} (signed by the {owner} node alone)", reason.as_deref().unwrap_or("no reason given"))
            }
            (None, _) => "none recorded (transcript incomplete)".into(),
        }
    }
}

/// How a reveal's value crossed, and who signed the record.
fn carried(r: &Reveal, info: Option<&RevealInfo>) -> (String, String) {
    let frames = match info.map(|i| i.frames.as_slice()) {
        _ if r.frames.is_empty() => "learnt from a protocol's output (no frame opens it)".to_string(),
        Some(records) if records.len() == r.frames.len() => format!(
            "opened in {} '{}{}' frame(s), records {}",
            records.len(),
            protocol::disclose::OPEN_PREFIX,
            r.name,
            records.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
        ),
        _ => format!("lists {} frame(s), not all found (see the failures)", r.frames.len()),
    };
    let signed = match info.and_then(|i| i.signed_at) {
        Some(at) => format!("signed by both nodes at record {at}"),
        None => "not covered by a phase end signed by both nodes".to_string(),
    };
    (frames, signed)
}

fn recipients(to: &[Role]) -> String {
    to.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" and ")
}

fn compact(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Plain-text report of `v`.
pub fn text(v: &Verification) -> String {
    let f = Facts::of(v);
    let t = &v.transcript;
    let mut o = String::new();
    let _ = writeln!(o, "Tandem transcript {}", t.path.display());
    let _ = writeln!(o, "Verification: {}", f.verdict());
    if let Some(m) = &t.manifest {
        let owner = t.node.map(|r| r.to_string()).unwrap_or_else(|| "unknown".into());
        let _ = writeln!(o, "Job:         {} ({}), proposed by {} at {}", m.job_id, m.kind, m.proposer, m.created);
        let _ = writeln!(o, "Recorded by: the {owner} node");
        let _ = writeln!(o, "Operator:    {}", m.operator);
        let _ = writeln!(
            o,
            "Consent:     {}",
            if m.consent.is_empty() { "none given".into() } else { m.consent.join(", ") }
        );
        let _ = writeln!(o, "Nodes:");
        for n in &m.nodes {
            let _ = writeln!(
                o,
                "  {:<4} {:<20} TLS cert SHA-256 {}  Ed25519 {}",
                n.role.as_str(),
                n.name,
                hex::encode(n.tls_cert_sha256),
                hex::encode(n.ed25519_public_key)
            );
        }
        let _ = writeln!(o, "Data:");
        for d in &m.datasets {
            let _ = writeln!(
                o,
                "  {:<4} {}: {} rows, {} columns ({})",
                d.party.as_str(),
                d.name,
                d.rows,
                d.columns.len(),
                d.columns.join(", ")
            );
        }
        let _ = writeln!(o, "Parameters:  {}", compact(&m.parameters));
        let _ = writeln!(o, "Policies:    gov {}; bank {}", compact(&m.policies.gov), compact(&m.policies.bank));
    }
    let _ = writeln!(o, "Time:        {} to {} ({})", f.start.unwrap_or("?"), f.end.unwrap_or("?"), f.duration());
    let _ = writeln!(o, "Traffic by phase (frames / payload bytes):");
    for tr in &f.traffic {
        let _ = writeln!(
            o,
            "  {:<16} sent {:>6} / {:>12}   received {:>6} / {:>12}",
            tr.phase, tr.sent.0, tr.sent.1, tr.received.0, tr.received.1
        );
    }
    let _ = writeln!(o, "Revealed (what left whom, under which rule):");
    if f.reveals.is_empty() {
        let _ = writeln!(o, "  nothing");
    }
    for (r, info) in &f.reveals {
        let (frames, signed) = carried(r, *info);
        let _ = writeln!(
            o,
            "  [{}] {}: {} -> {} under rule '{}'\n      {}; value BLAKE3 {}\n      {frames}; {signed}",
            r.phase,
            r.name,
            r.from,
            recipients(&r.to),
            r.rule,
            r.summary,
            hex::encode(r.value_hash)
        );
    }
    let _ = writeln!(o, "Phase ends signed by both nodes:");
    for h in &f.phase_ends {
        let _ = writeln!(
            o,
            "  {:<16} gov sent {} frames, bank sent {} frames; {} reveal(s){}",
            h.phase,
            h.view.sent_by_gov.frames,
            h.view.sent_by_bank.frames,
            h.reveals.len(),
            if h.completed.is_some() { "; both nodes' completed outcomes" } else { "" }
        );
    }
    let _ = writeln!(o, "Outcome:     {}", f.outcome_line());
    if let Some(out) = f.outcome {
        o.push_str(&super::model_report::text(out));
    }
    for n in &v.notes {
        let _ = writeln!(o, "Note: {n}");
    }
    for fl in &v.failures {
        let _ = writeln!(o, "FAILED {fl}");
    }
    o
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Metrics found in reveal summaries that are JSON objects: (reveal name, metric, value).
fn metrics(reveals: &[(&Reveal, Option<&RevealInfo>)]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (r, _) in reveals {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&r.summary) {
            for (k, v) in map {
                let shown = match &v {
                    serde_json::Value::Number(n) => n.as_f64().map_or(n.to_string(), |x| format!("{x:.4}")),
                    serde_json::Value::String(s) => s.clone(),
                    other => compact(other),
                };
                out.push((r.name.clone(), k, shown));
            }
        }
    }
    out
}

const PLOT: f64 = 300.0;
const PAD: f64 = 30.0;

fn svg_open(title: &str) -> String {
    let size = PLOT + 2.0 * PAD;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" role=\"img\" aria-label=\"{t}\">\
         <title>{t}</title><rect x=\"{PAD}\" y=\"{PAD}\" width=\"{PLOT}\" height=\"{PLOT}\" fill=\"none\" stroke=\"#999\"/>",
        t = esc(title)
    )
}

/// Maps unit coordinates to the plot area (y upwards).
fn at(x: f64, y: f64) -> (f64, f64) {
    (PAD + x.clamp(0.0, 1.0) * PLOT, PAD + (1.0 - y.clamp(0.0, 1.0)) * PLOT)
}

fn roc_svg(points: &[[f64; 2]]) -> String {
    let mut s = svg_open("ROC curve");
    let (x0, y0) = at(0.0, 0.0);
    let (x1, y1) = at(1.0, 1.0);
    let _ = write!(s, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"#ccc\" stroke-dasharray=\"4\"/>");
    let pts: Vec<String> = points
        .iter()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .map(|p| {
            let (x, y) = at(p[0], p[1]);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = write!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>", pts.join(" "));
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">false positive rate</text>\
         <text x=\"12\" y=\"{}\" font-size=\"12\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">true positive rate</text></svg>",
        PAD + PLOT / 2.0,
        PLOT + 2.0 * PAD - 8.0,
        PAD + PLOT / 2.0,
        PAD + PLOT / 2.0
    );
    s
}

fn hist_svg(h: &ScoreHist) -> String {
    let mut s = svg_open("score distribution");
    let bins = h.good.len();
    let series: Vec<(&[u64], &str)> = [(&h.good[..], "#2ca02c"), (&h.bad[..], "#d62728")]
        .into_iter()
        .filter(|(c, _)| c.len() == bins && bins > 0)
        .collect();
    // Each class as a share of its own total, so a rare class stays visible.
    let shares: Vec<Vec<f64>> = series
        .iter()
        .map(|(c, _)| {
            let total = c.iter().sum::<u64>().max(1) as f64;
            c.iter().map(|&x| x as f64 / total).collect()
        })
        .collect();
    let max = shares.iter().flatten().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    for (k, (share, (_, colour))) in shares.iter().zip(&series).enumerate() {
        let width = 1.0 / bins as f64 / series.len() as f64;
        for (i, &c) in share.iter().enumerate() {
            let (x, y) = at(i as f64 / bins as f64 + k as f64 * width, c / max);
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" opacity=\"0.8\"/>",
                width * PLOT,
                PAD + PLOT - y
            );
        }
    }
    let lo = h.edges.first().copied().unwrap_or(f64::NAN);
    let hi = h.edges.last().copied().unwrap_or(f64::NAN);
    let _ = write!(
        s,
        "<text x=\"{PAD}\" y=\"{y}\" font-size=\"12\">{lo:.0}</text><text x=\"{}\" y=\"{y}\" font-size=\"12\" \
         text-anchor=\"end\">{hi:.0}</text><text x=\"{}\" y=\"20\" font-size=\"12\" text-anchor=\"middle\">score, share of each class \
         (green: good{})</text></svg>",
        PAD + PLOT,
        PAD + PLOT / 2.0,
        if h.bad.is_empty() { "" } else { ", red: bad" },
        y = PLOT + 2.0 * PAD - 8.0
    );
    s
}

/// Self-contained HTML report of `v` (no scripts, no external resources).
pub fn html(v: &Verification) -> String {
    let f = Facts::of(v);
    let t = &v.transcript;
    let mut o = String::new();
    let title = t.manifest.as_ref().map_or("unknown job".to_string(), |m| format!("job {}", m.job_id));
    let _ = write!(
        o,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Tandem transcript: {}</title><style>\
         body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left}}.bad{{color:#b00}}.ok{{color:#070}}\
         code{{font-size:90%}}</style></head><body><h1>Tandem transcript: {}</h1>",
        esc(&title),
        esc(&title)
    );
    let class = if v.ok() { "ok" } else { "bad" };
    let _ = write!(o, "<p class=\"{class}\"><b>Verification:</b> {}</p>", esc(&f.verdict()));
    let _ = write!(o, "<p>File <code>{}</code></p>", esc(&t.path.display().to_string()));
    if let Some(m) = &t.manifest {
        let owner = t.node.map_or("unknown".to_string(), |r| r.to_string());
        let consent = if m.consent.is_empty() { "none given".to_string() } else { m.consent.join(", ") };
        let _ = write!(
            o,
            "<table><tr><th>Job</th><td>{} ({})</td></tr><tr><th>Proposed</th><td>by {} at {}</td></tr>\
             <tr><th>Recorded by</th><td>the {} node</td></tr><tr><th>Operator</th><td>{}</td></tr>\
             <tr><th>Consent</th><td>{}</td></tr><tr><th>Time</th><td>{} to {} ({})</td></tr>\
             <tr><th>Outcome</th><td>{}</td></tr></table>",
            esc(&m.job_id),
            esc(&m.kind),
            m.proposer,
            esc(&m.created),
            owner,
            esc(&m.operator),
            esc(&consent),
            esc(f.start.unwrap_or("?")),
            esc(f.end.unwrap_or("?")),
            f.duration(),
            esc(&f.outcome_line())
        );
        let _ = write!(
            o,
            "<h2>Nodes</h2><table><tr><th>role</th><th>name</th><th>TLS cert SHA-256</th><th>Ed25519 key</th></tr>"
        );
        for n in &m.nodes {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                n.role,
                esc(&n.name),
                hex::encode(n.tls_cert_sha256),
                hex::encode(n.ed25519_public_key)
            );
        }
        let _ = write!(
            o,
            "</table><h2>Data</h2><table><tr><th>party</th><th>dataset</th><th>rows</th><th>columns</th></tr>"
        );
        for d in &m.datasets {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                d.party,
                esc(&d.name),
                d.rows,
                esc(&d.columns.join(", "))
            );
        }
        let _ = write!(
            o,
            "</table><h2>Parameters and policies</h2><table><tr><th>parameters</th><td><code>{}</code></td></tr>\
             <tr><th>gov policy</th><td><code>{}</code></td></tr><tr><th>bank policy</th><td><code>{}</code></td></tr></table>",
            esc(&compact(&m.parameters)),
            esc(&compact(&m.policies.gov)),
            esc(&compact(&m.policies.bank))
        );
    }
    let _ = write!(o, "<h2>Revealed</h2>");
    if f.reveals.is_empty() {
        let _ = write!(o, "<p>Nothing.</p>");
    } else {
        let _ = write!(
            o,
            "<table><tr><th>phase</th><th>what</th><th>from</th><th>to</th><th>policy rule</th><th>summary</th>\
             <th>carried by</th><th>signed</th></tr>"
        );
        for (r, info) in &f.reveals {
            let (frames, signed) = carried(r, *info);
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.phase),
                esc(&r.name),
                r.from,
                recipients(&r.to),
                esc(&r.rule),
                esc(&r.summary),
                esc(&frames),
                esc(&signed)
            );
        }
        let _ = write!(o, "</table>");
    }
    let metrics = metrics(&f.reveals);
    if !metrics.is_empty() {
        let _ = write!(o, "<h2>Metrics</h2><table><tr><th>revealed as</th><th>metric</th><th>value</th></tr>");
        for (name, k, val) in &metrics {
            let _ = write!(o, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(name), esc(k), esc(val));
        }
        let _ = write!(o, "</table>");
    }
    if let Some(out) = f.outcome {
        if let Some(roc) = &out.roc {
            let _ = write!(o, "<h2>ROC curve</h2>{}", roc_svg(roc));
        }
        if let Some(h) = &out.score_hist {
            let _ = write!(o, "<h2>Score distribution</h2>{}", hist_svg(h));
        }
        o.push_str(&super::model_report::html(out));
    }
    let _ = write!(
        o,
        "<h2>Traffic by phase</h2><table><tr><th>phase</th><th>frames sent</th><th>bytes sent</th>\
         <th>frames received</th><th>bytes received</th></tr>"
    );
    for tr in &f.traffic {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&tr.phase),
            tr.sent.0,
            tr.sent.1,
            tr.received.0,
            tr.received.1
        );
    }
    let _ = write!(
        o,
        "</table><h2>Phase ends signed by both nodes</h2><table><tr><th>phase</th><th>frames sent by gov</th>\
         <th>frames sent by bank</th><th>reveals</th><th>completion</th></tr>"
    );
    for h in &f.phase_ends {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&h.phase),
            h.view.sent_by_gov.frames,
            h.view.sent_by_bank.frames,
            h.reveals.len(),
            if h.completed.is_some() { "signed" } else { "" }
        );
    }
    let _ = write!(o, "</table>");
    if !v.notes.is_empty() || !v.failures.is_empty() {
        let _ = write!(o, "<h2>Findings</h2><ul>");
        for n in &v.notes {
            let _ = write!(o, "<li>{}</li>", esc(n));
        }
        for fl in &v.failures {
            let _ = write!(o, "<li class=\"bad\">{}</li>", esc(&fl.to_string()));
        }
        let _ = write!(o, "</ul>");
    }
    let _ = writeln!(o, "</body></html>");
    o
}
