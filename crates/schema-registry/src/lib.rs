//! A schema registry that speaks the Confluent Schema Registry REST API, so that
//! `schema_registry_converter`, Confluent's serdes and Kafka tooling work against
//! it unchanged. Schemas live in PostgreSQL; ids are global and stable, and the
//! same schema text always registers to the same id. Compatibility checks use
//! `apache_avro::schema_compatibility`.

mod api;
pub mod compatibility;
mod error;
mod flags;
pub mod released;
mod store;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use api::CONTENT_TYPE;
pub use compatibility::CompatibilityLevel;
pub use error::ApiError;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the REST API listens on (Confluent's default port is 8081).
    #[arg(
        long,
        env = "PAYSTREAM_SCHEMA_REGISTRY_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: SocketAddr,

    /// PostgreSQL database that holds the schemas; migrated at start-up.
    #[arg(
        long,
        env = "PAYSTREAM_SCHEMA_REGISTRY_DATABASE_URL",
        default_value = "postgres://schema_registry:schema_registry@127.0.0.1:5432/schema_registry"
    )]
    pub database_url: String,

    /// Global compatibility level until one is set with `PUT /config`
    /// (NONE, BACKWARD, FORWARD, FULL, or their _TRANSITIVE forms).
    #[arg(
        long,
        env = "PAYSTREAM_SCHEMA_REGISTRY_DEFAULT_COMPATIBILITY",
        default_value = "BACKWARD"
    )]
    pub default_compatibility: CompatibilityLevel,

    /// Size of the PostgreSQL connection pool.
    #[arg(
        long,
        env = "PAYSTREAM_SCHEMA_REGISTRY_DB_MAX_CONNECTIONS",
        default_value_t = 8
    )]
    pub db_max_connections: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to the schema database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the schema database: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Listen(#[from] paystream_service_kit::BindError),
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// A registry bound to its port and ready to serve. Tests build one on
/// `127.0.0.1:0` and read the port from [`Server::local_addr`].
pub struct Server {
    listener: TcpListener,
    router: axum::Router,
}

impl Server {
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let pool = paystream_service_kit::pool_options()
            .max_connections(config.db_max_connections)
            .connect(&config.database_url)
            .await?;
        let store = store::Store::new(pool);
        store.migrate().await?;
        let listener = paystream_service_kit::bind(config.listen).await?;
        let router = api::router(api::AppState {
            store,
            default_level: config.default_compatibility,
        })
        .layer(axum::middleware::from_fn(log_request));
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        paystream_service_kit::local_addr(&self.listener)
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        tracing::info!(addr = %self.local_addr(), "schema registry listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(StartError::Serve)
    }
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    Server::build(&config).await?.run(shutdown).await
}

async fn log_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::debug!(%method, path, status = response.status().as_u16(), "request served");
    response
}
