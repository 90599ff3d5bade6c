//! Realistic events, one constructor per event type, for tests and demos. The
//! corridor is Germany to South Africa, with IBAN and BICs that pass their checks.

use chrono::{SubsecRound, Utc};
use uuid::Uuid;

use crate::events::*;
use crate::vocabulary::ReasonCode;

pub const PRODUCER: &str = "samples/0";

pub fn envelope() -> Envelope {
    let correlation = Uuid::now_v7().to_string();
    Envelope::first(correlation.clone(), correlation, PRODUCER)
}

pub fn debtor() -> Party {
    Party {
        name: "Anna Schmidt".to_owned(),
        account: "DE89370400440532013000".to_owned(),
        agent_bic: "COBADEFFXXX".to_owned(),
        country: "DE".to_owned(),
        address: Some("Kaiserstrasse 16, 60311 Frankfurt am Main".to_owned()),
        date_of_birth: Some("1984-03-12".to_owned()),
        national_id: None,
    }
}

pub fn creditor() -> Party {
    Party {
        name: "Thabo Nkosi".to_owned(),
        account: "62000012345".to_owned(),
        agent_bic: "FIRNZAJJXXX".to_owned(),
        country: "ZA".to_owned(),
        address: None,
        date_of_birth: None,
        national_id: None,
    }
}

pub fn payment_submitted() -> PaymentSubmitted {
    PaymentSubmitted {
        envelope: envelope(),
        payment_id: Uuid::now_v7(),
        end_to_end_id: "INV-2026-11-0042".to_owned(),
        uetr: Uuid::new_v4(),
        amount_minor: 125_050,
        currency: "EUR".to_owned(),
        debtor: debtor(),
        creditor: creditor(),
        corridor_code: "DEU-ZAF".to_owned(),
        remittance_information: Some("Invoice 42, November".to_owned()),
        client_ip: Some("81.2.69.142".to_owned()),
    }
}

pub fn payment_validated() -> PaymentValidated {
    let submitted = payment_submitted();
    PaymentValidated {
        envelope: Envelope::caused_by(&submitted.envelope, PRODUCER),
        payment_id: submitted.payment_id,
        end_to_end_id: submitted.end_to_end_id,
        uetr: submitted.uetr,
        amount_minor: submitted.amount_minor,
        currency: submitted.currency,
        debtor: submitted.debtor,
        creditor: submitted.creditor,
        corridor_code: submitted.corridor_code,
        remittance_information: submitted.remittance_information,
    }
}

pub fn payment_rejected() -> PaymentRejected {
    PaymentRejected {
        envelope: envelope(),
        payment_id: Uuid::now_v7(),
        stage: RejectionStage::Validation,
        reason_code: ReasonCode::SanctionsMatch,
        reason_text: "Creditor matches an OFAC SDN entry".to_owned(),
        debtor_account: debtor().account,
        amount_minor: 99,
        currency: "EUR".to_owned(),
        corridor_code: Some("DEU-ZAF".to_owned()),
    }
}

pub fn aml_alert_raised() -> AmlAlertRaised {
    AmlAlertRaised {
        envelope: envelope(),
        alert_id: Uuid::now_v7(),
        payment_id: Uuid::now_v7(),
        severity: AlertSeverity::High,
        rule_code: "SANCTIONS_MATCH".to_owned(),
        debtor_account: debtor().account,
        party_role: Some("CREDITOR".to_owned()),
        party_name: Some("Thabo Nkosi".to_owned()),
        matched_list: Some("OFAC-SDN".to_owned()),
        matched_entry: Some("12345".to_owned()),
        score_permille: Some(962),
        details: "Name similarity 0.962 with an SDN entry".to_owned(),
    }
}

pub fn account_debited() -> AccountDebited {
    AccountDebited {
        envelope: envelope(),
        payment_id: Uuid::now_v7(),
        origin: DebitOrigin::CreditTransfer,
        account_id: debtor().account,
        posting_id: Uuid::now_v7(),
        amount_minor: 125_050,
        currency: "EUR".to_owned(),
        end_to_end_id: Some("INV-2026-11-0042".to_owned()),
        uetr: Some(Uuid::new_v4().to_string()),
        debtor: Some(debtor()),
        creditor: Some(creditor()),
        corridor_code: Some("DEU-ZAF".to_owned()),
        card_id: None,
        merchant_name: None,
        remittance_information: Some("Invoice 2026-11-0042".to_owned()),
    }
}

pub fn account_debit_reversed() -> AccountDebitReversed {
    AccountDebitReversed {
        envelope: envelope(),
        payment_id: Uuid::now_v7(),
        account_id: debtor().account,
        posting_id: Uuid::now_v7(),
        reversed_posting_id: Uuid::now_v7(),
        amount_minor: 125_050,
        currency: "EUR".to_owned(),
        reason_code: ReasonCode::RegulatoryReason,
        reason_text: "Creditor account closed".to_owned(),
    }
}

pub fn rtgs_submitted() -> RtgsSubmitted {
    RtgsSubmitted {
        envelope: envelope(),
        payment_id: Uuid::now_v7(),
        uetr: Uuid::new_v4(),
        rtgs_reference: "RTGS-20261122-000042".to_owned(),
        debtor_account: debtor().account,
        debtor_agent_bic: debtor().agent_bic,
        creditor_agent_bic: creditor().agent_bic,
        amount_minor: 125_050,
        currency: "EUR".to_owned(),
    }
}

pub fn rtgs_settled() -> RtgsSettled {
    RtgsSettled {
        envelope: envelope(),
        payment_id: Uuid::now_v7(),
        uetr: Uuid::new_v4(),
        rtgs_reference: "RTGS-20261122-000042".to_owned(),
        debtor_account: debtor().account,
        amount_minor: 125_050,
        currency: "EUR".to_owned(),
        settlement_date: "2026-11-22".to_owned(),
        settled_at: Utc::now().trunc_subsecs(3),
    }
}

pub fn rtgs_rejected() -> RtgsRejected {
    RtgsRejected {
        envelope: envelope(),
        payment_id: Uuid::now_v7(),
        uetr: Uuid::new_v4(),
        rtgs_reference: None,
        debtor_account: debtor().account,
        amount_minor: 125_050,
        currency: "EUR".to_owned(),
        reason_code: ReasonCode::ClosedAccountNumber,
        reason_text: "Closed account number".to_owned(),
    }
}

pub fn card_transaction_received() -> CardTransactionReceived {
    CardTransactionReceived {
        envelope: envelope(),
        webhook_id: Uuid::new_v4().to_string(),
        card_transaction_id: "700013016".to_owned(),
        card_id: "4821337".to_owned(),
        amount_minor: 1_500,
        currency: "EUR".to_owned(),
        transaction_status: "VALIDATED".to_owned(),
        merchant_name: "SNCF Automate".to_owned(),
        merchant_country: "FR".to_owned(),
        code_status: "170006".to_owned(),
        processor_created_at: "2024-11-07 14:30:00".to_owned(),
    }
}

pub fn notification_sent() -> NotificationSent {
    NotificationSent {
        envelope: envelope(),
        notification_id: Uuid::now_v7(),
        payment_id: Uuid::now_v7().to_string(),
        customer_ref: debtor().account,
        channel: NotificationChannel::Sms,
        recipient: "+49 151 ••• 4711".to_owned(),
        template_code: "PAYMENT_SETTLED".to_owned(),
        provider_message_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{read_datum, write_datum};
    use crate::events::Event;

    fn round_trip<E: Event + PartialEq + std::fmt::Debug>(event: E) {
        let schema = E::TOPIC.schema().unwrap();
        let mut datum = Vec::new();
        write_datum(schema, &event, &mut datum).unwrap_or_else(|e| panic!("{}: {e}", E::TOPIC));
        // Resolved against the reader's schema, and read straight.
        for reader in [Some(schema), None] {
            let decoded: E =
                read_datum(schema, reader, &datum).unwrap_or_else(|e| panic!("{}: {e}", E::TOPIC));
            assert_eq!(decoded, event, "{}", E::TOPIC);
        }
    }

    #[test]
    fn every_event_type_round_trips_through_its_schema() {
        round_trip(payment_submitted());
        round_trip(payment_validated());
        round_trip(payment_rejected());
        round_trip(aml_alert_raised());
        round_trip(account_debited());
        round_trip(account_debit_reversed());
        round_trip(rtgs_submitted());
        round_trip(rtgs_settled());
        round_trip(rtgs_rejected());
        round_trip(card_transaction_received());
        round_trip(notification_sent());
    }

    #[test]
    fn optional_fields_round_trip_when_absent() {
        let mut event = account_debited();
        event.origin = DebitOrigin::CardTransaction;
        event.debtor = None;
        event.creditor = None;
        event.card_id = Some("4821337".to_owned());
        assert_eq!(event.partition_key(), "4821337");
        round_trip(event);
    }

    #[test]
    fn caused_events_keep_the_correlation_and_point_at_their_cause() {
        let submitted = payment_submitted();
        let next = Envelope::caused_by(&submitted.envelope, "validation/0");
        assert_eq!(next.correlation_id, submitted.envelope.correlation_id);
        assert_eq!(next.causation_id, submitted.envelope.event_id.to_string());
        assert_ne!(next.event_id, submitted.envelope.event_id);
    }

    #[test]
    fn payment_events_are_keyed_by_debtor_account() {
        assert_eq!(
            payment_submitted().partition_key(),
            "DE89370400440532013000"
        );
        assert_eq!(payment_rejected().partition_key(), "DE89370400440532013000");
        assert_eq!(card_transaction_received().partition_key(), "4821337");
    }
}
