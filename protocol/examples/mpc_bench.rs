//! Two-party engine benchmark over the in-memory channel (both parties in one process, one
//! thread each). Prints one JSON line per operation as seen by gov.
//! Run: `cargo run --release --example mpc_bench`.

use protocol::channel::run_pair;
use protocol::mpc::bench;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn main() {
    // Bench inputs only: production callers pass an OS-seeded CSPRNG.
    let (gov, bank) = run_pair(
        |ch| bench::run(ch, &mut ChaCha20Rng::from_rng(&mut rand::rng())),
        |ch| bench::run(ch, &mut ChaCha20Rng::from_rng(&mut rand::rng())),
    );
    bank.expect("bank side failed");
    for m in gov.expect("gov side failed") {
        println!("{}", m.json());
    }
}
