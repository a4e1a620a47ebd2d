//! Capped secure scoring and binned test metrics: what the bank learns about a row is limited
//! inside the secure computation, so a finer value than the policy allows is never opened.
//!
//! Scoring starts from additive shares of the fixed-point logit z (f fractional bits) and opens
//! to the bank, per row, only what the gov's [`ScoreOutput`] cap allows:
//! - `Grade`: the grade index = #{k : z > T_k} for public ring thresholds T_k (the grade
//!   cut-offs in logit units, [`FixedScorecard`]), by secure comparisons whose bits are turned
//!   into arithmetic shares and summed (engine `count_above`). The bank learns the grade only.
//! - `Points`: the grade index and the integer points ⌊(O − F·z) / 2^s⌋ (round-half-up of
//!   offset − factor·z), computed on shares with an exact floor (engine `floor_shift`). The bank
//!   learns grade and integer points, nothing finer.
//! - `Probability`: the logit z itself (the bank derives probability, points and grade).
//!
//! The three levels agree exactly: [`FixedScorecard`] is the plaintext definition of the grade
//! and points of a ring logit, and the bank applies it to the opened z at `Probability`.
//! The gov learns nothing per row in every mode.
//!
//! Every opened value is range-checked: a grade index in 0..=K, points within the range that
//! |z| ≤ [`LOGIT_MAX`] allows, a logit within ±[`LOGIT_MAX`].
//!
//! Binned test metrics (no per-row score opened): for the public logit thresholds
//! [`bin_thresholds`] (−8 to 8 in steps of ⅛, fixed, independent of any data), the engine
//! finds for each shared test logit whether it lies above each threshold (one exact floor to
//! ⅛-logit units, then engine `thermometer`: all 129 answers from the 7 low bits and two signs),
//! and the counts of positives and negatives above each threshold are sums of the bank's
//! plaintext labels selected by those shared bits (engine `select`, one OT per row and
//! threshold). Only these counts (and the bank's totals of positives and negatives) are opened,
//! to both parties: both learn how many test rows of each label fall in each of the 130 logit
//! bins, nothing per row.

use protocol::disclose::Grant;
use protocol::fixed::FixedPoint;
use protocol::mpc::Engine;
use protocol::{Error, InputError, PeerError, Result, Role};
use serde::{Deserialize, Serialize};

use crate::evaluation::GradeCuts;
use crate::metrics::ScoreBins;
use crate::scorecard::{ScoreOutput, Scorecard};
use crate::secure_lr::{METRICS, SCORES_TO_BANK};

/// Largest |logit| secure scoring accepts: opened logits and points are checked against it, and
/// the grade cut-offs must lie within it. A logit of 1024 is odds of e^1024; real models stay
/// far below.
pub const LOGIT_MAX: f64 = 1024.0;
const LOGIT_MAX_BITS: u32 = 10;
/// Largest |partial logit| of one party when the owners know their blocks (checked locally per
/// row, so that |z| ≤ [`LOGIT_MAX`] and comparisons run over fewer bits).
pub const PARTIAL_MAX: f64 = LOGIT_MAX / 2.0;
/// Fractional bits s of the points formula: the factor carries s − f of them (16 to 32), and
/// points up to 2^22 fit the ring.
const POINTS_SHIFT: u32 = 40;
/// Metric bins are ⅛ logit wide (2^−3) …
const BIN_STEP_BITS: u32 = 3;
/// … and 2^7 of them span −8 to 8 (a probability of default from 0.03 % to 99.97 %).
const BIN_BITS: u32 = 7;
/// Logit of the lowest threshold.
const BIN_LOW: i64 = -8;

/// The public logit thresholds of the binned test metrics: −8, −7.875, …, 8 (129, ascending).
pub fn bin_thresholds() -> Vec<f64> {
    let step = 1.0 / (1 << BIN_STEP_BITS) as f64;
    (0..=1i64 << BIN_BITS).map(|k| BIN_LOW as f64 + k as f64 * step).collect()
}

/// The thresholds of the binned test counts for scorecard `card`: [`bin_thresholds`] and the
/// grade cut-offs as logits, ascending, each once (`ScoreBins::count` over them is the plaintext
/// definition of [`open_binned_counts`]).
pub fn metric_thresholds(card: &FixedScorecard) -> Vec<f64> {
    let mut t = bin_thresholds();
    t.extend(card.grade_cuts().logits);
    t.sort_by(f64::total_cmp);
    t.dedup();
    t
}

/// A score the bank receives for one row; fields beyond the cap are None.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub grade: String,
    /// Integer points, round-half-up of offset − factor·z ([`FixedScorecard::points`]):
    /// `Points` and `Probability`.
    pub points: Option<i64>,
    /// z = x·w + b: `Probability` only.
    pub logit: Option<f64>,
    /// Probability of default 1/(1 + e^−z): `Probability` only.
    pub probability: Option<f64>,
}

/// A scorecard in the engine's fixed point: the exact plaintext definition of what secure
/// scoring computes from a ring logit z (f fractional bits).
/// - points(z) = ⌊(O − F·z) / 2^s⌋ with s = 40, F = round(factor·2^(s−f)),
///   O = round(offset·2^s) + 2^(s−1): offset − factor·z rounded half up (F's rounding moves the
///   points by at most |z|·2^(f−s−1), below 10^−4 for |z| ≤ 1024 and f = 16).
/// - grade index = #{k : z > T_k}, T_k the largest z with points(z) ≥ ceil(min_points_k),
///   which is the index of `Scorecard::grade(points(z))` (best grade 0, lowest grade K).
#[derive(Clone, Debug, PartialEq)]
pub struct FixedScorecard {
    fp: FixedPoint,
    offset: i128,
    factor: i128,
    shift: u32,
    /// T_k, ascending.
    cuts: Vec<i64>,
    /// Grade names, best first, then the lowest grade (K + 1).
    names: Vec<String>,
}

impl FixedScorecard {
    /// The fixed-point form of `sc` for `fp`; the error names the scorecard field to change.
    pub fn new(sc: &Scorecard, fp: FixedPoint) -> std::result::Result<FixedScorecard, String> {
        sc.validate()?;
        let shift = POINTS_SHIFT;
        let max_points = sc.offset().abs() + sc.factor() * LOGIT_MAX;
        if max_points >= 2f64.powi(62 - shift as i32) {
            return Err(format!(
                "scorecard: points reach {max_points:.0} for logits within ±{LOGIT_MAX}, beyond the ±2^{} secure scoring holds; \
                 lower scorecard.pdo or scorecard.base_points",
                62 - shift
            ));
        }
        let factor = (sc.factor() * 2f64.powi((shift - fp.frac_bits) as i32)).round() as i128;
        if factor < 1 {
            return Err(format!("scorecard.pdo = {}: too small; use at least 0.001 points", sc.pdo));
        }
        let offset = (sc.offset() * 2f64.powi(shift as i32)).round() as i128 + (1i128 << (shift - 1));
        let z_max = (LOGIT_MAX * fp.scale()) as i128;
        let mut cuts = Vec::with_capacity(sc.grades.len());
        let mut names = Vec::with_capacity(sc.grades.len() + 1);
        for g in &sc.grades {
            let min = g.min_points.ceil() as i128;
            let t = (offset - (min << shift)).div_euclid(factor);
            if t.abs() > z_max {
                return Err(format!(
                    "scorecard.grades: the cut-off of '{}' ({} points) lies at logit {:.0}, beyond ±{LOGIT_MAX}; use cut-offs within the points range {:.0} to {:.0}",
                    g.grade,
                    g.min_points,
                    t as f64 / fp.scale(),
                    sc.offset() - sc.factor() * LOGIT_MAX,
                    sc.offset() + sc.factor() * LOGIT_MAX
                ));
            }
            cuts.push(t as i64);
            names.push(g.grade.clone());
        }
        names.push(sc.lowest_grade.clone());
        Ok(FixedScorecard { fp, offset, factor, shift, cuts, names })
    }

    /// Integer points of ring logit `z`.
    pub fn points(&self, z: u64) -> i64 {
        ((self.offset - self.factor * (z as i64 as i128)) >> self.shift) as i64
    }

    /// Grade index of ring logit `z`: 0 for the best grade, K for the lowest.
    pub fn grade_index(&self, z: u64) -> usize {
        self.cuts.iter().filter(|&&t| z as i64 > t).count()
    }

    pub fn grade_name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// The grade cut-offs T_k as logits (exact: T_k / 2^f) with the grade names, for
    /// [`crate::evaluation`].
    pub fn grade_cuts(&self) -> GradeCuts {
        GradeCuts { logits: self.cuts.iter().map(|&t| self.fp.decode(t as u64)).collect(), names: self.names.clone() }
    }

    /// Lowest and highest points for logits within ±[`LOGIT_MAX`].
    pub fn points_range(&self) -> (i64, i64) {
        let z_max = (LOGIT_MAX * self.fp.scale()) as i64;
        (self.points(z_max as u64), self.points(z_max.wrapping_neg() as u64))
    }

    /// The score of ring logit `z` under `output`, in plaintext.
    pub fn score(&self, z: u64, output: ScoreOutput) -> Score {
        let logit = self.fp.decode(z);
        Score {
            grade: self.grade_name(self.grade_index(z)).to_string(),
            points: (output >= ScoreOutput::Points).then(|| self.points(z)),
            logit: (output == ScoreOutput::Probability).then_some(logit),
            probability: (output == ScoreOutput::Probability).then(|| 1.0 / (1.0 + (-logit).exp())),
        }
    }

    /// Comparison width for logits: |z − T_k| < 2^(f + 12) when |z| ≤ LOGIT_MAX + 1 ulp.
    fn logit_width(&self, bounded: bool) -> u32 {
        if bounded { self.fp.frac_bits + LOGIT_MAX_BITS + 3 } else { 64 }
    }
}

/// Opens to the bank the capped score of each row from shares `z` of the ring logits; Some at
/// the bank, None at the gov. `bounded`: both parties know |z| ≤ [`LOGIT_MAX`] (+1 ulp), so
/// comparisons run over fewer bits. `what` names the rows in the disclosure summary.
pub(crate) fn open_scores(
    engine: &mut Engine,
    card: &FixedScorecard,
    z: &[u64],
    bounded: bool,
    output: ScoreOutput,
    what: &str,
) -> Result<Option<Vec<Score>>> {
    let n = z.len();
    let grades = if output < ScoreOutput::Probability {
        let cuts: Vec<u64> = card.cuts.iter().map(|&t| t as u64).collect();
        engine.count_above(z, &cuts, card.logit_width(bounded))?
    } else {
        Vec::new()
    };
    let (opened, summary) = match output {
        ScoreOutput::Grade => (grades, format!("grades of {n} {what}, to the bank")),
        ScoreOutput::Points => {
            // O − F·z on shares (exact in the ring), then the exact floor by s bits; shifting the
            // result up by s drops the high bits that floor_shift leaves meaningless.
            let neg_fz: Vec<u64> = z.iter().map(|v| v.wrapping_mul((card.factor as u64).wrapping_neg())).collect();
            let p = engine.add_public(&neg_fz, &vec![card.offset as u64; n]);
            let points = engine.floor_shift(&p, card.shift)?;
            let mut v = grades;
            v.extend(points.iter().map(|q| q << card.shift));
            (v, format!("grades and integer points of {n} {what}, to the bank"))
        }
        ScoreOutput::Probability => {
            (z.to_vec(), format!("logits of {n} {what} (probability, points and grade), to the bank"))
        }
    };
    let grant = Grant::new("scores", SCORES_TO_BANK, summary);
    let Some(v) = engine.reveal_to(&grant, Role::Bank, &opened)? else { return Ok(None) };
    let max_index = card.cuts.len() as u64;
    let (lo, hi) = card.points_range();
    let mut scores = Vec::with_capacity(n);
    for i in 0..n {
        let score = match output {
            ScoreOutput::Probability => {
                let logit = card.fp.decode(v[i]);
                if logit.abs() > LOGIT_MAX {
                    return Err(Error::Input(InputError::Data(format!(
                        "the logit of row {i} is {logit:e}, beyond ±{LOGIT_MAX}: the model or this row's features are out of range"
                    ))));
                }
                card.score(v[i], output)
            }
            _ => {
                if v[i] > max_index {
                    return Err(PeerError::OutOfRange {
                        what: format!("opened grade index of row {i}"),
                        got: v[i],
                        range: format!("0..={max_index}"),
                    }
                    .into());
                }
                let points = (output == ScoreOutput::Points).then(|| (v[n + i] as i64) >> card.shift);
                if let Some(p) = points.filter(|p| !(lo..=hi).contains(p)) {
                    return Err(Error::Input(InputError::Data(format!(
                        "the points of row {i} are {p}, outside the scorecard's range {lo} to {hi} (logits within ±{LOGIT_MAX}): the model or this row's features are out of range"
                    ))));
                }
                Score { grade: card.grade_name(v[i] as usize).to_string(), points, logit: None, probability: None }
            }
        };
        scores.push(score);
    }
    Ok(Some(scores))
}

/// Rows per chunk of [`open_binned_counts`].
const BIN_CHUNK_ROWS: usize = 1 << 15;

/// Counts of positives and negatives per logit bin, from shares `z` of the logits of the `rows`
/// rows ("test": the test metrics; "training": the calibration) and the bank's labels (Some at
/// the bank, one 0/1 per row); only the counts are opened, to both. The bin thresholds are
/// [`bin_thresholds`] merged with the grade cut-offs of `card` (by secure comparisons,
/// [`Engine::greater_than`]), so that the counts per grade are exact: both parties learn how
/// many rows of each label lie in each ⅛-logit bin and in each grade.
/// `bounded` as in [`open_scores`].
pub(crate) fn open_binned_counts(
    engine: &mut Engine,
    card: &FixedScorecard,
    z: &[u64],
    bounded: bool,
    labels: Option<&[f64]>,
    rows: &str,
) -> Result<ScoreBins> {
    open_binned_counts_in_chunks(engine, card, z, bounded, labels, rows, BIN_CHUNK_ROWS)
}

/// [`open_binned_counts`] with `chunk_rows` rows per chunk.
fn open_binned_counts_in_chunks(
    engine: &mut Engine,
    card: &FixedScorecard,
    z: &[u64],
    bounded: bool,
    labels: Option<&[f64]>,
    rows: &str,
    chunk_rows: usize,
) -> Result<ScoreBins> {
    let n = z.len();
    let thresholds = bin_thresholds();
    let k = thresholds.len();
    let cut_ring: Vec<u64> = card.cuts.iter().map(|&t| t as u64).collect();
    let cuts = cut_ring.len();
    let all = k + cuts;
    // Every count is at most n, so the products and sums live in Z_2^ring with n < 2^ring
    // (ring bits of OT correction per value instead of 64); the shares are reduced to it
    // before they are opened, so an opened share says nothing beyond its count.
    let ring = (usize::BITS - n.leading_zeros()).max(1);
    let mask = if ring == 64 { u64::MAX } else { (1u64 << ring) - 1 };
    // Positives above each threshold (grid, then cut-offs), negatives above each, the totals;
    // row chunk by row chunk, so the working memory (about 4 kB per row) stays bounded.
    let mut counts = vec![0u64; 2 * all + 2];
    for r0 in (0..n).step_by(chunk_rows) {
        let r1 = (r0 + chunk_rows).min(n);
        let part = binned_counts_chunk(engine, card, &z[r0..r1], bounded, labels.map(|y| &y[r0..r1]), &cut_ring, ring)?;
        counts.iter_mut().zip(part).for_each(|(c, p)| *c = c.wrapping_add(p));
    }
    if let Some(y) = labels {
        let positives = y.iter().filter(|&&l| l == 1.0).count() as u64;
        counts[2 * all] = positives;
        counts[2 * all + 1] = n as u64 - positives;
    }
    let name = if rows == "test" { "test_metrics".to_string() } else { format!("{rows}_logit_bins") };
    let grant = Grant::new(
        &name,
        METRICS,
        format!(
            "counts of positive and negative {rows} rows above each of {k} fixed logit thresholds (binned ROC) and {cuts} \
             grade cut-offs, of {n} {rows} rows, to both"
        ),
    );
    counts.iter_mut().for_each(|c| *c &= mask);
    let opened: Vec<u64> = engine.reveal_both(&grant, &counts)?.iter().map(|c| c & mask).collect();
    let (p, q) = (opened[2 * all], opened[2 * all + 1]);
    // Thresholds in ascending order with their counts above; a cut-off on the grid once.
    let mut merged: Vec<(f64, u64, u64)> =
        thresholds.iter().enumerate().map(|(t, &v)| (v, opened[t], opened[all + t])).collect();
    for (c, &t) in cut_ring.iter().enumerate() {
        merged.push((engine.fixed().decode(t), opened[k + c], opened[all + k + c]));
    }
    merged.sort_by(|a, b| a.0.total_cmp(&b.0));
    let before = merged.len();
    merged.dedup_by(|a, b| a == b);
    let same_threshold_twice = merged.windows(2).any(|w| w[0].0 == w[1].0);
    let per_bin = |above: Vec<u64>, total: u64| -> Option<Vec<u64>> {
        let chain: Vec<u64> = std::iter::once(total).chain(above).chain([0]).collect();
        chain.windows(2).map(|w| w[0].checked_sub(w[1])).collect()
    };
    let positives = per_bin(merged.iter().map(|m| m.1).collect(), p);
    let negatives = per_bin(merged.iter().map(|m| m.2).collect(), q);
    match (p.checked_add(q) == Some(n as u64) && !same_threshold_twice, positives, negatives) {
        (true, Some(positives), Some(negatives)) => {
            Ok(ScoreBins { thresholds: merged.iter().map(|m| m.0).collect(), positives, negatives })
        }
        _ => Err(PeerError::Inconsistent {
            what: format!(
                "opened test-metric counts are inconsistent: totals {p} + {q} for {n} rows, counts above thresholds not \
             decreasing, or a grade cut-off on the grid with other counts ({} thresholds merged into {})",
                before,
                merged.len()
            ),
        }
        .into()),
    }
}

/// One row chunk of [`open_binned_counts`]: shares in `Z_2^ring` of the positives above each
/// threshold (grid, then cut-offs) and the negatives above each (`2·(k + cuts)` values, then two
/// zeros for the totals).
fn binned_counts_chunk(
    engine: &mut Engine,
    card: &FixedScorecard,
    z: &[u64],
    bounded: bool,
    labels: Option<&[f64]>,
    cut_ring: &[u64],
    ring: u32,
) -> Result<Vec<u64>> {
    let n = z.len();
    let f = engine.fixed().frac_bits;
    let k = bin_thresholds().len();
    // With q = ⌊(z − 1 ulp) / 2^(f − 3)⌋ (z in ⅛-logit units, exact) and v = q − 8·BIN_LOW,
    // z > t_k = BIN_LOW + k/8 ⟺ v ≥ k: the thermometer of v gives every threshold at once.
    // |v| ≤ 2^13 + 65 when bounded; otherwise v is valid modulo 2^(64 − s).
    let s = f - BIN_STEP_BITS;
    let z_minus_ulp = engine.add_public(z, &vec![1u64.wrapping_neg(); n]);
    let q = engine.floor_shift(&z_minus_ulp, s)?;
    let v = engine.add_public(&q, &vec![(-BIN_LOW << BIN_STEP_BITS) as u64; n]);
    let width = if bounded { LOGIT_MAX_BITS + BIN_STEP_BITS + 2 } else { 64 - s };
    let above = engine.thermometer(&v, BIN_BITS, width)?;
    let cut_above = engine.greater_than(z, cut_ring, card.logit_width(bounded))?;
    let cuts = cut_ring.len();
    // Each row's (positive, negative) indicator, once per threshold.
    let values = |times: usize| -> Option<Vec<u64>> {
        labels.map(|y| {
            let per_row: Vec<[u64; 2]> = y.iter().map(|&l| if l == 1.0 { [1, 0] } else { [0, 1] }).collect();
            (0..times).flat_map(|_| per_row.iter().flatten().copied()).collect()
        })
    };
    let mut selected = engine.select(Role::Bank, values(k).as_deref(), 2, &above, k * n, ring)?;
    selected.extend(engine.select(Role::Bank, values(cuts).as_deref(), 2, &cut_above, cuts * n, ring)?);
    let all = k + cuts;
    let mut counts = vec![0u64; 2 * all + 2];
    for (j, pair) in selected.chunks_exact(2).enumerate() {
        let t = j / n.max(1);
        counts[t] = counts[t].wrapping_add(pair[0]);
        counts[all + t] = counts[all + t].wrapping_add(pair[1]);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorecard::GradeCut;
    use rand::{RngExt, SeedableRng};

    /// Chunked binned counts equal the counts of the plaintext logits computed here, for a
    /// chunk size that splits the rows unevenly and for one chunk.
    #[test]
    fn binned_counts_in_chunks_equal_the_plaintext_counts() {
        let fp = FixedPoint::new(16);
        let card = FixedScorecard::new(&Scorecard::default(), fp).unwrap();
        let mut r = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let z: Vec<f64> = (0..700).map(|_| r.random_range(-9.0..9.0)).collect();
        let y: Vec<f64> = z.iter().map(|&v| if r.random_range(-12.0..12.0) < v { 1.0 } else { 0.0 }).collect();
        let ring: Vec<u64> = z.iter().map(|&v| fp.encode(v)).collect();
        let thresholds = metric_thresholds(&card);
        let want = ScoreBins::count(&ring.iter().map(|&v| fp.decode(v)).collect::<Vec<_>>(), &y, &thresholds);
        for chunk in [256, 700] {
            let run = |ch: &mut protocol::Channel| {
                let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(ch.role().index() as u64);
                let mut e = Engine::with_test_dealer(ch, fp, 9, &mut rng);
                let gov = e.role() == Role::Gov;
                let shares = e.share(Role::Gov, gov.then_some(&ring[..]), ring.len()).unwrap();
                let labels = (!gov).then_some(&y[..]);
                open_binned_counts_in_chunks(&mut e, &card, &shares, true, labels, "test", chunk).unwrap()
            };
            let (g, b) = protocol::channel::run_pair(run, run);
            assert_eq!(g, b);
            assert_eq!(g, want, "chunks of {chunk} rows");
        }
    }

    #[test]
    fn fixed_scorecard_matches_the_scorecard_on_its_integer_points() {
        let fp = FixedPoint::new(16);
        let mut sc = Scorecard::default();
        sc.grades.push(GradeCut { grade: "C-".into(), min_points: 480.5 });
        let card = FixedScorecard::new(&sc, fp).unwrap();
        let z_max = (LOGIT_MAX * fp.scale()) as i64;
        // Every ulp around each cut-off, and a spread of logits.
        let mut zs: Vec<i64> = card.cuts.iter().flat_map(|&t| (t - 3..=t + 3).collect::<Vec<_>>()).collect();
        zs.extend((-4000..4000).map(|k| k * 977 + 13));
        zs.extend([z_max, -z_max]);
        for &z in &zs {
            let p = card.points(z as u64);
            let exact = sc.points_from_logit(fp.decode(z as u64));
            assert!((p as f64 - exact).abs() <= 0.5 + 1e-4, "points {p} for exact {exact}");
            let i = card.grade_index(z as u64);
            assert_eq!(card.grade_name(i), sc.grade(p as f64), "z = {z}");
        }
        assert_eq!(card.points(0), 487, "offset 600 − 20·log2(50) = 487.1");
        let (lo, hi) = card.points_range();
        assert!(lo < 487 - 29_000 && hi > 487 + 29_000);
        let s = card.score(fp.encode(-2.0), ScoreOutput::Points);
        assert_eq!((s.points, s.logit, s.probability), (Some(sc.points_from_logit(-2.0).round() as i64), None, None));
    }

    #[test]
    fn scorecards_beyond_the_fixed_point_range_are_refused() {
        let fp = FixedPoint::new(16);
        let far = Scorecard { grades: vec![GradeCut { grade: "X".into(), min_points: 1e6 }], ..Scorecard::default() };
        let e = FixedScorecard::new(&far, fp).unwrap_err();
        assert!(e.contains("scorecard.grades") && e.contains("'X'"), "{e}");
        let huge = Scorecard { pdo: 1e5, grades: vec![], ..Scorecard::default() };
        assert!(FixedScorecard::new(&huge, fp).unwrap_err().contains("scorecard.pdo"));
        assert!(FixedScorecard::new(&Scorecard::default(), FixedPoint::new(24)).is_ok());
    }

    #[test]
    fn bin_thresholds_are_exact_in_fixed_point() {
        let t = bin_thresholds();
        assert_eq!((t.len(), t[0], t[1], t[128]), (129, -8.0, -7.875, 8.0));
        let fp = FixedPoint::new(8);
        assert!(t.iter().all(|&v| fp.decode(fp.encode(v)) == v));
    }
}
