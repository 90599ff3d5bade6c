//! Connections kept warm between statements: reused while they work,
//! given back and replaced once they do not.

use std::time::Duration;

use paystream_bus::pool::{self, Warm, WarmConnection};
use paystream_testkit::{fresh_database, wait_until};
use sqlx::PgPool;

async fn backend_pid(connection: &mut WarmConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut **connection)
        .await
}

async fn pool() -> PgPool {
    pool::options()
        .max_connections(4)
        .connect(&fresh_database().await.url)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_kept_connection_is_the_one_the_next_take_gets() {
    let warm = Warm::new(pool().await);
    let mut first = warm.take().await.unwrap();
    let pid = backend_pid(&mut first).await;
    first.keep_if_ok(&pid);
    let mut second = warm.take().await.unwrap();
    assert_eq!(backend_pid(&mut second).await.unwrap(), pid.unwrap());
}

#[tokio::test]
async fn a_connection_that_died_while_kept_fails_one_statement_and_is_replaced() {
    let pool = pool().await;
    let warm = Warm::new(pool.clone());
    let mut kept = warm.take().await.unwrap();
    let pid = backend_pid(&mut kept).await.unwrap();
    kept.keep();
    // The database ends the kept connection's server process, as a restart
    // or an administrator would.
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&pool)
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "the backend to end", || async {
        let alive: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&pool)
            .await
            .unwrap();
        (alive == 0).then_some(())
    })
    .await;

    // Kept for less than the idle check's threshold, so not pinged: its
    // statement fails, as a transient error the caller retries.
    let mut dead = warm.take().await.unwrap();
    let failed = backend_pid(&mut dead).await;
    assert!(failed.is_err(), "a terminated backend answered: {failed:?}");
    dead.keep_if_ok(&failed);

    let mut next = warm.take().await.unwrap();
    let replaced = backend_pid(&mut next).await.unwrap();
    assert_ne!(replaced, pid);
}

#[tokio::test]
async fn the_last_connection_of_a_pool_is_given_back_not_kept() {
    let pool = pool::options()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&fresh_database().await.url)
        .await
        .unwrap();
    let warm = Warm::new(pool.clone());
    let mut writer = warm.take().await.unwrap();
    let pid = backend_pid(&mut writer).await;
    writer.keep_if_ok(&pid);
    // Kept, it would leave the pool nothing to give and this would time out.
    let mut other = pool.acquire().await.unwrap();
    let other_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *other)
        .await
        .unwrap();
    assert_eq!(other_pid, pid.unwrap(), "the pool's one connection");
}
