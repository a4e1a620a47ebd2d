//! VOLE-PSI end to end over the in-memory channel pair: intersections and alignment are checked
//! against sets computed here (random, empty, disjoint, identical, tiny vs large, repeated IDs),
//! refusals on both sides, and the protocol choice against ECDH-PSI.

use protocol::channel::run_pair;
use protocol::psi::{PsiParams, PsiProtocol, PsiReveal};
use protocol::{Error, InputError, PeerError, Stats, psi_vole};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

mod common;

use common::{Outcome, params, sets};

fn run_with(
    gov: &[String],
    bank: &[String],
    (gov_protocol, gov_params): (PsiProtocol, &PsiParams),
    (bank_protocol, bank_params): (PsiProtocol, &PsiParams),
) -> (Outcome, Outcome) {
    run_pair(
        |ch| (gov_protocol.intersect(ch, gov, gov_params, &mut ChaCha20Rng::seed_from_u64(31)), ch.stats()),
        |ch| (bank_protocol.intersect(ch, bank, bank_params, &mut ChaCha20Rng::seed_from_u64(32)), ch.stats()),
    )
}

fn run(gov: &[String], bank: &[String], p: &PsiParams) -> (Outcome, Outcome) {
    run_pair(
        |ch| (psi_vole::intersect(ch, gov, p, &mut ChaCha20Rng::seed_from_u64(41)), ch.stats()),
        |ch| (psi_vole::intersect(ch, bank, p, &mut ChaCha20Rng::seed_from_u64(42)), ch.stats()),
    )
}

/// Runs VOLE-PSI with `reveal` and checks both outputs ([`common::check`]).
fn check(gov: &[String], bank: &[String], reveal: PsiReveal) -> (Stats, Stats) {
    assert_ne!(reveal, PsiReveal::SizeOnly, "VOLE-PSI refuses size_only");
    common::check(gov, bank, reveal, |p| run(gov, bank, p))
}

#[test]
fn random_sets_intersect_and_align_in_both_reveal_modes() {
    for (seed, g, b, c) in [(1, 300, 200, 250), (2, 10, 700, 40), (3, 500, 3, 1), (4, 2000, 2500, 3000)] {
        let (gov, bank) = sets(seed, g, b, c);
        for reveal in [PsiReveal::Both, PsiReveal::BankOnly] {
            check(&gov, &bank, reveal);
        }
    }
}

#[test]
fn edge_cases_empty_disjoint_identical_tiny_and_large() {
    common::check_edge_cases(|gov, bank, reveal| {
        check(gov, bank, reveal);
    });
}

#[test]
fn half_overlap_costs_the_okvs_the_tags_and_the_positions_beyond_the_vole() {
    let (gov, bank) = sets(9, 10_000, 10_000, 10_000);
    let (gs, bs) = check(&gov, &bank, PsiReveal::Both);
    let psi_bytes = gs.bytes_sent + bs.bytes_sent;
    // The VOLE alone, of the OKVS's length, measured here.
    let m = protocol::okvs::Okvs::new(bank.len()).columns();
    let (g, b) = run_pair(
        |ch| protocol::pcg::vole_send(ch, m, &mut ChaCha20Rng::seed_from_u64(1)).map(|_| ch.stats()),
        |ch| protocol::pcg::vole_receive(ch, m, &mut ChaCha20Rng::seed_from_u64(2)).map(|_| ch.stats()),
    );
    let vole_bytes = g.unwrap().bytes_sent + b.unwrap().bytes_sent;
    // 16 B per OKVS column, a tag per gov ID, 4 B per matched position, plus frame headers and
    // the small control messages.
    let t = protocol::psi::tag_len(gov.len() + bank.len()) as u64;
    let payload = 16 * m as u64 + t * gov.len() as u64 + 4 * 10_000;
    let extra = psi_bytes - vole_bytes;
    assert!(extra >= payload && extra < payload + 4096, "{extra} bytes beyond the VOLE, payload {payload}");
}

#[test]
fn vole_and_ecdh_find_the_same_rows() {
    let (gov, bank) = sets(10, 700, 500, 300);
    let p = params(PsiReveal::Both, 0);
    let mut found = Vec::new();
    for protocol in [PsiProtocol::Vole, PsiProtocol::Ecdh] {
        let ((g, _), (b, _)) = run_with(&gov, &bank, (protocol, &p), (protocol, &p));
        let (mut g, mut b) = (g.unwrap().rows.unwrap(), b.unwrap().rows.unwrap());
        g.sort_unstable();
        b.sort_unstable();
        found.push((g, b));
    }
    assert_eq!(found[0], found[1]);
    assert_eq!(found[0].0.len(), 300);
}

#[test]
fn size_only_is_refused_locally_and_a_protocol_mismatch_on_both_sides() {
    let (gov, bank) = sets(11, 5, 5, 5);
    let p = params(PsiReveal::SizeOnly, 0);
    let ((g, gs), (b, bs)) = run(&gov, &bank, &p);
    for r in [g, b] {
        assert!(
            matches!(r, Err(Error::Input(InputError::Param(ref m))) if m.contains("psi_protocol = \"ecdh\"")),
            "{r:?}"
        );
    }
    assert_eq!((gs.bytes_sent, bs.bytes_sent), (0, 0), "nothing is sent");

    let p = params(PsiReveal::Both, 0);
    let ((g, _), (b, _)) = run_with(&gov, &bank, (PsiProtocol::Vole, &p), (PsiProtocol::Ecdh, &p));
    for r in [g, b] {
        let err = r.expect_err("mismatched protocols must abort");
        assert!(matches!(&err, Error::Mismatch { what: "PSI parameters", .. }), "{err}");
    }
}

#[test]
fn min_intersection_refuses_on_both_sides_before_and_after_computing() {
    let (gov, bank) = sets(12, 50, 50, 20);
    for min in [21, 71] {
        let p = params(PsiReveal::BankOnly, min);
        let ((g, _), (b, _)) = run(&gov, &bank, &p);
        for (who, r) in [("gov", g), ("bank", b)] {
            let err = r.expect_err("PSI below min_intersection must be refused").to_string();
            assert!(err.contains("min_intersection") && err.contains(&min.to_string()), "{who}: {err}");
        }
    }
    let p = params(PsiReveal::BankOnly, 20);
    let ((g, _), (b, _)) = run(&gov, &bank, &p);
    assert_eq!((g.unwrap().size, b.unwrap().size), (20, 20));
}

#[test]
fn repeated_ids_are_refused() {
    let (gov, mut bank) = sets(13, 5, 5, 5);
    bank.push(bank[3].clone());
    let p = params(PsiReveal::Both, 0);
    let ((g, _), (b, _)) = run(&gov, &bank, &p);
    assert!(matches!(b, Err(Error::Input(InputError::RepeatedIds { who: "the bank" }))), "{b:?}");
    // The gov is told only the kind of the bank's failure (its own input), not the message.
    let notice = Error::Input(InputError::RepeatedIds { who: "the bank" }).peer_notice();
    assert!(matches!(g, Err(Error::PeerAbort(ref m)) if *m == format!("psi: {notice}")), "{g:?}");

    let (mut gov, bank) = sets(13, 5, 5, 5);
    gov.push(gov[0].clone());
    let ((g, _), (b, _)) = run(&gov, &bank, &p);
    assert!(matches!(b, Err(Error::Peer(PeerError::DuplicateTag { .. }))), "{b:?}");
    assert!(g.is_err());
}
