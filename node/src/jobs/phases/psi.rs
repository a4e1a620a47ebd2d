//! Phase `psi`: aligns the two datasets by PSI on their entity ids, with the protocol of
//! `params.psi_protocol`: VOLE-PSI ([`protocol::psi_vole`], the default unless only the size is
//! revealed) or ECDH-PSI ([`protocol::psi`]). Both give each node the same rows and learn the same.
//!
//! Each node loads its dataset (the job side's columns, and the label at the bank of a train job),
//! normalises and checks the ids (`params.skip_invalid_ids` skips bad or repeated ones instead of
//! failing), then both run PSI with the job id as domain and the job's PSI reveal mode:
//! - `intersection_ids`: both learn their aligned rows; each writes `<job_dir>/intersection.csv`
//!   (its own ids, aligned order) and hands [`Aligned`] to the next phase;
//! - `intersection_ids_to_bank`: only the bank learns (and writes) them; the gov learns the size;
//! - `intersection_size`: both learn the size only.
//!
//! With `intersection_ids`, both nodes first agree on the job's *audit key* by Diffie–Hellman
//! over Ristretto255 ([`agree_audit_key`]) and keep it in `<job_dir>/audit.key` (hex, owner-only).
//! The `intersection_ids` reveal records are hashed with it (keyed BLAKE3), so a transcript alone
//! does not let an auditor confirm a guessed intersection; the operators give the key to an
//! auditor who should be able to.
//!
//! Both nodes also learn both dataset row counts and id-set sizes (PSI needs the set sizes).
//!
//! When fewer than half of a node's ids are in the intersection and its own ids look like numbers
//! whose zero padding may differ from the peer's ([`protocol::ids::IdFormat`]), its outcome gets a
//! warning naming that likely cause (and so does the error of a job stopped by
//! `min_intersection`). It is computed from the node's own ids and the intersection size it
//! already learns: nothing more is exchanged.
//! A score job of target `ids` or `session` runs no PSI: the phase does nothing.

use crate::jobs::failure::{JobError, Result};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use models::dataset::Dataset;
use protocol::psi::{PsiParams, PsiReveal};
use protocol::{Channel, Role};
use zeroize::Zeroizing;

use super::{load_dataset, os_rng, prepare_ids, reveal_joint, reveal_joint_hash, write_csv};
use crate::jobs::runner::PhaseContext;
use crate::jobs::spec::Reveal;

/// This node's rows of the intersection, in the order both nodes share.
pub struct Aligned {
    /// The dataset restricted to the intersection, aligned: row i here and row i at the peer are
    /// the same entity.
    pub data: Dataset,
    /// Normalised ids of `data`'s rows.
    pub ids: Vec<String>,
}

pub fn run(ctx: &mut PhaseContext<'_>, ch: &mut Channel) -> Result<()> {
    if !ctx.spec.params.runs_psi() {
        ctx.progress(1.0, "not needed: named ids are scored by private lookup");
        return Ok(());
    }
    ctx.progress(0.0, "reading ids");
    let side = ctx.spec.side(ctx.role);
    let data = load_dataset(ctx, &side.columns, side.label.as_deref())?;
    let prepared = prepare_ids(ctx, &data, ctx.spec.common.skip_invalid_ids())?;
    ctx.outcome.insert("ids_invalid_skipped".into(), prepared.skipped_invalid.into());
    ctx.outcome.insert("ids_duplicate_skipped".into(), prepared.skipped_duplicate.into());
    ctx.progress(0.1, &format!("{} ids here; intersecting", prepared.ids.len()));

    let mode = ctx.spec.psi_reveal()?;
    let psi_protocol = ctx.spec.psi_protocol()?;
    ctx.outcome.insert("psi_protocol".into(), psi_protocol.as_str().into());
    let psi_params =
        PsiParams { domain: ctx.job_id.to_string(), reveal: mode, min_intersection: ctx.spec.min_intersection };
    // Local facts only (nothing is sent): explains a small intersection by the ids' format.
    let format = protocol::ids::IdFormat::of(data.ids.iter().map(String::as_str));
    let out = psi_protocol.intersect(ch, &prepared.ids, &psi_params, &mut os_rng()).map_err(|e| {
        let below_minimum = matches!(&e, protocol::Error::Input(protocol::InputError::BelowMinimum { .. }));
        match format.padding_cause().filter(|_| below_minimum) {
            Some(cause) => {
                JobError::from(e).context(format!("possible cause: dataset '{}': {cause}", ctx.dataset_name))
            }
            None => e.into(),
        }
    })?;
    if let Some(w) = format.mismatch_warning(out.size) {
        super::add_warnings(ctx, [format!("dataset '{}': {w}", ctx.dataset_name)]);
    }
    ctx.outcome.insert("intersection_size".into(), out.size.into());
    let size = out.size as u64;
    let rule = Reveal::Psi(mode);
    reveal_joint(ctx, "intersection_size", &size.to_le_bytes(), &format!("{size} common ids"), rule)?;
    match mode {
        PsiReveal::Both => {
            // Both know the matched (normalised) ids in the same order.
            let ids: Vec<&str> =
                out.rows.as_deref().unwrap_or_default().iter().map(|&i| prepared.ids[i].as_str()).collect();
            let summary =
                format!("each node learns which of its ids are among the {size} common ones, in aligned order");
            let key = agree_audit_key(ctx, ch)?;
            let hash = *blake3::keyed_hash(&key, ids.join("\n").as_bytes()).as_bytes();
            reveal_joint_hash(ctx, "intersection_ids", hash, &summary, rule)?;
        }
        PsiReveal::BankOnly => {
            let summary = format!("the bank learns which of its ids are among the {size} common ones");
            ctx.reveal("intersection_ids", &[], &summary, Role::Gov, rule)?;
        }
        PsiReveal::SizeOnly => {}
    }
    if let Some(matched) = out.rows {
        let rows: Vec<usize> = matched.iter().map(|&i| prepared.rows[i]).collect();
        let aligned =
            Aligned { data: data.select_rows(&rows), ids: matched.iter().map(|&i| prepared.ids[i].clone()).collect() };
        let path = ctx.job_dir.join("intersection.csv");
        write_csv(
            ctx,
            path.clone(),
            &["id", "line"],
            aligned.data.ids.iter().zip(&aligned.data.id_lines).map(|(id, line)| [id.clone(), line.to_string()]),
        )?;
        ctx.outcome.insert("intersection_file".into(), path.display().to_string().into());
        ctx.artifacts.aligned = Some(aligned);
    }
    ctx.progress(1.0, &format!("{size} common ids"));
    Ok(())
}

/// File of the job's audit key in its job directory.
pub const AUDIT_KEY_FILE: &str = "audit.key";

/// Frame kind of the audit key exchange.
const AUDIT_KEY_KIND: &str = "psi.audit_key";

/// The job's audit key, agreed with the peer and written to `<job_dir>/audit.key` (64 hex
/// digits, mode 0600). Each node sends `a·G` for a fresh secret scalar `a`; the key is
/// `BLAKE3-derive-key("tandem intersection_ids audit key v1", len ‖ job id ‖ A_gov ‖ A_bank ‖ a·B)`
/// (`len` a u64 LE). The peer learns only a random group element; the transcript holds the two
/// public points, from which the key cannot be computed (CDH in Ristretto255).
pub fn agree_audit_key(ctx: &PhaseContext<'_>, ch: &mut Channel) -> Result<Zeroizing<[u8; 32]>> {
    let secret = Zeroizing::new(Scalar::random(&mut os_rng()));
    let mine = RistrettoPoint::mul_base(&secret).compress();
    ch.send_frame(AUDIT_KEY_KIND, mine.to_bytes().to_vec())?;
    let bad = |reason: &str| protocol::PeerError::Decode { kind: AUDIT_KEY_KIND.into(), reason: reason.into() };
    let theirs: [u8; 32] = ch.recv_frame(AUDIT_KEY_KIND)?.try_into().map_err(|_| bad("a public key is 32 bytes"))?;
    let point = CompressedRistretto(theirs).decompress().ok_or_else(|| bad("not a Ristretto255 point"))?;
    if point == RistrettoPoint::identity() {
        return Err(bad("the identity is not a public key").into());
    }
    let shared = Zeroizing::new((*secret * point).compress().to_bytes());
    let (gov, bank) = match ctx.role {
        Role::Gov => (mine.to_bytes(), theirs),
        Role::Bank => (theirs, mine.to_bytes()),
    };
    let mut material = Zeroizing::new(Vec::with_capacity(8 + ctx.job_id.len() + 96));
    material.extend_from_slice(&(ctx.job_id.len() as u64).to_le_bytes());
    material.extend_from_slice(ctx.job_id.as_bytes());
    material.extend_from_slice(&gov);
    material.extend_from_slice(&bank);
    material.extend_from_slice(shared.as_ref());
    let key = Zeroizing::new(blake3::derive_key("tandem intersection_ids audit key v1", &material));
    let path = ctx.job_dir.join(AUDIT_KEY_FILE);
    crate::identity::write_private(&path, Zeroizing::new(hex::encode(key.as_ref())).as_bytes())?;
    Ok(key)
}

/// The aligned rows from the `psi` phase (kinds that need `intersection_ids`).
pub fn take_aligned(ctx: &mut PhaseContext<'_>) -> Result<Aligned> {
    Ok(ctx.artifacts.aligned.take().ok_or_else(|| {
        anyhow::anyhow!("this node did not learn the aligned rows: the job needs reveal \"intersection_ids\"")
    })?)
}
