//! Benchmark bodies shared by `examples/mpc_bench.rs` (in memory) and `tandem bench mpc` (QUIC).
//! Both parties call [`run`] with their own channel; each returns one JSON line per measurement
//! (wall time at this party; bytes = sent + received by this party, i.e. all traffic).

use std::time::Instant;

use rand::CryptoRng;

use super::{Engine, PlainMatrix, Sigmoid};
use crate::fixed::FixedPoint;
use crate::{Channel, Result, Role};

/// One measured operation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Measurement {
    pub op: String,
    pub size: String,
    pub ms: f64,
    pub bytes: u64,
    pub rounds: u64,
    /// Operation-specific throughput (e.g. OTs per second), 0 if not applicable.
    pub per_second: f64,
}

impl Measurement {
    pub fn json(&self) -> String {
        format!(
            "{{\"op\":\"{}\",\"size\":\"{}\",\"ms\":{:.3},\"bytes\":{},\"rounds\":{},\"per_second\":{:.0}}}",
            self.op, self.size, self.ms, self.bytes, self.rounds, self.per_second
        )
    }
}

/// Times `f` and records the traffic it caused on the engine's channel.
pub fn measure<T>(
    e: &mut Engine,
    op: &str,
    size: &str,
    f: impl FnOnce(&mut Engine) -> Result<T>,
) -> Result<(T, Measurement)> {
    let before = e.stats();
    let t = Instant::now();
    let out = f(e)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let d = e.stats().since(&before);
    let m = Measurement { op: op.into(), size: size.into(), ms, bytes: d.total_bytes(), rounds: d.rounds, per_second: 0.0 };
    Ok((out, m))
}

/// Runs the engine benchmark at one party: setup, random OTs, 1024×32 matvec / matvec_t,
/// 1024 multiplications, each sigmoid on 1024 values, and one vertical-LR iteration
/// (gov 1024×10, bank 1024×13). Both parties must call it; inputs are random.
pub fn run<R: CryptoRng>(ch: &mut Channel, rng: &mut R) -> Result<Vec<Measurement>> {
    let fp = FixedPoint::new(16);
    let mut out = Vec::new();
    let before = ch.stats();
    let t = Instant::now();
    let mut e = Engine::new(ch, fp, rng)?;
    let d = e.stats().since(&before);
    out.push(Measurement {
        op: "setup".into(),
        size: "2x128 base OT".into(),
        ms: t.elapsed().as_secs_f64() * 1e3,
        bytes: d.total_bytes(),
        rounds: d.rounds,
        per_second: 0.0,
    });
    let me = e.role();
    let vals = |n: usize, rng: &mut R| -> Vec<u64> {
        (0..n).map(|_| fp.encode((rng.next_u32() as f64 / u32::MAX as f64 - 0.5) * 4.0)).collect()
    };

    let words = 1 << 14;
    let (_, mut m) = measure(&mut e, "random_ot", "2x2^20 ROT (both directions) + hashing", |e| e.and_triples(words).map(|_| ()))?;
    m.per_second = (2 * 64 * words) as f64 / (m.ms / 1e3);
    out.push(m);

    let (rows, cols) = (1024, 32);
    let mat = PlainMatrix { rows, cols, data: vals(rows * cols, rng) };
    let v = vals(cols, rng);
    let u = vals(rows, rng);
    let x = vals(1024, rng);
    let owner_m = (me == Role::Gov).then_some(&mat);
    out.push(measure(&mut e, "matvec", "1024x32", |e| e.matvec(Role::Gov, owner_m, rows, cols, &v))?.1);
    out.push(measure(&mut e, "matvec_t", "1024x32", |e| e.matvec_t(Role::Gov, owner_m, rows, cols, &u))?.1);
    out.push(measure(&mut e, "mul", "1024", |e| e.mul(&x, &u))?.1);
    for s in [Sigmoid::Linear, Sigmoid::Poly3, Sigmoid::ClippedLinear] {
        out.push(measure(&mut e, &format!("sigmoid_{}", format!("{s:?}").to_lowercase()), "1024", |e| e.sigmoid(&x, s))?.1);
    }

    // One vertical-LR iteration: z = X_g·w_g + X_b·w_b, p = σ(z), e = p − y, g_g = X_gᵀe, g_b = X_bᵀe.
    let xg = PlainMatrix { rows: 1024, cols: 10, data: vals(10240, rng) };
    let xb = PlainMatrix { rows: 1024, cols: 13, data: vals(13312, rng) };
    let (wg, wb) = (vals(10, rng), vals(13, rng));
    let (gm, bm) = ((me == Role::Gov).then_some(&xg), (me == Role::Bank).then_some(&xb));
    let (_, m) = measure(&mut e, "lr_iteration_linear", "gov 1024x10 + bank 1024x13", |e| {
        let zg = e.matvec(Role::Gov, gm, 1024, 10, &wg)?;
        let zb = e.matvec(Role::Bank, bm, 1024, 13, &wb)?;
        let p = e.sigmoid(&e.add(&zg, &zb), Sigmoid::Linear)?;
        e.matvec_t(Role::Gov, gm, 1024, 10, &p)?;
        e.matvec_t(Role::Bank, bm, 1024, 13, &p)
    })?;
    out.push(m);
    Ok(out)
}
