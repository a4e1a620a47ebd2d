//! Engine operations after an honest setup, against a fuzzed peer: every receive path of the
//! engine (`share`, `reveal_to`, `reveal_both`, `mul`, `matvec`, `matvec_t`, `msb`, `mux`,
//! `sigmoid`), i.e. the IKNP extension, Gilboa corrections, AND openings and bulk vectors.
//! The setup frames are replayed from a recorded honest run, then the fuzzed frames follow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::mpc::{Engine, PlainMatrix, Sigmoid};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tandem_fuzz::{Input, engine_rng, fixed, recorded_setup, scripted_channel};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let me = input.role();
    let peer = me.peer();
    let ops: Vec<[u8; 4]> =
        (0..(input.byte() % 3 + 1)).map(|_| [input.byte(), input.byte(), input.byte(), input.byte()]).collect();
    let mut frames: std::collections::VecDeque<_> = recorded_setup(me).iter().cloned().collect();
    frames.extend(input.frames());
    let mut ch = scripted_channel(me, frames);
    let mut engine = Engine::new(&mut ch, fixed(), &mut engine_rng(me)).expect("recorded setup replays");
    for [op, n, rows, seed] in ops {
        let (n, rows, cols) = (n as usize % 17, rows as usize % 5, (rows / 5) as usize % 5);
        let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
        let mut vec = |len: usize| -> Vec<u64> { (0..len).map(|_| rng.next_u64()).collect() };
        let (x, y) = (vec(n), vec(n));
        let (v_cols, v_rows) = (vec(cols), vec(rows));
        let m = PlainMatrix { rows, cols, data: vec(rows * cols) };
        let bits = vec(n.div_ceil(64));
        let result = match op % 13 {
            0 => engine.share(peer, None, n).map(drop),
            1 => engine.reveal_to(me, &x).map(drop),
            2 => engine.reveal_both(&x).map(drop),
            3 => engine.mul(&x, &y).map(drop),
            4 => engine.matvec(me, Some(&m), rows, cols, &v_cols).map(drop),
            5 => engine.matvec(peer, None, rows, cols, &v_cols).map(drop),
            6 => engine.matvec_t(me, Some(&m), rows, cols, &v_rows).map(drop),
            7 => engine.matvec_t(peer, None, rows, cols, &v_rows).map(drop),
            8 => engine.msb(&x).map(drop),
            9 => engine.mux(&bits, &y).map(drop),
            10 => engine.less_than_zero(&x).map(drop),
            11 => engine.sigmoid(&x, Sigmoid::ClippedLinear).map(drop),
            _ => engine.sigmoid(&x, Sigmoid::Poly3).map(drop),
        };
        if result.is_err() {
            break;
        }
    }
});
