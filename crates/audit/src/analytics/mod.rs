//! Analytics: a consumer group of its own (`analytics`) over the card
//! topic and the payment topics, beside the audit log's. Each event adds
//! one to the count and its amount to the volume of every (hour, metric,
//! dimension value, currency) it belongs to, in the transaction of its
//! processed eventId, so a redelivery adds nothing. Money stays in integer
//! minor units per currency; nothing is converted.

pub mod api;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use paystream_bus::{Context, Handler, HandlerError, Record};
use paystream_contract::{AnyEvent, Inbound, Topic};
use sqlx::PgConnection;

pub const GROUP: &str = "analytics";

/// The topics the group reads.
pub const TOPICS: [Topic; 6] = [
    Topic::PaymentSubmitted,
    Topic::PaymentValidated,
    Topic::PaymentRejected,
    Topic::RtgsSettled,
    Topic::AccountDebitReversed,
    Topic::CardTransactionReceived,
];

/// What is counted: a metric and the dimensions it is broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    PaymentsSubmitted,
    PaymentsValidated,
    PaymentsRejected,
    PaymentsSettled,
    PaymentsReversed,
    CardTransactions,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Self::PaymentsSubmitted,
        Self::PaymentsValidated,
        Self::PaymentsRejected,
        Self::PaymentsSettled,
        Self::PaymentsReversed,
        Self::CardTransactions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::PaymentsSubmitted => "payments-submitted",
            Self::PaymentsValidated => "payments-validated",
            Self::PaymentsRejected => "payments-rejected",
            Self::PaymentsSettled => "payments-settled",
            Self::PaymentsReversed => "payments-reversed",
            Self::CardTransactions => "card-transactions",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|metric| metric.name() == name)
    }

    /// The dimensions this metric is broken down by; `all` is the total.
    pub fn dimensions(self) -> &'static [&'static str] {
        match self {
            Self::PaymentsSubmitted | Self::PaymentsValidated | Self::PaymentsSettled => {
                &["all", "corridor"]
            }
            Self::PaymentsRejected => &["all", "reason", "stage"],
            Self::PaymentsReversed => &["all", "reason"],
            Self::CardTransactions => &["all", "merchant-country", "status"],
        }
    }
}

/// One event's contribution: its metric, hour, amount, currency and the
/// value of each of the metric's dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub metric: Metric,
    pub hour: DateTime<Utc>,
    pub amount_minor: i64,
    pub currency: String,
    pub values: Vec<(&'static str, String)>,
}

/// What `event` counts for, if anything.
pub fn fact(event: &AnyEvent) -> Option<Fact> {
    let (metric, amount, currency, values) = match event {
        AnyEvent::PaymentSubmitted(e) => (
            Metric::PaymentsSubmitted,
            e.amount_minor,
            &e.currency,
            vec![("corridor", e.corridor_code.clone())],
        ),
        AnyEvent::PaymentValidated(e) => (
            Metric::PaymentsValidated,
            e.amount_minor,
            &e.currency,
            vec![("corridor", e.corridor_code.clone())],
        ),
        AnyEvent::PaymentRejected(e) => (
            Metric::PaymentsRejected,
            e.amount_minor,
            &e.currency,
            vec![
                ("reason", e.reason_code.code().to_owned()),
                ("stage", format!("{:?}", e.stage).to_uppercase()),
            ],
        ),
        AnyEvent::RtgsSettled(e) => (
            Metric::PaymentsSettled,
            e.amount_minor,
            &e.currency,
            vec![("corridor", "-".to_owned())],
        ),
        AnyEvent::AccountDebitReversed(e) => (
            Metric::PaymentsReversed,
            e.amount_minor,
            &e.currency,
            vec![("reason", e.reason_code.code().to_owned())],
        ),
        AnyEvent::CardTransactionReceived(e) => (
            Metric::CardTransactions,
            e.amount_minor,
            &e.currency,
            vec![
                ("merchant-country", e.merchant_country.clone()),
                ("status", e.transaction_status.clone()),
            ],
        ),
        _ => return None,
    };
    let occurred = event.envelope().occurred_at;
    let hour = occurred
        .duration_trunc(TimeDelta::hours(1))
        .unwrap_or(occurred);
    let mut values = values;
    values.insert(0, ("all", "all".to_owned()));
    Some(Fact {
        metric,
        hour,
        amount_minor: amount,
        currency: currency.clone(),
        values,
    })
}

pub struct Analytics;

impl Handler<AnyEvent> for Analytics {
    async fn handle(
        &self,
        record: Record<AnyEvent>,
        ctx: &mut Context,
    ) -> Result<(), HandlerError> {
        let Some(fact) = fact(&record.event) else {
            return Ok(());
        };
        add(ctx.tx().await?, &fact).await?;
        Ok(())
    }
}

async fn add(tx: &mut PgConnection, fact: &Fact) -> Result<(), sqlx::Error> {
    for (dimension, value) in &fact.values {
        sqlx::query(
            "INSERT INTO analytics_hourly (hour, metric, dimension, value, currency, count, volume_minor) \
             VALUES ($1, $2, $3, $4, $5, 1, $6) \
             ON CONFLICT (metric, dimension, hour, value, currency) DO UPDATE SET \
               count = analytics_hourly.count + 1, \
               volume_minor = analytics_hourly.volume_minor + EXCLUDED.volume_minor",
        )
        .bind(fact.hour)
        .bind(fact.metric.name())
        .bind(dimension)
        .bind(value)
        .bind(&fact.currency)
        .bind(fact.amount_minor)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use paystream_contract::samples;

    use super::*;

    #[test]
    fn each_event_counts_once_per_dimension_of_its_metric() {
        let rejected = samples::payment_rejected();
        let counted = fact(&AnyEvent::PaymentRejected(rejected.clone())).unwrap();
        assert_eq!(counted.metric, Metric::PaymentsRejected);
        let dimensions: Vec<&str> = counted.values.iter().map(|(d, _)| *d).collect();
        assert_eq!(dimensions, Metric::PaymentsRejected.dimensions());
        assert_eq!(counted.amount_minor, rejected.amount_minor);
        assert_eq!(counted.hour.timestamp() % 3600, 0);
        let card = fact(&AnyEvent::CardTransactionReceived(
            samples::card_transaction_received(),
        ))
        .unwrap();
        assert!(card.values.contains(&("merchant-country", "FR".to_owned())));
        assert_eq!(
            fact(&AnyEvent::RtgsSubmitted(samples::rtgs_submitted())),
            None
        );
        for metric in Metric::ALL {
            assert_eq!(Metric::from_name(metric.name()), Some(metric));
        }
    }
}
