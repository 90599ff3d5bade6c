//! What each service's own records say about one payment, and where two of
//! them disagree. Pure: [`super::gather`] reads the records, this judges.

use serde::Serialize;

/// The gateway's record: accepted (acked), and the status it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Views {
    pub accepted: bool,
    pub currency: Option<String>,
    pub amount_minor: Option<i64>,
    /// The gateway's status read model.
    pub status: Option<String>,
    /// Validation's decision: VALIDATED or REJECTED.
    pub validation: Option<String>,
    /// The ledger's answer and what became of the hold.
    pub ledger: Option<Ledger>,
    /// rtgs-gateway's submission state.
    pub submission: Option<String>,
    /// The rail's own status for the payment's UETR, and how often it
    /// settled it.
    pub rail: Option<(String, u64)>,
    /// How many `payment.submitted` the audit log holds for it.
    pub audited_submissions: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Ledger {
    Refused,
    Held,
    Posted,
    Voided,
}

impl Ledger {
    pub fn name(self) -> &'static str {
        match self {
            Self::Refused => "REFUSED",
            Self::Held => "HELD",
            Self::Posted => "POSTED",
            Self::Voided => "VOIDED",
        }
    }
}

/// Every disagreement between the services' records of one payment; none
/// for a payment every service agrees on (finished or still on its way).
pub fn disagreements(v: &Views) -> Vec<String> {
    let mut found = Vec::new();
    let mut say = |text: &str| found.push(text.to_owned());
    let validated = v.validation.as_deref() == Some("VALIDATED");
    if v.validation.is_some() && !v.accepted {
        say("validation decided a payment the gateway never accepted");
    }
    if v.ledger.is_some() && !validated {
        say("the ledger answered a payment validation did not validate");
    }
    match (v.ledger, v.submission.as_deref()) {
        (Some(Ledger::Refused) | None, Some(_)) => {
            say("sent to the rail without a hold in the ledger")
        }
        (Some(Ledger::Posted), state) if state != Some("SETTLED") => {
            say("the hold is posted but rtgs-gateway has no settlement")
        }
        (Some(Ledger::Voided), state) if state != Some("REJECTED") => {
            say("the hold is voided but rtgs-gateway has no rejection")
        }
        (Some(Ledger::Held), Some("SETTLED" | "REJECTED")) => {
            say("the rail's outcome is known but the hold is still pending")
        }
        _ => {}
    }
    match (v.submission.as_deref(), &v.rail) {
        (Some("SETTLED"), rail) if !matches!(rail, Some((status, 1)) if status == "ACSC") => {
            say("rtgs-gateway recorded a settlement the rail does not show once")
        }
        (Some("REJECTED"), Some((status, _))) if status != "RJCT" => {
            say("rtgs-gateway recorded a rejection the rail does not show")
        }
        (None, Some(_)) => say("the rail holds a transfer rtgs-gateway never recorded"),
        _ => {}
    }
    if let Some((_, settlements)) = &v.rail
        && *settlements > 1
    {
        say("the rail settled it more than once");
    }
    let expected_status = match (v.validation.as_deref(), v.ledger, v.submission.as_deref()) {
        (Some("REJECTED"), _, _) | (_, Some(Ledger::Refused), _) => Some("REJECTED"),
        (_, Some(Ledger::Posted), Some("SETTLED")) => Some("SETTLED"),
        (_, Some(Ledger::Voided), Some("REJECTED")) => Some("REVERSED"),
        _ => None,
    };
    if let (Some(expected), Some(status)) = (expected_status, v.status.as_deref())
        && expected != status
    {
        found.push(format!(
            "the gateway shows {status}, the services' records say {expected}"
        ));
    }
    if let Some(audited) = v.audited_submissions
        && v.accepted
        && audited != 1
    {
        found.push(format!(
            "the audit log holds its submission {audited} times"
        ));
    }
    found
}

/// The payment's state as the pipeline as a whole sees it, for the totals.
pub fn overall(v: &Views) -> &'static str {
    match (v.validation.as_deref(), v.ledger, v.submission.as_deref()) {
        (Some("REJECTED"), _, _) => "REJECTED (validation)",
        (_, Some(Ledger::Refused), _) => "REJECTED (ledger)",
        (_, Some(Ledger::Posted), _) => "SETTLED",
        (_, Some(Ledger::Voided), _) => "REVERSED",
        (_, Some(Ledger::Held), _) => "IN FLIGHT (held)",
        (Some("VALIDATED"), None, _) => "IN FLIGHT (validated)",
        (None, _, _) if v.accepted => "IN FLIGHT (accepted)",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled() -> Views {
        Views {
            accepted: true,
            currency: Some("EUR".into()),
            amount_minor: Some(100),
            status: Some("SETTLED".into()),
            validation: Some("VALIDATED".into()),
            ledger: Some(Ledger::Posted),
            submission: Some("SETTLED".into()),
            rail: Some(("ACSC".into(), 1)),
            audited_submissions: Some(1),
        }
    }

    #[test]
    fn a_payment_every_service_agrees_on_has_no_disagreement() {
        assert_eq!(disagreements(&settled()), Vec::<String>::new());
        assert_eq!(overall(&settled()), "SETTLED");
        let refused = Views {
            ledger: Some(Ledger::Refused),
            submission: None,
            rail: None,
            status: Some("REJECTED".into()),
            ..settled()
        };
        assert_eq!(disagreements(&refused), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_disagreement_is_named() {
        let twice = Views {
            rail: Some(("ACSC".into(), 2)),
            ..settled()
        };
        assert!(
            disagreements(&twice)
                .iter()
                .any(|d| d.contains("more than once"))
        );
        let unposted = Views {
            ledger: Some(Ledger::Held),
            status: Some("SUBMITTED_TO_RAIL".into()),
            ..settled()
        };
        assert!(
            disagreements(&unposted)
                .iter()
                .any(|d| d.contains("still pending"))
        );
        let stray = Views {
            accepted: false,
            status: None,
            audited_submissions: None,
            ..settled()
        };
        assert!(
            disagreements(&stray)
                .iter()
                .any(|d| d.contains("never accepted"))
        );
        let wrong_status = Views {
            status: Some("REVERSED".into()),
            ..settled()
        };
        assert!(
            disagreements(&wrong_status)
                .iter()
                .any(|d| d.contains("shows REVERSED"))
        );
        let audited_twice = Views {
            audited_submissions: Some(2),
            ..settled()
        };
        assert!(!disagreements(&audited_twice).is_empty());
    }
}
