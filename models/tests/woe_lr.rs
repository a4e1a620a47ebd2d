//! The WOE scorecard: secure binning counts against plaintext, the label never on the gov's
//! wire, accuracy and calibration against the plaintext WOE reference, points per attribute.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::Prepared;
use models::binning::{BinningParams, WoeTransform};
use models::metrics::auc;
use models::reference::TrainParams;
use models::scorecard::{ScoreOutput, Scorecard};
use models::secure_lr::{ModelReveal, TrainOutput};
use models::woe_lr::{
    BASE_POINTS, WoeParty, fit_woe, fit_woe_plain, scorecard_table, secure_train_woe, train_woe_reference,
};
use protocol::channel::run_pair;
use protocol::fixed::FixedPoint;
use protocol::mpc::Engine;
use protocol::transcript::{Direction, FrameEvent, FrameObserver};
use protocol::{Channel, Role};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Records every payload this party receives.
struct Recorder(Arc<Mutex<Vec<u8>>>);
impl FrameObserver for Recorder {
    fn on_frame(&mut self, f: &FrameEvent<'_>) {
        if f.direction == Direction::Received {
            self.0.lock().unwrap().extend_from_slice(f.payload);
        }
    }
}

/// Runs `f` for both parties over the in-memory pair; the gov's received bytes are recorded.
/// With `real_ots` the engines run IKNP (for tests of what the wire holds), else the test
/// dealer (model logic only; protocol's own tests cover the real sources).
fn two_party<T: Send>(
    frac_bits: u32,
    real_ots: bool,
    f: impl Fn(&mut Engine, Role) -> protocol::Result<T> + Sync,
) -> (T, T, Vec<u8>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let party = |ch: &mut Channel, seed: u64| {
        let role = ch.role();
        let (fp, mut rng) = (FixedPoint::new(frac_bits), ChaCha20Rng::seed_from_u64(seed));
        if real_ots {
            Engine::new(ch, fp, &mut rng).and_then(|mut e| f(&mut e, role))
        } else {
            f(&mut Engine::with_test_dealer(ch, fp, 7, &mut rng), role)
        }
    };
    let (g, b) = run_pair(
        |ch| {
            ch.set_observer(Box::new(Recorder(rec)));
            party(ch, 1)
        },
        |ch| party(ch, 2),
    );
    let gov_view = seen.lock().unwrap().clone();
    (g.unwrap(), b.unwrap(), gov_view)
}

fn no_levels(n: usize) -> Vec<Option<Vec<String>>> {
    vec![None; n]
}

/// The gov's block with some missing cells and one categorical column (levels a–d by the sign
/// and size of column 0, "d" rare), to cover every kind of bin.
fn gov_block_with_missing_and_levels(d: &Prepared) -> (Vec<f64>, Vec<Option<Vec<String>>>) {
    let cols = d.gov_features.len();
    let mut x = d.gov_x.clone();
    for (r, row) in x.chunks_exact_mut(cols).enumerate() {
        if r % 13 == 0 {
            row[1] = f64::NAN;
        }
        row[0] = if r % 50 == 7 {
            3.0
        } else if row[0] < -0.5 {
            0.0
        } else if row[0] < 0.5 {
            1.0
        } else {
            2.0
        };
    }
    let mut levels = no_levels(cols);
    levels[0] = Some(["a", "b", "c", "d"].map(String::from).to_vec());
    (x, levels)
}

/// Every 32-label window (with at least 4 events) of the label vector `y` in the given row order,
/// in each encoding a leak would take: u64 0/1, u64 −y, fixed point, f64, and packed bits.
fn label_windows(y: &[f64], order: &[usize]) -> HashSet<Vec<u8>> {
    let labels: Vec<u64> = order.iter().map(|&r| y[r] as u64).collect();
    let fp = FixedPoint::new(16);
    let encodings: [Box<dyn Fn(u64) -> [u8; 8]>; 4] = [
        Box::new(|v| v.to_le_bytes()),
        Box::new(|v| v.wrapping_neg().to_le_bytes()),
        Box::new(move |v| fp.encode(v as f64).to_le_bytes()),
        Box::new(|v| (v as f64).to_le_bytes()),
    ];
    let mut out = HashSet::new();
    for w in labels.windows(32).filter(|w| w.iter().sum::<u64>() >= 4) {
        for enc in &encodings {
            out.insert(w.iter().flat_map(|&v| enc(v)).collect::<Vec<u8>>());
        }
    }
    // Packed, 8 labels per byte (either bit order), 256 labels per window.
    for start in 0..labels.len().saturating_sub(256) {
        let w = &labels[start..start + 256];
        for msb_first in [false, true] {
            let bytes: Vec<u8> = w
                .chunks(8)
                .map(|c| {
                    c.iter().enumerate().fold(0u8, |b, (i, &v)| b | ((v as u8) << if msb_first { 7 - i } else { i }))
                })
                .collect();
            out.insert(bytes);
        }
    }
    out
}

fn found(haystack: &[u8], windows: &HashSet<Vec<u8>>) -> usize {
    let lens: HashSet<usize> = windows.iter().map(Vec::len).collect();
    lens.iter()
        .map(|&len| {
            (0..haystack.len().saturating_sub(len - 1)).filter(|&at| windows.contains(&haystack[at..at + len])).count()
        })
        .sum()
}

#[test]
fn the_gov_learns_its_bins_event_counts_and_its_wire_holds_no_label() {
    // 17,500 training rows: the secure count runs in two row chunks (2^14 rows each).
    let d = common::default_credit(25_000, 11);
    let (gov_x, gov_levels) = gov_block_with_missing_and_levels(&d);
    let params = BinningParams { monotonic: true, ..Default::default() };
    let (gov, bank, gov_view) = two_party(16, true, |e, role| match role {
        Role::Gov => fit_woe(e, &d.gov_features, &gov_levels, &gov_x, None, &d.train, &params),
        Role::Bank => {
            fit_woe(e, &d.bank_features, &no_levels(d.bank_features.len()), &d.bank_x, Some(&d.y), &d.train, &params)
        }
    });
    // The same transform as with the labels in the clear, for both parties' columns.
    let plain_gov = fit_woe_plain(&d.gov_features, &gov_levels, &gov_x, &d.y, &d.train, &params).unwrap();
    assert_eq!(gov, plain_gov);
    let plain_bank = fit_woe_plain(&d.bank_features, &no_levels(13), &d.bank_x, &d.y, &d.train, &params).unwrap();
    assert_eq!(bank, plain_bank);
    // And the counts, recounted here row by row from the fitted bins.
    let cols = d.gov_features.len();
    for (c, col) in gov.columns.iter().enumerate() {
        let (mut totals, mut events) = (vec![0u64; col.bins.len()], vec![0u64; col.bins.len()]);
        for &r in &d.train {
            let k = col.bins.bin(gov_x[r * cols + c]);
            totals[k] += 1;
            events[k] += d.y[r] as u64;
        }
        assert_eq!((&col.counts.totals, &col.counts.events), (&totals, &events), "column {}", col.bins.feature);
    }
    let cat = &gov.columns[0].bins;
    assert_eq!((cat.value_bins(), cat.bin_name(3)), (4, "other".to_string()), "a, b, c and the rare d as 'other'");
    assert!(gov.columns[1].counts.totals.last().unwrap() > &0, "missing values have their own bin");

    // The gov's wire holds no window of the label vector, in the training order or the row order;
    // the scan finds one planted at an odd offset.
    let all: Vec<usize> = (0..d.y.len()).collect();
    let windows: HashSet<Vec<u8>> = [&d.train, &all].iter().flat_map(|o| label_windows(&d.y, o)).collect();
    assert!(gov_view.len() > 10_000, "the capture holds the secure count's traffic");
    let mut control = gov_view[..1000].to_vec();
    control.splice(3..3, windows.iter().next().unwrap().clone());
    assert_eq!(found(&control, &windows), 1);
    assert_eq!(found(&gov_view, &windows), 0, "the gov received the bank's labels");
}

fn train_woe(
    d: &Prepared,
    params: &TrainParams,
    reveal: ModelReveal,
    output: ScoreOutput,
) -> (TrainOutput, TrainOutput) {
    let scorecard = Scorecard::default();
    let job = d.job(params, reveal, &scorecard, Some(output));
    let binning = BinningParams::default();
    let (gl, bl) = (no_levels(d.gov_features.len()), no_levels(d.bank_features.len()));
    let (g, b, _) = two_party(params.frac_bits, false, |e, role| {
        let party = match role {
            Role::Gov => WoeParty { x: &d.gov_x, columns: &d.gov_features, levels: &gl, label: None },
            Role::Bank => WoeParty { x: &d.bank_x, columns: &d.bank_features, levels: &bl, label: Some(&d.y) },
        };
        secure_train_woe(e, &party, &job, &binning)
    });
    (g, b)
}

/// Test AUC and mean PD of the secure WOE scorecard with default parameters against the
/// plaintext WOE reference on the same bins and batches.
fn check_accuracy(d: &Prepared, name: &str) {
    let params = TrainParams::default();
    let (gov, bank) = train_woe(d, &params, ModelReveal::OwnBlock, ScoreOutput::Probability);
    let (gl, bl) = (no_levels(d.gov_features.len()), no_levels(d.bank_features.len()));
    let gov_party = WoeParty { x: &d.gov_x, columns: &d.gov_features, levels: &gl, label: None };
    let bank_party = WoeParty { x: &d.bank_x, columns: &d.bank_features, levels: &bl, label: Some(&d.y) };
    let r = train_woe_reference(&gov_party, &bank_party, &d.train, &params, &BinningParams::default()).unwrap();
    let (g_ref, b_ref, joint, reference) = (r.gov, r.bank, r.joint, r.model);
    assert_eq!(gov.artifact.gov.woe.as_ref(), Some(&g_ref), "the secure bins and WOE are the plaintext ones");
    assert_eq!(bank.artifact.bank.woe.as_ref(), Some(&b_ref));
    let y: Vec<f64> = d.test.iter().map(|&r| d.y[r]).collect();
    let cols = reference.weights.len();
    let rows: Vec<f64> = d.test.iter().flat_map(|&r| joint[r * cols..(r + 1) * cols].to_vec()).collect();
    let ref_auc = auc(&reference.logits(&rows), &y);
    let secure_auc = bank.artifact.metrics.as_ref().unwrap().auc;
    let pds: Vec<f64> = bank.test_scores.as_ref().unwrap().iter().map(|s| s.probability.unwrap()).collect();
    let mean_pd = pds.iter().sum::<f64>() / pds.len() as f64;
    let rate = y.iter().sum::<f64>() / y.len() as f64;
    println!(
        "{name}: WOE scorecard test AUC secure {secure_auc:.4}, plaintext reference {ref_auc:.4}; mean PD {mean_pd:.4} vs observed {rate:.4}; calibration {:?}; warnings {:?}",
        bank.artifact.calibration, bank.artifact.warnings
    );
    assert!((secure_auc - ref_auc).abs() <= 0.005, "secure {secure_auc} vs reference {ref_auc}");
    assert!((mean_pd - rate).abs() <= 0.1 * rate, "mean PD {mean_pd} vs observed {rate}");
    assert!(gov.artifact.warnings.is_empty() && bank.artifact.warnings.is_empty());
    if name == "default_credit" {
        assert!(secure_auc >= 0.75, "test AUC {secure_auc}");
    }
}

#[test]
fn woe_scorecard_on_default_credit_is_accurate_and_calibrated() {
    check_accuracy(&common::default_credit_demo_split(), "default_credit");
}

#[test]
fn woe_scorecard_on_synthetic_30k_is_calibrated() {
    check_accuracy(&common::synthetic_30k(), "synthetic_30k");
}

/// Sum over both parties' table rows of the points of an entity's bins.
fn table_points(tables: [&[models::woe_lr::TableRow]; 2], woe: [&WoeTransform; 2], rows: [&[f64]; 2]) -> f64 {
    let mut total = 0.0;
    for ((table, woe), row) in tables.iter().zip(woe).zip(rows) {
        for t in table.iter().filter(|t| !t.bins.is_empty()) {
            if t.feature == BASE_POINTS {
                total += t.bins[0].points.unwrap();
                continue;
            }
            let c = woe.columns.iter().position(|c| c.bins.feature == t.feature).unwrap();
            let name = woe.columns[c].bins.bin_name(woe.columns[c].bins.bin(row[c]));
            total += t.bins.iter().find(|b| b.bin == name).unwrap().points.unwrap_or(0.0);
        }
    }
    total
}

#[test]
fn points_per_attribute_add_up_to_each_entity_s_points() {
    let d = common::default_credit(3000, 5);
    let params = TrainParams { epochs: 3, batch_size: 256, ..Default::default() };
    let (gov, bank) = train_woe(&d, &params, ModelReveal::OwnBlock, ScoreOutput::Probability);
    let (ga, ba) = (&gov.artifact, &bank.artifact);
    let (gt, bt) = (scorecard_table(ga), scorecard_table(ba));
    // Each node sees its own rows in full, the peer's features by name only.
    assert!(gt.iter().all(|r| (r.owner == Role::Gov) == r.iv.is_some()));
    assert!(bt.iter().filter(|r| r.feature != BASE_POINTS).all(|r| (r.owner == Role::Bank) == r.iv.is_some()));
    assert!(gt.iter().all(|r| r.feature != BASE_POINTS), "only the bank knows the bias");
    let (gw, bw) = (ga.gov.woe.as_ref().unwrap(), ba.bank.woe.as_ref().unwrap());
    let own_rows = |t: &[models::woe_lr::TableRow], o: Role| -> Vec<models::woe_lr::TableRow> {
        t.iter().filter(|r| r.owner == o).cloned().collect()
    };
    let (g_rows, b_rows) = (own_rows(&gt, Role::Gov), own_rows(&bt, Role::Bank));
    let sc = Scorecard::default();
    let (gc, bc) = (d.gov_features.len(), d.bank_features.len());
    for (s, &r) in bank.test_scores.as_ref().unwrap().iter().zip(&d.test) {
        let points = table_points(
            [&g_rows, &b_rows],
            [gw, bw],
            [&d.gov_x[r * gc..(r + 1) * gc], &d.bank_x[r * bc..(r + 1) * bc]],
        );
        let want = sc.points_from_logit(s.logit.unwrap());
        assert!((points - want).abs() < 1e-3, "row {r}: table points {points} vs the scorecard's {want}");
    }
}
