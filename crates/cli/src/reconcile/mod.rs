//! `paystream reconcile`: compares what each service's own records say —
//! accepted at the gateway, decided by validation, held / posted / voided
//! in the ledger, submitted at rtgs-gateway, settled at the rail, stored
//! by the audit log — prints the totals per state and currency, and lists
//! every payment on which two of them disagree. The month-end question
//! ("three systems, three totals") answered in one command, any day.

pub mod rules;

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::table;
use rules::{Ledger, Views};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_DATABASE_URL",
        default_value = "postgres://gateway:gateway@127.0.0.1:5432/gateway"
    )]
    pub gateway_database_url: String,
    #[arg(
        long,
        env = "PAYSTREAM_VALIDATION_DATABASE_URL",
        default_value = "postgres://validation:validation@127.0.0.1:5432/validation"
    )]
    pub validation_database_url: String,
    #[arg(
        long,
        env = "PAYSTREAM_CBS_DEBIT_DATABASE_URL",
        default_value = "postgres://cbs_debit:cbs_debit@127.0.0.1:5432/cbs_debit"
    )]
    pub cbs_debit_database_url: String,
    #[arg(
        long,
        env = "PAYSTREAM_RTGS_GATEWAY_DATABASE_URL",
        default_value = "postgres://rtgs_gateway:rtgs_gateway@127.0.0.1:5432/rtgs_gateway"
    )]
    pub rtgs_gateway_database_url: String,
    /// The audit log's database; `none` to leave the audit out.
    #[arg(
        long,
        env = "PAYSTREAM_AUDIT_DATABASE_URL",
        default_value = "postgres://audit:audit@127.0.0.1:5432/audit"
    )]
    pub audit_database_url: String,
    /// The rail's own report (the sandbox's admin); `none` to leave it out.
    #[arg(
        long,
        env = "PAYSTREAM_RAIL_REPORT_URL",
        default_value = "http://127.0.0.1:8090/admin/rtgs/report"
    )]
    pub rail_report_url: String,
    /// One JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// What reconciling found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconciliation {
    /// (overall state, currency) → (payments, volume in minor units).
    pub totals: Vec<Total>,
    pub disagreements: Vec<Disagreement>,
    pub payments: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Total {
    pub state: String,
    pub currency: String,
    pub payments: i64,
    pub volume_minor: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Disagreement {
    pub payment_id: Uuid,
    pub problems: Vec<String>,
    pub views: Views,
}

async fn connect(url: &str) -> anyhow::Result<PgPool> {
    PgPool::connect(url).await.with_context(|| {
        format!(
            "connecting to {}",
            url.split('@').next_back().unwrap_or(url)
        )
    })
}

async fn rows<T>(pool: &PgPool, sql: &'static str) -> anyhow::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(sql).fetch_all(pool).await.context(sql)
}

/// Reads every service's records and compares them.
pub async fn reconcile(args: &Args) -> anyhow::Result<Reconciliation> {
    let mut views: HashMap<Uuid, Views> = HashMap::new();
    let gateway = connect(&args.gateway_database_url).await?;
    // The ack mark (the payment's status row) is written after the 202,
    // without waiting: a gateway killed in between leaves a payment the
    // broker acked unmarked. Such a record counts as accepted once a service
    // downstream has the payment, which proves it was published; one nobody
    // has is a send that failed.
    let mut unmarked = HashMap::new();
    for (id, currency, amount, status) in rows::<(Uuid, Option<String>, Option<i64>, Option<String>)>(
        &gateway,
        "SELECT k.payment_id, k.event->>'currency', (k.event->>'amountMinor')::bigint, s.status \
         FROM idempotency_keys k LEFT JOIN payment_status s ON s.payment_id = k.payment_id",
    )
    .await?
    {
        let acked = status.is_some();
        let view = Views {
            accepted: true,
            currency,
            amount_minor: amount,
            status,
            ..Views::default()
        };
        if acked {
            views.insert(id, view);
        } else {
            unmarked.insert(id, view);
        }
    }
    let validation = connect(&args.validation_database_url).await?;
    for (id, decision) in
        rows::<(Uuid, String)>(&validation, "SELECT payment_id, decision FROM decisions").await?
    {
        let view = match unmarked.remove(&id) {
            Some(record) => views.entry(id).or_insert(record),
            None => views.entry(id).or_default(),
        };
        view.validation = Some(decision);
    }
    let ledger = connect(&args.cbs_debit_database_url).await?;
    for (id, decision, posted, voided) in rows::<(Uuid, String, bool, bool)>(
        &ledger,
        "SELECT d.payment_id, d.decision, \
           EXISTS (SELECT 1 FROM transfers t WHERE t.payment_id = d.payment_id AND t.kind = 'POST_PENDING'), \
           EXISTS (SELECT 1 FROM transfers t WHERE t.payment_id = d.payment_id AND t.kind = 'VOID_PENDING') \
         FROM debit_decisions d",
    )
    .await?
    {
        views.entry(id).or_default().ledger = Some(match (decision.as_str(), posted, voided) {
            ("REFUSED", _, _) => Ledger::Refused,
            (_, true, _) => Ledger::Posted,
            (_, _, true) => Ledger::Voided,
            _ => Ledger::Held,
        });
    }
    let rtgs = connect(&args.rtgs_gateway_database_url).await?;
    let mut by_uetr = HashMap::new();
    for (id, uetr, state) in rows::<(Uuid, Uuid, String)>(
        &rtgs,
        "SELECT payment_id, uetr, state FROM rtgs_submissions",
    )
    .await?
    {
        views.entry(id).or_default().submission = Some(state);
        by_uetr.insert(uetr.to_string(), id);
    }
    if args.rail_report_url != "none" {
        let report: serde_json::Value = reqwest::get(&args.rail_report_url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("the rail's report")?
            .json()
            .await
            .context("the rail's report")?;
        for (uetr, seen) in report["uetrs"].as_object().into_iter().flatten() {
            let status = seen["status"].as_str().unwrap_or_default().to_owned();
            let settlements = seen["settlements"].as_u64().unwrap_or(0);
            // A UETR nobody here sent is another client's.
            if let Some(id) = by_uetr.get(uetr) {
                views.entry(*id).or_default().rail = Some((status, settlements));
            }
        }
    }
    if args.audit_database_url != "none" {
        let audit = connect(&args.audit_database_url).await?;
        for (id, count) in rows::<(String, i64)>(
            &audit,
            "SELECT payment_id, count(*) FROM audit_entries \
             WHERE event_type = 'payment.submitted' AND payment_id IS NOT NULL \
               AND topic NOT LIKE '%.dlq' GROUP BY payment_id",
        )
        .await?
        {
            if let Ok(id) = Uuid::parse_str(&id)
                && let Some(view) = views.get_mut(&id)
            {
                view.audited_submissions = Some(count);
            }
        }
        for view in views.values_mut().filter(|v| v.accepted) {
            view.audited_submissions.get_or_insert(0);
        }
    }
    Ok(judge(views))
}

fn judge(views: HashMap<Uuid, Views>) -> Reconciliation {
    let mut totals: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for (payment_id, view) in &views {
        let total = totals
            .entry((
                rules::overall(view).to_owned(),
                view.currency.clone().unwrap_or_else(|| "?".to_owned()),
            ))
            .or_default();
        total.0 += 1;
        total.1 += view.amount_minor.unwrap_or(0);
        let problems = rules::disagreements(view);
        if !problems.is_empty() {
            disagreements.push(Disagreement {
                payment_id: *payment_id,
                problems,
                views: view.clone(),
            });
        }
    }
    disagreements.sort_by_key(|d| d.payment_id);
    Reconciliation {
        totals: totals
            .into_iter()
            .map(|((state, currency), (payments, volume_minor))| Total {
                state,
                currency,
                payments,
                volume_minor,
            })
            .collect(),
        disagreements,
        payments: views.len(),
    }
}

/// The reconciliation as tables.
pub fn render(found: &Reconciliation) -> String {
    let totals: Vec<Vec<String>> = found
        .totals
        .iter()
        .map(|t| {
            vec![
                t.state.clone(),
                t.currency.clone(),
                t.payments.to_string(),
                t.volume_minor.to_string(),
            ]
        })
        .collect();
    let mut out = table::render(
        &["STATE", "CURRENCY", "PAYMENTS", "VOLUME (MINOR)"],
        &totals,
    );
    out.push('\n');
    if found.disagreements.is_empty() {
        out.push_str(&format!(
            "{} payments: every service's records agree.\n",
            found.payments
        ));
    } else {
        let rows: Vec<Vec<String>> = found
            .disagreements
            .iter()
            .flat_map(|d| {
                d.problems
                    .iter()
                    .map(|problem| vec![d.payment_id.to_string(), problem.clone()])
            })
            .collect();
        out.push_str(&format!(
            "{} of {} payments disagree:\n",
            found.disagreements.len(),
            found.payments
        ));
        out.push_str(&table::render(&["PAYMENT", "DISAGREEMENT"], &rows));
    }
    out
}
