//! Jobs: what operators submit, how the peer's policy is checked, how they are stored and run.

pub mod spec;
