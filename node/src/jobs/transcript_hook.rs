//! Connects a job's [`Channel`](protocol::Channel) to the transcript writer.
//!
//! [`TranscriptHook`] is a thin [`FrameObserver`] that forwards every frame to a sink closure.
//! [`open_transcript`] is the one place that chooses the writer: today a minimal JSON Lines file
//! (`<job dir>/transcript.jsonl`, one object per frame with a local hash chain); the audit module
//! replaces the body of that function with its own writer.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use protocol::transcript::{Direction, FrameEvent, FrameObserver};
use serde::Serialize;

use crate::config::TranscriptSettings;

/// Receives every frame of a job, in order.
pub type FrameSink = Box<dyn FnMut(&FrameEvent<'_>) + Send>;

pub struct TranscriptHook {
    sink: FrameSink,
}

impl TranscriptHook {
    pub fn new(sink: FrameSink) -> TranscriptHook {
        TranscriptHook { sink }
    }
}

impl FrameObserver for TranscriptHook {
    fn on_frame(&mut self, frame: &FrameEvent<'_>) {
        (self.sink)(frame)
    }
}

/// The transcript writer for one job (swap the writer here).
pub fn open_transcript(job_dir: &Path, settings: &TranscriptSettings) -> Result<TranscriptHook> {
    Ok(TranscriptHook::new(jsonl_sink(&job_dir.join("transcript.jsonl"), settings.payloads)?))
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    time_ms: u64,
    direction: Direction,
    phase: &'a str,
    kind: &'a str,
    len: usize,
    blake3: String,
    chain: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
}

/// Minimal JSON Lines writer. `chain` = BLAKE3-derive("tandem local transcript v1",
/// previous chain ‖ the line's other fields as JSON), so any edit breaks every later line.
fn jsonl_sink(path: &Path, payloads: bool) -> Result<FrameSink> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open transcript {}", path.display()))?;
    let path = path.to_path_buf();
    let mut seq = 0u64;
    let mut chain = [0u8; 32];
    let mut failed = false;
    Ok(Box::new(move |f: &FrameEvent<'_>| {
        seq += 1;
        let mut line = Line {
            seq,
            time_ms: crate::jobs::record::now_ms(),
            direction: f.direction,
            phase: f.phase,
            kind: f.kind,
            len: f.payload.len(),
            blake3: hex::encode(f.payload_hash),
            chain: String::new(),
            payload: payloads.then(|| hex::encode(f.payload)),
        };
        let body = serde_json::to_vec(&line).expect("transcript line serialises");
        let mut h = blake3::Hasher::new_derive_key("tandem local transcript v1");
        h.update(&chain);
        h.update(&body);
        chain = *h.finalize().as_bytes();
        line.chain = hex::encode(chain);
        let mut out = serde_json::to_vec(&line).expect("transcript line serialises");
        out.push(b'\n');
        if let Err(e) = file.write_all(&out)
            && !failed
        {
            failed = true;
            tracing::error!("transcript {}: write failed: {e}", path.display());
        }
    }))
}
