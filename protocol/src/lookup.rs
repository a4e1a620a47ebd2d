//! Private keyed lookup (labelled PSI from a Diffie–Hellman OPRF over Ristretto255).
//!
//! The *server* (the government node) holds a table `id → payload` (one u64 per entity, e.g. its
//! fixed-point partial score). The *client* (the bank) holds a few query IDs and learns the payload
//! of each query that is in the table, without the server learning which entities were queried.
//!
//! Protocol, with per-session server key `a` and per-batch client key `b`:
//! `H` is the PSI hash-to-group ([`crate::psi`]) with the session's domain separator.
//! 1. server → client, once per session: for every table entry, sorted by tag,
//!    `tag = KDF₁(H(id)^a)[..16]` and `payload ⊕ KDF₂(H(id)^a)[..8]`;
//! 2. client → server: `H(q)^b` for each query;  server → client: `(H(q)^b)^a` in the same order;
//! 3. client unblinds `H(q)^a = ((H(q)^b)^a)^(1/b)`, derives tag and pad, looks the tag up.
//!
//! What each party learns (semi-honest, DH-OPRF security under one-more-gap-DH in the random-oracle
//! model, 128-bit): the server learns the number of queries in each batch and nothing else (it only
//! sees uniformly random group elements). The client learns the table size and, for each query, whether
//! it is in the table and its payload; tags and masked payloads of entries it did not query are
//! pseudorandom to it. Tags are 128 bits, so a false match has probability at most
//! entries·queries / 2^128 (2^-64 for 2^32 of each), far below the 40-bit statistical bound.
//! The policy that allows a lookup, and the number of queries, is enforced by the node.
//!
//! Scoring sessions keep the key and the client's copy of the table across many query batches
//! and refresh it in place: [`LookupServer::versioned_entries`] and [`VersionedTable`], whose
//! entries also carry a row version so that a changed row gets a fresh pad (see there for what an
//! update tells the client). A new key (rotation) makes every tag new.

use std::collections::HashMap;

use curve25519_dalek::{Scalar, ristretto::CompressedRistretto};
use rayon::prelude::*;
use zeroize::Zeroize;

use crate::disclose::Grant;
use crate::psi::{hash_prefix, hash_to_group};
use crate::{Channel, PeerError, Result};

const TAG_LEN: usize = 16;
const ENTRY_LEN: usize = TAG_LEN + 8;

/// Tag and payload pad derived from the server-keyed point `H(id)^a`.
fn tag_and_pad(point: &CompressedRistretto) -> ([u8; TAG_LEN], u64) {
    let tag = blake3::derive_key("tandem lookup tag v1", point.as_bytes());
    let pad = blake3::derive_key("tandem lookup pad v1", point.as_bytes());
    (tag[..TAG_LEN].try_into().expect("16 bytes"), u64::from_le_bytes(pad[..8].try_into().expect("8 bytes")))
}

/// The server's side of a lookup session: its secret key for the session.
pub struct LookupServer {
    key: Scalar,
}

impl Drop for LookupServer {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl LookupServer {
    /// Starts a session with a fresh key from the caller's CSPRNG.
    pub fn new<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> LookupServer {
        LookupServer { key: Scalar::random(rng) }
    }

    /// Sends the keyed table (message `lookup.table`). `ids` are normalised and unique.
    pub fn send_table(&self, ch: &mut Channel, domain: &str, ids: &[String], payloads: &[u64]) -> Result<()> {
        assert_eq!(ids.len(), payloads.len(), "one payload per id");
        let prefix = hash_prefix(domain);
        let mut entries: Vec<([u8; TAG_LEN], u64)> = ids
            .par_iter()
            .zip(payloads.par_iter())
            .map(|(id, &payload)| {
                let (tag, pad) = tag_and_pad(&(hash_to_group(&prefix, id) * self.key).compress());
                (tag, payload ^ pad)
            })
            .collect();
        entries.par_sort_unstable_by(|x, y| x.0.cmp(&y.0));
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY_LEN);
        for (tag, masked) in &entries {
            bytes.extend_from_slice(tag);
            bytes.extend_from_slice(&masked.to_le_bytes());
        }
        ch.send_bulk("lookup.table", &bytes)
    }

    /// Answers one batch of blinded queries (`lookup.query` → answer); returns its size. The
    /// answer is what opens the queried payloads to the client, so it crosses through the
    /// channel's reveal path under `grant` ([`crate::disclose`]).
    pub fn answer(&self, ch: &mut Channel, grant: &Grant, max_queries: usize) -> Result<usize> {
        let bytes = ch.recv_bulk("lookup.query", (max_queries * 32) as u64)?;
        let answer = self.evaluate(&bytes)?;
        ch.reveal_send(grant, &answer)?;
        Ok(answer.len() / 32)
    }
}

/// The client's copy of the server's keyed table.
pub struct LookupClient {
    table: HashMap<[u8; TAG_LEN], u64>,
}

impl LookupClient {
    /// Receives the server's table, refusing one with more than `max_entries` entries.
    pub fn receive_table(ch: &mut Channel, max_entries: usize) -> Result<LookupClient> {
        let bytes = ch.recv_bulk("lookup.table", (max_entries * ENTRY_LEN) as u64)?;
        if bytes.len() % ENTRY_LEN != 0 {
            return Err(PeerError::wrong_bytes(
                format!("'lookup.table' (whole {ENTRY_LEN}-byte entries)"),
                (bytes.len() / ENTRY_LEN * ENTRY_LEN) as u64,
                bytes.len() as u64,
            )
            .into());
        }
        let table: HashMap<_, _> = bytes
            .chunks_exact(ENTRY_LEN)
            .map(|e| {
                (
                    e[..TAG_LEN].try_into().expect("16 bytes"),
                    u64::from_le_bytes(e[TAG_LEN..].try_into().expect("8 bytes")),
                )
            })
            .collect();
        if table.len() * ENTRY_LEN != bytes.len() {
            return Err(PeerError::DuplicateTag { what: "'lookup.table'".into() }.into());
        }
        Ok(LookupClient { table })
    }

    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Looks up `ids` (normalised): the payload of each one the server holds, `None` otherwise.
    /// The server's answer is received through the reveal path under `grant`.
    pub fn query<R: rand::CryptoRng + ?Sized>(
        &self,
        ch: &mut Channel,
        grant: &Grant,
        domain: &str,
        ids: &[String],
        rng: &mut R,
    ) -> Result<Vec<Option<u64>>> {
        let mut blind = Scalar::random(rng);
        let prefix = hash_prefix(domain);
        let blinded: Vec<[u8; 32]> =
            ids.par_iter().map(|id| (hash_to_group(&prefix, id) * blind).compress().to_bytes()).collect();
        ch.send_bulk("lookup.query", blinded.as_flattened())?;
        let answer = ch.reveal_recv(grant, (ids.len() * 32) as u64)?;
        if answer.len() != ids.len() * 32 {
            return Err(PeerError::wrong_bytes(
                format!("'lookup.answer' for {} queries", ids.len()),
                ids.len() as u64 * 32,
                answer.len() as u64,
            )
            .into());
        }
        let mut unblind = blind.invert();
        blind.zeroize();
        let result = answer
            .par_chunks_exact(32)
            .map(|c| {
                let point = CompressedRistretto(c.try_into().expect("32 bytes"))
                    .decompress()
                    .ok_or_else(|| PeerError::NotOnCurve { what: "a point of 'lookup.answer'".into() })?;
                let (tag, pad) = tag_and_pad(&(point * unblind).compress());
                Ok(self.table.get(&tag).map(|masked| masked ^ pad))
            })
            .collect();
        unblind.zeroize();
        result
    }
}

/// One entry of a versioned (session) table: tag, row version, masked payload.
pub const VERSIONED_ENTRY_LEN: usize = TAG_LEN + 4 + 8;

/// A table tag: the first 16 bytes of `KDF₁(H(id)^a)`.
pub type Tag = [u8; TAG_LEN];

/// Pad of version `version` of a row of a versioned table. Each version of a row has its own
/// pad, so two versions' masked payloads are independent to a client that did not query the id
/// (without it, their XOR would be the XOR of the two payloads).
fn versioned_pad(point: &CompressedRistretto, version: u32) -> u64 {
    let mut input = [0u8; 36];
    input[..32].copy_from_slice(point.as_bytes());
    input[32..].copy_from_slice(&version.to_le_bytes());
    let pad = blake3::derive_key("tandem lookup row pad v1", &input);
    u64::from_le_bytes(pad[..8].try_into().expect("8 bytes"))
}

impl LookupServer {
    /// Tags of `ids` under this key (what a client holding the table knows them by).
    pub fn tags(&self, domain: &str, ids: &[&str]) -> Vec<Tag> {
        let prefix = hash_prefix(domain);
        ids.par_iter().map(|id| tag_and_pad(&(hash_to_group(&prefix, id) * self.key).compress()).0).collect()
    }

    /// Entries of a versioned table for rows `(id, version, payload)`, sorted by tag (the order
    /// says nothing about the rows' order), as sent to the client ([`VersionedTable::upsert`]).
    /// Each entry is `tag ‖ version ‖ payload ⊕ pad(H(id)^a, version)`.
    pub fn versioned_entries(&self, domain: &str, rows: &[(&str, u32, u64)]) -> Vec<u8> {
        let prefix = hash_prefix(domain);
        let mut entries: Vec<(Tag, u32, u64)> = rows
            .par_iter()
            .map(|&(id, version, payload)| {
                let point = (hash_to_group(&prefix, id) * self.key).compress();
                (tag_and_pad(&point).0, version, payload ^ versioned_pad(&point, version))
            })
            .collect();
        entries.par_sort_unstable_by(|x, y| x.0.cmp(&y.0));
        let mut bytes = Vec::with_capacity(entries.len() * VERSIONED_ENTRY_LEN);
        for (tag, version, masked) in &entries {
            bytes.extend_from_slice(tag);
            bytes.extend_from_slice(&version.to_le_bytes());
            bytes.extend_from_slice(&masked.to_le_bytes());
        }
        bytes
    }

    /// The server's answer to blinded query points (`H(q)^b` → `H(q)^(ab)`), 32 bytes each.
    /// The caller sends it through the reveal path ([`Channel::reveal_send`]).
    pub fn evaluate(&self, blinded: &[u8]) -> Result<Vec<u8>> {
        if !blinded.len().is_multiple_of(32) {
            return Err(PeerError::wrong_bytes(
                "'lookup.query' (whole 32-byte points)",
                (blinded.len() / 32 * 32) as u64,
                blinded.len() as u64,
            )
            .into());
        }
        let answers: Vec<[u8; 32]> = blinded
            .par_chunks_exact(32)
            .map(|c| {
                let point = CompressedRistretto(c.try_into().expect("32 bytes"))
                    .decompress()
                    .ok_or_else(|| PeerError::NotOnCurve { what: "a point of 'lookup.query'".into() })?;
                Ok((point * self.key).compress().to_bytes())
            })
            .collect::<Result<_>>()?;
        Ok(answers.concat())
    }
}

/// The client's blinding of one batch of queries, needed to read the server's answer.
pub struct Blinding {
    unblind: Scalar,
    count: usize,
}

impl Drop for Blinding {
    fn drop(&mut self) {
        self.unblind.zeroize();
    }
}

/// Blinds `ids` (normalised) for a query: the points `H(q)^b` to send (32 bytes each) and the
/// blinding that reads the answer ([`VersionedTable::read_answer`]).
pub fn blind_queries<R: rand::CryptoRng + ?Sized>(domain: &str, ids: &[&str], rng: &mut R) -> (Blinding, Vec<u8>) {
    let mut blind = Scalar::random(rng);
    let prefix = hash_prefix(domain);
    let points: Vec<[u8; 32]> =
        ids.par_iter().map(|id| (hash_to_group(&prefix, id) * blind).compress().to_bytes()).collect();
    let unblind = blind.invert();
    blind.zeroize();
    (Blinding { unblind, count: ids.len() }, points.concat())
}

/// The client's copy of a versioned table, changed by upserts and deletions (a scoring session,
/// where the server's rows change under the same key).
///
/// What the client learns from an update beyond the table size: the number of upserted and
/// deleted entries, and for each its tag and row version. A tag it already holds (an upsert of a
/// changed row, or a deletion) is linkable to an id only if the client queried that id under the
/// current key; then it learns that the row changed (not the new value until it queries again).
/// Masked payloads of ids it did not query stay pseudorandom, across versions too
/// ([`versioned_pad`]).
#[derive(Default)]
pub struct VersionedTable {
    table: HashMap<Tag, (u32, u64)>,
}

impl VersionedTable {
    /// Adds or replaces entries ([`LookupServer::versioned_entries`]), refusing a malformed list
    /// or one that would make the table larger than `max_entries`.
    pub fn upsert(&mut self, bytes: &[u8], max_entries: usize) -> Result<()> {
        if !bytes.len().is_multiple_of(VERSIONED_ENTRY_LEN) {
            return Err(PeerError::wrong_bytes(
                "a lookup table update (whole entries)",
                (bytes.len() / VERSIONED_ENTRY_LEN * VERSIONED_ENTRY_LEN) as u64,
                bytes.len() as u64,
            )
            .into());
        }
        self.table.reserve(bytes.len() / VERSIONED_ENTRY_LEN);
        for e in bytes.chunks_exact(VERSIONED_ENTRY_LEN) {
            let tag: Tag = e[..TAG_LEN].try_into().expect("16 bytes");
            let version = u32::from_le_bytes(e[TAG_LEN..TAG_LEN + 4].try_into().expect("4 bytes"));
            let masked = u64::from_le_bytes(e[TAG_LEN + 4..].try_into().expect("8 bytes"));
            self.table.insert(tag, (version, masked));
        }
        if self.table.len() > max_entries {
            return Err(PeerError::BadCount {
                what: "lookup table entries after an update".into(),
                got: self.table.len() as u64,
                allowed: format!("at most {max_entries}"),
            }
            .into());
        }
        Ok(())
    }

    /// Removes the entries of `tags` (16 bytes each); an unknown tag is an error.
    pub fn delete(&mut self, tags: &[u8]) -> Result<()> {
        if !tags.len().is_multiple_of(TAG_LEN) {
            return Err(PeerError::wrong_bytes(
                "a lookup table deletion (whole 16-byte tags)",
                (tags.len() / TAG_LEN * TAG_LEN) as u64,
                tags.len() as u64,
            )
            .into());
        }
        for t in tags.chunks_exact(TAG_LEN) {
            if self.table.remove(t).is_none() {
                return Err(PeerError::Inconsistent {
                    what: "a table deletion names a tag the table does not hold".into(),
                }
                .into());
            }
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.table = HashMap::new();
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Reads the server's answer to the queries of `blinding`: the payload of each query the
    /// table holds, `None` otherwise.
    pub fn read_answer(&self, blinding: &Blinding, answer: &[u8]) -> Result<Vec<Option<u64>>> {
        if answer.len() != blinding.count * 32 {
            return Err(
                PeerError::wrong_bytes("the lookup answer", (blinding.count * 32) as u64, answer.len() as u64).into()
            );
        }
        answer
            .par_chunks_exact(32)
            .map(|c| {
                let point = CompressedRistretto(c.try_into().expect("32 bytes"))
                    .decompress()
                    .ok_or_else(|| PeerError::NotOnCurve { what: "a point of the lookup answer".into() })?;
                let point = (point * blinding.unblind).compress();
                let tag = tag_and_pad(&point).0;
                Ok(self.table.get(&tag).map(|&(version, masked)| masked ^ versioned_pad(&point, version)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::run_pair;
    use crate::{Error, TransportError};

    fn lookup_grant() -> Grant {
        Grant::new("partial_scores", "partial_scores_to_bank", "payloads of the queried ids")
    }
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn ids(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| format!("ENTITY{i:06}")).collect()
    }

    /// Known answers computed once by this code. A change to them is a format break: clients of
    /// the previous version can no longer read tables of this one.
    #[test]
    fn known_answers_of_tag_and_pad() {
        let point = hash_to_group(&hash_prefix("lookup-kat"), "ENTITY000001").compress();
        let (tag, pad) = tag_and_pad(&point);
        assert_eq!(hex::encode(tag), "ccad981bc63c4a421bf8d3271f30e4db");
        assert_eq!(format!("{pad:016x}"), "41fda50689411c1a");
    }

    #[test]
    fn client_learns_exactly_the_payloads_of_its_queries_in_the_table() {
        let table_ids = ids(0..500);
        let payloads: Vec<u64> = (0..500u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let mut queries = ids(490..510); // 10 held, 10 not
        queries.push("ENTITY000007".into());
        let (served, got) = run_pair(
            |ch| {
                let server = LookupServer::new(&mut ChaCha20Rng::seed_from_u64(1));
                server.send_table(ch, "job-1", &table_ids, &payloads).unwrap();
                server.answer(ch, &lookup_grant(), 100).unwrap()
            },
            |ch| {
                let client = LookupClient::receive_table(ch, 10_000).unwrap();
                assert_eq!(client.table_len(), 500);
                client.query(ch, &lookup_grant(), "job-1", &queries, &mut ChaCha20Rng::seed_from_u64(2)).unwrap()
            },
        );
        assert_eq!(served, queries.len());
        for (q, value) in queries.iter().zip(&got) {
            let expected = table_ids.iter().position(|t| t == q).map(|i| payloads[i]);
            assert_eq!(*value, expected, "query {q}");
        }
    }

    #[test]
    fn a_different_domain_finds_nothing() {
        let table_ids = ids(0..50);
        let (_, got) = run_pair(
            |ch| {
                let server = LookupServer::new(&mut ChaCha20Rng::seed_from_u64(3));
                server.send_table(ch, "job-a", &table_ids, &vec![1; 50]).unwrap();
                server.answer(ch, &lookup_grant(), 100).unwrap()
            },
            |ch| {
                let client = LookupClient::receive_table(ch, 100).unwrap();
                client.query(ch, &lookup_grant(), "job-b", &table_ids[..5], &mut ChaCha20Rng::seed_from_u64(4)).unwrap()
            },
        );
        assert!(got.iter().all(Option::is_none));
    }

    #[test]
    fn oversized_table_and_invalid_points_are_errors() {
        let (_, err) = run_pair(
            |ch| LookupServer::new(&mut ChaCha20Rng::seed_from_u64(5)).send_table(ch, "d", &ids(0..20), &[0; 20]),
            |ch| LookupClient::receive_table(ch, 10).err().unwrap(),
        );
        assert!(matches!(err, Error::Transport(TransportError::FrameTooLarge { .. })), "{err}");
        let (err, _) = run_pair(
            |ch| LookupServer::new(&mut ChaCha20Rng::seed_from_u64(6)).answer(ch, &lookup_grant(), 4).err().unwrap(),
            |ch| ch.send_bulk("lookup.query", &[0xff; 64]),
        );
        assert!(matches!(err, Error::Peer(PeerError::NotOnCurve { .. })), "{err}");
    }

    fn read(table: &VersionedTable, server: &LookupServer, domain: &str, ids: &[&str]) -> Vec<Option<u64>> {
        let (blinding, points) = blind_queries(domain, ids, &mut ChaCha20Rng::seed_from_u64(9));
        table.read_answer(&blinding, &server.evaluate(&points).unwrap()).unwrap()
    }

    #[test]
    fn a_versioned_table_follows_upserts_and_deletions() {
        let server = LookupServer::new(&mut ChaCha20Rng::seed_from_u64(7));
        let mut table = VersionedTable::default();
        table.upsert(&server.versioned_entries("s", &[("A", 0, 10), ("B", 0, 20), ("C", 0, 30)]), 10).unwrap();
        assert_eq!(read(&table, &server, "s", &["A", "B", "C", "D"]), [Some(10), Some(20), Some(30), None]);
        // B changes (version 1), D is added, C is deleted.
        table.upsert(&server.versioned_entries("s", &[("B", 1, 21), ("D", 0, 40)]), 10).unwrap();
        table.delete(&server.tags("s", &["C"]).concat()).unwrap();
        assert_eq!(read(&table, &server, "s", &["A", "B", "C", "D"]), [Some(10), Some(21), None, Some(40)]);
        assert_eq!(table.len(), 3);
        // Another key (a rotation) finds nothing in the old table.
        let rotated = LookupServer::new(&mut ChaCha20Rng::seed_from_u64(8));
        assert_eq!(read(&table, &rotated, "s", &["A"]), [None]);
    }

    #[test]
    fn each_row_version_has_its_own_pad() {
        let server = LookupServer::new(&mut ChaCha20Rng::seed_from_u64(7));
        let masked =
            |version| u64::from_le_bytes(server.versioned_entries("s", &[("A", version, 5)])[20..].try_into().unwrap());
        let (v0, v1) = (masked(0), masked(1));
        assert_ne!(v0 ^ 5, v1 ^ 5, "the two versions' pads differ");
        let v1_other = u64::from_le_bytes(server.versioned_entries("s", &[("A", 1, 6)])[20..].try_into().unwrap());
        assert_eq!(v1 ^ v1_other, 5 ^ 6, "one version's pad is fixed");
    }

    #[test]
    fn malformed_updates_are_errors() {
        let server = LookupServer::new(&mut ChaCha20Rng::seed_from_u64(7));
        let mut table = VersionedTable::default();
        assert!(table.upsert(&[0; 27], 10).is_err());
        let two = server.versioned_entries("s", &[("A", 0, 1), ("B", 0, 2)]);
        assert!(table.upsert(&two, 1).is_err(), "more entries than allowed");
        assert!(VersionedTable::default().delete(&server.tags("s", &["A"]).concat()).is_err());
        assert!(table.delete(&[0; 15]).is_err());
        assert!(server.evaluate(&[0xff; 32]).is_err());
        let (blinding, _) = blind_queries("s", &["A"], &mut ChaCha20Rng::seed_from_u64(9));
        assert!(table.read_answer(&blinding, &[0; 64]).is_err());
    }
}
