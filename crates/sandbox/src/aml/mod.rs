//! The AML screening provider: `POST /v1/screen` with a party's name (and
//! country and date of birth when known) answers a risk level, the score and
//! the list entries that matched, from the official sanctions lists loaded at
//! start-up. `POST /v1/screen/batch` screens up to [`crate::MAX_BATCH`] parties in
//! one call (as OpenSanctions' `/match` takes many queries), each answered
//! in its place: a party that cannot be screened gets its own error, and the
//! others their screenings.

pub mod lists;
pub mod matching;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

pub use lists::{ListError, SanctionsList};
pub use matching::{RiskLevel, Screening};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListInfo {
    pub list: SanctionsList,
    pub published: Option<String>,
    pub entries: usize,
    pub path: String,
}

pub struct Aml {
    screener: matching::Screener,
    lists: Vec<ListInfo>,
}

impl std::fmt::Debug for Aml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aml")
            .field("lists", &self.lists)
            .finish_non_exhaustive()
    }
}

impl Aml {
    /// Loads each list from its path; fails if any is missing or unreadable,
    /// because a screener that silently lacks a list passes what it should stop.
    pub fn load(sources: &[(SanctionsList, PathBuf)]) -> Result<Self, ListError> {
        let mut loaded = Vec::new();
        let mut lists = Vec::new();
        for (list, path) in sources {
            let started = Instant::now();
            let parsed = lists::load(*list, path)?;
            tracing::info!(
                list = %list,
                entries = parsed.parties.len(),
                published = parsed.published.as_deref().unwrap_or("unknown"),
                millis = started.elapsed().as_millis() as u64,
                "sanctions list loaded"
            );
            lists.push(ListInfo {
                list: *list,
                published: parsed.published.clone(),
                entries: parsed.parties.len(),
                path: path.display().to_string(),
            });
            loaded.push(parsed);
        }
        let screener = matching::Screener::new(loaded);
        tracing::info!(names = screener.names(), "screening index built");
        Ok(Self { screener, lists })
    }

    pub fn screen(&self, party: &matching::Party<'_>) -> Screening {
        self.screener.screen(party)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScreenRequest {
    name: String,
    country: Option<String>,
    /// ISO 8601 date or just a year.
    date_of_birth: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScreenResponse {
    #[serde(flatten)]
    screening: Screening,
    name: String,
    country: Option<String>,
    lists: Vec<SanctionsList>,
    screened_at: String,
}

impl ScreenRequest {
    /// The party's screening, or why the request cannot be screened.
    fn screen(self, aml: &Aml) -> Result<ScreenResponse, String> {
        if self.name.trim().is_empty() {
            return Err("name is required".to_owned());
        }
        let birth_year = match self.date_of_birth.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(date) => match date.get(..4).and_then(|year| year.parse::<i32>().ok()) {
                Some(year) => Some(year),
                None => return Err("dateOfBirth must be YYYY-MM-DD or YYYY".to_owned()),
            },
        };
        let screening = aml.screen(&matching::Party {
            name: &self.name,
            country: self.country.as_deref(),
            birth_year,
        });
        Ok(ScreenResponse {
            screening,
            name: self.name,
            country: self.country,
            lists: aml.lists.iter().map(|info| info.list).collect(),
            screened_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
    }
}

async fn screen(State(aml): State<Arc<Aml>>, Json(request): Json<ScreenRequest>) -> Response {
    match request.screen(&aml) {
        Ok(screened) => Json(screened).into_response(),
        Err(message) => crate::client_error(message),
    }
}

#[derive(Debug, Deserialize)]
struct BatchRequest {
    queries: Vec<ScreenRequest>,
}

/// One party's place in a batch's answer: its screening, or its error.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum BatchResult {
    Screened(ScreenResponse),
    Refused { error: String },
}

#[derive(Debug, Serialize)]
struct BatchResponse {
    results: Vec<BatchResult>,
}

async fn screen_batch(State(aml): State<Arc<Aml>>, Json(batch): Json<BatchRequest>) -> Response {
    if let Some(refused) = crate::refuse_batch_size(batch.queries.len(), "queries") {
        return refused;
    }
    let results = batch
        .queries
        .into_iter()
        .map(|request| match request.screen(&aml) {
            Ok(screened) => BatchResult::Screened(screened),
            Err(error) => BatchResult::Refused { error },
        })
        .collect();
    Json(BatchResponse { results }).into_response()
}

async fn list_info(State(aml): State<Arc<Aml>>) -> Json<Vec<ListInfo>> {
    Json(aml.lists.clone())
}

pub fn routes(aml: Arc<Aml>) -> axum::Router {
    axum::Router::new()
        .route("/v1/screen", post(screen))
        .route("/v1/screen/batch", post(screen_batch))
        .route("/v1/lists", get(list_info))
        .with_state(aml)
}
