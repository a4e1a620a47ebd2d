//! Binary classification metrics on scores (higher = more likely positive, i.e. default).

use serde::{Deserialize, Serialize};

/// Aggregate test metrics; the only thing about the test scores the gov learns.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub auc: f64,
    pub ks: f64,
    pub n: usize,
    pub positives: usize,
}

impl Metrics {
    /// AUC and KS of `scores` against 0/1 `labels`. Needs at least one positive and one negative.
    pub fn compute(scores: &[f64], labels: &[f64]) -> Metrics {
        Metrics {
            auc: auc(scores, labels),
            ks: ks(scores, labels),
            n: scores.len(),
            positives: labels.iter().filter(|&&y| y == 1.0).count(),
        }
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
}
