//! Runs each engine test against both real correlation sources (IKNP and silent).
#![allow(dead_code)]

use std::cell::Cell;

use protocol::channel::run_pair;
use protocol::fixed::FixedPoint;
use protocol::mpc::{Correlations, Engine};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

thread_local! {
    static SOURCE: Cell<Correlations> = const { Cell::new(Correlations::Iknp) };
}

/// Runs `body` once per source; [`source`] names the current one (read it on the test's thread,
/// before the parties' threads start). A failure's output names the source it ran on.
pub fn each_source(body: impl Fn()) {
    for c in [Correlations::Iknp, Correlations::Silent] {
        eprintln!("--- correlations = {}", c.as_str());
        SOURCE.with(|s| s.set(c));
        body();
    }
}

pub fn source() -> Correlations {
    SOURCE.with(|s| s.get())
}

/// Runs `f` at both parties on the current [`source`] with `frac_bits` fractional bits (gov
/// engine seed 1, bank seed 2); returns (gov result, bank result).
pub fn both_at<T: Send>(frac_bits: u32, f: impl Fn(&mut Engine) -> T + Sync) -> (T, T) {
    let src = source();
    let (f, fp) = (&f, FixedPoint::new(frac_bits));
    run_pair(
        move |ch| f(&mut Engine::with_correlations(ch, fp, src, &mut ChaCha20Rng::seed_from_u64(1)).unwrap()),
        move |ch| f(&mut Engine::with_correlations(ch, fp, src, &mut ChaCha20Rng::seed_from_u64(2)).unwrap()),
    )
}
