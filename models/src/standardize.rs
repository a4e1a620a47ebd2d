//! Per-party raw-feature preparation and standardisation for the raw-feature LR path. Each party
//! fits it on its own columns' training rows only (plaintext, local), keeps it in its own model
//! artifact, and applies it identically to every row it trains, tests or scores:
//!
//! 1. Numeric columns are winsorised: clipped to their training-row percentiles
//!    [`PrepParams::winsorize`] (default 0.5 % and 99.5 %), so a single outlier neither dominates
//!    the model nor stops the job. Columns with at most two distinct training values (0/1 flags)
//!    are left alone.
//! 2. Missing cells ([`PrepParams::missing`]): `indicator` (default) fills a numeric cell with the
//!    column's training median and adds a 0/1 column `<col>_missing` when the training rows have
//!    missing cells; `impute` only fills; `refuse` fails naming the file line of the first one.
//! 3. A categorical column becomes one-hot columns `<col>#1`, `<col>#2`, ..: one per level seen on
//!    at least [`PrepParams::min_category_count`] training rows, except the most frequent
//!    (the reference level, all zeros); rarer levels, and levels never seen in training, share
//!    `<col>#other`. A missing category is the reference level, or `<col>_missing`.
//! 4. Every resulting column is standardised (training mean and population standard deviation);
//!    a column that is constant on the training rows is dropped, with a warning, not an error.
//! 5. On test and scoring rows each value is clipped to its column's training range, and every
//!    standardised value to ±[`GRAM_MAX_ABS`] (the bound of secure training).
//!
//! What the peer learns: only the model column names, announced at training: which of this
//! party's columns had missing training cells (`<col>_missing`), how many levels of a categorical
//! column have their own column (not the level texts, which stay in the owner's artifact), and
//! which columns were dropped as constant. Clip counts stay in this node's outcome.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::dataset::{DataError, Dataset};
use crate::secure_lr::GRAM_MAX_ABS;

/// Default of [`PrepParams::min_category_count`].
pub const DEFAULT_MIN_CATEGORY_COUNT: usize = 20;

/// What to do with a missing cell (job parameter `missing`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// Fill with the training median (numeric) or the reference level (categorical), and add a
    /// 0/1 column `<col>_missing` when the training rows have missing cells in the column.
    #[default]
    Indicator,
    /// Fill only.
    Impute,
    /// A missing cell fails the job, naming its file line.
    Refuse,
}

/// How raw features are prepared (job parameters `winsorize`, `missing`, `min_category_count`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrepParams {
    /// Lower and upper training-row percentiles (fractions in 0..=1) at which numeric columns
    /// are clipped; None: no winsorising.
    pub winsorize: Option<[f64; 2]>,
    pub missing: MissingPolicy,
    /// Fewest training rows a category needs for its own column; rarer ones are merged into
    /// `<col>#other`.
    pub min_category_count: usize,
}

impl Default for PrepParams {
    fn default() -> PrepParams {
        PrepParams {
            winsorize: Some([0.005, 0.995]),
            missing: MissingPolicy::Indicator,
            min_category_count: DEFAULT_MIN_CATEGORY_COUNT,
        }
    }
}

impl PrepParams {
    /// A message naming the parameter and the fix when a value is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if let Some([lo, hi]) = self.winsorize
            && !(0.0 <= lo && lo < hi && hi <= 1.0)
        {
            return Err(format!(
                "winsorize = [{lo}, {hi}]: give two fractions 0 ≤ low < high ≤ 1, e.g. [0.005, 0.995], or false for no clipping"
            ));
        }
        if self.min_category_count == 0 {
            return Err("min_category_count = 0: give at least 1 (default 20)".into());
        }
        Ok(())
    }
}

/// How one raw column becomes model columns (fitted on the training rows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputColumn {
    Numeric {
        name: String,
        /// Winsorising bounds (None: not clipped on that side).
        low: Option<f64>,
        high: Option<f64>,
        /// Training median, the value of a missing cell.
        median: f64,
        /// Whether `<name>_missing` exists.
        indicator: bool,
    },
    Categorical {
        name: String,
        /// Levels with their own column `<name>#k` (k = position + 1).
        levels: Vec<String>,
        /// The most frequent level (all zeros); None when the merged rare levels are the most
        /// frequent group (then they are all zeros and there is no `<name>#other`).
        reference: Option<String>,
        /// Whether `<name>#other` exists (rare and unseen levels).
        other: bool,
        indicator: bool,
    },
}

impl InputColumn {
    pub fn name(&self) -> &str {
        match self {
            InputColumn::Numeric { name, .. } | InputColumn::Categorical { name, .. } => name,
        }
    }

    /// Names of the prepared columns, in order.
    fn outputs(&self) -> Vec<String> {
        let mut out = Vec::new();
        let indicator = match self {
            InputColumn::Numeric { name, indicator, .. } => {
                out.push(name.clone());
                indicator
            }
            InputColumn::Categorical { name, levels, other, indicator, .. } => {
                out.extend((1..=levels.len()).map(|k| format!("{name}#{k}")));
                if *other {
                    out.push(format!("{name}#other"));
                }
                indicator
            }
        };
        if *indicator {
            out.push(format!("{}_missing", self.name()));
        }
        out
    }
}

/// Raw-feature preparation and standardisation of one party's columns, fitted on training rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Model columns (after preparation, constant ones dropped).
    pub columns: Vec<String>,
    /// Training mean and population standard deviation (ddof = 0) of each model column.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Smallest and largest value of each model column on the training rows (empty in artifacts
    /// written before they were kept: then nothing is clipped).
    #[serde(default)]
    pub min: Vec<f64>,
    #[serde(default)]
    pub max: Vec<f64>,
    /// The preparation of the raw columns (None in artifacts written before it existed: then
    /// `columns` are the raw numeric columns themselves).
    #[serde(default)]
    pub prep: Option<Prep>,
}

/// The fitted raw-column steps of a [`Standardizer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prep {
    pub params: PrepParams,
    pub inputs: Vec<InputColumn>,
}

/// Prepared, standardised values of a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardized {
    /// rows × model columns, row-major.
    pub x: Vec<f64>,
    /// Per row: values clipped (winsorised, outside the training range, or beyond ±GRAM_MAX_ABS).
    pub clipped: Vec<u32>,
    /// Missing cells filled.
    pub imputed: usize,
}

impl Standardized {
    /// Values clipped on `rows`.
    pub fn clipped_on(&self, rows: &[usize]) -> usize {
        rows.iter().map(|&r| self.clipped[r] as usize).sum()
    }
    pub fn clipped_total(&self) -> usize {
        self.clipped.iter().map(|&c| c as usize).sum()
    }
}

/// Linear-interpolation quantile of sorted, non-empty `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < v.len() { v[i] + frac * (v[i + 1] - v[i]) } else { v[i] }
}

impl Standardizer {
    /// Fits the preparation and standardisation on `train_rows` of `ds` (see the module docs).
    /// Returns it with one warning per dropped constant column. Errors: a column whose spread
    /// overflows, or no column left.
    pub fn fit(
        ds: &Dataset,
        train_rows: &[usize],
        params: &PrepParams,
    ) -> Result<(Standardizer, Vec<String>), DataError> {
        let mut inputs = Vec::with_capacity(ds.cols());
        for (c, name) in ds.columns.iter().enumerate() {
            let values = train_rows.iter().map(|&r| ds.row(r)[c]);
            let indicator = params.missing == MissingPolicy::Indicator && values.clone().any(f64::is_nan);
            let name = name.clone();
            inputs.push(match &ds.levels[c] {
                Some(levels) => {
                    let mut count = vec![0usize; levels.len()];
                    values.filter(|v| !v.is_nan()).for_each(|v| count[v as usize] += 1);
                    let common: Vec<usize> =
                        (0..levels.len()).filter(|&l| count[l] >= params.min_category_count).collect();
                    let rare: usize = count.iter().filter(|&&n| n < params.min_category_count).sum();
                    // The reference level is the most frequent group (the first on a tie).
                    let top = common.iter().copied().max_by_key(|&l| (count[l], std::cmp::Reverse(l)));
                    let reference = top.filter(|&l| count[l] >= rare);
                    InputColumn::Categorical {
                        name,
                        levels: common.iter().filter(|&&l| Some(l) != reference).map(|&l| levels[l].clone()).collect(),
                        reference: reference.map(|l| levels[l].clone()),
                        other: rare > 0 && reference.is_some(),
                        indicator,
                    }
                }
                None => {
                    let mut sorted: Vec<f64> = values.filter(|v| !v.is_nan()).collect();
                    sorted.sort_by(f64::total_cmp);
                    let distinct = sorted.windows(2).filter(|w| w[0] != w[1]).count() + usize::from(!sorted.is_empty());
                    let bounds = params.winsorize.filter(|_| distinct > 2);
                    InputColumn::Numeric {
                        name,
                        low: bounds.map(|[lo, _]| quantile(&sorted, lo)),
                        high: bounds.map(|[_, hi]| quantile(&sorted, hi)),
                        median: if sorted.is_empty() { 0.0 } else { quantile(&sorted, 0.5) },
                        indicator,
                    }
                }
            });
        }
        let names: Vec<String> = inputs.iter().flat_map(InputColumn::outputs).collect();
        let prep = Prep { params: params.clone(), inputs };
        let all = Standardizer {
            columns: names.clone(),
            mean: Vec::new(),
            std: Vec::new(),
            min: Vec::new(),
            max: Vec::new(),
            prep: Some(prep.clone()),
        };
        let (prepared, _, _) = all.prepare(&ds.select_rows(train_rows))?;
        let cols = names.len();
        let n = train_rows.len() as f64;
        let mut mean = vec![0.0; cols];
        let (mut min, mut max) = (vec![f64::INFINITY; cols], vec![f64::NEG_INFINITY; cols]);
        for row in prepared.chunks_exact(cols) {
            for (c, v) in row.iter().enumerate() {
                mean[c] += v;
                min[c] = min[c].min(*v);
                max[c] = max[c].max(*v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; cols];
        for row in prepared.chunks_exact(cols) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let std: Vec<f64> = var.iter().map(|s| (s / n).sqrt()).collect();
        let mut kept = Vec::new();
        let mut warnings = Vec::new();
        for (c, name) in names.iter().enumerate() {
            let (s, m) = (std[c], mean[c]);
            if !train_rows.is_empty() && (!s.is_finite() || !m.is_finite()) {
                return Err(DataError::Overflow {
                    file: ds.source.clone(),
                    column: name.clone(),
                    largest: if max[c].abs() > min[c].abs() { max[c] } else { min[c] },
                });
            }
            // Relative threshold: a column whose spread is rounding noise is constant.
            if train_rows.is_empty() || s <= 1e-12 * m.abs().max(1.0) {
                warnings.push(format!(
                    "{}: column '{name}' is constant on the {} training rows (value {m}) after preparation; it carries no \
                     information and was left out of the model",
                    ds.source,
                    train_rows.len()
                ));
            } else {
                kept.push(c);
            }
        }
        if kept.is_empty() {
            return Err(DataError::NoColumns { file: ds.source.clone(), rows: train_rows.len() });
        }
        let pick = |v: &[f64]| kept.iter().map(|&c| v[c]).collect::<Vec<f64>>();
        let st = Standardizer {
            columns: kept.iter().map(|&c| names[c].clone()).collect(),
            mean: pick(&mean),
            std: pick(&std),
            min: pick(&min),
            max: pick(&max),
            prep: Some(prep),
        };
        Ok((st, warnings))
    }

    /// How many raw columns feed at least one model column.
    pub fn inputs_used(&self) -> usize {
        match &self.prep {
            Some(p) => p.inputs.iter().filter(|i| i.outputs().iter().any(|o| self.columns.contains(o))).count(),
            None => self.columns.len(),
        }
    }

    /// The raw dataset columns this standardizer reads, in order.
    pub fn input_columns(&self) -> Vec<String> {
        match &self.prep {
            Some(p) => p.inputs.iter().map(|i| i.name().to_string()).collect(),
            None => self.columns.clone(),
        }
    }

    /// Prepares (winsorise, fill, one-hot) `ds`, whose columns must be [`Self::input_columns`],
    /// into all prepared columns (`self.columns` when fitted). Returns the values, the clips per
    /// row and the number of filled cells; a missing cell under `refuse` is an error naming its
    /// file line.
    fn prepare(&self, ds: &Dataset) -> Result<(Vec<f64>, Vec<u32>, usize), DataError> {
        let want = self.input_columns();
        if ds.columns != want {
            return Err(DataError::Header {
                file: ds.source.clone(),
                message: format!(
                    "the model was trained on the columns [{}], not [{}]; score with the model's columns",
                    want.join(", "),
                    ds.columns.join(", ")
                ),
            });
        }
        let mut clipped = vec![0u32; ds.rows()];
        let mut imputed = 0;
        let row_err = |r: usize, message: String| DataError::Row {
            file: ds.source.clone(),
            line: ds.id_lines[r] as u64,
            message,
        };
        let Some(prep) = &self.prep else {
            // Artifacts from before missing values and categories were handled.
            if let Some(i) = ds.x.iter().position(|v| v.is_nan()) {
                let (r, c) = (i / ds.cols(), i % ds.cols());
                return Err(row_err(
                    r,
                    format!(
                        "column '{}' is missing, and this model was trained without missing-value handling; fill the cell or retrain",
                        ds.columns[c]
                    ),
                ));
            }
            return Ok((ds.x.clone(), clipped, 0));
        };
        // Where each raw column's values go: output index of every prepared column by name.
        let position: HashMap<&str, usize> = self.columns.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let slot = |name: &str| position.get(name).copied();
        let cols = self.columns.len();
        let mut out = vec![0.0; ds.rows() * cols];
        for (c, input) in prep.inputs.iter().enumerate() {
            let missing_slot = slot(&format!("{}_missing", input.name()));
            let is_categorical = ds.levels[c].is_some();
            if is_categorical != matches!(input, InputColumn::Categorical { .. }) {
                let (was, now) = if is_categorical { ("numeric", "categorical") } else { ("categorical", "numeric") };
                return Err(DataError::Header {
                    file: ds.source.clone(),
                    message: format!(
                        "column '{}' was {was} when the model was trained but is {now} now; declare it the same way (the dataset's categorical = [..])",
                        input.name()
                    ),
                });
            }
            // Categorical: output slot of each level of this dataset (None: the reference level).
            let level_slot: Vec<Option<usize>> = match (input, &ds.levels[c]) {
                (InputColumn::Categorical { name, levels, reference, other, .. }, Some(here)) => here
                    .iter()
                    .map(|l| match levels.iter().position(|x| x == l) {
                        Some(k) => slot(&format!("{name}#{}", k + 1)),
                        None if *other && reference.as_ref() != Some(l) => slot(&format!("{name}#other")),
                        None => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for r in 0..ds.rows() {
                let v = ds.row(r)[c];
                let row = &mut out[r * cols..(r + 1) * cols];
                if v.is_nan() {
                    if prep.params.missing == MissingPolicy::Refuse {
                        return Err(row_err(
                            r,
                            format!(
                                "column '{}' is missing and the job has params.missing = \"refuse\"; fill the cell, or set params.missing = \"indicator\" or \"impute\"",
                                input.name()
                            ),
                        ));
                    }
                    imputed += 1;
                    if let Some(s) = missing_slot {
                        row[s] = 1.0;
                    }
                    if let (InputColumn::Numeric { median, .. }, Some(s)) = (input, slot(input.name())) {
                        row[s] = *median;
                    }
                    continue;
                }
                match input {
                    InputColumn::Numeric { name, low, high, .. } => {
                        let w = v.clamp(low.unwrap_or(f64::NEG_INFINITY), high.unwrap_or(f64::INFINITY));
                        clipped[r] += u32::from(w != v);
                        if let Some(s) = slot(name) {
                            row[s] = w;
                        }
                    }
                    InputColumn::Categorical { .. } => {
                        if let Some(s) = level_slot[v as usize] {
                            row[s] = 1.0;
                        }
                    }
                }
            }
        }
        Ok((out, clipped, imputed))
    }

    /// Prepares and standardises `ds` (columns [`Self::input_columns`]): each value clipped to
    /// its column's training range (so a value far outside what the model was trained on cannot
    /// dominate a score) and then to ±[`GRAM_MAX_ABS`].
    pub fn apply(&self, ds: &Dataset) -> Result<Standardized, DataError> {
        let (prepared, mut clipped, imputed) = self.prepare(ds)?;
        let cols = self.columns.len();
        // A range that is missing (older artifacts) or inconsistent (an edited file) clips nothing.
        let has_range =
            self.min.len() == cols && self.max.len() == cols && self.min.iter().zip(&self.max).all(|(lo, hi)| lo <= hi);
        let mut out = Vec::with_capacity(prepared.len());
        for (row, count) in prepared.chunks_exact(cols).zip(clipped.iter_mut()) {
            for (c, &v) in row.iter().enumerate() {
                let v = if has_range && !(self.min[c]..=self.max[c]).contains(&v) {
                    *count += 1;
                    v.clamp(self.min[c], self.max[c])
                } else {
                    v
                };
                let z = (v - self.mean[c]) / self.std[c];
                if z.abs() > GRAM_MAX_ABS {
                    *count += 1;
                }
                out.push(z.clamp(-GRAM_MAX_ABS, GRAM_MAX_ABS));
            }
        }
        Ok(Standardized { x: out, clipped, imputed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{CellFormat, parse, parse_with};

    fn plain() -> PrepParams {
        PrepParams { winsorize: None, ..PrepParams::default() }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn fits_on_training_rows_only_and_applies_to_all() {
        let ds = parse("t.csv", b"id,a,b\n1,1,10\n2,3,10.5\n3,100,-7\n", "id", &[], None).unwrap();
        let (st, warnings) = Standardizer::fit(&ds, &[0, 1], &plain()).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(st.mean, vec![2.0, 10.25]);
        assert_eq!(st.std, vec![1.0, 0.25]);
        assert_eq!((st.min.as_slice(), st.max.as_slice()), ([1.0, 10.0].as_slice(), [3.0, 10.5].as_slice()));
        let out = st.apply(&ds).unwrap();
        // Row 3 (100, −7) lies outside the training range in both columns: clipped to (3, 10).
        assert_eq!(out.clipped, vec![0, 0, 2]);
        assert_eq!(out.x, vec![-1.0, -1.0, 1.0, 1.0, 1.0, -1.0]);
        // An artifact from before `prep` existed reads and applies as before (no range: no clip).
        let old = Standardizer { min: vec![], max: vec![], prep: None, ..st.clone() };
        let json = serde_json::to_string(&old).unwrap().replace(",\"min\":[],\"max\":[],\"prep\":null", "");
        assert!(!json.contains("min") && !json.contains("prep"), "{json}");
        assert_eq!(serde_json::from_str::<Standardizer>(&json).unwrap(), old, "min/max/prep default to empty");
        assert_eq!(old.apply(&ds.select_rows(&[2])).unwrap().x, vec![98.0, (-7.0 - 10.25) / 0.25]);
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<Standardizer>(&json).unwrap(), st, "the artifact round-trips");
    }

    #[test]
    fn an_outlier_of_1e6_is_winsorised_at_train_percentiles() {
        // 20,000 rows: a = i mod 100 with row 7 replaced by 1e6; b is a 0/1 flag on 3 training
        // rows only.
        let n = 20_000;
        let mut text = String::from("id,a,b\n");
        for i in 0..n {
            let a = if i == 7 { 1e6 } else { (i % 100) as f64 };
            text += &format!("k{i},{a},{}\n", u8::from(i % 7_000 == 3));
        }
        let ds = parse("t.csv", text.as_bytes(), "id", &[], None).unwrap();
        let train: Vec<usize> = (0..18_000).collect();
        let test: Vec<usize> = (18_000..n).collect();
        // Without winsorising, the outlier's standardised value (≈ √18000 = 134) is beyond the
        // secure-training bound: it is clamped there, and counted.
        let (raw, _) = Standardizer::fit(&ds, &train, &plain()).unwrap();
        let z = raw.apply(&ds).unwrap();
        assert!((1e6 - raw.mean[0]) / raw.std[0] > GRAM_MAX_ABS);
        assert_eq!((z.x[7 * 2], z.clipped[7]), (GRAM_MAX_ABS, 1));
        // The 0.5 % and 99.5 % quantiles of the training values, computed here by hand.
        let mut a: Vec<f64> = train.iter().map(|&r| ds.row(r)[0]).collect();
        a.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let pos = p * (a.len() - 1) as f64;
            let i = pos.floor() as usize;
            a[i] + (pos - i as f64) * (a[i + 1] - a[i])
        };
        let (lo, hi) = (q(0.005), q(0.995));
        assert!((0.0..100.0).contains(&lo) && (0.0..100.0).contains(&hi), "{lo} {hi}");
        let (st, warnings) = Standardizer::fit(&ds, &train, &PrepParams::default()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let out = st.apply(&ds).unwrap();
        let winsorised: Vec<f64> = train.iter().map(|&r| ds.row(r)[0].clamp(lo, hi)).collect();
        let mean = winsorised.iter().sum::<f64>() / train.len() as f64;
        let sd = (winsorised.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / train.len() as f64).sqrt();
        assert!(close(st.mean[0], mean) && close(st.std[0], sd), "{} {}", st.mean[0], st.std[0]);
        assert!(close(out.x[7 * 2], (hi - mean) / sd), "the outlier sits at the upper bound");
        assert!(out.x.chunks(2).all(|r| r[0].abs() < 4.0), "no extreme value is left in a");
        let beyond = |rows: &[usize]| rows.iter().filter(|&&r| !(lo..=hi).contains(&ds.row(r)[0])).count();
        assert_eq!(out.clipped_on(&train), beyond(&train));
        assert_eq!(out.clipped_on(&test), beyond(&test));
        assert_eq!((beyond(&train), beyond(&test)), (1, 0), "every value repeats 180 times: only the outlier");
        // The flag column b has two values and is never winsorised (its 1s would vanish).
        let p: f64 = 3.0 / 18_000.0;
        let (flag_mean, flag_sd) = (p, (p * (1.0 - p)).sqrt());
        assert!(close(st.mean[1], flag_mean) && close(st.std[1], flag_sd));
        assert!(close(out.x[3 * 2 + 1], (1.0 - flag_mean) / flag_sd));
    }

    #[test]
    fn missing_cells_get_the_training_median_and_an_indicator_or_refuse_naming_the_line() {
        // Line 6 (k4) is missing on a training row, line 8 (k6) on a test row.
        let text = "id,a,b\nk1,1,5\nk2,4,6\nk3,2,9\n\nk4,,7\nk5,10,8\nk6,NA,1\n";
        let ds = parse("t.csv", text.as_bytes(), "id", &[], None).unwrap();
        let train = [0, 1, 2, 3];
        let (st, _) = Standardizer::fit(&ds, &train, &plain()).unwrap();
        assert_eq!(st.columns, ["a", "a_missing", "b"]);
        // Median of the training values 1, 4, 2 is 2; the filled column is 1, 4, 2, 2.
        let filled = [1.0, 4.0, 2.0, 2.0];
        let mean = filled.iter().sum::<f64>() / 4.0;
        let sd = (filled.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0).sqrt();
        assert!(close(st.mean[0], mean) && close(st.std[0], sd));
        assert!(close(st.mean[1], 0.25) && close(st.std[1], (0.25f64 * 0.75).sqrt()), "indicator 0,0,0,1");
        let out = st.apply(&ds).unwrap();
        assert_eq!(out.imputed, 2);
        let row = |r: usize| &out.x[r * 3..r * 3 + 3];
        assert!(close(row(5)[0], (2.0 - mean) / sd) && close(row(5)[1], (1.0 - 0.25) / st.std[1]));
        assert!(close(row(0)[1], (0.0 - 0.25) / st.std[1]));

        let impute = PrepParams { missing: MissingPolicy::Impute, ..plain() };
        let (st, _) = Standardizer::fit(&ds, &train, &impute).unwrap();
        assert_eq!(st.columns, ["a", "b"], "no indicator column");
        assert!(close(st.apply(&ds).unwrap().x[5 * 2], (2.0 - mean) / sd));

        let refuse = PrepParams { missing: MissingPolicy::Refuse, ..plain() };
        let e = Standardizer::fit(&ds, &train, &refuse).unwrap_err().to_string();
        assert!(e.starts_with("t.csv, line 6: column 'a' is missing") && e.contains("params.missing"), "{e}");
        let (st, _) = Standardizer::fit(&ds, &[0, 1, 2, 4], &refuse).unwrap();
        let e = st.apply(&ds).unwrap_err().to_string();
        assert!(e.starts_with("t.csv, line 6:"), "the file line, not the row index: {e}");
        let e = st.apply(&ds.select_rows(&[5, 4])).unwrap_err().to_string();
        assert!(e.starts_with("t.csv, line 8:"), "aligned rows keep their file lines: {e}");
    }

    #[test]
    fn categories_are_one_hot_with_rare_and_unseen_levels_merged() {
        // Training rows: A ×5, B ×3, C ×1, D ×1, missing ×1; min_category_count 2.
        let mut text = String::from("id,city,x\n");
        let cities = ["A", "B", "A", "C", "A", "B", "D", "A", "", "B", "A"];
        for (i, c) in cities.iter().enumerate() {
            text += &format!("k{i},{c},{}\n", i % 3);
        }
        text += "t1,E,1\nt2,C,2\nt3,B,0\n"; // test rows: an unseen level, a rare one, a common one
        let format = CellFormat { categorical: vec!["city".into()], ..CellFormat::default() };
        let ds = parse_with("t.csv", text.as_bytes(), "id", &[], None, &format).unwrap();
        let train: Vec<usize> = (0..cities.len()).collect();
        let params = PrepParams { min_category_count: 2, ..PrepParams::default() };
        let (st, warnings) = Standardizer::fit(&ds, &train, &params).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        // A is the reference (all zeros); B has its own column; C and D share #other.
        assert_eq!(st.columns, ["city#1", "city#other", "city_missing", "x"]);
        let Some(Prep { inputs, .. }) = &st.prep else { panic!("prep") };
        assert!(
            matches!(&inputs[0], InputColumn::Categorical { levels, reference: Some(r), other: true, indicator: true, .. }
            if levels == &["B"] && r == "A")
        );
        let out = st.apply(&ds).unwrap();
        // Un-standardise to read the 0/1 one-hot values back.
        let onehot =
            |r: usize| -> Vec<f64> { (0..3).map(|c| (out.x[r * 4 + c] * st.std[c] + st.mean[c]).round()).collect() };
        let expect = |c: &str| match c {
            "A" => vec![0.0, 0.0, 0.0],
            "B" => vec![1.0, 0.0, 0.0],
            "C" | "D" | "E" => vec![0.0, 1.0, 0.0],
            "" => vec![0.0, 0.0, 1.0],
            _ => unreachable!(),
        };
        for (r, c) in cities.iter().chain(&["E", "C", "B"]).enumerate() {
            assert_eq!(onehot(r), expect(c), "row {r} ({c})");
        }
        // Training means of the one-hot columns are the level shares: B 3/11, other 2/11.
        assert!(close(st.mean[0], 3.0 / 11.0) && close(st.mean[1], 2.0 / 11.0) && close(st.mean[2], 1.0 / 11.0));
        // A scoring file with other levels maps them by name, not by index.
        let scoring = parse_with("s.csv", b"id,city,x\ns1,B,1\ns2,Z,1\n", "id", &[], None, &format).unwrap();
        assert_eq!(scoring.levels[0], Some(vec!["B".to_string(), "Z".to_string()]));
        let z = st.apply(&scoring).unwrap().x;
        assert!(close(z[0] * st.std[0] + st.mean[0], 1.0) && close(z[5] * st.std[1] + st.mean[1], 1.0));
        // Declared differently at scoring: an error saying so.
        let numeric = parse("s.csv", b"id,city,x\ns1,1,1\n", "id", &[], None).unwrap();
        let e = st.apply(&numeric).unwrap_err().to_string();
        assert!(e.contains("'city' was categorical") && e.contains("categorical = [..]"), "{e}");
    }

    #[test]
    fn constant_columns_are_dropped_with_a_warning() {
        // On training rows 0 and 1, b is constant and the rare category of c is too: c has one
        // level there, so it has no column at all.
        let format = CellFormat { categorical: vec!["c".into()], ..CellFormat::default() };
        let ds = parse_with("t.csv", b"id,a,b,c\n1,1,5,u\n2,3,5,u\n3,4,6,v\n", "id", &[], None, &format).unwrap();
        let (st, warnings) = Standardizer::fit(&ds, &[0, 1], &plain()).unwrap();
        assert_eq!(st.columns, ["a"]);
        assert_eq!(st.inputs_used(), 1);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("t.csv") && warnings[0].contains("'b' is constant on the 2 training rows"));
        assert_eq!(st.input_columns(), ["a", "b", "c"], "scoring still reads every raw column");
        assert_eq!(st.apply(&ds).unwrap().x, vec![-1.0, 1.0, 1.0]);
        let (all, _) = Standardizer::fit(&ds, &[0, 1, 2], &plain()).unwrap();
        assert_eq!((all.columns.len(), all.inputs_used()), (2, 2), "c has one level below min_category_count");
        let e = Standardizer::fit(&ds.select_rows(&[0, 1]), &[1], &plain()).unwrap_err();
        assert_eq!(e, DataError::NoColumns { file: "t.csv".into(), rows: 1 });
    }

    #[test]
    fn a_column_whose_spread_overflows_is_named() {
        // 1e308 is a finite number, but its square overflows: the standard deviation is infinite.
        let ds = parse("t.csv", b"id,a,b\n1,1,5\n2,3,1e308\n3,4,6\n", "id", &[], None).unwrap();
        let e = Standardizer::fit(&ds, &[0, 1, 2], &plain()).unwrap_err();
        assert!(matches!(&e, DataError::Overflow { column, .. } if column == "b"), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("t.csv") && msg.contains("'b'") && msg.contains("1e308"), "{msg}");
        // Winsorising at the 99.5th percentile of three values keeps a value near 1e308.
        let e = Standardizer::fit(&ds, &[0, 1, 2], &PrepParams::default()).unwrap_err();
        assert!(matches!(&e, DataError::Overflow { column, .. } if column == "b"), "{e}");
        assert!(
            Standardizer::fit(&ds, &[0, 2], &PrepParams::default()).is_ok(),
            "the value is fine off the training rows"
        );
    }

    #[test]
    fn parameters_are_validated() {
        assert!(PrepParams::default().validate().is_ok());
        let bad = PrepParams { winsorize: Some([0.9, 0.1]), ..PrepParams::default() };
        assert!(bad.validate().unwrap_err().contains("winsorize = [0.9, 0.1]"));
        let bad = PrepParams { min_category_count: 0, ..PrepParams::default() };
        assert!(bad.validate().unwrap_err().contains("min_category_count"));
    }
}
