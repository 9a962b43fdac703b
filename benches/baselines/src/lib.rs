//! Baseline servers for protoplex's load generator (`protoplex-loadgen`).
//!
//! Each baseline is the thinnest server on the same stack as a protoplex entry
//! point, so that a side-by-side run shows what protoplex costs on top of its
//! stack:
//!
//! - `ws-broadcast`: tokio-tungstenite; every text frame any client sends goes
//!   to every connected client (itself included), with no JSON and no filter;
//! - `http-fixed`: hyper HTTP/1.1; every request is read whole and answered
//!   with the same small JSON body;
//! - `amqp-echo`: lapin; consumes a request queue of a RabbitMQ broker and
//!   publishes every body back to its `reply_to` queue with its
//!   `correlation_id`, as protoplex's AMQP entry point answers, without the API.
//!
//! All take the launcher's flags (`--bind ADDR --port PORT`) and stop on
//! SIGINT/SIGTERM. `amqp-echo` serves nothing on its port: it listens there
//! once it consumes, to tell it is ready; its broker settings are read from
//! the variables protoplex reads (`PROTOPLEX_AMQP_URL`,
//! `PROTOPLEX_AMQP__QUEUE`, ...).
//!
//! ```text
//! ws-broadcast --bind 127.0.0.1 --port 7600
//! http-fixed --bind 127.0.0.1 --port 7601
//! PROTOPLEX_AMQP__QUEUE=echo.requests PROTOPLEX_AMQP__ROUTING_KEY=echo amqp-echo --port 7602
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

/// Runs a baseline's `main` on the multi-threaded runtime the launcher uses;
/// an error is printed as `name: error` and makes the exit code 1.
pub fn run_main<F>(name: &str, main: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = std::io::Result<()>>,
{
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .and_then(|runtime| runtime.block_on(main));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error}");
            std::process::ExitCode::FAILURE
        }
    }
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
