//! Tandem node: QUIC/mTLS transport, daemon, jobs, policy, storage, admin API, audit.
//!
//! Layout: [`config`] (the TOML file), [`identity`] (`tandem init` keys), [`transport`] (QUIC,
//! mTLS, hello, job streams), [`jobs`] (specs, policy, store, runner with per-kind phases,
//! signed transcripts), [`daemon`] (the running node), [`admin`] (local HTTP API and its client), [`console`] (the browser console on the admin listener),
//! [`audit`] (signed transcripts and the auditor's verify/compare/report), [`sessions`] (scoring
//! sessions: one keyed table, many single-id queries).

pub mod admin;
pub mod audit;
pub mod bench;
pub mod config;
pub mod console;
pub mod daemon;
pub mod datasets;
pub mod identity;
pub mod jobs;
pub mod sessions;
pub mod transport;
