//! Per-party standardisation: each party fits mean and population standard deviation of its own
//! columns on the training rows only (plaintext, local) and applies them to every row, after
//! clipping each value to the column's training range. The fitted values are kept in the model
//! artifact of their owner only.

use serde::{Deserialize, Serialize};

use crate::dataset::{DataError, Dataset};

/// Column means and population standard deviations (ddof = 0) fitted on training rows, and the
/// training range of each column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub columns: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Smallest and largest raw value of each column on the training rows (empty in artifacts
    /// written before they were kept: then nothing is clipped).
    #[serde(default)]
    pub min: Vec<f64>,
    #[serde(default)]
    pub max: Vec<f64>,
}

/// Standardised values and how many raw values were clipped to their column's training range.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardized {
    pub x: Vec<f64>,
    pub clipped: usize,
}

impl Standardizer {
    /// Fits on `train_rows` of `ds`. A column that is constant on those rows, or whose mean or
    /// spread is not a finite number (values so large that they overflow), is an error naming it.
    pub fn fit(ds: &Dataset, train_rows: &[usize]) -> Result<Standardizer, DataError> {
        let cols = ds.cols();
        let n = train_rows.len() as f64;
        let mut mean = vec![0.0; cols];
        let (mut min, mut max) = (vec![f64::INFINITY; cols], vec![f64::NEG_INFINITY; cols]);
        for &r in train_rows {
            for (c, v) in ds.row(r).iter().enumerate() {
                mean[c] += v;
                min[c] = min[c].min(*v);
                max[c] = max[c].max(*v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; cols];
        for &r in train_rows {
            for ((s, v), m) in var.iter_mut().zip(ds.row(r)).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let std: Vec<f64> = var.iter().map(|s| (s / n).sqrt()).collect();
        for (c, (s, m)) in std.iter().zip(&mean).enumerate() {
            if !train_rows.is_empty() && (!s.is_finite() || !m.is_finite()) {
                return Err(DataError::Overflow {
                    file: ds.source.clone(),
                    column: ds.columns[c].clone(),
                    largest: if max[c].abs() > min[c].abs() { max[c] } else { min[c] },
                });
            }
            // Relative threshold: a column whose spread is rounding noise is constant.
            if train_rows.is_empty() || s.is_nan() || *s <= 1e-12 * m.abs().max(1.0) {
                return Err(DataError::ConstantColumn {
                    file: ds.source.clone(),
                    column: ds.columns[c].clone(),
                    rows: train_rows.len(),
                    value: *m,
                });
            }
        }
        Ok(Standardizer { columns: ds.columns.clone(), mean, std, min, max })
    }

    /// Standardises a row-major matrix with `self.columns.len()` columns, each value first
    /// clipped to its column's training range (so a value far outside what the model was trained
    /// on cannot dominate a score); returns the number of clipped values.
    pub fn apply(&self, x: &[f64]) -> Standardized {
        let cols = self.columns.len();
        // A range that is missing (older artifacts) or inconsistent (an edited file) clips nothing.
        let has_range =
            self.min.len() == cols && self.max.len() == cols && self.min.iter().zip(&self.max).all(|(lo, hi)| lo <= hi);
        let mut clipped = 0;
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(cols) {
            for (c, &v) in row.iter().enumerate() {
                let v = if has_range && !(self.min[c]..=self.max[c]).contains(&v) {
                    clipped += 1;
                    v.clamp(self.min[c], self.max[c])
                } else {
                    v
                };
                out.push((v - self.mean[c]) / self.std[c]);
            }
        }
        Standardized { x: out, clipped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::parse;

    #[test]
    fn fits_on_training_rows_only_and_applies_to_all() {
        let ds = parse("t.csv", b"id,a,b\n1,1,10\n2,3,10.5\n3,100,-7\n", "id", &[], None).unwrap();
        let st = Standardizer::fit(&ds, &[0, 1]).unwrap();
        assert_eq!(st.mean, vec![2.0, 10.25]);
        assert_eq!(st.std, vec![1.0, 0.25]);
        assert_eq!((st.min.as_slice(), st.max.as_slice()), ([1.0, 10.0].as_slice(), [3.0, 10.5].as_slice()));
        let out = st.apply(&ds.x);
        // Row 3 (100, −7) lies outside the training range in both columns: clipped to (3, 10).
        assert_eq!(out.clipped, 2);
        let z = out.x;
        assert_eq!(z, vec![-1.0, -1.0, 1.0, 1.0, 1.0, -1.0]);
        // Without a stored range (older artifacts) nothing is clipped.
        let old = Standardizer { min: vec![], max: vec![], ..st.clone() };
        assert_eq!(old.apply(&ds.x[4..]).x, vec![98.0, (-7.0 - 10.25) / 0.25]);
        let json = serde_json::to_string(&old).unwrap().replace(",\"min\":[],\"max\":[]", "");
        assert_eq!(serde_json::from_str::<Standardizer>(&json).unwrap(), old, "min/max default to empty");
        // Training rows end up with mean 0 and population std 1 in every column.
        for c in 0..2 {
            let v = [z[c], z[2 + c]];
            assert!((v[0] + v[1]).abs() < 1e-12 && ((v[0] * v[0] + v[1] * v[1]) / 2.0 - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn constant_training_column_is_named() {
        let ds = parse("t.csv", b"id,a,b\n1,1,5\n2,3,5\n3,4,6\n", "id", &[], None).unwrap();
        let e = Standardizer::fit(&ds, &[0, 1]).unwrap_err();
        assert!(matches!(&e, DataError::ConstantColumn { column, .. } if column == "b"), "{e}");
        assert!(e.to_string().contains("t.csv") && e.to_string().contains("remove it"), "{e}");
        assert!(Standardizer::fit(&ds, &[0, 1, 2]).is_ok(), "constant only on a subset that is not the training set");
    }

    #[test]
    fn a_column_whose_spread_overflows_is_named() {
        // 1e308 is a finite number, but its square overflows: the standard deviation is infinite.
        let ds = parse("t.csv", b"id,a,b\n1,1,5\n2,3,1e308\n3,4,6\n", "id", &[], None).unwrap();
        let e = Standardizer::fit(&ds, &[0, 1, 2]).unwrap_err();
        assert!(matches!(&e, DataError::Overflow { column, .. } if column == "b"), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("t.csv") && msg.contains("'b'") && msg.contains("1e308"), "{msg}");
        assert!(Standardizer::fit(&ds, &[0, 2]).is_ok(), "the value is fine off the training rows");
    }
}
