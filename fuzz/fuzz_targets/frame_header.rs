//! Frame header and kind parsing (`Frame::parse_header`, `Frame::parse_kind`), alone and as a
//! transport would use them to split a byte stream into frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::channel::{Frame, HEADER_LEN, MAX_KIND_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let max_payload = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize % (1 << 20);
    let mut rest = &data[4..];
    // Read frames the way a stream transport does: header, limit check, kind, then payload.
    while rest.len() >= HEADER_LEN {
        let prefix: [u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().unwrap();
        let Ok((len, kind_len)) = Frame::parse_header(prefix, max_payload) else { break };
        assert!(len <= max_payload && (1..=MAX_KIND_LEN).contains(&kind_len));
        rest = &rest[HEADER_LEN..];
        if rest.len() < kind_len + len {
            break;
        }
        let kind_bytes = &rest[..kind_len];
        if let Ok(kind) = Frame::parse_kind(kind_bytes) {
            assert_eq!(kind.as_bytes(), kind_bytes);
            let frame = Frame { kind, payload: rest[kind_len..kind_len + len].to_vec() };
            let header = frame.header();
            assert_eq!(&header[..HEADER_LEN], &prefix[..], "header re-encodes identically");
        }
        rest = &rest[kind_len + len..];
    }
});
