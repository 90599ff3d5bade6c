//! A submission's states and what each status report from the rail does to
//! one. Pure: the store applies the answer in one transaction.
//!
//! ```text
//! SUBMITTING ──ack ACSP/PDNG──▶ SUBMITTED ──ACSC──▶ SETTLED
//!     │  ╲                          │
//!     │   ╲ timeout, no answer      └──RJCT──▶ REJECTED
//!     │    ▼
//!     │  UNKNOWN ──status query──▶ (as the rail says; 404: re-send, same UETR)
//!     └──ACSC / RJCT (acknowledgement missed)──▶ SETTLED / REJECTED
//! ```
//!
//! Final states are final: a repeated report changes nothing, a stale one
//! (an acceptance after the settlement) changes nothing, and one that
//! contradicts the recorded outcome is reported, not applied.

use std::fmt;

use paystream_iso20022::TxStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Recorded; being sent (or to be sent again: the rail knows the UETR).
    Submitting,
    /// The rail acknowledged it (ACSP or PDNG); the outcome is to come.
    Submitted,
    /// A send got no answer: the outcome is not known until the rail's
    /// status says. The ledger's hold stays pending meanwhile.
    Unknown,
    Settled,
    Rejected,
}

impl State {
    pub const ALL: [State; 5] = [
        Self::Submitting,
        Self::Submitted,
        Self::Unknown,
        Self::Settled,
        Self::Rejected,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Submitting => "SUBMITTING",
            Self::Submitted => "SUBMITTED",
            Self::Unknown => "UNKNOWN",
            Self::Settled => "SETTLED",
            Self::Rejected => "REJECTED",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.name() == name)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Settled | Self::Rejected)
    }

    /// Whether `rtgs.submitted` was already emitted for it.
    fn announced(self) -> bool {
        self == Self::Submitted
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a status report does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The rail accepted it: SUBMITTED, `rtgs.submitted`.
    Accepted,
    /// Settled: SETTLED, `rtgs.settled`, preceded by `rtgs.submitted` when
    /// the acceptance was never seen.
    Settled { announce: bool },
    /// Rejected: REJECTED, `rtgs.rejected`.
    Rejected,
    /// Nothing changes: a repeat of what is known, or a step the
    /// submission is already past.
    Unchanged,
    /// The rail reports the opposite of the outcome recorded. Nothing is
    /// applied; an operator is told.
    Contradiction,
}

impl Effect {
    pub fn name(self) -> &'static str {
        match self {
            Self::Accepted => "ACCEPTED",
            Self::Settled { .. } => "SETTLED",
            Self::Rejected => "REJECTED",
            Self::Unchanged => "UNCHANGED",
            Self::Contradiction => "CONTRADICTION",
        }
    }
}

/// What `report` does to a submission in `state`.
pub fn effect(state: State, report: TxStatus) -> Effect {
    use TxStatus::*;
    match (state, report) {
        (State::Settled, AcceptedSettlementCompleted) | (State::Rejected, Rejected) => {
            Effect::Unchanged
        }
        (State::Settled, Rejected) | (State::Rejected, AcceptedSettlementCompleted) => {
            Effect::Contradiction
        }
        (State::Settled | State::Rejected, AcceptedSettlementInProcess | Pending) => {
            Effect::Unchanged
        }
        (State::Submitted, AcceptedSettlementInProcess | Pending) => Effect::Unchanged,
        (State::Submitting | State::Unknown, AcceptedSettlementInProcess | Pending) => {
            Effect::Accepted
        }
        (open, AcceptedSettlementCompleted) => Effect::Settled {
            announce: !open.announced(),
        },
        (_, Rejected) => Effect::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use TxStatus::*;

    use super::*;

    #[test]
    fn outcomes_apply_once_and_only_to_open_submissions() {
        assert_eq!(effect(State::Submitting, Pending), Effect::Accepted);
        assert_eq!(
            effect(State::Submitted, AcceptedSettlementCompleted),
            Effect::Settled { announce: false }
        );
        assert_eq!(
            effect(State::Unknown, AcceptedSettlementCompleted),
            Effect::Settled { announce: true }
        );
        assert_eq!(effect(State::Submitted, Rejected), Effect::Rejected);
        assert_eq!(
            effect(State::Settled, AcceptedSettlementCompleted),
            Effect::Unchanged
        );
        assert_eq!(
            effect(State::Settled, AcceptedSettlementInProcess),
            Effect::Unchanged,
            "a stale acceptance after the settlement"
        );
        assert_eq!(effect(State::Settled, Rejected), Effect::Contradiction);
        assert_eq!(
            effect(State::Rejected, AcceptedSettlementCompleted),
            Effect::Contradiction
        );
        assert_eq!(effect(State::Submitted, Pending), Effect::Unchanged);
    }

    #[test]
    fn names_round_trip() {
        for state in State::ALL {
            assert_eq!(State::from_name(state.name()), Some(state));
        }
        assert_eq!(State::from_name("SENT"), None);
    }
}
