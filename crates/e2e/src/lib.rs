//! The pipeline's services started in-process for tests that cross them:
//! the sandbox playing the providers, validation and the gateway, on a topic
//! namespace, registry and databases of the test's own. Each service is
//! started the way its binary starts it, through its `build` and the
//! service runtime, on `127.0.0.1:0`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use paystream_contract::Topic;
use paystream_service_kit::Running;
use paystream_testkit::fresh_database;
use paystream_testkit::pipeline::Pipeline;
use tokio_util::sync::CancellationToken;

/// An API client the stack's gateway accepts: `Authorization: Bearer {API_KEY}`.
pub const API_KEY: &str = "e2e-key";

pub struct Stack {
    pub pipeline: Pipeline,
    pub gateway: Running,
    pub validation: Running,
    /// The sandbox's.
    shutdown: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(clap::Parser)]
struct ValidationDefaults {
    #[command(flatten)]
    config: paystream_validation::Config,
}

#[derive(clap::Parser)]
struct GatewayDefaults {
    #[command(flatten)]
    config: paystream_gateway::Config,
}

impl Stack {
    pub async fn start() -> Self {
        let shutdown = CancellationToken::new();
        let sandbox = paystream_sandbox::Server::build(&paystream_sandbox::Config::local())
            .await
            .unwrap();
        let sandbox_url = format!("http://{}", sandbox.local_addr());
        tokio::spawn(sandbox.run(shutdown.clone()));
        let pipeline = Pipeline::new("e2e", &Topic::ALL, 3).await;
        let registry = paystream_bus::RegistryConfig::new(&pipeline.registry.url).auto_register();

        let mut validation = <ValidationDefaults as clap::Parser>::parse_from(["test"]).config;
        validation.listen = "127.0.0.1:0".parse().unwrap();
        validation.database_url = fresh_database().await.url;
        validation.ip_intelligence_url = format!("{sandbox_url}/ip-intelligence");
        validation.aml_url = format!("{sandbox_url}/aml");
        validation.kafka = pipeline.kafka.clone();
        validation.registry = registry.clone();
        let validation = paystream_validation::build(&validation)
            .await
            .unwrap()
            .start();

        let mut gateway = <GatewayDefaults as clap::Parser>::parse_from(["test"]).config;
        gateway.listen = "127.0.0.1:0".parse().unwrap();
        gateway.database_url = fresh_database().await.url;
        gateway.api_keys = paystream_gateway::auth::ApiKeys::default().with("e2e", API_KEY);
        gateway.kafka = pipeline.kafka.clone();
        gateway.registry = registry;
        let gateway = paystream_gateway::Server::build(&gateway)
            .await
            .unwrap()
            .start();
        Self {
            pipeline,
            gateway,
            validation,
            shutdown,
        }
    }
}
