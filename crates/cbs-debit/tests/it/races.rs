//! Two transactions writing the same transfer or resolving the same hold at
//! once: the second waits on the first's row lock, then fails with `Raced`
//! and rolls back, so money moves once.

use std::time::Duration;

use paystream_cbs_debit::{Hold, LedgerError, Transfer, hold, post, void};
use paystream_testkit::wait_until;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{assert_clean, balances, eur, ledger};

const DEBTOR: &str = "DE89370400440532013000";
const ACCOUNTS: &str = "DE89370400440532013000,EUR,10000,debits_must_not_exceed_credits\n";

/// Waits until some transaction in this database waits for a lock.
async fn someone_waits(pool: &PgPool) {
    wait_until(
        Duration::from_secs(10),
        "a transaction waiting on a lock",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND datname = current_database()",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_same_hold_in_two_concurrent_transactions_moves_money_once() {
    let ledger = ledger(ACCOUNTS).await;
    let transfer = Transfer::hold(Uuid::new_v4(), DEBTOR, 300, eur());

    let mut first = ledger.pool.begin().await.unwrap();
    assert_eq!(hold(&mut first, &transfer).await.unwrap(), Hold::Held);
    let second = {
        let pool = ledger.pool.clone();
        let transfer = transfer.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let outcome = hold(&mut tx, &transfer).await;
            if outcome.is_ok() {
                tx.commit().await.unwrap();
            }
            outcome
        })
    };
    someone_waits(&ledger.pool).await;
    first.commit().await.unwrap();

    let error = second.await.unwrap().unwrap_err();
    assert!(
        matches!(error, LedgerError::Raced { id } if id == transfer.id),
        "{error:?}"
    );
    // The retry finds the committed hold.
    let mut conn = ledger.pool.acquire().await.unwrap();
    assert_eq!(hold(&mut conn, &transfer).await.unwrap(), Hold::AlreadyHeld);
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (300, 0, 0, 10_000));
    assert_clean(&ledger.pool).await;
}

#[tokio::test]
async fn a_post_and_a_void_racing_for_one_hold_resolve_it_once() {
    let ledger = ledger(ACCOUNTS).await;
    let transfer = Transfer::hold(Uuid::new_v4(), DEBTOR, 300, eur());
    let mut conn = ledger.pool.acquire().await.unwrap();
    hold(&mut conn, &transfer).await.unwrap();

    let mut poster = ledger.pool.begin().await.unwrap();
    post(&mut poster, transfer.id, Uuid::new_v4())
        .await
        .unwrap();
    let voider = {
        let pool = ledger.pool.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let outcome = void(&mut tx, transfer.id, Uuid::new_v4()).await;
            if outcome.is_ok() {
                tx.commit().await.unwrap();
            }
            outcome
        })
    };
    someone_waits(&ledger.pool).await;
    poster.commit().await.unwrap();

    let error = voider.await.unwrap().unwrap_err();
    assert!(matches!(error, LedgerError::Raced { .. }), "{error:?}");
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (0, 300, 0, 10_000));
    assert_clean(&ledger.pool).await;
}
