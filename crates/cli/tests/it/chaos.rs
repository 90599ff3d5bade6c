//! The bounded chaos run: 1,000 payments through the whole pipeline as
//! processes while SIGKILL hits each of the six services in turn (order
//! from a printed seed) and the broker once, each started again; then the pipeline
//! drains and every record is reconciled: one final state per payment,
//! every service's own records in agreement, the rail settling each UETR
//! at most once, the provider delivering each notification once, the
//! ledger and the audit chains checking clean, and no dead letter.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use paystream_cli::load::{accounts_csv, contacts_csv, payer_account};
use paystream_cli::reconcile::{self, Args};
use paystream_testkit::wait_until;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::Value;

use paystream_e2e::CLOSED_CREDITOR;
use paystream_e2e::processes::{Processes, SERVICES};

const PAYERS: usize = 32;

/// 1,000 in `make test`; `make chaos` runs 10,000
/// (`PAYSTREAM_CHAOS_PAYMENTS`).
fn payments() -> usize {
    std::env::var("PAYSTREAM_CHAOS_PAYMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}

fn body(n: usize) -> Value {
    let creditor = if n.is_multiple_of(25) {
        CLOSED_CREDITOR
    } else {
        "FR1420041010050500013M02606"
    };
    serde_json::json!({
        "amount": format!("{}.{:02}", 1 + n % 9, n % 100), "currency": "EUR",
        "debtor": { "name": "Emily Clarke", "account": payer_account(n % PAYERS), "agentBic": "NWBKGB2L", "country": "GB" },
        "creditor": { "name": "Camille Moreau", "account": creditor, "agentBic": "BNPAFRPP", "country": "FR" },
        "clientIp": "81.2.69.142"
    })
}

/// Submits payment `n` until the gateway accepts it: a retry after a
/// killed gateway carries the same Idempotency-Key, so it is the same
/// payment.
async fn submit(http: &reqwest::Client, gateway: &str, run: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = http
            .post(format!("{gateway}/v1/payments"))
            .bearer_auth("paystream-dev-key")
            .header("Idempotency-Key", format!("chaos-{run}-{n}"))
            .json(&body(n))
            .send()
            .await;
        if let Ok(answer) = answer
            && answer.status() == 202
            && let Ok(accepted) = answer.json::<Value>().await
            && let Some(id) = accepted["paymentId"].as_str()
        {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "payment {n} never accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sigkill_of_every_service_in_turn_reconciles_to_zero() {
    let seed: u64 = std::env::var("PAYSTREAM_CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos seed {seed} (PAYSTREAM_CHAOS_SEED={seed} repeats this kill order)");
    let mut order = SERVICES.to_vec();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));

    let payments_total = payments();
    let mut processes = Processes::start("chaos").await;
    // The payers' accounts beside the demo's.
    let ledger = sqlx::PgPool::connect(&processes.databases["cbs-debit"])
        .await
        .unwrap();
    paystream_cbs_debit::operator::load_accounts_text(&ledger, &accounts_csv(PAYERS))
        .await
        .unwrap();
    let contacts = contacts_csv(PAYERS);
    processes
        .operator("notifications", &["contacts", "load", "-"], &contacts)
        .await;
    let gateway = processes.url("gateway");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut ids = Vec::with_capacity(payments_total);
    // Each service's kill lands while a slice of the payments is being
    // sent, and the broker's once, in the middle.
    let slices = order.len() + 2;
    let per_slice = payments_total.div_ceil(slices);
    let payments: Vec<usize> = (0..payments_total).collect();
    let mut victims = order.iter().copied();
    for (n, slice) in payments.chunks(per_slice).enumerate() {
        let victim = if n == slices / 2 {
            Some("broker")
        } else {
            victims.next()
        };
        let send =
            futures::future::join_all(slice.iter().map(|i| submit(&http, &gateway, &run, *i)));
        let kill = async {
            // Into the slice, with requests in flight.
            tokio::time::sleep(Duration::from_millis(100 + seed % 200)).await;
            match victim {
                Some("broker") => {
                    println!("SIGKILL the broker during payments {}..", slice[0]);
                    processes.kill_and_restart_broker().await;
                }
                Some(victim) => {
                    println!("SIGKILL {victim} during payments {}..", slice[0]);
                    processes.kill_and_restart(victim).await;
                }
                None => {}
            }
        };
        let (sent, ()) = tokio::join!(send, kill);
        ids.extend(sent);
    }

    // Drained: every payment in a final state at the gateway.
    let drain = Duration::from_secs(300 + payments_total as u64 / 20);
    let finals = wait_until(drain, "every payment final", || async {
        let mut finals = BTreeMap::new();
        for id in &ids {
            let view = processes.payment(&http, id).await?;
            let status = view["status"].as_str()?.to_owned();
            if !matches!(status.as_str(), "SETTLED" | "REVERSED" | "REJECTED") {
                return None;
            }
            *finals.entry(status).or_insert(0usize) += 1;
        }
        Some(finals)
    })
    .await;
    println!("final states: {finals:?}");
    assert_eq!(finals.values().sum::<usize>(), payments_total);
    assert_eq!(
        finals.get("REVERSED"),
        Some(&(payments_total / 25)),
        "{finals:?}"
    );

    // Every service's own records agree, once the read models caught up.
    let args = Args {
        gateway_database_url: processes.databases["gateway"].clone(),
        validation_database_url: processes.databases["validation"].clone(),
        cbs_debit_database_url: processes.databases["cbs-debit"].clone(),
        rtgs_gateway_database_url: processes.databases["rtgs-gateway"].clone(),
        audit_database_url: processes.databases["audit"].clone(),
        rail_report_url: format!("{}/admin/rtgs/report", processes.url("sandbox")),
        json: false,
    };
    let found = wait_until(
        Duration::from_secs(120),
        "every service's records in agreement",
        || async {
            let found = reconcile::reconcile(&args).await.ok()?;
            found.disagreements.is_empty().then_some(found)
        },
    )
    .await;
    print!("{}", reconcile::render(&found));

    // Every notification delivered and marked: the provider's record
    // against the service's.
    let notifications = sqlx::PgPool::connect(&processes.databases["notifications"])
        .await
        .unwrap();
    let sent: i64 = wait_until(
        Duration::from_secs(120),
        "every notification sent",
        || async {
            let (open, sent): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE state IN ('PENDING', 'SENDING')), \
                    count(*) FILTER (WHERE state = 'SENT') FROM notifications",
            )
            .fetch_one(&notifications)
            .await
            .ok()?;
            (open == 0).then_some(sent)
        },
    )
    .await;
    let rail: Value = reqwest::get(format!("{}/admin/rtgs/report", processes.url("sandbox")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rail["settledTwice"], serde_json::json!([]), "{rail}");
    let provider: Value = reqwest::get(format!("{}/admin/notify/report", processes.url("sandbox")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        provider["deliveredTwice"],
        serde_json::json!([]),
        "{provider}"
    );
    assert!(sent > 0, "the payers are told");
    assert_eq!(
        provider["deliveries"], sent,
        "one delivery per notification sent"
    );

    let ledger_check = paystream_cbs_debit::check(&ledger).await.unwrap();
    assert!(ledger_check.is_clean(), "{ledger_check}");
    let audit = sqlx::PgPool::connect(&processes.databases["audit"])
        .await
        .unwrap();
    let chains = paystream_audit::verify(&audit).await.unwrap();
    assert!(
        chains.is_clean(),
        "the audit chains do not verify:\n{}",
        chains.mismatch_lines()
    );

    let letters = {
        let kafka = processes.pipeline.kafka.clone();
        tokio::task::spawn_blocking(move || paystream_cli::load::dead_letters(&kafka))
            .await
            .unwrap()
            .unwrap()
    };
    let letters: i64 = letters.values().sum();
    let entries: i64 = chains.chains.iter().map(|chain| chain.length).sum();
    let row = |check: &str, found: String| vec![check.to_owned(), found];
    print!(
        "{}",
        paystream_cli::table::render(
            &["CHECK", "FOUND"],
            &[
                row("payments accepted", ids.len().to_string()),
                row("final states at the gateway", format!("{finals:?}")),
                row(
                    "payments the services disagree on",
                    found.disagreements.len().to_string()
                ),
                row(
                    "rail: UETRs seen / settled twice",
                    format!(
                        "{} / {}",
                        rail["distinctUetrs"],
                        rail["settledTwice"].as_array().map_or(0, Vec::len)
                    )
                ),
                row(
                    "notifications sent / delivered / delivered twice",
                    format!(
                        "{sent} / {} / {}",
                        provider["deliveries"],
                        provider["deliveredTwice"].as_array().map_or(0, Vec::len)
                    )
                ),
                row(
                    "ledger check",
                    if ledger_check.is_clean() {
                        "clean".into()
                    } else {
                        "VIOLATED".into()
                    }
                ),
                row(
                    "audit chains / entries verified",
                    format!("{} / {entries}", chains.chains.len())
                ),
                row("dead letters", letters.to_string()),
            ],
        )
    );
    assert_eq!(letters, 0, "a crash must not produce dead letters");
    println!(
        "chaos seed {seed}: {payments_total} payments, every service and the broker killed once, reconciled to zero"
    );
}
