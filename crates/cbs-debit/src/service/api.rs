//! `GET /v1/accounts/{iban}`: an account's available, pending and posted
//! balances and its last movements, read in one snapshot.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use paystream_service_kit::http::problem;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::ledger::{AccountView, Movement, account_view};

/// Movements listed when the caller does not say, and at most.
const DEFAULT_MOVEMENTS: i64 = 20;
const MAX_MOVEMENTS: i64 = 200;

pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/v1/accounts/{iban}", get(account))
        .with_state(pool)
}

#[derive(Debug, Deserialize)]
struct Params {
    movements: Option<i64>,
}

async fn account(
    State(pool): State<PgPool>,
    Path(iban): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let limit = params
        .movements
        .unwrap_or(DEFAULT_MOVEMENTS)
        .clamp(0, MAX_MOVEMENTS);
    match account_view(&pool, &iban, limit).await {
        Ok(Some(view)) => Json(AccountBody::from(view)).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "account-not-found",
            "No such account",
            &format!("the ledger has no account {iban}"),
        ),
        Err(error) => {
            tracing::warn!(%error, %iban, "account read failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger-unavailable",
                "The ledger cannot be read now",
                "try again shortly",
            )
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountBody {
    id: String,
    currency: String,
    available_minor: i64,
    pending_debits_minor: i64,
    pending_credits_minor: i64,
    posted_debits_minor: i64,
    posted_credits_minor: i64,
    debits_must_not_exceed_credits: bool,
    closed: bool,
    blocked: bool,
    movements: Vec<MovementBody>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MovementBody {
    transfer_id: String,
    payment_id: String,
    kind: &'static str,
    direction: &'static str,
    counterparty: String,
    amount_minor: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_id: Option<String>,
    at: String,
}

impl From<AccountView> for AccountBody {
    fn from(view: AccountView) -> Self {
        Self {
            id: view.id,
            currency: view.currency,
            available_minor: view.available_minor,
            pending_debits_minor: view.balances.debits_pending,
            pending_credits_minor: view.balances.credits_pending,
            posted_debits_minor: view.balances.debits_posted,
            posted_credits_minor: view.balances.credits_posted,
            debits_must_not_exceed_credits: view.flags.debits_must_not_exceed_credits,
            closed: view.flags.closed,
            blocked: view.flags.blocked,
            movements: view.movements.into_iter().map(MovementBody::from).collect(),
        }
    }
}

impl From<Movement> for MovementBody {
    fn from(movement: Movement) -> Self {
        Self {
            transfer_id: movement.transfer_id.to_string(),
            payment_id: movement.payment_id.to_string(),
            kind: movement.kind.as_str(),
            direction: if movement.debit { "DEBIT" } else { "CREDIT" },
            counterparty: movement.counterparty,
            amount_minor: movement.amount_minor,
            pending_id: movement.pending_id.map(|id| id.to_string()),
            at: movement.at.to_rfc3339(),
        }
    }
}
