//! Business rules that need no provider: is the corridor open, is the amount
//! within the corridor's limit, are the travel-rule fields there above the
//! currency's threshold. Pure functions over the payment and the settings.

use std::collections::HashMap;
use std::str::FromStr;

use paystream_contract::money::to_minor_units;
use paystream_contract::{PaymentSubmitted, ReasonCode};

/// A rejection: a machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ReasonCode,
    pub text: String,
}

fn minor_units(currency: &str, amount: &str) -> Result<i64, String> {
    let exponent = iso_currency::Currency::from_code(currency)
        .ok_or_else(|| format!("`{currency}` is not an ISO 4217 currency"))?
        .exponent()
        .map(u32::from)
        .unwrap_or(0);
    to_minor_units(amount, exponent, currency)
        .map_err(|error| format!("{currency} {amount}: {error}"))
}

/// `CUR=AMOUNT` pairs, comma-separated, e.g. `USD=3000,EUR=1000,SGD=1500`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmountsByCurrency(pub HashMap<String, i64>);

impl FromStr for AmountsByCurrency {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut amounts = HashMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (currency, amount) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}`: expected CURRENCY=AMOUNT"))?;
            let currency = currency.trim().to_ascii_uppercase();
            amounts.insert(currency.clone(), minor_units(&currency, amount.trim())?);
        }
        Ok(Self(amounts))
    }
}

/// `CORRIDOR:CUR=AMOUNT` pairs, e.g. `DEU-FRA:EUR=5000000,*:EUR=1000000`;
/// `*` is the limit of every corridor without its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorridorLimits(pub HashMap<(String, String), i64>);

impl FromStr for CorridorLimits {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut limits = HashMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (corridor, pair) = entry
                .split_once(':')
                .ok_or_else(|| format!("`{entry}`: expected CORRIDOR:CURRENCY=AMOUNT"))?;
            let AmountsByCurrency(amounts) = pair.parse()?;
            for (currency, amount) in amounts {
                limits.insert((corridor.trim().to_ascii_uppercase(), currency), amount);
            }
        }
        Ok(Self(limits))
    }
}

/// Alpha-2 country codes, comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Countries(pub Vec<String>);

impl FromStr for Countries {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let countries: Vec<String> = text
            .split(',')
            .map(|code| code.trim().to_ascii_uppercase())
            .filter(|code| !code.is_empty())
            .collect();
        match countries.iter().find(|code| code.len() != 2) {
            Some(bad) => Err(format!("`{bad}` is not an ISO 3166-1 alpha-2 code")),
            None => Ok(Self(countries)),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Rules {
    /// Countries no payment may come from or go to (comprehensively
    /// sanctioned jurisdictions), alpha-2, comma-separated.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_BLOCKED_COUNTRIES",
        default_value = "KP,IR,SY,CU"
    )]
    pub blocked_countries: Countries,

    /// Largest single payment per corridor and currency, `CORRIDOR:CUR=AMOUNT`
    /// with corridor as alpha-3 `DEU-FRA` or `*` for any.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_CORRIDOR_LIMITS",
        default_value = "*:EUR=1000000,*:USD=1000000,*:GBP=1000000,*:SGD=1500000,*:CHF=1000000,*:JPY=150000000"
    )]
    pub corridor_limits: CorridorLimits,

    /// Amounts above which the FATF travel rule needs the debtor's address
    /// and date of birth or national id, `CUR=AMOUNT`.
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_TRAVEL_RULE_THRESHOLDS",
        default_value = "USD=3000,EUR=1000,SGD=1500"
    )]
    pub travel_rule_thresholds: AmountsByCurrency,
}

impl Rules {
    pub fn check(&self, payment: &PaymentSubmitted) -> Result<(), Rejection> {
        // The gateway refuses these, but validation takes events from any
        // producer on the topic: a credit transfer moves a positive amount.
        if payment.amount_minor <= 0 {
            return Err(Rejection {
                code: ReasonCode::InvalidAmount,
                text: format!(
                    "the amount must be positive, not {} minor units",
                    payment.amount_minor
                ),
            });
        }
        for (role, country) in [
            ("debtor", &payment.debtor.country),
            ("creditor", &payment.creditor.country),
        ] {
            if self.blocked_countries.0.contains(country) {
                return Err(Rejection {
                    code: ReasonCode::CorridorNotAllowed,
                    text: format!(
                        "payments with a {role} in {country} are not allowed (corridor {})",
                        payment.corridor_code
                    ),
                });
            }
        }
        let limits = &self.corridor_limits.0;
        let limit = limits
            .get(&(payment.corridor_code.clone(), payment.currency.clone()))
            .or_else(|| limits.get(&("*".to_owned(), payment.currency.clone())));
        match limit {
            None => {
                return Err(Rejection {
                    code: ReasonCode::UnsupportedCurrency,
                    text: format!(
                        "{} is not accepted on corridor {}",
                        payment.currency, payment.corridor_code
                    ),
                });
            }
            Some(limit) if payment.amount_minor > *limit => {
                return Err(Rejection {
                    code: ReasonCode::AmountLimitExceeded,
                    text: format!(
                        "{} minor units of {} exceed the limit of {limit} on corridor {}",
                        payment.amount_minor, payment.currency, payment.corridor_code
                    ),
                });
            }
            Some(_) => {}
        }
        let threshold = self.travel_rule_thresholds.0.get(&payment.currency);
        if let Some(threshold) = threshold.filter(|threshold| payment.amount_minor > **threshold) {
            let debtor = &payment.debtor;
            let mut missing = Vec::new();
            if debtor.address.as_deref().is_none_or(str::is_empty) {
                missing.push("debtor.address");
            }
            if debtor.date_of_birth.is_none() && debtor.national_id.is_none() {
                missing.push("debtor.dateOfBirth or debtor.nationalId");
            }
            if !missing.is_empty() {
                return Err(Rejection {
                    code: ReasonCode::TravelRuleIncomplete,
                    text: format!(
                        "above {threshold} minor units of {} the travel rule needs {}",
                        payment.currency,
                        missing.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            blocked_countries: "KP,IR".parse().unwrap_or_default(),
            corridor_limits: "DEU-FRA:EUR=5000000,*:EUR=10000"
                .parse()
                .unwrap_or_default(),
            travel_rule_thresholds: "USD=3000,EUR=1000,SGD=1500".parse().unwrap_or_default(),
        }
    }

    fn payment(amount_minor: i64, corridor: &str) -> PaymentSubmitted {
        let mut payment = paystream_contract::samples::payment_submitted();
        payment.amount_minor = amount_minor;
        payment.currency = "EUR".into();
        payment.corridor_code = corridor.into();
        payment.debtor.country = "DE".into();
        payment.creditor.country = "FR".into();
        payment.debtor.address = None;
        payment.debtor.date_of_birth = None;
        payment.debtor.national_id = None;
        payment
    }

    #[test]
    fn thresholds_and_limits_are_read_in_the_currency_minor_units() {
        let rules = rules();
        assert_eq!(rules.travel_rule_thresholds.0.get("EUR"), Some(&100_000));
        assert_eq!(
            rules
                .corridor_limits
                .0
                .get(&("DEU-FRA".into(), "EUR".into())),
            Some(&500_000_000)
        );
        assert!("XYZ=5".parse::<AmountsByCurrency>().is_err());
        assert!("DEU".parse::<Countries>().is_err());
    }

    #[test]
    fn an_amount_of_zero_or_less_is_rejected_whoever_produced_it() {
        let rules = rules();
        for amount in [0, -1, i64::MIN] {
            assert_eq!(
                rules.check(&payment(amount, "DEU-FRA")).map_err(|r| r.code),
                Err(ReasonCode::InvalidAmount),
                "{amount}"
            );
        }
        assert_eq!(rules.check(&payment(1, "DEU-FRA")), Ok(()));
    }

    #[test]
    fn a_blocked_country_on_either_side_closes_the_corridor() {
        let mut to_iran = payment(500, "DEU-IRN");
        to_iran.creditor.country = "IR".into();
        assert_eq!(
            rules().check(&to_iran).err().map(|r| r.code),
            Some(ReasonCode::CorridorNotAllowed)
        );
        assert_eq!(rules().check(&payment(500, "DEU-FRA")), Ok(()));
    }

    #[test]
    fn corridor_limits_override_the_default() {
        let rules = rules();
        assert_eq!(
            rules
                .check(&payment(1_000_001, "DEU-ITA"))
                .err()
                .map(|r| r.code),
            Some(ReasonCode::AmountLimitExceeded)
        );
        let mut big = payment(1_000_000, "DEU-FRA");
        big.debtor.address = Some("Hauptstr. 1, Berlin".into());
        big.debtor.date_of_birth = Some("1980-01-01".into());
        assert_eq!(rules.check(&big), Ok(()));
        let mut yen = payment(100, "DEU-FRA");
        yen.currency = "JPY".into();
        assert_eq!(
            rules.check(&yen).err().map(|r| r.code),
            Some(ReasonCode::UnsupportedCurrency)
        );
    }

    #[test]
    fn above_the_threshold_the_travel_rule_fields_are_required() {
        let rules = rules();
        assert_eq!(
            rules.check(&payment(100_000, "DEU-FRA")),
            Ok(()),
            "at the threshold"
        );
        let over = payment(100_001, "DEU-FRA");
        let rejection = rules.check(&over).err();
        assert_eq!(
            rejection.as_ref().map(|r| r.code.clone()),
            Some(ReasonCode::TravelRuleIncomplete)
        );
        assert!(
            rejection
                .map(|r| r.text)
                .unwrap_or_default()
                .contains("debtor.address")
        );
        let mut complete = over;
        complete.debtor.address = Some("1 Rue de Rivoli, Paris".into());
        complete.debtor.national_id = Some("X1234567".into());
        assert_eq!(rules.check(&complete), Ok(()));
    }
}
