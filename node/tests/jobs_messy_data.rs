//! Jobs on data as it comes: every input file (datasets, test ids, queries) written by a
//! spreadsheet export with a byte order mark and CRLF line ends, missing cells on both sides, a
//! categorical column with a rare category, an outlier of 1e6, a column that is constant on the
//! intersection; and ids zero-padded on one side only.

mod common;

use std::collections::{HashMap, HashSet};

use common::daemons;
use common::jobs::{assert_succeeded, job, read_csv};
use common::jobs::{score, test_ids_file, train};
use models::dataset::{CellFormat, Dataset, parse_with};
use models::reference::{TrainParams, train_reference};
use models::scorecard::ScoreOutput;
use models::standardize::{PrepParams, Standardizer};
use node::jobs::record::JobRecord;
use node::jobs::spec::Reveal;
use node::jobs::spec::TrainModel;
use serde_json::Value;

/// Entities 0..N; the gov holds those with i % 10 != 3, the bank those with i % 7 != 5.
const N: usize = 1600;

fn gov_has(i: usize) -> bool {
    i % 10 != 3
}
fn bank_has(i: usize) -> bool {
    i % 7 != 5
}
fn is_test(i: usize) -> bool {
    i.is_multiple_of(5)
}

/// What a spreadsheet export writes: a byte order mark, CRLF line ends.
fn export(lines: &[String]) -> String {
    format!("\u{feff}{}\r\n", lines.join("\r\n"))
}

/// Uniform numbers in [0, 1) from splitmix64 (reproducible data without a dependency).
fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / 2f64.powi(64)
    }
}

/// The two files' texts (ids written by `gov_id`/`bank_id`) and the entities with rare "island"
/// cities (common, training rows).
struct Files {
    gov: String,
    bank: String,
    /// Entities whose gov `age` cell or bank `balance` cell is missing.
    gov_missing: HashSet<usize>,
    bank_missing: HashSet<usize>,
}

fn files(gov_id: impl Fn(usize) -> String, bank_id: impl Fn(usize) -> String) -> Files {
    let mut u = uniform(7);
    let common_train: Vec<usize> = (0..N).filter(|&i| gov_has(i) && bank_has(i) && !is_test(i)).collect();
    let island: HashSet<usize> = common_train.iter().copied().take(5).collect();
    let outlier = common_train[7];
    let mut gov = vec!["id,income,city,debt_ratio,age,is_island".to_string()];
    let mut bank = vec!["id,y,balance,limit,utilization".to_string()];
    let (mut gov_missing, mut bank_missing) = (HashSet::new(), HashSet::new());
    for i in 0..N {
        let (income, c, debt, age, bal, limit, util) = (u(), u(), u(), u(), u(), u(), u());
        let city = if island.contains(&i) { "island" } else { ["north", "south", "east"][(c * 3.0) as usize] };
        let age_missing = u() < 0.08;
        let balance_missing = u() < 0.05;
        // Risk grows with income's complement, the south, a missing age, the utilisation.
        let logit = -1.0
            + 3.0 * (0.5 - income)
            + if city == "south" { 1.0 } else { 0.0 }
            + if age_missing { 1.5 } else { 0.0 }
            + 3.0 * (util - 0.5)
            + 1.5 * (bal - 0.5);
        let y = u8::from(u() < 1.0 / (1.0 + (-logit).exp()));
        let debt_ratio = if i == outlier { 1e6 } else { 2.0 * debt };
        let age = if age_missing {
            gov_missing.insert(i);
            if i.is_multiple_of(2) { String::new() } else { "NA".into() }
        } else {
            format!("{}", 20 + (age * 50.0) as u32)
        };
        // Set only on entities the bank lacks: constant (0) on the intersection.
        let flag = u8::from(!bank_has(i) && i.is_multiple_of(3));
        if gov_has(i) {
            gov.push(format!("{},{:.4},{city},{debt_ratio},{age},{flag}", gov_id(i), 10.0 + 40.0 * income));
        }
        let balance = if balance_missing {
            bank_missing.insert(i);
            String::new()
        } else {
            format!("{:.2}", 1000.0 * bal)
        };
        if bank_has(i) {
            bank.push(format!("{},{y},{balance},{:.1},{:.3}", bank_id(i), 500.0 + 1000.0 * limit, util));
        }
    }
    Files { gov: export(&gov), bank: export(&bank), gov_missing, bank_missing }
}

const GOV_COLUMNS: [&str; 5] = ["income", "city", "debt_ratio", "age", "is_island"];
const BANK_COLUMNS: [&str; 3] = ["balance", "limit", "utilization"];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Two daemons over `files`; the gov declares `city` categorical.
fn pair(dir: &std::path::Path, files: &Files) -> daemons::Pair {
    std::fs::write(dir.join("gov.csv"), &files.gov).unwrap();
    std::fs::write(dir.join("bank.csv"), &files.bank).unwrap();
    daemons::pair(|gov, bank| {
        for (c, file, columns) in [(&mut *gov, "gov.csv", &GOV_COLUMNS[..]), (&mut *bank, "bank.csv", &BANK_COLUMNS)] {
            c.timeouts.read_secs = 30;
            for (name, d) in c.datasets.iter_mut() {
                d.path = dir.join(file);
                let policy = c.policy.datasets.get_mut(name).unwrap();
                policy.columns = strings(columns);
                policy.columns.extend(d.label.clone());
            }
        }
        gov.datasets.values_mut().for_each(|d| d.categorical = vec!["city".into()]);
    })
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn outcome_u64(r: &JobRecord, key: &str) -> u64 {
    r.outcome.get(key).and_then(Value::as_u64).unwrap_or_else(|| panic!("outcome {key}: {:?}", r.outcome))
}

fn warnings(r: &JobRecord) -> Vec<String> {
    r.outcome
        .get("warnings")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
}

#[test]
fn train_and_score_jobs_succeed_on_exported_files_with_missing_cells_categories_and_outliers() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(|i| i.to_string(), |i| i.to_string());
    let p = pair(dir.path(), &f);
    let common: Vec<usize> = (0..N).filter(|&i| gov_has(i) && bank_has(i)).collect();
    let test_ids: Vec<String> = common.iter().filter(|&&i| is_test(i)).map(|i| i.to_string()).collect();
    let test_file = export(&std::iter::once("id".to_string()).chain(test_ids.iter().cloned()).collect::<Vec<_>>());
    for c in [&p.gov_config, &p.bank_config] {
        std::fs::create_dir_all(&c.node.data_dir).unwrap();
        std::fs::write(c.node.data_dir.join("test_ids.txt"), &test_file).unwrap();
    }
    let params = TrainParams { epochs: 3, batch_size: 256, learning_rate: 0.5, seed: 3, ..TrainParams::default() };
    let spec = job("demo-train.toml", |s| {
        s.gov.columns = strings(&GOV_COLUMNS);
        s.bank.columns = strings(&BANK_COLUMNS);
        test_ids_file(s, "test_ids.txt");
        let t = train(s);
        (t.epochs, t.batch_size, t.seed) = (Some(params.epochs), Some(params.batch_size), Some(params.seed));
    });
    // The default WOE scorecard on the same files: missing cells and categories in their own bins.
    let (gov, bank) = p.run(&spec);
    assert_succeeded(&gov, &bank);
    let table = gov.outcome["scorecard_table"].as_array().unwrap().clone();
    let bins_of = |feature: &str| -> Vec<Value> {
        let row = table.iter().find(|r| r["feature"] == feature).unwrap_or_else(|| panic!("{feature}: {table:?}"));
        row["bins"].as_array().unwrap().clone()
    };
    let gov_missing_common = f.gov_missing.iter().filter(|i| common.contains(i)).count() as u64;
    let missing_bin = bins_of("age").into_iter().find(|b| b["bin"] == "missing").unwrap();
    assert!(missing_bin["count"].as_u64().unwrap() > 0 && gov_missing_common > 0, "{missing_bin}");
    assert!(bins_of("city").iter().any(|b| b["bin"] == "other"), "the rare city shares 'other'");
    let woe_score = job("demo-score.toml", |s| {
        s.gov.columns = strings(&GOV_COLUMNS);
        s.bank.columns = strings(&BANK_COLUMNS);
        score(s).model = Some(gov.id.clone());
    });
    let (sg, sb) = p.run(&woe_score);
    assert_succeeded(&sg, &sb);
    assert_eq!(outcome_u64(&sb, "scored"), common.len() as u64);

    // Raw-feature LR: the preparation (winsorising, filling, one-hot) is checked below.
    let mut spec = spec;
    train(&mut spec).model = Some(TrainModel::RawLr);
    spec.reveal.retain(|r| *r != Reveal::WoeToOwner);
    let (gov, bank) = p.run(&spec);
    assert_succeeded(&gov, &bank);
    let train_id = gov.id.clone();

    // The outcome says what was done to the data.
    let common_set: HashSet<usize> = common.iter().copied().collect();
    let missing_here = |m: &HashSet<usize>| m.iter().filter(|i| common_set.contains(i)).count() as u64;
    assert_eq!(outcome_u64(&gov, "missing_values_filled"), missing_here(&f.gov_missing));
    assert_eq!(outcome_u64(&bank, "missing_values_filled"), missing_here(&f.bank_missing));
    assert!(outcome_u64(&gov, "train_values_winsorized") >= 1, "the 1e6 outlier is clipped");
    let w = warnings(&gov);
    assert!(w.len() == 1 && w[0].contains("'is_island' is constant on the"), "{w:?}");
    assert!(warnings(&bank).is_empty(), "{:?}", warnings(&bank));

    // The same preparation computed here, with the models crate on the same files and rows: the
    // aligned order is the keyed hash of the ids under the job's seed.
    let (_, aligned) = read_csv(&p.gov_config.job_dir(&train_id).join("intersection.csv"));
    let mut ids: Vec<String> = aligned.iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids.len(), common.len());
    let order_key = blake3::derive_key("tandem train row order v1", &params.seed.to_le_bytes());
    ids.sort_by_key(|id| *blake3::keyed_hash(&order_key, id.as_bytes()).as_bytes());
    let test_set: HashSet<&str> = test_ids.iter().map(String::as_str).collect();
    let train: Vec<usize> = (0..ids.len()).filter(|&r| !test_set.contains(ids[r].as_str())).collect();
    let test: Vec<usize> = (0..ids.len()).filter(|&r| test_set.contains(ids[r].as_str())).collect();
    let load = |text: &str, columns: &[&str], label: Option<&str>, categorical: &[&str]| -> Dataset {
        let format = CellFormat { categorical: strings(categorical), ..CellFormat::default() };
        let ds = parse_with("f.csv", text.as_bytes(), "id", &strings(columns), label, &format).unwrap();
        let row: HashMap<&str, usize> = ds.ids.iter().enumerate().map(|(r, id)| (id.as_str(), r)).collect();
        ds.select_rows(&ids.iter().map(|id| row[id.as_str()]).collect::<Vec<_>>())
    };
    let gov_ds = load(&f.gov, &GOV_COLUMNS, None, &["city"]);
    let bank_ds = load(&f.bank, &BANK_COLUMNS, Some("y"), &[]);
    let (gov_st, _) = Standardizer::fit(&gov_ds, &train, &PrepParams::default()).unwrap();
    let (bank_st, _) = Standardizer::fit(&bank_ds, &train, &PrepParams::default()).unwrap();
    let gov_model = read_json(&p.gov_config.node.data_dir.join(format!("models/{train_id}.json")));
    let bank_model = read_json(&p.bank_config.node.data_dir.join(format!("models/{train_id}.json")));
    let stored = |m: &Value, block: &str| -> Standardizer {
        serde_json::from_value(m["artifact"][block]["standardizer"].clone()).unwrap()
    };
    assert_eq!(stored(&gov_model, "gov"), gov_st, "fitted on exactly the training rows");
    assert_eq!(stored(&bank_model, "bank"), bank_st);
    assert_eq!(
        gov_st.columns,
        ["income", "city#1", "city#2", "city#other", "debt_ratio", "age", "age_missing"],
        "one-hot city (the most frequent level is the reference), rare 'island' merged, is_island dropped"
    );
    assert_eq!(bank_st.columns, ["balance", "balance_missing", "limit", "utilization"]);
    assert_eq!(gov_model["artifact"]["gov"]["features"], serde_json::json!(gov_st.columns));

    // Secure training matches a plaintext reference on the same prepared values.
    let (xg, xb) = (gov_st.apply(&gov_ds).unwrap().x, bank_st.apply(&bank_ds).unwrap().x);
    let (cg, cb) = (gov_st.columns.len(), bank_st.columns.len());
    let joint: Vec<f64> = (0..ids.len())
        .flat_map(|r| xg[r * cg..(r + 1) * cg].iter().chain(&xb[r * cb..(r + 1) * cb]).copied().collect::<Vec<_>>())
        .collect();
    let y = bank_ds.label.clone().unwrap();
    let reference = train_reference(&joint, cg + cb, &y, &train, &params, false);
    let logits = reference.logits(&joint);
    let ref_auc = models::metrics::auc(
        &test.iter().map(|&r| logits[r]).collect::<Vec<_>>(),
        &test.iter().map(|&r| y[r]).collect::<Vec<_>>(),
    );
    let auc = gov.outcome["test_auc"].as_f64().unwrap();
    eprintln!("secure test AUC {auc}, plaintext reference {ref_auc}");
    assert!((auc - ref_auc).abs() < 0.005 && auc > 0.65, "secure test AUC {auc}, plaintext reference {ref_auc}");

    // Scoring the intersection applies the stored preparation: the missing cells are filled again.
    let spec = job("demo-score.toml", |s| {
        s.gov.columns = strings(&GOV_COLUMNS);
        s.bank.columns = strings(&BANK_COLUMNS);
        score(s).model = Some(train_id.clone());
        score(s).score_output = Some(ScoreOutput::Probability);
    });
    let (gov, bank) = p.run(&spec);
    assert_succeeded(&gov, &bank);
    assert_eq!(outcome_u64(&gov, "missing_values_filled"), missing_here(&f.gov_missing));
    assert_eq!(outcome_u64(&bank, "scored"), common.len() as u64);

    // Named ids from an exported queries file, one of them with a missing age at the gov: the
    // probability is the logistic of both blocks' prepared values times the stored weights.
    let named: Vec<usize> = common
        .iter()
        .copied()
        .filter(|i| f.gov_missing.contains(i))
        .take(1)
        .chain(common[..3].iter().copied())
        .collect();
    let mut lines = vec!["id,consent_ref".to_string()];
    lines.extend(named.iter().map(|i| format!("{i},CONSENT-{i}")));
    std::fs::write(p.bank_config.node.data_dir.join("queries.csv"), export(&lines)).unwrap();
    let spec = job("demo-score-ids.toml", |s| {
        s.gov.columns = strings(&GOV_COLUMNS);
        s.bank.columns = strings(&BANK_COLUMNS);
        score(s).model = Some(train_id.clone());
    });
    let (gov, bank) = p.run_at(&spec, true);
    assert_succeeded(&gov, &bank);
    let (_, rows) = read_csv(&p.bank_config.job_dir(&gov.id).join("scores.csv"));
    assert_eq!(rows.iter().map(|r| r[0].parse::<usize>().unwrap()).collect::<Vec<_>>(), named);
    let weights = |m: &Value, block: &str| -> Vec<f64> {
        serde_json::from_value(m["artifact"][block]["weights"].clone()).unwrap()
    };
    let (wg, wb) = (weights(&gov_model, "gov"), weights(&bank_model, "bank"));
    let bias = bank_model["artifact"]["bias"].as_f64().unwrap();
    let cal = |k: &str| bank_model["artifact"]["calibration"][k].as_f64().unwrap();
    for row in &rows {
        let r = ids.iter().position(|id| *id == row[0]).unwrap();
        let z: f64 = xg[r * cg..(r + 1) * cg].iter().zip(&wg).map(|(a, b)| a * b).sum::<f64>()
            + xb[r * cb..(r + 1) * cb].iter().zip(&wb).map(|(a, b)| a * b).sum::<f64>()
            + bias;
        let z = cal("a") * z + cal("b");
        let prob: f64 = row[3].parse().unwrap();
        assert_eq!(row[2], "ok");
        assert!((prob - 1.0 / (1.0 + (-z).exp())).abs() < 1e-4, "{}: {prob} vs logit {z}", row[0]);
    }
}

#[test]
fn ids_zero_padded_on_one_side_give_both_nodes_a_warning_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    // The gov pads 80% of its ids to six digits; the bank writes plain numbers.
    let f = files(|i| if i.is_multiple_of(5) { i.to_string() } else { format!("{i:06}") }, |i| i.to_string());
    let p = pair(dir.path(), &f);
    let spec = job("demo-job.toml", |s| {
        s.gov.columns = strings(&GOV_COLUMNS);
        s.bank.columns = strings(&BANK_COLUMNS);
    });
    let (gov, bank) = p.run(&spec);
    assert_succeeded(&gov, &bank);
    // Only the unpadded ids match.
    let matched = (0..N).filter(|&i| gov_has(i) && bank_has(i) && i.is_multiple_of(5)).count() as u64;
    assert_eq!(outcome_u64(&gov, "intersection_size"), matched);
    let (w_gov, w_bank) = (warnings(&gov), warnings(&bank));
    assert!(
        w_gov.len() == 1
            && w_gov[0].contains(&format!("only {matched} of this node's"))
            && w_gov[0].contains("start with a zero"),
        "{w_gov:?}"
    );
    assert!(
        w_bank.len() == 1 && w_bank[0].contains("without leading zeros") && w_bank[0].contains("pads"),
        "{w_bank:?}"
    );

    // With matching ids there is no warning.
    let dir = tempfile::tempdir().unwrap();
    let f = files(|i| i.to_string(), |i| i.to_string());
    let p = pair(dir.path(), &f);
    let (gov, bank) = p.run(&spec);
    assert_succeeded(&gov, &bank);
    assert!(warnings(&gov).is_empty() && warnings(&bank).is_empty());
}
