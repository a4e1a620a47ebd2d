//! Train and score jobs between two daemons, checked against plaintext computations in the test.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;

use common::jobs::*;
use common::jobs::{score, test_ids_file, train, watchlist};
use models::reference::{TrainParams, train_reference};
use models::scorecard::ScoreOutput;
use node::jobs::record::{JobRecord, JobState};
use node::jobs::spec::Reveal;
use node::jobs::spec::{TrainModel, Winsorize};
use serde_json::Value;

/// Population mean/std standardisation of `x` (rows × cols) fitted on `fit_rows`.
fn standardize(x: &[Vec<f64>], fit_rows: &[usize]) -> Vec<Vec<f64>> {
    let cols = x[0].len();
    let n = fit_rows.len() as f64;
    let mean: Vec<f64> = (0..cols).map(|c| fit_rows.iter().map(|&r| x[r][c]).sum::<f64>() / n).collect();
    let std: Vec<f64> =
        (0..cols).map(|c| (fit_rows.iter().map(|&r| (x[r][c] - mean[c]).powi(2)).sum::<f64>() / n).sqrt()).collect();
    x.iter().map(|row| row.iter().enumerate().map(|(c, v)| (v - mean[c]) / std[c]).collect()).collect()
}

/// One block's plaintext partial logit from a node's model file.
fn partial_logit(model: &Value, block: &str, x: &[f64]) -> f64 {
    let b = &model["artifact"][block];
    let f = |k: &str| -> Vec<f64> { serde_json::from_value(b[k].clone()).unwrap() };
    let st = |k: &str| serde_json::from_value::<Vec<f64>>(b["standardizer"][k].clone()).unwrap();
    let (mean, std, min, max) = (st("mean"), st("std"), st("min"), st("max"));
    // Values outside the training range are clipped to it before standardising.
    x.iter().zip(f("weights")).enumerate().map(|(c, (v, w))| (v.clamp(min[c], max[c]) - mean[c]) / std[c] * w).sum()
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn train_then_score_the_intersection_and_named_ids_match_plaintext() {
    let p = pair(&[], |_, _| {});
    let common = p.data.common_ids();
    // Test ids chosen here: every id ending in 0, 1 or 2, plus one the gov lacks (ignored).
    let test_ids: HashSet<String> = common.iter().filter(|id| id.ends_with(['0', '1', '2'])).cloned().collect();
    let file_text = std::iter::once("id".to_string())
        .chain(test_ids.iter().cloned())
        .chain(["999999".into()])
        .collect::<Vec<_>>()
        .join("\n");
    for c in [&p.gov_config, &p.bank_config] {
        std::fs::create_dir_all(&c.node.data_dir).unwrap();
        std::fs::write(c.node.data_dir.join("test_ids.txt"), &file_text).unwrap();
    }
    let params = TrainParams { epochs: 3, batch_size: 256, learning_rate: 0.5, seed: 3, ..TrainParams::default() };
    let spec = job("demo-train.toml", |s| {
        s.reveal.push(Reveal::ScoresToBank); // the bank learns the test scores (ROC, metrics)
        test_ids_file(s, "test_ids.txt");
        // Plain standardisation, as `standardize` here (jobs_messy_data checks winsorising).
        train(s).winsorize = Some(Winsorize::On(false));
        // Logistic regression on the standardised raw columns, recomputed below.
        train(s).model = Some(TrainModel::RawLr);
        s.reveal.retain(|r| *r != Reveal::WoeToOwner);
        let t = train(s);
        (t.epochs, t.batch_size, t.seed) = (Some(params.epochs), Some(params.batch_size), Some(params.seed));
    });
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    let train_id = gov.id.clone();

    // Plaintext reference on the same rows, order and split. Training orders the aligned rows by
    // the keyed hash of their ids under the job's seed (recomputed here), whatever PSI's order.
    let (_, aligned) = read_csv(&p.job_file(&p.bank_config, &train_id, "intersection.csv"));
    let mut ids: Vec<&str> = aligned.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids.len(), common.len());
    let order_key = blake3::derive_key("tandem train row order v1", &params.seed.to_le_bytes());
    ids.sort_by_key(|id| *blake3::keyed_hash(&order_key, id.as_bytes()).as_bytes());
    let test: Vec<usize> = (0..ids.len()).filter(|&i| test_ids.contains(ids[i])).collect();
    let train: Vec<usize> = (0..ids.len()).filter(|&i| !test_ids.contains(ids[i])).collect();
    let xg = standardize(&ids.iter().map(|id| p.data.gov[*id].clone()).collect::<Vec<_>>(), &train);
    let xb = standardize(&ids.iter().map(|id| p.data.bank[*id].0.clone()).collect::<Vec<_>>(), &train);
    let y: Vec<f64> = ids.iter().map(|id| p.data.bank[*id].1).collect();
    let joint: Vec<f64> =
        xg.iter().zip(&xb).flat_map(|(g, b)| g.iter().chain(b).copied().collect::<Vec<_>>()).collect();
    let reference = train_reference(&joint, 23, &y, &train, &params, false);
    let logits = reference.logits(&joint);
    let ref_auc = models::metrics::auc(
        &test.iter().map(|&i| logits[i]).collect::<Vec<_>>(),
        &test.iter().map(|&i| y[i]).collect::<Vec<_>>(),
    );
    for r in [&gov, &bank] {
        let auc = r.outcome["test_auc"].as_f64().unwrap();
        eprintln!("secure test AUC {auc}, plaintext reference {ref_auc}");
        assert!((auc - ref_auc).abs() < 0.005, "secure test AUC {auc}, plaintext reference {ref_auc}");
        assert_eq!(
            (r.outcome["n_train"].as_u64(), r.outcome["n_test"].as_u64()),
            (Some(train.len() as u64), Some(test.len() as u64))
        );
    }
    assert_eq!(gov.outcome["test_ids_not_in_intersection"], 1);
    let has_roc = |r: &JobRecord| transcript_records(r, "outcome").iter().any(|o| o["outcome"].get("roc").is_some());
    // Without scores_to_bank both learn only the binned test counts, and both keep their ROC curve.
    assert!(has_roc(&bank) && has_roc(&gov), "both transcripts carry the binned ROC curve");
    // Each node holds its own weights (model_to_owners), the bank the bias; files never overwritten.
    let gov_model = read_json(&p.gov_config.node.data_dir.join(format!("models/{train_id}.json")));
    let bank_model = read_json(&p.bank_config.node.data_dir.join(format!("models/{train_id}.json")));
    assert_eq!(gov_model, read_json(&p.job_file(&p.gov_config, &train_id, "model.json")));
    assert!(gov_model["artifact"]["bank"]["weights"].is_null() && gov_model["artifact"]["bias"].is_null());
    assert!(bank_model["artifact"]["gov"]["weights"].is_null() && bank_model["artifact"]["bias"].is_number());
    // Scores derive from the calibrated logit a·z + b (both nodes hold the same a, b).
    let cal = &bank_model["artifact"]["calibration"];
    assert_eq!(cal, &gov_model["artifact"]["calibration"]);
    let (a, b) = (cal["a"].as_f64().unwrap(), cal["b"].as_f64().unwrap());
    let plain_logit = |id: &str| {
        let z = partial_logit(&gov_model, "gov", &p.data.gov[id])
            + partial_logit(&bank_model, "bank", &p.data.bank[id].0)
            + bank_model["artifact"]["bias"].as_f64().unwrap();
        a * z + b
    };
    let check = |row: &[String], id: &str, at: usize| {
        let z = plain_logit(id);
        let (prob, points): (f64, f64) = (row[at].parse().unwrap(), row[at + 1].parse().unwrap());
        assert!((prob - 1.0 / (1.0 + (-z).exp())).abs() < 1e-4, "{id}: {prob} vs logit {z}");
        let expected_points = 600.0 - 20.0 / std::f64::consts::LN_2 * (50f64.ln() + z);
        // Integer points: the exact points rounded half up.
        assert!((points - expected_points).abs() <= 0.5 + 1e-3, "{id}: {points} vs {expected_points}");
        assert_eq!(points.fract(), 0.0);
    };

    // (a) every common entity, jointly; only the bank gets scores.csv.
    let spec = job("demo-score.toml", |s| {
        score(s).model = Some(train_id.clone());
        score(s).score_output = Some(ScoreOutput::Probability);
    });
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    assert!(!p.job_file(&p.gov_config, &gov.id, "scores.csv").exists());
    let (header, rows) = read_csv(&p.job_file(&p.bank_config, &gov.id, "scores.csv"));
    assert_eq!(header, ["id", "probability", "points", "grade"]);
    assert_eq!(rows.iter().map(|r| r[0].clone()).collect::<HashSet<_>>(), common);
    for row in &rows {
        check(row, &row[0], 1);
    }

    // (c) the gov's early-warning list at the median PD: the ids above it, computed here in
    // plaintext (ids within 1e-3 of the threshold's logit may go either way); the bank learns
    // only their number.
    let mut logits: Vec<(f64, &String)> = common.iter().map(|id| (plain_logit(id), id)).collect();
    logits.sort_by(|a, b| a.0.total_cmp(&b.0));
    let t = logits[logits.len() / 2].0 + 5e-3;
    let threshold = 1.0 / (1.0 + (-t).exp());
    let spec = job("demo-watchlist.toml", |s| {
        watchlist(s).model = Some(train_id.clone());
        watchlist(s).threshold = Some(threshold);
    });
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    let (header, rows) = read_csv(&p.job_file(&p.gov_config, &gov.id, "watchlist.csv"));
    assert_eq!(header, ["id"]);
    let listed: HashSet<String> = rows.into_iter().map(|r| r[0].clone()).collect();
    let t = (threshold / (1.0 - threshold)).ln();
    for (z, id) in &logits {
        if (z - t).abs() > 1e-3 {
            assert_eq!(listed.contains(*id), *z > t, "{id}: logit {z}, threshold {t}");
        }
    }
    assert!(listed.len() > common.len() / 3 && listed.len() < common.len() * 2 / 3, "{} listed", listed.len());
    assert_eq!(
        (gov.outcome["flagged"].as_u64(), bank.outcome["flagged"].as_u64()),
        (Some(listed.len() as u64), Some(listed.len() as u64))
    );
    assert!(!p.job_file(&p.bank_config, &gov.id, "watchlist.csv").exists(), "the bank gets no list");

    // (b) named ids by private lookup, submitted at the bank.
    let mut named: Vec<String> = common.iter().take(5).cloned().collect();
    let bank_only = p.data.bank.keys().find(|id| !p.data.gov.contains_key(*id)).unwrap().clone();
    named.push(bank_only.clone());
    named.push("NO-SUCH-ID".into());
    let queries: Vec<String> = named.iter().enumerate().map(|(i, id)| format!("{id},CONSENT-{i}")).collect();
    std::fs::write(
        p.bank_config.node.data_dir.join("queries.csv"),
        format!("id,consent_ref\n{}\n", queries.join("\n")),
    )
    .unwrap();
    let spec = job("demo-score-ids.toml", |s| {
        score(s).model = Some(train_id.clone());
    });
    let (gov, bank) = p.run(&spec, true);
    assert_succeeded(&gov, &bank);
    assert_eq!(gov.outcome["queries"], named.len() - 1, "the id the bank does not hold is not looked up");
    assert!(!gov.outcome.contains_key("consent_refs") && !p.job_file(&p.gov_config, &gov.id, "scores.csv").exists());
    let consents: Vec<String> = (0..named.len()).map(|i| format!("CONSENT-{i}")).collect();
    assert_eq!(bank.outcome["consent_refs"], serde_json::json!(consents));
    let (header, rows) = read_csv(&p.job_file(&p.bank_config, &gov.id, "scores.csv"));
    assert_eq!(header, ["id", "consent_ref", "status", "probability", "points", "grade"]);
    assert_eq!(rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>(), named);
    for row in &rows[..5] {
        assert_eq!(row[2], "ok");
        check(row, &row[0], 3);
    }
    assert_eq!((rows[5][2].as_str(), rows[6][2].as_str()), ("not found at gov", "not in the bank's dataset"));
    assert!(rows[5][3].is_empty() && rows[6][3].is_empty());

    // Everything the jobs wrote is owner-only.
    for c in [&p.gov_config, &p.bank_config] {
        let data = &c.node.data_dir;
        let mut expected = vec![
            (data.clone(), 0o700),
            (data.join("jobs.redb"), 0o600),
            (data.join("models"), 0o700),
            (data.join(format!("models/{train_id}.json")), 0o600),
            (c.job_dir(&train_id), 0o700),
        ];
        for name in ["transcript.jsonl", "intersection.csv", "model.json", "audit.key"] {
            expected.push((c.job_dir(&train_id).join(name), 0o600));
        }
        expected.push((c.job_dir(&gov.id).join("transcript.jsonl"), 0o600));
        for (path, mode) in expected {
            let m = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(m.permissions().mode() & 0o777, mode, "{}", path.display());
        }
    }
    let scores = p.job_file(&p.bank_config, &gov.id, "scores.csv");
    assert_eq!(std::fs::metadata(&scores).unwrap().permissions().mode() & 0o777, 0o600);

    // A model kept as shares cannot serve named ids: both nodes refuse before any lookup.
    let shared_id = format!("{train_id}-shared");
    for c in [&p.gov_config, &p.bank_config] {
        let mut m = read_json(&c.node.data_dir.join(format!("models/{train_id}.json")));
        m["job_id"] = shared_id.clone().into();
        m["artifact"]["reveal"] = "none".into();
        std::fs::write(c.node.data_dir.join(format!("models/{shared_id}.json")), m.to_string()).unwrap();
    }
    let spec = job("demo-score-ids.toml", |s| {
        score(s).model = Some(shared_id.clone());
    });
    let (gov, bank) = p.run(&spec, true);
    for r in [&gov, &bank] {
        assert_eq!(r.state, JobState::Failed);
        assert!(r.error.as_deref().unwrap().contains("kept as secret shares (model_shared)"), "{:?}", r.error);
    }
}

#[test]
fn a_job_that_fails_after_psi_leaves_no_result_files() {
    let p = pair(&[], |_, _| {});
    // Each node reads `test_ids.txt` from its own data_dir; different lists make the train phase
    // refuse after PSI has completed (and would have written intersection.csv).
    let common: Vec<String> = p.data.common_ids().into_iter().collect();
    for (config, ids) in [(&p.gov_config, &common[..50]), (&p.bank_config, &common[50..100])] {
        std::fs::create_dir_all(&config.node.data_dir).unwrap();
        std::fs::write(config.node.data_dir.join("test_ids.txt"), ids.join("\n")).unwrap();
    }
    let spec = job("demo-train.toml", |s| {
        test_ids_file(s, "test_ids.txt");
    });
    let (gov, bank) = p.run(&spec, false);
    for (r, config) in [(&gov, &p.gov_config), (&bank, &p.bank_config)] {
        assert_eq!(r.state, JobState::Failed, "{:?}", r.outcome);
        assert!(r.error.as_deref().unwrap_or_default().contains("train"), "{:?}", r.error);
        for name in ["intersection.csv", "model.json"] {
            assert!(!p.job_file(config, &r.id, name).exists(), "{name} of a failed job");
        }
        let dir = std::fs::read_dir(config.job_dir(&r.id)).unwrap();
        let mut names: Vec<String> = dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["audit.key", "transcript.jsonl"], "only the transcript and its audit key remain");
        let outcome = transcript_records(r, "outcome");
        assert_eq!(outcome.last().unwrap()["outcome"]["status"], "failed");
    }
}

#[test]
fn two_runs_of_a_train_job_hold_out_the_same_entities_and_give_the_same_model() {
    let p = pair(&[], |_, _| {});
    let spec = job("demo-train.toml", |s| {
        s.reveal.push(Reveal::ScoresToBank); // the test scores give the metrics
        train(s).epochs = Some(2);
    });
    let runs = [p.run(&spec, false), p.run(&spec, false)];
    for (gov, bank) in &runs {
        assert_succeeded(gov, bank);
    }
    // PSI aligned the rows in another order in each run...
    let aligned = |id: &str| read_csv(&p.job_file(&p.bank_config, id, "intersection.csv")).1;
    assert_ne!(aligned(&runs[0].0.id), aligned(&runs[1].0.id), "PSI's order is random");
    // ... yet both runs held out the entities the split's definition picks (recomputed here):
    // the keyed hash of the id under split_seed 42, below test_fraction 0.3.
    let key = blake3::derive_key("tandem train split v1", &42u64.to_le_bytes());
    let common = p.data.common_ids();
    let n_test = common
        .iter()
        .filter(|id| {
            let h = blake3::keyed_hash(&key, id.as_bytes());
            (u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) as f64) < 0.3 * 2f64.powi(64)
        })
        .count();
    for r in runs.iter().flat_map(|(g, b)| [g, b]) {
        assert_eq!(r.outcome["n_test"], n_test);
        assert_eq!(r.outcome["n_train"], common.len() - n_test);
    }
    // The same metrics and models in both runs, up to the fixed-point truncation of the secret
    // shares, the one random step left (±1 ulp of 2^-frac_bits per product). Before the split
    // was keyed by id, runs of one job differed by up to 0.03 in test AUC.
    for r in [&runs[0].0, &runs[1].0, &runs[1].1] {
        assert_eq!(r.outcome["test_positives"], runs[0].1.outcome["test_positives"]);
        for k in ["test_auc", "test_ks"] {
            let (x, y) = (r.outcome[k].as_f64().unwrap(), runs[0].1.outcome[k].as_f64().unwrap());
            eprintln!("{k}: {x} vs {y}");
            assert!((x - y).abs() < 1e-3, "{k}: {x} vs {y}");
        }
    }
    let mut max_diff = 0f64;
    for config in [&p.gov_config, &p.bank_config] {
        let model = |id: &str| read_json(&config.node.data_dir.join(format!("models/{id}.json")))["artifact"].clone();
        let (a, b) = (model(&runs[0].0.id), model(&runs[1].0.id));
        for block in ["gov", "bank"] {
            assert_eq!(a[block]["standardizer"], b[block]["standardizer"], "the same training rows");
            assert_eq!(a[block]["woe"], b[block]["woe"], "the same bins and WOE");
            let w = |m: &Value| serde_json::from_value::<Option<Vec<f64>>>(m[block]["weights"].clone()).unwrap();
            for (x, y) in w(&a).unwrap_or_default().iter().zip(w(&b).unwrap_or_default()) {
                max_diff = max_diff.max((x - y).abs());
            }
        }
    }
    eprintln!("largest weight difference between the runs: {max_diff:e}");
    assert!(max_diff < 1e-3, "{max_diff}");
}

#[test]
fn the_evaluation_and_stability_reach_outcome_and_report_and_match_plaintext() {
    use models::capped::FixedScorecard;
    use models::evaluation::{Evaluation, Stability};
    use protocol::fixed::FixedPoint;

    let p = pair(&[], |_, _| {});
    let common = p.data.common_ids();
    let test_ids: HashSet<String> = common.iter().filter(|id| id.ends_with(['3', '6'])).cloned().collect();
    let list = std::iter::once("id".to_string()).chain(test_ids.iter().cloned()).collect::<Vec<_>>().join("\n");
    for c in [&p.gov_config, &p.bank_config] {
        std::fs::create_dir_all(&c.node.data_dir).unwrap();
        std::fs::write(c.node.data_dir.join("test_ids.txt"), &list).unwrap();
    }
    // Without scores_to_bank: the evaluation comes from the opened binned counts, at both nodes.
    let spec = job("demo-train.toml", |s| {
        test_ids_file(s, "test_ids.txt");
        train(s).epochs = Some(3);
        train(s).batch_size = Some(256);
        // Raw-feature LR with plain standardisation, recomputed here by `partial_logit`.
        train(s).model = Some(TrainModel::RawLr);
        train(s).winsorize = Some(Winsorize::On(false));
        s.reveal.retain(|r| *r != Reveal::WoeToOwner);
    });
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    let train_id = gov.id.clone();
    let eval_of = |r: &JobRecord| -> Evaluation { serde_json::from_value(r.outcome["evaluation"].clone()).unwrap() };
    let e = eval_of(&gov);
    assert_eq!(e, eval_of(&bank), "both derive it from the same counts");
    assert_eq!(gov.outcome["test_gini"].as_f64(), Some(e.gini));

    // Plaintext logits of the test entities under the two nodes' model files.
    let model = |c: &node::config::Config| read_json(&c.node.data_dir.join(format!("models/{train_id}.json")));
    let (gm, bm) = (model(&p.gov_config), model(&p.bank_config));
    let bias = bm["artifact"]["bias"].as_f64().unwrap();
    let cal = |k: &str| bm["artifact"]["calibration"][k].as_f64().unwrap();
    let (ca, cb) = (cal("a"), cal("b"));
    let ids: Vec<&String> = test_ids.iter().collect();
    let z: Vec<f64> = ids
        .iter()
        .map(|id| {
            ca * (partial_logit(&gm, "gov", &p.data.gov[*id]) + partial_logit(&bm, "bank", &p.data.bank[*id].0) + bias)
                + cb
        })
        .collect();
    let y: Vec<f64> = ids.iter().map(|id| p.data.bank[*id].1).collect();
    let card = FixedScorecard::new(&models::scorecard::Scorecard::default(), FixedPoint::new(16)).unwrap();
    let cuts = card.grade_cuts();
    let exact = Evaluation::from_rows(&z, &y, None, &cuts).unwrap();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let brier = z.iter().zip(&y).map(|(&v, &l)| (sig(v) - l).powi(2)).sum::<f64>() / z.len() as f64;
    // Fixed-point logits differ from these by ~1e-4: rows that close to a threshold may change bin.
    let thresholds = models::capped::metric_thresholds(&card);
    let near = z.iter().filter(|v| thresholds.iter().any(|t| (*v - t).abs() < 1e-3)).count();
    eprintln!(
        "binned AUC {:.4} ± {:.4} (exact {:.4}), Brier {:.4} ± {:.4} (exact {brier:.4}), KS {:.4} (exact {:.4}); {near} rows near a threshold",
        e.auc, e.auc_bound, exact.auc, e.brier, e.brier_bound, e.ks, exact.ks
    );
    assert_eq!((e.rows, e.bads), (z.len() as u64, y.iter().sum::<f64>() as u64));
    assert!((e.auc - exact.auc).abs() <= e.auc_bound + 1e-3);
    assert!((e.brier - brier).abs() <= e.brier_bound + 1e-3);
    assert!(exact.ks >= e.ks - 1e-2 && exact.ks <= e.ks + e.ks_bound + 1e-2);
    let moved: u64 = e.grades.iter().zip(&exact.grades).map(|(a, b)| a.rows.abs_diff(b.rows)).sum();
    assert!(moved <= 2 * near as u64, "grade counts: {:?} vs {:?}", e.grades, exact.grades);
    assert_eq!(e.deciles.iter().map(|d| d.rows).sum::<u64>(), e.rows);

    // The report of the train job: metric, calibration (SVG), gains and grade tables.
    let verified = node::audit::verify(gov.transcript.as_ref().unwrap()).unwrap();
    let html = node::audit::report::html(&verified);
    for part in ["Test evaluation", "Calibration by score decile", "Gains and lift", "Bad rate per grade", "Gini"] {
        assert!(html.contains(part), "{part}");
    }
    assert_eq!(html.matches("<circle").count(), e.deciles.len(), "one calibration point per decile");
    assert!(html.contains(&format!("{:.4}", e.auc)) && html.contains(&format!("{:.4}", e.brier)));
    assert!(e.grades.iter().all(|g| html.contains(&format!("<td>{}</td><td>{}</td>", g.grade, g.rows))));
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="), "self-contained");
    let text = node::audit::report::text(&verified);
    assert!(text.contains("Test evaluation") && text.contains("Calibration and gains by score decile"), "{text}");

    // A score job: the bank's PSI of the scored grades against the training population's.
    let spec = job("demo-score.toml", |s| {
        score(s).model = Some(train_id.clone());
        score(s).score_output = Some(ScoreOutput::Probability);
    });
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    assert!(!gov.outcome.contains_key("stability"), "the gov learns no score");
    let tables: Vec<Stability> = serde_json::from_value(bank.outcome["stability"].clone()).unwrap();
    assert_eq!(tables.iter().map(|t| t.basis.as_str()).collect::<Vec<_>>(), ["grade", "training score decile"]);
    let (_, rows) = read_csv(&p.job_file(&p.bank_config, &bank.id, "scores.csv"));
    let scored = rows.len() as f64;
    let share = |v: f64| v.max(1e-4);
    let psi: f64 = e
        .grades
        .iter()
        .map(|g| {
            let expected = share(g.rows as f64 / e.rows as f64);
            let actual = share(rows.iter().filter(|r| r[3] == g.grade).count() as f64 / scored);
            (actual - expected) * (actual / expected).ln()
        })
        .sum();
    assert!((tables[0].psi - psi).abs() < 1e-12, "{} vs {psi}", tables[0].psi);
    eprintln!("PSI by grade {psi:.4}, by training decile {:.4}", tables[1].psi);
    assert!(tables.iter().all(|t| t.psi < 0.1 && t.verdict == "stable"), "the same population: {tables:?}");
    let verified = node::audit::verify(bank.transcript.as_ref().unwrap()).unwrap();
    let html = node::audit::report::html(&verified);
    assert!(html.contains("Population stability by grade") && html.contains(&format!("PSI {:.4}", tables[0].psi)));
}

#[test]
fn a_default_train_job_fits_a_calibrated_woe_scorecard_and_scores_with_it() {
    let p = pair(&[], |_, _| {});
    let spec = job("demo-train.toml", |s| {
        s.reveal.push(Reveal::ScoresToBank);
        train(s).score_output = Some(ScoreOutput::Probability);
    });
    assert_eq!(train(&mut spec.clone()).model(), TrainModel::WoeScorecard, "the default");
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    let train_id = gov.id.clone();
    for r in [&gov, &bank] {
        assert_eq!(r.outcome["model_kind"], "woe_scorecard");
        assert_eq!(r.outcome["warnings"], serde_json::json!([]), "{}", r.id);
    }
    // The bank holds the test rows' probabilities (the gov only the metrics the bank sent).
    let (pd, rate) =
        (bank.outcome["test_mean_pd"].as_f64().unwrap(), bank.outcome["test_default_rate"].as_f64().unwrap());
    eprintln!("test AUC {}, mean PD {pd} vs observed {rate}", bank.outcome["test_auc"]);
    assert!((pd - rate).abs() < 0.2 * rate, "mean PD {pd} vs observed {rate}");
    // Each node's table: its own columns with IV and bins, the peer's by name only.
    let table = |r: &JobRecord| r.outcome["scorecard_table"].as_array().unwrap().clone();
    for (r, me) in [(&gov, "gov"), (&bank, "bank")] {
        for row in table(r) {
            let own = row["owner"] == me;
            assert_eq!(row["iv"].is_number(), own && row["feature"] != "(base points)", "{row}");
            assert_eq!(row["bins"].as_array().unwrap().is_empty(), !own, "{row}");
        }
    }
    assert!(table(&bank).iter().any(|row| row["feature"] == "(base points)"));
    // The gov learned its bins' event counts, under woe_to_owner, and nothing else new.
    let woe_reveals: Vec<Value> = transcript_records(&gov, "reveal")
        .into_iter()
        .filter(|r| r["reveal"]["name"] == "woe_gov_event_counts")
        .collect();
    assert_eq!(woe_reveals.len(), 1, "{woe_reveals:?}");
    assert_eq!(woe_reveals[0]["reveal"]["rule"], "policy.reveals: woe_to_owner");

    // Scoring the intersection: each probability is σ of the calibrated logit of the model files
    // applied to the raw rows here (bins → WOE → weights).
    let score = job("demo-score.toml", |s| {
        score(s).model = Some(train_id.clone());
        score(s).score_output = Some(ScoreOutput::Probability);
    });
    let (sg, sb) = p.run(&score, false);
    assert_succeeded(&sg, &sb);
    let saved = |c: &node::config::Config| -> node::jobs::phases::train::SavedModel {
        serde_json::from_value(read_json(&c.node.data_dir.join(format!("models/{train_id}.json")))).unwrap()
    };
    let (ga, ba) = (saved(&p.gov_config).artifact, saved(&p.bank_config).artifact);
    let partial = |block: &models::secure_lr::BlockModel, raw: &[f64]| -> f64 {
        let x = block.woe.as_ref().unwrap().apply(raw);
        x.iter().zip(block.weights.as_ref().unwrap()).map(|(a, b)| a * b).sum()
    };
    let (_, rows) = read_csv(&p.job_file(&p.bank_config, &sg.id, "scores.csv"));
    assert_eq!(rows.len(), p.data.common_ids().len());
    for row in &rows {
        let z = partial(&ga.gov, &p.data.gov[&row[0]]) + partial(&ba.bank, &p.data.bank[&row[0]].0) + ba.bias.unwrap();
        let want = 1.0 / (1.0 + (-ba.calibration.apply(z)).exp());
        let got: f64 = row[1].parse().unwrap();
        assert!((got - want).abs() < 1e-4, "{}: {got} vs {want}", row[0]);
    }
}

#[test]
fn a_woe_scorecard_needs_woe_to_owner_in_both_policies() {
    let p = pair(&[], |gov, _| gov.policy.reveals.retain(|r| *r != Reveal::WoeToOwner));
    // Submitted at the bank (the gov would refuse its own operator's job at submission).
    let (gov, bank) = p.run(&job("demo-train.toml", |_| {}), true);
    for r in [&gov, &bank] {
        assert_ne!(r.state, JobState::Succeeded);
        assert!(
            r.error.as_deref().unwrap().contains("reveal 'woe_to_owner' is not allowed on node 'gov'"),
            "{:?}",
            r.error
        );
    }
}
