//! The body of `POST /v1/payments` and every rule the gateway checks before a
//! payment may enter the pipeline. Checking collects every bad field instead
//! of stopping at the first, so a client fixes its request in one round trip.

use std::net::IpAddr;

use iban::IbanLike;
use paystream_contract::money::to_minor_units;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One field that failed a rule, named by its JSON pointer-ish path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

/// A payment as the API describes it: amounts as decimal strings, parties
/// with IBAN and BIC. Everything is optional here so that a missing field is
/// reported with the others rather than as a parse failure.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    pub end_to_end_id: Option<Value>,
    pub amount: Option<Value>,
    pub currency: Option<Value>,
    pub debtor: Option<PartyRequest>,
    pub creditor: Option<PartyRequest>,
    pub remittance_information: Option<Value>,
    pub client_ip: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartyRequest {
    pub name: Option<Value>,
    pub account: Option<Value>,
    pub agent_bic: Option<Value>,
    pub country: Option<Value>,
    pub address: Option<Value>,
    pub date_of_birth: Option<Value>,
    pub national_id: Option<Value>,
}

/// A payment that passed every rule, in the contract's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPayment {
    pub end_to_end_id: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub debtor: paystream_contract::Party,
    pub creditor: paystream_contract::Party,
    /// Debtor and creditor countries as ISO 3166-1 alpha-3, e.g. `DEU-FRA`.
    pub corridor_code: String,
    pub remittance_information: Option<String>,
    pub client_ip: Option<String>,
}

struct Checker {
    errors: Vec<FieldError>,
}

/// A party's field, `debtor.name`: its name is written out only for an
/// error, not for every field of every payment that passes.
#[derive(Clone, Copy)]
struct PartyField<'a> {
    role: &'a str,
    name: &'a str,
}

impl std::fmt::Display for PartyField<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.role, self.name)
    }
}

impl Checker {
    fn fail(&mut self, field: impl std::fmt::Display, detail: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            detail: detail.into(),
        });
    }

    /// A string field: present (if `required`), a JSON string, not blank, at
    /// most `max` characters, no control characters.
    fn text(
        &mut self,
        field: impl std::fmt::Display + Copy,
        value: Option<&Value>,
        required: bool,
        max: usize,
    ) -> Option<String> {
        match value {
            None | Some(Value::Null) => {
                if required {
                    self.fail(field, "is required");
                }
                None
            }
            Some(Value::String(text)) => {
                let text = text.trim();
                if text.is_empty() {
                    self.fail(field, "must not be blank");
                    None
                } else if text.chars().count() > max {
                    self.fail(field, format!("must be at most {max} characters"));
                    None
                } else if let Some(problem) = control_character(text) {
                    self.fail(field, problem);
                    None
                } else {
                    Some(text.to_owned())
                }
            }
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    fn country(
        &mut self,
        field: impl std::fmt::Display + Copy,
        value: Option<&Value>,
    ) -> Option<isocountry::CountryCode> {
        let code = self.text(field, value, true, 2)?;
        match isocountry::CountryCode::for_alpha2(&code) {
            Ok(country) if code.chars().all(|c| c.is_ascii_uppercase()) => Some(country),
            _ => {
                self.fail(
                    field,
                    format!("`{code}` is not an ISO 3166-1 alpha-2 country code"),
                );
                None
            }
        }
    }

    fn party(
        &mut self,
        role: &str,
        party: Option<&PartyRequest>,
    ) -> Option<(paystream_contract::Party, isocountry::CountryCode)> {
        let Some(party) = party else {
            self.fail(role, "is required");
            return None;
        };
        let field = |name| PartyField { role, name };
        let name = self.text(field("name"), party.name.as_ref(), true, 140);
        let account = self
            .text(field("account"), party.account.as_ref(), true, 42)
            .and_then(|account| match account.parse::<iban::Iban>() {
                Ok(iban) => Some(iban.electronic_str().to_owned()),
                Err(error) => {
                    self.fail(field("account"), format!("is not a valid IBAN: {error}"));
                    None
                }
            });
        let agent_bic = self
            .text(field("agentBic"), party.agent_bic.as_ref(), true, 11)
            .and_then(|bic| match check_bic(&bic) {
                Ok(()) => Some(bic),
                Err(reason) => {
                    self.fail(field("agentBic"), reason);
                    None
                }
            });
        let country = self.country(field("country"), party.country.as_ref());
        let address = self.text(field("address"), party.address.as_ref(), false, 140);
        let date_of_birth = self
            .text(
                field("dateOfBirth"),
                party.date_of_birth.as_ref(),
                false,
                10,
            )
            .and_then(
                |date| match chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d") {
                    Ok(_) => Some(date),
                    Err(_) => {
                        self.fail(field("dateOfBirth"), "must be a date, YYYY-MM-DD");
                        None
                    }
                },
            );
        let national_id = self.text(field("nationalId"), party.national_id.as_ref(), false, 35);
        Some((
            paystream_contract::Party {
                name: name?,
                account: account?,
                agent_bic: agent_bic?,
                country: country?.alpha2().to_owned(),
                address,
                date_of_birth,
                national_id,
            },
            country?,
        ))
    }
}

/// Why `text` cannot be a name, address, reference or id, if it holds a
/// control character (C0, DEL or C1): no such field can show one, and
/// PostgreSQL cannot even store U+0000.
pub fn control_character(text: &str) -> Option<String> {
    text.chars()
        .enumerate()
        .find(|(_, c)| c.is_control())
        .map(|(at, c)| {
            format!(
                "must not contain control characters (U+{:04X} at character {})",
                u32::from(c),
                at + 1
            )
        })
}

/// A BIC (ISO 9362): 4-letter institution, 2-letter ISO country, 2-character
/// location, optional 3-character branch.
pub fn check_bic(bic: &str) -> Result<(), String> {
    let valid_shape = bic.is_ascii()
        && matches!(bic.len(), 8 | 11)
        && bic[..4].chars().all(|c| c.is_ascii_uppercase())
        && bic[4..6].chars().all(|c| c.is_ascii_uppercase())
        && bic[6..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !valid_shape {
        return Err(format!(
            "`{bic}` is not a BIC (8 or 11 characters: bank, country, location, optional branch)"
        ));
    }
    if isocountry::CountryCode::for_alpha2(&bic[4..6]).is_err() {
        return Err(format!("`{bic}` names no ISO country in positions 5-6"));
    }
    Ok(())
}

impl PaymentRequest {
    pub fn check(&self) -> Result<CheckedPayment, Vec<FieldError>> {
        let mut checker = Checker { errors: Vec::new() };
        let end_to_end_id = checker.text("endToEndId", self.end_to_end_id.as_ref(), false, 35);
        let currency = checker
            .text("currency", self.currency.as_ref(), true, 3)
            .and_then(|code| match iso_currency::Currency::from_code(&code) {
                Some(currency) if code.chars().all(|c| c.is_ascii_uppercase()) => Some(currency),
                _ => {
                    checker.fail(
                        "currency",
                        format!("`{code}` is not an ISO 4217 currency code"),
                    );
                    None
                }
            });
        let amount = checker.text("amount", self.amount.as_ref(), true, 32);
        let amount_minor = match (&amount, currency) {
            (Some(amount), Some(currency)) => {
                let exponent = currency.exponent().map(u32::from).unwrap_or(0);
                match to_minor_units(amount, exponent, currency.code()) {
                    Ok(minor) => Some(minor),
                    Err(error) => {
                        checker.fail("amount", error.to_string());
                        None
                    }
                }
            }
            _ => None,
        };
        let debtor = checker.party("debtor", self.debtor.as_ref());
        let creditor = checker.party("creditor", self.creditor.as_ref());
        let remittance_information = checker.text(
            "remittanceInformation",
            self.remittance_information.as_ref(),
            false,
            140,
        );
        let client_ip = checker
            .text("clientIp", self.client_ip.as_ref(), false, 45)
            .and_then(|ip| match ip.parse::<IpAddr>() {
                Ok(ip) => Some(ip.to_string()),
                Err(_) => {
                    checker.fail("clientIp", format!("`{ip}` is not an IP address"));
                    None
                }
            });
        if !checker.errors.is_empty() {
            return Err(checker.errors);
        }
        match (amount_minor, currency, debtor, creditor) {
            (Some(amount_minor), Some(currency), Some((debtor, from)), Some((creditor, to))) => {
                Ok(CheckedPayment {
                    end_to_end_id,
                    amount_minor,
                    currency: currency.code().to_owned(),
                    corridor_code: format!("{}-{}", from.alpha3(), to.alpha3()),
                    debtor,
                    creditor,
                    remittance_information,
                    client_ip,
                })
            }
            // Every None above recorded an error, so this is unreachable in
            // practice; answer as a bad request rather than panic.
            _ => Err(vec![FieldError {
                field: "".into(),
                detail: "the request is incomplete".into(),
            }]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> PaymentRequest {
        serde_json::from_value(body).unwrap_or_default()
    }

    fn valid() -> Value {
        json!({
            "endToEndId": "E2E-0001",
            "amount": "1250.50",
            "currency": "EUR",
            "debtor": { "name": "Anna Schmidt", "account": "DE89 3704 0044 0532 0130 00",
                        "agentBic": "COBADEFFXXX", "country": "DE" },
            "creditor": { "name": "Jean Dupont", "account": "FR1420041010050500013M02606",
                          "agentBic": "BNPAFRPP", "country": "FR" },
            "remittanceInformation": "Invoice 42",
            "clientIp": "81.2.69.142"
        })
    }

    #[test]
    fn a_valid_request_becomes_minor_units_an_electronic_iban_and_a_corridor() {
        let payment = request(valid()).check().unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(payment.amount_minor, 125_050);
        assert_eq!(payment.currency, "EUR");
        assert_eq!(payment.debtor.account, "DE89370400440532013000");
        assert_eq!(payment.corridor_code, "DEU-FRA");
        assert_eq!(payment.client_ip.as_deref(), Some("81.2.69.142"));
    }

    #[test]
    fn every_bad_field_is_listed_at_once() {
        let mut body = valid();
        body["amount"] = json!(12.5);
        body["currency"] = json!("EURO");
        body["debtor"]["account"] = json!("DE89370400440532013001");
        body["debtor"]["agentBic"] = json!("COBA-DE");
        body["creditor"]["country"] = json!("XX");
        body["creditor"]["dateOfBirth"] = json!("31/12/1980");
        body["clientIp"] = json!("999.1.1.1");
        body.as_object_mut().map(|o| o.remove("endToEndId"));
        body["creditor"].as_object_mut().map(|o| o.remove("name"));
        let errors = request(body).check().err().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "currency",
                "amount",
                "debtor.account",
                "debtor.agentBic",
                "creditor.name",
                "creditor.country",
                "creditor.dateOfBirth",
                "clientIp"
            ]
        );
    }

    #[test]
    fn control_characters_are_refused_in_every_text_field() {
        let mut body = valid();
        body["endToEndId"] = json!("E2E\u{0}");
        body["debtor"]["name"] = json!("Anna\u{0}Schmidt");
        body["debtor"]["address"] = json!("Main St\n1");
        body["creditor"]["nationalId"] = json!("\u{7f}1");
        body["remittanceInformation"] = json!("Invoice \u{9b}42");
        let errors = request(body).check().err().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "endToEndId",
                "debtor.name",
                "debtor.address",
                "creditor.nationalId",
                "remittanceInformation"
            ]
        );
        assert!(
            errors[1].detail.contains("U+0000 at character 5"),
            "{errors:?}"
        );
        // Letters beyond ASCII are names, not control characters.
        let mut body = valid();
        body["debtor"]["name"] = json!("Zoë Ångström-Øster 王");
        assert!(request(body).check().is_ok());
    }

    #[test]
    fn bics_need_a_real_country_and_the_right_shape() {
        assert!(check_bic("DEUTDEFF").is_ok());
        assert!(check_bic("DEUTDEFF500").is_ok());
        assert!(check_bic("DEUTXXFF").is_err());
        assert!(check_bic("deutdeff").is_err());
        assert!(check_bic("DEUTDEF").is_err());
        assert!(check_bic("DEUTDEFÜ").is_err());
    }
}
