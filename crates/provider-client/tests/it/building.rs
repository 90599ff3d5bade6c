//! Making a client: a configuration mistake is an error at start-up, never a
//! client quietly built without its settings.

use std::time::Duration;

use paystream_provider_client::{BuildError, ProviderClient, ProviderSettings};

#[test]
fn a_user_agent_that_cannot_be_a_header_is_an_error_not_a_default_client() {
    let settings = ProviderSettings {
        user_agent: "paystream\nvalidation".into(),
        ..ProviderSettings::default()
    };
    let built = ProviderClient::new("aml", "http://127.0.0.1:8090/aml", settings);
    assert!(
        matches!(
            built,
            Err(BuildError::UserAgent {
                provider: "aml",
                ..
            })
        ),
        "{built:?}"
    );
}

#[test]
fn a_base_url_that_cannot_take_a_path_is_refused() {
    for url in [
        "",
        "127.0.0.1:8090/aml",
        "mailto:aml@example.com",
        "ftp://example.com/aml",
    ] {
        let built = ProviderClient::new("aml", url, ProviderSettings::default());
        assert!(
            matches!(built, Err(BuildError::BaseUrl { .. })),
            "{url}: {built:?}"
        );
    }
}

#[test]
fn a_maximum_retry_after_over_a_day_is_refused() {
    let settings = ProviderSettings {
        max_retry_after: Duration::from_secs(2 * 24 * 3600),
        ..ProviderSettings::default()
    };
    let built = ProviderClient::new("aml", "http://127.0.0.1:8090/aml", settings);
    assert!(
        matches!(built, Err(BuildError::MaxRetryAfter { .. })),
        "{built:?}"
    );
}
