//! Phase `checkup` (job kind `checkup`): the credit check-up of one entity that asked for it,
//! as a one-page report for the gov. Parameters: `model` (a WOE scorecard approved for scoring
//! whose blocks their owners know, i.e. not `model_shared`), `entity` (its id) and `consent`
//! (the reference of its consent, required; recorded in both transcripts' manifests and in both
//! outcomes). The bank needs the id too: the check-up is the entity's own request, made to both.
//! It counts as one scored entity against each node's `policy.score_budget_per_day`; no PSI runs.
//!
//! 1. Both agree on the model (a digest of its public parts) and check the day's budget.
//! 2. Each looks the entity up in its own dataset and tells the peer whether it holds it (one
//!    bit each way); if either lacks it, the job fails before anything is opened.
//! 3. The bank opens to the gov, under rule `checkup_to_gov`, one number: its block's points for
//!    the entity plus the model's base points, offset − factor·(a·(x_b·w_b + bias) + b) (its
//!    rows of the scorecard table applied to the entity).
//! 4. The gov adds its own columns' points, grouped into the dimensions of its dataset's
//!    `dimensions` config, compares each with the same dimension over all its rows, and lists
//!    the moves of one column to a better bin that gain the most ([`models::checkup`]). It writes
//!    `<job_dir>/checkup.html` (owner-only) and puts the same facts in its outcome (`checkup`).
//!
//! What each party learns: the gov, whether the bank holds the entity, and that one number (so
//! the entity's total points and grade); nothing per bank column. The bank, whether the gov holds
//! the entity; nothing of the result (not the points, not the grade).

use anyhow::anyhow;
use models::checkup::{CheckupInput, checkup, group_dimensions};
use models::secure_lr::ModelReveal;
use protocol::disclose::Grant;
use protocol::{Channel, Role};

use super::score::{SCORED_ENTITIES, agree_on_model, check_budget, scoring_model};
use super::{add_warnings, load_dataset, prepare_ids};
use crate::audit::checkup_report;
use crate::jobs::failure::{JobContext, JobError, Result, input};
use crate::jobs::runner::PhaseContext;
use crate::jobs::spec::{CheckupJobParams, Reveal};

/// Policy rule of the one value a check-up opens.
pub const RULE: &str = Reveal::CheckupToGov.as_str();
/// The report's file name in the gov's job directory.
pub const REPORT_FILE: &str = "checkup.html";
/// Largest magnitude of the bank's points the gov accepts.
const MAX_POINTS: f64 = 1e9;

/// Whether `holder` holds the check-up's entity (one bit), to the other node: each node opens it
/// before anything else, so a check-up of an entity one node lacks stops there.
fn found_grant(holder: Role) -> Grant {
    Grant::new(
        &format!("checkup_{holder}_holds_entity"),
        RULE,
        format!("whether the {holder} holds the one entity of the check-up (one bit), to the {}", holder.peer()),
    )
}

fn grant() -> Grant {
    Grant::new(
        "checkup_bank_points",
        RULE,
        "the bank block's points (with the base points) of the one entity of the check-up, to the gov",
    )
}

pub fn run(ctx: &mut PhaseContext<'_>, ch: &mut Channel, params: &CheckupJobParams) -> Result<()> {
    let entity = params.entity.clone().context("params.entity is missing")?;
    let consent = params.consent.clone().context("params.consent is missing")?;
    ctx.outcome.insert("entity".into(), entity.clone().into());
    ctx.outcome.insert("consent".into(), consent.clone().into());
    let saved = scoring_model(ctx)?;
    let art = &saved.artifact;
    let own = art.block(ctx.role);
    let (Some(woe), Some(weights), false) = (&own.woe, &own.weights, art.reveal == ModelReveal::None) else {
        return Err(input(anyhow!(
            "model '{}' cannot explain a check-up: it needs a WOE scorecard (train params.model = \"woe_scorecard\", \
             the default) whose blocks their owners know (reveal \"model_to_owners\" or \"model_to_both\")",
            saved.job_id
        )));
    };
    agree_on_model(ch, &saved)?;
    check_budget(ctx, &saved.job_id, 1)?;
    let id = protocol::ids::normalize(ctx.dataset.id_kind, &entity)
        .map_err(|why| input(anyhow!("params.entity: the id {why}")))?;
    let data = load_dataset(ctx, &own.input_columns(), None)?;
    let prepared = prepare_ids(ctx, &data, ctx.spec.common.skip_invalid_ids())?;
    let row = prepared.ids.iter().position(|i| *i == id).map(|i| prepared.rows[i]);
    // Gov first, then bank: both nodes record the two openings in the same order.
    let here = [u8::from(row.is_some())];
    let peer_found = match ctx.role {
        Role::Gov => {
            ch.reveal_send(&found_grant(Role::Gov), &here)?;
            ch.reveal_recv(&found_grant(Role::Bank), 1)? == [1]
        }
        Role::Bank => {
            let gov_found = ch.reveal_recv(&found_grant(Role::Gov), 1)? == [1];
            ch.reveal_send(&found_grant(Role::Bank), &here)?;
            gov_found
        }
    };
    let Some(row) = row else {
        return Err(input(anyhow!(
            "entity '{entity}' (params.entity) is not in dataset '{}' (datasets.{}.path)",
            ctx.dataset_name,
            ctx.dataset_name
        )));
    };
    if !peer_found {
        return Err(input(anyhow!(
            "the {} does not hold entity '{entity}': a check-up needs the entity at both nodes",
            ctx.role.peer()
        )));
    }
    ctx.outcome.insert(SCORED_ENTITIES.into(), 1.into());
    let (sc, cal) = (&art.scorecard, art.calibration);
    match ctx.role {
        Role::Bank => {
            let bias = art.bias.context("the bank's model file lacks the bias")?;
            let cols = own.features.len();
            let x = woe.apply_dataset(&data);
            let partial: f64 = x[row * cols..(row + 1) * cols].iter().zip(weights).map(|(v, w)| v * w).sum();
            let points = sc.offset() - sc.factor() * (cal.a * (partial + bias) + cal.b);
            ch.reveal_send(&grant(), &points.to_le_bytes())?;
            ctx.outcome.insert("disclosed".into(), "the gov learned this entity's financial behaviour points".into());
            ctx.progress(1.0, "the gov has the entity's financial behaviour points");
        }
        Role::Gov => {
            let bytes = ch.reveal_recv(&grant(), 8)?;
            let bank_points = bytes.try_into().map(f64::from_le_bytes).unwrap_or(f64::NAN);
            if !(bank_points.is_finite() && bank_points.abs() <= MAX_POINTS) {
                return Err(protocol::PeerError::Inconsistent {
                    what: format!("the bank's points for the check-up are not a number within ±{MAX_POINTS:e}"),
                }
                .into());
            }
            let (dims, warnings) = group_dimensions(&woe.features(), &ctx.dataset.dimensions)
                .map_err(|e| input(anyhow!("datasets.{}.{e}", ctx.dataset_name)))?;
            add_warnings(ctx, warnings);
            let bins = woe.bins_dataset(&data);
            let report = checkup(&CheckupInput {
                woe,
                weights,
                calibration_a: cal.a,
                scorecard: sc,
                bins: &bins,
                entity: row,
                bank_points,
                dimensions: &dims,
            })
            .map_err(|e| JobError::Internal(anyhow!("model '{}': {e}", saved.job_id)))?;
            let page = checkup_report::Page {
                entity: &entity,
                consent: &consent,
                model: &saved.job_id,
                job: ctx.job_id,
                population: ctx.dataset_name,
                checkup: &report,
            };
            let path = ctx.job_dir.join(REPORT_FILE);
            ctx.write_on_success(path.clone(), checkup_report::html(&page).into_bytes());
            ctx.outcome.insert("points".into(), report.points.into());
            ctx.outcome.insert("grade".into(), report.grade.clone().into());
            ctx.outcome.insert("checkup".into(), serde_json::to_value(&report)?);
            ctx.outcome.insert("report_file".into(), path.display().to_string().into());
            ctx.progress(1.0, &format!("grade {} ({} points)", report.grade, report.points));
        }
    }
    Ok(())
}
