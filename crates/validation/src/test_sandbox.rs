//! The sandbox for this crate's unit tests: served on a free port until
//! the guard is dropped, and asked what each provider received.

use paystream_sandbox::{Config, Server};
use tokio_util::sync::{CancellationToken, DropGuard};

pub struct Sandbox {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _stop: DropGuard,
}

impl Sandbox {
    pub async fn start(config: Config) -> Self {
        let server = Server::build(&config).await.unwrap();
        let url = format!("http://{}", server.local_addr());
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(shutdown.clone()));
        Self {
            url,
            _stop: shutdown.drop_guard(),
        }
    }

    /// `provider`'s base URL.
    pub fn base(&self, provider: &str) -> String {
        format!("{}/{provider}", self.url)
    }

    /// How many requests `provider` received.
    pub async fn requests(&self, provider: &str) -> u64 {
        let report: paystream_sandbox::ProviderReport =
            reqwest::get(format!("{}/admin/providers/{provider}/report", self.url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        report.requests
    }
}
