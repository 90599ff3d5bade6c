use paystream_cbs_debit::{Currency, MIGRATOR, load_accounts, parse_accounts_csv};
use paystream_testkit::{TestDatabase, fresh_database};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A migrated ledger; the database lives as long as the returned handle.
pub struct Ledger {
    pub pool: PgPool,
    _database: TestDatabase,
}

pub async fn ledger(accounts_csv: &str) -> Ledger {
    let database = fresh_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect(&database.url)
        .await
        .unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    load_accounts(&mut conn, &parse_accounts_csv(accounts_csv).unwrap())
        .await
        .unwrap();
    Ledger {
        pool,
        _database: database,
    }
}

pub fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

/// (debits_pending, debits_posted, credits_pending, credits_posted)
pub async fn balances(pool: &PgPool, account: &str) -> (i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT debits_pending, debits_posted, credits_pending, credits_posted \
         FROM accounts WHERE id = $1",
    )
    .bind(account)
    .fetch_one(pool)
    .await
    .unwrap()
}

pub async fn transfer_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM transfers")
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn assert_clean(pool: &PgPool) {
    let report = paystream_cbs_debit::check(pool).await.unwrap();
    assert!(report.is_clean(), "ledger check failed: {report:#?}");
}
