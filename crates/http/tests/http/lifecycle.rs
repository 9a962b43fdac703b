//! Shutdown: stop accepting, finish the requests already received, all bounded.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::client::{self, Connection};
use crate::start;

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_stops_accepting() {
    let server = start().await;
    let mut idle = Connection::open(server.address).await;
    assert_eq!(
        idle.send(&client::raw_request("GET", "/_now", &[], b""), false)
            .await
            .status,
        200
    );

    let mut busy = Connection::open(server.address).await;
    busy.write(&client::raw_request("GET", "/_slow", &[], b"")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let router = server.router.clone();
    let shutdown = tokio::spawn(async move { router.shutdown(Duration::from_secs(5)).await });

    let response = busy.read_response(false).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["result"]["slept"], true);
    assert!(idle.is_closed().await, "idle keep-alive connections are closed");

    let drained = tokio::time::timeout(Duration::from_secs(6), shutdown)
        .await
        .expect("shutdown in time")
        .expect("shutdown task");
    assert!(drained, "every task ended within the grace period");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The listener is gone.
    assert!(
        TcpStream::connect(server.address).await.is_err(),
        "connection refused"
    );
}
