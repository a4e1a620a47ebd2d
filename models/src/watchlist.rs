//! The government's early-warning list: which aligned entities have a joint probability of
//! default above a public threshold, decided inside MPC.
//!
//! Both parties compute shares of each row's joint logit `z` as in scoring
//! ([`crate::secure_lr::secure_score`]), compare it with the threshold's logit `t = ln(p/(1−p))`
//! (engine `greater_than`: XOR shares of `[z > t]`), turn the flags into arithmetic 0/1 shares
//! and open them to the gov only (grant `watchlist_flags`, rule `watchlist_to_gov`). The bank
//! learns the number of flagged rows (grant `watchlist_count`, same rule): their sum, opened to it.
//!
//! What each party learns (semi-honest): the gov, for every aligned row, one bit: whether the
//! entity's joint PD is above the threshold; nothing about the size of the PD or the bank's
//! block. The bank learns the count of flagged rows, nothing per row (it does not learn which
//! entities the gov flagged). Both learn the public job data (row count, threshold, model).
//! Without the watchlist rule in both nodes' policies the channel's gate refuses both openings.

use protocol::disclose::Grant;
use protocol::mpc::Engine;
use protocol::{Error, InputError, PeerError, Result, Role};

use crate::capped::LOGIT_MAX;
use crate::secure_lr::{ModelArtifact, agreed_logits};

/// The watch list's rule: the gov learns which rows are flagged, the bank how many.
pub const RULE: &str = "watchlist_to_gov";

/// Rows compared per secure comparison batch (well under 1 GB of working memory per party).
const CHUNK_ROWS: usize = 1 << 16;

/// The logit of a PD threshold in (0, 1), checked to lie where secure scoring is exact.
pub fn threshold_logit(pd: f64) -> std::result::Result<f64, String> {
    if !(pd > 0.0 && pd < 1.0) {
        return Err(format!("threshold = {pd}: give a probability of default strictly between 0 and 1, e.g. 0.3"));
    }
    let t = (pd / (1.0 - pd)).ln();
    if t.abs() > LOGIT_MAX / 2.0 {
        return Err(format!(
            "threshold = {pd} is too close to 0 or 1 (logit {t:.1}); use a value in [1e-100, 1 − 1e-16]"
        ));
    }
    Ok(t)
}

/// Flags the aligned rows whose joint PD under `artifact` is above `threshold_pd` (both parties
/// pass the same). `x` is this party's standardised block of the rows (rows × own columns, same
/// rows in the same order at both parties). Returns the flags at the gov and, at the bank, one
/// element per flagged row count: `Flags::Gov(per-row flags)` / `Flags::Bank(count)`.
pub fn secure_watchlist(engine: &mut Engine, artifact: &ModelArtifact, x: &[f64], threshold_pd: f64) -> Result<Flags> {
    let t = threshold_logit(threshold_pd).map_err(|e| Error::Input(InputError::Param(e)))?;
    let (z, bounded) = agreed_logits(engine, artifact, x, "watchlist", &("threshold_pd", threshold_pd))?;
    let n = z.len();
    let fp = engine.fixed();
    // |z − t| < 1.5·LOGIT_MAX when bounded: the comparison needs only f + 12 bits.
    let width = if bounded { fp.frac_bits + LOGIT_MAX.log2() as u32 + 2 } else { 64 };
    // In chunks: the comparison's working memory grows with the rows it compares at once.
    let mut flags = Vec::with_capacity(n);
    for chunk in z.chunks(CHUNK_ROWS) {
        let bits = engine.greater_than(chunk, &[fp.encode(t)], width)?;
        flags.extend(engine.bits_to_arith(&bits, chunk.len())?);
    }
    let flag_grant = Grant::new(
        "watchlist_flags",
        RULE,
        format!("one bit per aligned row ({n}): joint PD above {threshold_pd}, to the gov"),
    );
    let count_grant = Grant::new("watchlist_count", RULE, "the number of flagged rows, to the bank".to_string());
    let opened = engine.reveal_to(&flag_grant, Role::Gov, &flags)?;
    let count = engine.reveal_to(&count_grant, Role::Bank, &[engine.sum(&flags)])?;
    match (opened, count) {
        (Some(flags), None) => {
            if let Some(bad) = flags.iter().find(|&&f| f > 1) {
                return Err(PeerError::OutOfRange {
                    what: "an opened watch-list flag".into(),
                    got: *bad,
                    range: "0..=1".into(),
                }
                .into());
            }
            Ok(Flags::Gov(flags.into_iter().map(|f| f == 1).collect()))
        }
        (None, Some(c)) if c[0] <= n as u64 => Ok(Flags::Bank(c[0] as usize)),
        (None, Some(c)) => {
            Err(PeerError::OutOfRange { what: "the opened flag count".into(), got: c[0], range: format!("0..={n}") }
                .into())
        }
        _ => unreachable!("reveal_to returns the value at exactly its recipient"),
    }
}

/// What [`secure_watchlist`] gives each party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flags {
    /// At the gov: per aligned row, whether it is flagged.
    Gov(Vec<bool>),
    /// At the bank: how many rows are flagged.
    Bank(usize),
}
