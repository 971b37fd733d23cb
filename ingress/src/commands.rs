//! Producing commands: encode with the registry codec, attach the
//! correlation id, and answer only once the broker acknowledged the record.
//! The record's offset is returned: it is the version the cart will carry
//! once the command is applied (see `CartSnapshot.version`).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};

use platform::kafka;
use schemas::records::cart::CartCommand;
use schemas::topics::CART_COMMANDS;
use schemas::{Codec, Topic};

use crate::error::ApiError;

#[derive(Clone)]
pub struct CommandWriter {
    producer: FutureProducer,
    codec: Arc<Codec>,
}

impl CommandWriter {
    pub fn new(producer: FutureProducer, codec: Arc<Codec>) -> CommandWriter {
        CommandWriter { producer, codec }
    }

    /// Writes a cart command; returns its offset once acknowledged.
    pub async fn send_cart(&self, command: &CartCommand) -> Result<i64, ApiError> {
        self.send(
            &CART_COMMANDS,
            &command.cart_token,
            command,
            &command.command_id,
        )
        .await
    }

    /// Writes `value` under `key` to `topic`; returns its offset once the
    /// broker acknowledged it.
    pub async fn send<V: serde::Serialize>(
        &self,
        topic: &'static Topic<V>,
        key: &str,
        value: &V,
        causation_id: &str,
    ) -> Result<i64, ApiError> {
        let key = Codec::encode_key(key);
        let value = self.codec.encode(topic, value).await.map_err(codec_error)?;
        let name = self.codec.names().name(&topic.def);
        let correlation_id = crate::correlation::current();
        let record = FutureRecord::to(&name)
            .key(&key)
            .payload(&value)
            .headers(kafka::trace_headers(&correlation_id, causation_id));
        match self.producer.send(record, Duration::from_secs(5)).await {
            Ok(delivery) => Ok(delivery.offset),
            Err((e, _)) => Err(ApiError::Unavailable(anyhow::anyhow!(
                "producing {name}: {e}"
            ))),
        }
    }
}

fn codec_error(e: schemas::CodecError) -> ApiError {
    if e.is_retriable() {
        ApiError::Unavailable(e.into())
    } else {
        ApiError::Internal(e.into())
    }
}
