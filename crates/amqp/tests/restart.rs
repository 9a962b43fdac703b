//! A broker restart (`rabbitmqctl stop_app` / `start_app`) in the middle of a
//! test. In a test binary of its own: it cuts every connection to the broker,
//! so it must not run beside the other tests (cargo runs test binaries one
//! after the other).

mod common;

use std::time::Duration;

use common::{Client, Proxy, Restart, WAIT, eventually, publish, rabbitmqctl, subscribe, unique};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_after_a_broker_restart() {
    let proxy = Proxy::start().await;
    let embedded = proxy.embedded_client();
    let mut client = Client::new(&proxy).await;
    let answer = client
        .query(json!({"controller": "server", "action": "now"}))
        .await;
    assert_eq!(answer["status"], 200);

    // A subscriber with a durable queue, whose binding the broker loses: the
    // proxy binds it again when it reconnects.
    let (exchange, routing_key) = (proxy.config.exchange.clone(), proxy.config.routing_key.clone());
    let durable_queue = unique("test.durable");
    let index = unique("idx");
    let mut durable = Client::with_queue(&exchange, &routing_key, &durable_queue, true).await;
    let answer = durable.query(subscribe(&index, "col")).await;
    let channel = answer["result"]["channel"].as_str().expect("channel").to_owned();
    durable
        .channel
        .queue_unbind(
            durable_queue.as_str().into(),
            exchange.as_str().into(),
            channel.as_str().into(),
            Default::default(),
        )
        .await
        .expect("unbind");

    let restart = Restart;
    rabbitmqctl("stop_app").await;
    eventually("the proxy sees the broker gone", || async {
        !proxy.amqp.is_ready()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rabbitmqctl("start_app").await;
    drop(restart);

    // Requests published as soon as the broker is back, maybe before the proxy
    // reconnected: the durable request queue keeps them until it consumes again.
    eventually("the broker accepts connections", || async {
        match lapin::Connection::connect(&common::url(), Default::default()).await {
            Ok(connection) => {
                let _ = connection.close(200, "probe".into()).await;
                true
            }
            Err(_) => false,
        }
    })
    .await;
    let mut client = Client::new(&proxy).await;
    let ids: Vec<String> = (0..20).map(|_| unique("after-restart")).collect();
    for (n, id) in ids.iter().enumerate() {
        let request = json!({"controller": "server", "action": "now", "requestId": format!("r{n}")});
        client
            .send_raw(request.to_string().as_bytes(), Some(id), true)
            .await;
    }
    for (n, id) in ids.iter().enumerate() {
        let answer = client.answer(id).await;
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["requestId"], format!("r{n}"));
    }
    tokio::time::timeout(WAIT, proxy.amqp.ready())
        .await
        .expect("consuming again");

    // The lost binding was restored: the durable subscriber, back on its
    // queue, gets notifications again.
    let mut durable = Client::with_queue(&exchange, &routing_key, &durable_queue, true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        embedded
            .query(publish(&index, "col", json!({"after": "restart"})))
            .await;
        if let Some(notification) = durable.notification(Duration::from_millis(200)).await {
            assert_eq!(notification["result"]["_source"]["after"], "restart");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "binding restored after reconnection"
        );
    }
    let _ = durable
        .channel
        .queue_delete(durable_queue.as_str().into(), Default::default())
        .await;

    // New subscriptions work on the new connection.
    let other_index = unique("idx");
    let answer = client.query(subscribe(&other_index, "col")).await;
    assert_eq!(answer["status"], 200);
    embedded
        .query(publish(&other_index, "col", json!({"new": true})))
        .await;
    let notification = client.notification(WAIT).await.expect("notification");
    assert_eq!(notification["result"]["_source"]["new"], true);

    durable.close().await;
    client.close().await;
    proxy.stop().await;
}
