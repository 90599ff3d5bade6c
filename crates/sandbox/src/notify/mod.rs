//! The notification provider: an SMS and e-mail gateway in the shape of
//! Twilio or SendGrid. `POST /v1/messages` with an `Idempotency-Key`
//! delivers one message per key; the same message under the same key is
//! answered from the idempotency record (200, `Idempotent-Replayed: true`)
//! and never delivered again, other content under a known key is a 409 —
//! until the idempotency window forgets the key, when the same key
//! delivers again, as it would with the real gateways.
//!
//! Nothing is sent anywhere. The provider keeps an exact account of what
//! it delivered ([`NotifyReport`]), so a test can check a client notified
//! each recipient once, whatever the provider's knobs
//! ([`NotifyBehaviour`]) did to its answers.

mod book;
mod knobs;
mod message;
mod report;
mod routes;
mod window;

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

pub use knobs::{NotifyBehaviour, NotifySpecError};
pub use report::NotifyReport;
pub use routes::{admin_routes, routes};
pub(crate) use window::{DEFAULT_WINDOW, format_window, parse_window};

/// The provider: a handle on its state, shared by its routes and tests.
/// Cloning is cheap.
#[derive(Clone)]
pub struct Notify {
    inner: Arc<Inner>,
}

struct Inner {
    behaviour: RwLock<NotifyBehaviour>,
    /// How long a key is remembered.
    window: Duration,
    book: Mutex<book::Book>,
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notify")
            .field("behaviour", &self.behaviour())
            .field("window", &self.inner.window)
            .finish_non_exhaustive()
    }
}

impl Notify {
    pub(crate) fn new(behaviour: NotifyBehaviour, window: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                behaviour: RwLock::new(behaviour),
                window,
                book: Mutex::new(book::Book::default()),
            }),
        }
    }

    pub fn behaviour(&self) -> NotifyBehaviour {
        self.inner
            .behaviour
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Applies to messages that arrive from now on.
    pub fn set_behaviour(&self, behaviour: NotifyBehaviour) {
        tracing::info!(provider = crate::NOTIFY, notify = %behaviour, "notify behaviour changed");
        *self
            .inner
            .behaviour
            .write()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }

    /// How long the provider remembers an idempotency key.
    pub fn window(&self) -> Duration {
        self.inner.window
    }

    fn book(&self) -> std::sync::MutexGuard<'_, book::Book> {
        self.inner
            .book
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
