//! `channel::decode` of every serde type that can travel as a control message: the protocol
//! crate's own types and the container shapes messages are built from. A value that decodes
//! must survive a re-encode/decode round trip; decoded parameters are then used as a protocol
//! would use them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::channel::decode;
use protocol::fixed::FixedPoint;
use protocol::mpc::Sigmoid;
use protocol::transcript::{ChainHead, SharedView};
use protocol::{Role, Stats};
use serde::{Serialize, de::DeserializeOwned};

/// Decodes `bytes` as `T`; a value that decodes must re-encode, decode again and re-encode to
/// the same bytes (compared as bytes, so NaN payloads count as equal).
fn check<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = decode("fuzz", bytes).ok()?;
    let encode =
        |v: &T| bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("a decoded value encodes");
    let again = encode(&value);
    let back: T = decode("fuzz", &again).expect("an encoded value decodes");
    assert_eq!(encode(&back), again, "round trip changes the value");
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else { return };
    match sel % 12 {
        0 => drop(check::<Role>(bytes)),
        1 => {
            if let Some(s) = check::<Sigmoid>(bytes) {
                let _ = s.eval(0.5);
            }
        }
        2 => {
            if let Some(fp) = check::<FixedPoint>(bytes) {
                let _ = fp.decode(fp.encode(1.5));
            }
        }
        3 => drop(check::<SharedView>(bytes)),
        4 => drop(check::<ChainHead>(bytes)),
        5 => drop(check::<Stats>(bytes)),
        6 => drop(check::<String>(bytes)),
        7 => drop(check::<Vec<u64>>(bytes)),
        8 => drop(check::<Vec<String>>(bytes)),
        9 => drop(check::<(String, u32, Option<u64>)>(bytes)),
        10 => drop(check::<Vec<(String, Vec<u8>)>>(bytes)),
        _ => drop(check::<Option<(Role, Sigmoid, Vec<f64>)>>(bytes)),
    }
});
