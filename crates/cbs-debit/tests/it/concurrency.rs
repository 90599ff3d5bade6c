use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use paystream_cbs_debit::{Hold, RefusalReason, Transfer, hold, settlement_shard};
use uuid::Uuid;

use crate::support::{Ledger, assert_clean, balances, eur, ledger};

const HOT: &str = "DE89370400440532013000";

/// Each hold in its own transaction, committed, as a handler's would be.
async fn hold_in_transaction(ledger: &Ledger, transfer: Transfer) -> Hold {
    let mut tx = ledger.pool.begin().await.unwrap();
    let outcome = hold(&mut tx, &transfer).await.unwrap();
    tx.commit().await.unwrap();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_account_covering_400_of_1000_concurrent_holds_holds_exactly_400() {
    let ledger =
        Arc::new(ledger(&format!("{HOT},EUR,40000,debits_must_not_exceed_credits\n")).await);
    let tasks = (0..1_000).map(|_| {
        let ledger = Arc::clone(&ledger);
        tokio::spawn(async move {
            let transfer = Transfer::hold(Uuid::new_v4(), HOT, 100, eur());
            hold_in_transaction(&ledger, transfer).await
        })
    });
    let outcomes: Vec<Hold> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let held = outcomes.iter().filter(|o| **o == Hold::Held).count();
    let insufficient = outcomes
        .iter()
        .filter(|o| matches!(o, Hold::Refused(r) if r.reason == RefusalReason::InsufficientFunds))
        .count();
    assert_eq!((held, insufficient), (400, 600));
    assert_eq!(balances(&ledger.pool, HOT).await, (40_000, 0, 0, 40_000));
    assert_clean(&ledger.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_on_many_accounts_all_succeed() {
    let ibans: Vec<String> = (0..200).map(|n| format!("ACC{n:04}")).collect();
    let file: String = ibans
        .iter()
        .map(|iban| format!("{iban},EUR,500,debits_must_not_exceed_credits\n"))
        .collect();
    let ledger = Arc::new(ledger(&file).await);
    let tasks = ibans.iter().flat_map(|iban| {
        (0..5).map(|_| {
            let ledger = Arc::clone(&ledger);
            let transfer = Transfer::hold(Uuid::new_v4(), iban, 100, eur());
            tokio::spawn(async move { hold_in_transaction(&ledger, transfer).await })
        })
    });
    let outcomes: Vec<Hold> = join_all(tasks.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(outcomes.iter().all(|o| *o == Hold::Held), "{outcomes:?}");
    for iban in &ibans {
        assert_eq!(balances(&ledger.pool, iban).await, (500, 0, 0, 500));
    }
    assert_clean(&ledger.pool).await;
}

/// A hold keeps its rows locked until its transaction commits. Holds on
/// debtors whose in-flight money lands on different settlement shards must
/// not wait for each other: here the first stays open while the second
/// commits. Were the in-flight account one row, the second would wait for
/// the first forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_hold_does_not_block_a_hold_on_another_account() {
    let first_iban = "ACC0000".to_owned();
    let second_iban = (1..)
        .map(|n| format!("ACC{n:04}"))
        .find(|iban| settlement_shard(iban) != settlement_shard(&first_iban))
        .unwrap();
    let ledger = ledger(&format!(
        "{first_iban},EUR,500,debits_must_not_exceed_credits\n\
         {second_iban},EUR,500,debits_must_not_exceed_credits\n"
    ))
    .await;

    let mut open = ledger.pool.begin().await.unwrap();
    let first = Transfer::hold(Uuid::new_v4(), &first_iban, 100, eur());
    assert_eq!(hold(&mut open, &first).await.unwrap(), Hold::Held);

    let second = Transfer::hold(Uuid::new_v4(), &second_iban, 100, eur());
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        hold_in_transaction(&ledger, second),
    )
    .await
    .expect("the second hold waited for the first transaction");
    assert_eq!(outcome, Hold::Held);

    open.commit().await.unwrap();
    assert_eq!(balances(&ledger.pool, &first_iban).await, (100, 0, 0, 500));
    assert_eq!(balances(&ledger.pool, &second_iban).await, (100, 0, 0, 500));
    assert_clean(&ledger.pool).await;
}
