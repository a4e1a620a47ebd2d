//! The `Channel` receive API (`recv_any`, `recv_frame`, `recv`, `recv_bulk`, `recv_u64s`) fed
//! arbitrary frames; each step must return Ok or Err, whatever the peer sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::{Input, KINDS, scripted_channel};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let me = input.role();
    let max_frame = 64 + input.u16() as usize * 16;
    let ops: Vec<(u8, u8, u16)> =
        (0..(input.byte() % 8 + 1)).map(|_| (input.byte(), input.byte(), input.u16())).collect();
    let mut ch = scripted_channel(me, input.frames());
    ch.set_max_frame(max_frame);
    for (op, kind, n) in ops {
        let kind = KINDS[kind as usize % KINDS.len()];
        let _ = match op % 6 {
            0 => ch.recv_any().map(drop),
            1 => ch.recv_frame(kind).map(drop),
            2 => ch.recv::<String>(kind).map(drop),
            3 => ch.recv::<(Vec<u64>, Option<String>)>(kind).map(drop),
            4 => ch.recv_bulk(kind, n as u64 * 64).map(drop),
            _ => ch.recv_u64s(kind, n as usize).map(drop),
        };
    }
});
