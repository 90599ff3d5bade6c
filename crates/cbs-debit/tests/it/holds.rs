use paystream_cbs_debit::{
    DirectPosting, Hold, Kind, LedgerError, Rail, RefusalReason, Transfer, hold, post, post_direct,
    settlement_account, transfer_id, void,
};
use paystream_contract::ReasonCode;
use uuid::Uuid;

use crate::support::{assert_clean, balances, eur, ledger, transfer_count};

const ACCOUNTS: &str = "id,currency,opening_balance_minor,flags
DE89370400440532013000,EUR,10000,debits_must_not_exceed_credits
FR1420041010050500013M02606,EUR,10000,debits_must_not_exceed_credits|closed
NL91ABNA0417164300,EUR,10000,debits_must_not_exceed_credits|blocked
GB33BUKB20201555555555,GBP,10000,debits_must_not_exceed_credits
";
const DEBTOR: &str = "DE89370400440532013000";

fn rtgs() -> String {
    settlement_account(Rail::Rtgs, &eur(), DEBTOR)
}

#[tokio::test]
async fn a_hold_then_its_post_moves_the_amount_from_pending_to_posted() {
    let ledger = ledger(ACCOUNTS).await;
    let mut conn = ledger.pool.acquire().await.unwrap();
    let payment = Uuid::new_v4();
    let transfer = Transfer::hold(payment, DEBTOR, 2_500, eur());

    assert_eq!(hold(&mut conn, &transfer).await.unwrap(), Hold::Held);
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (2_500, 0, 0, 10_000));
    assert_eq!(balances(&ledger.pool, &rtgs()).await, (0, 0, 2_500, 0));

    let post_id = transfer_id(payment, Kind::PostPending);
    let posted = post(&mut conn, transfer.id, post_id).await.unwrap();
    assert_eq!((posted.id, posted.kind), (post_id, Kind::PostPending));
    assert_eq!(posted.hold, transfer);
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (0, 2_500, 0, 10_000));
    assert_eq!(balances(&ledger.pool, &rtgs()).await, (0, 0, 0, 2_500));

    // Posting again with the same id is the same outcome and moves nothing.
    let again = post(&mut conn, transfer.id, post_id).await.unwrap();
    assert!(again.repeated && !posted.repeated);
    assert_eq!(
        (again.id, again.kind, &again.hold),
        (posted.id, posted.kind, &posted.hold)
    );
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (0, 2_500, 0, 10_000));
    assert_clean(&ledger.pool).await;
}

#[tokio::test]
async fn a_hold_then_its_void_releases_the_amount() {
    let ledger = ledger(ACCOUNTS).await;
    let mut conn = ledger.pool.acquire().await.unwrap();
    let payment = Uuid::new_v4();
    let transfer = Transfer::hold(payment, DEBTOR, 10_000, eur());
    assert_eq!(hold(&mut conn, &transfer).await.unwrap(), Hold::Held);

    let void_id = transfer_id(payment, Kind::VoidPending);
    let voided = void(&mut conn, transfer.id, void_id).await.unwrap();
    assert_eq!(voided.kind, Kind::VoidPending);
    assert!(!voided.repeated);
    let again = void(&mut conn, transfer.id, void_id).await.unwrap();
    assert!(again.repeated);
    assert_eq!(
        (again.id, again.kind, &again.hold),
        (voided.id, voided.kind, &voided.hold)
    );
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (0, 0, 0, 10_000));
    assert_eq!(balances(&ledger.pool, &rtgs()).await, (0, 0, 0, 0));

    // The whole balance is available again.
    let again = Transfer::hold(Uuid::new_v4(), DEBTOR, 10_000, eur());
    assert_eq!(hold(&mut conn, &again).await.unwrap(), Hold::Held);
    assert_clean(&ledger.pool).await;
}

#[tokio::test]
async fn each_refusal_has_its_reason_and_moves_nothing() {
    let ledger = ledger(ACCOUNTS).await;
    let mut conn = ledger.pool.acquire().await.unwrap();
    let cases = [
        (
            "DE44500105175407324931",
            100,
            "EUR",
            RefusalReason::UnknownAccount,
            ReasonCode::IncorrectAccountNumber,
        ),
        (
            "FR1420041010050500013M02606",
            100,
            "EUR",
            RefusalReason::ClosedAccount,
            ReasonCode::ClosedAccountNumber,
        ),
        (
            "NL91ABNA0417164300",
            100,
            "EUR",
            RefusalReason::BlockedAccount,
            ReasonCode::BlockedAccount,
        ),
        (
            "GB33BUKB20201555555555",
            100,
            "EUR",
            RefusalReason::CurrencyMismatch,
            ReasonCode::NotAllowedCurrency,
        ),
        (
            DEBTOR,
            10_001,
            "EUR",
            RefusalReason::InsufficientFunds,
            ReasonCode::InsufficientFunds,
        ),
        (
            DEBTOR,
            0,
            "EUR",
            RefusalReason::InvalidAmount,
            ReasonCode::InvalidAmount,
        ),
        (
            DEBTOR,
            -5,
            "EUR",
            RefusalReason::InvalidAmount,
            ReasonCode::InvalidAmount,
        ),
    ];
    let transfers_before = transfer_count(&ledger.pool).await;
    for (account, amount, currency, reason, code) in cases {
        let currency = paystream_cbs_debit::Currency::parse(currency).unwrap();
        let transfer = Transfer::hold(Uuid::new_v4(), account, amount, currency.clone());
        let Hold::Refused(refusal) = hold(&mut conn, &transfer).await.unwrap() else {
            panic!("{account} {amount} was held, expected {reason:?}");
        };
        assert_eq!(
            (refusal.reason, &refusal.code),
            (reason, &code),
            "{account} {amount}"
        );
        assert!(!refusal.text.is_empty());

        let card = Transfer::card(Uuid::new_v4(), account, amount, currency);
        let DirectPosting::Refused(refusal) = post_direct(&mut conn, &card).await.unwrap() else {
            panic!("card debit of {account} {amount} was posted, expected {reason:?}");
        };
        assert_eq!(refusal.reason, reason);
    }
    assert_eq!(transfer_count(&ledger.pool).await, transfers_before);
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (0, 0, 0, 10_000));
    assert_clean(&ledger.pool).await;
}

#[tokio::test]
async fn the_same_hold_twice_moves_money_once() {
    let ledger = ledger(ACCOUNTS).await;
    let mut conn = ledger.pool.acquire().await.unwrap();
    let transfer = Transfer::hold(Uuid::new_v4(), DEBTOR, 700, eur());
    assert_eq!(hold(&mut conn, &transfer).await.unwrap(), Hold::Held);
    assert_eq!(hold(&mut conn, &transfer).await.unwrap(), Hold::AlreadyHeld);
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (700, 0, 0, 10_000));
    assert_clean(&ledger.pool).await;
}

#[tokio::test]
async fn the_same_id_with_other_fields_is_a_conflict_and_moves_nothing() {
    let ledger = ledger(ACCOUNTS).await;
    let mut conn = ledger.pool.acquire().await.unwrap();
    let transfer = Transfer::hold(Uuid::new_v4(), DEBTOR, 700, eur());
    assert_eq!(hold(&mut conn, &transfer).await.unwrap(), Hold::Held);

    let different = Transfer {
        amount_minor: 701,
        ..transfer.clone()
    };
    let error = hold(&mut conn, &different).await.unwrap_err();
    assert!(
        matches!(error, LedgerError::Conflict { id } if id == transfer.id),
        "{error:?}"
    );
    // The hold's id used as a single-phase transfer is a conflict too.
    let error = post_direct(&mut conn, &transfer).await.unwrap_err();
    assert!(matches!(error, LedgerError::Conflict { .. }), "{error:?}");
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (700, 0, 0, 10_000));
    assert_clean(&ledger.pool).await;
}

#[tokio::test]
async fn a_hold_is_resolved_at_most_once() {
    let ledger = ledger(ACCOUNTS).await;
    let mut conn = ledger.pool.acquire().await.unwrap();
    let voided = Transfer::hold(Uuid::new_v4(), DEBTOR, 100, eur());
    let posted = Transfer::hold(Uuid::new_v4(), DEBTOR, 200, eur());
    hold(&mut conn, &voided).await.unwrap();
    hold(&mut conn, &posted).await.unwrap();
    void(&mut conn, voided.id, Uuid::new_v4()).await.unwrap();
    post(&mut conn, posted.id, Uuid::new_v4()).await.unwrap();

    let error = post(&mut conn, voided.id, Uuid::new_v4())
        .await
        .unwrap_err();
    assert_resolved_by(&error, Kind::VoidPending);
    let error = void(&mut conn, posted.id, Uuid::new_v4())
        .await
        .unwrap_err();
    assert_resolved_by(&error, Kind::PostPending);
    // A second post under another id is refused too.
    let error = post(&mut conn, posted.id, Uuid::new_v4())
        .await
        .unwrap_err();
    assert_resolved_by(&error, Kind::PostPending);

    let unknown = Uuid::new_v4();
    let error = post(&mut conn, unknown, Uuid::new_v4()).await.unwrap_err();
    assert!(
        matches!(error, LedgerError::UnknownHold { pending_id } if pending_id == unknown),
        "{error:?}"
    );
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (0, 200, 0, 10_000));
    assert_clean(&ledger.pool).await;
}

#[tokio::test]
async fn a_card_debit_is_posted_once() {
    let ledger = ledger(ACCOUNTS).await;
    let mut conn = ledger.pool.acquire().await.unwrap();
    let card = Transfer::card(Uuid::new_v4(), DEBTOR, 1_234, eur());
    assert_eq!(
        post_direct(&mut conn, &card).await.unwrap(),
        DirectPosting::Posted
    );
    assert_eq!(
        post_direct(&mut conn, &card).await.unwrap(),
        DirectPosting::AlreadyPosted
    );
    assert_eq!(balances(&ledger.pool, DEBTOR).await, (0, 1_234, 0, 10_000));
    let card_settlement = settlement_account(Rail::Card, &eur(), DEBTOR);
    assert_eq!(
        balances(&ledger.pool, &card_settlement).await,
        (0, 0, 0, 1_234)
    );
    assert_clean(&ledger.pool).await;
}

#[tokio::test]
async fn transfers_cannot_be_updated_or_deleted() {
    let ledger = ledger(ACCOUNTS).await;
    let update = sqlx::query("UPDATE transfers SET amount_minor = amount_minor + 1")
        .execute(&ledger.pool)
        .await;
    assert!(update.unwrap_err().to_string().contains("immutable"));
    let delete = sqlx::query("DELETE FROM transfers")
        .execute(&ledger.pool)
        .await;
    assert!(delete.unwrap_err().to_string().contains("immutable"));
}

#[tokio::test]
async fn check_reports_balances_that_disagree_with_the_transfers() {
    let ledger = ledger(ACCOUNTS).await;
    assert_clean(&ledger.pool).await;
    sqlx::query("UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = $1")
        .bind(DEBTOR)
        .execute(&ledger.pool)
        .await
        .unwrap();
    let report = paystream_cbs_debit::check(&ledger.pool).await.unwrap();
    assert!(!report.is_clean());
    assert_eq!(
        report.totals.credits_posted,
        report.totals.debits_posted + 1
    );
    let accounts: Vec<_> = report
        .mismatched
        .iter()
        .map(|m| m.account.as_str())
        .collect();
    assert_eq!(accounts, [DEBTOR]);
}

fn assert_resolved_by(error: &LedgerError, kind: Kind) {
    assert!(
        matches!(error, LedgerError::AlreadyResolved { by, .. } if *by == kind),
        "{error:?}"
    );
}
