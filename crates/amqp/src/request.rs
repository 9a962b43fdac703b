//! One request: a delivery from the request queue, executed for the
//! connection of its `reply_to` (unless it was already: then its recent
//! answer is reused, see [`crate::answers`]), answered to that queue
//! with its `correlation_id`, and acknowledged once the answer is confirmed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Confirmation};
use protoplex_core::{ApiError, ClientConnection, Request, Response};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::answers::{self, Claim, Receipt};
use crate::commands::Command;
use crate::connections::Resolved;
use crate::protocol::NAME;
use crate::publisher::CONTENT_TYPE;
use crate::shared::Shared;

/// Longest wait for the bindings of a request's connection before its answer
/// is published anyway.
const BINDINGS_WAIT: Duration = Duration::from_secs(10);

/// Longest wait for an ack or a nack to be handed to the connection.
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// What becomes of the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Done with (answered, or nothing to answer): acknowledge.
    Ack,
    /// The answer could not be published: give the request back to the queue,
    /// to be answered again (from the answer cache: not executed again).
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
        if let Ok(Parsed { request, .. }) = parsed {
            execute_anonymous(&shared, request).await;
        }
        settle(&delivery, Settle::Ack).await;
        return;
    };

    let (payload, receipt) = match parsed {
        Err(response) => (response.to_bytes(), Receipt::untracked()),
        Ok(Parsed { request, identified }) => {
            match shared.connections.resolve(reply_to.as_str(), &shared.router) {
                Ok(connection) => {
                    let digest = identified.then(|| answers::digest(&delivery.data));
                    match respond(&shared, &connection, request, digest, delivery.redelivered).await {
                        Some(answer) => answer,
                        None => {
                            // Redelivered after its answer was confirmed: the
                            // client's queue has it already.
                            settle(&delivery, Settle::Ack).await;
                            return;
                        }
                    }
                }
                Err(error) => (
                    Response::failure(&request, &error, &node).to_bytes(),
                    Receipt::untracked(),
                ),
            }
        }
    };
    let outcome = answer(&shared, generation, &reply_to, correlation_id, &payload).await;
    if outcome == Settle::Ack {
        receipt.delivered();
    }
    settle(&delivery, outcome).await;
}

/// A request read from a delivery.
struct Parsed {
    request: Request,
    /// Whether its client gave its `requestId` (else one was generated, and
    /// the request cannot be recognized when it comes again).
    identified: bool,
}

/// The request, or the error answer of an unreadable one (logged).
fn parse(
    shared: &Shared,
    delivery: &Delivery,
    reply_to: Option<&ShortString>,
    node: &str,
) -> Result<Parsed, Box<Response>> {
    let limit = shared.router.limits().max_request_size;
    let reply_to = reply_to.map_or("", ShortString::as_str);
    if delivery.data.len() > limit {
        tracing::warn!(size = delivery.data.len(), limit, %reply_to, "AMQP request too large.");
        let response = Response::rejected(&Default::default(), &ApiError::RequestTooLarge, node);
        return Err(Box::new(response));
    }
    let parsed = match serde_json::from_slice::<Value>(&delivery.data) {
        Ok(value) => {
            let identified = value.get("requestId").is_some_and(Value::is_string);
            Request::from_value(value).map(|request| Parsed { request, identified })
        }
        // Not JSON: the core's parser says why, in its own words.
        Err(_) => Request::from_slice(&delivery.data).map(|request| Parsed {
            request,
            identified: false,
        }),
    };
    parsed.map_err(|rejected| {
        tracing::warn!(error = %rejected.error, %reply_to, "Invalid AMQP request.");
        Box::new(Response::rejected(&rejected.echo, &rejected.error, node))
    })
}

/// The answer to a request of `connection` and what records its confirm;
/// `None` when it must not be answered: a redelivery of a request whose answer
/// the broker confirmed. With `digest` (the client gave the request id), a
/// request executed recently is not executed again: its answer is reused.
async fn respond(
    shared: &Shared,
    connection: &Resolved,
    request: Request,
    digest: Option<u64>,
    redelivered: bool,
) -> Option<(Bytes, Receipt)> {
    let Some(digest) = digest else {
        let payload = execute(shared, connection, request).await.to_bytes();
        return Some((payload, Receipt::untracked()));
    };
    let ticket = loop {
        match shared.answers.claim(connection.id, &request.request_id, digest) {
            Claim::Execute(ticket) => break ticket,
            Claim::Done {
                answer,
                delivered,
                receipt,
            } => {
                if delivered && redelivered {
                    tracing::debug!(connection_id = %connection.id, request_id = %request.request_id, "AMQP request redelivered after its answer was confirmed: not answered again.");
                    return None;
                }
                tracing::debug!(connection_id = %connection.id, request_id = %request.request_id, redelivered, "AMQP request received again: its answer is sent again, it is not executed again.");
                return Some((answer, receipt));
            }
            Claim::Running(mut running) => {
                // The same request is executing: its answer serves this copy
                // too. Abandoned (its task ended without an answer): claim again.
                if let Ok(answer) = running.wait_for(Option::is_some).await
                    && let Some(answer) = answer.clone()
                {
                    tracing::debug!(connection_id = %connection.id, request_id = %request.request_id, "AMQP request received again while executing: answered once it is.");
                    return Some((answer, Receipt::untracked()));
                }
            }
        }
    };
    let payload = execute(shared, connection, request).await.to_bytes();
    let receipt = ticket.done(&payload);
    Some((payload, receipt))
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
/// request again (or its client sends it again), and that one is answered.
async fn answer(
    shared: &Shared,
    generation: u64,
    reply_to: &ShortString,
    correlation_id: Option<ShortString>,
    payload: &Bytes,
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
    let confirmed = async {
        link.publisher
            .basic_publish("".into(), reply_to.clone(), options, payload, properties)
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

/// Acknowledges or requeues the delivery, at most [`SETTLE_WAIT`]: an ack or a
/// nack sent while the connection ends may never complete (lapin then neither
/// sends it nor fails it), and the broker requeues the delivery anyway.
async fn settle(delivery: &Delivery, settle: Settle) {
    let acker = &delivery.acker;
    let settled = async {
        match settle {
            Settle::Ack => acker.ack(BasicAckOptions::default()).await,
            Settle::Refused if delivery.redelivered => {
                tracing::error!(
                    delivery_tag = delivery.delivery_tag,
                    "AMQP broker refused the answer of a redelivered request: request dropped."
                );
                acker.ack(BasicAckOptions::default()).await
            }
            Settle::Requeue | Settle::Refused => {
                if settle == Settle::Refused {
                    tracing::warn!(
                        delivery_tag = delivery.delivery_tag,
                        "AMQP broker refused an answer: request requeued."
                    );
                }
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                };
                acker.nack(requeue).await
            }
            Settle::Nothing => Ok(true),
        }
    };
    match tokio::time::timeout(SETTLE_WAIT, settled).await {
        Ok(Ok(_)) => {}
        // The channel went away with the connection: the broker requeued it.
        Ok(Err(error)) => {
            tracing::debug!(%error, delivery_tag = delivery.delivery_tag, "AMQP delivery not settled.");
        }
        Err(_) => {
            tracing::debug!(
                delivery_tag = delivery.delivery_tag,
                "AMQP delivery not settled in time."
            );
        }
    }
}
