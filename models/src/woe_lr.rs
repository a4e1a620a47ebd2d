//! The WOE scorecard: each party bins its own columns and replaces each value by its bin's
//! weight of evidence ([`crate::binning`]), then the WOE columns are the parties' feature blocks
//! of secure logistic regression ([`crate::secure_lr`]).
//!
//! The gov's per-bin event counts need the bank's label: [`gov_event_counts`] computes them as
//! the gov's plaintext bin-indicator matrix (training rows × bins) times the bank's label with
//! the engine's `cross_gram` (a homomorphic product of the bank's −y and the gov's 0/1
//! indicators), and opens the counts to the gov only, under rule [`WOE_TO_OWNER`]. The
//! per-bin totals are the gov's own.
//!
//! What each party learns:
//! - the gov: the number of events (label 1) among the training rows in each of its own bins,
//!   hence its bins' event rates, WOE and IV, and the total event count of the training rows;
//!   nothing per row, nothing about the bank's columns;
//! - the bank: the number of the gov's bins (announced in the clear so both run the same
//!   product) and nothing else (it computes its own bins' counts in plaintext);
//! - from the trained model, what [`crate::secure_lr`] states.

use protocol::disclose::Grant;
use protocol::mpc::{Engine, PlainMatrix};
use protocol::{Error, InputError, PeerError, Result, Role};
use serde::{Deserialize, Serialize};

use crate::binning::{BinCounts, BinningParams, ColumnBins, WoeTransform};
use crate::reference::{LinearModel, TrainParams, train_reference};
use crate::secure_lr::{ModelArtifact, PartyData, TrainJob, TrainOutput, secure_train};

/// Policy rule under which the gov learns its bins' event counts.
pub const WOE_TO_OWNER: &str = "woe_to_owner";
/// Most bins the bank accepts from the gov for the secure count.
pub const MAX_GOV_BINS: usize = 1 << 14;
/// Training rows per homomorphic product of [`gov_event_counts`].
const WOE_CHUNK_ROWS: usize = 1 << 14;

/// Shares of nothing: the gov's event counts per bin, column by column (Some at the gov, None at
/// the bank). `bins`/`rows`: the gov's column bins and each training row's bin per column (the
/// bank passes empty slices); `labels`: the bank's 0/1 labels of the same training rows, in the
/// same order (None at the gov); `n_train` the public number of training rows.
pub fn gov_event_counts(
    engine: &mut Engine,
    bins: &[ColumnBins],
    rows: &[Vec<usize>],
    labels: Option<&[f64]>,
    n_train: usize,
) -> Result<Option<Vec<Vec<u64>>>> {
    let me = engine.role();
    let total = match me {
        Role::Gov => {
            let total: usize = bins.iter().map(ColumnBins::len).sum();
            engine.channel().send("woe-gov-bins", &(total as u64))?;
            total
        }
        Role::Bank => {
            let total: u64 = engine.channel().recv("woe-gov-bins")?;
            if total == 0 || total > MAX_GOV_BINS as u64 {
                return Err(PeerError::BadCount {
                    what: "'woe-gov-bins'".into(),
                    got: total,
                    allowed: format!("1 to {MAX_GOV_BINS} bins"),
                }
                .into());
            }
            total as usize
        }
    };
    if me == Role::Bank && labels.is_none_or(|y| y.len() != n_train) {
        return Err(Error::Input(InputError::Usage {
            op: "woe",
            detail: format!("the bank needs {n_train} training labels"),
        }));
    }
    if me == Role::Gov
        && let Some((col, assigned)) = bins.iter().zip(rows).find(|(_, a)| a.len() != n_train)
    {
        return Err(Error::Input(InputError::Usage {
            op: "woe",
            detail: format!("column '{}': {} rows, not {n_train}", col.feature, assigned.len()),
        }));
    }
    // −Σ_r y_r·[bin(r) = k] per gov bin k, summed over row chunks (so the gov's one-hot
    // indicator matrix is never held for all rows at once: 8 bytes per row and bin).
    let mut neg = vec![0u64; total];
    for r0 in (0..n_train).step_by(WOE_CHUNK_ROWS) {
        let r1 = (r0 + WOE_CHUNK_ROWS).min(n_train);
        let own = match (me, labels) {
            (Role::Bank, Some(y)) => {
                PlainMatrix { rows: r1 - r0, cols: 1, data: y[r0..r1].iter().map(|&l| (-(l as i64)) as u64).collect() }
            }
            _ => {
                let mut m = PlainMatrix { rows: r1 - r0, cols: total, data: vec![0; (r1 - r0) * total] };
                let mut first = 0;
                for (col, assigned) in bins.iter().zip(rows) {
                    for (r, &b) in assigned[r0..r1].iter().enumerate() {
                        m.data[r * total + first + b] = 1;
                    }
                    first += col.len();
                }
                m
            }
        };
        let part = engine.cross_gram(Role::Bank, &own, r1 - r0, 1, total, 1, 2)?;
        neg.iter_mut().zip(part).for_each(|(t, v)| *t = t.wrapping_add(v));
    }
    let grant = Grant::new(
        "woe_gov_event_counts",
        WOE_TO_OWNER,
        format!("event counts of the training rows in each of the gov's {total} bins, to the gov"),
    );
    let Some(opened) = engine.reveal_to(&grant, Role::Gov, &neg)? else { return Ok(None) };
    let counts: Vec<u64> = opened.iter().map(|v| v.wrapping_neg()).collect();
    let mut out = Vec::with_capacity(bins.len());
    let mut first = 0;
    for (col, assigned) in bins.iter().zip(rows) {
        let mut totals = vec![0u64; col.len()];
        assigned.iter().for_each(|&b| totals[b] += 1);
        let events = counts[first..first + col.len()].to_vec();
        if events.iter().zip(&totals).any(|(e, t)| e > t) {
            return Err(PeerError::Inconsistent {
                what: format!("opened event counts of column '{}' exceed its bins' rows", col.feature),
            }
            .into());
        }
        out.push(events);
        first += col.len();
    }
    Ok(Some(out))
}

/// Fits this party's WOE transform on its training rows `train_rows` of `x` (rows × `names`,
/// NaN = missing; `levels` per column as in the dataset). The bank passes its labels (of all
/// rows) and counts its own bins; the gov's counts come from [`gov_event_counts`]. Both parties
/// call this together, with the same `train_rows`.
pub fn fit_woe(
    engine: &mut Engine,
    names: &[String],
    levels: &[Option<Vec<String>>],
    x: &[f64],
    labels: Option<&[f64]>,
    train_rows: &[usize],
    params: &BinningParams,
) -> Result<WoeTransform> {
    params.validate().map_err(|e| Error::Input(InputError::Param(e)))?;
    let me = engine.role();
    engine.channel().set_phase("woe-bins");
    let train_labels: Option<Vec<f64>> = labels.map(|y| train_rows.iter().map(|&r| y[r]).collect());
    WoeTransform::fit(names, levels, x, train_rows, params, |bins, rows| match me {
        Role::Bank => {
            let y = train_labels.as_deref().ok_or_else(|| {
                Error::Input(InputError::Usage { op: "woe", detail: "the bank needs its labels".into() })
            })?;
            gov_event_counts(engine, &[], &[], Some(y), train_rows.len())?;
            Ok(bins.iter().zip(rows).map(|(b, r)| BinCounts::count(r, y, b.len()).events).collect())
        }
        Role::Gov => gov_event_counts(engine, bins, rows, None, train_rows.len())?
            .ok_or_else(|| PeerError::Inconsistent { what: "the gov received no event counts".into() }.into()),
    })
}

/// Plaintext WOE transform of one party's columns with plaintext labels: the reference the
/// secure fit must equal.
pub fn fit_woe_plain(
    names: &[String],
    levels: &[Option<Vec<String>>],
    x: &[f64],
    labels: &[f64],
    train_rows: &[usize],
    params: &BinningParams,
) -> std::result::Result<WoeTransform, String> {
    params.validate()?;
    let y: Vec<f64> = train_rows.iter().map(|&r| labels[r]).collect();
    WoeTransform::fit(names, levels, x, train_rows, params, |bins, rows| {
        Ok::<_, String>(bins.iter().zip(rows).map(|(b, r)| BinCounts::count(r, &y, b.len()).events).collect())
    })
}

/// One party's raw input to a WOE scorecard.
#[derive(Clone, Copy, Debug)]
pub struct WoeParty<'a> {
    /// Raw values, aligned rows × `columns`, row-major; NaN = missing, level index for a
    /// categorical column.
    pub x: &'a [f64],
    pub columns: &'a [String],
    /// Per column: Some(levels) for a categorical column.
    pub levels: &'a [Option<Vec<String>>],
    /// 0/1 labels per aligned row: Some at the bank, None at the gov.
    pub label: Option<&'a [f64]>,
}

/// Trains a WOE scorecard: [`fit_woe`] on the training rows, then [`secure_train`] on the WOE
/// values of each party's selected columns. The artifact keeps this party's WOE transform in its
/// own block. What each party learns: the module docs, then [`crate::secure_lr`].
pub fn secure_train_woe(
    engine: &mut Engine,
    party: &WoeParty,
    job: &TrainJob,
    binning: &BinningParams,
) -> Result<TrainOutput> {
    let me = engine.role();
    let cols = party.columns.len();
    if cols == 0 || !party.x.len().is_multiple_of(cols) || party.levels.len() != cols {
        return Err(Error::Input(InputError::Usage {
            op: "woe",
            detail: format!(
                "raw matrix of {} values, {cols} columns and {} level lists do not fit",
                party.x.len(),
                party.levels.len()
            ),
        }));
    }
    let rows = party.x.len() / cols;
    if let Some(&r) = job.train_rows.iter().find(|&&r| r >= rows) {
        return Err(Error::Input(InputError::Usage {
            op: "woe",
            detail: format!("train row {r} is out of range: there are {rows} aligned rows"),
        }));
    }
    // Both must bin with the same parameters (the training job digest covers the rest).
    let digest = *blake3::hash(&serde_json::to_vec(binning).expect("parameters serialise")).as_bytes();
    engine.channel().set_phase("woe-setup");
    engine.channel().send("woe-setup", &digest)?;
    let theirs: [u8; 32] = engine.channel().recv("woe-setup")?;
    if theirs != digest {
        return Err(Error::Mismatch {
            what: "binning parameters",
            detail: "both nodes must run the same job definition".into(),
        });
    }
    let woe = fit_woe(engine, party.columns, party.levels, party.x, party.label, job.train_rows, binning)?;
    let features = woe.features();
    let x = woe.apply(party.x);
    let data = PartyData { x: &x, features: &features, standardizer: None, label: party.label };
    let mut out = secure_train(engine, &data, job)?;
    out.artifact.block_mut(me).woe = Some(woe);
    Ok(out)
}

/// One bin of a scorecard table row: null where this node may not see the value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableBin {
    pub bin: String,
    pub count: u64,
    pub woe: Option<f64>,
    pub points: Option<f64>,
}

/// One feature of the scorecard table (`scorecard_table` of a train job's outcome).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    pub owner: Role,
    pub feature: String,
    pub iv: Option<f64>,
    pub bins: Vec<TableBin>,
}

/// Name of the bank's row holding the points every entity gets.
pub const BASE_POINTS: &str = "(base points)";

/// The scorecard table as this party knows it: its own columns with bins, counts, WOE and IV
/// (columns left out by `min_iv` with IV and no points), the peer's selected features by name
/// only. Points per attribute where this party knows its weights: with calibration a, b, weight
/// w_j and WOE v_jk, points_jk = −factor·a·w_j·v_jk, and the bank's [`BASE_POINTS`] row holds
/// offset − factor·(a·bias + b), so an entity's points summed over both parties' rows are the
/// scorecard points offset − factor·(a·z + b) of its logit z.
pub fn scorecard_table(artifact: &ModelArtifact) -> Vec<TableRow> {
    let me = artifact.role;
    let (sc, cal) = (&artifact.scorecard, artifact.calibration);
    let mut table = Vec::new();
    for owner in [Role::Gov, Role::Bank] {
        let block = artifact.block(owner);
        match block.woe.as_ref().filter(|_| owner == me) {
            Some(woe) => {
                let mut selected = 0;
                for col in &woe.columns {
                    let w = col.selected.then(|| block.weights.as_ref().map(|w| w[selected])).flatten();
                    selected += col.selected as usize;
                    let bins = (0..col.bins.len())
                        .filter(|&k| col.counts.totals[k] > 0 || k < col.bins.value_bins())
                        .map(|k| TableBin {
                            bin: col.bins.bin_name(k),
                            count: col.counts.totals[k],
                            woe: Some(col.woe[k]),
                            points: w.map(|w| -sc.factor() * cal.a * w * col.woe[k]),
                        })
                        .collect();
                    table.push(TableRow { owner, feature: col.bins.feature.clone(), iv: Some(col.iv), bins });
                }
            }
            None => table.extend(block.features.iter().map(|f| TableRow {
                owner,
                feature: f.clone(),
                iv: None,
                bins: Vec::new(),
            })),
        }
    }
    if let Some(bias) = artifact.bias.filter(|_| me == Role::Bank) {
        let points = sc.offset() - sc.factor() * (cal.a * bias + cal.b);
        table.push(TableRow {
            owner: Role::Bank,
            feature: BASE_POINTS.into(),
            iv: None,
            bins: vec![TableBin { bin: "all".into(), count: artifact.n_train as u64, woe: None, points: Some(points) }],
        });
    }
    table
}

/// The plaintext WOE scorecard of [`train_woe_reference`].
#[derive(Clone, Debug)]
pub struct WoeReference {
    pub gov: WoeTransform,
    pub bank: WoeTransform,
    /// Joint WOE values (gov ‖ bank selected columns) of every aligned row, row-major.
    pub joint: Vec<f64>,
    /// Uncalibrated.
    pub model: LinearModel,
}

/// Plaintext reference of the WOE scorecard: both parties' WOE transforms fitted with the bank's
/// labels in the clear ([`fit_woe_plain`]), then [`train_reference`] on the joint WOE values
/// (gov ‖ bank), the same algorithm and batches as the secure trainer.
pub fn train_woe_reference(
    gov: &WoeParty,
    bank: &WoeParty,
    train_rows: &[usize],
    params: &TrainParams,
    binning: &BinningParams,
) -> std::result::Result<WoeReference, String> {
    let y = bank.label.ok_or("the bank's labels are needed")?;
    let g = fit_woe_plain(gov.columns, gov.levels, gov.x, y, train_rows, binning)?;
    let b = fit_woe_plain(bank.columns, bank.levels, bank.x, y, train_rows, binning)?;
    let (gx, bx) = (g.apply(gov.x), b.apply(bank.x));
    let (gc, bc) = (g.features().len(), b.features().len());
    let joint: Vec<f64> =
        gx.chunks_exact(gc).zip(bx.chunks_exact(bc)).flat_map(|(p, q)| p.iter().chain(q).copied()).collect();
    let model = train_reference(&joint, gc + bc, y, train_rows, params, false);
    Ok(WoeReference { gov: g, bank: b, joint, model })
}
