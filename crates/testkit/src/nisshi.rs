//! A nisshi broker process owned by one test, so the test can kill it with
//! SIGKILL and start it again on the same storage, or freeze it (SIGSTOP:
//! connections stay open, requests are read by nobody) and thaw it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{env_or, free_port, wait_for_port};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Fast, lost with the process: for throughput, never for durability.
    Memory,
    /// A SQLite file in the broker's temporary directory: survives restarts.
    Sqlite,
}

pub struct Nisshi {
    child: Option<Child>,
    port: u16,
    storage: Storage,
    dir: tempfile::TempDir,
}

impl Nisshi {
    pub async fn start(storage: Storage) -> Self {
        let mut broker = Self {
            child: None,
            port: free_port(),
            storage,
            dir: tempfile::tempdir().unwrap(),
        };
        broker.spawn().await;
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// SIGKILL: no flush, no clean shutdown, exactly what a crash looks like.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("the broker runs")
            .id()
            .to_string();
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

    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let storage = match self.storage {
            Storage::Memory => "memory://nisshi/".to_owned(),
            // nisshi resolves a sqlite:// path against its working directory.
            Storage::Sqlite => "sqlite://nisshi.db".to_owned(),
        };
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.path().join("broker.log")).unwrap();
        let child = Command::new(env_or("NISSHI_BIN", "nisshi"))
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &storage])
            // Tests create a group per scenario; Kafka's 3 s wait for more
            // members only slows them down.
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

impl Drop for Nisshi {
    fn drop(&mut self) {
        // SIGKILL ends a frozen process too.
        self.kill9();
    }
}
