//! The binned evaluation against the exact one on real data: default_credit through the
//! plaintext reference trainer (the model the secure trainer reproduces).

mod common;

use models::capped::{FixedScorecard, bin_thresholds, metric_thresholds};
use models::evaluation::{Evaluation, Source};
use models::metrics::ScoreBins;
use models::reference::{TrainParams, train_reference};
use models::scorecard::Scorecard;
use protocol::fixed::FixedPoint;

#[test]
fn binned_evaluation_of_default_credit_is_within_its_bounds_of_the_exact_one() {
    let d = common::default_credit(30_000, 7);
    let cols = d.gov_features.len() + d.bank_features.len();
    let params = TrainParams { epochs: 5, ..Default::default() };
    let model = train_reference(&d.joint_x(), cols, &d.y, &d.train, &params, false);
    let (z, y) = (d.test_logits(&model), d.test_labels());
    let card = FixedScorecard::new(&Scorecard::default(), FixedPoint::new(16)).unwrap();
    let cuts = card.grade_cuts();
    let exact = Evaluation::from_rows(&z, &y, None, &cuts).unwrap();
    let bins = ScoreBins::count(&z, &y, &metric_thresholds(&card));
    let e = Evaluation::from_bins(&bins, &cuts).unwrap();
    println!(
        "default_credit, {} test rows: AUC {:.4} binned {:.4} ± {:.4}; KS {:.4} binned {:.4} (+{:.4}); \
         Brier {:.4} binned {:.4} ± {:.4}",
        e.rows, exact.auc, e.auc, e.auc_bound, exact.ks, e.ks, e.ks_bound, exact.brier, e.brier, e.brier_bound
    );
    assert_eq!((e.source, e.rows, e.bads), (Source::Bins, exact.rows, exact.bads));
    assert!((e.auc - exact.auc).abs() <= e.auc_bound && (e.gini - exact.gini).abs() <= e.gini_bound);
    assert!(exact.ks >= e.ks && exact.ks <= e.ks + e.ks_bound);
    assert!((e.brier - exact.brier).abs() <= e.brier_bound);
    // On real data the midpoint estimates are far closer than their worst-case bounds.
    assert!((e.brier - exact.brier).abs() < 1e-3 && (e.auc - exact.auc).abs() < 2e-3);
    assert_eq!(e.grades, exact.grades, "grade cut-offs among the thresholds: exact per grade");
    assert_eq!(e.grade_rows_uncertain, 0);
    // Deciles of whole bins: the rows in a group's logit range (its bins' outer edges), by a
    // direct loop, are its rows, and their exact mean PD lies within the stated bound.
    for dec in &e.deciles {
        let inside = |v: f64| dec.logit_low.is_none_or(|lo| v > lo) && dec.logit_high.is_none_or(|hi| v <= hi);
        let members: Vec<usize> = (0..z.len()).filter(|&i| inside(z[i])).collect();
        let pd = members.iter().map(|&i| 1.0 / (1.0 + (-z[i]).exp())).sum::<f64>() / members.len() as f64;
        let bads = members.iter().filter(|&&i| y[i] == 1.0).count() as u64;
        assert_eq!((members.len() as u64, bads), (dec.rows, dec.bads), "decile {}", dec.group);
        assert!(
            (dec.predicted_pd - pd).abs() <= dec.predicted_bound,
            "decile {}: {} vs {pd}",
            dec.group,
            dec.predicted_pd
        );
        println!(
            "  decile {:>2}: {:>5} rows, predicted {:.4} ± {:.4} (exact {pd:.4}), observed {:.4}, lift {:.2}",
            dec.group, dec.rows, dec.predicted_pd, dec.predicted_bound, dec.observed_rate, dec.lift
        );
    }
    // Without the cut-offs among the thresholds, grades are approximate and say so.
    let coarse = Evaluation::from_bins(&ScoreBins::count(&z, &y, &bin_thresholds()), &cuts).unwrap();
    assert!(coarse.grade_rows_uncertain > 0);
}
