//! notifications killed with SIGKILL at three points during 2,000
//! payments, with a share of the provider's answers arriving only after
//! the service gave up (so kills land between the provider's delivery and
//! the mark): the provider's own record shows exactly one delivery per
//! notification.

use std::collections::HashSet;
use std::time::Duration;

use paystream_contract::NotificationSent;
use paystream_testkit::wait_until;
use uuid::Uuid;

use crate::stand::{Stand, settled};

const PAYMENTS: usize = 2_000;

#[tokio::test]
async fn sigkill_during_2000_payments_delivers_each_notification_once() {
    let contacts: String = std::iter::once("customer_ref,channel,address\n".to_owned())
        .chain((0..100).map(|n| format!("DE{n:020},SMS,+4915100{n:05}\n")))
        .collect();
    let stand = Stand::new(
        "notify-crash",
        &contacts,
        "late=0.05,late-by=2s",
        Duration::from_secs(3600),
    )
    .await;
    let payments: Vec<_> = (0..PAYMENTS)
        .map(|n| settled(&format!("DE{:020}", n % 100)))
        .collect();
    stand.send(payments.clone()).await;

    let mut service = stand.spawn();
    let mut kills = Vec::new();
    for threshold in [PAYMENTS / 5, PAYMENTS / 2, PAYMENTS * 4 / 5] {
        let at = wait_until(
            Duration::from_secs(180),
            "sent past the next kill point",
            || async {
                let sent = stand.count("SENT").await?;
                (sent >= threshold as i64).then_some(sent)
            },
        )
        .await;
        service.start_kill().unwrap();
        service.wait().await.unwrap();
        kills.push(at);
        service = stand.spawn();
    }
    assert!(kills.iter().all(|at| *at < PAYMENTS as i64), "{kills:?}");
    stand
        .await_sent(PAYMENTS as i64, Duration::from_secs(300))
        .await;
    service.start_kill().unwrap();
    service.wait().await.unwrap();

    let provider = stand.report();
    assert!(
        provider.delivered_twice.is_empty(),
        "{:?}",
        provider.delivered_twice
    );
    assert_eq!(provider.distinct_keys, PAYMENTS as u64);
    assert_eq!(provider.deliveries, PAYMENTS as u64);
    let announced: HashSet<Uuid> = stand
        .events::<NotificationSent>()
        .await
        .iter()
        .map(|n| n.notification_id)
        .collect();
    assert_eq!(announced.len(), PAYMENTS);
    println!(
        "killed at {kills:?} sent; provider: {} deliveries, {} replays",
        provider.deliveries, provider.replays
    );
}
