//! Disclosure control between two real daemons: what the policies refuse so that the bank cannot
//! turn scores into the gov's columns (column minimum, scoring approval, daily scoring budget).

mod common;

use common::jobs::*;
use node::jobs::record::JobState;

/// A job refused on both nodes with the refusal text naming `rule`.
fn assert_refused_naming(gov: &node::jobs::record::JobRecord, bank: &node::jobs::record::JobRecord, rule: &str) {
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
    let train = |for_scoring: bool| {
        let spec = job("demo-train.toml", |s| {
            s.params.insert("epochs".into(), 1.into());
            s.params.insert("for_scoring".into(), for_scoring.into());
        });
        let (gov, bank) = p.run(&spec, false);
        assert_succeeded(&gov, &bank);
        gov.id
    };
    let score = |model: &str| {
        p.run(
            &job("demo-score.toml", |s| {
                s.params.insert("model".into(), model.into());
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
                s.params.insert("model".into(), model.into());
            }),
            true,
        )
    };

    let unapproved = train(false);
    let (gov, bank) = score(&unapproved);
    for r in [&gov, &bank] {
        assert_eq!(r.state, JobState::Failed);
        assert!(r.error.as_deref().unwrap_or_default().contains("was not approved for scoring"), "{:?}", r.error);
    }
    assert!(!p.job_file(&p.bank_config, &gov.id, "scores.csv").exists());

    let model = train(true);
    let (gov, bank) = score(&model);
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
