//! Disclosure control between two real daemons: what the policies refuse so that the bank cannot
//! turn scores into the gov's columns (column minimum, scoring approval, daily scoring budget).

mod common;

use std::collections::HashSet;

use common::jobs::*;
use common::jobs::{score, test_ids_file, train};
use models::scorecard::ScoreOutput;
use node::jobs::record::{JobRecord, JobState};
use node::jobs::spec::Reveal;
use node::jobs::spec::TrainModel;
use serde_json::Value;

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// A job refused on both nodes with the refusal text naming `rule`.
fn assert_refused_naming(gov: &JobRecord, bank: &JobRecord, rule: &str) {
    for r in [gov, bank] {
        assert_ne!(r.state, JobState::Succeeded, "{}: the job must not run", r.id);
        let err = r.error.as_deref().unwrap_or_default();
        assert!(err.contains(rule), "{}: {err}", r.id);
    }
}

#[test]
fn a_one_column_model_is_refused_by_the_gov_policy() {
    // The bank would accept it (its minimum is 1); the gov's default minimum of 3 refuses.
    let p = pair(&[], |_, bank| bank.policy.min_model_columns = 1);
    let spec = job("demo-train.toml", |s| s.gov.columns.truncate(1));
    let (gov, bank) = p.run(&spec, true);
    assert_refused_naming(&gov, &bank, "policy.min_model_columns");
    assert!(
        gov.error.as_deref().unwrap().contains("the gov side of the model has 1 feature column"),
        "{:?}",
        gov.error
    );
}

#[test]
fn score_jobs_need_an_approved_model_and_stay_within_the_gov_budget() {
    // The common ids of the test data (gov drops every 10th row, the bank every 7th); the budget
    // leaves room for one scoring of the intersection plus 3 named ids.
    let n = (0..ROWS).filter(|i| i % 10 != 3 && i % 7 != 5).count() as u64;
    let p = pair(&[], |gov, _| gov.policy.score_budget_per_day = n + 3);
    assert_eq!(p.data.common_ids().len() as u64, n);
    let train_model = |for_scoring: bool| {
        let spec = job("demo-train.toml", |s| {
            train(s).epochs = Some(1);
            train(s).for_scoring = Some(for_scoring);
        });
        let (gov, bank) = p.run(&spec, false);
        assert_succeeded(&gov, &bank);
        gov.id
    };
    let score_with = |model: &str| {
        p.run(
            &job("demo-score.toml", |s| {
                score(s).model = Some(model.into());
            }),
            false,
        )
    };
    let lookup = |model: &str, ids: &[String]| {
        let lines: Vec<String> = ids.iter().enumerate().map(|(i, id)| format!("{id},CONSENT-{i}")).collect();
        std::fs::write(
            p.bank_config.node.data_dir.join("queries.csv"),
            format!("id,consent_ref\n{}\n", lines.join("\n")),
        )
        .unwrap();
        p.run(
            &job("demo-score-ids.toml", |s| {
                score(s).model = Some(model.into());
            }),
            true,
        )
    };

    let unapproved = train_model(false);
    let (gov, bank) = score_with(&unapproved);
    for r in [&gov, &bank] {
        assert_eq!(r.state, JobState::Failed);
        assert!(r.error.as_deref().unwrap_or_default().contains("was not approved for scoring"), "{:?}", r.error);
    }
    assert!(!p.job_file(&p.bank_config, &gov.id, "scores.csv").exists());

    let model = train_model(true);
    let (gov, bank) = score_with(&model);
    assert_succeeded(&gov, &bank);
    assert_eq!(gov.outcome["scored_entities"], n);
    let named: Vec<String> = p.data.common_ids().into_iter().take(5).collect();
    let (gov, bank) = lookup(&model, &named);
    assert_eq!(gov.state, JobState::Failed, "5 more would exceed the budget by 2");
    let err = gov.error.as_deref().unwrap();
    assert!(err.contains("policy.score_budget_per_day") && err.contains(&format!("({n} scored today")), "{err}");
    assert_ne!(bank.state, JobState::Succeeded);
    let (gov, bank) = lookup(&model, &named[..3]);
    assert_succeeded(&gov, &bank);
    assert_eq!(gov.outcome["scored_entities"], 3);
}

// ---- wire scan: what crossed to the other node, byte by byte

/// Consecutive values a window covers: a run of 4 values in a known row order is 32 bytes that
/// random traffic does not contain by chance.
const WINDOW: usize = 4;

/// Every 4-value window of `values` (in the given row order) as f64 and as fixed point with
/// `frac_bits`, keeping only windows with at least 10 distinct byte values (so runs of small
/// integers, which also occur in headers and counters, are not searched for).
fn windows(values: &[f64], frac_bits: u32) -> HashSet<Vec<u8>> {
    let fp = protocol::fixed::FixedPoint::new(frac_bits);
    let encodings: [Vec<[u8; 8]>; 2] = [
        values.iter().map(|v| v.to_le_bytes()).collect(),
        values.iter().map(|v| fp.encode(*v).to_le_bytes()).collect(),
    ];
    let mut out = HashSet::new();
    for enc in &encodings {
        for w in enc.windows(WINDOW) {
            let bytes: Vec<u8> = w.concat();
            if bytes.iter().collect::<HashSet<_>>().len() >= 10 {
                out.insert(bytes);
            }
        }
    }
    out
}

/// The payloads of the frames `record`'s node received in this job (from its payload capture).
fn received_payloads(record: &JobRecord) -> Vec<(String, Vec<u8>)> {
    let path = record.transcript.as_ref().unwrap();
    let payloads = std::fs::read(node::audit::payloads_path(path)).unwrap();
    transcript_records(record, "frame")
        .iter()
        .filter(|f| f["dir"] == "received")
        .map(|f| {
            let (at, len) = (f["offset"].as_u64().unwrap() as usize, f["len"].as_u64().unwrap() as usize);
            (f["kind"].as_str().unwrap().to_string(), payloads[at..at + len].to_vec())
        })
        .collect()
}

/// Frames among `payloads` that contain any of `windows`: (frame kind, offset).
fn find(payloads: &[(String, Vec<u8>)], windows: &HashSet<Vec<u8>>) -> Vec<(String, usize)> {
    let len = WINDOW * 8;
    let mut hits = Vec::new();
    for (kind, p) in payloads {
        for at in 0..p.len().saturating_sub(len - 1) {
            if windows.contains(&p[at..at + len]) {
                hits.push((kind.clone(), at));
            }
        }
    }
    hits
}

/// Fails with `what`, the number of hits and the first few, if any of `windows` is in `payloads`.
fn assert_none_found(payloads: &[(String, Vec<u8>)], windows: &HashSet<Vec<u8>>, what: &str) {
    let hits = find(payloads, windows);
    assert!(hits.is_empty(), "{what} {} times, first {:?}", hits.len(), &hits[..hits.len().min(3)]);
}

/// What one node's data looks like in every encoding and row order a leak would take: its raw
/// and standardised columns and its partial scores `x·w`, in the aligned order and in the test
/// rows' order, as f64 and as fixed point.
fn data_windows(
    rows: &[Vec<f64>],
    orders: &[Vec<usize>],
    model: &Value,
    block: &str,
    frac_bits: u32,
) -> HashSet<Vec<u8>> {
    let b = &model["artifact"][block];
    let get = |v: &Value| -> Vec<f64> { serde_json::from_value(v.clone()).unwrap() };
    let (mean, std, w) = (get(&b["standardizer"]["mean"]), get(&b["standardizer"]["std"]), get(&b["weights"]));
    let mut out = HashSet::new();
    for order in orders {
        for c in 0..mean.len() {
            let raw: Vec<f64> = order.iter().map(|&r| rows[r][c]).collect();
            let std_col: Vec<f64> = raw.iter().map(|v| (v - mean[c]) / std[c]).collect();
            out.extend(windows(&raw, frac_bits));
            out.extend(windows(&std_col, frac_bits));
        }
        let partial: Vec<f64> = order
            .iter()
            .map(|&r| rows[r].iter().enumerate().map(|(c, v)| (v - mean[c]) / std[c] * w[c]).sum())
            .collect();
        out.extend(windows(&partial, frac_bits));
    }
    out
}

/// Checks, from the transcript alone, that every frame that opened a value (kind `open.*`) is
/// listed by a reveal record; returns the names of the opened values.
fn opened_values(record: &JobRecord) -> Vec<String> {
    let listed: Vec<String> = transcript_records(record, "reveal")
        .iter()
        .flat_map(|r| r["reveal"]["frames"].as_array().cloned().unwrap_or_default())
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    let mut names = Vec::new();
    for f in transcript_records(record, "frame") {
        let kind = f["kind"].as_str().unwrap();
        if let Some(name) = kind.strip_prefix("open.") {
            let hash = f["hash"].as_str().unwrap();
            assert!(
                listed.iter().any(|h| h == hash),
                "{}: frame {kind} opened a value without a reveal record",
                record.id
            );
            names.push(name.to_string());
        }
    }
    names
}

#[test]
fn without_scores_in_its_policy_the_gov_sends_nothing_of_its_data_and_the_bank_nothing_of_its_own() {
    let p = pair(&[], |gov, bank| {
        gov.policy.reveals.retain(|r| *r != Reveal::ScoresToBank);
        gov.transcript.payloads = true;
        bank.transcript.payloads = true;
    });
    // Test rows named by a list both nodes hold, so the test knows their order.
    let common = p.data.common_ids();
    let test_ids: HashSet<String> = common.iter().filter(|id| id.ends_with(['1', '4', '7'])).cloned().collect();
    let text = format!("id\n{}\n", test_ids.iter().cloned().collect::<Vec<_>>().join("\n"));
    for c in [&p.gov_config, &p.bank_config] {
        std::fs::create_dir_all(&c.node.data_dir).unwrap();
        std::fs::write(c.node.data_dir.join("test_ids.txt"), &text).unwrap();
    }
    let spec = job("demo-train.toml", |s| {
        test_ids_file(s, "test_ids.txt");
        // Raw columns, so that the scan below knows every standardised value.
        train(s).model = Some(TrainModel::RawLr);
        s.reveal.retain(|r| *r != Reveal::WoeToOwner);
    });
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    let train_id = gov.id.clone();
    assert!(gov.outcome.contains_key("test_auc"), "metrics are computed without opening scores: {:?}", gov.outcome);
    // A score job is refused by the gov's policy before any protocol step.
    let (sg, sb) = p.run(
        &job("demo-score.toml", |s| {
            score(s).model = Some(train_id.clone());
        }),
        true,
    );
    assert_refused_naming(&sg, &sb, "reveal 'scores_to_bank' is not allowed on node 'gov'");

    let (_, aligned) = read_csv(&p.job_file(&p.bank_config, &train_id, "intersection.csv"));
    let ids: Vec<String> = aligned.iter().map(|r| r[0].clone()).collect();
    let all: Vec<usize> = (0..ids.len()).collect();
    let test: Vec<usize> = all.iter().copied().filter(|&r| test_ids.contains(&ids[r])).collect();
    let frac_bits = train(&mut spec.clone()).train_params().frac_bits;
    let gov_rows: Vec<Vec<f64>> = ids.iter().map(|id| p.data.gov[id].clone()).collect();
    let bank_rows: Vec<Vec<f64>> = ids.iter().map(|id| p.data.bank[id].0.clone()).collect();
    let model = |c: &node::config::Config| read_json(&c.node.data_dir.join(format!("models/{train_id}.json")));
    let gov_data = data_windows(&gov_rows, &[all.clone(), test.clone()], &model(&p.gov_config), "gov", frac_bits);
    let bank_data = data_windows(&bank_rows, &[all, test], &model(&p.bank_config), "bank", frac_bits);

    let at_bank = received_payloads(&bank);
    let at_gov = received_payloads(&gov);
    assert!(at_bank.iter().map(|(_, b)| b.len()).sum::<usize>() > 100_000, "the capture holds the training traffic");
    // The scan finds what it looks for: one of the gov's windows planted in a copy of the traffic.
    let planted = gov_data.iter().next().unwrap().clone();
    let mut control = at_bank[..1].to_vec();
    control[0].1.splice(3..3, planted);
    assert_eq!(find(&control, &gov_data).len(), 1, "the scan finds a planted window at an odd offset");

    assert_none_found(&at_bank, &gov_data, "the bank received the gov's data");
    assert_none_found(&at_gov, &bank_data, "the gov received the bank's data");
    // What was opened is exactly the model blocks to their owners, the bias and the metrics.
    for r in [&gov, &bank] {
        let mut opened = opened_values(r);
        opened.sort();
        opened.dedup();
        assert_eq!(
            opened,
            ["model_bank_weights", "model_bias", "model_gov_weights", "test_metrics", "training_logit_bins"],
            "{}",
            r.id
        );
    }
}

#[test]
fn with_the_gov_cap_at_grade_the_bank_learns_grades_only() {
    let p = pair(&[], |gov, bank| {
        gov.policy.score_output = ScoreOutput::Grade;
        gov.transcript.payloads = true;
        bank.transcript.payloads = true;
    });
    let spec = job("demo-train.toml", |s| {
        s.reveal.push(Reveal::ScoresToBank);
        train(s).score_output = Some(ScoreOutput::Grade);
        train(s).model = Some(TrainModel::RawLr);
        s.reveal.retain(|r| *r != Reveal::WoeToOwner);
    });
    let (gov, bank) = p.run(&spec, false);
    assert_succeeded(&gov, &bank);
    let model_id = gov.id.clone();
    // A finer output than the gov's cap is refused by the gov's policy.
    let finer = job("demo-score.toml", |s| {
        score(s).model = Some(model_id.clone());
        score(s).score_output = Some(ScoreOutput::Points);
    });
    let (g, b) = p.run(&finer, true);
    assert_refused_naming(&g, &b, "policy.score_output");
    let (sgov, sbank) = p.run(
        &job("demo-score.toml", |s| {
            score(s).model = Some(model_id.clone());
            score(s).score_output = Some(ScoreOutput::Grade);
        }),
        false,
    );
    assert_succeeded(&sgov, &sbank);

    // The bank's scores file has a grade per entity and nothing finer; each grade is the
    // plaintext model's (rows within 0.01 point of a grade cut-off are skipped: rounding).
    let (header, rows) = read_csv(&p.job_file(&p.bank_config, &sgov.id, "scores.csv"));
    assert_eq!(header, ["id", "probability", "points", "grade"]);
    let model = |c: &node::config::Config| read_json(&c.node.data_dir.join(format!("models/{model_id}.json")));
    let (gm, bm) = (model(&p.gov_config), model(&p.bank_config));
    let card = models::scorecard::Scorecard::default();
    let mut checked = 0;
    for row in &rows {
        assert!(row[1].is_empty() && row[2].is_empty(), "only the grade is known: {row:?}");
        let z = partial(&gm, "gov", &p.data.gov[&row[0]])
            + partial(&bm, "bank", &p.data.bank[&row[0]].0)
            + bm["artifact"]["bias"].as_f64().unwrap();
        let cal = &bm["artifact"]["calibration"];
        let points = card.points_from_logit(cal["a"].as_f64().unwrap() * z + cal["b"].as_f64().unwrap());
        // Integer points round half up: a row whose real points are near `cut − 0.5` may fall
        // either side through fixed-point rounding.
        if card.grades.iter().all(|c| (points - (c.min_points - 0.5)).abs() > 0.02) {
            assert_eq!(row[3], card.grade(points.round()), "{}: points {points}", row[0]);
            checked += 1;
        }
    }
    assert!(checked > rows.len() * 9 / 10, "{checked} of {} grades checked", rows.len());

    // On the wire: none of the gov's data reached the bank; what was opened per row is the
    // score reveal under scores_to_bank, and the reveal records say grades.
    let (_, aligned) = read_csv(&p.job_file(&p.bank_config, &model_id, "intersection.csv"));
    let ids: Vec<String> = aligned.iter().map(|r| r[0].clone()).collect();
    let gov_rows: Vec<Vec<f64>> = ids.iter().map(|id| p.data.gov[id].clone()).collect();
    let frac_bits = train(&mut spec.clone()).train_params().frac_bits;
    let gov_data = data_windows(&gov_rows, &[(0..ids.len()).collect()], &gm, "gov", frac_bits);
    for r in [&bank, &sbank] {
        assert_none_found(&received_payloads(r), &gov_data, &format!("{}: the bank received the gov's data", r.id));
    }
    let mut opened = opened_values(&sbank);
    opened.dedup();
    assert_eq!(opened, ["scores"]);
    let opened_reveals: Vec<Value> =
        transcript_records(&sbank, "reveal").into_iter().filter(|r| r["reveal"].get("frames").is_some()).collect();
    assert_eq!(opened_reveals.len(), 1);
    for r in opened_reveals {
        let reveal = &r["reveal"];
        assert_eq!(
            (reveal["rule"].as_str(), reveal["to"][0].as_str()),
            (Some("policy.reveals: scores_to_bank"), Some("bank"))
        );
        assert!(reveal["summary"].as_str().unwrap().starts_with("grades of"), "{reveal}");
    }
}

/// One block's plaintext partial logit from a node's model file, raw values clipped to the
/// training range as scoring does.
fn partial(model: &Value, block: &str, x: &[f64]) -> f64 {
    let b = &model["artifact"][block];
    let get = |v: &Value| -> Vec<f64> { serde_json::from_value(v.clone()).unwrap() };
    let st = &b["standardizer"];
    let (mean, std, w) = (get(&st["mean"]), get(&st["std"]), get(&b["weights"]));
    let (min, max) = (get(&st["min"]), get(&st["max"]));
    x.iter().enumerate().map(|(c, v)| (v.clamp(min[c], max[c]) - mean[c]) / std[c] * w[c]).sum()
}
