//! The idempotency window: how long the provider remembers a key. A key
//! older than that is forgotten, and a message sent under it again is
//! delivered again — as with the real gateways, which keep keys for a day.

use std::time::Duration;

/// The window real gateways keep keys for, and the sandbox's default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The longest window accepted: a year is longer than any run.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a whole number with a unit, `500ms`, `2s`, `15m` or `24h`,
/// between 1 ms and a year.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let usage = || format!("`{text}`: a whole number with a unit, e.g. 500ms, 2s, 15m or 24h");
    let (number, millis_per_unit) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1_000)
    } else if let Some(m) = text.strip_suffix('m') {
        (m, 60_000)
    } else if let Some(h) = text.strip_suffix('h') {
        (h, 3_600_000)
    } else {
        return Err(usage());
    };
    let number: u64 = number.trim().parse().map_err(|_| usage())?;
    let window = number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .filter(|window| *window <= MAX_WINDOW)
        .ok_or_else(|| format!("`{text}`: at most {}h", MAX_WINDOW.as_secs() / 3600))?;
    if window.is_zero() {
        return Err(format!(
            "`{text}`: at least 1ms (a provider that forgets keys at once is no idempotency)"
        ));
    }
    Ok(window)
}

/// The window in the largest unit that says it exactly, as `parse_window` reads it.
pub fn format_window(window: Duration) -> String {
    let millis = window.as_millis();
    if millis.is_multiple_of(3_600_000) {
        format!("{}h", millis / 3_600_000)
    } else if millis.is_multiple_of(60_000) {
        format!("{}m", millis / 60_000)
    } else if millis.is_multiple_of(1_000) {
        format!("{}s", millis / 1_000)
    } else {
        format!("{millis}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_in_each_unit_and_print_back() {
        for (text, window) in [
            ("24h", DEFAULT_WINDOW),
            ("2s", Duration::from_secs(2)),
            ("1500ms", Duration::from_millis(1500)),
            ("15m", Duration::from_secs(900)),
            (" 90s ", Duration::from_secs(90)),
        ] {
            assert_eq!(parse_window(text), Ok(window), "{text}");
            assert_eq!(parse_window(&format_window(window)), Ok(window), "{text}");
        }
        assert_eq!(format_window(Duration::from_secs(90)), "90s");
        assert_eq!(format_window(DEFAULT_WINDOW), "24h");
        assert_eq!(format_window(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn bad_windows_are_refused_with_the_reason() {
        for text in ["", "24", "1d", "1.5s", "-2s", "s", "0", "0ms", "9000h"] {
            let error = parse_window(text).err().unwrap_or_default();
            assert!(error.contains(text.trim()), "`{text}`: {error}");
        }
        assert!(
            parse_window("18446744073709551615h")
                .err()
                .unwrap_or_default()
                .contains("at most"),
        );
    }
}
