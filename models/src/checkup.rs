//! Credit check-up of one entity, computed by the gov in plaintext from what it already holds —
//! its own WOE block of a scorecard ([`crate::woe_lr`]) and its own rows — and one number the
//! bank opens for that entity: its block's points plus the model's base points (the bank's rows
//! of [`crate::woe_lr::scorecard_table`] applied to the entity). Nothing here is exchanged.
//!
//! - Points: each gov column's points are −factor·a·w·WOE of the entity's bin (0 for a column
//!   the model left out); columns are grouped into named dimensions ([`group_dimensions`]); the
//!   bank's number is the one dimension [`FINANCIAL_BEHAVIOUR`]. The dimensions add up to the
//!   entity's scorecard points, rounded half up to the integer points that set the grade.
//! - Standing: each gov dimension's points against the same dimension's points over all the gov's
//!   rows (median, shares of rows with fewer and more points): a strength above the median, a
//!   weak point below it.
//! - What would raise the grade: the points needed for the next grade, and for each gov column
//!   the move to the value bin with the most points (bins with training rows; not "missing"),
//!   largest gains first (at least [`MIN_GAIN`]).

use std::collections::BTreeMap;

use protocol::Role;
use serde::{Deserialize, Serialize};

use crate::binning::WoeTransform;
use crate::scorecard::Scorecard;

/// Name of the dimension of the bank's block.
pub const FINANCIAL_BEHAVIOUR: &str = "financial behaviour";
/// Most attribute changes listed under "what would raise the grade".
pub const MAX_IMPROVEMENTS: usize = 5;
/// Smallest gain listed (the report shows points to one decimal).
pub const MIN_GAIN: f64 = 0.05;

/// Named group of the gov's columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimension {
    pub name: String,
    pub columns: Vec<String>,
}

/// The dimensions of the gov's model columns `columns`: each configured group (by name) with
/// the model's columns it lists, then every column no group lists as a dimension of its own.
/// Listed columns the model does not use are left out, each with a warning (a group left empty
/// is dropped). Errors: a column in two groups, a group named like a column it does not hold.
pub fn group_dimensions(
    columns: &[String],
    groups: &BTreeMap<String, Vec<String>>,
) -> Result<(Vec<Dimension>, Vec<String>), String> {
    let mut dims = Vec::new();
    let mut warnings = Vec::new();
    let mut grouped: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, listed) in groups {
        if listed.is_empty() {
            return Err(format!("dimensions.{name} lists no column; list its columns or remove it"));
        }
        let mut used = Vec::new();
        for c in listed {
            if let Some(other) = grouped.insert(c, name) {
                return Err(format!(
                    "dimensions: column '{c}' is in both '{other}' and '{name}'; keep it in one of them"
                ));
            }
            if columns.contains(c) {
                used.push(c.clone());
            } else {
                warnings.push(format!("dimension '{name}': column '{c}' is not a column of the model; left out"));
            }
        }
        if !used.is_empty() {
            dims.push(Dimension { name: name.clone(), columns: used });
        }
    }
    for c in columns.iter().filter(|c| !grouped.contains_key(c.as_str())) {
        if groups.contains_key(c) {
            return Err(format!(
                "dimensions: '{c}' names a dimension and an ungrouped column; rename the dimension or list '{c}' in it"
            ));
        }
        dims.push(Dimension { name: c.clone(), columns: vec![c.clone()] });
    }
    Ok((dims, warnings))
}

/// Points of every bin of every input column of a WOE block: −`scale`·w·WOE (`scale` = factor·a,
/// the scorecard factor times the calibration slope) for the model's columns, 0 for the columns
/// the model left out. `weights` are the block's weights on its selected columns.
pub fn bin_points(woe: &WoeTransform, weights: &[f64], scale: f64) -> Result<Vec<Vec<f64>>, String> {
    let selected = woe.columns.iter().filter(|c| c.selected).count();
    if selected != weights.len() {
        return Err(format!("the block has {selected} model columns but {} weights", weights.len()));
    }
    let mut w = weights.iter();
    Ok(woe
        .columns
        .iter()
        .map(|c| {
            let wj = if c.selected { *w.next().expect("as many weights as selected columns") } else { 0.0 };
            c.woe.iter().map(|v| -scale * wj * v).collect()
        })
        .collect())
}

/// Integer points, rounded half up (as secure scoring rounds them).
pub fn integer_points(points: f64) -> i64 {
    (points + 0.5).floor() as i64
}

/// What the check-up needs.
#[derive(Clone, Copy, Debug)]
pub struct CheckupInput<'a> {
    /// The gov's WOE block and its weights.
    pub woe: &'a WoeTransform,
    pub weights: &'a [f64],
    /// Calibration slope a of the model.
    pub calibration_a: f64,
    pub scorecard: &'a Scorecard,
    /// Bin of every cell of the gov's rows, rows × input columns ([`WoeTransform::bins_dataset`]).
    pub bins: &'a [usize],
    /// The entity's row.
    pub entity: usize,
    /// The bank's opened number for the entity: its block's points plus the base points.
    pub bank_points: f64,
    pub dimensions: &'a [Dimension],
}

/// Where an entity's dimension points stand in the gov's population.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Above the population's median.
    Strength,
    /// At the median.
    Typical,
    /// Below the median.
    Weak,
}

/// One dimension's points over the gov's rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Population {
    pub rows: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// Shares of the rows with fewer and with more points than the entity.
    pub share_below: f64,
    pub share_above: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimensionScore {
    pub name: String,
    pub owner: Role,
    /// The gov's columns (empty for the bank's block, whose columns the gov does not see).
    pub columns: Vec<String>,
    pub points: f64,
    /// Gov dimensions only.
    pub population: Option<Population>,
    pub standing: Option<Standing>,
}

/// The next better grade and the integer points it needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NextGrade {
    pub grade: String,
    pub min_points: f64,
    pub points_needed: i64,
}

/// One gov column moving to another bin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Improvement {
    pub column: String,
    pub dimension: String,
    pub from_bin: String,
    pub to_bin: String,
    pub gain: f64,
    /// Integer points and grade after the move (everything else unchanged).
    pub points: i64,
    pub grade: String,
}

/// The check-up of one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkup {
    /// Scorecard points: the sum of the dimensions' points.
    pub exact_points: f64,
    /// `exact_points` rounded half up; sets the grade.
    pub points: i64,
    pub grade: String,
    /// Gov dimensions, then [`FINANCIAL_BEHAVIOUR`].
    pub dimensions: Vec<DimensionScore>,
    /// None at the best grade.
    pub next_grade: Option<NextGrade>,
    /// Moves gaining at least [`MIN_GAIN`], largest first, at most [`MAX_IMPROVEMENTS`].
    pub improvements: Vec<Improvement>,
}

/// The check-up of `input.entity`; errors name what does not fit.
pub fn checkup(input: &CheckupInput) -> Result<Checkup, String> {
    let woe = input.woe;
    let cols = woe.columns.len();
    if cols == 0 || !input.bins.len().is_multiple_of(cols) || input.entity >= input.bins.len() / cols {
        return Err(format!("{} bins of {cols} columns do not hold row {}", input.bins.len(), input.entity));
    }
    if !input.bank_points.is_finite() {
        return Err("the bank's points are not a finite number".into());
    }
    let sc = input.scorecard;
    let pts = bin_points(woe, input.weights, sc.factor() * input.calibration_a)?;
    let index: BTreeMap<&str, usize> =
        woe.columns.iter().enumerate().map(|(i, c)| (c.bins.feature.as_str(), i)).collect();
    let rows: Vec<&[usize]> = input.bins.chunks_exact(cols).collect();
    let entity = rows[input.entity];

    let mut dimensions = Vec::new();
    let mut dimension_of = vec![""; cols];
    for d in input.dimensions {
        let idx: Vec<usize> = d
            .columns
            .iter()
            .map(|c| index.get(c.as_str()).copied().ok_or_else(|| format!("dimension '{}': no column '{c}'", d.name)))
            .collect::<Result<_, _>>()?;
        idx.iter().for_each(|&c| dimension_of[c] = d.name.as_str());
        let of_row = |row: &[usize]| idx.iter().map(|&c| pts[c][row[c]]).sum::<f64>();
        let points = of_row(entity);
        let mut all: Vec<f64> = rows.iter().map(|&r| of_row(r)).collect();
        all.sort_by(f64::total_cmp);
        let n = all.len();
        let median = if n % 2 == 1 { all[n / 2] } else { (all[n / 2 - 1] + all[n / 2]) / 2.0 };
        let (below, above) = (all.partition_point(|&v| v < points), n - all.partition_point(|&v| v <= points));
        let standing = match points.total_cmp(&median) {
            std::cmp::Ordering::Greater => Standing::Strength,
            std::cmp::Ordering::Equal => Standing::Typical,
            std::cmp::Ordering::Less => Standing::Weak,
        };
        dimensions.push(DimensionScore {
            name: d.name.clone(),
            owner: Role::Gov,
            columns: d.columns.clone(),
            points,
            population: Some(Population {
                rows: n,
                min: all[0],
                median,
                max: all[n - 1],
                share_below: below as f64 / n as f64,
                share_above: above as f64 / n as f64,
            }),
            standing: Some(standing),
        });
    }
    dimensions.push(DimensionScore {
        name: FINANCIAL_BEHAVIOUR.into(),
        owner: Role::Bank,
        columns: Vec::new(),
        points: input.bank_points,
        population: None,
        standing: None,
    });
    let exact_points: f64 = dimensions.iter().map(|d| d.points).sum();
    let points = integer_points(exact_points);
    let grade = sc.grade(points as f64).to_string();
    let next_grade = sc.grades.iter().rev().find(|g| g.min_points.ceil() > points as f64).map(|g| NextGrade {
        grade: g.grade.clone(),
        min_points: g.min_points,
        points_needed: g.min_points.ceil() as i64 - points,
    });

    let mut improvements: Vec<Improvement> = Vec::new();
    for (c, col) in woe.columns.iter().enumerate().filter(|(_, c)| c.selected) {
        let from = entity[c];
        let best = (0..col.bins.value_bins())
            .filter(|&k| k != from && col.counts.totals[k] > 0)
            .max_by(|&a, &b| pts[c][a].total_cmp(&pts[c][b]));
        let Some(to) = best else { continue };
        let gain = pts[c][to] - pts[c][from];
        if gain >= MIN_GAIN {
            let after = integer_points(exact_points + gain);
            improvements.push(Improvement {
                column: col.bins.feature.clone(),
                dimension: dimension_of[c].to_string(),
                from_bin: col.bins.bin_name(from),
                to_bin: col.bins.bin_name(to),
                gain,
                points: after,
                grade: sc.grade(after as f64).to_string(),
            });
        }
    }
    improvements.sort_by(|a, b| b.gain.total_cmp(&a.gain));
    improvements.truncate(MAX_IMPROVEMENTS);
    Ok(Checkup { exact_points, points, grade, dimensions, next_grade, improvements })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binning::BinningParams;
    use crate::woe_lr::fit_woe_plain;

    #[test]
    fn dimensions_group_configured_columns_then_one_per_column() {
        let cols: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let groups = BTreeMap::from([("tax".to_string(), vec!["c".to_string(), "a".into(), "zz".into()])]);
        let (dims, warnings) = group_dimensions(&cols, &groups).unwrap();
        let names: Vec<(&str, Vec<&str>)> =
            dims.iter().map(|d| (d.name.as_str(), d.columns.iter().map(String::as_str).collect())).collect();
        assert_eq!(names, [("tax", vec!["c", "a"]), ("b", vec!["b"]), ("d", vec!["d"])]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("'zz'"));
        let twice =
            BTreeMap::from([("p".to_string(), vec!["a".to_string()]), ("q".to_string(), vec!["a".to_string()])]);
        assert!(group_dimensions(&cols, &twice).unwrap_err().contains("column 'a' is in both 'p' and 'q'"));
        let clash = BTreeMap::from([("b".to_string(), vec!["a".to_string()])]);
        assert!(group_dimensions(&cols, &clash).unwrap_err().contains("'b' names a dimension"));
    }

    /// Three numeric columns of 400 rows whose event rate rises with the first two; the third
    /// is noise. Returns the transform, its rows and the bins of every cell.
    fn fitted() -> (WoeTransform, Vec<f64>, Vec<usize>) {
        let names: Vec<String> = ["income", "age", "noise"].map(String::from).to_vec();
        let n = 400;
        let x: Vec<f64> = (0..n).flat_map(|i| [(i % 20) as f64, (i % 7) as f64, ((i * 37) % 11) as f64]).collect();
        let y: Vec<f64> = (0..n).map(|i| if (i % 20) + 2 * (i % 7) > 14 { 1.0 } else { 0.0 }).collect();
        let rows: Vec<usize> = (0..n).collect();
        let params = BinningParams { bins: 4, min_iv: 0.0, ..Default::default() };
        let woe = fit_woe_plain(&names, &[None, None, None], &x, &y, &rows, &params).unwrap();
        let bins: Vec<usize> =
            x.chunks_exact(3).flat_map(|r| woe.columns.iter().zip(r).map(|(c, &v)| c.bins.bin(v))).collect();
        (woe, x, bins)
    }

    #[test]
    fn points_add_up_and_each_move_gains_what_a_rescored_row_gains() {
        let (woe, x, bins) = fitted();
        let weights = [0.9, 0.6, 0.1];
        let sc = Scorecard::default();
        let (a, bank_points) = (1.3, 512.25);
        let dims = vec![
            Dimension { name: "registration".into(), columns: vec!["income".into(), "noise".into()] },
            Dimension { name: "age".into(), columns: vec!["age".into()] },
        ];
        // Independent: the scorecard's points from the WOE values and weights of the whole row.
        let total_of = |row: &[f64]| -> f64 {
            let v = woe.apply(row);
            bank_points - sc.factor() * a * v.iter().zip(weights).map(|(v, w)| v * w).sum::<f64>()
        };
        for entity in [0, 17, 133, 399] {
            let input = CheckupInput {
                woe: &woe,
                weights: &weights,
                calibration_a: a,
                scorecard: &sc,
                bins: &bins,
                entity,
                bank_points,
                dimensions: &dims,
            };
            let c = checkup(&input).unwrap();
            let row = &x[entity * 3..entity * 3 + 3];
            let sum: f64 = c.dimensions.iter().map(|d| d.points).sum();
            assert!((sum - total_of(row)).abs() < 1e-9 && (c.exact_points - sum).abs() < 1e-12, "{c:?}");
            assert_eq!(c.points, (total_of(row) + 0.5).floor() as i64);
            assert_eq!(c.grade, sc.grade(c.points as f64));
            assert_eq!(c.dimensions.last().unwrap().points, bank_points);
            if let Some(next) = &c.next_grade {
                assert_eq!(sc.grade((c.points + next.points_needed) as f64), next.grade);
                assert_ne!(sc.grade((c.points + next.points_needed - 1) as f64), next.grade);
            }
            // Each move: the total of the row with that column's value set to one in the target bin.
            assert!(c.improvements.windows(2).all(|w| w[0].gain >= w[1].gain));
            for imp in &c.improvements {
                let ci = woe.columns.iter().position(|col| col.bins.feature == imp.column).unwrap();
                let value = (0..400)
                    .map(|r| x[r * 3 + ci])
                    .find(|&v| woe.columns[ci].bins.bin_name(woe.columns[ci].bins.bin(v)) == imp.to_bin)
                    .unwrap();
                let mut moved = row.to_vec();
                moved[ci] = value;
                assert!((total_of(&moved) - total_of(row) - imp.gain).abs() < 1e-9, "{imp:?}");
                assert_eq!(imp.points, (total_of(&moved) + 0.5).floor() as i64);
            }
            // Standing against the population, counted here over every row.
            let d = &c.dimensions[1];
            assert_eq!(d.name, "age");
            let age = |r: usize| -sc.factor() * a * 0.6 * woe.apply(&x[r * 3..r * 3 + 3])[1];
            let all: Vec<f64> = (0..400).map(age).collect();
            let p = d.population.as_ref().unwrap();
            let below = all.iter().filter(|&&v| v < d.points - 1e-9).count();
            assert_eq!((p.share_below * 400.0).round() as usize, below);
            let above = all.iter().filter(|&&v| v > p.median + 1e-9).count();
            let expected = if d.points > p.median + 1e-9 {
                Standing::Strength
            } else if d.points < p.median - 1e-9 {
                Standing::Weak
            } else {
                Standing::Typical
            };
            assert_eq!(d.standing, Some(expected));
            assert!(above <= 200 && all.iter().filter(|&&v| v < p.median - 1e-9).count() <= 200, "median");
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        let (woe, _, bins) = fitted();
        let sc = Scorecard::default();
        let input = CheckupInput {
            woe: &woe,
            weights: &[1.0, 1.0],
            calibration_a: 1.0,
            scorecard: &sc,
            bins: &bins,
            entity: 0,
            bank_points: 500.0,
            dimensions: &[],
        };
        assert!(checkup(&input).unwrap_err().contains("3 model columns but 2 weights"));
        let input = CheckupInput { weights: &[1.0; 3], entity: 400, ..input };
        assert!(checkup(&input).unwrap_err().contains("do not hold row 400"));
        let input = CheckupInput { entity: 0, bank_points: f64::NAN, ..input };
        assert!(checkup(&input).unwrap_err().contains("not a finite number"));
    }
}
