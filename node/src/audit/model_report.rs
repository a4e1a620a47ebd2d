//! The model committee's part of a report, from a completed outcome's `evaluation` (train jobs),
//! `scorecard_table` (train jobs) and `stability` (score jobs): metric table, calibration plot
//! and table, gains/lift table, grade table, IV/scorecard table and PSI tables, as plain text and
//! as printable HTML (inline SVG, no external resources).

use std::fmt::Write;

use models::evaluation::{Evaluation, PSI_SHIFT, PSI_WATCH, Source, Stability};

use super::record::{Outcome, ScorecardFeature};

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("—".to_string(), |v| format!("{v:.digits$}"))
}

/// How the figures were obtained, one sentence.
fn source_line(e: &Evaluation) -> &'static str {
    match e.source {
        Source::Rows => "exact, from the test rows' opened scores",
        Source::Bins => {
            "from binned counts of the test logits (no per-row score opened); ± is a bound on the distance to the exact value"
        }
    }
}

/// (name, value, bound text) of the metric table.
fn metric_rows(e: &Evaluation) -> Vec<(&'static str, String, String)> {
    let bound = |b: f64| if e.source == Source::Rows { String::new() } else { format!("± {b:.4}") };
    vec![
        ("rows", e.rows.to_string(), String::new()),
        ("bads (defaults)", format!("{} ({})", e.bads, pct(e.bads as f64 / e.rows.max(1) as f64)), String::new()),
        ("AUC", format!("{:.4}", e.auc), bound(e.auc_bound)),
        ("Gini (2·AUC − 1)", format!("{:.4}", e.gini), bound(e.gini_bound)),
        (
            "KS",
            format!("{:.4}", e.ks),
            if e.source == Source::Rows { String::new() } else { format!("exact within + {:.4}", e.ks_bound) },
        ),
        ("Brier score", format!("{:.4}", e.brier), bound(e.brier_bound)),
    ]
}

fn psi_verdict(s: &Stability) -> String {
    format!(
        "PSI {:.4}: {} (< {PSI_WATCH} stable, {PSI_WATCH} to {PSI_SHIFT} watch, > {PSI_SHIFT} shift)",
        s.psi, s.verdict
    )
}

/// Plain-text sections of `out` (empty when it carries none).
pub fn text(out: &Outcome) -> String {
    let mut o = String::new();
    if let Some(e) = &out.evaluation {
        let _ = writeln!(o, "Test evaluation ({}):", source_line(e));
        for (name, value, bound) in metric_rows(e) {
            let _ = writeln!(o, "  {name:<18} {value:<16} {bound}");
        }
        let _ = writeln!(o, "Calibration and gains by score decile (1 = riskiest):");
        let _ = writeln!(
            o,
            "  {:>5} {:>7} {:>6} {:>20} {:>9} {:>9} {:>6} {:>9}",
            "group", "rows", "bads", "predicted PD", "observed", "capture", "lift", "cum. lift"
        );
        for d in &e.deciles {
            let predicted = if e.source == Source::Rows {
                pct(d.predicted_pd)
            } else {
                format!("{} ± {:.2}", pct(d.predicted_pd), 100.0 * d.predicted_bound)
            };
            let _ = writeln!(
                o,
                "  {:>5} {:>7} {:>6} {:>20} {:>9} {:>9} {:>6.2} {:>9.2}",
                d.group,
                d.rows,
                d.bads,
                predicted,
                pct(d.observed_rate),
                pct(d.cumulative_capture),
                d.lift,
                d.cumulative_lift
            );
        }
        let _ = writeln!(o, "Grades (best first):");
        for g in &e.grades {
            let _ = writeln!(o, "  {:<8} {:>7} rows {:>6} bads  bad rate {}", g.grade, g.rows, g.bads, pct(g.bad_rate));
        }
        if e.grade_rows_uncertain > 0 {
            let _ = writeln!(
                o,
                "  ({} rows lie in bins across a grade cut-off, counted in the riskier grade)",
                e.grade_rows_uncertain
            );
        }
    }
    if let Some(table) = &out.scorecard_table {
        let _ = writeln!(o, "Scorecard (information value, weight of evidence and points per bin):");
        for f in table {
            let _ = writeln!(o, "  {} ({}): IV {}", f.feature, f.owner, opt(f.iv, 4));
            for b in &f.bins {
                let _ = writeln!(
                    o,
                    "    {:<24} {:>8} rows  WOE {:>8}  points {:>8}",
                    b.bin,
                    b.count,
                    opt(b.woe, 4),
                    opt(b.points, 1)
                );
            }
        }
    }
    for s in out.stability.iter().flatten() {
        let _ = writeln!(o, "Population stability by {} against the training population: {}", s.basis, psi_verdict(s));
        for b in &s.bands {
            let _ = writeln!(
                o,
                "  {:<12} training {:>7} ({:>8})  scored {:>7} ({:>8})  contribution {:.4}",
                b.band,
                b.expected,
                pct(b.expected_share),
                b.actual,
                pct(b.actual_share),
                b.contribution
            );
        }
    }
    o
}

const SIZE: f64 = 360.0;
const PAD: f64 = 45.0;

/// Predicted vs observed default rate by decile, with the diagonal and the predicted bounds.
fn calibration_svg(e: &Evaluation) -> String {
    let top = e
        .deciles
        .iter()
        .map(|d| (d.predicted_pd + d.predicted_bound).max(d.observed_rate))
        .fold(0.0f64, f64::max)
        .max(0.01);
    // Axis maximum: the next multiple of 5 % (or 1 %) above the largest value.
    let step = if top > 0.1 { 0.05 } else { 0.01 };
    let max = ((top / step).ceil() * step).min(1.0);
    let plot = SIZE - 2.0 * PAD;
    let at = |x: f64, y: f64| (PAD + (x / max).clamp(0.0, 1.0) * plot, PAD + (1.0 - (y / max).clamp(0.0, 1.0)) * plot);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SIZE}\" height=\"{SIZE}\" role=\"img\" \
         aria-label=\"calibration by score decile\"><title>calibration by score decile</title>\
         <rect x=\"{PAD}\" y=\"{PAD}\" width=\"{plot}\" height=\"{plot}\" fill=\"none\" stroke=\"#999\"/>"
    );
    let ((x0, y0), (x1, y1)) = (at(0.0, 0.0), at(max, max));
    let _ = write!(s, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"#999\" stroke-dasharray=\"4\"/>");
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let (x, _) = at(v, 0.0);
        let (_, y) = at(0.0, v);
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{:.0}%</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{:.0}%</text>",
            PAD + plot + 14.0,
            100.0 * v,
            PAD - 4.0,
            y + 3.0,
            100.0 * v
        );
    }
    for d in &e.deciles {
        let (x, y) = at(d.predicted_pd, d.observed_rate);
        if d.predicted_bound > 0.0 {
            let (xl, _) = at(d.predicted_pd - d.predicted_bound, 0.0);
            let (xh, _) = at(d.predicted_pd + d.predicted_bound, 0.0);
            let _ = write!(s, "<line x1=\"{xl:.1}\" y1=\"{y:.1}\" x2=\"{xh:.1}\" y2=\"{y:.1}\" stroke=\"#1f77b4\"/>");
        }
        let _ = write!(
            s,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"#1f77b4\"><title>decile {}: predicted {}, observed {}</title></circle>",
            d.group,
            pct(d.predicted_pd),
            pct(d.observed_rate)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">predicted default rate (mean PD)</text>\
         <text x=\"12\" y=\"{c}\" font-size=\"12\" transform=\"rotate(-90 12 {c})\" text-anchor=\"middle\">observed default rate</text></svg>",
        PAD + plot / 2.0,
        SIZE - 6.0,
        c = PAD + plot / 2.0
    );
    s
}

pub(super) fn table(o: &mut String, head: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = write!(o, "<table><tr>");
    for h in head {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    let _ = write!(o, "</tr>");
    for r in rows {
        let _ = write!(o, "<tr>");
        for c in r {
            let _ = write!(o, "<td>{}</td>", esc(&c));
        }
        let _ = write!(o, "</tr>");
    }
    let _ = write!(o, "</table>");
}

fn scorecard_html(o: &mut String, features: &[ScorecardFeature]) {
    let _ = write!(o, "<h2>Scorecard</h2>");
    table(
        o,
        &["feature", "owner", "information value"],
        features.iter().map(|f| vec![f.feature.clone(), f.owner.clone(), opt(f.iv, 4)]),
    );
    for f in features {
        let _ = write!(o, "<h3>{} ({})</h3>", esc(&f.feature), esc(&f.owner));
        table(
            o,
            &["bin", "rows", "WOE", "points"],
            f.bins.iter().map(|b| vec![b.bin.clone(), b.count.to_string(), opt(b.woe, 4), opt(b.points, 1)]),
        );
    }
}

/// HTML sections of `out` (empty when it carries none).
pub fn html(out: &Outcome) -> String {
    let mut o = String::new();
    if let Some(e) = &out.evaluation {
        let _ = write!(o, "<h2>Test evaluation</h2><p>{}.</p>", esc(source_line(e)));
        table(&mut o, &["metric", "value", "bound"], metric_rows(e).into_iter().map(|(n, v, b)| vec![n.into(), v, b]));
        let _ = write!(o, "<h2>Calibration by score decile</h2>{}", calibration_svg(e));
        let bounded = e.source == Source::Bins;
        table(
            &mut o,
            &["decile (1 = riskiest)", "rows", "bads", "predicted PD", "observed default rate"],
            e.deciles.iter().map(|d| {
                let predicted = if bounded {
                    format!("{} ± {:.2}", pct(d.predicted_pd), 100.0 * d.predicted_bound)
                } else {
                    pct(d.predicted_pd)
                };
                vec![d.group.to_string(), d.rows.to_string(), d.bads.to_string(), predicted, pct(d.observed_rate)]
            }),
        );
        let _ = write!(o, "<h2>Gains and lift</h2>");
        table(
            &mut o,
            &["decile", "logit range", "rows", "bads", "bad rate", "cumulative capture", "lift", "cumulative lift"],
            e.deciles.iter().map(|d| {
                vec![
                    d.group.to_string(),
                    format!("{} to {}", opt(d.logit_low, 3), opt(d.logit_high, 3)),
                    d.rows.to_string(),
                    d.bads.to_string(),
                    pct(d.observed_rate),
                    pct(d.cumulative_capture),
                    format!("{:.2}", d.lift),
                    format!("{:.2}", d.cumulative_lift),
                ]
            }),
        );
        let _ = write!(o, "<h2>Bad rate per grade</h2>");
        table(
            &mut o,
            &["grade", "rows", "bads", "bad rate"],
            e.grades.iter().map(|g| vec![g.grade.clone(), g.rows.to_string(), g.bads.to_string(), pct(g.bad_rate)]),
        );
        if e.grade_rows_uncertain > 0 {
            let _ = write!(
                o,
                "<p>{} rows lie in bins across a grade cut-off and are counted in the riskier grade.</p>",
                e.grade_rows_uncertain
            );
        }
    }
    if let Some(features) = &out.scorecard_table {
        scorecard_html(&mut o, features);
    }
    for s in out.stability.iter().flatten() {
        let _ = write!(o, "<h2>Population stability by {}</h2><p>{}</p>", esc(&s.basis), esc(&psi_verdict(s)));
        table(
            &mut o,
            &["band", "training rows", "training share", "scored rows", "scored share", "PSI contribution"],
            s.bands.iter().map(|b| {
                vec![
                    b.band.clone(),
                    b.expected.to_string(),
                    pct(b.expected_share),
                    b.actual.to_string(),
                    pct(b.actual_share),
                    format!("{:.4}", b.contribution),
                ]
            }),
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scorecard_table_and_stability_in_the_outcome_are_rendered() {
        let table = serde_json::json!([
            {"owner": "gov", "feature": "age", "iv": 0.1234, "bins": [
                {"bin": "(-inf, 30]", "count": 120, "woe": -0.25, "points": 12.5},
                {"bin": "missing", "count": 7, "woe": null, "points": null}]},
            {"owner": "bank", "feature": "limit & <balance>", "iv": null, "bins": []}
        ]);
        let stability =
            models::evaluation::stability("grade", &["A".into(), "B".into()], &[30, 70], &[50, 50]).unwrap();
        let mut fields = serde_json::Map::new();
        fields.insert("scorecard_table".into(), table);
        fields.insert("stability".into(), serde_json::to_value(vec![&stability]).unwrap());
        fields.insert("test_auc".into(), 0.7.into());
        let out = Outcome::completed_with(&fields).unwrap();
        let html = html(&out);
        for part in [
            "<h2>Scorecard</h2>",
            "<td>age</td><td>gov</td><td>0.1234</td>",
            "<td>(-inf, 30]</td><td>120</td><td>-0.2500</td><td>12.5</td>",
            "<td>missing</td><td>7</td><td>—</td><td>—</td>",
            "limit &amp; &lt;balance&gt;",
            "Population stability by grade",
            &format!("PSI {:.4}: watch", stability.psi),
            "<td>A</td><td>30</td><td>30.00 %</td><td>50</td><td>50.00 %</td>",
        ] {
            assert!(html.contains(part), "{part} in {html}");
        }
        assert!(!html.contains("Test evaluation"), "no evaluation in this outcome");
        let text = text(&out);
        assert!(text.contains("age (gov): IV 0.1234") && text.contains("limit & <balance> (bank): IV —"), "{text}");
        assert!(text.contains("Population stability by grade") && text.contains("PSI 0.1"), "{text}");

        let mut wrong = serde_json::Map::new();
        wrong.insert("scorecard_table".into(), serde_json::json!([{"feature": "age"}]));
        let e = Outcome::completed_with(&wrong).unwrap_err().to_string();
        assert!(e.contains("outcome field 'scorecard_table'"), "{e}");
        assert_eq!(Outcome::completed_with(&serde_json::Map::new()).unwrap(), Outcome::completed());
    }
}
