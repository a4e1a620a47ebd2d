//! Transcript hashing: what every frame leaves behind for the auditor.
//!
//! Every frame a [`crate::Channel`] sends or receives is (1) reported to an optional
//! [`FrameObserver`] (the node writes it to the job's transcript file with a time stamp and a
//! local hash chain) and (2) folded into the channel's [`SharedView`].
//!
//! The shared view is one hash chain per direction (frames sent by gov, frames sent by bank).
//! Each direction is a single ordered stream, so both parties compute identical heads no matter
//! how sends and receives interleave locally. At each phase end the nodes sign the shared view
//! with their node keys (with their transcripts' record chains, see the node's `audit` module); an
//! auditor holding both transcripts can then match every send to a receive.

use serde::{Deserialize, Serialize};

use crate::Role;

/// Which way a frame went, seen from the recording party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Sent,
    Received,
}

/// One frame as seen by the transcript. `payload_hash` is BLAKE3 of the payload bytes.
#[derive(Debug)]
pub struct FrameEvent<'a> {
    pub direction: Direction,
    pub phase: &'a str,
    pub kind: &'a str,
    pub payload: &'a [u8],
    pub payload_hash: [u8; 32],
}

/// Receives every frame of a channel, in order. Implemented by the node's transcript writer.
pub trait FrameObserver: Send {
    fn on_frame(&mut self, frame: &FrameEvent<'_>);
}

/// Head of one direction's hash chain: number of frames and chained hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub frames: u64,
    #[serde(with = "hex_bytes")]
    pub hash: [u8; 32],
}

impl ChainHead {
    /// Fold one frame into the chain:
    /// `hash' = BLAKE3-derive("tandem shared chain v1", hash ‖ u8 len(kind) ‖ kind ‖ u64le len ‖ payload_hash)`.
    pub fn extend(&mut self, kind: &str, payload_len: u64, payload_hash: &[u8; 32]) {
        let mut h = blake3::Hasher::new_derive_key("tandem shared chain v1");
        h.update(&self.hash);
        h.update(&[kind.len() as u8]);
        h.update(kind.as_bytes());
        h.update(&payload_len.to_le_bytes());
        h.update(payload_hash);
        self.hash = *h.finalize().as_bytes();
        self.frames += 1;
    }
}

/// The part of the transcript both parties agree on: one chain per sending party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedView {
    pub sent_by_gov: ChainHead,
    pub sent_by_bank: ChainHead,
}

impl SharedView {
    pub fn record(&mut self, sender: Role, kind: &str, payload_len: u64, payload_hash: &[u8; 32]) {
        match sender {
            Role::Gov => self.sent_by_gov.extend(kind, payload_len, payload_hash),
            Role::Bank => self.sent_by_bank.extend(kind, payload_len, payload_hash),
        }
    }
}

/// Serde helper: 32-byte arrays as lowercase hex strings (readable JSON transcripts).
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(&s).map_err(serde::de::Error::custom)?;
        v.try_into().map_err(|_| serde::de::Error::custom("expected 32 bytes of hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers computed once by this code. A change to them is a format break: signed
    /// shared views of earlier jobs no longer verify.
    #[test]
    fn known_answers_of_the_shared_chain() {
        let mut head = ChainHead::default();
        head.extend("psi.blinded", 5, blake3::hash(b"hello").as_bytes());
        assert_eq!(hex::encode(head.hash), "0b136615a4a1186ac14eed724279db023fa5a5fee557a899178932e5b227f0ef");
        head.extend("", 0, &[0xab; 32]);
        assert_eq!(
            (head.frames, hex::encode(head.hash).as_str()),
            (2, "5aebd27d69d8f6597da3267a2016f15ba7a31b694850625de4f92c49c605a07a")
        );
    }
}
