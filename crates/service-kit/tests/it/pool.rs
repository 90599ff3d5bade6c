//! A `BEGIN` cancelled while on the wire (a client hanging up, a timeout)
//! leaves sqlx 0.9.0's connection inside a transaction it no longer knows
//! of, and the pool lends it again: the next writes "succeed" inside that
//! transaction and vanish when the connection closes. The services' pools
//! (`pool::connect`) close such a connection when it comes back. The same
//! loop on a plain `PgPoolOptions` pool lost writes (it is how the guard was
//! shown to be needed; not a test here, as where the cancellation lands is
//! down to timing).

use std::time::Duration;

use paystream_service_kit::pool;
use paystream_testkit::fresh_database;
use sqlx::PgPool;

const WRITES: i32 = 200;

/// Each write through the pool follows a `BEGIN` dropped after its first
/// poll (the statement sent, its answer not read); then the pool closes and
/// a fresh connection counts what was committed.
async fn committed_after_cancelled_begins(pool: PgPool, url: &str) -> i64 {
    sqlx::query("CREATE TABLE writes (n integer)")
        .execute(&pool)
        .await
        .unwrap();
    for n in 0..WRITES {
        let cancelled = tokio::time::timeout(Duration::ZERO, pool.begin()).await;
        drop(cancelled);
        sqlx::query("INSERT INTO writes VALUES ($1)")
            .bind(n)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let fresh = PgPool::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM writes")
        .fetch_one(&fresh)
        .await
        .unwrap()
}

#[tokio::test]
async fn writes_after_a_cancelled_begin_are_committed() {
    let database = fresh_database().await;
    let pool = pool::connect(&database.url, 1).await.unwrap();
    let committed = committed_after_cancelled_begins(pool, &database.url).await;
    assert_eq!(committed, i64::from(WRITES));
}
