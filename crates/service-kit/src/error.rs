/// Why a service could not start, or stopped with an error: what every
/// service's `run` can fail on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("schema registry: {0}")]
    Registry(#[from] paystream_contract::RegistryError),
    #[error(transparent)]
    Listen(#[from] crate::BindError),
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("a consumer failed: {0}")]
    Consumer(#[from] paystream_bus::BusError),
    #[error("a task of the service ended abnormally: {0}")]
    Task(String),
}
