//! WebSocket on the HTTP port: the handshake's `101 Switching Protocols`, then
//! the upgraded connection handed over to `protoplex-websocket`.
//!
//! Built without the `websocket` feature, or with no WebSocket protocol
//! attached, an upgrade request gets a 400 error instead.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;

use crate::error::HttpError;
use crate::response::Body;
use crate::server::Server;

/// Accepts a WebSocket upgrade: checks the handshake, answers 101 and, once
/// hyper released the connection, gives it to the WebSocket protocol.
#[cfg(feature = "websocket")]
pub(crate) fn upgrade(
    server: &Arc<Server>,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> Result<hyper::Response<Body>, HttpError> {
    use hyper::header;
    use hyper_util::rt::TokioIo;
    use protoplex_websocket::WebSocketProtocol;

    let Some(websocket) = server.websocket.clone() else {
        return Err(HttpError::WebSocketUnavailable);
    };
    if request.method() != hyper::Method::GET {
        return Err(HttpError::BadHandshake("the method must be GET"));
    }
    let headers = request.headers();
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version.as_bytes() != b"13")
    {
        return Err(HttpError::BadHandshake("Sec-WebSocket-Version must be 13"));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(HttpError::BadHandshake("Sec-WebSocket-Key is missing"))?;
    let accept = WebSocketProtocol::accept_key(key.as_bytes());
    let switching = crate::response::ResponseFactory::switching_protocols(&accept)?;
    let connection_headers = crate::request_builder::connection_headers(headers);
    let shutdown = server.shutdown.clone();
    server.tasks.spawn(async move {
        let upgraded = tokio::select! {
            () = shutdown.cancelled() => return,
            upgraded = hyper::upgrade::on(request) => upgraded,
        };
        match upgraded {
            Ok(upgraded) => websocket.accept_upgraded(TokioIo::new(upgraded), peer, connection_headers),
            Err(error) => tracing::debug!(%peer, %error, "WebSocket upgrade failed."),
        }
    });
    Ok(switching)
}

/// Refuses the upgrade: this build serves no WebSocket.
#[cfg(not(feature = "websocket"))]
pub(crate) fn upgrade(
    _server: &Arc<Server>,
    _request: hyper::Request<Incoming>,
    _peer: SocketAddr,
) -> Result<hyper::Response<Body>, HttpError> {
    Err(HttpError::WebSocketUnavailable)
}
