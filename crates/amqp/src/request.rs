//! One request: a delivery from the request queue, executed for the
//! connection of its `reply_to`, answered to that queue with its
//! `correlation_id`, and acknowledged once the answer is confirmed.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Confirmation};
use protoplex_core::{ApiError, ClientConnection, Request, Response};
use tokio::sync::oneshot;

use crate::commands::Command;
use crate::connections::Resolved;
use crate::protocol::NAME;
use crate::publisher::CONTENT_TYPE;
use crate::shared::Shared;

/// Longest wait for the bindings of a request's connection before its answer
/// is published anyway.
const BINDINGS_WAIT: Duration = Duration::from_secs(10);

/// What becomes of the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Done with (answered, or nothing to answer): acknowledge.
    Ack,
    /// The answer could not be published: give the request back to the queue,
    /// to be executed again (at-least-once).
    Requeue,
    /// The broker refused the answer: requeue the request once; a request
    /// already redelivered is dropped (acknowledged) with an error log, so
    /// that it cannot loop.
    Refused,
    /// The delivery's channel is gone with its connection: the broker already
    /// requeued it.
    Nothing,
}

/// Executes one request and settles its delivery, received on the link of
/// `generation`.
pub(crate) async fn handle(shared: Arc<Shared>, delivery: Delivery, generation: u64) {
    let node = shared.router.node_id().to_owned();
    let reply_to = delivery
        .properties
        .reply_to()
        .as_ref()
        .filter(|queue| !queue.as_str().is_empty())
        .cloned();
    let correlation_id = delivery.properties.correlation_id().clone();
    let parsed = parse(&shared, &delivery, reply_to.as_ref(), &node);

    let Some(reply_to) = reply_to else {
        if let Ok(request) = parsed {
            execute_anonymous(&shared, request).await;
        }
        settle(&delivery, Settle::Ack).await;
        return;
    };

    let response = match parsed {
        Err(response) => *response,
        Ok(request) => match shared.connections.resolve(reply_to.as_str(), &shared.router) {
            Ok(connection) => execute(&shared, &connection, request).await,
            Err(error) => Response::failure(&request, &error, &node),
        },
    };
    let outcome = answer(&shared, generation, &reply_to, correlation_id, &response).await;
    settle(&delivery, outcome).await;
}

/// The request, or the error answer of an unreadable one (logged).
fn parse(
    shared: &Shared,
    delivery: &Delivery,
    reply_to: Option<&ShortString>,
    node: &str,
) -> Result<Request, Box<Response>> {
    let limit = shared.router.limits().max_request_size;
    let reply_to = reply_to.map_or("", ShortString::as_str);
    if delivery.data.len() > limit {
        tracing::warn!(size = delivery.data.len(), limit, %reply_to, "AMQP request too large.");
        let response = Response::rejected(&Default::default(), &ApiError::RequestTooLarge, node);
        return Err(Box::new(response));
    }
    Request::from_slice(&delivery.data).map_err(|rejected| {
        tracing::warn!(error = %rejected.error, %reply_to, "Invalid AMQP request.");
        Box::new(Response::rejected(&rejected.echo, &rejected.error, node))
    })
}

/// Executes the request, then waits until the bindings it caused are effective.
async fn execute(shared: &Shared, connection: &Resolved, request: Request) -> Response {
    let response = shared.router.execute(connection.id, request).await;
    if !connection.pending.settled(Duration::ZERO).await {
        // The publisher does binds in order: a barrier behind ours means done.
        let (done, barrier) = oneshot::channel();
        let waited = async {
            shared.commands.send(Command::Barrier(done)).await;
            barrier.await
        };
        if !matches!(tokio::time::timeout(BINDINGS_WAIT, waited).await, Ok(Ok(()))) {
            tracing::warn!(connection_id = %connection.id, "AMQP bindings still pending: answering anyway.");
        }
    }
    response
}

/// A request without `reply_to`: executed for a connection of its own, which
/// goes right after (with any subscription it made: nobody could receive it).
async fn execute_anonymous(shared: &Shared, request: Request) {
    let connection = ClientConnection::new(NAME, Vec::new(), Default::default());
    let id = connection.id;
    if let Err(error) = shared.router.new_connection(connection) {
        tracing::debug!(%error, "AMQP request without reply_to not executed.");
        return;
    }
    let response = shared.router.execute(id, request).await;
    shared.router.remove_connection(id);
    tracing::debug!(status = response.status, request_id = %response.request_id, "AMQP request without reply_to executed.");
}

/// Publishes the answer to `reply_to` and waits for the broker's confirm.
/// Not when the link the request came on is gone: the broker delivers the
/// request again, and that delivery is answered.
async fn answer(
    shared: &Shared,
    generation: u64,
    reply_to: &ShortString,
    correlation_id: Option<ShortString>,
    response: &Response,
) -> Settle {
    let Some(link) = shared.link().filter(|link| link.generation == generation) else {
        tracing::debug!(queue = %reply_to, "AMQP connection lost: request left to the broker.");
        return Settle::Nothing;
    };
    let mut properties = BasicProperties::default().with_content_type(CONTENT_TYPE.into());
    if let Some(correlation_id) = correlation_id {
        properties = properties.with_correlation_id(correlation_id);
    }
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let payload = response.to_bytes();
    let confirmed = async {
        link.publisher
            .basic_publish("".into(), reply_to.clone(), options, &payload, properties)
            .await?
            .await
    };
    match confirmed.await {
        Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Settle::Ack,
        Ok(Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_))) => {
            tracing::debug!(queue = %reply_to, "AMQP answer returned unroutable: client queue gone.");
            shared.queue_gone(reply_to.as_str());
            Settle::Ack
        }
        Ok(Confirmation::Nack(None)) => Settle::Refused,
        Err(error) => {
            tracing::warn!(%error, queue = %reply_to, "AMQP answer not published: request left to the broker.");
            Settle::Requeue
        }
    }
}

async fn settle(delivery: &Delivery, settle: Settle) {
    let result = match settle {
        Settle::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
        Settle::Refused if delivery.redelivered => {
            tracing::error!(
                delivery_tag = delivery.delivery_tag,
                "AMQP broker refused the answer of a redelivered request: request dropped."
            );
            delivery.acker.ack(BasicAckOptions::default()).await
        }
        Settle::Requeue | Settle::Refused => {
            if settle == Settle::Refused {
                tracing::warn!(
                    delivery_tag = delivery.delivery_tag,
                    "AMQP broker refused an answer: request requeued."
                );
            }
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
        Settle::Nothing => return,
    };
    if let Err(error) = result {
        // The channel went away with the connection: the broker requeued it.
        tracing::debug!(%error, delivery_tag = delivery.delivery_tag, "AMQP delivery not settled.");
    }
}
