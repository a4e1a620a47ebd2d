//! PSI end to end over the in-memory channel pair: intersections and alignment are checked against
//! sets computed here, refusals on both sides, and the ID preparation on the shared data set.

use protocol::channel::run_pair;
use protocol::ids::{IdKind, prepare_ids};
use protocol::psi::{PsiParams, PsiReveal, intersect};
use protocol::{Error, InputError, PeerError, Stats};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

mod common;

use common::{Outcome, params, sets};

fn run(gov: &[String], bank: &[String], gov_params: &PsiParams, bank_params: &PsiParams) -> (Outcome, Outcome) {
    run_pair(
        |ch| (intersect(ch, gov, gov_params, &mut ChaCha20Rng::seed_from_u64(11)), ch.stats()),
        |ch| (intersect(ch, bank, bank_params, &mut ChaCha20Rng::seed_from_u64(22)), ch.stats()),
    )
}

/// Runs ECDH-PSI with `reveal` and checks both outputs ([`common::check`]).
fn check(gov: &[String], bank: &[String], reveal: PsiReveal) -> (Stats, Stats) {
    common::check(gov, bank, reveal, |p| run(gov, bank, p, p))
}

#[test]
fn random_sets_intersect_and_align_in_every_reveal_mode() {
    for (seed, g, b, c) in [(1, 300, 200, 250), (2, 10, 700, 40), (3, 500, 3, 1)] {
        let (gov, bank) = sets(seed, g, b, c);
        for reveal in [PsiReveal::Both, PsiReveal::BankOnly, PsiReveal::SizeOnly] {
            check(&gov, &bank, reveal);
        }
    }
}

#[test]
fn edge_cases_empty_disjoint_identical_single_and_tiny_vs_large() {
    common::check_edge_cases(|gov, bank, reveal| {
        check(gov, bank, reveal);
    });
}

#[test]
fn large_sets_with_half_overlap_align_and_stay_within_the_byte_budget() {
    let (gov, bank) = sets(9, 10_000, 10_000, 10_000);
    let (gs, bs) = check(&gov, &bank, PsiReveal::Both);
    let per_element = (gs.bytes_sent + bs.bytes_sent) as f64 / (gov.len() + bank.len()) as f64;
    // 32 B per point each way, a 10-byte tag per bank element, 4 B per gov position.
    assert!(per_element < 32.0 + 5.0 + 1.0 + 0.1, "{per_element} bytes per element");
}

#[test]
fn shared_data_set_ids_prepare_and_intersect_to_the_30000_common_entities() {
    let read = |file: &str| {
        std::fs::read_to_string(format!("{}/../testdata/synthetic_30k/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let (gov_csv, bank_csv) = (read("gov.csv"), read("bank.csv"));
    let column = |text: &str, source: &str| {
        let rows = text.lines().enumerate().skip(1).map(|(i, l)| (i + 1, l.split(',').next().unwrap()));
        prepare_ids(IdKind::Uscc, source, rows, false).unwrap()
    };
    let (gov, bank) = (column(&gov_csv, "gov.csv"), column(&bank_csv, "bank.csv"));
    assert_eq!((gov.ids.len(), bank.ids.len()), (35_000, 33_000));
    let p = params(PsiReveal::Both, 1000);
    let ((g, _), (b, _)) = run(&gov.ids, &bank.ids, &p, &p);
    let (g, b) = (g.unwrap(), b.unwrap());
    assert_eq!((g.size, b.size), (30_000, 30_000));
    // Back to dataset rows, then to the raw CSV lines: the aligned rows name the same entity.
    let g_lines: Vec<&str> = gov_csv.lines().skip(1).collect();
    let b_lines: Vec<&str> = bank_csv.lines().skip(1).collect();
    for (&gr, &br) in g.rows.unwrap().iter().zip(b.rows.as_ref().unwrap()) {
        let (gl, bl) = (g_lines[gov.rows[gr]], b_lines[bank.rows[br]]);
        assert_eq!(gl.split(',').next(), bl.split(',').next());
    }
}

#[test]
fn min_intersection_refuses_on_both_sides_before_and_after_computing() {
    let (gov, bank) = sets(4, 50, 50, 20);
    for min in [21, 71] {
        // 71 exceeds both set sizes (refused at hello); 21 exceeds only the actual overlap.
        let p = params(PsiReveal::Both, min);
        let ((g, _), (b, _)) = run(&gov, &bank, &p, &p);
        for (who, r) in [("gov", g), ("bank", b)] {
            let err = r.expect_err("PSI below min_intersection must be refused").to_string();
            assert!(err.contains("min_intersection") && err.contains(&min.to_string()), "{who}: {err}");
        }
    }
    let p = params(PsiReveal::Both, 20);
    let ((g, _), (b, _)) = run(&gov, &bank, &p, &p);
    assert_eq!((g.unwrap().size, b.unwrap().size), (20, 20));
}

#[test]
fn differing_parameters_are_refused_on_both_sides() {
    let (gov, bank) = sets(5, 5, 5, 5);
    let base = params(PsiReveal::Both, 0);
    let others = [
        PsiParams { domain: "job-2026-0002".into(), ..base.clone() },
        PsiParams { reveal: PsiReveal::BankOnly, ..base.clone() },
        PsiParams { min_intersection: 1, ..base.clone() },
    ];
    for other in others {
        let ((g, _), (b, _)) = run(&gov, &bank, &base, &other);
        for r in [g, b] {
            let err = r.expect_err("mismatched parameters must abort");
            assert!(matches!(&err, Error::Mismatch { what: "PSI parameters", .. }), "{err}");
        }
    }
}

#[test]
fn repeated_ids_passed_to_intersect_are_refused() {
    let (gov, mut bank) = sets(6, 5, 5, 5);
    bank.push(bank[3].clone());
    let p = params(PsiReveal::Both, 0);
    let ((g, _), (b, _)) = run(&gov, &bank, &p, &p);
    assert!(matches!(b, Err(Error::Input(InputError::RepeatedIds { who: "the bank" }))), "{b:?}");
    // The gov is told only the kind of the bank's failure (its own input), not the message.
    let notice = Error::Input(InputError::RepeatedIds { who: "the bank" }).peer_notice();
    assert!(matches!(g, Err(Error::PeerAbort(ref m)) if *m == format!("psi: {notice}")), "{g:?}");

    let (mut gov, bank) = sets(6, 5, 5, 5);
    gov.push(gov[0].clone());
    let ((g, _), (b, _)) = run(&gov, &bank, &p, &p);
    assert!(matches!(b, Err(Error::Peer(PeerError::DuplicateTag { .. }))), "{b:?}");
    assert!(g.is_err());
}
