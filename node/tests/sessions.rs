//! Scoring sessions between two daemons: queries checked against the plaintext model on the
//! test's own copy of the data, before and after the gov's data changes; budget and consent
//! refusals; what each transcript and the bank's log hold.

mod common;

use std::time::Duration;

use common::jobs::*;
use common::jobs::{score, train};
use node::jobs::record::JobState;
use node::jobs::spec::Reveal;
use node::jobs::spec::{TrainModel, Winsorize};
use node::sessions::{GOV_BUDGET, NOT_AT_BANK, NOT_AT_GOV, Query};
use serde_json::Value;

/// One block's plaintext partial logit from a node's model file (values clipped to the training
/// range, then standardised).
fn partial_logit(model: &Value, block: &str, x: &[f64]) -> f64 {
    let b = &model["artifact"][block];
    let st = |k: &str| serde_json::from_value::<Vec<f64>>(b["standardizer"][k].clone()).unwrap();
    let w: Vec<f64> = serde_json::from_value(b["weights"].clone()).unwrap();
    let (mean, std, min, max) = (st("mean"), st("std"), st("min"), st("max"));
    x.iter().zip(w).enumerate().map(|(c, (v, w))| (v.clamp(min[c], max[c]) - mean[c]) / std[c] * w).sum()
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn query(id: &str, consent: &str) -> Query {
    Query { id: id.into(), consent_ref: consent.into() }
}

#[test]
fn a_session_scores_after_a_refresh_and_refuses_past_budget_or_without_consent() {
    let p = pair(&[], |gov, _| gov.policy.score_budget_per_day = 8);
    let train = job("demo-train.toml", |s| {
        train(s).model = Some(TrainModel::RawLr);
        train(s).winsorize = Some(Winsorize::On(false));
        train(s).epochs = Some(2);
        s.reveal.retain(|r| *r != Reveal::WoeToOwner);
    });
    let (gov, bank) = p.run(&train, false);
    assert_succeeded(&gov, &bank);
    let train_id = gov.id.clone();
    let model = |c: &node::config::Config| read_json(&c.node.data_dir.join(format!("models/{train_id}.json")));
    let (gov_model, bank_model) = (model(&p.gov_config), model(&p.bank_config));
    let cal = &bank_model["artifact"]["calibration"];
    let (a, b) = (cal["a"].as_f64().unwrap(), cal["b"].as_f64().unwrap());
    let bias = bank_model["artifact"]["bias"].as_f64().unwrap();
    let probability = |gov_x: &[f64], id: &str| {
        let z = partial_logit(&gov_model, "gov", gov_x) + partial_logit(&bank_model, "bank", &p.data.bank[id].0) + bias;
        1.0 / (1.0 + (-(a * z + b)).exp())
    };

    let spec = job("demo-score-session.toml", |s| {
        score(s).model = Some(train_id.clone());
    });
    let session = p.bank_api.submit(&spec, "tester").unwrap().id;
    common::poll("the session to open at both nodes", || {
        (p.bank_api.sessions().unwrap().len() == 1 && p.gov_api.sessions().unwrap().len() == 1).then_some(())
    });
    assert_eq!(p.bank_api.sessions().unwrap()[0].entities, p.data.gov.len() as u64);

    let mut common_ids: Vec<String> = p.data.common_ids().into_iter().collect();
    common_ids.sort();
    let (x, w) = (&common_ids[0], &common_ids[1]);
    let bank_only = p.data.bank.keys().find(|id| !p.data.gov.contains_key(*id)).unwrap().clone();
    let score = |q: Vec<Query>| p.bank_api.score(None, q).unwrap();

    // A held id scores as the plaintext model; one the gov lacks is not found there.
    let r = score(vec![query(x, "CONSENT-1"), query(&bank_only, "CONSENT-2"), query("NO-SUCH-ID", "CONSENT-3")]);
    assert_eq!(r[0].status, "ok");
    let expected = probability(&p.data.gov[x], x);
    assert!((r[0].probability.unwrap() - expected).abs() < 1e-4, "{:?} vs {expected}", r[0]);
    assert_eq!((r[1].status.as_str(), r[2].status.as_str()), (NOT_AT_GOV, NOT_AT_BANK));

    // The gov's data changes: x gets w's features, bank_only is added.
    let path = &p.gov_config.datasets["gov_features"].path;
    let text = std::fs::read_to_string(path).unwrap();
    let line_of = |id: &str| text.lines().find(|l| l.split(',').next() == Some(id)).unwrap().to_string();
    let w_fields = line_of(w).split_once(',').unwrap().1.to_string();
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| if l.split(',').next() == Some(x.as_str()) { format!("{x},{w_fields}") } else { l.into() })
        .collect();
    lines.push(format!("{bank_only},{w_fields}"));
    std::fs::write(path, lines.join("\n") + "\n").unwrap();

    let r = score(vec![query(x, "CONSENT-4"), query(&bank_only, "CONSENT-5")]);
    let (now_x, now_added) = (probability(&p.data.gov[w], x), probability(&p.data.gov[w], &bank_only));
    assert!((expected - now_x).abs() > 1e-3, "the change moves x's score");
    assert!((r[0].probability.unwrap() - now_x).abs() < 1e-4, "{:?} vs {now_x}", r[0]);
    assert!((r[1].probability.unwrap() - now_added).abs() < 1e-4, "{:?} vs {now_added}", r[1]);
    let listed = &p.bank_api.sessions().unwrap()[0];
    assert_eq!((listed.refreshes, listed.entities, listed.queries), (1, p.data.gov.len() as u64 + 1, 4));

    // The gov answered 4 ids of its budget of 8: a batch of 5 is refused, one more is answered.
    let five: Vec<Query> = common_ids[2..7].iter().map(|id| query(id, "CONSENT-6")).collect();
    assert!(score(five).iter().all(|r| r.status == GOV_BUDGET));
    assert_eq!(score(vec![query(&common_ids[2], "CONSENT-7")])[0].status, "ok");

    // Without a consent reference nothing is scored.
    let e = p.bank_api.score(None, vec![query(x, " ")]).unwrap_err().to_string();
    assert!(e.contains("consent_ref is empty"), "{e}");

    // Closing ends the job on both nodes; both sign every query.
    p.bank_api.close_session(&session).unwrap();
    let bank = p.bank_api.wait(&session, Duration::from_secs(60), |_| {}).unwrap();
    let gov = common::daemons::wait_at(&p.gov_api, &session);
    assert_succeeded(&gov, &bank);
    for r in [&gov, &bank] {
        assert_eq!((r.outcome["session_queries"].as_u64(), r.outcome["session_refused"].as_u64()), (Some(5), Some(5)));
        assert_eq!(r.outcome["session_refreshes"], 1);
    }
    // Each node logged every admitted id (not the refused ones) before answering, so a restart
    // cannot reset its budget.
    for c in [&p.gov_config, &p.bank_config] {
        let log = std::fs::read_to_string(c.job_dir(&session).join("budget.jsonl")).unwrap();
        let ids: u64 = log.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["ids"].as_u64().unwrap()).sum();
        assert_eq!(ids, 5, "{log}");
    }
    let (gt, bt) = (gov.transcript.clone().unwrap(), bank.transcript.clone().unwrap());
    let c = node::audit::compare(&gt, &bt).unwrap();
    assert!(c.failures.is_empty(), "{:?}", c.failures);
    let gov_text = std::fs::read_to_string(&gt).unwrap();
    assert!(!gov_text.contains("CONSENT-"), "the gov records no consent reference");
    assert!(!gov_text.contains(&format!("\"{x}\"")), "nor a queried id");

    // The bank's log: each query's consent hash, keyed by the log's key, is in a reveal record.
    let log = std::fs::read_to_string(p.bank_config.job_dir(&session).join("session-log.jsonl")).unwrap();
    let log: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let key: [u8; 32] = hex::decode(log[0]["consent_hash_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert_eq!(log.len(), 1 + 3 + 2 + 5 + 1, "a line per query (and the key)");
    let named = |record: &node::jobs::record::JobRecord, name: &str| -> Vec<Value> {
        transcript_records(record, "reveal").into_iter().filter(|r| r["reveal"]["name"] == name).collect()
    };
    let reveals = named(&gov, "partial_scores");
    assert_eq!(reveals.len(), 3, "one reveal per answered request");
    // Every table update is a reveal record at both nodes: the set-up and one ahead of each of
    // the four queries (the refused one too); the one after the data change holds two entries
    // (x changed, bank_only added), the others none.
    for record in [&gov, &bank] {
        assert_eq!(named(record, "session_table").len(), 1 + 4);
        let lens: Vec<u64> = transcript_records(record, "frame")
            .iter()
            .filter(|f| f["kind"] == "open.session_table")
            .map(|f| f["len"].as_u64().unwrap())
            .collect();
        let entry = protocol::lookup::VERSIONED_ENTRY_LEN as u64;
        // Each update: its length (8 bytes), then its 17-byte header and the entries.
        assert_eq!(lens[lens.len() - 8..], [8, 17, 8, 17 + 2 * entry, 8, 17, 8, 17], "{lens:?}");
    }
    let hash = |consent: &str| hex::encode(&blake3::keyed_hash(&key, consent.as_bytes()).as_bytes()[..16]);
    for line in &log[1..] {
        let consent = line["result"]["consent_ref"].as_str().unwrap();
        assert_eq!(line["consent_hash"], hash(consent));
        let answered = line["result"]["status"] == "ok" || line["result"]["status"] == NOT_AT_GOV;
        let recorded = reveals.iter().any(|r| r["reveal"]["summary"].as_str().unwrap().contains(&hash(consent)));
        assert_eq!(answered, recorded, "{line}");
    }
    assert_eq!(bank.state, JobState::Succeeded);
}
