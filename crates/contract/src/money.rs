//! Money on the wire is integer minor units plus an ISO 4217 code. This is
//! the one place decimal strings (from APIs and webhooks) become minor units,
//! exactly, without floats.

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a decimal string such as \"12.50\"")]
    NotDecimal,
    #[error("must be greater than zero")]
    NotPositive,
    #[error("has {given} decimal places; {currency} has {allowed}")]
    TooPrecise {
        given: usize,
        allowed: u32,
        currency: String,
    },
    #[error("is too large")]
    TooLarge,
}

/// Converts a decimal string to integer minor units of a currency with
/// `exponent` decimal places, exactly: no floats anywhere.
pub fn to_minor_units(amount: &str, exponent: u32, currency: &str) -> Result<i64, AmountError> {
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) || amount.ends_with('.') {
        return Err(AmountError::NotDecimal);
    }
    let significant = fraction.trim_end_matches('0');
    if significant.len() > exponent as usize {
        return Err(AmountError::TooPrecise {
            given: significant.len(),
            allowed: exponent,
            currency: currency.to_owned(),
        });
    }
    let scale = 10i64.checked_pow(exponent).ok_or(AmountError::TooLarge)?;
    let whole: i64 = whole.parse().map_err(|_| AmountError::TooLarge)?;
    let fraction_minor: i64 = if significant.is_empty() {
        0
    } else {
        let padded = format!("{significant:0<width$}", width = exponent as usize);
        padded.parse().map_err(|_| AmountError::NotDecimal)?
    };
    let minor = whole
        .checked_mul(scale)
        .and_then(|minor| minor.checked_add(fraction_minor))
        .ok_or(AmountError::TooLarge)?;
    if minor == 0 {
        return Err(AmountError::NotPositive);
    }
    Ok(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_follow_the_currency_exponent_exactly() {
        assert_eq!(to_minor_units("15.00", 2, "EUR"), Ok(1_500));
        assert_eq!(to_minor_units("15", 2, "EUR"), Ok(1_500));
        assert_eq!(to_minor_units("1500", 0, "JPY"), Ok(1_500));
        assert_eq!(to_minor_units("1.234", 3, "BHD"), Ok(1_234));
        assert_eq!(to_minor_units("0.1", 2, "EUR"), Ok(10));
        assert_eq!(
            to_minor_units("0.10", 0, "JPY"),
            Err(AmountError::TooPrecise {
                given: 1,
                allowed: 0,
                currency: "JPY".into()
            })
        );
        assert_eq!(
            to_minor_units("0.00", 2, "EUR"),
            Err(AmountError::NotPositive)
        );
        for bad in ["-1", "1e3", "1,00", ".5", "5.", "", " 1"] {
            assert_eq!(
                to_minor_units(bad, 2, "EUR"),
                Err(AmountError::NotDecimal),
                "{bad}"
            );
        }
        assert_eq!(
            to_minor_units("92233720368547758.08", 2, "EUR"),
            Err(AmountError::TooLarge)
        );
    }
}
