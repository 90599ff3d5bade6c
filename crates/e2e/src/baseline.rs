//! The hand-written webhook handler the front-door benchmark sets the
//! gateway against (`baseline/fastapi_webhook.py`: FastAPI, pydantic,
//! confluent-kafka with a flush per request), as a process of its own on
//! the benchmark's broker, so one run tells how many times the gateway's
//! throughput it is on the same machine. It needs a Python with the
//! packages of `baseline/requirements.txt`; `make bench-baseline` makes one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use paystream_testkit::free_port;
use tokio::process::{Child, Command};

/// How long the interpreter may take to import FastAPI and answer.
const START_WITHIN: Duration = Duration::from_secs(60);

/// The folder of the handler's source.
fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline")
}

pub struct Baseline {
    child: Child,
    pub port: u16,
    /// Where its standard error goes (loguru's lines), kept to tell why it
    /// stopped.
    _log: tempfile::NamedTempFile,
}

impl Baseline {
    /// Starts the handler with `python` on a free loopback port, producing
    /// to `topic` on `bootstrap` and checking signatures with `secret`, and
    /// waits until it answers. `Err` says why it could not start (no such
    /// interpreter, a package missing), with what it printed.
    pub async fn start(
        python: &Path,
        bootstrap: &str,
        topic: &str,
        secret: &str,
    ) -> Result<Self, String> {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().map_err(|error| error.to_string())?;
        let stderr = log.reopen().map_err(|error| error.to_string())?;
        let mut child = Command::new(python)
            .args(["-m", "uvicorn", "fastapi_webhook:app", "--app-dir"])
            .arg(source_dir())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // Uvicorn's access line per request would cost the baseline a
            // write the seed's own logging does not ask for.
            .args(["--no-access-log", "--log-level", "warning"])
            .env("BASELINE_BOOTSTRAP", bootstrap)
            .env("BASELINE_TOPIC", topic)
            .env("BASELINE_WEBHOOK_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| format!("{} could not be started: {error}", python.display()))?;
        let health = format!("http://127.0.0.1:{port}/healthz");
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("it exited ({status}): {}", tail(log.path())));
            }
            let answered = reqwest::get(&health)
                .await
                .is_ok_and(|response| response.status().is_success());
            if answered {
                return Ok(Self {
                    child,
                    port,
                    _log: log,
                });
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on {health} within {START_WITHIN:?}: {}",
                    tail(log.path())
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its process, for the CPU it uses.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The last lines a process wrote to `path`.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| error.to_string());
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
