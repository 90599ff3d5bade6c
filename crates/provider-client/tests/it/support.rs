//! A sandbox provider on a free port, and clients for it.

use std::net::SocketAddr;
use std::time::Duration;

use paystream_provider_client::{Protocol, ProviderClient, ProviderSettings};
use paystream_sandbox::{AML, Config, Control, IP_INTELLIGENCE, Server};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long a test waits for something that takes milliseconds when right.
pub const WAIT: Duration = Duration::from_secs(20);

/// One sandbox provider; the sandbox stops when this is dropped.
pub struct Provider {
    pub base: String,
    pub control: Control,
    name: &'static str,
    behaviour: String,
    address: SocketAddr,
    running: DropGuard,
    task: JoinHandle<()>,
}

impl Provider {
    pub async fn aml(behaviour: &str) -> Self {
        Self::start(AML, behaviour, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn ip_intelligence(behaviour: &str) -> Self {
        Self::start(
            IP_INTELLIGENCE,
            behaviour,
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
    }

    async fn start(provider: &'static str, behaviour: &str, address: SocketAddr) -> Self {
        let mut config = Config::local();
        config.listen = address;
        let parsed = behaviour.parse().unwrap();
        if provider == AML {
            config.aml = parsed;
        } else {
            config.ip_intelligence = parsed;
        }
        let server = Server::build(&config).await.unwrap();
        let control = server.control(provider).unwrap();
        let address = server.local_addr();
        let base = format!("http://{address}/{provider}");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Self {
            base,
            control,
            name: provider,
            behaviour: behaviour.to_owned(),
            address,
            running: shutdown.drop_guard(),
            task,
        }
    }

    /// Stops this sandbox, closing its connections, and starts a new one
    /// on the same address, behaving as this one was started.
    pub async fn restarted(self) -> Self {
        let Self {
            name,
            behaviour,
            address,
            running,
            task,
            ..
        } = self;
        drop(running);
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the sandbox stops")
            .unwrap();
        Self::start(name, &behaviour, address).await
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

/// Runs `test` over each protocol in turn: what goes over the wire must not
/// depend on which HTTP carries it.
pub async fn each_protocol<F, Fut>(test: F)
where
    F: Fn(Protocol) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for protocol in Protocol::ALL {
        test(protocol).await;
    }
}

/// `settings` speaking `protocol`: what goes over the wire must not depend
/// on which HTTP carries it.
pub fn over(protocol: Protocol, settings: ProviderSettings) -> ProviderSettings {
    ProviderSettings {
        protocol,
        ..settings
    }
}
