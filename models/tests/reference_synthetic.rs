//! The plaintext reference trainer on synthetic_30k against the sklearn figure of anchors.md.

mod common;

use models::metrics::auc;
use models::reference::{TrainParams, train_reference};
use protocol::mpc::Sigmoid;

/// sklearn LogisticRegression (lbfgs, C = 1) test AUC on this split (notes/anchors.md).
const SKLEARN_AUC: f64 = 0.8469;

#[test]
fn reference_auc_on_synthetic_30k_matches_sklearn() {
    let data = common::synthetic_30k();
    let joint = data.joint_x();
    let cols = data.gov_features.len() + data.bank_features.len();
    let params = TrainParams {
        epochs: 10,
        batch_size: 1024,
        learning_rate: 0.5,
        sigmoid: Sigmoid::Linear,
        ..Default::default()
    };
    let linear = train_reference(&joint, cols, &data.y, &data.train, &params, false);
    let exact = train_reference(&joint, cols, &data.y, &data.train, &params, true);
    let y = data.test_labels();
    let auc_linear = auc(&data.test_logits(&linear), &y);
    let auc_exact = auc(&data.test_logits(&exact), &y);
    println!("synthetic_30k reference test AUC: linear sigmoid {auc_linear:.4}, exact sigmoid {auc_exact:.4}");
    assert!((auc_linear - auc_exact).abs() <= 0.002, "linear {auc_linear} vs exact {auc_exact}");
    assert!((auc_linear - SKLEARN_AUC).abs() <= 0.002, "linear {auc_linear} vs sklearn {SKLEARN_AUC}");
    assert!((auc_exact - SKLEARN_AUC).abs() <= 0.002, "exact {auc_exact} vs sklearn {SKLEARN_AUC}");
}
