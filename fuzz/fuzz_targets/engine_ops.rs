//! Engine operations after an honest setup, against a fuzzed peer: every receive path of the
//! engine (`share`, `reveal_to`, `reveal_both`, `mul`, `matvec`, `matvec_t`, `msb`, `mux`,
//! `less_than_zero`, `sigmoid`), i.e. the IKNP extension, Gilboa corrections, AND openings and
//! bulk vectors. The engine is set up once from a recorded honest run
//! (`tandem_fuzz::with_engine`); each input supplies the peer's frames for one to three
//! operations (`tandem_fuzz::engine_op`), stopping at the first error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::{Input, engine_op, with_engine};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let me = input.role();
    let ops: Vec<[u8; 4]> =
        (0..(input.byte() % 3 + 1)).map(|_| [input.byte(), input.byte(), input.byte(), input.byte()]).collect();
    with_engine(me, input.frames(), |engine| {
        for &op in &ops {
            if engine_op(engine, me, op).is_err() {
                break;
            }
        }
    });
});
