//! The consumer: reads the request queue and runs each delivery as its own
//! task, at most `prefetch` at once (the broker delivers no more unacknowledged).

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::Consumer;
use lapin::options::BasicCancelOptions;
use tokio_util::task::TaskTracker;

use crate::request;
use crate::shared::Shared;

/// Why consuming stopped.
#[derive(Debug)]
pub(crate) enum End {
    /// The server shuts down.
    Shutdown,
    /// The broker, the connection or the consumer went away.
    Lost(String),
}

/// Consumes until shutdown or until the consumer ends. Request tasks run on
/// the protocol's task tracker and on `in_flight`; `generation` is the link's.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    channel: &lapin::Channel,
    mut consumer: Consumer,
    in_flight: &TaskTracker,
    generation: u64,
) -> End {
    loop {
        let next = tokio::select! {
            () = shared.shutdown.cancelled() => {
                // No new delivery: those prefetched and not started are
                // requeued by the broker when the channel closes.
                let _ = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await;
                return End::Shutdown;
            }
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                shared.tasks.spawn(in_flight.track_future(request::handle(
                    shared.clone(),
                    delivery,
                    generation,
                )));
            }
            Some(Err(error)) => return End::Lost(error.to_string()),
            None => return End::Lost("consumer cancelled".to_owned()),
        }
    }
}
