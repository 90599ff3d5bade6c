//! A notification whose fate is unknown: within the provider's idempotency
//! window it is tried again under the same key and delivered once; past
//! the window it is asked about, and one the provider never delivered is
//! left UNKNOWN for reconciliation, never sent again blindly.

use std::time::Duration;

use paystream_testkit::wait_until;

use crate::stand::{BOTH, Stand, WAIT, settled};

const SMS_ONLY: &str = "customer_ref,channel,address\nGB82WEST12345698765432,SMS,+447700900123\n";

#[tokio::test]
async fn a_late_answer_is_confirmed_under_the_same_key_not_delivered_again() {
    // Every message is delivered at once and answered after 2 s, twice the
    // client's timeout.
    let stand = Stand::new(
        "notify-late",
        SMS_ONLY,
        "late=1,late-by=2s",
        Duration::from_secs(3600),
    )
    .await;
    let _service = stand.start().await;
    stand.send(vec![settled(BOTH)]).await;
    wait_until(WAIT, "the provider to deliver", || async {
        (stand.report().deliveries == 1).then_some(())
    })
    .await;
    // The answer never arrives in time; the retries replay the key.
    stand.provider.set_behaviour("ok".parse().unwrap());
    stand.await_sent(1, WAIT).await;
    let provider = stand.report();
    assert_eq!(provider.deliveries, 1, "{provider:?}");
    assert!(provider.replays >= 1, "{provider:?}");
}

#[tokio::test]
async fn past_the_window_an_undelivered_notification_is_left_unknown() {
    let stand = Stand::new("notify-window", SMS_ONLY, "ok", Duration::from_secs(1)).await;
    stand.provider_http.set("down".parse().unwrap());
    let mut config = stand.config();
    config.provider_idempotency_window_s = 1;
    let _service = stand.start_with(config).await;
    stand.send(vec![settled(BOTH)]).await;
    wait_until(WAIT, "a first try", || async {
        (stand.count("SENDING").await? == 1).then_some(())
    })
    .await;
    // Down for longer than the window: the fate of the tries is unknown.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stand.provider_http.set("ok".parse().unwrap());
    wait_until(WAIT, "the notification reconciled", || async {
        (stand.count("UNKNOWN").await? == 1).then_some(())
    })
    .await;
    assert_eq!(stand.report().deliveries, 0, "never sent again blindly");
    assert_eq!(stand.count("SENT").await, Some(0));
}
