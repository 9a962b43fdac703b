//! The listener: the accept loop and one hyper HTTP/1.1 connection task per
//! client, drained gracefully (and within a bound) at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use protoplex_core::RouterHandle;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpConfig;
use crate::handler;
use crate::response::ResponseFactory;
use crate::routes::RouteTable;

/// How long a connection may take, once shutdown started, to finish the
/// requests it already received.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection and request of the protocol shares.
pub(crate) struct Server {
    /// The way to the router.
    pub(crate) router: RouterHandle,
    /// The HTTP routes.
    pub(crate) routes: RouteTable,
    /// CORS and compression of responses.
    pub(crate) responses: ResponseFactory,
    /// The protocol's configuration.
    pub(crate) config: HttpConfig,
    /// Where to spawn tasks (connections, WebSocket hand-overs).
    pub(crate) tasks: TaskTracker,
    /// Cancelled at shutdown.
    pub(crate) shutdown: CancellationToken,
    /// TCP connections being served, for `max_connections`.
    pub(crate) open_connections: AtomicUsize,
    /// The WebSocket protocol served on upgrades, when attached.
    #[cfg(feature = "websocket")]
    pub(crate) websocket: Option<Arc<protoplex_websocket::WebSocketProtocol>>,
}

/// Serves one client's HTTP/1.1 connection (keep-alive, upgrades) until it
/// closes; at shutdown, lets it finish the requests already received.
pub(crate) async fn serve(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let shutdown = server.shutdown.clone();
    let slot = ConnectionSlot::take(server.clone());
    let admitted = slot.is_some();
    if !admitted {
        tracing::debug!(%peer, "HTTP connection over max_connections: its request is refused.");
    }
    let service = service_fn(move |request| {
        let server = server.clone();
        async move {
            if admitted {
                handler::handle(server, peer, request).await
            } else {
                Ok(handler::refuse_connection(&server, request.headers()))
            }
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(admitted)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(DRAIN_TIMEOUT, connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::debug!(%peer, "HTTP connection still busy after the drain timeout: dropped.");
                    return;
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "HTTP connection ended with an error.");
    }
}

/// One of the `max_connections` places, freed when dropped.
struct ConnectionSlot(Arc<Server>);

impl ConnectionSlot {
    /// A place for a new connection, if any is left.
    fn take(server: Arc<Server>) -> Option<Self> {
        let cap = server.config.max_connections;
        let taken = server.open_connections.fetch_add(1, Ordering::AcqRel);
        let slot = Self(server);
        (cap == 0 || taken < cap).then_some(slot)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}
