//! Exact amounts: integer minor units to the decimal ISO 20022 carries and
//! back, by the currency's ISO 4217 exponent. No floating point anywhere.

use crate::Iso20022Error;

/// The number of minor-unit digits of an ISO 4217 currency (EUR 2, JPY 0,
/// BHD 3), or an error for a code that is not ISO 4217.
pub fn exponent(currency: &str) -> Result<u32, Iso20022Error> {
    let known = iso_currency::Currency::from_code(currency)
        .ok_or_else(|| Iso20022Error::Currency(currency.to_owned()))?;
    // Currencies without minor units (XAU, XDR…) are not money a rail moves.
    known
        .exponent()
        .map(u32::from)
        .ok_or_else(|| Iso20022Error::Currency(currency.to_owned()))
}

/// `25050` EUR → `"250.50"`; `1500` JPY → `"1500"`. Amounts must be > 0.
pub fn to_decimal(amount_minor: i64, currency: &str) -> Result<String, Iso20022Error> {
    if amount_minor <= 0 {
        return Err(Iso20022Error::Amount(amount_minor.to_string()));
    }
    let exponent = exponent(currency)?;
    if exponent == 0 {
        return Ok(amount_minor.to_string());
    }
    let scale = 10_i64.pow(exponent);
    let width = exponent as usize;
    Ok(format!(
        "{}.{:0width$}",
        amount_minor / scale,
        amount_minor % scale
    ))
}

/// The inverse of [`to_decimal`], strict: digits, at most the currency's
/// exponent of fraction digits, no sign, no exponent notation.
pub fn to_minor(decimal: &str, currency: &str) -> Result<i64, Iso20022Error> {
    let invalid = || Iso20022Error::Amount(decimal.to_owned());
    let exponent = exponent(currency)? as usize;
    let (whole, fraction) = decimal.split_once('.').unwrap_or((decimal, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > exponent {
        return Err(invalid());
    }
    if decimal.contains('.') && fraction.is_empty() {
        return Err(invalid());
    }
    let padded = format!("{whole}{fraction:0<exponent$}");
    let minor: i64 = padded.parse().map_err(|_| invalid())?;
    if minor <= 0 {
        return Err(invalid());
    }
    Ok(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_follow_the_currency_exponent_exactly() {
        assert_eq!(to_decimal(25_050, "EUR").unwrap(), "250.50");
        assert_eq!(to_decimal(5, "EUR").unwrap(), "0.05");
        assert_eq!(to_decimal(1_500, "JPY").unwrap(), "1500");
        assert_eq!(to_decimal(1_234, "BHD").unwrap(), "1.234");
        assert_eq!(to_decimal(i64::MAX, "EUR").unwrap(), "92233720368547758.07");
    }

    #[test]
    fn minor_units_round_trip_and_bad_decimals_are_refused() {
        for (minor, currency) in [(25_050, "EUR"), (1, "EUR"), (1_500, "JPY"), (1_234, "BHD")] {
            let decimal = to_decimal(minor, currency).unwrap();
            assert_eq!(to_minor(&decimal, currency).unwrap(), minor);
        }
        assert_eq!(to_minor("250.5", "EUR").unwrap(), 25_050);
        for bad in [
            "", "-1.00", "1.001", "1e3", "1.", ".5", "0.00", "1,00", "+1",
        ] {
            assert!(to_minor(bad, "EUR").is_err(), "{bad:?}");
        }
        assert!(to_minor("1.5", "JPY").is_err());
        assert!(to_decimal(0, "EUR").is_err());
        assert!(to_decimal(100, "EUX").is_err());
    }
}
