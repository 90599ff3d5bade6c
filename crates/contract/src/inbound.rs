//! What a consumer decodes records into: one event type for a single topic,
//! or [`AnyEvent`] for a consumer group that reads several topics and
//! matches on the event it got.

use std::future::Future;

use crate::codec::{Codec, DecodeError};
use crate::events::*;
use crate::topic::Topic;

/// A type records of some topics decode into.
pub trait Inbound: Sized + Send + Sync + 'static {
    /// The topics a consumer of this type reads when it names none.
    fn default_topics() -> Vec<Topic>;

    /// Whether records of `topic` decode into this type.
    fn accepts(topic: Topic) -> bool;

    fn decode(
        codec: &Codec,
        topic: Topic,
        bytes: Option<&[u8]>,
    ) -> impl Future<Output = Result<Self, DecodeError>> + Send;

    fn envelope(&self) -> &Envelope;
}

impl<E: Event> Inbound for E {
    fn default_topics() -> Vec<Topic> {
        vec![E::TOPIC]
    }

    fn accepts(topic: Topic) -> bool {
        topic == E::TOPIC
    }

    async fn decode(
        codec: &Codec,
        _topic: Topic,
        bytes: Option<&[u8]>,
    ) -> Result<Self, DecodeError> {
        codec.decode::<E>(bytes).await
    }

    fn envelope(&self) -> &Envelope {
        Event::envelope(self)
    }
}

macro_rules! any_event {
    ($($variant:ident),+ $(,)?) => {
        /// Any event of the contract, for consumers of several topics.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum AnyEvent {
            $($variant($variant),)+
        }

        impl AnyEvent {
            pub fn topic(&self) -> Topic {
                match self {
                    $(Self::$variant(_) => Topic::$variant,)+
                }
            }

            /// The event's record key.
            pub fn partition_key(&self) -> &str {
                match self {
                    $(Self::$variant(event) => event.partition_key(),)+
                }
            }

            /// The event as JSON, field names as in the schemas.
            pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $(Self::$variant(event) => serde_json::to_value(event),)+
                }
            }
        }

        $(impl From<$variant> for AnyEvent {
            fn from(event: $variant) -> Self {
                Self::$variant(event)
            }
        })+

        impl Inbound for AnyEvent {
            /// None: a consumer of several topics names them.
            fn default_topics() -> Vec<Topic> {
                Vec::new()
            }

            fn accepts(_topic: Topic) -> bool {
                true
            }

            async fn decode(
                codec: &Codec,
                topic: Topic,
                bytes: Option<&[u8]>,
            ) -> Result<Self, DecodeError> {
                Ok(match topic {
                    $(Topic::$variant => Self::$variant(codec.decode(bytes).await?),)+
                })
            }

            fn envelope(&self) -> &Envelope {
                match self {
                    $(Self::$variant(event) => Event::envelope(event),)+
                }
            }
        }
    };
}

any_event!(
    PaymentSubmitted,
    PaymentValidated,
    PaymentRejected,
    AmlAlertRaised,
    AccountDebited,
    AccountDebitReversed,
    RtgsSubmitted,
    RtgsSettled,
    RtgsRejected,
    CardTransactionReceived,
    NotificationSent,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_its_variant() {
        let sample = crate::samples::payment_submitted();
        let any = AnyEvent::from(sample.clone());
        assert_eq!(any.topic(), Topic::PaymentSubmitted);
        assert_eq!(Inbound::envelope(&any), &sample.envelope);
        assert!(PaymentSubmitted::accepts(Topic::PaymentSubmitted));
        assert!(!PaymentSubmitted::accepts(Topic::PaymentValidated));
        assert_eq!(
            PaymentSubmitted::default_topics(),
            [Topic::PaymentSubmitted]
        );
        assert!(AnyEvent::default_topics().is_empty());
    }
}
