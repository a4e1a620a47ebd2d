//! Private keyed lookup receive paths: `LookupClient::receive_table`, `LookupServer::answer`, and
//! `LookupClient::query` on a table received from the same (fuzzed) peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::Role;
use protocol::lookup::{LookupClient, LookupServer};
use tandem_fuzz::{Input, engine_rng, fuzz_grant, scripted_channel};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let op = input.byte();
    let limit = input.u16() as usize;
    let n_ids = input.byte() as usize % 8;
    match op % 3 {
        0 => {
            let mut ch = scripted_channel(Role::Bank, input.frames());
            let _ = LookupClient::receive_table(&mut ch, limit);
        }
        1 => {
            let mut ch = scripted_channel(Role::Gov, input.frames());
            let server = LookupServer::new(&mut engine_rng(Role::Gov));
            let _ = server.answer(&mut ch, &fuzz_grant(), limit);
        }
        _ => {
            let mut ch = scripted_channel(Role::Bank, input.frames());
            if let Ok(client) = LookupClient::receive_table(&mut ch, limit) {
                let ids: Vec<String> = (0..n_ids).map(|i| format!("ENTITY{i:06}")).collect();
                let _ = client.query(&mut ch, &fuzz_grant(), "fuzz", &ids, &mut engine_rng(Role::Bank));
            }
        }
    }
});
