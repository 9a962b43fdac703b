//! The accept loop: one task per TCP client, until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::connection;
use crate::protocol::MqttProtocol;

/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts clients until shutdown; each one gets its own task.
pub(crate) async fn accept_loop(protocol: Arc<MqttProtocol>, listener: TcpListener) {
    let Some(context) = protocol.context().cloned() else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            biased;
            () = context.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                context
                    .tasks
                    .spawn(connection::serve(protocol.clone(), stream, peer));
            }
            Err(error) => {
                tracing::warn!(%error, "Accept failed.");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    tracing::debug!("MQTT listener closed.");
}
