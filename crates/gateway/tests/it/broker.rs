//! A nisshi broker process owned by one test, which the test can stop
//! answering (SIGSTOP: connections stay open, requests are read by nobody),
//! let answer again (SIGCONT), kill (SIGKILL) and start again on the same
//! port and storage. testkit's broker offers kill and restart; freezing needs
//! the process id, so this one is started here.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use paystream_testkit::{env_or, free_port, wait_for_port};

pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Broker {
    pub async fn start() -> Self {
        let mut broker = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        broker.spawn().await;
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// The process stops; the kernel still accepts connections and bytes.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen process dies of SIGKILL too.
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .unwrap();
        let child = Command::new(env_or("NISSHI_BIN", "nisshi"))
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            // SQLite, so what was written survives a kill and restart.
            .args(["--storage-engine", "sqlite://nisshi.db"])
            .args(["--group-initial-rebalance-delay", "0s"])
            .current_dir(self.dir.path())
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nisshi (set NISSHI_BIN or run devstack/install-broker.sh): {e}"
                )
            });
        self.child = Some(child);
        wait_for_port(&self.bootstrap(), Duration::from_secs(30)).await;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped process would otherwise wait for SIGCONT forever
            // before acting on anything but SIGKILL; SIGKILL ends it either way.
            self.kill9();
        }
    }
}
