//! Per-party standardisation: each party fits mean and population standard deviation of its own
//! columns on the training rows only (plaintext, local) and applies them to every row. The fitted
//! values are kept in the model artifact of their owner only.

use serde::{Deserialize, Serialize};

use crate::dataset::{DataError, Dataset};

/// Column means and population standard deviations (ddof = 0) fitted on training rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub columns: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Fits on `train_rows` of `ds`. A column that is constant on those rows is an error naming it.
    pub fn fit(ds: &Dataset, train_rows: &[usize]) -> Result<Standardizer, DataError> {
        let cols = ds.cols();
        let n = train_rows.len() as f64;
        let mut mean = vec![0.0; cols];
        for &r in train_rows {
            for (m, v) in mean.iter_mut().zip(ds.row(r)) {
                *m += v;
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
        Ok(Standardizer { columns: ds.columns.clone(), mean, std })
    }

    /// Standardises a row-major matrix with `self.columns.len()` columns.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let cols = self.columns.len();
        x.chunks_exact(cols)
            .flat_map(|row| row.iter().zip(&self.mean).zip(&self.std).map(|((v, m), s)| (v - m) / s))
            .collect()
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
        let z = st.apply(&ds.x);
        assert_eq!(z, vec![-1.0, -1.0, 1.0, 1.0, 98.0, (-7.0 - 10.25) / 0.25]);
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
}
