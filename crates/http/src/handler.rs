//! The hyper service: one HTTP request, from its head to its response.
//!
//! verb + path -> route; `Content-Length` and `Content-Encoding` checked before
//! reading; body read within the limit and decoded; request built; then, as
//! Kuzzle does for each HTTP request, a connection is declared, the request
//! executed and the connection removed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use protoplex_core::request::RejectedRequest;
use protoplex_core::{ApiError, ConnectionId, Request, Response, RouterHandle};
use serde_json::{Map, Value};

use crate::body;
use crate::error::HttpError;
use crate::request_builder;
use crate::response::{self, Body};
use crate::routes::Target;
use crate::server::Server;
use crate::upgrade;

/// Id of the error answering a body over the limit.
const TOO_LARGE_ID: &str = "network.http.request_too_large";

/// Answers one request. Never fails: every problem is a Kuzzle error response.
pub(crate) async fn handle(
    server: Arc<Server>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    if response::is_websocket_upgrade(request.headers()) && is_root(request.uri().path()) {
        let headers = request.headers().clone();
        return Ok(match upgrade::upgrade(&server, request, peer) {
            Ok(switching) => switching,
            Err(error) => {
                tracing::warn!(%peer, %error, "WebSocket upgrade refused.");
                let reply = Response::rejected(
                    &request_builder::echo(&headers, None, None),
                    &ApiError::from(&error),
                    server.router.node_id(),
                );
                server.responses.json(&headers, reply.status, reply.to_bytes())
            }
        });
    }
    let (parts, body) = request.into_parts();
    let query = request_builder::parse_query(parts.uri.query());
    let pretty = query.contains_key("pretty");
    let reply = if parts.method == hyper::Method::OPTIONS {
        preflight(&server.router, &parts.headers)
    } else {
        respond(&server, &parts, peer, body, query).await
    };
    let json = if pretty {
        reply.to_pretty_bytes()
    } else {
        reply.to_bytes()
    };
    let mut response = server.responses.json(&parts.headers, reply.status, json);
    let too_large = reply.error.as_ref().is_some_and(|error| error.id == TOO_LARGE_ID);
    if too_large {
        // The rest of the body was not read: the connection cannot be reused.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// The answer to every request of a connection over `max_connections`: 503,
/// and the connection closes.
pub(crate) fn refuse_connection(server: &Server, headers: &HeaderMap) -> hyper::Response<Body> {
    let error = ApiError::TooManyConnections(format!("protocol \"{}\"", request_builder::PROTOCOL));
    let reply = Response::rejected(
        &request_builder::echo(headers, None, None),
        &error,
        server.router.node_id(),
    );
    let mut response = server.responses.json(headers, reply.status, reply.to_bytes());
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Routes, reads, builds and executes the request.
async fn respond(
    server: &Server,
    parts: &Parts,
    peer: SocketAddr,
    body: Incoming,
    query: Map<String, Value>,
) -> Response {
    let path = parts.uri.path();
    let refuse = |error: HttpError, target: Option<&Target>| {
        if matches!(error, HttpError::UrlNotFound(_)) {
            tracing::debug!(%peer, method = %parts.method, path, "HTTP route not found.");
        } else {
            tracing::warn!(%peer, method = %parts.method, path, %error, "HTTP request refused.");
        }
        let (controller, action) = match target {
            Some(Target::Action { controller, action }) => (Some(controller.as_str()), Some(action.as_str())),
            _ => (None, None),
        };
        let echo = request_builder::echo(&parts.headers, controller, action);
        Response::rejected(&echo, &ApiError::from(&error), server.router.node_id())
    };

    let route = match server.routes.route(parts.method.as_str(), path) {
        Ok(route) => route,
        Err(error) => return refuse(error, None),
    };
    let target = Some(route.target);

    let content = match read_body(server, &parts.headers, body).await {
        Ok(content) => content,
        Err(error) => return refuse(error, target),
    };
    let built = match route.target {
        Target::Action { controller, action } => request_builder::action_request(
            controller,
            action,
            route.arguments,
            query,
            &parts.headers,
            &content,
        ),
        Target::Query => request_builder::query_request(&parts.headers, &content),
    };
    let request = match built {
        Ok(request) => request,
        Err(rejected) => {
            let RejectedRequest { echo, error } = *rejected;
            tracing::warn!(%peer, method = %parts.method, path, %error, "HTTP request refused.");
            return Response::rejected(&echo, &error, server.router.node_id());
        }
    };
    tracing::debug!(%peer, method = %parts.method, path, controller = %request.controller,
        action = %request.action, "HTTP request.");
    execute(
        &server.router,
        request_builder::connection(peer, &parts.headers),
        request,
    )
    .await
}

/// The body, within `limits.max_request_size` at every step: as announced by
/// `Content-Length` (refused before reading anything), as read, and as decoded.
async fn read_body(server: &Server, headers: &HeaderMap, body: Incoming) -> Result<Bytes, HttpError> {
    let max = server.router.limits().max_request_size;
    let (announced, encodings) = body::check_head(
        headers,
        max,
        server.config.max_encoding_layers,
        server.config.allow_compression,
    )?;
    let raw = body::read_limited(body, max, announced).await?;
    body::decode(raw, &encodings, max)
}

/// Runs `request` on a connection of its own, removed once answered (or when
/// the client goes away before the answer).
async fn execute(
    router: &RouterHandle,
    connection: protoplex_core::ClientConnection,
    request: Request,
) -> Response {
    let id = connection.id;
    if let Err(error) = router.new_connection(connection) {
        return Response::failure(&request, &error, router.node_id());
    }
    let _guard = ConnectionGuard { router, id };
    router.execute(id, request).await
}

/// Removes the request's connection when dropped.
struct ConnectionGuard<'a> {
    router: &'a RouterHandle,
    id: ConnectionId,
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.router.remove_connection(self.id);
    }
}

/// The answer to `OPTIONS` (CORS preflight): 200 with an empty result.
fn preflight(router: &RouterHandle, headers: &HeaderMap) -> Response {
    let echo = request_builder::echo(headers, None, None);
    Response {
        request_id: echo.request_id.unwrap_or_default(),
        status: 200,
        error: None,
        controller: None,
        action: None,
        index: None,
        collection: None,
        volatile: None,
        result: Value::Object(Map::new()),
        node: router.node_id().to_owned(),
    }
}

/// Whether a path is the root (`/`, or empty parts only).
fn is_root(path: &str) -> bool {
    path.split('/').all(str::is_empty)
}
