//! Binning, weight of evidence (WOE) and information value (IV) of one party's columns, in
//! plaintext: each party bins its own columns on its own training rows. Only the per-bin event
//! counts need the label; the bank counts its bins itself, the gov's come from
//! [`crate::woe_lr::gov_event_counts`] (secure, the label stays hidden).
//!
//! Bins of a numeric column: `bins` quantile or equal-width bins of the non-missing training
//! values (ties stay together, so there may be fewer), then bins holding less than
//! `min_bin_share` of the training rows are merged into their smaller neighbour. Bins of a
//! categorical column: one per level, levels below `min_bin_share` merged into one "other" bin
//! (which also takes levels never seen in training). Every column has a last bin for missing
//! values (NaN). With `monotonic`, adjacent numeric bins are then merged until the event rate
//! rises or falls monotonically (the direction of the first and last bin), which needs only the
//! per-bin counts.
//!
//! WOE of bin k with e_k events (label 1) and g_k non-events out of E and G: ln((e_k + ½)/E) −
//! ln((g_k + ½)/G) (positive = riskier than average; 0 for a bin without training rows).
//! IV = Σ_k ((e_k + ½)/E − (g_k + ½)/G)·WOE_k over the non-empty bins.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;

/// How to cut numeric columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinMethod {
    /// Equal shares of the training rows.
    Quantile,
    /// Equal widths between the training minimum and maximum.
    EqualWidth,
}

/// Binning and feature-selection parameters (job parameters of the WOE scorecard).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinningParams {
    /// Bins per numeric column before merging.
    pub bins: usize,
    pub method: BinMethod,
    /// Smallest share of the training rows a value bin may hold (smaller bins are merged).
    pub min_bin_share: f64,
    /// Merge adjacent numeric bins until the event rate is monotonic.
    pub monotonic: bool,
    /// Columns whose IV is below this are left out of the model.
    pub min_iv: f64,
    /// Fewest columns kept whatever their IV (the highest IVs): the node sets it to its policy's
    /// `min_model_columns`, so that IV selection never leaves a block small enough for partial
    /// scores to reveal single columns. Not a job parameter.
    #[serde(skip)]
    pub min_columns: usize,
}

impl Default for BinningParams {
    fn default() -> BinningParams {
        BinningParams {
            bins: 10,
            method: BinMethod::Quantile,
            min_bin_share: 0.05,
            monotonic: false,
            min_iv: 0.02,
            min_columns: 1,
        }
    }
}

impl BinningParams {
    /// Checks the values; the message names the job parameter and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=100).contains(&self.bins) {
            return Err(format!("bins = {}: use 2..=100 (default 10)", self.bins));
        }
        if !(0.0..0.5).contains(&self.min_bin_share) {
            return Err(format!("min_bin_share = {}: use a share in [0, 0.5), e.g. 0.05", self.min_bin_share));
        }
        if !(self.min_iv.is_finite() && self.min_iv >= 0.0) {
            return Err(format!(
                "min_iv = {}: use a non-negative number, e.g. 0.02 (0 keeps every column)",
                self.min_iv
            ));
        }
        Ok(())
    }
}

/// How values map to bins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinRule {
    /// Ascending cut points c_0 < … < c_(m−1): bin 0 holds v ≤ c_0, bin j holds c_(j−1) < v ≤ c_j,
    /// bin m holds v > c_(m−1).
    Numeric { cuts: Vec<f64> },
    /// Bin of each level index (cell value); `other` takes rare and unseen levels.
    Categorical { levels: Vec<String>, bin_of_level: Vec<usize>, other: usize, names: Vec<String> },
}

/// One column's bins; the last bin (index `value_bins()`) holds the missing values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnBins {
    pub feature: String,
    pub rule: BinRule,
}

impl ColumnBins {
    /// Number of value bins (the missing bin comes after them).
    pub fn value_bins(&self) -> usize {
        match &self.rule {
            BinRule::Numeric { cuts } => cuts.len() + 1,
            BinRule::Categorical { names, .. } => names.len(),
        }
    }

    /// Value bins plus the missing bin.
    pub fn len(&self) -> usize {
        self.value_bins() + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Bin of a raw cell value.
    pub fn bin(&self, v: f64) -> usize {
        if v.is_nan() {
            return self.value_bins();
        }
        match &self.rule {
            BinRule::Numeric { cuts } => cuts.partition_point(|&c| c < v),
            BinRule::Categorical { bin_of_level, other, .. } => {
                let level = v as usize;
                if v >= 0.0 && v.fract() == 0.0 && level < bin_of_level.len() { bin_of_level[level] } else { *other }
            }
        }
    }

    /// Human-readable name of bin `k`, e.g. "(-0.5, 1.2]", "missing".
    pub fn bin_name(&self, k: usize) -> String {
        if k == self.value_bins() {
            return "missing".into();
        }
        match &self.rule {
            BinRule::Numeric { cuts } => {
                let lo = if k == 0 { "-inf".to_string() } else { format!("{}", cuts[k - 1]) };
                let hi = if k == cuts.len() { "+inf".to_string() } else { format!("{}", cuts[k]) };
                format!("({lo}, {hi}]")
            }
            BinRule::Categorical { names, .. } => names[k].clone(),
        }
    }

    /// Fits the bins of one column on its training values (NaN = missing). `levels`: Some for a
    /// categorical column (cell value = level index).
    pub fn fit(feature: &str, values: &[f64], levels: Option<&[String]>, p: &BinningParams) -> ColumnBins {
        let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        let min_count = p.min_bin_share * values.len() as f64;
        let rule = match levels {
            Some(levels) => {
                let mut counts = vec![0usize; levels.len()];
                for &v in &present {
                    if v >= 0.0 && (v as usize) < levels.len() {
                        counts[v as usize] += 1;
                    }
                }
                let mut names = Vec::new();
                let mut bin_of_level = vec![usize::MAX; levels.len()];
                for (l, name) in levels.iter().enumerate() {
                    if counts[l] > 0 && counts[l] as f64 >= min_count {
                        bin_of_level[l] = names.len();
                        names.push(name.clone());
                    }
                }
                let other = names.len();
                names.push("other".into());
                bin_of_level.iter_mut().filter(|b| **b == usize::MAX).for_each(|b| *b = other);
                BinRule::Categorical { levels: levels.to_vec(), bin_of_level, other, names }
            }
            None => {
                let mut sorted = present;
                sorted.sort_by(f64::total_cmp);
                let cuts = initial_cuts(&sorted, p.bins, p.method);
                BinRule::Numeric { cuts: merge_small(&sorted, cuts, min_count) }
            }
        };
        ColumnBins { feature: feature.to_string(), rule }
    }

    /// Merges adjacent numeric value bins until the event rate is monotonic, adding up `counts`
    /// (per bin, this column's [`BinCounts`]); categorical columns are left as they are.
    pub fn make_monotonic(&mut self, counts: &mut BinCounts) {
        let BinRule::Numeric { cuts } = &mut self.rule else { return };
        loop {
            let m = cuts.len() + 1;
            let rate = |k: usize| counts.events[k] as f64 / counts.totals[k].max(1) as f64;
            let rising = rate(m - 1) >= rate(0);
            let Some(k) = (0..m - 1).find(|&k| if rising { rate(k + 1) < rate(k) } else { rate(k + 1) > rate(k) })
            else {
                return;
            };
            // Merge bins k and k + 1: drop cut k, add the counts.
            cuts.remove(k);
            for v in [&mut counts.events, &mut counts.totals] {
                let moved = v.remove(k + 1);
                v[k] += moved;
            }
        }
    }
}

/// Cut points of `bins` quantile or equal-width bins of the sorted values (duplicates removed).
fn initial_cuts(sorted: &[f64], bins: usize, method: BinMethod) -> Vec<f64> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let (lo, hi) = (sorted[0], sorted[n - 1]);
    let mut cuts: Vec<f64> = (1..bins)
        .map(|i| match method {
            BinMethod::Quantile => sorted[(i * n).div_ceil(bins) - 1],
            BinMethod::EqualWidth => lo + (hi - lo) * i as f64 / bins as f64,
        })
        .filter(|&c| c < hi)
        .collect();
    cuts.dedup();
    cuts
}

/// Merges value bins that are empty or hold fewer than `min_count` of the sorted values into
/// their smaller neighbour, smallest first.
fn merge_small(sorted: &[f64], mut cuts: Vec<f64>, min_count: f64) -> Vec<f64> {
    loop {
        let mut counts = vec![0usize; cuts.len() + 1];
        for &v in sorted {
            counts[cuts.partition_point(|&c| c < v)] += 1;
        }
        let Some((k, &c)) = counts.iter().enumerate().min_by_key(|(_, c)| **c) else { return cuts };
        if cuts.is_empty() || (c > 0 && c as f64 >= min_count) {
            return cuts;
        }
        // Bin k merges with its smaller neighbour: drop the cut between them.
        let cut = if k == 0 {
            0
        } else if k == cuts.len() || counts[k - 1] <= counts[k + 1] {
            k - 1
        } else {
            k
        };
        cuts.remove(cut);
    }
}

/// Training rows and events per bin of one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinCounts {
    pub totals: Vec<u64>,
    pub events: Vec<u64>,
}

impl BinCounts {
    /// Counts from plaintext bins and labels (the bank's own columns; the plaintext definition
    /// of the gov's secure counts).
    pub fn count(bins: &[usize], labels: &[f64], len: usize) -> BinCounts {
        let (mut totals, mut events) = (vec![0u64; len], vec![0u64; len]);
        for (&b, &y) in bins.iter().zip(labels) {
            totals[b] += 1;
            events[b] += (y == 1.0) as u64;
        }
        BinCounts { totals, events }
    }

    /// WOE per bin and the IV (module docs).
    pub fn woe_iv(&self) -> (Vec<f64>, f64) {
        let e_all: u64 = self.events.iter().sum();
        let g_all: u64 = self.totals.iter().sum::<u64>() - e_all;
        let (e_all, g_all) = (e_all.max(1) as f64, g_all.max(1) as f64);
        let mut iv = 0.0;
        let woe = self
            .totals
            .iter()
            .zip(&self.events)
            .map(|(&t, &e)| {
                if t == 0 {
                    return 0.0;
                }
                let de = (e as f64 + 0.5) / e_all;
                let dg = ((t - e) as f64 + 0.5) / g_all;
                let w = (de / dg).ln();
                iv += (de - dg) * w;
                w
            })
            .collect();
        (woe, iv)
    }
}

/// One column of a fitted WOE transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WoeColumn {
    pub bins: ColumnBins,
    pub counts: BinCounts,
    pub woe: Vec<f64>,
    pub iv: f64,
    /// IV at or above `min_iv`: the column is a model feature.
    pub selected: bool,
}

/// A party's WOE transform: its input columns (the job's columns, in order) and, for each, the
/// bins and WOE fitted on the training rows. Kept in the owner's model artifact only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WoeTransform {
    pub columns: Vec<WoeColumn>,
}

impl WoeTransform {
    /// Fits bins, merges, WOE, IV and the selection from raw training values (`x` rows ×
    /// columns, row-major, NaN = missing) and a function that returns each column's per-bin
    /// event counts given its bins and per-row bin indices of the training rows (the label
    /// holder counts in plaintext, the gov runs the secure count), which must return per column
    /// one count per bin, each at most the bin's rows. Columns reaching `min_iv` are kept, and at
    /// least the `min_columns` (at least one) with the highest IV.
    pub fn fit<E>(
        names: &[String],
        levels: &[Option<Vec<String>>],
        x: &[f64],
        train_rows: &[usize],
        p: &BinningParams,
        mut events: impl FnMut(&[ColumnBins], &[Vec<usize>]) -> Result<Vec<Vec<u64>>, E>,
    ) -> Result<WoeTransform, E> {
        let cols = names.len();
        let mut all_bins = Vec::with_capacity(cols);
        let mut assigned = Vec::with_capacity(cols);
        for c in 0..cols {
            let values: Vec<f64> = train_rows.iter().map(|&r| x[r * cols + c]).collect();
            let bins = ColumnBins::fit(&names[c], &values, levels.get(c).and_then(|l| l.as_deref()), p);
            assigned.push(values.iter().map(|&v| bins.bin(v)).collect::<Vec<usize>>());
            all_bins.push(bins);
        }
        let event_counts = events(&all_bins, &assigned)?;
        let mut columns = Vec::with_capacity(cols);
        for ((mut bins, rows), ev) in all_bins.into_iter().zip(&assigned).zip(event_counts) {
            let mut totals = vec![0u64; bins.len()];
            rows.iter().for_each(|&b| totals[b] += 1);
            assert!(
                ev.len() == totals.len() && ev.iter().zip(&totals).all(|(e, t)| e <= t),
                "`events` returns at most the bin's rows in each bin"
            );
            let mut counts = BinCounts { totals, events: ev };
            if p.monotonic {
                bins.make_monotonic(&mut counts);
            }
            let (woe, iv) = counts.woe_iv();
            columns.push(WoeColumn { selected: iv >= p.min_iv, bins, counts, woe, iv });
        }
        let mut by_iv: Vec<usize> = (0..columns.len()).collect();
        by_iv.sort_by(|&a, &b| columns[b].iv.total_cmp(&columns[a].iv));
        for &c in by_iv.iter().take(p.min_columns.max(1)) {
            columns[c].selected = true;
        }
        Ok(WoeTransform { columns })
    }

    /// Names of the input columns.
    pub fn input_columns(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.bins.feature.clone()).collect()
    }

    /// Names of the selected columns (the model's features).
    pub fn features(&self) -> Vec<String> {
        self.columns.iter().filter(|c| c.selected).map(|c| c.bins.feature.clone()).collect()
    }

    /// WOE values of the selected columns for raw rows `x` (rows × input columns).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        self.apply_rows(x)
    }

    /// [`WoeTransform::apply`] to a data set whose columns are [`WoeTransform::input_columns`],
    /// possibly loaded apart from the training data: its category levels are matched to the
    /// training levels by text (a level unseen in training falls into the "other" bin).
    pub fn apply_dataset(&self, ds: &Dataset) -> Vec<f64> {
        self.apply_rows(&self.training_levels(ds))
    }

    /// The bin of every cell of `ds` (rows × input columns, row-major), categories matched by
    /// their text as in [`WoeTransform::apply_dataset`].
    pub fn bins_dataset(&self, ds: &Dataset) -> Vec<usize> {
        let x = self.training_levels(ds);
        x.chunks_exact(self.columns.len())
            .flat_map(|row| self.columns.iter().zip(row).map(|(c, &v)| c.bins.bin(v)))
            .collect()
    }

    /// The cells of `ds` with each categorical level index replaced by its training level index
    /// (−1 for a level unseen in training).
    fn training_levels(&self, ds: &Dataset) -> Vec<f64> {
        let cols = self.columns.len();
        // Per column, the training level index of each of the data set's level indices.
        let remap: Vec<Option<Vec<f64>>> = self
            .columns
            .iter()
            .zip(&ds.levels)
            .map(|(c, levels)| match (&c.bins.rule, levels) {
                (BinRule::Categorical { levels: trained, .. }, Some(here)) => {
                    Some(here.iter().map(|l| trained.iter().position(|t| t == l).map_or(-1.0, |i| i as f64)).collect())
                }
                _ => None,
            })
            .collect();
        ds.x.chunks_exact(cols)
            .flat_map(|row| {
                row.iter().zip(&remap).map(|(&v, m)| match m {
                    Some(m) if !v.is_nan() => m.get(v as usize).copied().unwrap_or(-1.0),
                    _ => v,
                })
            })
            .collect()
    }

    fn apply_rows(&self, x: &[f64]) -> Vec<f64> {
        let cols = self.columns.len();
        x.chunks_exact(cols)
            .flat_map(|row| {
                self.columns.iter().zip(row).filter(|(c, _)| c.selected).map(|(c, &v)| c.woe[c.bins.bin(v)])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(bins: usize, method: BinMethod, min_bin_share: f64) -> BinningParams {
        BinningParams { bins, method, min_bin_share, ..Default::default() }
    }

    #[test]
    fn quantile_and_equal_width_cuts_with_a_missing_bin() {
        let values: Vec<f64> = (1..=100).map(f64::from).chain([f64::NAN; 5]).collect();
        let q = ColumnBins::fit("v", &values, None, &p(4, BinMethod::Quantile, 0.0));
        assert_eq!(q.rule, BinRule::Numeric { cuts: vec![25.0, 50.0, 75.0] });
        assert_eq!((q.bin(25.0), q.bin(25.5), q.bin(-1e9), q.bin(1e9), q.bin(f64::NAN)), (0, 1, 0, 3, 4));
        assert_eq!(
            (q.bin_name(0), q.bin_name(3), q.bin_name(4)),
            ("(-inf, 25]".into(), "(75, +inf]".into(), "missing".into())
        );
        let w = ColumnBins::fit("v", &values, None, &p(3, BinMethod::EqualWidth, 0.0));
        assert_eq!(w.rule, BinRule::Numeric { cuts: vec![34.0, 67.0] });
        // Ties stay in one bin: a column with three values has at most three bins.
        let ties: Vec<f64> = (0..90).map(|i| (i % 3) as f64).collect();
        let t = ColumnBins::fit("t", &ties, None, &p(10, BinMethod::Quantile, 0.0));
        assert_eq!(t.rule, BinRule::Numeric { cuts: vec![0.0, 1.0] });
    }

    #[test]
    fn small_bins_merge_into_their_smaller_neighbour() {
        // 2 rows at 0, 50 at 1, 8 at 2, 40 at 3, six equal-width bins: the two empty bins go
        // first; at 10 % the 2-row bin joins the 50 (its only neighbour), then the 8-row bin
        // joins the smaller of its neighbours, the 40.
        let values: Vec<f64> =
            [(0.0, 2), (1.0, 50), (2.0, 8), (3.0, 40)].iter().flat_map(|&(v, n)| vec![v; n]).collect();
        let b = ColumnBins::fit("v", &values, None, &p(6, BinMethod::EqualWidth, 0.0));
        assert_eq!(b.rule, BinRule::Numeric { cuts: vec![0.5, 1.0, 2.5] });
        let m = ColumnBins::fit("v", &values, None, &p(6, BinMethod::EqualWidth, 0.1));
        assert_eq!(m.rule, BinRule::Numeric { cuts: vec![1.0] });
    }

    #[test]
    fn categories_get_their_own_bins_and_rare_or_unseen_ones_share_other() {
        let levels: Vec<String> = ["x", "y", "z", "w"].map(String::from).to_vec();
        let values: Vec<f64> = [(0.0, 60), (1.0, 38), (2.0, 2)].iter().flat_map(|&(v, n)| vec![v; n]).collect();
        let b = ColumnBins::fit("c", &values, Some(&levels), &p(10, BinMethod::Quantile, 0.05));
        assert_eq!(b.value_bins(), 3);
        assert_eq!([0.0, 1.0, 2.0, 3.0, 7.0, 0.5].map(|v| b.bin(v)), [0, 1, 2, 2, 2, 2]);
        assert_eq!((b.bin_name(1), b.bin_name(2), b.bin(f64::NAN)), ("y".into(), "other".into(), 3));
    }

    #[test]
    fn woe_and_iv_follow_the_definition_and_monotonic_merging_pools_violators() {
        let counts = BinCounts { totals: vec![100, 100, 0, 50], events: vec![10, 30, 0, 10] };
        let (woe, iv) = counts.woe_iv();
        let (e, g) = (50.0, 200.0);
        let want = |ev: f64, t: f64| (((ev + 0.5) / e) / ((t - ev + 0.5) / g)).ln();
        assert!((woe[0] - want(10.0, 100.0)).abs() < 1e-12 && (woe[1] - want(30.0, 100.0)).abs() < 1e-12);
        assert_eq!(woe[2], 0.0, "an empty bin is neutral");
        let iv_want: f64 = [(10.0, 100.0), (30.0, 100.0), (10.0, 50.0)]
            .iter()
            .map(|&(ev, t)| ((ev + 0.5) / e - (t - ev + 0.5) / g) * want(ev, t))
            .sum();
        assert!((iv - iv_want).abs() < 1e-12 && iv > 0.0);

        // Event rates 0.1, 0.3, 0.2, 0.5 (rising overall): bins 1 and 2 pool to 0.25.
        let mut b = ColumnBins { feature: "v".into(), rule: BinRule::Numeric { cuts: vec![1.0, 2.0, 3.0] } };
        let mut c = BinCounts { totals: vec![100, 100, 100, 100, 7], events: vec![10, 30, 20, 50, 1] };
        b.make_monotonic(&mut c);
        assert_eq!(b.rule, BinRule::Numeric { cuts: vec![1.0, 3.0] });
        assert_eq!((c.totals, c.events), (vec![100, 200, 100, 7], vec![10, 50, 50, 1]), "the missing bin stays");
    }

    #[test]
    fn selection_keeps_columns_at_min_iv_or_else_the_best_one() {
        let names: Vec<String> = ["strong", "noise"].map(String::from).to_vec();
        let y: Vec<f64> = (0..400).map(|i| ((i % 4) == 0) as u8 as f64).collect();
        // "strong" separates the labels; "noise" has the same event rate in both its values.
        let x: Vec<f64> = (0..400).flat_map(|i| [y[i] + (i % 7) as f64 * 0.01, ((i / 4) % 2) as f64]).collect();
        let rows: Vec<usize> = (0..400).collect();
        let levels = vec![None, None];
        let count = |bins: &[ColumnBins], assigned: &[Vec<usize>]| {
            Ok::<_, ()>(bins.iter().zip(assigned).map(|(b, a)| BinCounts::count(a, &y, b.len()).events).collect())
        };
        let t = WoeTransform::fit(&names, &levels, &x, &rows, &BinningParams::default(), count).unwrap();
        assert_eq!(t.features(), ["strong"]);
        assert!(t.columns[1].iv < 0.02 && t.columns[0].iv > 1.0);
        assert_eq!(t.apply(&x[..4]).len(), 2, "one value per row of the selected column");
        let none = BinningParams { min_iv: 100.0, ..Default::default() };
        assert_eq!(WoeTransform::fit(&names, &levels, &x, &rows, &none, count).unwrap().features(), ["strong"]);
        let two = BinningParams { min_columns: 2, ..Default::default() };
        assert_eq!(WoeTransform::fit(&names, &levels, &x, &rows, &two, count).unwrap().features(), ["strong", "noise"]);
        assert!(BinningParams { bins: 1, ..Default::default() }.validate().unwrap_err().contains("bins = 1"));
    }
}
