//! The service runtime: what every Paystream service is made of, wired once.
//!
//! ```ignore
//! let mut service = Service::builder(SERVICE, config.listen)
//!     .database(&config.database_url, &MIGRATOR)
//!     .kafka(&config.kafka, &config.registry, &config.consumer)
//!     .build()
//!     .await?;
//! service.consume::<PaymentSubmitted, _>(GROUP, [], Validator::new(..));
//! service.routes(api_router);
//! service.run(shutdown).await
//! ```
//!
//! `build` connects the database and runs the runtime's migrations with the
//! service's, connects the schema registry and the producer, and binds the
//! HTTP listener. `run` serves the service's routes beside `/healthz`,
//! `/readyz` and `/metrics`, runs every consumer and the outbox relay, and
//! stops them all on shutdown (or when one fails): HTTP stops accepting,
//! consumers drain and commit, the relay makes a last pass.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use futures::future::BoxFuture;
use paystream_bus::{
    Consumer, ConsumerArgs, Effects, Handler, KafkaConfig, Outbox, Producer, RegistryConfig,
};
use paystream_contract::{Codec, Inbound, Topic};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::ServiceError;
use crate::readiness::Readiness;

/// How often the outbox relay looks for rows nobody woke it for (rows left
/// by a crash, or staged by another replica).
const RELAY_POLL: Duration = Duration::from_millis(500);

type Task =
    Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, Result<(), ServiceError>> + Send>;

/// What a service needs before it can be built.
pub struct ServiceBuilder {
    name: &'static str,
    listen: SocketAddr,
    database: Option<(String, &'static Migrator, u32)>,
    kafka: KafkaConfig,
    registry: RegistryConfig,
    consumer: ConsumerArgs,
}

impl ServiceBuilder {
    /// The service's PostgreSQL and its migrations (the runtime's own run
    /// beside them). Without a database, consumers are at-least-once.
    pub fn database(mut self, url: &str, migrations: &'static Migrator) -> Self {
        self.database = Some((url.to_owned(), migrations, 32));
        self
    }

    /// The most connections the pool opens.
    pub fn max_connections(mut self, max: u32) -> Self {
        if let Some((_, _, connections)) = &mut self.database {
            *connections = max;
        }
        self
    }

    pub fn kafka(
        mut self,
        kafka: &KafkaConfig,
        registry: &RegistryConfig,
        consumer: &ConsumerArgs,
    ) -> Self {
        self.kafka = kafka.clone();
        self.registry = registry.clone();
        self.consumer = consumer.clone();
        self
    }

    pub async fn build(self) -> Result<Service, ServiceError> {
        paystream_bus::metrics::init();
        let pool = match &self.database {
            Some((url, migrations, connections)) => {
                let pool = paystream_bus::pool::options()
                    .max_connections(*connections)
                    .connect(url)
                    .await?;
                migrate(&pool, migrations).await?;
                Some(pool)
            }
            None => None,
        };
        let codec = self.registry.codec()?;
        let producer = Producer::new(&self.kafka, codec.clone(), self.name)?;
        let readiness = Readiness::new(&self.kafka, &self.registry, pool.clone())?;
        // A first answer for /readyz before anything is served.
        readiness.check_now().await;
        let listener = crate::bind(self.listen).await?;
        Ok(Service {
            name: self.name,
            outbox: pool.as_ref().map(|_| Outbox::new(producer.clone())),
            pool,
            codec,
            producer,
            kafka: self.kafka,
            consumer: self.consumer,
            readiness,
            listener,
            router: Router::new(),
            tasks: Vec::new(),
        })
    }
}

/// Runs the runtime's migrations and the service's as one set, so each
/// applies once, in version order, under sqlx's lock.
pub async fn migrate(pool: &PgPool, service: &'static Migrator) -> Result<(), ServiceError> {
    let mut migrations: Vec<_> = paystream_bus::MIGRATOR
        .iter()
        .chain(service.iter())
        .cloned()
        .collect();
    migrations.sort_by_key(|migration| migration.version);
    let combined = Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    };
    combined.run(pool).await?;
    Ok(())
}

/// A service, built and ready to run.
pub struct Service {
    name: &'static str,
    pool: Option<PgPool>,
    codec: Codec,
    producer: Producer,
    outbox: Option<Outbox>,
    kafka: KafkaConfig,
    consumer: ConsumerArgs,
    readiness: Readiness,
    listener: TcpListener,
    router: Router,
    tasks: Vec<Task>,
}

impl Service {
    /// `listen`: the HTTP address (`127.0.0.1:0` in tests).
    pub fn builder(name: &'static str, listen: SocketAddr) -> ServiceBuilder {
        ServiceBuilder {
            name,
            listen,
            database: None,
            kafka: KafkaConfig::default(),
            registry: RegistryConfig::new("http://127.0.0.1:8081"),
            consumer: ConsumerArgs::default(),
        }
    }

    /// The service's database, if it has one.
    pub fn pool(&self) -> Option<&PgPool> {
        self.pool.as_ref()
    }

    /// The producer, for events that start a journey (an API request).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The transactional outbox, if the service has a database: for events
    /// decided outside a consumer's handler (an HTTP callback, a poller).
    pub fn outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    /// Adds a background task of the service's own (a poller, a sender),
    /// run beside the consumers and stopped with them: it gets the
    /// service's shutdown token and must return once it is cancelled. Its
    /// failure stops the service like a consumer's.
    pub fn task<F, Fut>(&mut self, task: F) -> &mut Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), ServiceError>> + Send + 'static,
    {
        self.tasks
            .push(Box::new(move |shutdown| Box::pin(task(shutdown))));
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        crate::local_addr(&self.listener)
    }

    /// Adds a consumer group reading `topics` (none: `I`'s own topic) with
    /// `handler`: effectively once through the service's database, or
    /// at-least-once if the service has none.
    pub fn consume<I: Inbound, H: Handler<I>>(
        &mut self,
        group: &str,
        topics: impl IntoIterator<Item = Topic>,
        handler: H,
    ) -> &mut Self {
        let effects = match (&self.pool, &self.outbox) {
            (Some(pool), Some(outbox)) => Effects::Transactional {
                pool: pool.clone(),
                outbox: outbox.clone(),
            },
            _ => Effects::AtLeastOnce {
                producer: self.producer.clone(),
            },
        };
        let mut consumer = Consumer::<I>::new(
            self.kafka.clone(),
            self.consumer.settings(group),
            self.codec.clone(),
            std::sync::Arc::new(self.producer.clone()),
        );
        let topics: Vec<Topic> = topics.into_iter().collect();
        if !topics.is_empty() {
            consumer = consumer.topics(topics);
        }
        self.tasks.push(Box::new(move |shutdown| {
            Box::pin(async move {
                consumer
                    .run(effects, handler, shutdown)
                    .await
                    .map_err(ServiceError::from)
            })
        }));
        self
    }

    /// Adds routes to the service's HTTP server (beside `/healthz`,
    /// `/readyz` and `/metrics`, which the service must not define).
    pub fn routes(&mut self, router: Router) -> &mut Self {
        self.router = std::mem::take(&mut self.router).merge(router);
        self
    }

    /// Serves, consumes and relays until `shutdown`, or until any part
    /// fails, which stops the rest. Consumers drain and commit before this
    /// returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        let stop = shutdown.child_token();
        tracing::info!(service = self.name, addr = %self.local_addr(), tasks = self.tasks.len(), "service starting");
        let readiness = self.readiness.clone();
        let router = self
            .router
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/readyz",
                get(move || {
                    let readiness = readiness.clone();
                    async move { readiness.report() }
                }),
            )
            .route("/metrics", get(crate::http::metrics));
        let mut tasks = JoinSet::new();
        let readiness = self.readiness.refresh(stop.clone());
        tasks.spawn(async move {
            readiness.await;
            Ok(())
        });
        if let (Some(pool), Some(outbox)) = (self.pool, self.outbox) {
            let stop = stop.clone();
            tasks.spawn(async move {
                outbox.relay(pool, RELAY_POLL, stop).await;
                Ok(())
            });
        }
        for task in self.tasks {
            tasks.spawn(task(stop.clone()));
        }
        // With the peer address, for routes that limit per client IP.
        let http = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned());
        tasks.spawn(async move { http.await.map_err(ServiceError::Serve) });
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            let outcome = joined
                .map_err(|error| ServiceError::Task(error.to_string()))
                .and_then(|r| r);
            if let Err(error) = outcome {
                tracing::error!(service = self.name, %error, "a part of the service failed; stopping the rest");
                if result.is_ok() {
                    result = Err(error);
                }
            }
            // Whatever ended first (shutdown, a failure, a consumer that
            // returned), the service as a whole stops with it.
            stop.cancel();
        }
        tracing::info!(service = self.name, "service stopped");
        result
    }

    /// Runs the service on a task of its own (tests, embedding): stop it
    /// with [`Running::stop`].
    pub fn start(self) -> Running {
        let shutdown = CancellationToken::new();
        let addr = self.local_addr();
        let task = tokio::spawn(self.run(shutdown.clone()));
        Running {
            addr,
            shutdown,
            task: Some(task),
        }
    }
}

/// A service running on its own task; dropping it asks it to stop.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), ServiceError>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Running {
    /// `http://{addr}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the service gracefully and waits for it.
    pub async fn stop(mut self) -> Result<(), ServiceError> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|error| ServiceError::Task(error.to_string()))?,
            None => Ok(()),
        }
    }
}
