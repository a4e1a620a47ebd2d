//! Binary classification metrics on scores (higher = more likely positive, i.e. default).

use serde::{Deserialize, Serialize};

/// Aggregate test metrics; the only thing about the test scores the gov learns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub auc: f64,
    pub ks: f64,
    pub n: usize,
    pub positives: usize,
    /// The binned counts the metrics were computed from, when no per-row score was opened.
    /// (`default`: absent in artifacts written before; never skipped when writing, since the
    /// binary channel encoding is not self-describing.)
    #[serde(default)]
    pub bins: Option<ScoreBins>,
}

impl Metrics {
    /// AUC and KS of `scores` against 0/1 `labels`. Needs at least one positive and one negative.
    pub fn compute(scores: &[f64], labels: &[f64]) -> Metrics {
        Metrics {
            auc: auc(scores, labels),
            ks: ks(scores, labels),
            n: scores.len(),
            positives: labels.iter().filter(|&&y| y == 1.0).count(),
            bins: None,
        }
    }
}

/// Test rows counted by logit bin and label. With ascending `thresholds` t_0 < … < t_(K−1),
/// bin 0 holds z ≤ t_0, bin j holds t_(j−1) < z ≤ t_j, bin K holds z > t_(K−1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreBins {
    pub thresholds: Vec<f64>,
    /// Positives (label 1) per bin, K + 1 entries.
    pub positives: Vec<u64>,
    /// Negatives (label 0) per bin, K + 1 entries.
    pub negatives: Vec<u64>,
}

impl ScoreBins {
    /// Counts `logits` against 0/1 `labels` (the plaintext definition of the secure counts).
    pub fn count(logits: &[f64], labels: &[f64], thresholds: &[f64]) -> ScoreBins {
        let k = thresholds.len();
        let (mut positives, mut negatives) = (vec![0u64; k + 1], vec![0u64; k + 1]);
        for (&z, &y) in logits.iter().zip(labels) {
            let bin = thresholds.iter().filter(|&&t| z > t).count();
            if y == 1.0 { positives[bin] += 1 } else { negatives[bin] += 1 }
        }
        ScoreBins { thresholds: thresholds.to_vec(), positives, negatives }
    }

    fn totals(&self) -> (f64, f64) {
        (self.positives.iter().sum::<u64>() as f64, self.negatives.iter().sum::<u64>() as f64)
    }

    /// AUC (trapezoid over the binned ROC, i.e. rows in one bin count as tied), KS (over the
    /// bin boundaries), n and positives. None without a positive or without a negative.
    pub fn metrics(&self) -> Option<Metrics> {
        let (p, n) = self.totals();
        if p == 0.0 || n == 0.0 {
            return None;
        }
        let (mut auc, mut pos_above, mut ks) = (0.0, 0.0, 0.0f64);
        for (&pb, &nb) in self.positives.iter().zip(&self.negatives).rev() {
            auc += nb as f64 * (pos_above + pb as f64 / 2.0);
            pos_above += pb as f64;
        }
        let (mut pos_below, mut neg_below) = (0.0, 0.0);
        for (&pb, &nb) in self.positives.iter().zip(&self.negatives) {
            pos_below += pb as f64;
            neg_below += nb as f64;
            ks = ks.max((pos_below / p - neg_below / n).abs());
        }
        Some(Metrics { auc: auc / (p * n), ks, n: (p + n) as usize, positives: p as usize, bins: Some(self.clone()) })
    }

    /// Bound on |binned AUC − exact AUC| for any scores that fall into these bins: pairs of a
    /// positive and a negative in the same bin count ½ here and 0, ½ or 1 exactly, so the gap is
    /// at most ½·Σ_b pos_b·neg_b / (P·N).
    pub fn auc_error_bound(&self) -> f64 {
        let (p, n) = self.totals();
        let same_bin: f64 = self.positives.iter().zip(&self.negatives).map(|(&a, &b)| a as f64 * b as f64).sum();
        same_bin / (2.0 * p * n)
    }

    /// ROC curve `[fpr, tpr]` from (0, 0) to (1, 1), one point per bin from the highest logits
    /// down (its area is [`ScoreBins::metrics`]' AUC).
    pub fn roc(&self) -> Vec<[f64; 2]> {
        let (p, n) = self.totals();
        let (p, n) = (p.max(1.0), n.max(1.0));
        let mut curve = vec![[0.0, 0.0]];
        let (mut tp, mut fp) = (0.0, 0.0);
        for (&pb, &nb) in self.positives.iter().zip(&self.negatives).rev() {
            tp += pb as f64;
            fp += nb as f64;
            curve.push([fp / n, tp / p]);
        }
        curve
    }
}

/// Indices of `scores` sorted ascending, grouped into runs of equal scores.
fn tied_groups(scores: &[f64]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match groups.last_mut() {
            Some(g) if scores[g[0]] == scores[i] => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    groups
}

/// Area under the ROC curve by the rank-sum (Mann–Whitney) formula, ties get their average rank.
/// NaN if there are no positives or no negatives.
pub fn auc(scores: &[f64], labels: &[f64]) -> f64 {
    assert_eq!(scores.len(), labels.len(), "scores and labels must have the same length");
    let mut rank_sum_pos = 0.0;
    let mut n_pos = 0usize;
    let mut next_rank = 1.0;
    for g in tied_groups(scores) {
        let avg_rank = next_rank + (g.len() as f64 - 1.0) / 2.0;
        next_rank += g.len() as f64;
        let pos = g.iter().filter(|&&i| labels[i] == 1.0).count();
        rank_sum_pos += avg_rank * pos as f64;
        n_pos += pos;
    }
    let n_neg = scores.len() - n_pos;
    (rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0) / (n_pos as f64 * n_neg as f64)
}

/// Kolmogorov–Smirnov statistic: max over thresholds of |TPR − FPR|, thresholds between distinct
/// scores only (tied scores are never split).
pub fn ks(scores: &[f64], labels: &[f64]) -> f64 {
    assert_eq!(scores.len(), labels.len(), "scores and labels must have the same length");
    let n_pos = labels.iter().filter(|&&y| y == 1.0).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    let (mut pos_below, mut neg_below, mut best) = (0.0, 0.0, 0.0f64);
    for g in tied_groups(scores) {
        for i in g {
            if labels[i] == 1.0 { pos_below += 1.0 } else { neg_below += 1.0 }
        }
        best = best.max((pos_below / n_pos - neg_below / n_neg).abs());
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn brute_auc(s: &[f64], y: &[f64]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..s.len() {
            for j in 0..s.len() {
                if y[i] == 1.0 && y[j] == 0.0 {
                    den += 1.0;
                    num += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        num / den
    }

    fn brute_ks(s: &[f64], y: &[f64]) -> f64 {
        let p = y.iter().filter(|&&v| v == 1.0).count() as f64;
        let n = y.len() as f64 - p;
        s.iter()
            .map(|&t| {
                let tp = s.iter().zip(y).filter(|&(&v, &l)| v <= t && l == 1.0).count() as f64;
                let fp = s.iter().zip(y).filter(|&(&v, &l)| v <= t && l == 0.0).count() as f64;
                (tp / p - fp / n).abs()
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn auc_and_ks_match_brute_force_with_ties() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..20 {
            let n = 20 + round * 10;
            // Scores on a coarse grid so that ties between positives and negatives are common.
            let y: Vec<f64> = (0..n).map(|_| if rng.random::<f64>() < 0.3 { 1.0 } else { 0.0 }).collect();
            let s: Vec<f64> = y.iter().map(|&l| ((rng.random::<f64>() + 0.4 * l) * 8.0).floor()).collect();
            if y.iter().all(|&l| l == y[0]) {
                continue;
            }
            assert!((auc(&s, &y) - brute_auc(&s, &y)).abs() < 1e-12);
            assert!((ks(&s, &y) - brute_ks(&s, &y)).abs() < 1e-12);
        }
        let m = Metrics::compute(&[0.1, 0.9, 0.4, 0.4], &[0.0, 1.0, 1.0, 0.0]);
        assert_eq!((m.auc, m.n, m.positives), (brute_auc(&[0.1, 0.9, 0.4, 0.4], &[0.0, 1.0, 1.0, 0.0]), 4, 2));
    }

    #[test]
    fn binned_metrics_are_the_metrics_of_the_bin_index_and_near_the_exact_ones() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let thresholds = crate::capped::bin_thresholds();
        let n = 3000;
        let y: Vec<f64> = (0..n).map(|_| if rng.random::<f64>() < 0.2 { 1.0 } else { 0.0 }).collect();
        let z: Vec<f64> = y.iter().map(|&l| -1.5 + l + 1.2 * (rng.random::<f64>() - 0.5) * 3.0).collect();
        let bins = ScoreBins::count(&z, &y, &thresholds);
        let m = bins.metrics().unwrap();
        // Independent: the exact metrics of the bin index as a score (ties = same bin).
        let index: Vec<f64> = z.iter().map(|&v| thresholds.iter().filter(|&&t| v > t).count() as f64).collect();
        let want = Metrics::compute(&index, &y);
        assert!((m.auc - want.auc).abs() < 1e-12 && (m.ks - want.ks).abs() < 1e-12, "{m:?} vs {want:?}");
        assert_eq!((m.n, m.positives), (want.n, want.positives));
        let roc = bins.roc();
        let area: f64 = roc.windows(2).map(|w| (w[1][0] - w[0][0]) * (w[1][1] + w[0][1]) / 2.0).sum();
        assert!((area - m.auc).abs() < 1e-12 && roc.last() == Some(&[1.0, 1.0]));
        let exact = auc(&z, &y);
        assert!((m.auc - exact).abs() <= bins.auc_error_bound(), "{} vs {exact}", m.auc);
        assert!(ScoreBins::count(&z, &vec![0.0; n], &thresholds).metrics().is_none(), "one class only");
    }
}
