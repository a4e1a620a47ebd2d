//! Disclosure control of secure scoring and test metrics: capped scores against the plaintext
//! scorecard, binned metrics against plaintext counts, what crosses the reveal path (each
//! channel's gate is a `Ledger` allowing only the job's rules), and the input and range checks.

mod common;

use std::sync::{Arc, Mutex};

use common::{Prepared, party_data};
use models::capped::{FixedScorecard, metric_thresholds};
use models::metrics::{ScoreBins, auc};
use models::reference::TrainParams;
use models::scorecard::{ScoreOutput, Scorecard};
use models::secure_lr::{ModelArtifact, ModelReveal, Score, TrainOutput, secure_score, secure_train};
use models::watchlist::{self, Flags, secure_watchlist};
use protocol::disclose::{Disclosure, Ledger};
use protocol::fixed::FixedPoint;
use protocol::mpc::Engine;
use protocol::transcript::{Direction, FrameEvent, FrameObserver};
use protocol::{Channel, Role, channel::run_pair};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Payload bytes of the opening frames (`open.*`) this party received.
#[derive(Clone, Default)]
struct OpenedBytes(Arc<Mutex<usize>>);
impl FrameObserver for OpenedBytes {
    fn on_frame(&mut self, f: &FrameEvent<'_>) {
        if f.direction == Direction::Received && f.kind.starts_with("open.") {
            *self.0.lock().unwrap() += f.payload.len();
        }
    }
}

/// One party's result, its ledger's records and the opening bytes it received.
type Party<T> = (protocol::Result<T>, Vec<Disclosure>, usize);

/// Runs `f` at both parties, each channel gated by a ledger allowing only `rules`.
fn gated<T: Send>(rules: &[&str], f: impl Fn(&mut Engine, Role) -> protocol::Result<T> + Sync) -> (Party<T>, Party<T>) {
    let party = |ch: &mut Channel, seed: u64| {
        let (ledger, opened) = (Ledger::allowing(rules), OpenedBytes::default());
        ch.set_gate(Box::new(ledger.clone()));
        ch.set_observer(Box::new(opened.clone()));
        let role = ch.role();
        // Model logic only: correlated OTs from the test dealer (protocol's own tests cover the
        // real sources).
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let result = f(&mut Engine::with_test_dealer(ch, FixedPoint::new(16), 7, &mut rng), role);
        let bytes = *opened.0.lock().unwrap();
        (result, ledger.records(), bytes)
    };
    run_pair(|ch| party(ch, 1), |ch| party(ch, 2))
}

fn params() -> TrainParams {
    TrainParams { epochs: 1, batch_size: 128, learning_rate: 0.5, seed: 3, ..Default::default() }
}

/// Trains with `test_output`, each channel allowing `rules`.
fn train(
    d: &Prepared,
    reveal: ModelReveal,
    test_output: Option<ScoreOutput>,
    rules: &[&str],
) -> (Party<TrainOutput>, Party<TrainOutput>) {
    let (params, scorecard) = (params(), Scorecard::default());
    let job = d.job(&params, reveal, &scorecard, test_output);
    gated(rules, |e, role| secure_train(e, &party_data(d, role), &job))
}

fn names(records: &[Disclosure]) -> Vec<&str> {
    records.iter().map(|r| r.name.as_str()).collect()
}

/// `rows` of a party's block.
fn block(x: &[f64], cols: usize, rows: &[usize]) -> Vec<f64> {
    rows.iter().flat_map(|&r| x[r * cols..(r + 1) * cols].to_vec()).collect()
}

/// The ring logits secure scoring computes for a model whose owners know their blocks: each
/// party's calibrated partial a·(x·w) (the bank's plus a·bias + b) encoded, then added.
fn ring_logits(d: &Prepared, gov: &ModelArtifact, bank: &ModelArtifact, rows: &[usize]) -> Vec<u64> {
    let fp = FixedPoint::new(16);
    let cal = bank.calibration;
    assert_eq!(cal, gov.calibration, "both fit the same calibration");
    let partial = |x: &[f64], w: &[f64], offset: f64| -> Vec<u64> {
        x.chunks_exact(w.len())
            .map(|r| fp.encode(cal.a * r.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + offset))
            .collect()
    };
    let g = partial(&block(&d.gov_x, d.gov_features.len(), rows), gov.gov.weights.as_ref().unwrap(), 0.0);
    let b = partial(
        &block(&d.bank_x, d.bank_features.len(), rows),
        bank.bank.weights.as_ref().unwrap(),
        cal.a * bank.bias.unwrap() + cal.b,
    );
    g.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect()
}

/// Plaintext calibrated logits of the joint model behind two artifacts (revealed blocks or added
/// shares).
fn plain_logits(d: &Prepared, gov: &ModelArtifact, bank: &ModelArtifact, rows: &[usize]) -> Vec<f64> {
    let fp = FixedPoint::new(16);
    let (w_g, w_b, bias): (Vec<f64>, Vec<f64>, f64) = match (&gov.shares, &bank.shares) {
        (Some(g), Some(b)) => {
            let add = |x: &[u64], y: &[u64]| x.iter().zip(y).map(|(a, c)| fp.decode(a.wrapping_add(*c))).collect();
            (add(&g.gov, &b.gov), add(&g.bank, &b.bank), fp.decode(g.bias.wrapping_add(b.bias)))
        }
        _ => (gov.gov.weights.clone().unwrap(), bank.bank.weights.clone().unwrap(), bank.bias.unwrap()),
    };
    let (xg, xb) = (block(&d.gov_x, w_g.len(), rows), block(&d.bank_x, w_b.len(), rows));
    xg.chunks_exact(w_g.len())
        .zip(xb.chunks_exact(w_b.len()))
        .map(|(a, b)| {
            bank.calibration.apply(
                a.iter().zip(&w_g).map(|(x, w)| x * w).sum::<f64>()
                    + b.iter().zip(&w_b).map(|(x, w)| x * w).sum::<f64>()
                    + bias,
            )
        })
        .collect()
}

type Scored = Party<Option<Vec<Score>>>;

/// Scores `rows` under `output` with only `scores_to_bank` allowed.
fn score(
    d: &Prepared,
    gov: &ModelArtifact,
    bank: &ModelArtifact,
    rows: &[usize],
    output: ScoreOutput,
) -> (Scored, Scored) {
    let (gx, bx) = (block(&d.gov_x, d.gov_features.len(), rows), block(&d.bank_x, d.bank_features.len(), rows));
    gated(&["scores_to_bank"], |e, role| match role {
        Role::Gov => secure_score(e, gov, &gx, output),
        Role::Bank => secure_score(e, bank, &bx, output),
    })
}

#[test]
fn capped_scores_equal_the_plaintext_scorecard_and_nothing_finer_is_opened() {
    let d = common::default_credit(1500, 7);
    let rows: Vec<usize> = d.test.iter().take(80).copied().collect();
    let n = rows.len();
    let sc = Scorecard::default();
    let card = FixedScorecard::new(&sc, FixedPoint::new(16)).unwrap();
    for reveal in [ModelReveal::OwnBlock, ModelReveal::None] {
        let ((g, _, _), (b, _, _)) = train(&d, reveal, None, &["model_to_owners", "metrics"]);
        let (ga, ba) = (g.unwrap().artifact, b.unwrap().artifact);
        let plain = plain_logits(&d, &ga, &ba, &rows);

        let mut by_output = Vec::new();
        for output in [ScoreOutput::Grade, ScoreOutput::Points, ScoreOutput::Probability] {
            let ((gs, g_records, g_bytes), (bs, b_records, b_bytes)) = score(&d, &ga, &ba, &rows, output);
            assert!(gs.unwrap().is_none(), "the gov learns no scores");
            let scores = bs.unwrap().unwrap();
            // One disclosure, gov → bank, of n values (2n with points), recorded alike by both.
            assert_eq!(g_records, b_records);
            assert_eq!(names(&b_records), ["scores"]);
            let r = &b_records[0];
            assert_eq!((r.rule.as_str(), r.from, r.to), ("scores_to_bank", Role::Gov, Role::Bank));
            let (values, summary) = match output {
                ScoreOutput::Grade => (n, format!("grades of {n} rows")),
                ScoreOutput::Points => (2 * n, format!("grades and integer points of {n} rows")),
                ScoreOutput::Probability => (n, format!("logits of {n} rows")),
            };
            assert!(r.summary.starts_with(&summary), "{}", r.summary);
            assert_eq!((g_bytes, b_bytes), (0, 8 + 8 * values), "bulk header + the opened values, to the bank only");
            for s in &scores {
                assert_eq!(s.points.is_some(), output >= ScoreOutput::Points, "{output:?}: {s:?}");
                assert_eq!(s.logit.is_some() && s.probability.is_some(), output == ScoreOutput::Probability);
            }
            by_output.push(scores);
        }
        let (grades, points, full) = (&by_output[0], &by_output[1], &by_output[2]);
        let fp = FixedPoint::new(16);
        let mut near_half = 0;
        for i in 0..n {
            // The logit opened at Probability defines grade and points exactly (FixedScorecard).
            let z = fp.encode(full[i].logit.unwrap());
            let want = card.score(z, ScoreOutput::Points);
            assert_eq!((&grades[i].grade, &points[i].grade, &full[i].grade), (&want.grade, &want.grade, &want.grade));
            assert_eq!((points[i].points, full[i].points), (want.points, want.points), "row {i}");
            // Against the plaintext model in f64: round-half-up of offset − factor·z, except where
            // the exact points are within 1e-3 of a rounding boundary (fixed-point rounding of z).
            let exact = sc.points_from_logit(plain[i]);
            if ((exact - exact.floor()) - 0.5).abs() < 1e-3 {
                near_half += 1;
                continue;
            }
            let p = (exact + 0.5).floor();
            assert_eq!(want.points, Some(p as i64), "{reveal:?} row {i}: exact points {exact}");
            assert_eq!(want.grade, sc.grade(p), "{reveal:?} row {i}");
        }
        assert!(near_half <= 1, "{near_half} rows near a rounding boundary");
        if reveal == ModelReveal::OwnBlock {
            // Owners' partial logits are deterministic: the ring logits are reproduced exactly.
            let z = ring_logits(&d, &ga, &ba, &rows);
            for (i, s) in full.iter().enumerate() {
                assert_eq!(fp.encode(s.logit.unwrap()), z[i]);
                assert_eq!(s.points, Some(card.points(z[i])));
            }
        }
    }
}

#[test]
fn metrics_without_test_scores_are_binned_counts_equal_to_plaintext() {
    let d = common::default_credit(3000, 5);
    let y = d.test_labels();
    for reveal in [ModelReveal::OwnBlock, ModelReveal::None] {
        let rules = ["model_to_owners", "metrics"];
        let ((g, g_records, _), (b, b_records, _)) = train(&d, reveal, None, &rules);
        let (g, b) = (g.unwrap(), b.unwrap());
        assert!(g.test_scores.is_none() && b.test_scores.is_none(), "no per-row test score");
        assert_eq!(g_records, b_records);
        let opened = names(&b_records);
        let model: &[&str] = if reveal == ModelReveal::OwnBlock {
            &["model_gov_weights", "model_bank_weights", "model_bias"]
        } else {
            &[]
        };
        let counts = ["training_logit_bins", "training_logit_bins", "test_metrics", "test_metrics"];
        assert_eq!(opened, [model, &counts].concat(), "{reveal:?}: only model and counts");
        assert!(b_records.iter().all(|r| r.phase != "lr-test-scores" && r.rule != "scores_to_bank"));
        let (gm, bm) = (g.artifact.metrics.clone().unwrap(), b.artifact.metrics.clone().unwrap());
        assert_eq!(gm, bm, "both derive the same metrics from the same counts");
        let bins = bm.bins.clone().unwrap();

        let plain = plain_logits(&d, &g.artifact, &b.artifact, &d.test);
        let card = FixedScorecard::new(&Scorecard::default(), FixedPoint::new(16)).unwrap();
        let thresholds = metric_thresholds(&card);
        assert_eq!(bins.thresholds, thresholds, "the ⅛-logit grid and the grade cut-offs");
        if reveal == ModelReveal::OwnBlock {
            // Exactly the plaintext counts of the ring logits.
            let fp = FixedPoint::new(16);
            let z: Vec<f64> =
                ring_logits(&d, &g.artifact, &b.artifact, &d.test).iter().map(|&v| fp.decode(v)).collect();
            assert_eq!(bins, ScoreBins::count(&z, &y, &thresholds));
            assert_eq!(Some(bm.clone()), ScoreBins::count(&z, &y, &thresholds).metrics());
        } else {
            // Shared model: the logits carry ±1-ulp truncation noise, so a row within 1e-3 of a
            // threshold may land in the next bin; all other rows are counted as in plaintext.
            let want = ScoreBins::count(&plain, &y, &thresholds);
            let near = plain.iter().filter(|z| thresholds.iter().any(|t| (*z - t).abs() < 1e-3)).count() as u64;
            let moved: u64 = bins
                .positives
                .iter()
                .zip(&want.positives)
                .chain(bins.negatives.iter().zip(&want.negatives))
                .map(|(a, c)| a.abs_diff(*c))
                .sum();
            assert!(moved <= 2 * near, "{moved} rows moved, {near} near a threshold");
        }
        let exact = auc(&plain, &y);
        println!(
            "{reveal:?}: binned AUC {:.5}, exact {exact:.5}, bound {:.5}; KS {:.4}",
            bm.auc,
            bins.auc_error_bound(),
            bm.ks
        );
        assert!((bm.auc - exact).abs() <= bins.auc_error_bound() + 1e-9);
        assert!(bins.auc_error_bound() < 0.03, "⅛-logit bins bound the AUC gap here by 0.03");
        assert_eq!((bm.n, bm.positives), (d.test.len(), y.iter().filter(|&&l| l == 1.0).count()));
    }
}

#[test]
fn test_scores_under_a_cap_are_opened_at_that_level_only() {
    let d = common::default_credit(1500, 9);
    let rules = ["model_to_owners", "metrics", "scores_to_bank"];
    // Grade: grades to the bank, metrics from binned counts; Points: metrics from the points.
    let ((g, _, _), (b, records, _)) = train(&d, ModelReveal::OwnBlock, Some(ScoreOutput::Grade), &rules);
    let (g, b) = (g.unwrap(), b.unwrap());
    assert!(g.test_scores.is_none());
    let scores = b.test_scores.unwrap();
    assert!(scores.iter().all(|s| s.points.is_none() && s.logit.is_none()));
    let z = ring_logits(&d, &g.artifact, &b.artifact, &d.test);
    let card = FixedScorecard::new(&Scorecard::default(), FixedPoint::new(16)).unwrap();
    assert!(scores.iter().zip(&z).all(|(s, &zi)| s.grade == card.grade_name(card.grade_index(zi))));
    assert!(b.artifact.metrics.unwrap().bins.is_some());
    assert_eq!(
        names(&records)[3..],
        ["training_logit_bins", "training_logit_bins", "scores", "test_metrics", "test_metrics"]
    );

    let ((g, _, _), (b, records, _)) = train(&d, ModelReveal::OwnBlock, Some(ScoreOutput::Points), &rules);
    let (g, b) = (g.unwrap(), b.unwrap());
    let scores = b.test_scores.unwrap();
    assert!(scores.iter().zip(&z).all(|(s, &zi)| s.points == Some(card.points(zi)) && s.logit.is_none()));
    let risk: Vec<f64> = scores.iter().map(|s| -(s.points.unwrap() as f64)).collect();
    let m = b.artifact.metrics.clone().unwrap();
    assert!(m.bins.is_none() && (m.auc - auc(&risk, &d.test_labels())).abs() < 1e-12);
    assert_eq!(g.artifact.metrics, Some(m), "the gov receives the bank's metrics");
    assert_eq!(names(&records)[3..], ["training_logit_bins", "training_logit_bins", "scores", "test_metrics"]);
}

#[test]
fn a_huge_feature_value_fails_naming_the_column() {
    let mut d = common::default_credit(300, 1);
    let cols = d.gov_features.len();
    d.gov_x[d.test[3] * cols + 2] = 1e308;
    let ((g, _, _), (b, _, _)) = train(&d, ModelReveal::OwnBlock, None, &["model_to_owners", "metrics"]);
    let msg = g.unwrap_err().to_string();
    assert!(msg.contains(&format!("feature '{}'", d.gov_features[2])) && msg.contains("finite"), "{msg}");
    assert!(b.is_err(), "the bank stops when the gov does");
}

#[test]
fn scoring_inputs_are_clipped_to_the_training_range_and_counted() {
    let d = common::default_credit(1500, 7);
    let ((g, _, _), (b, _, _)) = train(&d, ModelReveal::OwnBlock, None, &["model_to_owners", "metrics"]);
    let (ga, ba) = (g.unwrap().artifact, b.unwrap().artifact);
    let st = ga.gov.standardizer.as_ref().unwrap();
    let (cols, row) = (d.gov_features.len(), d.test[0]);
    // The raw row (standardisation undone), with column 1 ten million standard deviations out.
    let mut raw: Vec<f64> = (0..cols).map(|c| d.gov_x[row * cols + c] * st.std[c] + st.mean[c]).collect();
    raw[1] = st.mean[1] + 1e7 * st.std[1];
    let one_row = |x: Vec<f64>| models::dataset::Dataset {
        source: "gov.csv".into(),
        ids: vec!["k".into()],
        id_lines: vec![2],
        columns: d.gov_features.clone(),
        x,
        levels: vec![None; cols],
        label: None,
    };
    let out = st.apply(&one_row(raw.clone())).unwrap();
    assert_eq!(out.clipped_total(), 1);
    let mut at_max = raw.clone();
    at_max[1] = st.max[1];
    assert_eq!(out.x, st.apply(&one_row(at_max)).unwrap().x, "clipped to the training maximum");

    let bank_row = block(&d.bank_x, d.bank_features.len(), &[row]);
    let score_row = |gov_x: Vec<f64>| {
        let ((g, _, _), (b, _, _)) = gated(&["scores_to_bank"], |e, role| match role {
            Role::Gov => secure_score(e, &ga, &gov_x, ScoreOutput::Points),
            Role::Bank => secure_score(e, &ba, &bank_row, ScoreOutput::Points),
        });
        (g, b)
    };
    let (_, clipped) = score_row(out.x.clone());
    // The points of the clipped row, from the partial logits in plaintext.
    let fp = FixedPoint::new(16);
    let cal = ba.calibration;
    let partial = |x: &[f64], w: &[f64], offset: f64| {
        fp.encode(cal.a * x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + offset)
    };
    let z = partial(&out.x, ga.gov.weights.as_ref().unwrap(), 0.0).wrapping_add(partial(
        &bank_row,
        ba.bank.weights.as_ref().unwrap(),
        cal.a * ba.bias.unwrap() + cal.b,
    ));
    let card = FixedScorecard::new(&Scorecard::default(), fp).unwrap();
    assert_eq!(clipped.unwrap().unwrap()[0].points, Some(card.points(z)));
    // Unclipped, the value dominates the gov's partial logit and scoring refuses it.
    let unclipped: Vec<f64> = raw.iter().enumerate().map(|(c, v)| (v - st.mean[c]) / st.std[c]).collect();
    let (g, b) = score_row(unclipped);
    let msg = g.unwrap_err().to_string();
    assert!(msg.contains("partial logit of scored row 0") && msg.contains("512"), "{msg}");
    assert!(b.is_err());
}

#[test]
fn opened_values_out_of_range_fail_clearly() {
    let d = common::default_credit(1500, 7);
    let ((g, _, _), (b, _, _)) = train(&d, ModelReveal::None, None, &["metrics"]);
    let (mut ga, ba) = (g.unwrap().artifact, b.unwrap().artifact);
    // A shared model whose logits are about 2000: beyond what scoring accepts.
    let shares = ga.shares.as_mut().unwrap();
    shares.bias = shares.bias.wrapping_add(FixedPoint::new(16).encode(2000.0));
    let rows: Vec<usize> = d.test.iter().take(5).copied().collect();
    for (output, what) in
        [(ScoreOutput::Probability, "beyond ±1024"), (ScoreOutput::Points, "outside the scorecard's range")]
    {
        let ((g, _, _), (b, _, _)) = score(&d, &ga, &ba, &rows, output);
        assert!(g.unwrap().is_none());
        let msg = b.unwrap_err().to_string();
        assert!(msg.contains("row 0") && msg.contains(what), "{msg}");
    }
}

#[test]
fn watchlist_flags_equal_the_plaintext_threshold_and_the_bank_learns_only_the_count() {
    let d = common::default_credit(1500, 7);
    let rows: Vec<usize> = d.test.iter().take(120).copied().collect();
    let fp = FixedPoint::new(16);
    for reveal in [ModelReveal::OwnBlock, ModelReveal::None] {
        let ((g, _, _), (b, _, _)) = train(&d, reveal, None, &["model_to_owners", "metrics"]);
        let (ga, ba) = (g.unwrap().artifact, b.unwrap().artifact);
        let plain = plain_logits(&d, &ga, &ba, &rows);
        // A threshold near the median PD, so that both outcomes occur.
        let mut sorted = plain.clone();
        sorted.sort_by(f64::total_cmp);
        let pd = 1.0 / (1.0 + (-sorted[rows.len() / 2]).exp());
        let t = watchlist::threshold_logit(pd).unwrap();
        let (gx, bx) = (block(&d.gov_x, d.gov_features.len(), &rows), block(&d.bank_x, d.bank_features.len(), &rows));
        let ((gf, g_records, g_bytes), (bf, b_records, b_bytes)) = gated(&[watchlist::RULE], |e, role| match role {
            Role::Gov => secure_watchlist(e, &ga, &gx, pd),
            Role::Bank => secure_watchlist(e, &ba, &bx, pd),
        });
        let Flags::Gov(flags) = gf.unwrap() else { panic!("the gov gets the flags") };
        // Against the plaintext model; rows within a few ulps of the threshold may go either way.
        let mut expected = 0;
        for (i, (&f, &z)) in flags.iter().zip(&plain).enumerate() {
            if (z - t).abs() < 4.0 / fp.scale() {
                continue;
            }
            assert_eq!(f, z > t, "{reveal:?} row {i}: logit {z} vs threshold {t}");
            expected += 1;
        }
        assert!(expected >= rows.len() - 2);
        let flagged = flags.iter().filter(|&&f| f).count();
        assert!(flagged > 10 && flagged < rows.len() - 10, "{flagged} flagged");
        assert_eq!(bf.unwrap(), Flags::Bank(flagged), "the bank learns the count");
        // Two disclosures under the watch-list rule, recorded alike; the bank receives 8 bytes.
        assert_eq!(g_records, b_records);
        assert_eq!(names(&g_records), ["watchlist_flags", "watchlist_count"]);
        assert_eq!((g_records[0].to, g_records[1].to), (Role::Gov, Role::Bank));
        assert_eq!((g_bytes, b_bytes), (8 + 8 * rows.len(), 8 + 8));
        // Without the rule the gate refuses the opening.
        let ((g, _, _), (b, _, _)) = gated(&["scores_to_bank"], |e, role| match role {
            Role::Gov => secure_watchlist(e, &ga, &gx, pd),
            Role::Bank => secure_watchlist(e, &ba, &bx, pd),
        });
        assert!(g.is_err() && b.is_err());
    }
    assert!(watchlist::threshold_logit(1.0).is_err() && watchlist::threshold_logit(0.0).is_err());
}
