//! Tandem learning and scoring: data loading and standardisation, the plaintext reference
//! trainer, metrics, the scorecard, and secure vertical logistic regression on the two-party
//! engine of `protocol::mpc`. Pure code: no files except `dataset::load`, no clocks; RNGs are
//! passed in.

pub mod binning;
pub mod capped;
pub mod checkup;
pub mod csv_file;
pub mod dataset;
pub mod evaluation;
pub mod metrics;
pub mod reference;
pub mod scorecard;
pub mod secure_lr;
pub mod standardize;
pub mod watchlist;
pub mod woe_lr;
