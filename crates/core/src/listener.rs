//! The accept loop every TCP protocol runs: one task per client, until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept (out of file descriptors...), before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts clients of `listener` until `shutdown` is cancelled, and runs
/// `serve(stream, peer)` for each on its own task of `tasks` (so that shutdown
/// waits for it). Sockets get `TCP_NODELAY`; a failed accept is logged and
/// retried after a short pause. `protocol` names the protocol in the logs.
pub async fn accept_loop<F, Fut>(
    protocol: &str,
    listener: TcpListener,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tasks.spawn(serve(stream, peer));
            }
            Err(error) => {
                tracing::warn!(protocol, %error, "Accept failed.");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    tracing::debug!(protocol, "Listener closed.");
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn serves_each_client_on_a_task_and_stops_at_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        let accepting = tokio::spawn(accept_loop(
            "echo",
            listener,
            shutdown.clone(),
            tasks.clone(),
            |mut stream, _| async move {
                let mut byte = [0; 1];
                if stream.read_exact(&mut byte).await.is_ok() {
                    let _ = stream.write_all(&byte).await;
                }
            },
        ));
        for byte in [b'a', b'b'] {
            let mut client = TcpStream::connect(address).await.expect("connect");
            client.write_all(&[byte]).await.expect("write");
            let mut echoed = [0; 1];
            client.read_exact(&mut echoed).await.expect("read");
            assert_eq!(echoed[0], byte);
        }
        shutdown.cancel();
        accepting.await.expect("the loop ends at shutdown");
        tasks.close();
        tasks.wait().await;
        assert!(
            TcpStream::connect(address).await.is_err(),
            "the listener is closed"
        );
    }
}
