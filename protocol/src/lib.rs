//! Tandem's two-party protocols as pure code over a [`channel::Channel`]: no sockets, files or
//! clocks, deterministic given seeded RNGs, so tests run both parties in memory.
//!
//! Security model for every protocol here: semi-honest two-party, 128-bit computational and
//! 40-bit statistical security. Each module's doc states what each party learns.

// Peer input never panics: no unwrap outside tests (use `?` or an error naming the message).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod channel;
pub mod disclose;
pub mod error;
pub mod fixed;
pub mod gf128;
pub(crate) mod he;
pub mod ids;
pub mod lookup;
pub mod mpc;
pub mod okvs;
pub mod ot;
pub mod pcg;
pub mod psi;
pub mod psi_vole;
pub mod transcript;

pub use channel::{Channel, Stats};
pub use error::{Error, InputError, PeerError, Result, TransportError};

use serde::{Deserialize, Serialize};

/// The two parties of a Tandem job. The government node holds features only; the bank holds
/// features and the label. Roles come from the pinned peer certificate, never from the peer's word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Gov,
    Bank,
}

impl Role {
    pub fn peer(self) -> Role {
        match self {
            Role::Gov => Role::Bank,
            Role::Bank => Role::Gov,
        }
    }
    /// Party index for two-party arithmetic: gov = 0, bank = 1.
    pub fn index(self) -> usize {
        match self {
            Role::Gov => 0,
            Role::Bank => 1,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gov => "gov",
            Role::Bank => "bank",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "gov" => Ok(Role::Gov),
            "bank" => Ok(Role::Bank),
            other => Err(InputError::Unknown { what: "role", got: other.into(), allowed: "'gov' or 'bank'" }.into()),
        }
    }
}
