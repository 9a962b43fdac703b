//! The cross-protocol matrix: every subscriber protocol against every publisher
//! protocol, through a real protoplex on loopback.

use std::time::Duration;

use protoplex_core::CoreConfig;
use protoplex_integration_tests::{Client, Kind, PATIENCE, TestServer, eventually};
use protoplex_websocket::WebSocketConfig;
use serde_json::{Value, json};

async fn subscribe(client: &mut Client, filter: Value, options: Value) -> (String, String) {
    let mut request = json!({"controller":"realtime","action":"subscribe","index":"lab","collection":"probes","body":filter});
    if let (Some(request), Some(options)) = (request.as_object_mut(), options.as_object()) {
        request.extend(options.clone());
    }
    let answer = client.query(request).await;
    assert_eq!(answer["status"], 200, "{answer}");
    (
        answer["result"]["roomId"].as_str().expect("roomId").to_owned(),
        answer["result"]["channel"].as_str().expect("channel").to_owned(),
    )
}

fn publish_request(body: Value) -> Value {
    json!({"controller":"realtime","action":"publish","index":"lab","collection":"probes","_id":"p-1",
           "body":body,"volatile":{"origin":"matrix"},"requestId":"publish-1"})
}

#[tokio::test]
async fn every_publisher_reaches_every_subscriber_with_the_contract_fields() {
    let server = TestServer::start().await;
    for subscriber_kind in Kind::SUBSCRIBERS {
        for publisher_kind in Kind::ALL {
            let mut subscriber = server.client(subscriber_kind).await;
            let mut publisher = server.client(publisher_kind).await;
            let (_, channel) = subscribe(
                &mut subscriber,
                json!({"range":{"temperature":{"gt":20}}}),
                json!({}),
            )
            .await;

            let answer = publisher.query(publish_request(json!({"temperature": 25}))).await;
            assert_eq!(answer["result"], json!({"published": true}), "{answer}");
            let notification = subscriber.notification().await;
            let timestamp = notification["timestamp"].clone();
            assert!(timestamp.as_u64().is_some());
            assert_eq!(
                notification,
                json!({"status":200,"type":"document","controller":"realtime","action":"publish",
                       "event":"publish","scope":"in","index":"lab","collection":"probes",
                       "protocol":publisher_kind.protocol_name(),"timestamp":timestamp,
                       "volatile":{"origin":"matrix"},"node":server.router.config().node_id,
                       "requestId":"publish-1","result":{"_id":"p-1","_source":{"temperature":25}},
                       "room":channel}),
                "{subscriber_kind:?} <- {publisher_kind:?}"
            );

            // A message outside the filter is not delivered.
            publisher.query(publish_request(json!({"temperature": 5}))).await;
            assert_eq!(
                subscriber.maybe_notification(Duration::from_millis(200)).await,
                None
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn scope_and_users_notifications_across_websocket_clients() {
    let server = TestServer::start().await;
    let mut watcher = server.client(Kind::WebSocket).await;
    let mut outsider = server.client(Kind::WebSocket).await;
    let mut publisher = server.client(Kind::Http).await;
    let filter = json!({"equals":{"state":"on"}});
    let (room_id, watcher_channel) =
        subscribe(&mut watcher, filter.clone(), json!({"users":"all","scope":"in"})).await;
    assert_eq!(watcher.notification().await["user"], "in"); // its own arrival

    let (outsider_room, _) = subscribe(&mut outsider, filter.clone(), json!({"scope":"out"})).await;
    assert_eq!(outsider_room, room_id);
    let joined = watcher.notification().await;
    assert_eq!(joined["type"], "user");
    assert_eq!(joined["user"], "in");
    assert_eq!(joined["protocol"], "websocket");
    assert_eq!(joined["result"]["count"], 2);
    assert_eq!(joined["room"], watcher_channel);

    publisher.query(publish_request(json!({"state":"on"}))).await;
    assert_eq!(watcher.notification().await["scope"], "in");
    // scope "out" gets no "in" document notification.
    assert_eq!(
        outsider.maybe_notification(Duration::from_millis(200)).await,
        None
    );

    drop(outsider);
    let left = watcher.notification().await;
    assert_eq!(
        (left["user"].as_str(), left["result"]["count"].as_u64()),
        (Some("out"), Some(1))
    );
    server.stop().await;
}

#[tokio::test]
async fn unsubscribe_stops_notifications() {
    let server = TestServer::start().await;
    let mut publisher = server.client(Kind::WebSocket).await;
    for kind in Kind::SUBSCRIBERS {
        let mut subscriber = server.client(kind).await;
        let (room_id, _) = subscribe(&mut subscriber, json!({}), json!({})).await;
        publisher.query(publish_request(json!({"n": 1}))).await;
        assert_eq!(
            subscriber.notification().await["result"]["_source"],
            json!({"n": 1}),
            "{kind:?}"
        );

        let answer = subscriber
            .query(json!({"controller":"realtime","action":"unsubscribe","body":{"roomId":room_id}}))
            .await;
        assert_eq!(answer["result"], json!({"roomId": room_id}), "{kind:?}");
        publisher.query(publish_request(json!({"n": 2}))).await;
        assert_eq!(
            subscriber.maybe_notification(Duration::from_millis(300)).await,
            None,
            "{kind:?}"
        );
        subscriber.close().await;
    }
    server.stop().await;
}

/// The subscriber count of `room_id`, or `None` once the room is gone.
async fn subscribers(server: &TestServer, room_id: &str) -> Option<u64> {
    let answer = protoplex_integration_tests::http::HttpClient::new(server.address)
        .query(&json!({"controller":"realtime","action":"count","body":{"roomId":room_id}}))
        .await;
    answer["result"]["count"].as_u64()
}

#[tokio::test]
async fn closing_a_connection_drops_its_subscriptions() {
    let server = TestServer::start().await;
    for kind in Kind::SUBSCRIBERS {
        let mut leaving = server.client(kind).await;
        let mut staying = server.client(Kind::WebSocket).await;
        let filter = json!({"equals":{"leaving": kind.protocol_name()}});
        let (room_id, _) = subscribe(&mut leaving, filter.clone(), json!({})).await;
        subscribe(&mut staying, filter, json!({})).await;
        assert_eq!(subscribers(&server, &room_id).await, Some(2), "{kind:?}");

        leaving.close().await;
        let dropped = eventually(|| async { subscribers(&server, &room_id).await == Some(1) }).await;
        assert!(
            dropped,
            "{kind:?}: the closed connection's subscription was removed"
        );
        drop(staying);
        let gone = eventually(|| async { subscribers(&server, &room_id).await.is_none() }).await;
        assert!(gone, "{kind:?}: the room went away with its last subscriber");
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_errors_and_connections_survive() {
    let mut core = CoreConfig::default();
    core.limits.max_request_size = 1024;
    let server = TestServer::start_with(core, WebSocketConfig::default()).await;
    let mut ws = protoplex_integration_tests::websocket::WsClient::connect(server.address).await;

    ws.send_text("{not json").await;
    let error = ws.next_frame().await;
    assert_eq!(
        (error["status"].as_u64(), error["error"]["id"].as_str()),
        (Some(400), Some("api.assert.invalid_argument"))
    );

    ws.send_text(format!(
        r#"{{"controller":"server","action":"now","requestId":"big","pad":"{}"}}"#,
        "x".repeat(2000)
    ))
    .await;
    let error = ws.next_frame().await;
    assert_eq!(error["status"], 413);
    assert_eq!(error["error"]["id"], "network.entrypoint.request_too_large");

    let unknown = ws
        .query(json!({"controller":"realtime","action":"levitate"}))
        .await;
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["error"]["id"], "api.process.action_not_found");

    let alive = ws.query(json!({"controller":"server","action":"now"})).await;
    assert_eq!(alive["status"], 200);

    let http = protoplex_integration_tests::http::HttpClient::new(server.address);
    let reply = http
        .send(
            "POST",
            "/lab/probes/_publish",
            &[("content-type", "application/json")],
            b"{oops",
        )
        .await;
    assert_eq!(reply.status, 400);
    let reply = http.send("GET", "/no/such/route/here", &[], b"").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["id"], "network.http.url_not_found");
    server.stop().await;
}

#[tokio::test]
async fn a_slow_reader_is_cut_off_while_a_fast_one_gets_everything() {
    let websocket = WebSocketConfig {
        outgoing_queue: 16,
        ..WebSocketConfig::default()
    };
    let server = TestServer::start_with(CoreConfig::default(), websocket).await;
    let mut slow = server.client(Kind::WebSocket).await;
    let mut fast = server.client(Kind::WebSocket).await;
    let mut publisher = server.client(Kind::WebSocket).await;
    subscribe(&mut slow, json!({}), json!({})).await;
    subscribe(&mut fast, json!({}), json!({})).await;

    // 64 KiB messages: the slow reader's socket buffers fill, then its queue.
    let blob = "z".repeat(64 * 1024);
    const MESSAGES: usize = 300;
    let reader = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(MESSAGES);
        while seen.len() < MESSAGES {
            let notification = fast.notification().await;
            seen.push(notification["result"]["_source"]["seq"].as_u64().expect("seq"));
        }
        seen
    });
    for seq in 0..MESSAGES {
        let answer = publisher
            .query(publish_request(json!({"seq": seq, "blob": blob})))
            .await;
        assert_eq!(answer["status"], 200);
    }
    let seen = tokio::time::timeout(PATIENCE * 3, reader)
        .await
        .expect("the fast reader finished in time")
        .expect("reader task");
    assert_eq!(
        seen,
        (0..MESSAGES as u64).collect::<Vec<_>>(),
        "every message, in order"
    );

    // Now the slow reader drains what reached it: the server closed it with 1011.
    let Client::WebSocket(slow) = &mut slow else {
        unreachable!("asked for a WebSocket client")
    };
    let close = slow.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1011);
    assert!(close.reason.contains("backpressure"), "{}", close.reason);
    server.stop().await;
}
