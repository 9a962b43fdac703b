//! `protoplex`: runs the proxy with the protocols this build was compiled with
//! (Cargo features `websocket`, `http`, `mqtt`, `amqp`).
//!
//! ```text
//! protoplex [--config FILE] [--bind ADDR] [--port PORT] [--mqtt-port PORT] [--print-config]
//! ```
//!
//! Configuration: Kuzzle's defaults, then the TOML file, then `PROTOPLEX_*`
//! environment variables (`PROTOPLEX_LIMITS__MAX_REQUEST_SIZE=2097152`), then flags.
//! Logs: `RUST_LOG` (default `info`).

mod config;
mod protocols;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use protoplex_core::Router;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, FlagOverrides};

/// Exit code for a configuration the proxy cannot run with.
const EXIT_BAD_CONFIG: u8 = 2;

/// A realtime proxy speaking the Kuzzle API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "PROTOPLEX_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address every listener binds (default 0.0.0.0).
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// HTTP and WebSocket port (default 7512).
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// MQTT port (default 1883).
    #[cfg(feature = "mqtt")]
    #[arg(long, value_name = "PORT")]
    mqtt_port: Option<u16>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();

    let flags = FlagOverrides {
        bind: cli.bind,
        port: cli.port,
        #[cfg(feature = "mqtt")]
        mqtt_port: cli.mqtt_port,
        #[cfg(not(feature = "mqtt"))]
        mqtt_port: None,
    };
    let config = match config::load(cli.config.as_deref(), std::env::vars(), &flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("protoplex: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if cli.print_config {
        return match toml::to_string_pretty(&config) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("protoplex: cannot print the configuration: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("protoplex: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let router = match protocols::register(Router::builder(config.core()), &config).build() {
        Ok(router) => router,
        Err(error) => {
            eprintln!("protoplex: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if let Err(error) = router.start().await {
        eprintln!("protoplex: {error}");
        router.shutdown(Duration::from_secs(1)).await;
        return ExitCode::FAILURE;
    }
    tracing::info!(node = %config.server.node_id, protocols = ?router.protocol_names(), "protoplex is ready.");

    if let Err(error) = shutdown_signal().await {
        eprintln!("protoplex: cannot listen for signals: {error}");
        return ExitCode::FAILURE;
    }
    tracing::info!("Shutting down.");
    let grace = Duration::from_millis(config.server.shutdown_timeout_ms);
    if !router.shutdown(grace).await {
        tracing::warn!(?grace, "Some connections did not close in time.");
    }
    tracing::info!("Stopped.");
    ExitCode::SUCCESS
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
