//! Per-phase timers of the silent COT generator (both parties' steps run one after the other in
//! this thread, the code expansion on the rayon pool): `cargo run --release --example pcg_phases
//! [log2 n ...]` (default 20 24). Prints wall seconds per step and for the two code steps alone.
//! `RAYON_NUM_THREADS=1` gives one core's figures.

use std::time::Instant;

use protocol::pcg::Params;
use protocol::pcg::silent::{Kind, ReceiverStart, SenderStart};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn main() {
    let logs: Vec<u32> = std::env::args().skip(1).map(|a| a.parse().expect("log2 n")).collect();
    let logs = if logs.is_empty() { vec![20, 24] } else { logs };
    for log in logs {
        let n = 1usize << log;
        let p = Params::new(n).expect("n");
        println!("n = 2^{log}: N = {}, {} trees of 2^{} leaves", p.code.big_n, p.trees, p.shape.depth);
        let (mut rs, mut rr) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
        let step = |name: &str, t: (Instant, f64)| {
            println!("  {name:<34} {:>8.3} s wall {:>8.2} s cpu", t.0.elapsed().as_secs_f64(), cpu_seconds() - t.1)
        };
        let all = now();
        let t = now();
        let (receiver, offer) = ReceiverStart::start(Kind::Cot, n, &mut rr).unwrap();
        let (sender, answer) = SenderStart::new(Kind::Cot, n).unwrap().on_base_offer(&offer, &mut rs).unwrap();
        step("base OTs (both)", t);
        let t = now();
        let (receiver, ext) = receiver.on_base_answer(&answer, &mut rr).unwrap();
        step("R: IKNP extend", t);
        let t = now();
        let (encoding, trees) = sender.on_extension(&ext, &mut rs).unwrap();
        step("S: IKNP + trees", t);
        let t = now();
        let out_s = encoding.finish();
        step("S: code", t);
        let t = now();
        let out_r = receiver.on_trees_cot(&trees).unwrap();
        step("R: trees + code", t);
        step("total (both parties, serial)", all);
        assert!((0..n).step_by(997).all(|i| out_r.c[i] == out_s.b[i] ^ if out_r.a[i] { out_s.delta } else { 0 }));
        drop((out_s, out_r));
        let mut x: Vec<u128> = (0..p.code.big_n as u128).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c)).collect();
        let t = now();
        p.code.convolute(&mut x);
        step("code alone: convolute u128", t);
        let t = now();
        p.code.expand(&mut x);
        step("code alone: expand u128", t);
    }
}

fn now() -> (Instant, f64) {
    (Instant::now(), cpu_seconds())
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 10 ms ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 2)..].split_whitespace().collect();
    let tick = |k: usize| fields.get(k).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}
