//! The evaluation a model committee expects: discrimination (AUC, Gini, KS), calibration (Brier
//! score, predicted vs observed default rate by score decile), gains and lift by decile, the
//! bad rate and count per grade, and population stability (PSI) between the training population
//! and a scored one.
//!
//! Every figure is computed either exactly from per-row logits ([`Evaluation::from_rows`]) or
//! from binned counts ([`Evaluation::from_bins`], the counts of positive and negative rows per
//! logit bin that a train job opens without `scores_to_bank`). Binned figures come with a bound
//! on their distance to the exact figure of any rows that fall into those bins:
//! - AUC: rows of one bin count as tied ([`ScoreBins::auc_error_bound`]); Gini = 2·AUC − 1, so
//!   twice that bound.
//! - KS: taken over the bin edges, at most `max_b max(pos_b/P, neg_b/N)` below the exact KS.
//! - Predicted default rate (PD = σ(z), z the model's final logit): a bin (t_lo, t_hi] holds PDs
//!   in [σ(t_lo), σ(t_hi)]; each row counts as the midpoint of that range, so a group's mean PD
//!   is within the mean half-width of its bins' ranges (the outer bins reach PD 0 and 1).
//! - Brier score: within the largest deviation of the midpoint estimate from the exact Brier
//!   interval (positives' (1−π)² falls and negatives' π² rises with π, so the interval is exact).
//! - Deciles: rows are ranked by logit from the riskiest; a row goes to group
//!   ⌊10·(rows with a higher score)/n⌋ + 1, so tied rows (from bins: a whole bin) share a group
//!   and groups are near, not exactly, a tenth each (empty groups are left out). Counts, observed
//!   bad rate, capture and lift are exact for the groups so defined.
//! - Grades: exact when every grade cut-off is one of the bin thresholds (train jobs add them,
//!   [`crate::capped`]); otherwise the rows of a bin that straddles a cut-off are counted in the
//!   grade of the bin's upper edge and reported in [`Evaluation::grade_rows_uncertain`].
//!
//! These are plain functions of values a party already holds; nothing here is sent or opened.

use serde::{Deserialize, Serialize};

use crate::metrics::{self, ScoreBins};

/// Number of score groups of the calibration and gains tables.
pub const GROUPS: usize = 10;

/// PSI below this: the population is stable.
pub const PSI_WATCH: f64 = 0.1;
/// PSI above this: the population has shifted (between the two: watch).
pub const PSI_SHIFT: f64 = 0.25;
/// Share given to a band that holds no row on one side, so that PSI stays finite.
pub const PSI_EMPTY_SHARE: f64 = 1e-4;

/// The public grade cut-offs in logit units: a row with logit z has grade index
/// #{k : z > logits[k]} (0 = best grade), named `names[index]` (`logits.len() + 1` names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradeCuts {
    pub logits: Vec<f64>,
    pub names: Vec<String>,
}

impl GradeCuts {
    pub fn index(&self, z: f64) -> usize {
        self.logits.iter().filter(|&&t| z > t).count()
    }
}

/// Where the figures come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Exact, from per-row logits.
    Rows,
    /// From binned counts; see the bounds.
    Bins,
}

/// One score group (decile) from the riskiest (group 1) down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decile {
    pub group: usize,
    pub rows: u64,
    pub bads: u64,
    /// From rows: the lowest and highest logit of the group's rows. From bins: the group's
    /// outer bin edges (rows with logit_low < z ≤ logit_high; None for an outer bin's open end).
    pub logit_low: Option<f64>,
    pub logit_high: Option<f64>,
    /// Mean predicted PD σ(z) of the group's rows …
    pub predicted_pd: f64,
    /// … within this of the exact mean (0 from rows).
    pub predicted_bound: f64,
    /// bads / rows.
    pub observed_rate: f64,
    /// Share of all bads in this and the riskier groups (gains).
    pub cumulative_capture: f64,
    /// observed_rate / overall bad rate.
    pub lift: f64,
    /// Bad rate of this and the riskier groups / overall bad rate.
    pub cumulative_lift: f64,
}

/// One grade, best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradeRow {
    pub grade: String,
    pub rows: u64,
    pub bads: u64,
    /// bads / rows (NaN-free: 0 for an empty grade).
    pub bad_rate: f64,
}

/// The evaluation of a model on labelled rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub source: Source,
    pub rows: u64,
    pub bads: u64,
    pub auc: f64,
    /// 2·AUC − 1.
    pub gini: f64,
    pub ks: f64,
    /// Mean of (σ(z) − y)².
    pub brier: f64,
    /// |value − exact| bounds (0 from rows); KS: the exact KS lies in [ks, ks + ks_bound].
    pub auc_bound: f64,
    pub gini_bound: f64,
    pub ks_bound: f64,
    pub brier_bound: f64,
    pub deciles: Vec<Decile>,
    pub grades: Vec<GradeRow>,
    /// Rows in bins that straddle a grade cut-off (0 from rows).
    pub grade_rows_uncertain: u64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Per group (a run of tied scores, riskiest first): rows, bads, logit range, PD sum and bound sum.
struct Tie {
    rows: u64,
    bads: u64,
    low: f64,
    high: f64,
    pd_sum: f64,
    pd_slack: f64,
}

/// The decile table of `ties` (riskiest first, each one score value or bin).
fn deciles(ties: &[Tie]) -> Vec<Decile> {
    let n: u64 = ties.iter().map(|t| t.rows).sum();
    let bads: u64 = ties.iter().map(|t| t.bads).sum();
    let overall = bads as f64 / n.max(1) as f64;
    let mut out: Vec<Decile> = Vec::new();
    let mut above = 0u64;
    let (mut cum_rows, mut cum_bads) = (0u64, 0u64);
    let mut groups: Vec<(usize, Vec<&Tie>)> = Vec::new();
    for t in ties.iter().filter(|t| t.rows > 0) {
        let g = ((GROUPS as u64 * above / n) as usize).min(GROUPS - 1) + 1;
        match groups.last_mut() {
            Some((last, members)) if *last == g => members.push(t),
            _ => groups.push((g, vec![t])),
        }
        above += t.rows;
    }
    for (group, members) in groups {
        let rows: u64 = members.iter().map(|t| t.rows).sum();
        let group_bads: u64 = members.iter().map(|t| t.bads).sum();
        cum_rows += rows;
        cum_bads += group_bads;
        let rate = group_bads as f64 / rows as f64;
        let ratio = |r: f64| if overall > 0.0 { r / overall } else { 0.0 };
        out.push(Decile {
            group,
            rows,
            bads: group_bads,
            logit_low: Some(members.iter().map(|t| t.low).fold(f64::INFINITY, f64::min)).filter(|v| v.is_finite()),
            logit_high: Some(members.iter().map(|t| t.high).fold(f64::NEG_INFINITY, f64::max))
                .filter(|v| v.is_finite()),
            predicted_pd: members.iter().map(|t| t.pd_sum).sum::<f64>() / rows as f64,
            predicted_bound: members.iter().map(|t| t.pd_slack).sum::<f64>() / rows as f64,
            observed_rate: rate,
            cumulative_capture: if bads > 0 { cum_bads as f64 / bads as f64 } else { 0.0 },
            lift: ratio(rate),
            cumulative_lift: ratio(cum_bads as f64 / cum_rows as f64),
        });
    }
    out
}

fn grade_rows(cuts: &GradeCuts, rows: &[u64], bads: &[u64]) -> Vec<GradeRow> {
    cuts.names
        .iter()
        .zip(rows.iter().zip(bads))
        .map(|(name, (&r, &b))| GradeRow {
            grade: name.clone(),
            rows: r,
            bads: b,
            bad_rate: if r > 0 { b as f64 / r as f64 } else { 0.0 },
        })
        .collect()
}

impl Evaluation {
    /// Exact evaluation of `logits` (the model's final logits) against 0/1 `labels`; `grades`
    /// gives each row's grade index when known otherwise (e.g. from capped scores), else the
    /// grade follows from the logit and `cuts`. None without a positive or without a negative.
    pub fn from_rows(logits: &[f64], labels: &[f64], grades: Option<&[usize]>, cuts: &GradeCuts) -> Option<Evaluation> {
        assert_eq!(logits.len(), labels.len(), "logits and labels must have the same length");
        let n = labels.len();
        let bads = labels.iter().filter(|&&y| y == 1.0).count();
        if bads == 0 || bads == n {
            return None;
        }
        let auc = metrics::auc(logits, labels);
        let brier = logits.iter().zip(labels).map(|(&z, &y)| (sigmoid(z) - y).powi(2)).sum::<f64>() / n as f64;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let mut ties: Vec<Tie> = Vec::new();
        for &i in &order {
            let (z, bad) = (logits[i], u64::from(labels[i] == 1.0));
            match ties.last_mut() {
                Some(t) if t.low == z => {
                    t.rows += 1;
                    t.bads += bad;
                    t.pd_sum += sigmoid(z);
                }
                _ => ties.push(Tie { rows: 1, bads: bad, low: z, high: z, pd_sum: sigmoid(z), pd_slack: 0.0 }),
            }
        }
        let (mut g_rows, mut g_bads) = (vec![0u64; cuts.names.len()], vec![0u64; cuts.names.len()]);
        for i in 0..n {
            let g = grades.map_or_else(|| cuts.index(logits[i]), |g| g[i]);
            g_rows[g] += 1;
            g_bads[g] += u64::from(labels[i] == 1.0);
        }
        Some(Evaluation {
            source: Source::Rows,
            rows: n as u64,
            bads: bads as u64,
            auc,
            gini: 2.0 * auc - 1.0,
            ks: metrics::ks(logits, labels),
            brier,
            auc_bound: 0.0,
            gini_bound: 0.0,
            ks_bound: 0.0,
            brier_bound: 0.0,
            deciles: deciles(&ties),
            grades: grade_rows(cuts, &g_rows, &g_bads),
            grade_rows_uncertain: 0,
        })
    }

    /// Evaluation from binned counts, with the bounds stated in the module documentation.
    /// None without a positive or without a negative.
    pub fn from_bins(bins: &ScoreBins, cuts: &GradeCuts) -> Option<Evaluation> {
        let m = bins.metrics()?;
        let (p, q) = (m.positives as f64, (m.n - m.positives) as f64);
        let k = bins.thresholds.len();
        let edge = |j: usize| -> (f64, f64) {
            let low = if j == 0 { f64::NEG_INFINITY } else { bins.thresholds[j - 1] };
            let high = if j == k { f64::INFINITY } else { bins.thresholds[j] };
            (low, high)
        };
        let (mut brier_mid, mut brier_low, mut brier_high, mut ks_bound) = (0.0, 0.0, 0.0, 0.0f64);
        let mut ties: Vec<Tie> = Vec::new();
        let (mut g_rows, mut g_bads) = (vec![0u64; cuts.names.len()], vec![0u64; cuts.names.len()]);
        let mut uncertain = 0u64;
        for j in (0..=k).rev() {
            let (pos, neg) = (bins.positives[j], bins.negatives[j]);
            let (low, high) = edge(j);
            let (pd_lo, pd_hi) = (sigmoid(low), sigmoid(high));
            let mid = (pd_lo + pd_hi) / 2.0;
            let (pf, nf) = (pos as f64, neg as f64);
            brier_mid += pf * (1.0 - mid).powi(2) + nf * mid * mid;
            brier_low += pf * (1.0 - pd_hi).powi(2) + nf * pd_lo * pd_lo;
            brier_high += pf * (1.0 - pd_lo).powi(2) + nf * pd_hi * pd_hi;
            ks_bound = ks_bound.max((pf / p).max(nf / q));
            let rows = pos + neg;
            ties.push(Tie {
                rows,
                bads: pos,
                low,
                high,
                pd_sum: rows as f64 * mid,
                pd_slack: rows as f64 * (pd_hi - pd_lo) / 2.0,
            });
            let grade = cuts.logits.iter().filter(|&&t| t < high).count();
            if cuts.logits.iter().any(|&t| t > low && t < high) {
                uncertain += rows;
            }
            g_rows[grade] += rows;
            g_bads[grade] += pos;
        }
        let n = m.n as f64;
        let brier = brier_mid / n;
        let auc_bound = bins.auc_error_bound();
        Some(Evaluation {
            source: Source::Bins,
            rows: m.n as u64,
            bads: m.positives as u64,
            auc: m.auc,
            gini: 2.0 * m.auc - 1.0,
            ks: m.ks,
            brier,
            auc_bound,
            gini_bound: 2.0 * auc_bound,
            ks_bound,
            brier_bound: (brier - brier_low / n).max(brier_high / n - brier),
            deciles: deciles(&ties),
            grades: grade_rows(cuts, &g_rows, &g_bads),
            grade_rows_uncertain: uncertain,
        })
    }
}

/// One band of a stability table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsiBand {
    pub band: String,
    /// Rows of the training (reference) population and of the scored one.
    pub expected: u64,
    pub actual: u64,
    /// Their shares (each at least [`PSI_EMPTY_SHARE`] in the formula).
    pub expected_share: f64,
    pub actual_share: f64,
    /// (actual − expected)·ln(actual / expected) of the floored shares.
    pub contribution: f64,
}

/// Population stability of scores against the training population, over `basis` bands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    /// What the bands are: "grade" or "training score decile".
    pub basis: String,
    pub bands: Vec<PsiBand>,
    /// Σ contributions.
    pub psi: f64,
    /// "stable" (< 0.1), "watch" (0.1 to 0.25) or "shift" (> 0.25).
    pub verdict: String,
}

/// PSI = Σ_b (a_b − e_b)·ln(a_b / e_b) over the bands' shares, a share of 0 counted as
/// [`PSI_EMPTY_SHARE`]. None if either side has no row.
pub fn stability(basis: &str, bands: &[String], expected: &[u64], actual: &[u64]) -> Option<Stability> {
    let (te, ta) = (expected.iter().sum::<u64>(), actual.iter().sum::<u64>());
    if te == 0 || ta == 0 {
        return None;
    }
    let bands: Vec<PsiBand> = bands
        .iter()
        .zip(expected.iter().zip(actual))
        .map(|(band, (&e, &a))| {
            let (es, as_) = (e as f64 / te as f64, a as f64 / ta as f64);
            let (ef, af) = (es.max(PSI_EMPTY_SHARE), as_.max(PSI_EMPTY_SHARE));
            PsiBand {
                band: band.clone(),
                expected: e,
                actual: a,
                expected_share: es,
                actual_share: as_,
                contribution: (af - ef) * (af / ef).ln(),
            }
        })
        .collect();
    let psi: f64 = bands.iter().map(|b| b.contribution).sum();
    let verdict = if psi < PSI_WATCH {
        "stable"
    } else if psi <= PSI_SHIFT {
        "watch"
    } else {
        "shift"
    };
    Some(Stability { basis: basis.to_string(), bands, psi, verdict: verdict.to_string() })
}

/// Rows per grade of the `reference` bins (training population), as [`Evaluation::from_bins`]
/// assigns them.
pub fn grade_counts(reference: &ScoreBins, cuts: &GradeCuts) -> Vec<u64> {
    let k = reference.thresholds.len();
    let mut counts = vec![0u64; cuts.names.len()];
    for j in 0..=k {
        let high = if j == k { f64::INFINITY } else { reference.thresholds[j] };
        counts[cuts.logits.iter().filter(|&&t| t < high).count()] += reference.positives[j] + reference.negatives[j];
    }
    counts
}

/// PSI by grade: the training population's grades from `reference` bins against the scored
/// rows' grade indices.
pub fn grade_stability(reference: &ScoreBins, cuts: &GradeCuts, grades: &[usize]) -> Option<Stability> {
    let mut actual = vec![0u64; cuts.names.len()];
    grades.iter().for_each(|&g| actual[g] += 1);
    stability("grade", &cuts.names, &grade_counts(reference, cuts), &actual)
}

/// PSI by the training population's score deciles (the groups of [`Evaluation::from_bins`] on
/// `reference`): each scored logit goes to the group of the reference bin it falls in.
pub fn decile_stability(reference: &ScoreBins, logits: &[f64]) -> Option<Stability> {
    let k = reference.thresholds.len();
    let n: u64 = reference.positives.iter().chain(&reference.negatives).sum();
    if n == 0 {
        return None;
    }
    // Group of each bin, riskiest bins first, as in `deciles`.
    let mut group_of_bin = vec![0usize; k + 1];
    let mut above = 0u64;
    for j in (0..=k).rev() {
        group_of_bin[j] = ((GROUPS as u64 * above / n) as usize).min(GROUPS - 1);
        above += reference.positives[j] + reference.negatives[j];
    }
    let (mut expected, mut actual) = (vec![0u64; GROUPS], vec![0u64; GROUPS]);
    for j in 0..=k {
        expected[group_of_bin[j]] += reference.positives[j] + reference.negatives[j];
    }
    for &z in logits {
        actual[group_of_bin[reference.thresholds.iter().filter(|&&t| z > t).count()]] += 1;
    }
    let used: Vec<usize> = (0..GROUPS).filter(|&g| expected[g] > 0 || actual[g] > 0).collect();
    let names: Vec<String> = used.iter().map(|g| format!("decile {}", g + 1)).collect();
    let pick = |v: &[u64]| used.iter().map(|&g| v[g]).collect::<Vec<u64>>();
    stability("training score decile", &names, &pick(&expected), &pick(&actual))
}

/// The logit behind a capped score the bank received: the opened logit, or from the integer
/// points z ≈ (offset − points)/factor (within 0.5/factor of the logit, the points' rounding, and
/// ordered like −points); None when only the grade was opened.
pub fn score_logit(s: &crate::capped::Score, sc: &crate::scorecard::Scorecard) -> Option<f64> {
    s.logit.or_else(|| s.points.map(|p| (sc.offset() - p as f64) / sc.factor()))
}

/// The grade index of grade `name` (best first), None for a name not in `cuts`.
pub fn grade_index(cuts: &GradeCuts, name: &str) -> Option<usize> {
    cuts.names.iter().position(|g| g == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn sig(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    fn cuts() -> GradeCuts {
        GradeCuts { logits: vec![-3.1, -2.05, -1.3], names: ["A", "B", "C", "D"].map(String::from).to_vec() }
    }

    /// Logits on a coarse grid (ties) and labels drawn from their PD.
    fn sample(n: usize, seed: u64, grid: f64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let z: Vec<f64> = (0..n).map(|_| ((rng.random::<f64>() * 5.0 - 4.0) / grid).round() * grid).collect();
        let y = z.iter().map(|&v| if rng.random::<f64>() < sig(v) { 1.0 } else { 0.0 }).collect();
        (z, y)
    }

    /// Per group, by a direct loop over rows: (rows, bads, Σσ(z)) with group
    /// ⌊10·#{j : score_j > score_i}/n⌋ (0-based).
    fn direct_groups(score: &[f64], z: &[f64], y: &[f64]) -> Vec<(u64, u64, f64)> {
        let n = score.len();
        let mut g = vec![(0u64, 0u64, 0.0f64); GROUPS];
        for i in 0..n {
            let higher = score.iter().filter(|&&s| s > score[i]).count();
            let k = (GROUPS * higher / n).min(GROUPS - 1);
            g[k].0 += 1;
            g[k].1 += y[i] as u64;
            g[k].2 += sig(z[i]);
        }
        g
    }

    #[test]
    fn exact_evaluation_matches_direct_loops_over_rows() {
        let (z, y) = sample(2000, 11, 0.05);
        let c = cuts();
        let e = Evaluation::from_rows(&z, &y, None, &c).unwrap();
        let n = z.len() as f64;
        let bads = y.iter().sum::<f64>();
        let brier = z.iter().zip(&y).map(|(&v, &l)| (sig(v) - l) * (sig(v) - l)).sum::<f64>() / n;
        assert!((e.brier - brier).abs() < 1e-12, "{} vs {brier}", e.brier);
        assert!((e.gini - (2.0 * metrics::auc(&z, &y) - 1.0)).abs() < 1e-12);
        assert_eq!((e.rows, e.bads, e.source), (2000, bads as u64, Source::Rows));
        let want: Vec<(usize, (u64, u64, f64))> =
            direct_groups(&z, &z, &y).into_iter().enumerate().filter(|(_, g)| g.0 > 0).collect();
        assert_eq!(e.deciles.len(), want.len());
        let (mut cum_rows, mut cum_bads) = (0u64, 0u64);
        for (d, (k, (rows, b, pd))) in e.deciles.iter().zip(want) {
            cum_rows += rows;
            cum_bads += b;
            let rate = b as f64 / rows as f64;
            assert_eq!((d.group, d.rows, d.bads), (k + 1, rows, b));
            assert!((d.predicted_pd - pd / rows as f64).abs() < 1e-12 && d.predicted_bound == 0.0);
            assert!((d.observed_rate - rate).abs() < 1e-12);
            assert!((d.lift - rate / (bads / n)).abs() < 1e-12);
            assert!((d.cumulative_capture - cum_bads as f64 / bads).abs() < 1e-12);
            assert!((d.cumulative_lift - (cum_bads as f64 / cum_rows as f64) / (bads / n)).abs() < 1e-12);
        }
        assert!((e.deciles.last().unwrap().cumulative_capture - 1.0).abs() < 1e-12);
        for (k, g) in e.grades.iter().enumerate() {
            let of = |v: f64| c.logits.iter().filter(|&&t| v > t).count() == k;
            let rows = z.iter().filter(|&&v| of(v)).count() as u64;
            let b = z.iter().zip(&y).filter(|(v, l)| of(**v) && **l == 1.0).count() as u64;
            assert_eq!((g.grade.as_str(), g.rows, g.bads), (c.names[k].as_str(), rows, b));
        }
        // Given grade indices win over the logits'.
        let given = vec![3usize; z.len()];
        let e = Evaluation::from_rows(&z, &y, Some(&given), &c).unwrap();
        assert_eq!(e.grades[3].rows, 2000);
        assert!(Evaluation::from_rows(&z, &vec![0.0; z.len()], None, &c).is_none());
    }

    #[test]
    fn binned_evaluation_is_within_its_bounds_of_the_exact_one() {
        let (z, y) = sample(3000, 5, 0.001);
        let c = cuts();
        let grid = crate::capped::bin_thresholds();
        let mut thresholds = grid.clone();
        thresholds.extend(&c.logits);
        thresholds.sort_by(f64::total_cmp);
        let bins = ScoreBins::count(&z, &y, &thresholds);
        let e = Evaluation::from_bins(&bins, &c).unwrap();
        let exact = Evaluation::from_rows(&z, &y, None, &c).unwrap();
        assert_eq!(e.source, Source::Bins);
        assert!((e.auc - exact.auc).abs() <= e.auc_bound && e.auc_bound > 0.0);
        assert!((e.gini - exact.gini).abs() <= e.gini_bound);
        assert!(exact.ks >= e.ks - 1e-12 && exact.ks <= e.ks + e.ks_bound, "{} {} {}", exact.ks, e.ks, e.ks_bound);
        assert!((e.brier - exact.brier).abs() <= e.brier_bound, "{} {} {}", e.brier, exact.brier, e.brier_bound);
        // Deciles: the groups of the bin index, by a direct loop; PDs within their bounds.
        let index: Vec<f64> = z.iter().map(|&v| thresholds.iter().filter(|&&t| v > t).count() as f64).collect();
        let want: Vec<(u64, u64, f64)> = direct_groups(&index, &z, &y).into_iter().filter(|g| g.0 > 0).collect();
        assert_eq!(e.deciles.len(), want.len());
        for (d, (rows, b, pd)) in e.deciles.iter().zip(want) {
            assert_eq!((d.rows, d.bads), (rows, b));
            let exact_pd = pd / rows as f64;
            assert!((d.predicted_pd - exact_pd).abs() <= d.predicted_bound, "{d:?} vs {exact_pd}");
        }
        // Grades are exact with the cut-offs among the thresholds …
        assert_eq!((e.grades.clone(), e.grade_rows_uncertain), (exact.grades.clone(), 0));
        // … and without them, the rows of the straddling bins are counted as uncertain.
        let coarse = ScoreBins::count(&z, &y, &grid);
        let e = Evaluation::from_bins(&coarse, &c).unwrap();
        let straddling = z
            .iter()
            .filter(|&&v| {
                let j = grid.iter().filter(|&&t| v > t).count();
                let (lo, hi) = (grid.get(j.wrapping_sub(1)).copied().unwrap_or(f64::MIN), grid[j]);
                c.logits.iter().any(|&t| t > lo && t < hi)
            })
            .count() as u64;
        assert!(straddling > 0);
        assert_eq!(e.grade_rows_uncertain, straddling);
        assert_eq!(e.grades.iter().map(|g| g.rows).sum::<u64>(), 3000);
    }

    #[test]
    fn binned_estimates_use_bin_midpoints_and_their_bounds_are_attained_at_the_edges() {
        // Rows on the bins' upper edges (z = t_j lies in bin j): positives and negatives alike.
        let thresholds = crate::capped::bin_thresholds();
        let z: Vec<f64> = (0..1200).map(|i| thresholds[40 + (i % 40)]).collect();
        let y: Vec<f64> = (0..1200).map(|i| if i % 3 == 0 { 1.0 } else { 0.0 }).collect();
        let bins = ScoreBins::count(&z, &y, &thresholds);
        let e = Evaluation::from_bins(&bins, &cuts()).unwrap();
        // Direct: each row counts as the midpoint of its bin's PD range.
        let mid = |v: f64| {
            let j = thresholds.iter().position(|&t| t == v).unwrap();
            (sig(thresholds[j - 1]) + sig(v)) / 2.0
        };
        let brier = z.iter().zip(&y).map(|(&v, &l)| (mid(v) - l).powi(2)).sum::<f64>() / 1200.0;
        assert!((e.brier - brier).abs() < 1e-12, "{} vs {brier}", e.brier);
        for d in &e.deciles {
            let inside: Vec<f64> =
                z.iter().copied().filter(|&v| v > d.logit_low.unwrap() && v <= d.logit_high.unwrap()).collect();
            let estimate = inside.iter().map(|&v| mid(v)).sum::<f64>() / inside.len() as f64;
            let exact = inside.iter().map(|&v| sig(v)).sum::<f64>() / inside.len() as f64;
            assert!((d.predicted_pd - estimate).abs() < 1e-12);
            // Every row at its bin's top: the exact mean is exactly the bound away.
            assert!((exact - d.predicted_pd - d.predicted_bound).abs() < 1e-12, "{d:?}");
        }
        // Negatives at the upper edges, positives at the lower ones: the exact Brier is the
        // interval's top, at most the bound away.
        let z: Vec<f64> =
            (0..1200).map(|i| thresholds[40 + (i % 40)] - if i % 3 == 0 { 0.125 - 1e-9 } else { 0.0 }).collect();
        let bins = ScoreBins::count(&z, &y, &thresholds);
        let e = Evaluation::from_bins(&bins, &cuts()).unwrap();
        let exact = Evaluation::from_rows(&z, &y, None, &cuts()).unwrap();
        let gap = (e.brier - exact.brier).abs();
        assert!(gap <= e.brier_bound && gap > 0.9 * e.brier_bound, "{gap} vs bound {}", e.brier_bound);
    }

    #[test]
    fn psi_is_the_textbook_formula_on_a_constructed_shift() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let s = stability("grade", &names, &[100, 200, 300, 400], &[250, 250, 250, 250]).unwrap();
        let hand = (0.25 - 0.1) * (0.25f64 / 0.1).ln()
            + (0.25 - 0.2) * (0.25f64 / 0.2).ln()
            + (0.25 - 0.3) * (0.25f64 / 0.3).ln()
            + (0.25 - 0.4) * (0.25f64 / 0.4).ln();
        assert!((s.psi - hand).abs() < 1e-12 && (hand - 0.2282).abs() < 1e-4, "{} vs {hand}", s.psi);
        assert_eq!(s.verdict, "watch");
        let same = stability("grade", &names, &[100, 200, 300, 400], &[10, 20, 30, 40]).unwrap();
        assert!(same.psi.abs() < 1e-15 && same.verdict == "stable");
        // An empty band counts as a share of 1e-4.
        let gone = stability("grade", &names, &[500, 500, 0, 0], &[0, 500, 500, 0]).unwrap();
        let hand = (1e-4 - 0.5) * (1e-4f64 / 0.5).ln() + (0.5 - 1e-4) * (0.5f64 / 1e-4).ln();
        assert!((gone.psi - hand).abs() < 1e-12 && gone.verdict == "shift");
        assert!(stability("grade", &names, &[0; 4], &[1, 0, 0, 0]).is_none());

        // By training decile: 1000 reference rows on 10 bins of 100 (one decile each); the scored
        // rows move one bin up: the top decile doubles, the lowest empties.
        let thresholds: Vec<f64> = (1..10).map(|k| k as f64).collect();
        let ref_z: Vec<f64> = (0..1000).map(|i| (i / 100) as f64 + 0.5).collect();
        let reference = ScoreBins::count(&ref_z, &vec![0.0; 1000], &thresholds);
        let shifted: Vec<f64> = ref_z.iter().map(|v| v + 1.0).collect();
        let d = decile_stability(&reference, &shifted).unwrap();
        assert_eq!(d.bands.len(), 10);
        assert_eq!((d.bands[0].band.as_str(), d.bands[0].expected, d.bands[0].actual), ("decile 1", 100, 200));
        assert_eq!((d.bands[9].expected, d.bands[9].actual), (100, 0));
        let hand = (0.2 - 0.1) * 2f64.ln() + (1e-4 - 0.1) * (1e-4f64 / 0.1).ln();
        assert!((d.psi - hand).abs() < 1e-12, "{} vs {hand}", d.psi);
        // By grade, cut-offs at 2.5 and 6.5: grades of 300, 400, 300 rows become 200, 400, 400.
        let c = GradeCuts { logits: vec![2.5, 6.5], names: ["A", "B", "C"].map(String::from).to_vec() };
        let mut t = thresholds.clone();
        t.extend(&c.logits);
        t.sort_by(f64::total_cmp);
        let reference = ScoreBins::count(&ref_z, &vec![0.0; 1000], &t);
        let grades: Vec<usize> = shifted.iter().map(|&v| c.index(v)).collect();
        let g = grade_stability(&reference, &c, &grades).unwrap();
        assert_eq!(
            g.bands.iter().map(|b| (b.expected, b.actual)).collect::<Vec<_>>(),
            [(300, 200), (400, 400), (300, 400)]
        );
        let hand = (0.2 - 0.3) * (0.2f64 / 0.3).ln() + (0.4 - 0.3) * (0.4f64 / 0.3).ln();
        assert!((g.psi - hand).abs() < 1e-12);
    }
}
