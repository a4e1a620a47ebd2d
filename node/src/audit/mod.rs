//! The auditor's view of a job: signed, hash-chained transcripts (schema in `SCHEMA.md`), their
//! verification, the cross-check of both nodes' transcripts, and readable reports.
//!
//! Job runner wiring, per node and job:
//! 1. `TranscriptWriter::create(path, manifest, &node_key, capture)` before the first frame;
//! 2. `channel.set_observer(writer.observer())`, `channel.set_phase("setup")`,
//!    `exchange_manifest_digest(&mut channel, &manifest)?`;
//! 3. per phase: `channel.set_phase(name)`, run the protocol, recording `writer.reveal(..)` for
//!    every value that leaves a party (both nodes record it, in the phase), then
//!    `writer.end_phase(&mut channel, name, None)?`: both nodes sign everything so far;
//! 4. a job that ran to its end: `writer.end_phase(&mut channel, "finish", Some(&outcome))?`, then
//!    `writer.outcome(outcome)`; a failed job: `writer.outcome(Outcome::failed(..))`.

pub mod checkup_report;
pub mod cli;
pub mod model_report;
pub mod record;
pub mod report;
pub mod verify;
pub mod writer;

pub use record::{
    DatasetInfo, MANIFEST_KIND, Manifest, NodeHashes, NodeInfo, Outcome, PHASE_HEAD_KIND, PHASE_SIG_KIND, PhaseHeads,
    PhaseSignatures, Policies, Record, Reveal, SCHEMA, ScoreHist, ScorecardBin, ScorecardFeature, Status, value_hash,
};
pub use verify::{Check, Comparison, Failure, RevealInfo, Transcript, Verification, compare, verify};
pub use writer::{TranscriptWriter, exchange_manifest_digest, payloads_path};
