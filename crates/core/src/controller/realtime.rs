//! The `realtime` controller: subscribe, join, unsubscribe, publish, count, list.

use serde_json::{Value, json};

use crate::connection::ClientConnection;
use crate::error::ApiError;
use crate::realtime::channel::{Scope, Users};
use crate::realtime::notification::{self, DocumentContent, DocumentNotification};
use crate::realtime::rooms::{Joined, Subscriber};
use crate::request::Request;
use crate::router::{Router, action_not_found};

pub(crate) fn execute(
    router: &Router,
    connection: &ClientConnection,
    protocol: usize,
    request: &Request,
) -> Result<Value, ApiError> {
    let subscriber = Subscriber {
        id: connection.id,
        protocol,
    };
    match request.action.as_str() {
        "subscribe" => subscribe(router, connection, subscriber, request),
        "join" => join(router, connection, subscriber, request),
        "unsubscribe" => unsubscribe(router, connection, subscriber, request),
        "publish" => publish(router, connection, request),
        "count" => {
            let room_id = request.require_body_string("roomId")?;
            Ok(json!({ "count": router.rooms().count(room_id)? }))
        }
        "list" => Ok(router.rooms().list()),
        _ => Err(action_not_found(request)),
    }
}

fn options(request: &Request) -> Result<(Scope, Users), ApiError> {
    Ok((
        Scope::parse(request.string_arg("scope")?)?,
        Users::parse(request.string_arg("users")?)?,
    ))
}

fn subscribe(
    router: &Router,
    connection: &ClientConnection,
    subscriber: Subscriber,
    request: &Request,
) -> Result<Value, ApiError> {
    let index = request.require_index()?;
    let collection = request.require_collection()?;
    let options = options(request)?;
    let filter = request.body.as_ref().ok_or(ApiError::BodyRequired)?;
    let rooms = router.rooms();
    let normalized = rooms.normalize(index, collection, filter)?;
    let joined = rooms.subscribe(
        router.protocols(),
        subscriber,
        || router.is_connected(subscriber.id),
        normalized,
        options,
        request.volatile.clone(),
    )?;
    Ok(entered(router, connection, request, &joined))
}

fn join(
    router: &Router,
    connection: &ClientConnection,
    subscriber: Subscriber,
    request: &Request,
) -> Result<Value, ApiError> {
    let room_id = request.require_body_string("roomId")?;
    let options = options(request)?;
    let joined = router.rooms().join(
        router.protocols(),
        subscriber,
        || router.is_connected(subscriber.id),
        room_id,
        options,
        request.volatile.clone(),
    )?;
    Ok(entered(router, connection, request, &joined))
}

/// After a subscribe or a join: tells the room of a new subscriber, and
/// answers `{roomId, channel}`.
fn entered(router: &Router, connection: &ClientConnection, request: &Request, joined: &Joined) -> Value {
    if let Some(event) = &joined.event {
        router.send_user_event(event, &request.action, &connection.protocol);
    }
    json!({ "roomId": &*joined.room_id, "channel": &*joined.channel })
}

fn unsubscribe(
    router: &Router,
    connection: &ClientConnection,
    subscriber: Subscriber,
    request: &Request,
) -> Result<Value, ApiError> {
    let room_id = request.require_body_string("roomId")?;
    let event = router
        .rooms()
        .unsubscribe(router.protocols(), subscriber, room_id)?;
    if let Some(event) = &event {
        router.send_user_event(event, &request.action, &connection.protocol);
    }
    Ok(json!({ "roomId": room_id }))
}

fn publish(router: &Router, connection: &ClientConnection, request: &Request) -> Result<Value, ApiError> {
    let index = request.require_index()?;
    let collection = request.require_collection()?;
    request.require_body()?;
    let Some(body) = request.body.as_ref() else {
        return Err(ApiError::BodyRequired);
    };
    let id = request.id.as_deref();
    let targets = router.rooms().document_targets(index, collection, body, id, true);
    if !targets.channels.is_empty() {
        let notification = DocumentNotification {
            status: 200,
            kind: "document",
            controller: &request.controller,
            action: &request.action,
            event: "publish",
            scope: "in",
            index,
            collection,
            protocol: &connection.protocol,
            timestamp: request.timestamp,
            volatile: request.volatile.as_ref(),
            node: &router.config().node_id,
            request_id: &request.request_id,
            result: DocumentContent { id, source: body },
        };
        let messages = notification::per_channel(&notification, &targets.channels);
        router.broadcast(&targets, &messages);
    }
    Ok(json!({ "published": true }))
}
