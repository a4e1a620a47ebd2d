//! Secure training and scoring on real data against the plaintext reference, over the in-memory
//! channel pair.

mod common;

use common::{Prepared, party_data};
use models::metrics::{Metrics, auc};
use models::reference::{LinearModel, TrainParams, train_reference};
use models::scorecard::{ScoreOutput, Scorecard};
use models::secure_lr::{GRAM_MAX_ABS, ModelArtifact, ModelReveal, TrainOutput, secure_score, secure_train};
use protocol::fixed::FixedPoint;
use protocol::mpc::{Engine, Sigmoid};
use protocol::{Channel, Error, InputError, Role, Stats, channel::run_pair};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Runs `f` for both parties, each on its own engine over the in-memory pair.
fn two_party<T: Send>(
    frac_bits: u32,
    f: impl Fn(&mut Engine, Role) -> protocol::Result<T> + Sync,
) -> ((protocol::Result<T>, Stats), (protocol::Result<T>, Stats)) {
    let party = |ch: &mut Channel, seed: u64| {
        let role = ch.role();
        // Model logic only: correlated OTs from the test dealer (protocol's own tests cover the
        // real sources).
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let result = f(&mut Engine::with_test_dealer(ch, FixedPoint::new(frac_bits), 7, &mut rng), role);
        (result, ch.stats())
    };
    run_pair(|ch| party(ch, 1), |ch| party(ch, 2))
}

fn train_both(d: &Prepared, params: &TrainParams, reveal: ModelReveal) -> (TrainOutput, TrainOutput, Stats) {
    let scorecard = Scorecard::default();
    let job = d.job(params, reveal, &scorecard, Some(ScoreOutput::Probability));
    let ((g, gs), (b, _)) = two_party(params.frac_bits, |e, role| secure_train(e, &party_data(d, role), &job));
    (g.unwrap(), b.unwrap(), gs)
}

/// The joint model behind two artifacts: revealed blocks, or shares added up.
fn joint_model(gov: &ModelArtifact, bank: &ModelArtifact) -> LinearModel {
    let fp = FixedPoint::new(gov.params.frac_bits);
    match (&gov.shares, &bank.shares) {
        (Some(g), Some(b)) => {
            let add = |x: &[u64], y: &[u64]| -> Vec<f64> {
                x.iter().zip(y).map(|(a, c)| fp.decode(a.wrapping_add(*c))).collect()
            };
            let mut weights = add(&g.gov, &b.gov);
            weights.extend(add(&g.bank, &b.bank));
            LinearModel { weights, bias: fp.decode(g.bias.wrapping_add(b.bias)) }
        }
        _ => {
            let mut weights = gov.gov.weights.clone().unwrap();
            weights.extend(bank.bank.weights.clone().unwrap());
            LinearModel { weights, bias: bank.bias.unwrap() }
        }
    }
}

/// The model whose logit is the calibrated one, a·(x·w + bias) + b: what scoring computes.
fn calibrated(model: &LinearModel, artifact: &ModelArtifact) -> LinearModel {
    let c = artifact.calibration;
    LinearModel { weights: model.weights.iter().map(|w| c.a * w).collect(), bias: c.apply(model.bias) }
}

#[test]
fn secure_training_matches_reference_on_default_credit() {
    let d = common::default_credit(6000, 42);
    let params =
        TrainParams { epochs: 3, batch_size: 256, learning_rate: 0.5, l2_c: Some(1.0), seed: 5, ..Default::default() };
    let start = std::time::Instant::now();
    let (gov, bank, stats) = train_both(&d, &params, ModelReveal::Both);
    println!(
        "secure training: {:.1} s, {} bytes, {} rounds",
        start.elapsed().as_secs_f64(),
        stats.total_bytes(),
        stats.rounds
    );

    let cols = d.gov_features.len() + d.bank_features.len();
    let reference = train_reference(&d.joint_x(), cols, &d.y, &d.train, &params, false);
    let revealed = joint_model(&gov.artifact, &bank.artifact);
    assert_eq!(joint_model(&bank.artifact, &gov.artifact), revealed, "Both: the parties see the same model");
    let max_dw = revealed.weights.iter().zip(&reference.weights).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("max |w_secure - w_reference| = {max_dw:.2e}, bias diff {:.2e}", (revealed.bias - reference.bias).abs());
    assert!(
        max_dw < 1e-3 && (revealed.bias - reference.bias).abs() < 1e-3,
        "weights drift from the reference by {max_dw}"
    );

    let y = d.test_labels();
    let ref_auc = auc(&d.test_logits(&reference), &y);
    let scores = bank.test_scores.as_ref().unwrap();
    assert!(gov.test_scores.is_none(), "test scores go to the bank only");
    let secure_logits: Vec<f64> = scores.iter().map(|s| s.logit.unwrap()).collect();
    let metrics = bank.artifact.metrics.clone().unwrap();
    println!("test AUC: secure {:.4}, reference {ref_auc:.4}; KS {:.4}", metrics.auc, metrics.ks);
    assert!((metrics.auc - ref_auc).abs() <= 0.001);
    assert_eq!(gov.artifact.metrics, Some(metrics.clone()), "the gov receives the bank's metrics");
    assert_eq!(metrics, Metrics::compute(&secure_logits, &y));
    // Scores are the plaintext scoring of the revealed model, up to fixed-point rounding (each
    // party's partial logit is rounded once: at most 2 · ½ ulp).
    assert_eq!(gov.artifact.calibration, bank.artifact.calibration, "both fit the same calibration");
    let plain = d.test_logits(&calibrated(&revealed, &bank.artifact));
    let ulp = 0.5f64.powi(params.frac_bits as i32);
    let max_dz = plain.iter().zip(&secure_logits).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(max_dz <= ulp + 1e-12, "scores differ from plaintext scoring by {max_dz}");
    let sc = &bank.artifact.scorecard;
    for (s, z) in scores.iter().zip(&plain) {
        let p = s.probability.unwrap();
        assert!((p - 1.0 / (1.0 + (-z).exp())).abs() < 1e-5);
        // Integer points: the scorecard's points rounded (half up), and the grade of those points.
        let points = s.points.unwrap() as f64;
        assert!((points - sc.points(p)).abs() <= 0.5 + 1e-3 && s.grade == sc.grade(points));
    }
}

#[test]
fn model_reveal_policies_are_honoured_and_scoring_matches() {
    let d = common::default_credit(1500, 7);
    let params = TrainParams { epochs: 1, batch_size: 128, learning_rate: 0.5, seed: 3, ..Default::default() };
    // More rows than one chunk of shared-model scoring (2048: homomorphic, then a small rest).
    let score_rows: Vec<usize> = d.train.iter().cycle().take(2100).copied().collect();
    let block = |x: &[f64], cols: usize| -> Vec<f64> {
        score_rows.iter().flat_map(|&r| x[r * cols..(r + 1) * cols].to_vec()).collect()
    };
    let (gov_rows, bank_rows) = (block(&d.gov_x, d.gov_features.len()), block(&d.bank_x, d.bank_features.len()));
    let joint = d.joint_x();
    let cols = d.gov_features.len() + d.bank_features.len();
    let joint_rows: Vec<f64> = score_rows.iter().flat_map(|&r| joint[r * cols..(r + 1) * cols].to_vec()).collect();

    for reveal in [ModelReveal::OwnBlock, ModelReveal::None] {
        let (gov, bank, _) = train_both(&d, &params, reveal);
        let (ga, ba) = (&gov.artifact, &bank.artifact);
        assert_eq!(ga.gov.features, ba.gov.features);
        assert!(
            ga.gov.standardizer.is_some() && ga.bank.standardizer.is_none(),
            "each party keeps only its standardisation"
        );
        assert!(ba.bank.standardizer.is_some() && ba.gov.standardizer.is_none());
        match reveal {
            ModelReveal::OwnBlock => {
                assert!(
                    ga.gov.weights.is_some() && ga.bank.weights.is_none() && ga.bias.is_none(),
                    "gov learns only its block"
                );
                assert!(
                    ba.bank.weights.is_some() && ba.gov.weights.is_none() && ba.bias.is_some(),
                    "bank: its block and the bias"
                );
                assert!(ga.shares.is_none() && ba.shares.is_none());
            }
            _ => {
                for a in [ga, ba] {
                    assert!(
                        a.gov.weights.is_none() && a.bank.weights.is_none() && a.bias.is_none(),
                        "None reveals nothing"
                    );
                    assert!(a.shares.is_some());
                }
            }
        }
        let model = calibrated(&joint_model(ga, ba), ba);
        let serialised = serde_json::to_string(ba).unwrap();
        assert_eq!(&serde_json::from_str::<ModelArtifact>(&serialised).unwrap(), ba);

        let test_logits: Vec<f64> = bank.test_scores.as_ref().unwrap().iter().map(|s| s.logit.unwrap()).collect();
        let max_dz = d.test_logits(&model).iter().zip(&test_logits).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(max_dz < 1e-3, "{reveal:?}: test scores differ from the model by {max_dz}");

        let ((gs, _), (bs, _)) = two_party(params.frac_bits, |e, role| match role {
            Role::Gov => secure_score(e, ga, &gov_rows, ScoreOutput::Probability),
            Role::Bank => secure_score(e, ba, &bank_rows, ScoreOutput::Probability),
        });
        assert!(gs.unwrap().is_none(), "the gov learns no scores");
        let scores = bs.unwrap().unwrap();
        let plain = model.logits(&joint_rows);
        let max_dz = plain.iter().zip(&scores).map(|(a, s)| (a - s.logit.unwrap()).abs()).fold(0.0, f64::max);
        assert!(max_dz < 1e-3, "{reveal:?}: secure_score differs from plaintext by {max_dz}");
    }
}

#[test]
fn mismatched_jobs_are_refused_before_training() {
    let d = common::default_credit(300, 1);
    let scorecard = Scorecard::default();
    let ((g, _), (b, _)) = two_party(TrainParams::default().frac_bits, |e, role| {
        let params = TrainParams { seed: role.index() as u64, sigmoid: Sigmoid::Linear, ..Default::default() };
        let job = d.job(&params, ModelReveal::Both, &scorecard, Some(ScoreOutput::Probability));
        secure_train(e, &party_data(&d, role), &job)
    });
    for r in [g, b] {
        let err = r.unwrap_err();
        assert!(matches!(err, Error::Mismatch { what: "job definitions", .. }), "{err}");
    }
}

#[test]
fn secure_training_with_clipped_sigmoid_matches_reference() {
    // The general path (secure forward pass, secure sigmoid, secure backward pass per batch).
    let d = common::default_credit(1500, 11);
    let params = TrainParams {
        epochs: 2,
        batch_size: 200,
        l2_c: Some(0.5),
        sigmoid: Sigmoid::ClippedLinear,
        seed: 9,
        ..Default::default()
    };
    let (gov, bank, _) = train_both(&d, &params, ModelReveal::Both);
    let cols = d.gov_features.len() + d.bank_features.len();
    let reference = train_reference(&d.joint_x(), cols, &d.y, &d.train, &params, false);
    let revealed = joint_model(&gov.artifact, &bank.artifact);
    let max_dw = revealed.weights.iter().zip(&reference.weights).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(max_dw < 1e-2 && (revealed.bias - reference.bias).abs() < 1e-2, "weights drift by {max_dw}");
    let ref_auc = auc(&d.test_logits(&reference), &d.test_labels());
    assert!((bank.artifact.metrics.clone().unwrap().auc - ref_auc).abs() <= 0.005);
}

#[test]
fn label_in_the_wrong_place_is_refused_locally() {
    let d = common::default_credit(300, 1);
    let scorecard = Scorecard::default();
    let params = TrainParams::default();
    let job = d.job(&params, ModelReveal::Both, &scorecard, Some(ScoreOutput::Probability));
    let ((g, _), (b, _)) = two_party(params.frac_bits, |e, role| {
        // Swapped: the gov passes the label, the bank none.
        let mut data = party_data(&d, role);
        data.label = if role == Role::Gov { Some(&d.y) } else { None };
        secure_train(e, &data, &job)
    });
    // Both are this party's own input; the messages name the fix.
    for (r, fix) in [(g, "gov must not pass a label"), (b, "bank needs one 0/1 label")] {
        assert!(matches!(&r, Err(Error::Input(InputError::Data(m))) if m.contains(fix)), "{:?}", r.as_ref().err());
    }
}

/// Keeps the first `k` bank columns (so the bank, with fewer columns than the gov, supplies the
/// choice bits of the Gram cross block).
fn keep_bank_columns(mut d: Prepared, k: usize) -> Prepared {
    let cols = d.bank_features.len();
    d.bank_x = d.bank_x.chunks_exact(cols).flat_map(|r| r[..k].to_vec()).collect();
    d.bank_features.truncate(k);
    d.bank_std.columns.truncate(k);
    d.bank_std.mean.truncate(k);
    d.bank_std.std.truncate(k);
    d.bank_std.min.truncate(k);
    d.bank_std.max.truncate(k);
    d
}

#[test]
fn linear_training_matches_reference_when_the_bank_has_fewer_columns() {
    let d = keep_bank_columns(common::default_credit(1500, 13), 4);
    assert!(d.bank_features.len() < d.gov_features.len());
    let params = TrainParams { epochs: 2, batch_size: 300, l2_c: Some(1.0), seed: 4, ..Default::default() };
    assert_eq!(params.sigmoid, Sigmoid::Linear);
    let (gov, bank, _) = train_both(&d, &params, ModelReveal::Both);
    let cols = d.gov_features.len() + d.bank_features.len();
    let reference = train_reference(&d.joint_x(), cols, &d.y, &d.train, &params, false);
    let revealed = joint_model(&gov.artifact, &bank.artifact);
    let max_dw = revealed.weights.iter().zip(&reference.weights).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("max |w_secure - w_reference| = {max_dw:.2e}, bias diff {:.2e}", (revealed.bias - reference.bias).abs());
    assert!(
        max_dw < 5e-4 && (revealed.bias - reference.bias).abs() < 5e-4,
        "weights drift from the reference by {max_dw}"
    );
}

#[test]
fn feature_beyond_the_gram_bound_is_refused_before_training() {
    let mut d = common::default_credit(300, 1);
    let cols = d.gov_features.len();
    let row = d.train[7];
    d.gov_x[row * cols + 2] = -(GRAM_MAX_ABS + 1.0);
    let scorecard = Scorecard::default();
    let params = TrainParams::default();
    let job = d.job(&params, ModelReveal::Both, &scorecard, Some(ScoreOutput::Probability));
    let ((g, _), (b, _)) = two_party(params.frac_bits, |e, role| secure_train(e, &party_data(&d, role), &job));
    let msg = g.unwrap_err().to_string();
    assert!(
        msg.contains(&format!("'{}'", d.gov_features[2])) && msg.contains(&format!("row {row}")) && msg.contains("127"),
        "{msg}"
    );
    assert!(b.is_err(), "the bank stops when the gov does");
    // The same value on a test row is fine (the bound applies to training rows only).
    let mut d = common::default_credit(300, 1);
    let test_row = d.test[0];
    d.gov_x[test_row * cols] = 1000.0;
    let ((g, _), (b, _)) = two_party(params.frac_bits, |e, role| secure_train(e, &party_data(&d, role), &job));
    assert!(g.is_ok() && b.is_ok());
}

#[test]
fn poly3_at_the_default_learning_rate_no_longer_diverges() {
    // Unclipped, the cubic's runaway beyond |z| = 5 sent these weights to about 1e7.
    let d = common::default_credit_demo_split();
    let params = TrainParams { sigmoid: Sigmoid::Poly3, ..Default::default() };
    let cols = d.gov_features.len() + d.bank_features.len();
    let m = train_reference(&d.joint_x(), cols, &d.y, &d.train, &params, false);
    let largest = m.weights.iter().chain([&m.bias]).fold(0.0f64, |a, w| a.max(w.abs()));
    let test_auc = auc(&d.test_logits(&m), &d.test_labels());
    println!("poly3 reference: largest |weight| {largest:.3}, test AUC {test_auc:.4}");
    assert!(largest < 10.0 && test_auc > 0.7, "largest |weight| {largest}, test AUC {test_auc}");
}

#[test]
fn a_diverging_training_ends_with_warnings() {
    let d = common::default_credit(1500, 7);
    // The largest learning rate the job accepts, on small batches: the weights run far beyond
    // any sound model, and the artifact says so.
    let params = TrainParams {
        epochs: 2,
        batch_size: 64,
        learning_rate: 100.0,
        sigmoid: Sigmoid::Poly3,
        seed: 1,
        ..Default::default()
    };
    let scorecard = Scorecard::default();
    let job = d.job(&params, ModelReveal::OwnBlock, &scorecard, None);
    let ((g, _), (b, _)) = two_party(params.frac_bits, |e, role| secure_train(e, &party_data(&d, role), &job));
    // Either the model is kept with a warning, or, where a diverged partial logit is beyond what
    // scoring accepts, training fails saying it diverged (the other party then fails too).
    let mut said = 0;
    for r in [g, b] {
        match r {
            Ok(out) => {
                println!("{:?} warnings: {:?}", out.artifact.role, out.artifact.warnings);
                assert!(out.artifact.warnings.iter().any(|w| w.contains("training diverged")), "{:?}", out.artifact);
                said += 1;
            }
            Err(e) => {
                println!("error: {e}");
                said += e.to_string().contains("training diverged") as usize;
            }
        }
    }
    assert!(said >= 1, "no party said that training diverged");
    // A sound training has none.
    let params = TrainParams { epochs: 1, batch_size: 256, ..Default::default() };
    let (gov, bank, _) = train_both(&d, &params, ModelReveal::OwnBlock);
    assert!(gov.artifact.warnings.is_empty() && bank.artifact.warnings.is_empty(), "{:?}", bank.artifact.warnings);
}
