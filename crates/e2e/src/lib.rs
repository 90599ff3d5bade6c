//! The pipeline's services started in-process for tests that cross them:
//! the sandbox playing the providers and the rail, validation, the gateway,
//! the ledger (with [`ACCOUNTS`] loaded), rtgs-gateway, notifications
//! (with [`CONTACTS`] loaded) and the audit log with analytics, on a topic
//! namespace, registry and databases of the test's own. Each service is
//! started the way its binary starts it, through its `build` and the
//! service runtime, on `127.0.0.1:0`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod baseline;
pub mod load;
pub mod processes;

use paystream_contract::Topic;
use paystream_service_kit::Running;
use paystream_testkit::fresh_database;
use paystream_testkit::pipeline::Pipeline;
use tokio_util::sync::CancellationToken;

/// An API client the stack's gateway accepts: `Authorization: Bearer {API_KEY}`.
pub const API_KEY: &str = "e2e-key";

/// The card processor's webhook secret in every stack.
pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret";

/// The payer's card (its account is [`PAYER`]).
pub const CARD: &str = "4821337";

/// Connections per service's pool in a stack.
const POOL: u32 = 6;

/// A well-funded payer (its card is 4821337).
pub const PAYER: &str = "GB82WEST12345698765432";
/// A payer with 10.00 EUR.
pub const NEARLY_EMPTY: &str = "GB29NWBK60161331926819";

/// A creditor whose bank has closed the account: the rail rejects
/// payments to it (AC04) and the debit is reversed.
pub const CLOSED_CREDITOR: &str = "DE89370400440532013000";
/// A creditor the rail settles to.
pub const CREDITOR: &str = "FR1420041010050500013M02606";

/// How the payers are told (the notification service's contacts).
pub const CONTACTS: &str = "customer_ref,channel,address
GB82WEST12345698765432,SMS,+447700900123
GB29NWBK60161331926819,EMAIL,payer@example.co.uk
4821337,SMS,+447700900123
";

/// The ledger's accounts in every stack.
pub const ACCOUNTS: &str = "id,currency,opening_balance_minor,flags,cards
GB82WEST12345698765432,EUR,10000000,debits_must_not_exceed_credits,4821337
GB29NWBK60161331926819,EUR,1000,debits_must_not_exceed_credits
";

/// The stack's databases, one per service.
#[derive(Debug, Clone, Default)]
pub struct Databases {
    pub gateway: String,
    pub validation: String,
    pub ledger: String,
    pub rtgs_gateway: String,
    pub notifications: String,
    pub audit: String,
}

pub struct Stack {
    pub pipeline: Pipeline,
    pub gateway: Running,
    pub validation: Running,
    pub ledger: Running,
    /// Each service's database, for operator commands.
    pub databases: Databases,
    /// The sandbox (its admin reports: the rail's, the provider's).
    pub sandbox_url: String,
    pub rtgs_gateway: Running,
    pub notifications: Running,
    /// The audit log and its analytics group.
    pub audit: Running,
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
struct LedgerDefaults {
    #[command(flatten)]
    config: paystream_cbs_debit::Config,
}

#[derive(clap::Parser)]
struct RtgsGatewayDefaults {
    #[command(flatten)]
    config: paystream_rtgs_gateway::Config,
}

#[derive(clap::Parser)]
struct NotificationsDefaults {
    #[command(flatten)]
    config: paystream_notifications::Config,
}

#[derive(clap::Parser)]
struct AuditDefaults {
    #[command(flatten)]
    config: paystream_audit::Config,
}

#[derive(clap::Parser)]
struct GatewayDefaults {
    #[command(flatten)]
    config: paystream_gateway::Config,
}

impl Stack {
    pub async fn start() -> Self {
        let shutdown = CancellationToken::new();
        let mut sandbox = paystream_sandbox::Config::local();
        sandbox.rtgs_rail = "settle=20ms".parse().unwrap();
        sandbox.rtgs_closed_accounts = vec![CLOSED_CREDITOR.to_owned()];
        let sandbox = paystream_sandbox::Server::build(&sandbox).await.unwrap();
        let rail = sandbox.rail().unwrap();
        let sandbox_url = format!("http://{}", sandbox.local_addr());
        tokio::spawn(sandbox.run(shutdown.clone()));
        let pipeline = Pipeline::new("e2e", &Topic::ALL, 3).await;
        let registry = paystream_bus::RegistryConfig::new(&pipeline.registry.url).auto_register();

        let mut validation = <ValidationDefaults as clap::Parser>::parse_from(["test"]).config;
        validation.listen = "127.0.0.1:0".parse().unwrap();
        let mut databases = Databases::default();
        validation.database_url = fresh_database().await.url;
        databases.validation = validation.database_url.clone();
        validation.ip_intelligence_url = format!("{sandbox_url}/ip-intelligence");
        validation.aml_url = format!("{sandbox_url}/aml");
        validation.kafka = pipeline.kafka.clone();
        validation.registry = registry.clone();
        let validation = paystream_validation::build(&validation)
            .await
            .unwrap()
            .start();

        let mut ledger = <LedgerDefaults as clap::Parser>::parse_from(["test"]).config;
        ledger.listen = "127.0.0.1:0".parse().unwrap();
        ledger.database.url = fresh_database().await.url;
        databases.ledger = ledger.database.url.clone();
        // Stacks run side by side in one PostgreSQL: small pools each.
        ledger.max_connections = POOL;
        ledger.kafka = pipeline.kafka.clone();
        ledger.registry = registry.clone();
        let ledger = start_ledger(&ledger).await;

        let mut rtgs = <RtgsGatewayDefaults as clap::Parser>::parse_from(["test"]).config;
        rtgs.listen = "127.0.0.1:0".parse().unwrap();
        rtgs.database_url = fresh_database().await.url;
        databases.rtgs_gateway = rtgs.database_url.clone();
        rtgs.max_connections = POOL;
        rtgs.rail_url = format!("{sandbox_url}/rtgs");
        rtgs.kafka = pipeline.kafka.clone();
        rtgs.registry = registry.clone();
        let rtgs_gateway = paystream_rtgs_gateway::build(&rtgs).await.unwrap();
        rail.set_callback_url(Some(format!(
            "http://{}{}",
            rtgs_gateway.local_addr(),
            paystream_rtgs_gateway::api::CALLBACK_PATH
        )));
        let rtgs_gateway = rtgs_gateway.start();

        let mut notifications =
            <NotificationsDefaults as clap::Parser>::parse_from(["test"]).config;
        notifications.listen = "127.0.0.1:0".parse().unwrap();
        notifications.database.url = fresh_database().await.url;
        databases.notifications = notifications.database.url.clone();
        notifications.max_connections = POOL;
        notifications.provider_url = format!("{sandbox_url}/notify");
        notifications.kafka = pipeline.kafka.clone();
        notifications.registry = registry.clone();
        let notifications = paystream_notifications::build(&notifications)
            .await
            .unwrap();
        paystream_notifications::store::load_contacts(notifications.pool().unwrap(), CONTACTS)
            .await
            .unwrap();
        let notifications = notifications.start();

        let mut audit = <AuditDefaults as clap::Parser>::parse_from(["test"]).config;
        audit.listen = "127.0.0.1:0".parse().unwrap();
        audit.database_url = fresh_database().await.url;
        databases.audit = audit.database_url.clone();
        audit.max_connections = POOL;
        audit.topic_refresh_ms = 500;
        audit.kafka = pipeline.kafka.clone();
        audit.registry = registry.clone();
        let audit = paystream_audit::build(&audit).await.unwrap().start();

        let mut gateway = <GatewayDefaults as clap::Parser>::parse_from(["test"]).config;
        gateway.listen = "127.0.0.1:0".parse().unwrap();
        gateway.database_url = fresh_database().await.url;
        databases.gateway = gateway.database_url.clone();
        gateway.api_keys = paystream_gateway::auth::ApiKeys::default().with("e2e", API_KEY);
        gateway.webhook_secret = Some(WEBHOOK_SECRET.to_owned());
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
            ledger,
            databases,
            sandbox_url,
            rtgs_gateway,
            notifications,
            audit,
            shutdown,
        }
    }
}

/// `GET /v1/payments/{payment_id}` at the gateway `gateway_url` as the client
/// `api_key`; `None` while the gateway cannot answer.
pub async fn payment_view(
    http: &reqwest::Client,
    gateway_url: &str,
    api_key: &str,
    payment_id: &str,
) -> Option<serde_json::Value> {
    http.get(format!("{gateway_url}/v1/payments/{payment_id}"))
        .bearer_auth(api_key)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The body of a `POST /v1/payments` of 250.00 EUR from `debtor` (at a
/// British bank) to `creditor` (at a French bank), from a British IP address.
pub fn credit_transfer(debtor: &str, creditor: &str) -> serde_json::Value {
    serde_json::json!({
        "amount": "250.00", "currency": "EUR",
        "debtor": { "name": "Emily Clarke", "account": debtor,
                    "agentBic": "NWBKGB2L", "country": "GB" },
        "creditor": { "name": "Camille Moreau", "account": creditor,
                      "agentBic": "BNPAFRPP", "country": "FR" },
        "clientIp": "81.2.69.142"
    })
}

impl Stack {
    /// The gateway's view of a payment; `None` while it cannot answer.
    pub async fn payment(&self, payment_id: &str) -> Option<serde_json::Value> {
        payment_view(
            &reqwest::Client::new(),
            &self.gateway.url(),
            API_KEY,
            payment_id,
        )
        .await
    }

    /// `POST /v1/payments` of 250.00 EUR from `debtor` to [`CREDITOR`],
    /// from a British IP address.
    pub async fn submit(&self, idempotency_key: &str, debtor: &str) -> reqwest::Response {
        self.submit_to(idempotency_key, debtor, CREDITOR).await
    }

    /// The same to `creditor`'s account (at a French bank).
    pub async fn submit_to(
        &self,
        idempotency_key: &str,
        debtor: &str,
        creditor: &str,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/payments", self.gateway.url()))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", idempotency_key)
            .json(&credit_transfer(debtor, creditor))
            .send()
            .await
            .unwrap()
    }
}

/// The card processor's webhook for one validated card transaction of
/// `amount` (a decimal string) in EUR on [`CARD`], signed with
/// [`WEBHOOK_SECRET`].
pub fn card_webhook(card_transaction_id: &str, amount: &str) -> String {
    let payload = serde_json::json!({ "cardtransactions": [{
        "cardtransactionId": card_transaction_id, "cardId": CARD, "amount": amount,
        "currency": "EUR", "cardtransactionStatus": "VALIDATED", "merchantName": "SNCF Automate",
        "merchantCountry": "FR", "codeStatus": "170006", "createdDate": "2026-11-30 09:30:00"
    }]})
    .to_string();
    let signature = paystream_gateway::api::webhooks::sign(WEBHOOK_SECRET.as_bytes(), &payload);
    format!(
        r#"{{"webhook":"cardtransaction.create","webhook_id":"{}","object":"cardtransaction","object_id":"{card_transaction_id}","object_payload":{payload},"object_payload_signature":"{signature}"}}"#,
        uuid::Uuid::new_v4()
    )
}

impl Stack {
    /// The card processor's signed webhook for one validated card
    /// transaction of `amount` (a decimal string) in EUR on [`CARD`].
    pub async fn card_transaction(
        &self,
        card_transaction_id: &str,
        amount: &str,
    ) -> reqwest::Response {
        let body = card_webhook(card_transaction_id, amount);
        reqwest::Client::new()
            .post(format!(
                "{}/v1/webhooks/card-transactions",
                self.gateway.url()
            ))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// The ledger with [`ACCOUNTS`] loaded before it starts consuming.
async fn start_ledger(config: &paystream_cbs_debit::Config) -> Running {
    let service = paystream_cbs_debit::build(config).await.unwrap();
    paystream_cbs_debit::operator::load_accounts_text(service.pool().unwrap(), ACCOUNTS)
        .await
        .unwrap();
    service.start()
}
