//! A sandbox on a free port and the requests tests send it.

use std::time::{Duration, Instant};

use paystream_sandbox::notify::Notify;
use paystream_sandbox::rtgs::Rail;
use paystream_sandbox::{AML, Config, Control, IP_INTELLIGENCE, Server};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub struct Sandbox {
    pub base: String,
    pub http: reqwest::Client,
    /// The RTGS rail, when the sandbox plays it.
    pub rail: Option<Rail>,
    /// The notification provider, when the sandbox plays it.
    pub notify: Option<Notify>,
    server: Option<Server>,
    shutdown: CancellationToken,
}

impl Sandbox {
    pub async fn start(config: Config) -> Self {
        let server = Server::build(&config).await.unwrap();
        Self {
            base: format!("http://{}", server.local_addr()),
            http: reqwest::Client::new(),
            rail: server.rail(),
            notify: server.notify(),
            server: Some(server),
            shutdown: CancellationToken::new(),
        }
    }

    /// Starts serving; call [`Sandbox::control`] before this.
    pub fn serve(mut self) -> Self {
        let server = self.server.take().unwrap();
        tokio::spawn(server.run(self.shutdown.clone()));
        self
    }

    pub fn control(&self, provider: &str) -> Control {
        self.server.as_ref().unwrap().control(provider).unwrap()
    }

    pub fn admin(&self, provider: &str) -> String {
        format!("{}/admin/providers/{provider}/behaviour", self.base)
    }

    pub async fn ip(&self, ip: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!(
                "{}/{IP_INTELLIGENCE}/v1/?ip_address={ip}",
                self.base
            ))
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn screen(&self, party: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/{AML}/v1/screen", self.base))
            .json(&party)
            .send()
            .await
            .unwrap()
    }

    /// POSTs `body` to `path` under `provider`'s prefix; the status and
    /// the JSON answered.
    pub async fn post_json(&self, provider: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/{provider}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn screen_json(&self, party: Value) -> (StatusCode, Value) {
        let response = self.screen(party).await;
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `check` every 20 ms until it gives a value; fails the test after 10 s.
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
