//! Credit check-up jobs between two daemons: the report's dimension points add up to the
//! entity's total, checked against the train job's scorecard tables applied to the entity's rows
//! here and against the score job's points for the same entity.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;

use common::jobs::*;
use common::jobs::{checkup, score};
use models::binning::WoeTransform;
use node::jobs::record::JobState;
use serde_json::Value;

/// Points of every column of `owner`'s scorecard table (the train job's outcome) for one raw
/// row: the table's points of the bin the value falls in (the bins from the owner's model
/// file), 0 where the table has none (a column the model left out); plus the base points row.
fn table_points(table: &[Value], owner: &str, woe: &WoeTransform, row: &[f64]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for t in table.iter().filter(|t| t["owner"] == owner) {
        let feature = t["feature"].as_str().unwrap();
        let bins = t["bins"].as_array().unwrap();
        let points = match woe.columns.iter().position(|c| c.bins.feature == feature) {
            Some(c) => {
                let name = woe.columns[c].bins.bin_name(woe.columns[c].bins.bin(row[c]));
                let bin = bins.iter().find(|b| b["bin"] == name.as_str()).unwrap_or_else(|| panic!("{feature} {name}"));
                bin["points"].as_f64().unwrap_or(0.0)
            }
            None => bins[0]["points"].as_f64().unwrap(), // the base points
        };
        out.insert(feature.to_string(), points);
    }
    out
}

fn saved(c: &node::config::Config, id: &str) -> models::secure_lr::ModelArtifact {
    let path = c.node.data_dir.join(format!("models/{id}.json"));
    let m: node::jobs::phases::train::SavedModel = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    m.artifact
}

fn checkup_job(train_id: &str, entity: &str, consent: &str) -> node::jobs::spec::JobSpec {
    job("demo-checkup.toml", |s| {
        checkup(s).model = Some(train_id.into());
        checkup(s).entity = Some(entity.into());
        checkup(s).consent = Some(consent.into());
    })
}

#[test]
fn a_checkup_report_adds_up_to_the_scorecard_and_the_score_job() {
    let groups = BTreeMap::from([
        ("registration".to_string(), vec!["x0".to_string(), "x1".into(), "x2".into()]),
        ("tax".to_string(), vec!["x3".to_string(), "x4".into(), "x5".into()]),
    ]);
    let dims = groups.clone();
    let p = pair(&[], move |gov, _| gov.datasets.get_mut("gov_features").unwrap().dimensions = dims);
    let (gov, bank) = p.run(&job("demo-train.toml", |_| {}), false);
    assert_succeeded(&gov, &bank);
    let train_id = gov.id.clone();
    let gov_table = gov.outcome["scorecard_table"].as_array().unwrap().clone();
    let bank_table = bank.outcome["scorecard_table"].as_array().unwrap().clone();
    let (ga, ba) = (saved(&p.gov_config, &train_id), saved(&p.bank_config, &train_id));
    let (gov_woe, bank_woe) = (ga.gov.woe.clone().unwrap(), ba.bank.woe.clone().unwrap());

    let score = job("demo-score.toml", |s| {
        score(s).model = Some(train_id.clone());
    });
    let (sg, sb) = p.run(&score, false);
    assert_succeeded(&sg, &sb);
    let (_, scored) = read_csv(&p.job_file(&p.bank_config, &sb.id, "scores.csv"));
    let score_of: HashMap<String, (f64, String)> =
        scored.iter().map(|r| (r[0].clone(), (r[2].parse().unwrap(), r[3].clone()))).collect();

    // The entity with the lowest and with the highest score, one check-up submitted at each node.
    let mut by_points: Vec<(&String, f64)> = score_of.iter().map(|(id, (pts, _))| (id, *pts)).collect();
    by_points.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
    for (entity, at_bank) in [(by_points[0].0.clone(), true), (by_points[by_points.len() - 1].0.clone(), false)] {
        let consent = format!("CONSENT-{entity}");
        let (gov, bank) = p.run_at(&checkup_job(&train_id, &entity, &consent), at_bank);
        assert_succeeded(&gov, &bank);
        let c: models::checkup::Checkup = serde_json::from_value(gov.outcome["checkup"].clone()).unwrap();

        // Independent total: both scorecard tables applied to the entity's rows.
        let gov_pts = table_points(&gov_table, "gov", &gov_woe, &p.data.gov[&entity]);
        let bank_pts = table_points(&bank_table, "bank", &bank_woe, &p.data.bank[&entity].0);
        let total: f64 = gov_pts.values().chain(bank_pts.values()).sum();
        let sum: f64 = c.dimensions.iter().map(|d| d.points).sum();
        eprintln!(
            "{entity}: report {sum:.4} ({} {}), scorecard {total:.4}, score job {:?}",
            c.points, c.grade, score_of[&entity]
        );
        assert!((sum - total).abs() < 1e-6 && (c.exact_points - sum).abs() < 1e-9, "{sum} vs {total}");
        let (score_points, score_grade) = &score_of[&entity];
        assert!((sum - score_points).abs() <= 0.5 + 1e-3, "{sum} vs the score job's {score_points}");
        assert_eq!((c.points as f64, &c.grade), (*score_points, score_grade));
        assert_eq!(
            (&gov.outcome["points"], &gov.outcome["grade"]),
            (&Value::from(c.points), &Value::from(c.grade.clone()))
        );

        // Dimensions: the configured groups of the model's columns, the others one each, then
        // the bank's block (its table rows with the base points) as one number.
        let fin = c.dimensions.last().unwrap();
        assert_eq!((fin.name.as_str(), fin.owner), ("financial behaviour", protocol::Role::Bank));
        assert!((fin.points - bank_pts.values().sum::<f64>()).abs() < 1e-6);
        let model_columns = gov_woe.features();
        let mut seen = Vec::new();
        for d in &c.dimensions[..c.dimensions.len() - 1] {
            let expected: Vec<String> = match groups.get(&d.name) {
                Some(g) => g.iter().filter(|x| model_columns.contains(x)).cloned().collect(),
                None => vec![d.name.clone()],
            };
            assert_eq!(d.columns, expected, "{}", d.name);
            let pts: f64 = d.columns.iter().map(|x| gov_pts[x]).sum();
            assert!((d.points - pts).abs() < 1e-9, "{}", d.name);
            seen.extend(d.columns.clone());
            // Standing: the share of the gov's rows with fewer points in this dimension, counted here.
            let pop = d.population.as_ref().unwrap();
            let fewer = p
                .data
                .gov
                .values()
                .filter(|row| {
                    let t = table_points(&gov_table, "gov", &gov_woe, row);
                    d.columns.iter().map(|x| t[x]).sum::<f64>() < d.points - 1e-9
                })
                .count();
            assert_eq!(pop.rows, p.data.gov.len());
            assert!((pop.share_below - fewer as f64 / pop.rows as f64).abs() < 1e-12, "{}", d.name);
        }
        seen.sort();
        let mut all = model_columns.clone();
        all.sort();
        assert_eq!(seen, all, "every model column in one dimension");

        // What would raise the grade: each move's gain is what the scorecard table gives the
        // entity's row with that column's value changed to one in the target bin.
        if let Some(n) = &c.next_grade {
            assert_eq!(n.points_needed, n.min_points.ceil() as i64 - c.points);
        }
        for imp in &c.improvements {
            let col = gov_woe.columns.iter().position(|x| x.bins.feature == imp.column).unwrap();
            let bins = &gov_woe.columns[col].bins;
            let value =
                p.data.gov.values().map(|r| r[col]).find(|&v| bins.bin_name(bins.bin(v)) == imp.to_bin).unwrap();
            let mut row = p.data.gov[&entity].clone();
            row[col] = value;
            let moved: f64 = table_points(&gov_table, "gov", &gov_woe, &row).values().sum();
            assert!((moved - gov_pts.values().sum::<f64>() - imp.gain).abs() < 1e-6, "{imp:?}");
        }

        // The report: the gov's job directory only, owner-only, the same facts.
        let html_path = p.job_file(&p.gov_config, &gov.id, "checkup.html");
        assert_eq!(std::fs::metadata(&html_path).unwrap().permissions().mode() & 0o777, 0o600);
        let html = std::fs::read_to_string(&html_path).unwrap();
        for part in [
            format!("<b>{entity}</b>"),
            format!("consent <b>{consent}</b>"),
            format!("<span class=\"grade\">{}</span>", c.grade),
            format!("{} points", c.points),
            "<td>financial behaviour</td>".into(),
            "<svg".into(),
        ] {
            assert!(html.contains(&part), "{part}");
        }
        assert!(!html.contains("<script"));
        assert!(!p.job_file(&p.bank_config, &bank.id, "checkup.html").exists());
        assert!(bank.outcome.get("points").is_none() && bank.outcome.get("checkup").is_none(), "{:?}", bank.outcome);

        // Under checkup_to_gov, recorded at both nodes: each node's "holds the entity" bit to
        // the other, then the one value, bank → gov; the consent in both manifests.
        for r in [&gov, &bank] {
            let reveals: Vec<Value> = transcript_records(r, "reveal");
            let opened: Vec<_> = reveals
                .iter()
                .map(|v| {
                    let rv = &v["reveal"];
                    assert_eq!(rv["rule"], "policy.reveals: checkup_to_gov", "{rv}");
                    (rv["name"].as_str().unwrap(), rv["from"].as_str().unwrap(), rv["to"].clone())
                })
                .collect();
            let to = |role: &str| serde_json::json!([role]);
            assert_eq!(
                opened,
                [
                    ("checkup_gov_holds_entity", "gov", to("bank")),
                    ("checkup_bank_holds_entity", "bank", to("gov")),
                    ("checkup_bank_points", "bank", to("gov")),
                ]
            );
            let manifest = &transcript_records(r, "manifest")[0];
            assert_eq!(manifest["manifest"]["consent"], serde_json::json!([consent]), "{manifest}");
            assert_eq!(r.outcome["consent"], consent.as_str());
        }
    }

    // An entity the bank does not hold: both fail once the "holds the entity" bits are opened,
    // before any points are, the bank saying why.
    let gov_only = p.data.gov.keys().find(|id| !p.data.bank.contains_key(*id)).unwrap();
    let (gov, bank) = p.run(&checkup_job(&train_id, gov_only, "CONSENT-X"), false);
    for r in [&gov, &bank] {
        assert_ne!(r.state, JobState::Succeeded);
        let names: Vec<String> =
            transcript_records(r, "reveal").iter().map(|v| v["reveal"]["name"].as_str().unwrap().to_string()).collect();
        assert_eq!(names, ["checkup_gov_holds_entity", "checkup_bank_holds_entity"]);
    }
    let err = bank.error.as_deref().unwrap();
    assert!(err.contains(&format!("entity '{gov_only}' (params.entity) is not in dataset 'bank_features'")), "{err}");
    let err = gov.error.as_deref().unwrap();
    assert!(err.contains("the bank does not hold entity"), "{err}");
}

#[test]
fn a_checkup_without_consent_or_entity_is_refused() {
    let mut s = job("demo-checkup.toml", |_| {});
    checkup(&mut s).consent = None;
    let err = format!("{:#}", s.validate().unwrap_err());
    assert!(err.contains("params.consent is missing"), "{err}");
    checkup(&mut s).consent = Some(" ".into());
    assert!(format!("{:#}", s.validate().unwrap_err()).contains("params.consent is missing"));
    checkup(&mut s).consent = Some("REF-1".into());
    checkup(&mut s).entity = None;
    assert!(format!("{:#}", s.validate().unwrap_err()).contains("params.entity is missing"));
    checkup(&mut s).entity = Some("1".into());
    s.reveal.push(node::jobs::spec::Reveal::Psi(protocol::psi::PsiReveal::Both));
    assert!(format!("{:#}", s.validate().unwrap_err()).contains("exactly [\"checkup_to_gov\"]"));
}

#[test]
fn dimension_config_errors_name_the_key() {
    let mut c = node::config::Config::load(&repo_root().join("configs/gov.toml")).unwrap();
    let dims = &c.datasets["gov_features"].dimensions;
    assert_eq!(dims["registration"], ["x0", "x1", "x2"], "the bundled config groups columns");
    c.validate().unwrap();
    let d = &mut c.datasets.get_mut("gov_features").unwrap().dimensions;
    d.insert("other".into(), vec!["x2".into()]);
    let err = format!("{:#}", c.validate().unwrap_err());
    assert!(
        err.contains("datasets.gov_features.dimensions: column 'x2' is in both 'other' and 'registration'"),
        "{err}"
    );
    let d = &mut c.datasets.get_mut("gov_features").unwrap().dimensions;
    d.insert("other".into(), vec![]);
    let err = format!("{:#}", c.validate().unwrap_err());
    assert!(err.contains("datasets.gov_features.dimensions.other lists no column"), "{err}");
}
