//! Engine setup against a fuzzed peer: `Engine::new` (128 base OTs each way: the receiver and
//! sender halves of Chou–Orlandi on the peer's points), and the base-OT functions directly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::mpc::Engine;
use protocol::ot::base;
use tandem_fuzz::{Input, engine_rng, fixed, scripted_channel};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let me = input.role();
    match input.byte() % 3 {
        0 => {
            let mut ch = scripted_channel(me, input.frames());
            let _ = Engine::new(&mut ch, fixed(), &mut engine_rng(me)).map(drop);
        }
        1 => {
            let choices: Vec<bool> = (0..input.byte() % 8).map(|j| j % 3 == 0).collect();
            let _ = base::receive(&mut engine_rng(me), input.take(usize::MAX), &choices);
        }
        _ => {
            let n = input.byte() as usize % 8;
            let (sender, _) = base::Sender::start(&mut engine_rng(me));
            let _ = sender.finish(input.take(usize::MAX), n);
        }
    }
});
