//! The load generator of protoplex: real WebSocket, HTTP, MQTT and AMQP
//! clients, the scenarios that drive them against a server started on
//! a loopback port, and the report that compares protoplex with baselines
//! measured side by side (`benches/baselines`).
//!
//! The `loadgen` binary is the command line of [`cli`]; `scripts/bench.sh`
//! runs `loadgen suite`, `scripts/soak.sh` runs `loadgen soak`. Used as a library:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use protoplex_loadgen::clients::Dialect;
//! use protoplex_loadgen::scenarios::{Target, fanout};
//! use protoplex_loadgen::scenarios::fanout::Transport;
//!
//! let target = Target { name: "protoplex".into(), address: "127.0.0.1:7512".parse()?, pid: None };
//! let config = fanout::FanoutConfig {
//!     transport: Transport::Websocket,
//!     dialect: Dialect::Kuzzle,
//!     publishers: 1,
//!     subscribers: 100,
//!     size: 256,
//!     rate: 0,
//!     duration: Duration::from_secs(5),
//!     window: 256,
//!     sources: 1,
//!     connect_concurrency: 64,
//! };
//! let result = fanout::run(&config, &target).await?;
//! println!("{} messages/s delivered, p99 {} µs", result.delivered_per_second, result.latency.p99_us);
//! # Ok(()) }
//! ```

pub mod chart;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod machine;
pub mod process;
pub mod report;
pub mod results;
pub mod scenarios;
pub mod stats;
