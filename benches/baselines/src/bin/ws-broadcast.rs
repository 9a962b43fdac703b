//! `ws-broadcast`: the ceiling of protoplex's WebSocket stack.
//!
//! A tokio-tungstenite server where every text frame received from any client
//! is sent to every connected client (the sender included), through one
//! `tokio::sync::broadcast` channel: no JSON, no filter, no router. Each
//! connection's writer drains the channel a batch per flush, as protoplex's
//! does; a client more than `--queue` messages behind is closed (1011), as
//! protoplex closes a client whose outgoing queue is full.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use protoplex_baselines::{ListenArgs, listen, run_main, shutdown_signal};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Messages written before one flush (protoplex's batch).
const MAX_BATCH: usize = 64;

/// A minimal WebSocket broadcast server.
#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    #[command(flatten)]
    listen: ListenArgs,
    /// Messages a client may be behind before it is closed (protoplex's `outgoing_queue`).
    #[arg(long, default_value_t = 1024)]
    queue: usize,
}

fn main() -> ExitCode {
    run_main("ws-broadcast", run(Cli::parse()))
}

async fn run(cli: Cli) -> std::io::Result<()> {
    let listener = listen(&cli.listen).await?;
    let (sender, _) = broadcast::channel::<Utf8Bytes>(cli.queue.max(1));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    // Subscribed before the handshake: nothing sent after the
                    // client sees its handshake answer is missed.
                    let receiver = sender.subscribe();
                    tokio::spawn(serve(tcp, sender.clone(), receiver));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            result = &mut shutdown => return result,
        }
    }
}

async fn serve(
    tcp: TcpStream,
    sender: broadcast::Sender<Utf8Bytes>,
    mut receiver: broadcast::Receiver<Utf8Bytes>,
) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let writer = async {
        loop {
            let first = match receiver.recv().await {
                Ok(text) => text,
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            for _ in 1..MAX_BATCH {
                match receiver.try_recv() {
                    Ok(text) => {
                        if sink.feed(Message::Text(text)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    Err(_) => {
                        let _ = sink.flush().await;
                        return close(&mut sink).await;
                    }
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        close(&mut sink).await;
    };
    let reader = async {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => {
                    let _ = sender.send(text);
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
}

/// Closes a client that fell too far behind, as protoplex does (1011).
async fn close<S>(sink: &mut S)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::Error,
        reason: "too much backpressure".into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
}
