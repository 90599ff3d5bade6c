//! What each event tells the customer, and the notification's identity.
//! Pure: the intake stores what this decides, the deliverer sends it.

use std::fmt;

use paystream_contract::{
    AnyEvent, DebitOrigin, NotificationChannel, RejectionStage, card_payment_id,
};
use uuid::Uuid;

/// The notifications a customer can get, one per step worth telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    PaymentRejected,
    PaymentDebited,
    PaymentSettled,
    PaymentReversed,
    CardTransaction,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Self::PaymentRejected,
        Self::PaymentDebited,
        Self::PaymentSettled,
        Self::PaymentReversed,
        Self::CardTransaction,
    ];

    /// The template code `notification.sent` carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::PaymentRejected => "PAYMENT_REJECTED",
            Self::PaymentDebited => "PAYMENT_DEBITED",
            Self::PaymentSettled => "PAYMENT_SETTLED",
            Self::PaymentReversed => "PAYMENT_REVERSED",
            Self::CardTransaction => "CARD_TRANSACTION",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The steps that come after this one: once the customer was told one
    /// of them, telling this one would be news from the past. The topics
    /// are read side by side, so a settlement can arrive before its debit.
    pub fn superseded_by(self) -> &'static [Kind] {
        match self {
            Self::PaymentDebited => &[Self::PaymentSettled, Self::PaymentReversed],
            Self::PaymentRejected
            | Self::PaymentSettled
            | Self::PaymentReversed
            | Self::CardTransaction => &[],
        }
    }
}

/// The channels the provider delivers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Self::Sms, Self::Email];

    pub fn code(self) -> &'static str {
        match self {
            Self::Sms => "SMS",
            Self::Email => "EMAIL",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|channel| channel.code().eq_ignore_ascii_case(code.trim()))
    }

    pub fn contract(self) -> NotificationChannel {
        match self {
            Self::Sms => NotificationChannel::Sms,
            Self::Email => NotificationChannel::Email,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Something to tell one customer about one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The payment id, or for a card transaction the id the ledger gives it.
    pub payment_id: String,
    pub kind: Kind,
    /// Whose contacts to use: the debtor's account, or the card.
    pub customer_ref: String,
    pub subject: String,
    pub text: String,
}

/// What `event` tells the customer, if anything. A card debit on the
/// ledger is told once, from the card topic, not again from
/// `account.debited`; a debit refused by the ledger is told as a rejection.
pub fn intent(event: &AnyEvent) -> Option<Intent> {
    let intent = match event {
        AnyEvent::PaymentRejected(rejected) => Intent {
            payment_id: rejected.payment_id.to_string(),
            kind: Kind::PaymentRejected,
            customer_ref: rejected.debtor_account.clone(),
            subject: "Your payment was not made".to_owned(),
            text: format!(
                "Your payment of {} was not made{}: {}",
                amount(rejected.amount_minor, &rejected.currency),
                match rejected.stage {
                    RejectionStage::Debit => " by your bank",
                    RejectionStage::Validation | RejectionStage::Unknown => "",
                },
                rejected.reason_code.description()
            ),
        },
        AnyEvent::AccountDebited(debited) if debited.origin == DebitOrigin::CreditTransfer => {
            let to = debited
                .creditor
                .as_ref()
                .map(|creditor| format!(" to {}", creditor.name))
                .unwrap_or_default();
            Intent {
                payment_id: debited.payment_id.to_string(),
                kind: Kind::PaymentDebited,
                customer_ref: debited.account_id.clone(),
                subject: "Payment on its way".to_owned(),
                text: format!(
                    "{} has been taken from your account for your payment{to}.",
                    amount(debited.amount_minor, &debited.currency)
                ),
            }
        }
        AnyEvent::RtgsSettled(settled) => Intent {
            payment_id: settled.payment_id.to_string(),
            kind: Kind::PaymentSettled,
            customer_ref: settled.debtor_account.clone(),
            subject: "Payment delivered".to_owned(),
            text: format!(
                "Your payment of {} has been settled on {} (reference {}).",
                amount(settled.amount_minor, &settled.currency),
                settled.settlement_date,
                settled.rtgs_reference
            ),
        },
        AnyEvent::AccountDebitReversed(reversed) => Intent {
            payment_id: reversed.payment_id.to_string(),
            kind: Kind::PaymentReversed,
            customer_ref: reversed.account_id.clone(),
            subject: "Payment returned".to_owned(),
            text: format!(
                "Your payment could not be completed and {} is back in your account: {}",
                amount(reversed.amount_minor, &reversed.currency),
                reversed.reason_text
            ),
        },
        AnyEvent::CardTransactionReceived(card) => Intent {
            payment_id: card_payment_id(&card.card_transaction_id).to_string(),
            kind: Kind::CardTransaction,
            customer_ref: card.card_id.clone(),
            subject: "Card payment".to_owned(),
            text: if card.transaction_status == "VALIDATED" {
                format!(
                    "Card payment of {} at {} ({}).",
                    amount(card.amount_minor, &card.currency),
                    card.merchant_name,
                    card.merchant_country
                )
            } else {
                format!(
                    "A card payment of {} at {} was declined.",
                    amount(card.amount_minor, &card.currency),
                    card.merchant_name
                )
            },
        },
        _ => return None,
    };
    Some(intent)
}

/// The notification's id: the same payment, kind, channel and recipient
/// always give the same id, and so the same Idempotency-Key.
pub fn notification_id(payment_id: &str, kind: Kind, channel: Channel, recipient: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_7469_6669_6361_7469_6f6e_7370_7372);
    let name = format!(
        "{payment_id}\u{1f}{}\u{1f}{}\u{1f}{recipient}",
        kind.code(),
        channel.code()
    );
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// `1,250.50 EUR`: minor units by the currency's exponent, exactly.
pub fn amount(minor: i64, currency: &str) -> String {
    let exponent = iso_currency::Currency::from_code(currency)
        .and_then(|currency| currency.exponent())
        .map_or(2, u32::from);
    let scale = 10_i64.pow(exponent);
    let (whole, part) = (minor.abs() / scale, minor.abs() % scale);
    let sign = if minor < 0 { "-" } else { "" };
    let mut digits = whole.to_string();
    let mut grouped = String::new();
    while digits.len() > 3 {
        let tail = digits.split_off(digits.len() - 3);
        grouped = format!(",{tail}{grouped}");
    }
    grouped = format!("{digits}{grouped}");
    if exponent == 0 {
        format!("{sign}{grouped} {currency}")
    } else {
        format!(
            "{sign}{grouped}.{part:0width$} {currency}",
            width = exponent as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use paystream_contract::samples;

    use super::*;

    #[test]
    fn amounts_are_exact_in_the_currency_exponent() {
        assert_eq!(amount(125_050, "EUR"), "1,250.50 EUR");
        assert_eq!(amount(5, "EUR"), "0.05 EUR");
        assert_eq!(amount(1_500_000, "JPY"), "1,500,000 JPY");
        assert_eq!(amount(1_234, "BHD"), "1.234 BHD");
    }

    #[test]
    fn ids_are_the_same_for_the_same_notification_only() {
        let a = notification_id("p1", Kind::PaymentSettled, Channel::Sms, "+44");
        assert_eq!(
            a,
            notification_id("p1", Kind::PaymentSettled, Channel::Sms, "+44")
        );
        assert_ne!(
            a,
            notification_id("p1", Kind::PaymentSettled, Channel::Email, "+44")
        );
        assert_ne!(
            a,
            notification_id("p1", Kind::PaymentDebited, Channel::Sms, "+44")
        );
        assert_ne!(
            a,
            notification_id("p2", Kind::PaymentSettled, Channel::Sms, "+44")
        );
    }

    #[test]
    fn each_step_is_told_once_and_card_debits_from_the_card_topic() {
        let settled = samples::rtgs_settled();
        let told = intent(&AnyEvent::RtgsSettled(settled.clone())).unwrap();
        assert_eq!(told.kind, Kind::PaymentSettled);
        assert_eq!(told.customer_ref, settled.debtor_account);
        assert!(told.text.contains("1,250.50 EUR"), "{}", told.text);
        let mut card_debit = samples::account_debited();
        card_debit.origin = DebitOrigin::CardTransaction;
        assert_eq!(intent(&AnyEvent::AccountDebited(card_debit)), None);
        let card = samples::card_transaction_received();
        let told = intent(&AnyEvent::CardTransactionReceived(card.clone())).unwrap();
        assert_eq!(told.customer_ref, card.card_id);
        assert_eq!(
            told.payment_id,
            card_payment_id(&card.card_transaction_id).to_string()
        );
        assert_eq!(
            intent(&AnyEvent::RtgsSubmitted(samples::rtgs_submitted())),
            None
        );
        for kind in Kind::ALL {
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
        }
    }
}
