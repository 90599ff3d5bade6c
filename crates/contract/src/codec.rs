//! Encoding and decoding events in the Confluent wire format: byte 0 is the magic
//! byte `0x00`, bytes 1–4 the big-endian schema id in the registry, then the Avro
//! binary datum. Values use the subject `{topic}-value`.
//!
//! Decoding reads the datum with the writer's schema (fetched by id, cached) and
//! resolves it to the schema this binary was built with, so a consumer keeps
//! working while producers move to a newer compatible version. A datum written
//! with exactly the reader's schema (the common case) is read straight into
//! its type, with no resolution to do.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_id, perform_sr_call, post_schema,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SrCall, SuppliedSchema};

use crate::ContractError;
use crate::events::Event;
use crate::topic::{TOPIC_COUNT, Topic};

pub const MAGIC_BYTE: u8 = 0;
pub const HEADER_LEN: usize = 5;

/// How a failed registry call should be treated by the caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The subject, version or schema id does not exist.
    #[error("not found in the schema registry: {0}")]
    NotFound(String),
    /// The registry could not be reached or answered 5xx: try again later.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The registry understood and refused, e.g. an incompatible schema (409).
    #[error("schema registry refused the request: {0}")]
    Refused(String),
}

impl RegistryError {
    /// schema_registry_converter marks only connection errors and 502/503 as
    /// retriable and reports the HTTP status only in its message, so the status
    /// is recovered from there to tell a missing schema from a failing registry.
    fn classify(error: SRCError) -> Self {
        let text = match &error.cause {
            Some(cause) => format!("{}: {cause}", error.error),
            None => error.error.clone(),
        };
        if error.retriable || error.error.contains("status 5") {
            Self::Unavailable(text)
        } else if error.error.contains("status 404") {
            Self::NotFound(text)
        } else if error.error.contains("status") {
            Self::Refused(text)
        } else {
            // No status at all: the request never got an answer.
            Self::Unavailable(text)
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("{topic} event does not fit its schema: {reason}")]
    Serialize { topic: Topic, reason: String },
    #[error("cannot get the schema id of subject {subject}: {source}")]
    Registry {
        subject: String,
        source: RegistryError,
    },
}

impl EncodeError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Registry { source, .. } if source.is_transient())
    }
}

/// Why a record's bytes could not become the expected event. Everything except
/// [`DecodeError::RegistryUnavailable`] is permanent: retrying the same bytes
/// cannot succeed, so the record belongs in a dead-letter topic.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no value")]
    Empty,
    #[error("record value is {0} bytes, shorter than the 5-byte Confluent wire header")]
    TooShort(usize),
    #[error("first byte is {0:#04x}, not the Confluent wire format magic byte 0x00")]
    BadMagicByte(u8),
    #[error("schema id {0} is not known to the schema registry")]
    UnknownSchemaId(u32),
    #[error("schema id {id} has an unusable schema: {reason}")]
    UnusableSchema { id: u32, reason: String },
    #[error("schema id {id} is {found}, not {expected}")]
    WrongSchema {
        id: u32,
        found: String,
        expected: String,
    },
    #[error("payload does not decode with schema id {id}: {reason}")]
    Malformed { id: u32, reason: String },
    #[error("schema registry unavailable while resolving schema id {id}: {reason}")]
    RegistryUnavailable { id: u32, reason: String },
    #[error(transparent)]
    Contract(#[from] ContractError),
}

impl DecodeError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RegistryUnavailable { .. })
    }
}

/// Whether [`Codec::encode`] may register the contract's schema when its subject
/// does not have it yet. Production runs with `LookupOnly`, the schemas having
/// been registered (and compatibility-checked) at deploy time, as Confluent
/// recommends with `auto.register.schemas=false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    LookupOnly,
    AutoRegister,
}

/// A thin client for the registry calls the codec and the provisioning tool
/// make, over schema_registry_converter's HTTP layer.
#[derive(Clone)]
pub struct RegistryClient {
    settings: SrSettings,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").finish_non_exhaustive()
    }
}

impl RegistryClient {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RegistryError> {
        let settings = SrSettings::new_builder(url.trim_end_matches('/').to_owned())
            .set_timeout(timeout)
            .no_proxy()
            .build()
            .map_err(RegistryError::classify)?;
        Ok(Self { settings })
    }

    /// Registers a schema under a subject (a no-op returning the existing id if
    /// it is already there) and returns its global id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        post_schema(
            &self.settings,
            subject.to_owned(),
            SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned()),
        )
        .await
        .map(|registered| registered.id)
        .map_err(RegistryError::classify)
    }

    /// The id of a schema already registered under a subject.
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let body = serde_json::json!({ "schema": schema }).to_string();
        let found = perform_sr_call(&self.settings, SrCall::PostForVersion(subject, &body))
            .await
            .map_err(RegistryError::classify)?;
        found
            .id
            .ok_or_else(|| RegistryError::Refused(format!("lookup under {subject} returned no id")))
    }

    pub async fn schema_text(&self, id: u32) -> Result<String, RegistryError> {
        let registered = get_schema_by_id(id, &self.settings)
            .await
            .map_err(RegistryError::classify)?;
        if registered.schema_type != SchemaType::Avro {
            return Err(RegistryError::Refused(format!(
                "schema {id} is {:?}, not Avro",
                registered.schema_type
            )));
        }
        Ok(registered.schema)
    }
}

/// Encodes and decodes contract events through a schema registry. Cheap to
/// clone; clones share their caches.
#[derive(Clone, Debug)]
pub struct Codec {
    registry: RegistryClient,
    registration: Registration,
    writer_ids: Arc<RwLock<HashMap<Topic, u32>>>,
    /// Held while a writer id is fetched, so a burst of first sends (a
    /// batch of a thousand payments on a cold gateway) makes one registry
    /// call, not one each.
    writer_lookup: Arc<tokio::sync::Mutex<()>>,
    writer_schemas: Arc<RwLock<HashMap<u32, Arc<Schema>>>>,
    fits: Arc<RwLock<HashMap<(u32, Topic), Fit>>>,
}

/// How a writer's schema fits the schema a topic is read with.
#[derive(Debug, Clone)]
enum Fit {
    /// Exactly the reader's schema (docs, defaults and logical types
    /// included): datums are read straight into the type.
    Same,
    /// Another version of the same record: datums are resolved.
    Resolve,
    /// Another record altogether, named here (or "not a named record").
    Wrong(String),
}

impl Codec {
    pub fn new(registry: RegistryClient, registration: Registration) -> Self {
        Self {
            registry,
            registration,
            writer_ids: Arc::default(),
            writer_lookup: Arc::default(),
            writer_schemas: Arc::default(),
            fits: Arc::default(),
        }
    }

    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    /// The schema id this binary writes `topic` with.
    pub async fn writer_id(&self, topic: Topic) -> Result<u32, EncodeError> {
        if let Some(id) = read(&self.writer_ids).get(&topic) {
            return Ok(*id);
        }
        let _lookup = self.writer_lookup.lock().await;
        // Another caller may have fetched it while this one waited.
        if let Some(id) = read(&self.writer_ids).get(&topic) {
            return Ok(*id);
        }
        let subject = topic.value_subject();
        let text = topic.schema_text();
        let id = match self.registration {
            Registration::LookupOnly => self.registry.lookup(&subject, text).await,
            Registration::AutoRegister => self.registry.register(&subject, text).await,
        }
        .map_err(|source| EncodeError::Registry { subject, source })?;
        write(&self.writer_ids).insert(topic, id);
        Ok(id)
    }

    pub async fn encode<E: Event>(&self, event: &E) -> Result<Vec<u8>, EncodeError> {
        let datums = Datums::of(E::TOPIC)?;
        let id = self.writer_id(E::TOPIC).await?;
        let mut bytes = Vec::with_capacity(256);
        bytes.push(MAGIC_BYTE);
        bytes.extend_from_slice(&id.to_be_bytes());
        datums
            .writer
            .write_ser(&mut bytes, event)
            .map_err(|error| EncodeError::Serialize {
                topic: E::TOPIC,
                reason: error.to_string(),
            })?;
        Ok(bytes)
    }

    pub async fn decode<E: Event>(&self, bytes: Option<&[u8]>) -> Result<E, DecodeError> {
        let (id, datum) = split_header(bytes)?;
        let writer = self.writer_schema(id).await?;
        let reader = E::TOPIC.schema()?;
        match self.fit(id, E::TOPIC, &writer, reader)? {
            // The writer's schema is the reader's: read with the reader's
            // own, whose names are resolved once per process.
            Fit::Same => read_exactly(&Datums::of(E::TOPIC)?.reader, datum),
            Fit::Resolve => read_datum(&writer, Some(reader), datum),
            Fit::Wrong(found) => {
                return Err(DecodeError::WrongSchema {
                    id,
                    found,
                    expected: E::TOPIC.record_name()?,
                });
            }
        }
        .map_err(|reason| DecodeError::Malformed { id, reason })
    }

    /// How schema `id` (`writer`) fits `reader`, the schema this binary
    /// reads `topic` with: worked out once per id and topic, not per record.
    fn fit(
        &self,
        id: u32,
        topic: Topic,
        writer: &Schema,
        reader: &Schema,
    ) -> Result<Fit, DecodeError> {
        if let Some(fit) = read(&self.fits).get(&(id, topic)) {
            return Ok(fit.clone());
        }
        let found = record_name(writer).unwrap_or_else(|| "not a named record".to_owned());
        let fit = if found != topic.record_name()? {
            Fit::Wrong(found)
        } else {
            match (serde_json::to_string(writer), serde_json::to_string(reader)) {
                (Ok(writer), Ok(reader)) if writer == reader => Fit::Same,
                _ => Fit::Resolve,
            }
        };
        write(&self.fits).insert((id, topic), fit.clone());
        Ok(fit)
    }

    async fn writer_schema(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        if let Some(schema) = read(&self.writer_schemas).get(&id) {
            return Ok(schema.clone());
        }
        let text = self
            .registry
            .schema_text(id)
            .await
            .map_err(|error| match error {
                RegistryError::NotFound(_) => DecodeError::UnknownSchemaId(id),
                RegistryError::Unavailable(reason) => {
                    DecodeError::RegistryUnavailable { id, reason }
                }
                RegistryError::Refused(reason) => DecodeError::UnusableSchema { id, reason },
            })?;
        let schema =
            Arc::new(
                Schema::parse_str(&text).map_err(|error| DecodeError::UnusableSchema {
                    id,
                    reason: error.to_string(),
                })?,
            );
        write(&self.writer_schemas).insert(id, schema.clone());
        Ok(schema)
    }
}

/// A topic's datum writer, and its reader of datums written with the same
/// schema, built once per process: building one resolves every name in the
/// schema, which per datum was 1% of a consuming service's CPU.
struct Datums {
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
}

impl Datums {
    /// `topic`'s, over its schema.
    fn of(topic: Topic) -> Result<&'static Datums, ContractError> {
        static BUILT: [OnceLock<Result<Datums, String>>; TOPIC_COUNT] =
            [const { OnceLock::new() }; TOPIC_COUNT];
        let schema = topic.schema()?;
        BUILT[topic as usize]
            .get_or_init(|| {
                let writer = datum_writer(schema);
                let reader = datum_reader(schema);
                match (writer, reader) {
                    (Ok(writer), Ok(reader)) => Ok(Datums { writer, reader }),
                    (Err(error), _) | (_, Err(error)) => Err(error.to_string()),
                }
            })
            .as_ref()
            .map_err(|reason| ContractError::InvalidSchema {
                topic: topic.name(),
                reason: reason.clone(),
            })
    }
}

// Human-readable, so that ids serialize as the strings the schemas declare
// (`{"type": "string", "logicalType": "uuid"}`) rather than as 16 bytes.
fn datum_writer(schema: &Schema) -> Result<GenericDatumWriter<'_>, apache_avro::Error> {
    GenericDatumWriter::builder(schema)
        .human_readable(true)
        .build()
}

/// Reads datums written with `schema` straight into a type, human-readable
/// as [`datum_writer`] writes them.
fn datum_reader(schema: &Schema) -> Result<GenericDatumReader<'_>, apache_avro::Error> {
    GenericDatumReader::builder(schema)
        .human_readable(true)
        .build()
}

/// Writes `event` as an Avro binary datum of `schema`.
pub fn write_datum<E: serde::Serialize>(
    schema: &Schema,
    event: &E,
    out: &mut Vec<u8>,
) -> Result<(), apache_avro::Error> {
    datum_writer(schema)
        .and_then(|writer| writer.write_ser(out, event))
        .map(drop)
}

/// Reads one datum written with `writer` as a value of `reader`'s shape, or,
/// with no `reader`, straight into `E` with `writer` alone: for a datum
/// written with the very schema `E` is read with, which is the common case
/// and skips building a generic value and resolving it field by field. The
/// datum must be consumed exactly: trailing bytes mean the framing is wrong.
pub fn read_datum<E: serde::de::DeserializeOwned>(
    writer: &Schema,
    reader: Option<&Schema>,
    datum: &[u8],
) -> Result<E, String> {
    match reader {
        Some(reader) => {
            let mut cursor = datum;
            let event = GenericDatumReader::builder(writer)
                .reader_schema(reader)
                .build()
                .and_then(|datum_reader| datum_reader.read_value(&mut cursor))
                .and_then(|value| apache_avro::from_value::<E>(&value))
                .map_err(|error| error.to_string())?;
            consumed(cursor)?;
            Ok(event)
        }
        None => {
            let datum_reader = datum_reader(writer).map_err(|error| error.to_string())?;
            read_exactly(&datum_reader, datum)
        }
    }
}

/// Reads one datum straight into `E`, all of it.
fn read_exactly<E: serde::de::DeserializeOwned>(
    datum_reader: &GenericDatumReader<'_>,
    datum: &[u8],
) -> Result<E, String> {
    let mut cursor = datum;
    let event = datum_reader
        .read_deser(&mut cursor)
        .map_err(|error| error.to_string())?;
    consumed(cursor)?;
    Ok(event)
}

/// Trailing bytes after a datum mean the framing is wrong.
fn consumed(rest: &[u8]) -> Result<(), String> {
    match rest.len() {
        0 => Ok(()),
        left => Err(format!("{left} bytes left over after the datum")),
    }
}

/// Splits a Confluent-framed value into its schema id and Avro datum.
pub fn split_header(bytes: Option<&[u8]>) -> Result<(u32, &[u8]), DecodeError> {
    let bytes = bytes.ok_or(DecodeError::Empty)?;
    let (header, datum) = bytes
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(DecodeError::TooShort(bytes.len()))?;
    let [magic, id @ ..] = *header;
    if magic != MAGIC_BYTE {
        return Err(DecodeError::BadMagicByte(magic));
    }
    Ok((u32::from_be_bytes(id), datum))
}

pub(crate) fn record_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(record) => Some(record.name.fullname(None)),
        _ => None,
    }
}

// The caches only ever gain entries, so a panic while one was held cannot leave
// it inconsistent; recover the guard instead of propagating the poison.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing_reports_each_framing_fault() {
        assert!(matches!(split_header(None), Err(DecodeError::Empty)));
        assert!(matches!(
            split_header(Some(&[0, 0, 1])),
            Err(DecodeError::TooShort(3))
        ));
        assert!(matches!(
            split_header(Some(&[7, 0, 0, 0, 1, 2])),
            Err(DecodeError::BadMagicByte(7))
        ));
        let (id, datum) = split_header(Some(&[0, 0, 0, 1, 2, 42])).unwrap();
        assert_eq!(id, 258);
        assert_eq!(datum, &[42]);
    }

    #[test]
    fn registry_errors_are_classified_by_status() {
        let not_found = SRCError::non_retryable_without_cause(
            "HTTP request to schema registry failed with status 404 Not Found",
        );
        assert!(matches!(
            RegistryError::classify(not_found),
            RegistryError::NotFound(_)
        ));
        let failing = SRCError::non_retryable_without_cause(
            "HTTP request to schema registry failed with status 500 Internal Server Error",
        );
        assert!(RegistryError::classify(failing).is_transient());
        let refused = SRCError::non_retryable_without_cause(
            "HTTP request to schema registry failed with status 409 Conflict",
        );
        assert!(matches!(
            RegistryError::classify(refused),
            RegistryError::Refused(_)
        ));
        let unreachable = SRCError::new("error sending request", None, true);
        assert!(RegistryError::classify(unreachable).is_transient());
    }
}

#[cfg(test)]
mod corrupted_datums {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::{PaymentSubmitted, Topic, samples};

    /// Poison messages are arbitrary: a datum that is random, truncated or
    /// has bytes flipped (including length prefixes claiming gigabytes) must
    /// come back as an error or a value, never a panic or a runaway
    /// allocation, whether it is resolved or read straight.
    #[test]
    fn corrupted_datums_are_errors_not_panics() {
        let schema = Topic::PaymentSubmitted
            .schema()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut valid = Vec::new();
        write_datum(schema, &samples::payment_submitted(), &mut valid)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let started = std::time::Instant::now();
        let mut errors = 0;
        for round in 0..5_000 {
            let datum: Vec<u8> = match round % 3 {
                0 => (0..rng.random_range(0..200))
                    .map(|_| rng.random())
                    .collect(),
                1 => valid[..rng.random_range(0..valid.len())].to_vec(),
                _ => {
                    let mut flipped = valid.clone();
                    for _ in 0..rng.random_range(1..4) {
                        let at = rng.random_range(0..flipped.len());
                        flipped[at] = rng.random();
                    }
                    flipped
                }
            };
            for reader in [Some(schema), None] {
                if read_datum::<PaymentSubmitted>(schema, reader, &datum).is_err() {
                    errors += 1;
                }
            }
        }
        assert!(errors > 8_000, "most corruptions are caught: {errors}");
        // A first string claiming ~8 GiB (zigzag varint), then nothing.
        let claims_gigabytes = [0xfe, 0xff, 0xff, 0xff, 0x3f];
        for reader in [Some(schema), None] {
            assert!(read_datum::<PaymentSubmitted>(schema, reader, &claims_gigabytes).is_err());
        }
        eprintln!("5,000 corrupted datums in {:?}", started.elapsed());
    }
}
