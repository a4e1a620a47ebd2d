//! Secure LR on synthetic_30k (24k training rows × 23 features, 10 epochs, batch 1024, lr 0.5,
//! linear sigmoid) with both parties in this process over the in-memory channel pair, as in
//! notes/anchors.md. Prints one JSON line. Run: `cargo run --release -p models --example lr_bench`
//! (optional arguments: sigmoid = linear | clipped_linear | poly3; test output = probability |
//! points | grade | none, the cap on the test scores, `none` for binned metrics only).
//! `bytes_by_phase` splits the traffic by protocol phase (e.g. `lr-train-gram`: the one-off Gram
//! blocks of the linear sigmoid; `lr-train`: the training steps; `lr-test-scores` and
//! `lr-metrics`: the test rows), counted on the wire like `bytes`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[path = "../tests/common/mod.rs"]
mod common;

use models::metrics::auc;
use models::reference::{TrainParams, train_reference};
use models::scorecard::{ScoreOutput, Scorecard};
use models::secure_lr::{ModelReveal, PartyData, TrainJob, secure_train};
use protocol::channel::HEADER_LEN;
use protocol::fixed::FixedPoint;
use protocol::mpc::{Engine, Sigmoid};
use protocol::transcript::{Direction, FrameEvent, FrameObserver};
use protocol::{Channel, Role, channel::run_pair};
use rand::SeedableRng;

/// Adds the wire size of every frame this party sends to its phase's total.
struct PhaseBytes(Arc<Mutex<BTreeMap<String, u64>>>);
impl FrameObserver for PhaseBytes {
    fn on_frame(&mut self, f: &FrameEvent<'_>) {
        if f.direction == Direction::Sent {
            *self.0.lock().unwrap().entry(f.phase.to_string()).or_default() +=
                (HEADER_LEN + f.kind.len() + f.payload.len()) as u64;
        }
    }
}

fn main() {
    let sigmoid: Sigmoid = match std::env::args().nth(1) {
        Some(s) => {
            serde_json::from_value(serde_json::Value::String(s)).expect("sigmoid: linear | clipped_linear | poly3")
        }
        None => Sigmoid::Linear,
    };
    let test_output: Option<ScoreOutput> = match std::env::args().nth(2).as_deref() {
        None => Some(ScoreOutput::Probability),
        Some("none") => None,
        Some(s) => Some(
            serde_json::from_value(serde_json::Value::String(s.into()))
                .expect("test output: probability | points | grade | none"),
        ),
    };
    let d = common::synthetic_30k();
    let params = TrainParams { epochs: 10, batch_size: 1024, learning_rate: 0.5, sigmoid, ..Default::default() };
    let scorecard = Scorecard::default();
    let job = TrainJob {
        train_rows: &d.train,
        test_rows: &d.test,
        params: &params,
        reveal: ModelReveal::Both,
        scorecard: &scorecard,
        test_output,
    };
    let by_phase = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let party = |ch: &mut Channel| {
        let role = ch.role();
        ch.set_observer(Box::new(PhaseBytes(by_phase.clone())));
        let data = match role {
            Role::Gov => {
                PartyData { x: &d.gov_x, features: &d.gov_features, standardizer: Some(&d.gov_std), label: None }
            }
            Role::Bank => PartyData {
                x: &d.bank_x,
                features: &d.bank_features,
                standardizer: Some(&d.bank_std),
                label: Some(&d.y),
            },
        };
        // Bench only: fixed seeds. The node seeds its engine from the OS.
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(role.index() as u64 + 1);
        let mut engine = Engine::new(ch, FixedPoint::new(params.frac_bits), &mut rng).expect("engine setup");
        let out = secure_train(&mut engine, &data, &job).expect("secure training");
        (out, ch.stats())
    };
    let start = std::time::Instant::now();
    let ((_, gov_stats), (bank, bank_stats)) = run_pair(party, party);
    let seconds = start.elapsed().as_secs_f64();

    let cols = d.gov_features.len() + d.bank_features.len();
    let y = d.test_labels();
    let reference = auc(&d.test_logits(&train_reference(&d.joint_x(), cols, &d.y, &d.train, &params, false)), &y);
    let exact = auc(&d.test_logits(&train_reference(&d.joint_x(), cols, &d.y, &d.train, &params, true)), &y);
    let line = serde_json::json!({
        "bench": "secure_lr_synthetic_30k",
        "sigmoid": sigmoid,
        "test_output": test_output,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "bytes": gov_stats.bytes_sent + bank_stats.bytes_sent,
        "bytes_by_phase": *by_phase.lock().unwrap(),
        "rounds": gov_stats.rounds.max(bank_stats.rounds),
        "secure_auc": bank.artifact.metrics.expect("metrics").auc,
        "reference_auc": reference,
        "exact_reference_auc": exact,
    });
    println!("{line}");
}
