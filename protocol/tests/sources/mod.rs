//! Runs each engine test against both real correlation sources (IKNP and silent).
#![allow(dead_code)]

use std::cell::Cell;

use protocol::mpc::Correlations;

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
