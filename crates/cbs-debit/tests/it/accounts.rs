use paystream_cbs_debit::{
    LedgerError, LoadReport, equity_account, load_accounts, parse_accounts_csv,
};

use crate::support::{assert_clean, balances, eur, ledger, transfer_count};

const IBAN: &str = "DE89370400440532013000";

#[tokio::test]
async fn loading_the_same_file_twice_changes_nothing_and_a_higher_balance_tops_up() {
    let file = format!(
        "id,currency,opening_balance_minor,flags\n{IBAN},EUR,5000,debits_must_not_exceed_credits\n"
    );
    let ledger = ledger(&file).await;
    let mut conn = ledger.pool.acquire().await.unwrap();
    let transfers = transfer_count(&ledger.pool).await;

    let again = load_accounts(&mut conn, &parse_accounts_csv(&file).unwrap())
        .await
        .unwrap();
    assert_eq!(
        again,
        LoadReport {
            created: 0,
            topped_up: 0,
            unchanged: 1
        }
    );
    assert_eq!(transfer_count(&ledger.pool).await, transfers);
    assert_eq!(balances(&ledger.pool, IBAN).await, (0, 0, 0, 5_000));

    let raised = file.replace(",5000,", ",8000,");
    let topped = load_accounts(&mut conn, &parse_accounts_csv(&raised).unwrap())
        .await
        .unwrap();
    assert_eq!(
        topped,
        LoadReport {
            created: 0,
            topped_up: 1,
            unchanged: 0
        }
    );
    load_accounts(&mut conn, &parse_accounts_csv(&raised).unwrap())
        .await
        .unwrap();
    assert_eq!(balances(&ledger.pool, IBAN).await, (0, 0, 0, 8_000));
    assert_eq!(
        balances(&ledger.pool, &equity_account(&eur())).await,
        (0, 8_000, 0, 0)
    );

    // The file sets the flags: closing an account is loading it closed.
    let closed = raised.replace(
        "debits_must_not_exceed_credits",
        "debits_must_not_exceed_credits|closed",
    );
    load_accounts(&mut conn, &parse_accounts_csv(&closed).unwrap())
        .await
        .unwrap();
    let is_closed: bool = sqlx::query_scalar("SELECT closed FROM accounts WHERE id = $1")
        .bind(IBAN)
        .fetch_one(&ledger.pool)
        .await
        .unwrap();
    assert!(is_closed);
    assert_clean(&ledger.pool).await;
}

#[tokio::test]
async fn an_account_keeps_its_currency() {
    let ledger = ledger(&format!("{IBAN},EUR,100,\n")).await;
    let mut conn = ledger.pool.acquire().await.unwrap();
    let error = load_accounts(
        &mut conn,
        &parse_accounts_csv(&format!("{IBAN},USD,100,\n")).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, LedgerError::AccountCurrency { .. }),
        "{error:?}"
    );
}

#[test]
fn a_bad_accounts_file_names_the_line() {
    for (text, line) in [
        ("id,currency,opening_balance_minor,flags\nX,EUR,-1,\n", 2),
        ("X,EUR,1.50,\n", 1),
        ("X,ZZZ,1,\n", 1),
        ("X,EUR,1,overdraft\n", 1),
        ("X,EUR,1\n", 1),
        ("# comment\n\nX Y,EUR,1,\n", 3),
    ] {
        let error = parse_accounts_csv(text).unwrap_err();
        assert!(
            matches!(error, LedgerError::Csv { line: l, .. } if l == line),
            "{text:?}: {error:?}"
        );
    }
}
