//! `paystream`, the operator's command line: one tool for what an operator
//! asks of the pipeline as a whole.
//!
//! - `paystream trace <paymentId|correlationId>`: every event of a payment
//!   across the services, in causal order, from the audit log.
//! - `paystream dlq list|replay`: a group's dead letters.
//! - `paystream lag`: each group's lag per topic and partition.
//! - `paystream ledger check`: the ledger's invariants.

pub mod dlq;
pub mod lag;
pub mod table;
pub mod trace;
