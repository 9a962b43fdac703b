//! Baseline servers for protoplex's load generator (`protoplex-loadgen`).
//!
//! Each baseline is the thinnest server on the same stack as a protoplex entry
//! point, so that a side-by-side run shows what protoplex costs on top of its
//! stack:
//!
//! - `ws-broadcast`: tokio-tungstenite; every text frame any client sends goes
//!   to every connected client (itself included), with no JSON and no filter;
//! - `http-fixed`: hyper HTTP/1.1; every request is read whole and answered
//!   with the same small JSON body.
//!
//! Both take the launcher's flags (`--bind ADDR --port PORT`) and stop on
//! SIGINT/SIGTERM. Later rows (an AMQP echo responder over lapin) become new
//! binaries here.
//!
//! ```text
//! ws-broadcast --bind 127.0.0.1 --port 7600
//! http-fixed --bind 127.0.0.1 --port 7601
//! ```

use std::net::IpAddr;

/// The flags every baseline takes, as protoplex's launcher does.
#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: IpAddr,
    /// Port to listen on (0: any free port, printed on stdout).
    #[arg(long, default_value_t = 7512, value_name = "PORT")]
    pub port: u16,
}

/// Builds the multi-threaded runtime every baseline runs on (the launcher's).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

/// Binds the listener and prints its address on stdout (useful with `--port 0`).
pub async fn listen(args: &ListenArgs) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind((args.bind, args.port)).await?;
    println!("listening on {}", listener.local_addr()?);
    Ok(listener)
}
