//! The IP-intelligence provider, in the shape of AbstractAPI's IP geolocation
//! API: `GET /v1/?ip_address=` answers the country (DB-IP country lite) and
//! security flags (VPN, proxy, Tor, hosting) from the network the address
//! belongs to.

mod networks;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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

async fn lookup(
    State(service): State<Arc<IpIntelligence>>,
    Query(query): Query<LookupQuery>,
) -> Response {
    let Some(text) = query.ip_address else {
        return crate::client_error("ip_address is required");
    };
    match text.trim().parse::<IpAddr>() {
        Ok(ip) => Json(service.answer(ip)).into_response(),
        Err(_) => crate::client_error(format!("`{text}` is not an IP address")),
    }
}

pub fn routes(service: Arc<IpIntelligence>) -> axum::Router {
    axum::Router::new()
        .route("/v1/", get(lookup))
        .route("/v1", get(lookup))
        .with_state(service)
}
