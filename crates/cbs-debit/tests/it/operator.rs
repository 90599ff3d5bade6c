//! The operator commands, run as the binary is run: `accounts load` and
//! `ledger check` with its exit status.

use std::process::Output;

use paystream_testkit::fresh_database;
use sqlx::PgPool;
use tokio::process::Command;

const FILE: &str = "id,currency,opening_balance_minor,flags,cards
DE89370400440532013000,EUR,100000,debits_must_not_exceed_credits,4821337
GB33BUKB20201555555555,GBP,5000,debits_must_not_exceed_credits|blocked
";

async fn cbs_debit(args: &[&str], database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cbs-debit"))
        .args(args)
        .args(["--database-url", database_url])
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn accounts_load_is_idempotent_and_ledger_check_exits_non_zero_on_a_violation() {
    let database = fresh_database().await;
    let dir = std::env::temp_dir().join(format!("cbs-debit-{}", database.name));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("accounts.csv");
    std::fs::write(&file, FILE).unwrap();
    let path = file.to_str().unwrap();

    let first = cbs_debit(&["accounts", "load", path], &database.url).await;
    assert!(first.status.success(), "{first:?}");
    assert!(stdout(&first).contains("2 created"), "{}", stdout(&first));
    let again = cbs_debit(&["accounts", "load", path], &database.url).await;
    assert!(stdout(&again).contains("0 created, 0 topped up, 2 unchanged"));

    let clean = cbs_debit(&["ledger", "check"], &database.url).await;
    assert!(clean.status.success(), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("ledger check: clean"));

    // A balance changed behind the ledger's back: the sums no longer
    // match and the account disagrees with its transfers.
    let pool = PgPool::connect(&database.url).await.unwrap();
    sqlx::query(
        "UPDATE accounts SET credits_posted = credits_posted + 1 \
         WHERE id = 'DE89370400440532013000'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let broken = cbs_debit(&["ledger", "check"], &database.url).await;
    assert_eq!(broken.status.code(), Some(1), "{}", stdout(&broken));
    let report = stdout(&broken);
    assert!(
        report.contains("MISMATCH DE89370400440532013000"),
        "{report}"
    );
    assert!(report.contains("ledger check: VIOLATIONS"), "{report}");

    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "DE00,EUR,-1,\n").unwrap();
    let refused = cbs_debit(&["accounts", "load", bad.to_str().unwrap()], &database.url).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("line 1"));
}
