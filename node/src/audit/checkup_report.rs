//! The one-page HTML report of a credit check-up ([`models::checkup`]): grade, points, points per
//! dimension with each gov dimension's standing in the gov's population (inline SVG), strengths,
//! weak points and what would raise the grade. Printable, no script, no external resources.

use std::fmt::Write;

use models::checkup::{Checkup, DimensionScore, Standing};

use super::model_report::{esc, table};

/// What the page shows besides the check-up itself.
pub struct Page<'a> {
    pub entity: &'a str,
    pub consent: &'a str,
    pub model: &'a str,
    pub job: &'a str,
    /// The gov dataset whose rows are the population.
    pub population: &'a str,
    pub checkup: &'a Checkup,
}

fn standing_text(s: Option<Standing>) -> &'static str {
    match s {
        Some(Standing::Strength) => "strength",
        Some(Standing::Typical) => "typical",
        Some(Standing::Weak) => "weak point",
        None => "—",
    }
}

const WIDTH: f64 = 560.0;
const LABEL: f64 = 170.0;
const ROW: f64 = 22.0;

/// Each gov dimension's population range (line), median (tick) and the entity's points (dot).
fn standing_svg(dims: &[&DimensionScore]) -> String {
    let height = ROW * dims.len() as f64 + 30.0;
    let plot = WIDTH - LABEL - 20.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" \
         aria-label=\"points per dimension against the population\"><title>points per dimension against the population</title>"
    );
    for (i, d) in dims.iter().enumerate() {
        let Some(p) = &d.population else { continue };
        let y = 20.0 + ROW * i as f64;
        let span = (p.max - p.min).max(1e-9);
        let at = |v: f64| LABEL + (v - p.min) / span * plot;
        let colour = match d.standing {
            Some(Standing::Strength) => "#070",
            Some(Standing::Weak) => "#b00",
            _ => "#555",
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
             <line x1=\"{LABEL}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#bbb\" stroke-width=\"6\"/>\
             <line x1=\"{m:.1}\" y1=\"{:.1}\" x2=\"{m:.1}\" y2=\"{:.1}\" stroke=\"#333\" stroke-width=\"2\"/>\
             <circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"6\" fill=\"{colour}\"><title>{}: {:.1} points (population {:.1} to {:.1}, median {:.1})</title></circle>",
            LABEL - 8.0,
            y + 4.0,
            esc(&d.name),
            LABEL + plot,
            y - 8.0,
            y + 8.0,
            at(d.points),
            esc(&d.name),
            d.points,
            p.min,
            p.max,
            p.median,
            m = at(p.median),
        );
    }
    let _ = write!(
        s,
        "<text x=\"{LABEL}\" y=\"{:.1}\" font-size=\"11\">each line: the population's lowest to highest points; \
         tick: median; dot: this entity</text></svg>",
        height - 4.0
    );
    s
}

/// The report page.
pub fn html(page: &Page) -> String {
    let c = page.checkup;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Credit check-up: {e}</title><style>\
         body{{font-family:sans-serif;max-width:52em;margin:1.5em auto;font-size:10pt}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.15em .4em;text-align:left}}.grade{{font-size:300%;font-weight:bold}}\
         th,td:not(:nth-child(2)){{white-space:nowrap}}h1{{margin:.2em 0}}h2{{font-size:125%;margin:.8em 0 .3em}}p{{margin:.3em 0}}\
         .note{{color:#555;font-size:90%}}@page{{size:A4;margin:1.5cm}}@media print{{body{{margin:0;max-width:none}}}}\
         </style></head><body><h1>Credit check-up</h1>\
         <p>Entity <b>{e}</b>, at its request (consent <b>{}</b>). Model <code>{}</code>, job <code>{}</code>.</p>",
        esc(page.consent),
        esc(page.model),
        esc(page.job),
        e = esc(page.entity),
    );
    let next = match &c.next_grade {
        Some(n) => format!(
            "The next grade, {}, starts at {} points: {} points more.",
            esc(&n.grade),
            n.min_points,
            n.points_needed
        ),
        None => "This is the best grade.".into(),
    };
    let _ = write!(o, "<p><span class=\"grade\">{}</span> &nbsp; {} points</p>", esc(&c.grade), c.points);

    let _ = write!(o, "<h2>Points by dimension</h2>");
    let gov: Vec<&DimensionScore> = c.dimensions.iter().filter(|d| d.population.is_some()).collect();
    let rows = c.dimensions.iter().map(|d| match &d.population {
        Some(p) => vec![
            d.name.clone(),
            d.columns.join(", "),
            format!("{:.1}", d.points),
            format!("{:.1}", p.median),
            format!("{:.1} to {:.1}", p.min, p.max),
            format!("{:.0} %", 100.0 * p.share_below),
            standing_text(d.standing).into(),
        ],
        None => vec![
            d.name.clone(),
            "the bank's block, with the base points".into(),
            format!("{:.1}", d.points),
            "—".into(),
            "—".into(),
            "—".into(),
            "—".into(),
        ],
    });
    let total = vec![
        "total".into(),
        String::new(),
        format!("{:.1} (rounded: {})", c.exact_points, c.points),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ];
    table(
        &mut o,
        &["dimension", "columns", "points", "population median", "range", "rows with fewer", "standing"],
        rows.chain([total]),
    );
    if !gov.is_empty() {
        o.push_str(&standing_svg(&gov));
    }
    let _ = write!(o, "<h2>Strengths and weak points</h2>");
    for (title, want) in [("Strengths", Standing::Strength), ("Weak points", Standing::Weak)] {
        let listed: Vec<String> = gov
            .iter()
            .filter(|d| d.standing == Some(want))
            .map(|d| {
                let p = d.population.as_ref().expect("gov dimensions have a population");
                let (share, than) = match want {
                    Standing::Strength => (p.share_below, "fewer"),
                    _ => (p.share_above, "more"),
                };
                format!(
                    "{} ({:.1} points, median {:.1}: {:.0} % of the population have {than})",
                    esc(&d.name),
                    d.points,
                    p.median,
                    100.0 * share
                )
            })
            .collect();
        let text = if listed.is_empty() { "none".to_string() } else { listed.join("; ") };
        let _ = write!(o, "<p><b>{title}</b>: {text}.</p>");
    }
    let _ = write!(o, "<h2>What would raise the grade</h2><p>{next}</p>");
    if c.improvements.is_empty() {
        let _ = write!(o, "<p>No single change of one of the gov's attributes gains points.</p>");
    } else {
        table(
            &mut o,
            &["attribute (dimension)", "now", "if it were", "points gained", "points then", "grade then"],
            c.improvements.iter().map(|i| {
                vec![
                    if i.dimension == i.column { i.column.clone() } else { format!("{} ({})", i.column, i.dimension) },
                    i.from_bin.clone(),
                    i.to_bin.clone(),
                    format!("+{:.1}", i.gain),
                    i.points.to_string(),
                    i.grade.clone(),
                ]
            }),
        );
    }
    let _ = write!(
        o,
        "<p class=\"note\">Points are the model's scorecard points; the dimensions add up to the total, rounded half \
         up to the points that set the grade. The population is every row of the gov's dataset <code>{}</code>. \
         The bank's part is one number the bank opened for this entity only; the gov saw none of the bank's \
         columns, and the bank learned nothing of this report.</p></body></html>",
        esc(page.population)
    );
    o
}
