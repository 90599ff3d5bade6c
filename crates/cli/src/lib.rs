//! `paystream`, the operator's command line: one tool for what an operator
//! asks of the pipeline as a whole.
//!
//! - `paystream trace <paymentId|correlationId>`: every event of a payment
//!   across the services, in causal order, from the audit log.
//! - `paystream dlq list|replay`: a group's dead letters.
//! - `paystream lag`: each group's lag per topic and partition.
//! - `paystream ledger check`: the ledger's invariants.
//! - `paystream reconcile`: every service's records compared, payment by
//!   payment.
//! - `paystream load`: a realistic load through the gateway, followed to
//!   its final states, with a summary.

pub mod dlq;
pub mod lag;
pub mod load;
pub mod reconcile;
pub mod table;
pub mod trace;
