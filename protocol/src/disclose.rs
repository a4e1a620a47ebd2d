//! The one reveal path: every value that leaves a party in the clear (an opened secret-shared
//! value, a metric, a score) crosses the channel through [`Channel::reveal_send`] /
//! [`Channel::reveal_recv`], and nowhere else.
//!
//! A reveal names a [`Grant`]: what is revealed and the policy rule that allows it. Before a byte is
//! sent, the channel asks its [`Gate`] whether the rule is allowed for this job (the node's gate
//! allows exactly the rules both nodes' policies granted); after the value has crossed, the channel
//! hands the gate a [`Disclosure`] to record. Both parties call the same function with the same
//! grant (one sends, one receives), so both record the same disclosure: the node writes it as a
//! reveal record in its transcript. The opening frames have kinds starting with [`OPEN_PREFIX`];
//! each disclosure lists the BLAKE3 hashes of its frames, so an auditor checks that every opening
//! frame in a transcript is covered by a reveal record.
//!
//! A channel made by [`Channel::new`] denies every reveal until the caller installs a gate
//! ([`Channel::set_gate`]); the in-memory test pairs ([`crate::channel::mem_pair`]) install a
//! [`Ledger`] that allows every rule and keeps what was disclosed, for tests to inspect.

use std::sync::{Arc, Mutex};

use crate::{InputError, Result, Role};

/// Frame kinds that open a value start with this prefix (`open.<grant name>`).
pub const OPEN_PREFIX: &str = "open.";
/// Longest grant name (the frame kind is `open.` + name, at most 64 bytes).
pub const MAX_GRANT_NAME: usize = 59;

/// What is revealed and under which policy rule. `name` and `rule` are fixed strings of the code
/// (never peer input); `summary` says in words what the recipient learns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// What the value is, e.g. `test_scores`, `model_gov_weights` (becomes the frame kind).
    pub name: String,
    /// The policy rule that allows it, as written in the policies, e.g. `scores_to_bank`.
    pub rule: String,
    /// Short readable text of what the recipient learns, e.g. `grades of 2,876 test rows`.
    pub summary: String,
}

impl Grant {
    pub fn new(name: &str, rule: &str, summary: impl Into<String>) -> Grant {
        assert!(
            !name.is_empty()
                && name.len() <= MAX_GRANT_NAME
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
            "grant name '{name}' must be 1..={MAX_GRANT_NAME} bytes of [A-Za-z0-9_.]"
        );
        Grant { name: name.to_string(), rule: rule.to_string(), summary: summary.into() }
    }

    /// The frame kind that carries this grant's value.
    pub fn kind(&self) -> String {
        format!("{OPEN_PREFIX}{}", self.name)
    }
}

/// One value that left party `from` for `to`, as both parties record it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disclosure {
    /// The channel's phase when the value crossed.
    pub phase: String,
    pub name: String,
    pub rule: String,
    pub summary: String,
    pub from: Role,
    pub to: Role,
    /// BLAKE3 of the bytes that crossed (the concatenated payload of the opening frames).
    pub value_hash: [u8; 32],
    /// BLAKE3 of each opening frame's payload, in order.
    pub frames: Vec<[u8; 32]>,
}

/// Decides which rules may open values on a channel, and records what was opened.
pub trait Gate: Send {
    /// `Ok` if `rule` allows opening a value in this job; the error names the rule.
    fn allow(&self, rule: &str) -> Result<()>;
    /// Records a disclosure (called by both parties, after the value crossed).
    fn record(&mut self, disclosure: Disclosure) -> Result<()>;
}

/// The gate of a channel that nobody configured: every reveal is refused.
pub struct DenyAll;

impl Gate for DenyAll {
    fn allow(&self, rule: &str) -> Result<()> {
        Err(InputError::NoGate { what: format!("rule '{rule}'") }.into())
    }
    fn record(&mut self, d: Disclosure) -> Result<()> {
        Err(InputError::NoGate { what: d.name }.into())
    }
}

/// An in-memory gate: allows the listed rules (or every rule) and keeps every disclosure.
/// Cloning shares the record list, so a test keeps a handle while the channel owns the gate.
#[derive(Clone, Default)]
pub struct Ledger {
    allowed: Option<Vec<String>>,
    records: Arc<Mutex<Vec<Disclosure>>>,
}

impl Ledger {
    /// Allows every rule (tests and benchmarks, which have no policy).
    pub fn allow_all() -> Ledger {
        Ledger::default()
    }

    /// Allows only `rules`.
    pub fn allowing(rules: &[&str]) -> Ledger {
        Ledger { allowed: Some(rules.iter().map(|r| r.to_string()).collect()), records: Default::default() }
    }

    /// Every disclosure recorded so far, in order.
    pub fn records(&self) -> Vec<Disclosure> {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Gate for Ledger {
    fn allow(&self, rule: &str) -> Result<()> {
        match &self.allowed {
            Some(rules) if !rules.iter().any(|r| r == rule) => {
                Err(InputError::RevealRefused { rule: rule.into() }.into())
            }
            _ => Ok(()),
        }
    }
    fn record(&mut self, d: Disclosure) -> Result<()> {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).push(d);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::channel::{mem_pair, run_pair};

    #[test]
    fn both_parties_record_the_same_disclosure_and_a_denied_rule_sends_nothing() {
        let grant = Grant::new("metric", "metrics", "one number");
        let ((), got) = run_pair(
            |ch| ch.reveal_send(&grant, &7u64.to_le_bytes()).unwrap(),
            |ch| ch.reveal_recv(&grant, 8).unwrap(),
        );
        assert_eq!(got, 7u64.to_le_bytes());

        let (mut g, mut b) = mem_pair();
        let (gl, bl) = (Ledger::allowing(&["metrics"]), Ledger::allowing(&["metrics"]));
        g.set_gate(Box::new(gl.clone()));
        b.set_gate(Box::new(bl.clone()));
        g.set_phase("train");
        b.set_phase("train");
        g.reveal_send(&grant, &[1, 2, 3]).unwrap();
        assert_eq!(b.reveal_recv(&grant, 3).unwrap(), vec![1, 2, 3]);
        let (gr, br) = (gl.records(), bl.records());
        assert_eq!(gr, br, "both parties record the same disclosure");
        assert_eq!((gr[0].from, gr[0].to, gr[0].phase.as_str()), (Role::Gov, Role::Bank, "train"));
        assert_eq!(gr[0].value_hash, *blake3::hash(&[1, 2, 3]).as_bytes());

        let denied = Grant::new("scores", "scores_to_bank", "scores");
        let err = g.reveal_send(&denied, &[9]).unwrap_err();
        assert!(matches!(&err, Error::Input(InputError::RevealRefused { rule }) if rule == "scores_to_bank"), "{err}");
        assert_eq!(g.stats().frames_sent, 2, "a refused reveal sends nothing (bulk header + one chunk before)");
        assert!(b.reveal_recv(&denied, 1).is_err(), "the receiver refuses it too, before reading");
        assert_eq!(gl.records().len(), 1);
    }

    #[test]
    fn a_channel_without_a_gate_opens_nothing() {
        let (g, _b) = crate::channel::mem_transports(std::time::Duration::from_millis(10));
        let mut ch = crate::Channel::new(Box::new(g), Role::Gov);
        let err = ch.reveal_send(&Grant::new("x", "metrics", "x"), &[1]).unwrap_err();
        assert!(matches!(err, Error::Input(InputError::NoGate { .. })), "{err}");
        assert_eq!(ch.stats().frames_sent, 0);
    }
}
