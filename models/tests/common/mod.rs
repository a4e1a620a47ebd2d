//! Shared by the integration tests and `examples/lr_bench.rs`: loads the test data sets from
//! `testdata/`, joins the parties by ID in plaintext (standing in for the PSI alignment), splits
//! and standardises each party's block on the training rows.
#![allow(dead_code)]

use std::collections::HashMap;

use models::dataset::{self, Dataset};
use models::reference::{LinearModel, TrainParams};
use models::scorecard::{ScoreOutput, Scorecard};
use models::secure_lr::{ModelReveal, PartyData, TrainJob};
use models::standardize::{PrepParams, Standardizer};
use protocol::Role;
use rand::{RngExt, SeedableRng};

pub fn testdata(path: &str) -> String {
    format!("{}/../testdata/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Both parties' aligned, standardised blocks and the public split.
pub struct Prepared {
    pub gov_x: Vec<f64>,
    pub bank_x: Vec<f64>,
    pub gov_features: Vec<String>,
    pub bank_features: Vec<String>,
    pub gov_std: Standardizer,
    pub bank_std: Standardizer,
    pub y: Vec<f64>,
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

impl Prepared {
    /// A train job on this split (train and test rows).
    pub fn job<'a>(
        &'a self,
        params: &'a TrainParams,
        reveal: ModelReveal,
        scorecard: &'a Scorecard,
        test_output: Option<ScoreOutput>,
    ) -> TrainJob<'a> {
        TrainJob { train_rows: &self.train, test_rows: &self.test, params, reveal, scorecard, test_output }
    }

    pub fn rows(&self) -> usize {
        self.y.len()
    }
    /// Joint rows (gov ‖ bank) for the plaintext reference.
    pub fn joint_x(&self) -> Vec<f64> {
        let (g, b) = (self.gov_features.len(), self.bank_features.len());
        (0..self.rows())
            .flat_map(|r| self.gov_x[r * g..(r + 1) * g].iter().chain(&self.bank_x[r * b..(r + 1) * b]).copied())
            .collect()
    }
    pub fn test_labels(&self) -> Vec<f64> {
        self.test.iter().map(|&r| self.y[r]).collect()
    }
    /// Logits of the test rows under a joint model.
    pub fn test_logits(&self, model: &LinearModel) -> Vec<f64> {
        let joint = self.joint_x();
        let cols = model.weights.len();
        let x: Vec<f64> = self.test.iter().flat_map(|&r| joint[r * cols..(r + 1) * cols].iter().copied()).collect();
        model.logits(&x)
    }
}

/// Aligns gov and bank rows on equal IDs, in the bank's file order.
fn align(gov: &Dataset, bank: &Dataset) -> (Dataset, Dataset) {
    let gov_index: HashMap<&str, usize> = gov.ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let (gi, bi): (Vec<usize>, Vec<usize>) =
        bank.ids.iter().enumerate().filter_map(|(b, id)| gov_index.get(id.as_str()).map(|&g| (g, b))).unzip();
    (gov.select_rows(&gi), bank.select_rows(&bi))
}

/// Plain standardisation (no winsorising), as in the scikit-learn reference runs.
fn prepare(gov: Dataset, bank: Dataset, train: Vec<usize>, test: Vec<usize>) -> Prepared {
    let plain = PrepParams { winsorize: None, ..PrepParams::default() };
    let (gov_std, _) = Standardizer::fit(&gov, &train, &plain).unwrap();
    let (bank_std, _) = Standardizer::fit(&bank, &train, &plain).unwrap();
    Prepared {
        gov_x: gov_std.apply(&gov).unwrap().x,
        bank_x: bank_std.apply(&bank).unwrap().x,
        gov_features: gov_std.columns.clone(),
        bank_features: bank_std.columns.clone(),
        gov_std,
        bank_std,
        y: bank.label.clone().unwrap(),
        train,
        test,
    }
}

/// synthetic_30k: train = common rows not in test_ids.txt, test = test_ids.txt.
pub fn synthetic_30k() -> Prepared {
    let gov = dataset::load(testdata("synthetic_30k/gov.csv"), "uscc", &[], None).unwrap();
    let bank = dataset::load(testdata("synthetic_30k/bank.csv"), "uscc", &[], Some("default_12m")).unwrap();
    let (gov, bank) = align(&gov, &bank);
    let test_ids: std::collections::HashSet<String> = std::fs::read_to_string(testdata("synthetic_30k/test_ids.txt"))
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    let (test, train): (Vec<usize>, Vec<usize>) = (0..bank.rows()).partition(|&r| test_ids.contains(&bank.ids[r]));
    assert_eq!((train.len(), test.len()), (24_000, 6_000));
    prepare(gov, bank, train, test)
}

/// The first `rows` common rows of default_credit, split 70/30 at random (seeded).
pub fn default_credit(rows: usize, seed: u64) -> Prepared {
    let gov = dataset::load(testdata("default_credit/default_credit_hetero_host.csv"), "id", &[], None).unwrap();
    let bank = dataset::load(testdata("default_credit/default_credit_hetero_guest.csv"), "id", &[], Some("y")).unwrap();
    let (gov, bank) = align(&gov, &bank);
    let keep: Vec<usize> = (0..rows).collect();
    let (gov, bank) = (gov.select_rows(&keep), bank.select_rows(&keep));
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for i in (1..rows).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let test = order.split_off(rows * 7 / 10);
    prepare(gov, bank, order, test)
}

/// One party's training input from a prepared split.
pub fn party_data(d: &Prepared, role: Role) -> PartyData<'_> {
    match role {
        Role::Gov => PartyData { x: &d.gov_x, features: &d.gov_features, standardizer: Some(&d.gov_std), label: None },
        Role::Bank => {
            PartyData { x: &d.bank_x, features: &d.bank_features, standardizer: Some(&d.bank_std), label: Some(&d.y) }
        }
    }
}

/// All of default_credit with the demo's 70/30 split (`testnet/run.sh`): the data rows 1–3 of
/// every 10 (in the bank's file order) are test rows.
pub fn default_credit_demo_split() -> Prepared {
    let gov = dataset::load(testdata("default_credit/default_credit_hetero_host.csv"), "id", &[], None).unwrap();
    let bank = dataset::load(testdata("default_credit/default_credit_hetero_guest.csv"), "id", &[], Some("y")).unwrap();
    let (gov, bank) = align(&gov, &bank);
    let (test, train): (Vec<usize>, Vec<usize>) = (0..bank.rows()).partition(|&r| r % 10 < 3);
    prepare(gov, bank, train, test)
}
