//! The sandbox plays the external providers Paystream calls, over real HTTP
//! and from real reference data, with latency, failures and throttling set per
//! provider. Each provider is a module with its own routes under its own path
//! prefix; adding the card processor adds a module, not a mode.
//!
//! | prefix              | provider                                    |
//! |---------------------|---------------------------------------------|
//! | `/ip-intelligence`  | IP → country and VPN/proxy/Tor/hosting flags |
//! | `/aml`              | sanctions screening (OFAC, UN, EU lists)    |
//! | `/rtgs`             | the RTGS rail: pacs.008 in, pacs.002 back   |
//! | `/notify`           | SMS and e-mail, idempotent by key           |
//! | `/admin/providers`  | a provider's behaviour (read or change) and report |
//! | `/admin/rtgs`       | the rail's report, knobs and callback URL   |
//! | `/admin/notify`     | the notification provider's report and knobs |

pub mod aml;
pub mod behaviour;
pub mod ip_intelligence;
pub mod notify;
pub mod rate_limit;
pub mod rtgs;
mod serve;

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
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use behaviour::{Behaviour, Control, ProviderReport, Received, RetryAfter};
pub use rate_limit::RateLimit;

pub const IP_INTELLIGENCE: &str = "ip-intelligence";
pub const AML: &str = "aml";
pub const RTGS: &str = "rtgs";
pub const NOTIFY: &str = "notify";

/// A provider the sandbox can play; `--providers` picks which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    IpIntelligence,
    Aml,
    Rtgs,
    Notify,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::IpIntelligence,
        Provider::Aml,
        Provider::Rtgs,
        Provider::Notify,
    ];

    /// The provider's name, which is also its path prefix.
    pub fn name(self) -> &'static str {
        match self {
            Provider::IpIntelligence => IP_INTELLIGENCE,
            Provider::Aml => AML,
            Provider::Rtgs => RTGS,
            Provider::Notify => NOTIFY,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|provider| provider.name() == text)
            .ok_or_else(|| {
                format!(
                    "unknown provider `{text}` (expected {IP_INTELLIGENCE}, {AML}, {RTGS} or {NOTIFY})"
                )
            })
    }
}

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

    /// The providers to play, comma-separated: ip-intelligence, aml, rtgs,
    /// notify. Only the ones chosen load their reference data.
    #[arg(
        long,
        env = "PAYSTREAM_SANDBOX_PROVIDERS",
        value_delimiter = ',',
        default_value = "ip-intelligence,aml,rtgs,notify"
    )]
    pub providers: Vec<Provider>,

    /// HTTP behaviour of the RTGS rail, same grammar.
    #[arg(long, env = "PAYSTREAM_SANDBOX_RTGS", default_value = "ok")]
    pub rtgs: Behaviour,

    /// The rail's own behaviour, e.g. `settle=lognormal:50ms:2s,rejections=0.05,lost=0.01`
    /// (see the README for the grammar).
    #[arg(
        long,
        env = "PAYSTREAM_SANDBOX_RTGS_RAIL",
        default_value = "settle=50ms"
    )]
    pub rtgs_rail: rtgs::RailBehaviour,

    /// Where the rail POSTs its signed final status reports (pacs.002).
    #[arg(long, env = "PAYSTREAM_SANDBOX_RTGS_CALLBACK_URL")]
    pub rtgs_callback_url: Option<String>,

    /// The secret the rail signs its callbacks with (Standard Webhooks).
    #[arg(
        long,
        env = "PAYSTREAM_SANDBOX_RTGS_CALLBACK_SECRET",
        default_value = "dev-rail-secret"
    )]
    pub rtgs_callback_secret: String,

    /// Creditor accounts (IBANs), comma-separated, the rail always rejects
    /// with AC04.
    #[arg(
        long,
        env = "PAYSTREAM_SANDBOX_RTGS_CLOSED_ACCOUNTS",
        value_delimiter = ','
    )]
    pub rtgs_closed_accounts: Vec<String>,

    /// HTTP behaviour of the notification provider (SMS and e-mail), same
    /// grammar.
    #[arg(long, env = "PAYSTREAM_SANDBOX_NOTIFY", default_value = "ok")]
    pub notify: Behaviour,

    /// The notification provider's own behaviour, e.g. `late=0.05,late-by=30s,fail=0.01`
    /// (see the README for the grammar).
    #[arg(long, env = "PAYSTREAM_SANDBOX_NOTIFY_PROVIDER", default_value = "ok")]
    pub notify_provider: notify::NotifyBehaviour,

    /// How long the notification provider remembers an idempotency key:
    /// `500ms`, `2s`, `15m` or `24h`. After it, the same key delivers again.
    #[arg(
        long,
        env = "PAYSTREAM_SANDBOX_NOTIFY_IDEMPOTENCY_WINDOW",
        default_value = "24h",
        value_parser = notify::parse_window
    )]
    pub notify_idempotency_window: Duration,
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
            providers: Provider::ALL.to_vec(),
            rtgs: Behaviour::default(),
            rtgs_rail: rtgs::RailBehaviour::default(),
            rtgs_callback_url: None,
            rtgs_callback_secret: "dev-rail-secret".to_owned(),
            rtgs_closed_accounts: Vec::new(),
            notify: Behaviour::default(),
            notify_provider: notify::NotifyBehaviour::default(),
            notify_idempotency_window: notify::DEFAULT_WINDOW,
        }
    }

    pub fn plays(&self, provider: Provider) -> bool {
        self.providers.contains(&provider)
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
    #[error("the RTGS rail's HTTP client: {0}")]
    RailClient(#[from] reqwest::Error),
    #[error(transparent)]
    Listen(#[from] paystream_service_kit::BindError),
}

/// Queries one batch call may carry at most, for every provider that takes
/// batches.
pub const MAX_BATCH: usize = 1_000;

/// The refusal of a batch of `len` `queries` (what the provider calls them)
/// that is empty or over [`MAX_BATCH`]; `None` for one the provider takes.
pub(crate) fn refuse_batch_size(len: usize, queries: &str) -> Option<Response> {
    (len == 0 || len > MAX_BATCH).then(|| {
        client_error(format!(
            "a batch carries 1 to {MAX_BATCH} {queries}, not {len}"
        ))
    })
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

/// A provider's routes behind its behaviour, with the provider's 404.
fn behind(routes: axum::Router, control: &Control) -> axum::Router {
    routes
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            control.clone(),
            behaviour::apply,
        ))
}

/// A sandbox bound to its port with its reference data loaded.
pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    controls: Controls,
    rail: Option<rtgs::Rail>,
    notify: Option<notify::Notify>,
}

impl Server {
    /// Loads and mounts the providers `config.providers` names, only those.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let loading = config.clone();
        // Reading 45 MB of XML and 500k ranges is blocking work.
        let (ip, aml) = tokio::task::spawn_blocking(move || {
            let ip = if loading.plays(Provider::IpIntelligence) {
                Some(ip_intelligence::IpIntelligence::load(
                    &loading.country_db(),
                    &loading.asn_csvs(),
                    &loading.network_lists,
                )?)
            } else {
                None
            };
            let aml = if loading.plays(Provider::Aml) {
                Some(aml::Aml::load(&loading.sanctions_sources())?)
            } else {
                None
            };
            Ok::<_, StartError>((ip, aml))
        })
        .await
        .map_err(|_| StartError::LoadInterrupted)??;

        let mut router = axum::Router::new();
        let mut controls = Vec::new();
        if let Some(ip) = ip {
            let control = Control::new(IP_INTELLIGENCE, config.ip_intelligence.clone());
            router = router.nest(
                &format!("/{IP_INTELLIGENCE}"),
                behind(ip_intelligence::routes(Arc::new(ip)), &control),
            );
            controls.push(control);
        }
        if let Some(aml) = aml {
            let control = Control::new(AML, config.aml.clone());
            router = router.nest(
                &format!("/{AML}"),
                behind(aml::routes(Arc::new(aml)), &control),
            );
            controls.push(control);
        }
        let rail = if config.plays(Provider::Rtgs) {
            let rail = rtgs::Rail::new(
                config.rtgs_rail.clone(),
                config.rtgs_callback_url.clone(),
                config.rtgs_callback_secret.clone(),
                &config.rtgs_closed_accounts,
            )?;
            let control = Control::new(RTGS, config.rtgs.clone());
            router = router
                .nest(
                    &format!("/{RTGS}"),
                    behind(rtgs::routes(rail.clone()), &control),
                )
                .merge(rtgs::admin_routes(rail.clone()));
            controls.push(control);
            Some(rail)
        } else {
            None
        };
        let notify = if config.plays(Provider::Notify) {
            let notify = notify::Notify::new(
                config.notify_provider.clone(),
                config.notify_idempotency_window,
            );
            let control = Control::new(NOTIFY, config.notify.clone());
            router = router
                .nest(
                    &format!("/{NOTIFY}"),
                    behind(notify::routes(notify.clone()), &control),
                )
                .merge(notify::admin_routes(notify.clone()));
            controls.push(control);
            Some(notify)
        } else {
            None
        };
        let controls: Controls = Arc::new(
            controls
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
            rail,
            notify,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        paystream_service_kit::local_addr(&self.listener)
    }

    /// The behaviour control of a provider, for tests that change it mid-run.
    pub fn control(&self, provider: &str) -> Option<Control> {
        self.controls.get(provider).cloned()
    }

    /// The RTGS rail, for tests that read its report or change its knobs
    /// in process; `None` if the sandbox does not play it.
    pub fn rail(&self) -> Option<rtgs::Rail> {
        self.rail.clone()
    }

    /// The notification provider, for tests that read its report or change
    /// its knobs in process; `None` if the sandbox does not play it.
    pub fn notify(&self) -> Option<notify::Notify> {
        self.notify.clone()
    }

    /// Serves until `shutdown`; what can fail failed in [`Server::build`].
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(addr = %self.local_addr(), "sandbox listening");
        for control in self.controls.values() {
            tracing::info!(provider = control.provider(), behaviour = %control.current(), "provider ready");
        }
        if let Some(rail) = &self.rail {
            tracing::info!(
                provider = RTGS,
                rail = %rail.behaviour(),
                callback_url = rail.callback_url().as_deref().unwrap_or("none"),
                "rail ready"
            );
        }
        if let Some(notify) = &self.notify {
            tracing::info!(
                provider = NOTIFY,
                notify = %notify.behaviour(),
                idempotency_window = %notify::format_window(notify.window()),
                "notification provider ready"
            );
        }
        serve::serve(self.listener, self.router, shutdown).await;
    }
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    Server::build(&config).await?.run(shutdown).await;
    Ok(())
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
    async fn report(State(controls): State<Controls>, Path(provider): Path<String>) -> Response {
        match find(&controls, &provider).await {
            Ok(control) => Json(control.report()).into_response(),
            Err(response) => response,
        }
    }
    axum::Router::new()
        .route(
            "/admin/providers/{provider}/behaviour",
            get(read).put(write),
        )
        .route("/admin/providers/{provider}/report", get(report))
        .with_state(controls)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Result<Config, String> {
        Cli::try_parse_from(std::iter::once("sandbox").chain(args.iter().copied()))
            .map(|cli| cli.config)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_command_line_defaults_are_those_of_local() {
        let parsed = parse(&[]).unwrap_or_else(|error| panic!("{error}"));
        let local = Config::local();
        assert_eq!(parsed.providers, Provider::ALL);
        assert_eq!(parsed.providers, local.providers);
        assert_eq!(parsed.rtgs, local.rtgs);
        assert_eq!(parsed.rtgs_rail, local.rtgs_rail);
        assert_eq!(parsed.rtgs_rail.to_string(), "settle=50ms");
        assert_eq!(parsed.rtgs_callback_secret, local.rtgs_callback_secret);
        assert_eq!(parsed.rtgs_callback_url, None);
        assert!(parsed.rtgs_closed_accounts.is_empty());
        assert_eq!(parsed.notify, local.notify);
        assert_eq!(parsed.notify_provider, local.notify_provider);
        assert_eq!(parsed.notify_provider.to_string(), "ok");
        assert_eq!(
            parsed.notify_idempotency_window,
            local.notify_idempotency_window
        );
        assert_eq!(
            parsed.notify_idempotency_window,
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn the_notify_options_parse_and_bad_ones_are_named() {
        let parsed = parse(&[
            "--providers",
            "notify",
            "--notify",
            "latency=20ms",
            "--notify-provider",
            "late=0.5,late-by=2s,fail=0.1",
            "--notify-idempotency-window",
            "2s",
        ])
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(parsed.providers, [Provider::Notify]);
        assert!(parsed.plays(Provider::Notify) && !parsed.plays(Provider::Rtgs));
        assert_eq!(parsed.notify.to_string(), "latency=20ms");
        assert_eq!(
            parsed.notify_provider.to_string(),
            "late=0.5,late-by=2000ms,fail=0.1"
        );
        assert_eq!(parsed.notify_idempotency_window, Duration::from_secs(2));
        assert_eq!("notify".parse::<Provider>(), Ok(Provider::Notify));
        assert_eq!(Provider::Notify.to_string(), NOTIFY);

        let error = parse(&["--notify-idempotency-window", "1d"])
            .err()
            .unwrap_or_default();
        assert!(error.contains("1d"), "{error}");
        let error = parse(&["--notify-provider", "fail=2"])
            .err()
            .unwrap_or_default();
        assert!(error.contains("fail"), "{error}");
        let error = "sms".parse::<Provider>().err().unwrap_or_default();
        assert!(error.contains(NOTIFY), "{error}");
    }

    #[test]
    fn the_rail_options_parse_and_bad_ones_are_named() {
        let parsed = parse(&[
            "--providers",
            "rtgs,aml",
            "--rtgs-rail",
            "settle=1s,lost=0.5",
            "--rtgs-closed-accounts",
            "DE89370400440532013000,NL91ABNA0417164300",
            "--rtgs-callback-url",
            "http://127.0.0.1:9/callbacks",
        ])
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(parsed.providers, [Provider::Rtgs, Provider::Aml]);
        assert_eq!(parsed.rtgs_rail.lost, 0.5);
        assert_eq!(parsed.rtgs_closed_accounts.len(), 2);
        assert!(parsed.plays(Provider::Rtgs) && !parsed.plays(Provider::IpIntelligence));

        let error = parse(&["--providers", "rtgs,sms"])
            .err()
            .unwrap_or_default();
        assert!(error.contains("sms"), "{error}");
        let error = parse(&["--rtgs-rail", "settle=fast"])
            .err()
            .unwrap_or_default();
        assert!(error.contains("settle"), "{error}");
    }
}
