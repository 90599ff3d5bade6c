//! What a handler's failure means to the runtime, and the runtime's own errors.

use std::fmt;

use paystream_contract::{DecodeError, EncodeError};

/// A handler's failure. A business outcome (a payment rejected, a duplicate
/// skipped) is not a failure: the handler returns `Ok` and produces the
/// outcome's event.
#[derive(Debug)]
pub enum HandlerError {
    /// Worth trying again: a timeout, a 5xx or 429, a broker or database
    /// hiccup. Retried on the consumer's schedule, blocking only its key.
    Transient(String),
    /// Retrying cannot help: bad data, a bug. Dead-lettered at once.
    Permanent(String),
}

impl HandlerError {
    pub fn transient(reason: impl fmt::Display) -> Self {
        Self::Transient(reason.to_string())
    }

    pub fn permanent(reason: impl fmt::Display) -> Self {
        Self::Permanent(reason.to_string())
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Transient(reason) | Self::Permanent(reason) => reason,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transient(reason) => write!(f, "transient: {reason}"),
            Self::Permanent(reason) => write!(f, "permanent: {reason}"),
        }
    }
}

impl std::error::Error for HandlerError {}

impl From<ProduceError> for HandlerError {
    fn from(error: ProduceError) -> Self {
        if error.is_transient() {
            Self::transient(error)
        } else {
            Self::permanent(error)
        }
    }
}

impl From<sqlx::Error> for HandlerError {
    /// Database errors are transient unless they say the data is wrong:
    /// a lost connection or a serialization failure is worth a retry, a
    /// constraint violation on the same input will fail the same way again.
    fn from(error: sqlx::Error) -> Self {
        let permanent = match &error {
            sqlx::Error::Database(db) => {
                db.is_unique_violation()
                    || db.is_foreign_key_violation()
                    || db.is_check_violation()
                    || db.code().is_some_and(|code| code.starts_with("22"))
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => true,
            _ => false,
        };
        if permanent {
            Self::permanent(error)
        } else {
            Self::transient(error)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(
        "event {event_id} for {topic} has no correlationId: build it with Envelope::caused_by or send it from inside a handler"
    )]
    MissingCorrelation { topic: String, event_id: uuid::Uuid },
    #[error("the broker did not acknowledge the record to {topic}: {reason}")]
    NotAcknowledged {
        topic: String,
        reason: String,
        transient: bool,
    },
}

impl ProduceError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Encode(error) => error.is_transient(),
            Self::MissingCorrelation { .. } => false,
            Self::NotAcknowledged { transient, .. } => *transient,
        }
    }
}

/// Errors that stop a consumer from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot create dead-letter topic {topic}: {reason}")]
    DeadLetterTopic { topic: String, reason: String },
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    #[error("consumer group {0} names no topic to consume")]
    NoTopics(String),
    #[error("records of {topic} do not decode into {event}")]
    WrongEventType {
        topic: paystream_contract::Topic,
        event: &'static str,
    },
    #[error("the consumer's poll thread failed: {0}")]
    PollThread(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0} has no original.topic header: not a dead letter of this runtime")]
    NotADeadLetter(String),
    #[error("no record of {topic} arrived for {waited:?} although the broker reports more")]
    ReplayStalled {
        topic: String,
        waited: std::time::Duration,
    },
    #[error("replaying a dead letter: {0}")]
    ReplaySend(#[from] ProduceError),
}

/// Why a record could not be decoded, as the dead-letter headers name it.
pub(crate) fn decode_class(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::Empty | DecodeError::TooShort(_) | DecodeError::BadMagicByte(_) => {
            "deserialization"
        }
        DecodeError::UnknownSchemaId(_) => "unknown-schema",
        DecodeError::UnusableSchema { .. } | DecodeError::Contract(_) => "unusable-schema",
        DecodeError::WrongSchema { .. } => "wrong-schema",
        DecodeError::Malformed { .. } => "deserialization",
        DecodeError::RegistryUnavailable { .. } => "registry-unavailable",
    }
}
