//! Idle connections: K WebSocket connections that send nothing; the server's
//! resident memory per connection.
//!
//! Connections are spread over several loopback source addresses (each has
//! its own ~28k ephemeral ports), opened a bounded number at a time. Each is
//! held by a task that reads (so pings are answered) until the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use super::{ScenarioError, Target, keep_error};
use crate::clients::source_address;
use crate::clients::ws::{self, IDLE_READ_BUFFER};
use crate::results::IdleResult;

/// Connections one loopback source address carries at most: the ephemeral
/// port range (32768-60999 by default) leaves room for the ports of earlier
/// runs still in TIME_WAIT.
pub const PER_SOURCE: usize = 10_000;

/// Settings of one idle run.
#[derive(Debug, Clone)]
pub struct IdleConfig {
    /// Connections to open.
    pub connections: usize,
    /// Connections opened at once.
    pub concurrency: usize,
    /// How long to wait, all connections open, before measuring.
    pub settle: Duration,
}

impl IdleConfig {
    /// Loopback source addresses needed.
    pub fn sources(&self) -> usize {
        self.connections.div_ceil(PER_SOURCE).max(1)
    }
}

/// Opens the connections to `target`, measures, closes them.
pub async fn run(config: &IdleConfig, target: &Target) -> Result<IdleResult, ScenarioError> {
    if target.pid.is_none() {
        return Err(ScenarioError::Settings(
            "the idle scenario needs the server's process id".into(),
        ));
    }
    // Let the server settle from its start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = target.usage();
    let sources = config.sources();
    let opened = Arc::new(AtomicUsize::new(0));
    let closed_early = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let mut holders = JoinSet::new();
    let mut errors = Vec::new();
    let progress = {
        let opened = opened.clone();
        let wanted = config.connections;
        Progress::start(format!("idle {} x{wanted}", target.name), move || {
            format!("opened {}/{wanted}", opened.load(Ordering::Relaxed))
        })
    };
    let started = Instant::now();
    let address = target.address;
    let mut connecting = futures_util::stream::iter(0..config.connections)
        .map(|index| ws::connect(address, source_address(index, sources), IDLE_READ_BUFFER))
        .buffer_unordered(config.concurrency.max(1));
    while let Some(result) = connecting.next().await {
        match result {
            Ok(mut stream) => {
                opened.fetch_add(1, Ordering::Relaxed);
                let stop = stop.clone();
                let closed_early = closed_early.clone();
                holders.spawn(async move {
                    // Read (answering pings) until the end; drop without a close handshake.
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => break,
                            frame = stream.next() => if !matches!(frame, Some(Ok(_))) {
                                closed_early.fetch_add(1, Ordering::Relaxed);
                                break;
                            },
                        }
                    }
                });
            }
            Err(error) => keep_error(&mut errors, format!("connection: {error}")),
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(config.settle).await;
    let after = target.usage();
    let closed = closed_early.load(Ordering::Relaxed);
    if closed > 0 {
        keep_error(
            &mut errors,
            format!("{closed} connections closed by the server while idle"),
        );
    }
    drop(progress);
    stop.cancel();
    let closing = async { while holders.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(10), closing).await;
    Ok(IdleResult {
        server: target.name.clone(),
        connections: config.connections,
        opened: opened.load(Ordering::Relaxed),
        sources,
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
        server_peak_rss_kib: after.peak_rss_kib,
        server_cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        connect_seconds,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_thousand_need_five_sources() {
        let config = |connections| IdleConfig {
            connections,
            concurrency: 1,
            settle: Duration::ZERO,
        };
        assert_eq!(config(10).sources(), 1);
        assert_eq!(config(10_000).sources(), 1);
        assert_eq!(config(19_000).sources(), 2);
        assert_eq!(config(50_000).sources(), 5);
    }
}
