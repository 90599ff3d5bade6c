//! A rail outage of 30 seconds: payments debited meanwhile wait (nothing is
//! rejected for it, nothing lost) and settle once the rail is back.

use std::time::Duration;

use paystream_contract::{RtgsRejected, RtgsSettled};
use paystream_testkit::wait_until;

use crate::stand::{Stand, WAIT, debited};

const PAYMENTS: usize = 40;
const OUTAGE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_30_second_rail_outage_delays_payments_and_loses_none() {
    let stand = Stand::new("rtgs-outage", "settle=20ms").await;
    let _gateway = stand.start().await;
    stand.rail_http.set("down".parse().unwrap());
    let payments: Vec<_> = (0..PAYMENTS).map(|_| debited()).collect();
    stand.send(payments.clone()).await;

    // The gateway keeps trying while the rail answers 503.
    wait_until(WAIT, "every payment recorded and tried", || async {
        let tried: i64 =
            sqlx::query_scalar("SELECT count(*) FROM rtgs_submissions WHERE attempts >= 2")
                .fetch_one(&stand.pool)
                .await
                .ok()?;
        (tried == PAYMENTS as i64).then_some(())
    })
    .await;
    // The outage is the scenario, not a wait for a condition.
    tokio::time::sleep(OUTAGE).await;
    let states = stand.states().await;
    assert_eq!(states.get("SETTLED"), None, "{states:?}");
    assert_eq!(states.get("REJECTED"), None, "{states:?}");
    assert_eq!(
        stand.report().distinct_uetrs,
        0,
        "the rail saw nothing while down"
    );

    stand.rail_http.set("ok".parse().unwrap());
    stand.await_resolved(PAYMENTS as i64, WAIT).await;
    assert_eq!(
        stand.states().await.get("SETTLED"),
        Some(&(PAYMENTS as i64))
    );
    assert_eq!(stand.events::<RtgsSettled>().await.len(), PAYMENTS);
    assert!(stand.events::<RtgsRejected>().await.is_empty());
    let rail = stand.report();
    assert_eq!(rail.distinct_uetrs, PAYMENTS as u64);
    assert_eq!(rail.settled, PAYMENTS as u64);
    assert!(rail.settled_twice.is_empty());
}
