//! The whole pipeline as processes a test can SIGKILL and start again:
//! the sandbox and the six services, each its own binary from this build's
//! target directory, on fixed loopback ports (a restarted service keeps
//! its port, so callbacks and clients find it), on a topic prefix, a
//! registry and databases of the test's own. [`Options`] choose the
//! broker's storage engine and add settings (an OTLP endpoint, provider
//! latencies) to every process or to one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use paystream_contract::Topic;
use paystream_testkit::nisshi::{Nisshi, Storage};
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::{free_port, fresh_database, wait_until};
use tokio::process::{Child, Command};

use crate::CLOSED_CREDITOR;

pub const RAIL_SECRET: &str = "processes-rail-secret";

/// The API key a gateway process accepts by default.
pub const DEV_API_KEY: &str = "paystream-dev-key";

/// The services a chaos run kills, in the order they start.
pub const SERVICES: [&str; 6] = [
    "gateway",
    "validation",
    "cbs-debit",
    "rtgs-gateway",
    "notifications",
    "audit",
];

/// How to start the processes.
#[derive(Debug, Clone)]
pub struct Options {
    storage: Storage,
    partitions: i32,
    env: Vec<(String, String)>,
    env_for: Vec<(&'static str, String, String)>,
    services: Vec<&'static str>,
    database_options: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            storage: Storage::Sqlite,
            partitions: 3,
            env: Vec::new(),
            env_for: Vec::new(),
            services: SERVICES.to_vec(),
            database_options: None,
        }
    }
}

impl Options {
    /// The broker's storage engine (default SQLite, which survives a kill).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Partitions of every topic (default 3).
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    /// A variable in every process's environment, over the defaults.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Only these services (default: all six), for a benchmark of one
    /// part; the sandbox starts with them.
    pub fn only(mut self, services: &[&'static str]) -> Self {
        self.services = services.to_vec();
        self
    }

    /// Connection options on every service's database URL, e.g.
    /// `sslmode=disable` for a benchmark that should not count TLS on
    /// loopback.
    pub fn database_options(mut self, options: &str) -> Self {
        self.database_options = Some(options.to_owned());
        self
    }

    /// A variable in one process's environment (`sandbox` or a service),
    /// over the defaults and [`Options::env`].
    pub fn env_for(mut self, process: &'static str, key: &str, value: impl Into<String>) -> Self {
        self.env_for.push((process, key.to_owned(), value.into()));
        self
    }
}

pub struct Processes {
    /// A broker of the run's own, to kill and restart.
    pub broker: Nisshi,
    pub pipeline: Pipeline,
    pub ports: BTreeMap<&'static str, u16>,
    pub databases: BTreeMap<&'static str, String>,
    children: BTreeMap<&'static str, Child>,
    bin: PathBuf,
    options: Options,
}

/// The directory holding this build's binaries (the test runs from
/// `target/<profile>/deps`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    deps.parent().unwrap().to_path_buf()
}

impl Processes {
    /// The defaults: a SQLite broker, 3 partitions.
    pub async fn start(label: &str) -> Self {
        Self::start_with(label, Options::default()).await
    }

    pub async fn start_with(label: &str, options: Options) -> Self {
        let bin = bin_dir();
        let services = options.services.clone();
        for name in ["sandbox"].into_iter().chain(services.iter().copied()) {
            assert!(
                bin.join(name).exists(),
                "{} is not built (cargo build --bins)",
                bin.join(name).display()
            );
        }
        let broker = Nisshi::start(options.storage).await;
        let pipeline =
            Pipeline::on(&broker.bootstrap(), label, &Topic::ALL, options.partitions).await;
        let mut ports = BTreeMap::new();
        for name in ["sandbox"].into_iter().chain(services.iter().copied()) {
            ports.insert(name, free_port());
        }
        let mut databases = BTreeMap::new();
        for &name in &services {
            let url = fresh_database().await.url;
            let url = match &options.database_options {
                Some(query) => format!("{url}?{query}"),
                None => url,
            };
            databases.insert(name, url);
        }
        let mut processes = Self {
            broker,
            pipeline,
            ports,
            databases,
            children: BTreeMap::new(),
            bin,
            options,
        };
        processes.start_one("sandbox").await;
        if services.contains(&"cbs-debit") {
            processes
                .operator("cbs-debit", &["accounts", "load", "-"], crate::ACCOUNTS)
                .await;
        }
        if services.contains(&"notifications") {
            processes
                .operator("notifications", &["contacts", "load", "-"], crate::CONTACTS)
                .await;
        }
        for name in services {
            processes.start_one(name).await;
        }
        processes
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[name])
    }

    /// The gateway's view of a payment (`GET /v1/payments/{id}` with the
    /// default API key); `None` while the gateway cannot answer.
    pub async fn payment(&self, http: &reqwest::Client, id: &str) -> Option<serde_json::Value> {
        crate::payment_view(http, &self.url("gateway"), DEV_API_KEY, id).await
    }

    fn command(&self, name: &str) -> Command {
        let mut command = self.pipeline.command(self.bin.join(name));
        command
            .env("PAYSTREAM_SCHEMA_REGISTRY_URL", &self.pipeline.registry.url)
            .env("PAYSTREAM_SCHEMA_AUTO_REGISTER", "true")
            .env("PAYSTREAM_CONSUMER_RETRY_SCHEDULE", "100ms,500ms,1s")
            .env("PAYSTREAM_KAFKA_SESSION_TIMEOUT_MS", "6000");
        let upper = name.to_uppercase().replace('-', "_");
        let listen = format!("127.0.0.1:{}", self.ports.get(name).copied().unwrap_or(0));
        command.env(format!("PAYSTREAM_{upper}_LISTEN"), &listen);
        if let Some(database) = self.databases.get(name) {
            command.env(format!("PAYSTREAM_{upper}_DATABASE_URL"), database);
        }
        let sandbox = self.url("sandbox");
        match name {
            "sandbox" => {
                command
                    .env("PAYSTREAM_SANDBOX_RTGS_RAIL", "settle=20ms")
                    .env("PAYSTREAM_SANDBOX_RTGS_CLOSED_ACCOUNTS", CLOSED_CREDITOR)
                    .env("PAYSTREAM_SANDBOX_RTGS_CALLBACK_SECRET", RAIL_SECRET);
                if self.ports.contains_key("rtgs-gateway") {
                    command.env(
                        "PAYSTREAM_SANDBOX_RTGS_CALLBACK_URL",
                        format!("{}/v1/rail/status-reports", self.url("rtgs-gateway")),
                    );
                }
            }
            "validation" => {
                command
                    .env(
                        "PAYSTREAM_VALIDATION_IP_INTELLIGENCE_URL",
                        format!("{sandbox}/ip-intelligence"),
                    )
                    .env("PAYSTREAM_VALIDATION_AML_URL", format!("{sandbox}/aml"))
                    // As devstack runs it: every pipeline test, a
                    // validation restarted after a crash included, calls
                    // the providers over the client's direct HTTP/2 path.
                    .env("PAYSTREAM_VALIDATION_PROVIDER_PROTOCOL", "http2");
            }
            "rtgs-gateway" => {
                command
                    .env("PAYSTREAM_RTGS_GATEWAY_RAIL_URL", format!("{sandbox}/rtgs"))
                    .env("PAYSTREAM_RTGS_GATEWAY_RAIL_CALLBACK_SECRET", RAIL_SECRET)
                    .env("PAYSTREAM_RTGS_GATEWAY_POLL_AFTER_MS", "2000")
                    .env("PAYSTREAM_RTGS_GATEWAY_RETRY_MAX_MS", "1000")
                    .env("PAYSTREAM_RTGS_GATEWAY_RAIL_TIMEOUT_MS", "2000");
            }
            "notifications" => {
                command
                    .env(
                        "PAYSTREAM_NOTIFICATIONS_PROVIDER_URL",
                        format!("{sandbox}/notify"),
                    )
                    .env("PAYSTREAM_NOTIFICATIONS_RETRY_MAX_MS", "1000");
            }
            "audit" => {
                command.env("PAYSTREAM_AUDIT_TOPIC_REFRESH_MS", "1000");
            }
            _ => {}
        }
        command.envs(self.options.env.iter().map(|(key, value)| (key, value)));
        for (process, key, value) in &self.options.env_for {
            if *process == name {
                command.env(key, value);
            }
        }
        command
    }

    /// An operator command of a service's binary; `-` in `args` stands
    /// for a file holding `input`.
    pub async fn operator(&self, name: &str, args: &[&str], input: &str) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), input).unwrap();
        let args: Vec<&std::ffi::OsStr> = args
            .iter()
            .map(|arg| {
                if *arg == "-" {
                    file.path().as_os_str()
                } else {
                    std::ffi::OsStr::new(*arg)
                }
            })
            .collect();
        let status = self.command(name).args(&args).status().await.unwrap();
        assert!(status.success(), "{name} {args:?}");
    }

    /// Starts `name` and waits for its /healthz.
    pub async fn start_one(&mut self, name: &'static str) {
        let mut command = self.command(name);
        if name != "sandbox" && name != "gateway" && name != "validation" {
            command.arg("serve");
        }
        self.children.insert(name, command.spawn().unwrap());
        let url = format!("{}/healthz", self.url(name));
        wait_until(
            Duration::from_secs(120),
            "a service to answer /healthz",
            || async {
                reqwest::get(&url)
                    .await
                    .ok()?
                    .status()
                    .is_success()
                    .then_some(())
            },
        )
        .await;
    }

    /// The pid of a process it started (`sandbox` or a service), while it
    /// runs: for benchmarks that account each process's CPU.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children.get(name).and_then(Child::id)
    }

    /// SIGKILL of the broker, then the same broker (port and data) again.
    pub async fn kill_and_restart_broker(&mut self) {
        self.broker.kill9();
        self.broker.restart().await;
    }

    /// SIGKILL, then start again on the same port.
    pub async fn kill_and_restart(&mut self, name: &'static str) {
        if let Some(mut child) = self.children.remove(name) {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
        self.start_one(name).await;
    }
}
