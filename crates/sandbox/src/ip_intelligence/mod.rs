//! The IP-intelligence provider, in the shape of AbstractAPI's IP geolocation
//! API: `GET /v1/?ip_address=` answers the country (DB-IP country lite) and
//! security flags (VPN, proxy, Tor, hosting) from the network the address
//! belongs to. `POST /v1/batch` with a JSON array of up to [`crate::MAX_BATCH`]
//! addresses answers each in its place (as ip-api's batch endpoint does): an
//! entry that is not an address gets its own error, the others their answers.

mod networks;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

pub use networks::{Network, NetworkClass, NetworkDataError, Networks};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot open the country database {path}: {source}")]
    CountryDb {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error(transparent)]
    Networks(#[from] NetworkDataError),
}

/// The DB-IP lite record is only `{"country_code": "XX"}`.
#[derive(Debug, Deserialize)]
struct CountryRecord {
    country_code: Option<String>,
}

pub struct IpIntelligence {
    countries: maxminddb::Reader<Vec<u8>>,
    networks: Networks,
}

impl std::fmt::Debug for IpIntelligence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpIntelligence")
            .field("ranges", &self.networks.ranges())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Security {
    pub is_vpn: bool,
    pub is_proxy: bool,
    pub is_tor: bool,
    pub is_hosting: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    pub autonomous_system_number: Option<u32>,
    pub autonomous_system_organization: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub ip_address: String,
    pub country_code: Option<String>,
    pub security: Security,
    pub connection: Connection,
}

impl IpIntelligence {
    pub fn load(
        country_db: &Path,
        asn_csvs: &[PathBuf],
        network_lists: &[PathBuf],
    ) -> Result<Self, LoadError> {
        let countries = maxminddb::Reader::open_readfile(country_db).map_err(|source| {
            LoadError::CountryDb {
                path: country_db.to_owned(),
                source,
            }
        })?;
        let mut networks = Networks::new();
        for csv in asn_csvs {
            let count = networks.load_asn_csv(csv)?;
            tracing::info!(path = %csv.display(), ranges = count, "ASN ranges loaded");
        }
        for list in network_lists {
            let count = networks.load_network_list(list)?;
            tracing::info!(path = %list.display(), entries = count, "network list loaded");
        }
        Ok(Self {
            countries,
            networks,
        })
    }

    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let found = self.countries.lookup(ip).ok()?;
        let record: CountryRecord = found.decode().ok()??;
        record.country_code
    }

    pub fn answer(&self, ip: IpAddr) -> Answer {
        let Network {
            asn,
            owner,
            classes,
        } = self.networks.lookup(ip);
        let has = |class| classes.contains(&class);
        Answer {
            ip_address: ip.to_string(),
            country_code: self.country(ip),
            security: Security {
                is_vpn: has(NetworkClass::Vpn),
                is_proxy: has(NetworkClass::Proxy),
                is_tor: has(NetworkClass::Tor),
                is_hosting: has(NetworkClass::Hosting),
            },
            connection: Connection {
                autonomous_system_number: asn,
                autonomous_system_organization: owner,
            },
        }
    }
}

#[derive(Debug, Deserialize)]
struct LookupQuery {
    ip_address: Option<String>,
}

/// The answer about `text`, or why it has none.
fn answer_text(service: &IpIntelligence, text: &str) -> Result<Answer, String> {
    match text.trim().parse::<IpAddr>() {
        Ok(ip) => Ok(service.answer(ip)),
        Err(_) => Err(format!("`{text}` is not an IP address")),
    }
}

async fn lookup(
    State(service): State<Arc<IpIntelligence>>,
    Query(query): Query<LookupQuery>,
) -> Response {
    let Some(text) = query.ip_address else {
        return crate::client_error("ip_address is required");
    };
    match answer_text(&service, &text) {
        Ok(answer) => Json(answer).into_response(),
        Err(message) => crate::client_error(message),
    }
}

/// One address's place in a batch's answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum BatchResult {
    Answered(Answer),
    Refused { ip_address: String, error: String },
}

async fn lookup_batch(
    State(service): State<Arc<IpIntelligence>>,
    Json(addresses): Json<Vec<String>>,
) -> Response {
    if let Some(refused) = crate::refuse_batch_size(addresses.len(), "addresses") {
        return refused;
    }
    let results: Vec<_> = addresses
        .into_iter()
        .map(|text| match answer_text(&service, &text) {
            Ok(answer) => BatchResult::Answered(answer),
            Err(error) => BatchResult::Refused {
                ip_address: text,
                error,
            },
        })
        .collect();
    Json(results).into_response()
}

pub fn routes(service: Arc<IpIntelligence>) -> axum::Router {
    axum::Router::new()
        .route("/v1/", get(lookup))
        .route("/v1", get(lookup))
        .route("/v1/batch", post(lookup_batch))
        .with_state(service)
}
