//! cbs-debit killed with SIGKILL three times during 5,000 payments and
//! started again: every payment is held exactly once or refused exactly
//! once, every answer is announced under one id, and the ledger check
//! passes with zero difference.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use paystream_contract::{AccountDebited, PaymentRejected, ReasonCode, Topic};
use paystream_testkit::pipeline::header;
use paystream_testkit::wait_until;
use uuid::Uuid;

use crate::stand::{PARTITIONS, Stand, validated};

const ACCOUNTS: usize = 500;
const PER_ACCOUNT: usize = 10;
const TOTAL: i64 = (ACCOUNTS * PER_ACCOUNT) as i64;
const AMOUNT: i64 = 100;
/// Covers nine of an account's ten payments: the tenth is refused (AM04).
const OPENING: i64 = 950;

async fn count(stand: &Stand, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&stand.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn sigkill_during_5000_payments_holds_or_refuses_each_exactly_once() {
    let ibans: Vec<String> = (0..ACCOUNTS).map(|n| format!("DE{n:020}")).collect();
    let file: String = ibans
        .iter()
        .map(|iban| format!("{iban},EUR,{OPENING},debits_must_not_exceed_credits\n"))
        .collect();
    let stand = Stand::new("cbs-crash", &file).await;
    let payments: Vec<_> = (0..PER_ACCOUNT)
        .flat_map(|_| ibans.iter().map(|iban| validated(iban, AMOUNT, "EUR")))
        .collect();
    stand
        .pipeline
        .producer
        .send_all(payments.clone())
        .await
        .unwrap();

    let mut service = stand.spawn();
    let mut kills = Vec::new();
    for threshold in [TOTAL / 5, TOTAL / 2, TOTAL * 4 / 5] {
        let decided = wait_until(
            Duration::from_secs(180),
            "decisions past the next kill point",
            || async {
                let decided = count(&stand, "SELECT count(*) FROM debit_decisions").await;
                (decided >= threshold).then_some(decided)
            },
        )
        .await;
        service.start_kill().unwrap();
        service.wait().await.unwrap();
        kills.push(decided);
        service = stand.spawn();
    }
    assert!(
        kills.iter().all(|decided| *decided < TOTAL),
        "every kill must land mid-stream: {kills:?}"
    );
    wait_until(
        Duration::from_secs(300),
        "every payment decided and the outbox drained",
        || async {
            let decided = count(&stand, "SELECT count(*) FROM debit_decisions").await;
            let pending = count(&stand, "SELECT count(*) FROM bus_outbox").await;
            (decided >= TOTAL && pending == 0).then_some(())
        },
    )
    .await;
    service.start_kill().unwrap();
    service.wait().await.unwrap();

    // The ledger: one decision per payment, one hold per held payment.
    let decisions: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT payment_id, decision FROM debit_decisions")
            .fetch_all(&stand.pool)
            .await
            .unwrap();
    let sent: HashSet<Uuid> = payments.iter().map(|p| p.payment_id).collect();
    let decided: HashSet<Uuid> = decisions.iter().map(|d| d.0).collect();
    assert_eq!(decisions.len() as i64, TOTAL);
    assert_eq!(decided, sent);
    let held: HashSet<Uuid> = decisions
        .iter()
        .filter(|d| d.1 == "HELD")
        .map(|d| d.0)
        .collect();
    assert_eq!(held.len(), ACCOUNTS * (PER_ACCOUNT - 1));
    let holds: Vec<Uuid> =
        sqlx::query_scalar("SELECT payment_id FROM transfers WHERE kind = 'PENDING'")
            .fetch_all(&stand.pool)
            .await
            .unwrap();
    assert_eq!(holds.len(), held.len(), "one hold per held payment");
    assert_eq!(holds.into_iter().collect::<HashSet<_>>(), held);
    for iban in &ibans {
        assert_eq!(
            stand.balances(iban).await,
            (AMOUNT * (PER_ACCOUNT as i64 - 1), 0, 0, OPENING),
            "{iban}"
        );
    }
    stand.assert_clean().await;

    // The announcements: one event id per answer, whatever was republished.
    let debited = announced::<AccountDebited>(&stand, Topic::AccountDebited).await;
    let rejected = announced::<PaymentRejected>(&stand, Topic::PaymentRejected).await;
    assert_eq!(debited.values().copied().collect::<HashSet<_>>(), held);
    assert_eq!(debited.len(), held.len());
    assert_eq!(rejected.len(), ACCOUNTS);
    assert!(rejected.values().all(|payment| !held.contains(payment)));
    println!(
        "killed at {kills:?} decisions; {} held, {} refused (AM04), ledger check clean",
        debited.len(),
        rejected.len()
    );
}

/// Event id → payment id of every record on `topic`; a record republished
/// after a crash carries the id it had, so it adds nothing here.
async fn announced<E>(stand: &Stand, topic: Topic) -> HashMap<Uuid, Uuid>
where
    E: paystream_contract::Event + PaymentOf,
{
    let mut ids = HashMap::new();
    for record in stand.pipeline.read_all(topic, PARTITIONS).await {
        let event: E = stand.decode(&record).await;
        let id: Uuid = header(&record, "eventId").unwrap().parse().unwrap();
        if let Some(previous) = ids.insert(id, event.payment()) {
            assert_eq!(previous, event.payment(), "one id, two payments");
        }
        event.check();
    }
    ids
}

trait PaymentOf {
    fn payment(&self) -> Uuid;
    fn check(&self) {}
}

impl PaymentOf for AccountDebited {
    fn payment(&self) -> Uuid {
        self.payment_id
    }
}

impl PaymentOf for PaymentRejected {
    fn payment(&self) -> Uuid {
        self.payment_id
    }
    fn check(&self) {
        assert_eq!(self.reason_code, ReasonCode::InsufficientFunds);
    }
}
