//! Jobs: what operators submit ([`spec`]), the policy check ([`policy`]), records and their
//! storage ([`record`], [`store`]), the runner with per-kind protocol phases ([`runner`]) and
//! each job's signed transcript and manifest ([`transcript`]).

pub mod failure;
pub mod files;
pub mod phases;
pub mod policy;
pub mod record;
pub mod runner;
pub mod spec;
pub mod store;
pub mod transcript;
