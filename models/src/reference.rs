//! Plaintext reference trainer running exactly the secure algorithm (same batches, same update
//! rule, same sigmoid approximation), so the accuracy cost of the secure protocol can be measured
//! and attributed: any gap to this trainer is fixed-point and truncation error.
//!
//! Algorithm (shared with `secure_lr`): weights and bias start at 0; the training rows are cut
//! into fixed mini-batches (consecutive chunks of one ChaCha20 permutation drawn from the job
//! seed); every epoch visits all batches in an order reshuffled from (seed, epoch). Per batch B:
//! e = σ(X·w + b) − y, w ← w·(1 − lr·λ) − (lr/|B|)·Xᵀe, b ← b − (lr/|B|)·Σe, with
//! λ = 1/(C·n_train) (sklearn's C; no penalty on the bias) or 0 without C.

use protocol::mpc::Sigmoid;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// Training parameters agreed in the job (both parties must use the same values).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// sklearn's inverse regularisation strength C; None = no L2 penalty.
    pub l2_c: Option<f64>,
    pub sigmoid: Sigmoid,
    /// Fixed-point fractional bits of the secure computation.
    pub frac_bits: u32,
    /// Seed of the public batch order.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> TrainParams {
        TrainParams {
            epochs: 10,
            batch_size: 1024,
            learning_rate: 0.5,
            l2_c: None,
            sigmoid: Sigmoid::Linear,
            frac_bits: 16,
            seed: 0,
        }
    }
}

impl TrainParams {
    /// Checks the values; the message names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 || self.epochs > 10_000 {
            return Err(format!("epochs = {}: use 1..=10000", self.epochs));
        }
        if self.batch_size == 0 || self.batch_size > 1 << 20 {
            return Err(format!("batch_size = {}: use 1..=1048576", self.batch_size));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate <= 100.0) {
            return Err(format!("learning_rate = {}: use a positive number (e.g. 0.5)", self.learning_rate));
        }
        if let Some(c) = self.l2_c
            && !(c.is_finite() && c > 0.0)
        {
            return Err(format!("l2_c = {c}: use a positive number (sklearn's C, e.g. 1.0) or leave it out"));
        }
        if !(8..=24).contains(&self.frac_bits) {
            return Err(format!("frac_bits = {}: use 8..=24 (20 is a good default)", self.frac_bits));
        }
        if self.sigmoid != Sigmoid::Linear {
            // Two truncated products grow with these parameters: the batch gradient Σ_{i∈B} x_i·e_i
            // and its step (lr/|B|)·Σ x_i·e_i. With |x| ≤ 127 (secure training checks it) and
            // |e| = |σ̃(z) − y| < 2 (clipped linear: ≤ 1; poly3, clipped to |z| ≤ 5: < 1.04) both stay below
            // max(|B|, lr)·2^8, which must not exceed 2^(62 − 2f) (`protocol::mpc::product_bound`).
            let bits = (self.batch_size as f64).max(self.learning_rate).log2().ceil() as u32;
            let room = 62 - 8 - 2 * self.frac_bits; // ≥ 6 for frac_bits ≤ 24
            if bits > room {
                return Err(format!(
                    "frac_bits = {} with batch_size = {}, learning_rate = {} and the {} sigmoid: a batch gradient \
                     Σ x·e (|x| ≤ 127, |e| < 2) or its step can reach max(batch_size, learning_rate)·2^8 = 2^{} \
                     (rounded up), beyond 2^{}, the range in which fixed-point truncation is exact; use \
                     frac_bits ≤ {} or batch_size and learning_rate ≤ {}",
                    self.frac_bits,
                    self.batch_size,
                    self.learning_rate,
                    serde_json::to_value(self.sigmoid).unwrap_or_default().as_str().unwrap_or("chosen"),
                    bits + 8,
                    62 - 2 * self.frac_bits,
                    (54 - bits) / 2,
                    1u64 << room,
                ));
            }
        }
        Ok(())
    }

    /// L2 strength λ = 1/(C·n_train), 0 without C.
    pub fn l2_lambda(&self, n_train: usize) -> f64 {
        self.l2_c.map_or(0.0, |c| 1.0 / (c * n_train as f64))
    }
}

/// The public mini-batch schedule both parties derive from the job seed.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchPlan {
    /// Row indices of each batch (fixed for the whole training).
    pub batches: Vec<Vec<usize>>,
    seed: u64,
}

/// Fisher–Yates shuffle driven by `rng` (Lemire's multiply-shift; bias ≤ n/2^64).
fn shuffle<T>(items: &mut [T], rng: &mut ChaCha20Rng) {
    for i in (1..items.len()).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        items.swap(i, j);
    }
}

impl BatchPlan {
    pub fn new(train_rows: &[usize], batch_size: usize, seed: u64) -> BatchPlan {
        let mut rows = train_rows.to_vec();
        shuffle(&mut rows, &mut ChaCha20Rng::seed_from_u64(seed));
        BatchPlan { batches: rows.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect(), seed }
    }

    /// Order in which epoch `epoch` visits the batches.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.batches.len()).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        rng.set_stream(1 + epoch as u64);
        shuffle(&mut order, &mut rng);
        order
    }
}

/// A linear model over the joint (gov ‖ bank) standardised features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl LinearModel {
    /// Logits X·w + b of a row-major matrix with `weights.len()` columns.
    pub fn logits(&self, x: &[f64]) -> Vec<f64> {
        x.chunks_exact(self.weights.len()).map(|row| dot(row, &self.weights) + self.bias).collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Trains on `train_rows` of the row-major `x` (rows × cols) with 0/1 labels `y`. With
/// `exact_sigmoid` the true logistic function replaces `params.sigmoid` (for comparison with
/// sklearn); otherwise this is the plaintext twin of the secure trainer.
pub fn train_reference(
    x: &[f64],
    cols: usize,
    y: &[f64],
    train_rows: &[usize],
    params: &TrainParams,
    exact_sigmoid: bool,
) -> LinearModel {
    let plan = BatchPlan::new(train_rows, params.batch_size, params.seed);
    let decay = 1.0 - params.learning_rate * params.l2_lambda(train_rows.len());
    let sigmoid = |z: f64| if exact_sigmoid { 1.0 / (1.0 + (-z).exp()) } else { params.sigmoid.eval(z) };
    let mut model = LinearModel { weights: vec![0.0; cols], bias: 0.0 };
    let mut grad = vec![0.0; cols];
    for epoch in 0..params.epochs {
        for k in plan.epoch_order(epoch) {
            let batch = &plan.batches[k];
            grad.iter_mut().for_each(|g| *g = 0.0);
            let mut grad_bias = 0.0;
            for &r in batch {
                let row = &x[r * cols..(r + 1) * cols];
                let e = sigmoid(dot(row, &model.weights) + model.bias) - y[r];
                grad.iter_mut().zip(row).for_each(|(g, v)| *g += e * v);
                grad_bias += e;
            }
            let step = params.learning_rate / batch.len() as f64;
            for (w, g) in model.weights.iter_mut().zip(&grad) {
                *w = *w * decay - step * g;
            }
            model.bias -= step * grad_bias;
        }
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_plan_is_a_seeded_partition_reshuffled_per_epoch() {
        let rows: Vec<usize> = (100..1100).collect();
        let plan = BatchPlan::new(&rows, 64, 9);
        assert_eq!(plan, BatchPlan::new(&rows, 64, 9), "same seed, same plan");
        assert_ne!(plan.batches, BatchPlan::new(&rows, 64, 10).batches);
        assert_eq!(plan.batches.len(), 16);
        assert_eq!(plan.batches.last().unwrap().len(), 1000 - 15 * 64);
        let mut all: Vec<usize> = plan.batches.concat();
        assert_ne!(all, rows, "rows are permuted");
        all.sort();
        assert_eq!(all, rows, "every training row in exactly one batch");
        let (o0, o1) = (plan.epoch_order(0), plan.epoch_order(1));
        assert_ne!(o0, o1);
        let mut s = o0.clone();
        s.sort();
        assert_eq!(s, (0..16).collect::<Vec<_>>());
    }

    #[test]
    fn exact_sigmoid_full_batch_reaches_the_logistic_optimum() {
        // Full-batch gradient descent with L2 converges to the regularised optimum: check that its
        // gradient (computed here independently) vanishes.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (n, cols) = (400, 3);
        let x: Vec<f64> = (0..n * cols).map(|_| (rng.next_u64() as f64 / u64::MAX as f64) * 2.0 - 1.0).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| {
                let z = 2.0 * x[i * cols] - x[i * cols + 1] + 0.3;
                if (rng.next_u64() as f64 / u64::MAX as f64) < 1.0 / (1.0 + (-z).exp()) { 1.0 } else { 0.0 }
            })
            .collect();
        let rows: Vec<usize> = (0..n).collect();
        let params =
            TrainParams { epochs: 3000, batch_size: n, learning_rate: 2.0, l2_c: Some(1.0), ..Default::default() };
        let m = train_reference(&x, cols, &y, &rows, &params, true);
        let lambda = params.l2_lambda(n);
        let mut g = vec![0.0; cols + 1];
        for i in 0..n {
            let row = &x[i * cols..(i + 1) * cols];
            let e = 1.0 / (1.0 + (-(dot(row, &m.weights) + m.bias)).exp()) - y[i];
            for (gc, v) in g.iter_mut().zip(row) {
                *gc += e * v / n as f64;
            }
            g[cols] += e / n as f64;
        }
        for (gc, w) in g.iter_mut().zip(&m.weights) {
            *gc += lambda * w;
        }
        assert!(g.iter().all(|v| v.abs() < 1e-6), "gradient at the optimum: {g:?}");
        assert!(m.weights[0] > 1.0 && m.weights[1] < -0.3, "recovers the signs: {:?}", m.weights);
    }

    #[test]
    fn params_validate_and_deserialize_with_defaults() {
        let p: TrainParams = serde_json::from_str(r#"{"epochs": 3, "sigmoid": "poly3"}"#).unwrap();
        assert_eq!((p.epochs, p.sigmoid, p.batch_size), (3, Sigmoid::Poly3, 1024));
        p.validate().unwrap();
        assert!(TrainParams { l2_c: Some(0.0), ..p.clone() }.validate().unwrap_err().contains("l2_c"));
        assert!(TrainParams { frac_bits: 30, ..p }.validate().unwrap_err().contains("frac_bits"));
    }

    #[test]
    fn frac_bits_are_bounded_so_that_batch_gradients_truncate_exactly() {
        let p = TrainParams { sigmoid: Sigmoid::ClippedLinear, frac_bits: 24, ..Default::default() };
        let err = p.validate().unwrap_err();
        assert!(
            err.contains("clipped_linear") && err.contains("use frac_bits ≤ 22 or batch_size and learning_rate ≤ 64"),
            "{err}"
        );
        TrainParams { batch_size: 64, ..p.clone() }.validate().unwrap();
        TrainParams { frac_bits: 22, ..p.clone() }.validate().unwrap();
        TrainParams { sigmoid: Sigmoid::Linear, ..p.clone() }.validate().unwrap();
        // Sound against the engine's bound: accepted ⇒ max(|B|, lr)·127·2 < 2^(62 − 2f); tight for
        // powers of two.
        for frac_bits in 8..=24 {
            for batch_size in [1, 64, 65, 1000, 1024, 1025, 1 << 14, 1 << 20] {
                for learning_rate in [0.5, 64.0, 100.0] {
                    let q = TrainParams { frac_bits, batch_size, learning_rate, sigmoid: Sigmoid::Poly3, ..p.clone() };
                    let largest = (batch_size as f64).max(learning_rate) * 127.0 * 2.0;
                    let fits = largest < protocol::mpc::product_bound(protocol::fixed::FixedPoint::new(frac_bits));
                    let accepted = q.validate().is_ok();
                    assert!(!accepted || fits, "{q:?}");
                    if (batch_size as f64).max(learning_rate).log2().fract() == 0.0 {
                        assert_eq!(accepted, fits, "{q:?}");
                    }
                }
            }
        }
    }
}
