//! What the PSI tests share: sets with a known intersection and the check of both outputs
//! against the intersection computed here.
#![allow(dead_code)]

use std::collections::HashSet;

use protocol::psi::{PsiOutput, PsiParams, PsiReveal};
use protocol::{Result, Stats};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

pub fn params(reveal: PsiReveal, min_intersection: u64) -> PsiParams {
    PsiParams { domain: "job-2026-0001".into(), reveal, min_intersection }
}

pub type Outcome = (Result<PsiOutput>, Stats);

/// Gov and bank sets drawn from one pool: `common` shared IDs plus private ones, shuffled.
pub fn sets(seed: u64, only_gov: usize, only_bank: usize, common: usize) -> (Vec<String>, Vec<String>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut pool = HashSet::new();
    while pool.len() < only_gov + only_bank + common {
        pool.insert(format!("ID{:016X}", rng.random::<u64>()));
    }
    let mut pool: Vec<String> = pool.into_iter().collect();
    pool.sort();
    pool.shuffle(&mut rng);
    let mut gov: Vec<String> = pool[..only_gov + common].to_vec();
    let mut bank: Vec<String> = pool[only_gov..].to_vec();
    gov.shuffle(&mut rng);
    bank.shuffle(&mut rng);
    (gov, bank)
}

/// Maps rows back to IDs and checks that they list exactly `gov ∩ bank` with no repeats.
pub fn ids_of(rows: &[usize], ids: &[String], expected: &HashSet<&str>) -> Vec<String> {
    let got: Vec<String> = rows.iter().map(|&r| ids[r].clone()).collect();
    let as_set: HashSet<&str> = got.iter().map(String::as_str).collect();
    assert_eq!(as_set.len(), got.len(), "rows repeat an entity");
    assert_eq!(&as_set, expected, "rows are not the intersection");
    got
}

/// Runs a PSI (`run` with the parameters of `reveal`) and checks both outputs against the
/// intersection computed here.
pub fn check(
    gov: &[String],
    bank: &[String],
    reveal: PsiReveal,
    run: impl FnOnce(&PsiParams) -> (Outcome, Outcome),
) -> (Stats, Stats) {
    let p = params(reveal, 0);
    let ((g, gs), (b, bs)) = run(&p);
    let (g, b) = (g.expect("gov PSI"), b.expect("bank PSI"));
    let bank_set: HashSet<&str> = bank.iter().map(String::as_str).collect();
    let expected: HashSet<&str> = gov.iter().map(String::as_str).filter(|id| bank_set.contains(id)).collect();
    assert_eq!((g.size, b.size), (expected.len(), expected.len()));
    match reveal {
        PsiReveal::Both => {
            let g_ids = ids_of(g.rows.as_ref().expect("gov rows"), gov, &expected);
            let b_ids = ids_of(b.rows.as_ref().expect("bank rows"), bank, &expected);
            assert_eq!(g_ids, b_ids, "row i must be the same entity at both parties");
        }
        PsiReveal::BankOnly => {
            assert_eq!(g.rows, None, "gov may only learn the size");
            ids_of(b.rows.as_ref().expect("bank rows"), bank, &expected);
        }
        PsiReveal::SizeOnly => assert_eq!((g.rows, b.rows), (None, None)),
    }
    assert_eq!(gs.bytes_sent, bs.bytes_received);
    (gs, bs)
}

/// The edge cases every PSI protocol must get right, each checked by `check` against the
/// intersection computed here: empty sets, disjoint, identical, reordered (both revealing
/// modes), single elements in and out of the other set, and tiny against large both ways.
pub fn check_edge_cases(check: impl Fn(&[String], &[String], PsiReveal)) {
    let (gov, bank) = sets(7, 40, 30, 0);
    let none: Vec<String> = Vec::new();
    check(&none, &bank, PsiReveal::Both);
    check(&gov, &none, PsiReveal::Both);
    check(&none, &none, PsiReveal::Both);
    check(&gov, &bank, PsiReveal::Both); // disjoint
    check(&gov, &gov, PsiReveal::Both); // identical
    let mut reordered = gov.clone();
    reordered.reverse();
    check(&gov, &reordered, PsiReveal::Both);
    check(&gov, &reordered, PsiReveal::BankOnly);
    check(&gov[..1], &bank, PsiReveal::Both); // single, not in the other set
    check(&bank[5..6], &bank, PsiReveal::Both); // single, in the other set
    check(&gov, &gov[17..18], PsiReveal::Both);
    let (small, large) = sets(8, 2, 20_000, 3);
    check(&small, &large, PsiReveal::Both); // tiny vs large, both ways
    check(&large, &small, PsiReveal::BankOnly);
}
