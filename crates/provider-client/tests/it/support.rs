//! A sandbox provider on a free port, and clients for it.

use std::time::Duration;

use paystream_provider_client::{ProviderClient, ProviderSettings};
use paystream_sandbox::{AML, Config, Control, IP_INTELLIGENCE, Server};
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long a test waits for something that takes milliseconds when right.
pub const WAIT: Duration = Duration::from_secs(20);

/// One sandbox provider; the sandbox stops when this is dropped.
pub struct Provider {
    pub base: String,
    pub control: Control,
    _running: DropGuard,
}

impl Provider {
    pub async fn aml(behaviour: &str) -> Self {
        Self::start(AML, behaviour).await
    }

    pub async fn ip_intelligence(behaviour: &str) -> Self {
        Self::start(IP_INTELLIGENCE, behaviour).await
    }

    async fn start(provider: &'static str, behaviour: &str) -> Self {
        let mut config = Config::local();
        let behaviour = behaviour.parse().unwrap();
        if provider == AML {
            config.aml = behaviour;
        } else {
            config.ip_intelligence = behaviour;
        }
        let server = Server::build(&config).await.unwrap();
        let control = server.control(provider).unwrap();
        let base = format!("http://{}/{provider}", server.local_addr());
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(shutdown.clone()));
        Self {
            base,
            control,
            _running: shutdown.drop_guard(),
        }
    }

    pub fn set(&self, behaviour: &str) {
        self.control.set(behaviour.parse().unwrap());
    }

    pub fn received(&self) -> usize {
        self.control.received().len()
    }

    pub fn client(&self, name: &'static str, settings: ProviderSettings) -> ProviderClient {
        ProviderClient::new(name, &self.base, settings).unwrap()
    }
}

/// One try per call, so each call is one request the sandbox sees.
pub fn one_try() -> ProviderSettings {
    ProviderSettings {
        attempts: 1,
        ..ProviderSettings::default()
    }
}
