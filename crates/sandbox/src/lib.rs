//! The sandbox plays the external providers Paystream calls, over real HTTP
//! and from real reference data, with latency, failures and throttling set per
//! provider. Each provider is a module with its own routes under its own path
//! prefix; adding the RTGS rail or the SMS provider adds a module, not a mode.
//!
//! | prefix              | provider                                    |
//! |---------------------|---------------------------------------------|
//! | `/ip-intelligence`  | IP → country and VPN/proxy/Tor/hosting flags |
//! | `/aml`              | sanctions screening (OFAC, UN, EU lists)    |
//! | `/admin/providers`  | read or change a provider's behaviour       |

pub mod aml;
pub mod behaviour;
pub mod ip_intelligence;

#[cfg(test)]
mod test_support {
    use std::io::Write;

    /// A temporary file holding `text`, removed when dropped.
    pub fn file(text: &str) -> tempfile::TempPath {
        let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        let _ = file.write_all(text.as_bytes());
        file.into_temp_path()
    }
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use behaviour::{Behaviour, Control, Received, RetryAfter};

pub const IP_INTELLIGENCE: &str = "ip-intelligence";
pub const AML: &str = "aml";

fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/paystream/reference-data")
}

/// `LIST=PATH`, e.g. `OFAC-SDN=/data/sdn.xml`.
#[derive(Debug, Clone)]
pub struct ListSource(pub aml::SanctionsList, pub PathBuf);

impl FromStr for ListSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (list, path) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected LIST=PATH, e.g. OFAC-SDN=/data/sdn.xml"))?;
        Ok(Self(list.parse()?, PathBuf::from(path)))
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the providers listen on.
    #[arg(
        long,
        env = "PAYSTREAM_SANDBOX_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,

    /// Directory holding the reference data that devstack/fetch-reference-data.sh
    /// downloads; the file options below default to files in it.
    #[arg(long, env = "PAYSTREAM_REFERENCE_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,

    /// IP-to-country MaxMind DB [default: DATA_DIR/ip/dbip-country.mmdb].
    #[arg(long, env = "PAYSTREAM_SANDBOX_IP_COUNTRY_DB")]
    pub ip_country_db: Option<PathBuf>,

    /// IP-to-ASN range CSVs, comma-separated
    /// [default: DATA_DIR/ip/asn-ipv4.csv,DATA_DIR/ip/asn-ipv6.csv].
    #[arg(long, env = "PAYSTREAM_SANDBOX_ASN_CSV", value_delimiter = ',')]
    pub asn_csv: Vec<PathBuf>,

    /// Extra classified networks, comma-separated files of `CLASS,TARGET` lines
    /// (CLASS vpn|proxy|tor|hosting; TARGET an address, CIDR or AS number).
    #[arg(long, env = "PAYSTREAM_SANDBOX_NETWORK_LISTS", value_delimiter = ',')]
    pub network_lists: Vec<PathBuf>,

    /// Sanctions lists to screen against, comma-separated LIST=PATH with LIST
    /// one of OFAC-SDN, OFAC-CONSOLIDATED, UN, EU [default: all four from DATA_DIR/sanctions].
    #[arg(long, env = "PAYSTREAM_SANDBOX_SANCTIONS_LISTS", value_delimiter = ',')]
    pub sanctions_lists: Vec<ListSource>,

    /// Behaviour of the IP-intelligence API, e.g. `latency=100ms,errors=0.01,rate=500/s`
    /// (see the README for the grammar).
    #[arg(long, env = "PAYSTREAM_SANDBOX_IP_INTELLIGENCE", default_value = "ok")]
    pub ip_intelligence: Behaviour,

    /// Behaviour of the AML screening API, same grammar.
    #[arg(long, env = "PAYSTREAM_SANDBOX_AML", default_value = "ok")]
    pub aml: Behaviour,
}

impl Config {
    /// Settings for a sandbox on a free loopback port with instant, healthy
    /// providers and the default reference data.
    pub fn local() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: std::env::var_os("PAYSTREAM_REFERENCE_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(default_data_dir),
            ip_country_db: None,
            asn_csv: Vec::new(),
            network_lists: Vec::new(),
            sanctions_lists: Vec::new(),
            ip_intelligence: Behaviour::default(),
            aml: Behaviour::default(),
        }
    }

    fn country_db(&self) -> PathBuf {
        self.ip_country_db
            .clone()
            .unwrap_or_else(|| self.data_dir.join("ip/dbip-country.mmdb"))
    }

    fn asn_csvs(&self) -> Vec<PathBuf> {
        if self.asn_csv.is_empty() {
            vec![
                self.data_dir.join("ip/asn-ipv4.csv"),
                self.data_dir.join("ip/asn-ipv6.csv"),
            ]
        } else {
            self.asn_csv.clone()
        }
    }

    fn sanctions_sources(&self) -> Vec<(aml::SanctionsList, PathBuf)> {
        if self.sanctions_lists.is_empty() {
            aml::SanctionsList::ALL
                .into_iter()
                .map(|list| {
                    (
                        list,
                        self.data_dir.join("sanctions").join(list.default_file()),
                    )
                })
                .collect()
        } else {
            self.sanctions_lists
                .iter()
                .map(|ListSource(list, path)| (*list, path.clone()))
                .collect()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("IP intelligence data: {0} (run devstack/fetch-reference-data.sh)")]
    IpData(#[from] ip_intelligence::LoadError),
    #[error("sanctions list: {0} (run devstack/fetch-reference-data.sh)")]
    Sanctions(#[from] aml::ListError),
    #[error("loading reference data was interrupted")]
    LoadInterrupted,
    #[error(transparent)]
    Listen(#[from] paystream_service_kit::BindError),
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// A problem body for a request the provider cannot answer.
pub(crate) fn client_error(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// A path under a provider's prefix that it does not serve: answered
/// through the provider's behaviour and logged like any other request, so a
/// test sees where a client's request really went.
async fn not_found(uri: axum::extract::OriginalUri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": format!("no such path `{}`", uri.0.path()) })),
    )
        .into_response()
}

type Controls = Arc<BTreeMap<&'static str, Control>>;

/// A sandbox bound to its port with its reference data loaded.
pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    controls: Controls,
}

impl Server {
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let loading = config.clone();
        // Reading 45 MB of XML and 500k ranges is blocking work.
        let (ip, aml) = tokio::task::spawn_blocking(move || {
            let ip = ip_intelligence::IpIntelligence::load(
                &loading.country_db(),
                &loading.asn_csvs(),
                &loading.network_lists,
            )?;
            let aml = aml::Aml::load(&loading.sanctions_sources())?;
            Ok::<_, StartError>((ip, aml))
        })
        .await
        .map_err(|_| StartError::LoadInterrupted)??;

        let ip_control = Control::new(IP_INTELLIGENCE, config.ip_intelligence.clone());
        let aml_control = Control::new(AML, config.aml.clone());
        let router = axum::Router::new()
            .nest(
                &format!("/{IP_INTELLIGENCE}"),
                ip_intelligence::routes(Arc::new(ip))
                    .fallback(not_found)
                    .layer(axum::middleware::from_fn_with_state(
                        ip_control.clone(),
                        behaviour::apply,
                    )),
            )
            .nest(
                &format!("/{AML}"),
                aml::routes(Arc::new(aml)).fallback(not_found).layer(
                    axum::middleware::from_fn_with_state(aml_control.clone(), behaviour::apply),
                ),
            );
        let controls: Controls = Arc::new(
            [ip_control, aml_control]
                .into_iter()
                .map(|control| (control.provider(), control))
                .collect(),
        );
        let router = router
            .merge(admin_routes(controls.clone()))
            .route("/healthz", get(|| async { "ok" }));
        let listener = paystream_service_kit::bind(config.listen).await?;
        Ok(Self {
            listener,
            router,
            controls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        paystream_service_kit::local_addr(&self.listener)
    }

    /// The behaviour control of a provider, for tests that change it mid-run.
    pub fn control(&self, provider: &str) -> Option<Control> {
        self.controls.get(provider).cloned()
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        tracing::info!(addr = %self.local_addr(), "sandbox listening");
        for control in self.controls.values() {
            tracing::info!(provider = control.provider(), behaviour = %control.current(), "provider ready");
        }
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(StartError::Serve)
    }
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    Server::build(&config).await?.run(shutdown).await
}

fn admin_routes(controls: Controls) -> axum::Router {
    async fn find(controls: &Controls, provider: &str) -> Result<Control, Response> {
        controls.get(provider).cloned().ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "error": format!("no provider `{provider}`") })),
            )
                .into_response()
        })
    }
    async fn read(State(controls): State<Controls>, Path(provider): Path<String>) -> Response {
        match find(&controls, &provider).await {
            Ok(control) => control.current().to_string().into_response(),
            Err(response) => response,
        }
    }
    async fn write(
        State(controls): State<Controls>,
        Path(provider): Path<String>,
        spec: String,
    ) -> Response {
        let control = match find(&controls, &provider).await {
            Ok(control) => control,
            Err(response) => return response,
        };
        match spec.parse::<Behaviour>() {
            Ok(behaviour) => {
                control.set(behaviour);
                control.current().to_string().into_response()
            }
            Err(error) => client_error(error.to_string()),
        }
    }
    axum::Router::new()
        .route(
            "/admin/providers/{provider}/behaviour",
            get(read).put(write),
        )
        .with_state(controls)
}
