//! Writes seed corpora made from honest protocol runs, so the fuzzer starts on the deep paths:
//! `cargo run --release --example seeds -- corpus` creates `corpus/<target>/seed-*`.

use std::path::Path;

use protocol::channel::Frame;
use protocol::fixed::FixedPoint;
use protocol::lookup::{LookupClient, LookupServer};
use protocol::mpc::{Engine, Sigmoid};
use protocol::transcript::SharedView;
use protocol::{Role, Stats};
use tandem_fuzz::{encode_frames, engine_op, engine_rng, fixed, record_pair, recorded_setup};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create corpus dir");
    std::fs::write(d.join(format!("seed-{name}")), bytes).expect("write seed");
}

fn bincode<T: serde::Serialize>(sel: u8, v: &T) -> Vec<u8> {
    let mut out = vec![sel];
    out.extend(bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("encode"));
    out
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);

    // frame_header: a limit, then two well-formed frames.
    let mut stream = 4096u32.to_le_bytes().to_vec();
    for f in [Frame { kind: "mpc.reveal".into(), payload: vec![7; 24] }, Frame { kind: "x".into(), payload: vec![] }] {
        stream.extend(f.header());
        stream.extend(&f.payload);
    }
    write(dir, "frame_header", "two-frames", &stream);

    // decode_control: one encoded value per type selector.
    let seeds = [
        bincode(0, &Role::Bank),
        bincode(1, &Sigmoid::Poly3),
        bincode(2, &FixedPoint::new(16)),
        bincode(3, &SharedView::default()),
        bincode(5, &Stats::default()),
        bincode(6, &"abc".to_string()),
        bincode(7, &vec![1u64, u64::MAX]),
        bincode(8, &vec!["a".to_string()]),
        bincode(9, &("k".to_string(), 3u32, Some(9u64))),
        bincode(10, &vec![("k".to_string(), vec![1u8, 2])]),
        bincode(11, &Some((Role::Gov, Sigmoid::Linear, vec![0.5f64]))),
    ];
    for s in &seeds {
        write(dir, "decode_control", &format!("type-{}", s[0]), s);
    }

    // channel_recv: gov reads a String, then 5 u64s as bulk.
    let frames = record_pair(|ch| {
        if ch.role() == Role::Bank {
            ch.send("x", &"hello".to_string()).unwrap();
            ch.send_u64s("mpc.reveal", &[1, 2, 3, 4, 5]).unwrap();
        }
    });
    let mut seed = vec![0, 0xff, 0x7f, 1, 2, 12, 0, 0, 5, 3, 5, 0];
    seed.extend(encode_frames(&frames[0]));
    write(dir, "channel_recv", "string-and-u64s", &seed);

    // lookup: an honest table of 10 entries and an answer to 3 queries.
    let ids: Vec<String> = (0..3).map(|i| format!("ENTITY{i:06}")).collect();
    let table: Vec<String> = (0..10).map(|i| format!("ENTITY{i:06}")).collect();
    let frames = record_pair(|ch| {
        if ch.role() == Role::Gov {
            let server = LookupServer::new(&mut engine_rng(Role::Gov));
            server.send_table(ch, "fuzz", &table, &[5; 10]).unwrap();
            server.answer(ch, &tandem_fuzz::fuzz_grant(), 3).unwrap();
        } else {
            let client = LookupClient::receive_table(ch, 1000).unwrap();
            client.query(ch, &tandem_fuzz::fuzz_grant(), "fuzz", &ids, &mut engine_rng(Role::Bank)).unwrap();
        }
    });
    for op in 0..3u8 {
        let mut seed = vec![op, 0xe8, 0x03, 3];
        seed.extend(encode_frames(if op == 1 { &frames[0] } else { &frames[1] }));
        write(dir, "lookup", &format!("op-{op}"), &seed);
    }

    // engine_setup: the honest setup, and the base-OT messages alone.
    for role in [Role::Gov, Role::Bank] {
        let setup = recorded_setup(role);
        let mut seed = vec![role.index() as u8, 0];
        seed.extend(encode_frames(setup));
        write(dir, "engine_setup", &format!("{role}-new"), &seed);
        write(
            dir,
            "engine_setup",
            &format!("{role}-receive"),
            &[&[role.index() as u8, 1, 7][..], &setup[0].payload].concat(),
        );
        write(
            dir,
            "engine_setup",
            &format!("{role}-finish"),
            &[&[role.index() as u8, 2, 7][..], &setup[1].payload[..7 * 32]].concat(),
        );
    }

    // engine_ops: every operation (and one chain of three) with the honest peer's frames.
    for target in [Role::Gov, Role::Bank] {
        let skip = recorded_setup(target).len();
        let mut chains: Vec<Vec<[u8; 4]>> = (0..13u8).map(|op| vec![[op, 3, 17, op]]).collect();
        chains.push(vec![[3, 16, 0, 1], [11, 5, 0, 2], [5, 0, 24, 3]]);
        for (i, ops) in chains.iter().enumerate() {
            let frames = record_pair(|ch| {
                let mut e = Engine::new(ch, fixed(), &mut engine_rng(ch.role())).unwrap();
                for &op in ops {
                    engine_op(&mut e, target, op).unwrap();
                }
            });
            let mut seed = vec![target.index() as u8, ops.len() as u8 - 1];
            seed.extend(ops.iter().flatten());
            seed.extend(encode_frames(&frames[target.index()][skip..]));
            write(dir, "engine_ops", &format!("{target}-{i}"), &seed);
        }
    }
    println!("seed corpora written to {}", dir.display());
}
