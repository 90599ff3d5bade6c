//! The whole pipeline as processes a test can SIGKILL and start again:
//! the sandbox and the six services, each its own binary from this build's
//! target directory, on fixed loopback ports (a restarted service keeps
//! its port, so callbacks and clients find it), on a topic prefix, a
//! registry and databases of the test's own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use paystream_contract::Topic;
use paystream_testkit::nisshi::{Nisshi, Storage};
use paystream_testkit::pipeline::Pipeline;
use paystream_testkit::{free_port, fresh_database, wait_until};
use tokio::process::{Child, Command};

pub const RAIL_SECRET: &str = "chaos-rail-secret";
pub const CLOSED_CREDITOR: &str = "DE89370400440532013000";

/// The services a chaos run kills, in the order they start.
pub const SERVICES: [&str; 6] = [
    "gateway",
    "validation",
    "cbs-debit",
    "rtgs-gateway",
    "notifications",
    "audit",
];

pub struct Processes {
    /// A broker of the run's own, durable (SQLite), to kill and restart.
    pub broker: Nisshi,
    pub pipeline: Pipeline,
    pub ports: BTreeMap<&'static str, u16>,
    pub databases: BTreeMap<&'static str, String>,
    children: BTreeMap<&'static str, Child>,
    bin: PathBuf,
}

/// The directory holding this build's binaries (the test runs from
/// `target/<profile>/deps`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    deps.parent().unwrap().to_path_buf()
}

impl Processes {
    pub async fn start(label: &str) -> Self {
        let bin = bin_dir();
        for name in ["sandbox"].into_iter().chain(SERVICES) {
            assert!(
                bin.join(name).exists(),
                "{} is not built (cargo build --bins)",
                bin.join(name).display()
            );
        }
        let broker = Nisshi::start(Storage::Sqlite).await;
        let pipeline = Pipeline::on(&broker.bootstrap(), label, &Topic::ALL, 3).await;
        let mut ports = BTreeMap::new();
        for name in ["sandbox"].into_iter().chain(SERVICES) {
            ports.insert(name, free_port());
        }
        let mut databases = BTreeMap::new();
        for name in SERVICES {
            databases.insert(name, fresh_database().await.url);
        }
        let mut processes = Self {
            broker,
            pipeline,
            ports,
            databases,
            children: BTreeMap::new(),
            bin,
        };
        processes.start_one("sandbox").await;
        processes
            .operator(
                "cbs-debit",
                &["accounts", "load", "-"],
                paystream_e2e::ACCOUNTS,
            )
            .await;
        processes
            .operator(
                "notifications",
                &["contacts", "load", "-"],
                paystream_e2e::CONTACTS,
            )
            .await;
        for name in SERVICES {
            processes.start_one(name).await;
        }
        processes
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[name])
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
                    .env("PAYSTREAM_SANDBOX_RTGS_CALLBACK_SECRET", RAIL_SECRET)
                    .env(
                        "PAYSTREAM_SANDBOX_RTGS_CALLBACK_URL",
                        format!("{}/v1/rail/status-reports", self.url("rtgs-gateway")),
                    );
            }
            "validation" => {
                command
                    .env(
                        "PAYSTREAM_VALIDATION_IP_INTELLIGENCE_URL",
                        format!("{sandbox}/ip-intelligence"),
                    )
                    .env("PAYSTREAM_VALIDATION_AML_URL", format!("{sandbox}/aml"));
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
