//! The RTGS rail: takes one pacs.008.001.08 credit transfer per request,
//! acknowledges it with a pacs.002 (ACSP, or PDNG), settles or rejects it
//! after a delay and says so in a signed callback (a pacs.002 ACSC or RJCT),
//! and answers status queries in between. The UETR is the idempotency key:
//! the same document again gets the same acknowledgement, byte for byte,
//! and is never settled twice; other content under a known UETR is a 409.
//!
//! Money moves nowhere. The rail keeps an exact account of what it saw
//! ([`RailReport`]), so a test can check a client sent each payment once
//! and that nothing was settled twice, whatever the rail's knobs
//! ([`RailBehaviour`]) did to its answers and callbacks.

mod book;
mod callback;
mod knobs;
mod reasons;
mod report;
mod routes;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use uuid::Uuid;

pub use knobs::{RailBehaviour, RailSpecError};
pub use reasons::ReasonCode;
pub use report::{CallbackReport, RailReport, UetrReport};
pub use routes::{admin_routes, routes};

/// How long one callback delivery may take.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The rail: a handle on its state, shared by its routes, its settlement
/// tasks and tests. Cloning is cheap.
#[derive(Clone)]
pub struct Rail {
    inner: Arc<Inner>,
}

struct Inner {
    /// Tells this rail's message ids from those of an earlier run, so a
    /// client that keeps the ids of callbacks it saw never confuses them.
    run: String,
    behaviour: RwLock<RailBehaviour>,
    callback_url: RwLock<Option<String>>,
    secret: String,
    /// Creditor accounts, normalised (see [`normalise_account`]).
    closed_accounts: HashSet<String>,
    book: Mutex<HashMap<Uuid, book::Entry>>,
    /// The last transfer number handed out.
    sequence: AtomicU64,
    counters: book::Counters,
    http: reqwest::Client,
}

impl std::fmt::Debug for Rail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rail")
            .field("run", &self.inner.run)
            .field("behaviour", &self.behaviour())
            .field("callback_url", &self.callback_url())
            .finish_non_exhaustive()
    }
}

/// Accounts compare without spaces and case: `de89 3704…` is `DE893704…`.
fn normalise_account(account: &str) -> String {
    account
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

impl Rail {
    pub(crate) fn new(
        behaviour: RailBehaviour,
        callback_url: Option<String>,
        secret: String,
        closed_accounts: &[String],
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(CALLBACK_TIMEOUT)
            .build()?;
        let run = Uuid::new_v4().simple().to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                run: run[..8].to_owned(),
                behaviour: RwLock::new(behaviour),
                callback_url: RwLock::new(callback_url.filter(|url| !url.trim().is_empty())),
                secret,
                closed_accounts: closed_accounts
                    .iter()
                    .map(|account| normalise_account(account))
                    .filter(|account| !account.is_empty())
                    .collect(),
                book: Mutex::new(HashMap::new()),
                sequence: AtomicU64::new(0),
                counters: book::Counters::default(),
                http,
            }),
        })
    }

    pub fn behaviour(&self) -> RailBehaviour {
        self.inner
            .behaviour
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Applies to transfers accepted from now on; those in flight keep the
    /// behaviour they were accepted under.
    pub fn set_behaviour(&self, behaviour: RailBehaviour) {
        tracing::info!(provider = crate::RTGS, rail = %behaviour, "rail behaviour changed");
        *self
            .inner
            .behaviour
            .write()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }

    pub fn callback_url(&self) -> Option<String> {
        self.inner
            .callback_url
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Where the final status reports go from now on (`None`: nowhere; the
    /// client has to ask).
    pub fn set_callback_url(&self, url: Option<String>) {
        let url = url.filter(|url| !url.trim().is_empty());
        tracing::info!(
            provider = crate::RTGS,
            callback_url = url.as_deref().unwrap_or("none"),
            "rail callback URL changed"
        );
        *self
            .inner
            .callback_url
            .write()
            .unwrap_or_else(PoisonError::into_inner) = url;
    }

    fn book(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, book::Entry>> {
        self.inner
            .book
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self, account: &str) -> bool {
        self.inner
            .closed_accounts
            .contains(&normalise_account(account))
    }

    /// A message id of this rail: `RAIL-<run>-<number>-<suffix>`.
    fn message_id(&self, number: u64, suffix: &str) -> String {
        format!("RAIL-{}-{number:06}-{suffix}", self.inner.run)
    }
}
