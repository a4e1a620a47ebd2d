//! The auditor's view of a job: signed, hash-chained transcripts (schema in `SCHEMA.md`), their
//! verification, the cross-check of both nodes' transcripts, and readable reports.
//!
//! Job runner wiring, per node and job:
//! 1. `TranscriptWriter::create(path, manifest, &node_key, capture)` before the first frame;
//! 2. `channel.set_observer(writer.observer())`, `channel.set_phase("setup")`,
//!    `exchange_manifest_digest(&mut channel, &manifest)?`;
//! 3. per phase: `channel.set_phase(name)`, run the protocol, then
//!    `writer.phase_end(exchange_phase_signatures(&mut channel, job_id, name, &node_key, &peer_key)?)?`;
//! 4. `writer.reveal(..)` for every value that leaves a party (both nodes record it);
//! 5. `writer.outcome(..)` last, also when the job fails.

pub mod cli;
pub mod record;
pub mod report;
pub mod verify;
pub mod writer;

pub use record::{
    DatasetInfo, MANIFEST_KIND, Manifest, NodeInfo, Outcome, PHASE_SIG_KIND, PhaseHeads, PhaseSignatures, Policies,
    Record, Reveal, SCHEMA, ScoreHist, Status, value_hash,
};
pub use verify::{Check, Comparison, Failure, Transcript, Verification, compare, verify};
pub use writer::{TranscriptWriter, exchange_manifest_digest, exchange_phase_signatures, payloads_path};
