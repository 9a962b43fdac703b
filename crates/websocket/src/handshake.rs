//! Standalone mode: the WebSocket handshake of the clients its listener accepts.
//!
//! Any path is accepted, as Kuzzle's `ws("/*")` route does; the request's
//! headers are kept for the connection (`x-forwarded-for` adds client addresses).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;

use crate::protocol::WebSocketProtocol;
use crate::{connection, headers};

/// Time a client gets to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Upgrades one TCP client, then serves it.
pub(crate) async fn upgrade(protocol: Arc<WebSocketProtocol>, stream: TcpStream, peer: SocketAddr) {
    let (Some(context), Some(frames)) = (protocol.context().cloned(), protocol.frames()) else {
        return;
    };
    let mut request_headers = HashMap::new();
    // The signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        request_headers = headers::to_map(request.headers());
        // Select the first subprotocol asked for: browsers fail a connection
        // whose request named some and whose answer names none.
        if let Some(first) = request
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .and_then(|first| HeaderValue::from_str(first.trim()).ok())
        {
            response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, first);
        }
        Ok(response)
    };
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(frames));
    let accepted = tokio::select! {
        () = context.shutdown.cancelled() => return,
        accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, upgrade) => accepted,
    };
    match accepted {
        Ok(Ok(ws)) => connection::serve(protocol, ws, peer, request_headers).await,
        Ok(Err(error)) => tracing::debug!(%peer, %error, "WebSocket handshake failed."),
        Err(_) => tracing::debug!(%peer, "WebSocket handshake timed out."),
    }
}
