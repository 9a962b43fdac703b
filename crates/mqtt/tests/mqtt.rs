//! The MQTT protocol end to end: a real router, a real listener on 127.0.0.1,
//! real MQTT 3.1.1 and 5.0 clients (rumqttc), raw sockets for misbehaving
//! ones. Every wait is bounded.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use protoplex_core::{CoreConfig, Limits};
use protoplex_mqtt::MqttConfig;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use support::{QUIET, Received, Server, VERSIONS, Version, WAIT, count, raw, wait_count};

fn pub_sub() -> MqttConfig {
    MqttConfig {
        allow_pub_sub: true,
        ..MqttConfig::default()
    }
}

fn publish_request(index: &str, body: Value) -> Value {
    json!({"controller": "realtime", "action": "publish", "index": index, "collection": "c", "body": body})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_on_the_response_topic() {
    let server = Server::start(MqttConfig::default()).await;
    for version in VERSIONS {
        let mut client = server.client(version, &format!("req-{version:?}")).await;
        // QoS 1: PUBACK when taken, then the answer.
        client
            .publish(
                "Kuzzle/request",
                1,
                json!({"controller": "server", "action": "now", "requestId": "r1"}).to_string(),
            )
            .await;
        assert_eq!(client.next_puback().await, 0);
        let (topic, response, qos, _) = client.next_publish().await;
        assert_eq!(topic, "Kuzzle/response");
        assert_eq!(qos, 0, "answers go at QoS 0");
        assert_eq!(response["requestId"], "r1");
        assert_eq!(response["status"], 200);
        assert!(response["result"]["now"].as_u64().is_some(), "{response}");
        assert!(response["error"].is_null());
        // QoS 0 and QoS 2 requests too.
        for level in [0, 2] {
            client
                .publish(
                    "Kuzzle/request",
                    level,
                    json!({"controller": "server", "action": "now", "requestId": format!("q{level}")})
                        .to_string(),
                )
                .await;
            let (_, response, _, _) = client.next_publish().await;
            assert_eq!(response["requestId"], format!("q{level}"));
        }
        // Nothing more: the QoS 2 request ran once.
        let extra: Vec<_> = client
            .collect(QUIET)
            .await
            .into_iter()
            .filter(|received| matches!(received, Received::Publish { .. }))
            .collect();
        assert!(extra.is_empty(), "{version:?}: {extra:?}");
        // Unknown action: 404.
        let response = client
            .request(json!({"controller": "server", "action": "nope"}))
            .await;
        assert_eq!(response["status"], 404);
        assert_eq!(response["error"]["id"], "api.process.action_not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_response_topic_and_correlation_data() {
    let server = Server::start(MqttConfig::default()).await;
    let mut client = server.client(Version::V5, "corr").await;
    client
        .publish_v5(
            "Kuzzle/request",
            json!({"controller": "server", "action": "now"})
                .to_string()
                .into_bytes(),
            "my/answers",
            b"ticket-42",
        )
        .await;
    // Without subscribing to my/answers.
    let (topic, response, _, correlation) = client.next_publish().await;
    assert_eq!(topic, "my/answers");
    assert_eq!(correlation, Some(Bytes::from_static(b"ticket-42")));
    assert_eq!(response["status"], 200);
    // Without properties, the default topic.
    let response = client
        .request(json!({"controller": "server", "action": "now"}))
        .await;
    assert_eq!(response["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_mqtt_subscribers() {
    let server = Server::start(MqttConfig::default()).await;
    let embedded = server.embedded();
    for version in VERSIONS {
        let index = format!("notify-{version:?}");
        let mut subscriber = server.client(version, &format!("sub-{version:?}")).await;
        let response = subscriber
            .request(json!({"controller": "realtime", "action": "subscribe", "index": index, "collection": "c", "body": {}}))
            .await;
        let channel = response["result"]["channel"]
            .as_str()
            .expect("channel")
            .to_owned();
        assert_eq!(subscriber.subscribe(&channel, 1).await, vec![1]);
        assert_eq!(
            subscriber.subscribe(&channel, 2).await,
            vec![1],
            "granted QoS is capped at 1"
        );

        // Published by an embedded client.
        let published = embedded
            .query(publish_request(&index, json!({"from": "embedded"})))
            .await;
        assert_eq!(published.status, 200, "{published:?}");
        let (topic, notification, qos, _) = subscriber.next_publish().await;
        assert_eq!(topic, channel);
        assert_eq!(qos, 1);
        assert_eq!(notification["room"], channel.as_str());
        assert_eq!(notification["event"], "publish");
        assert_eq!(notification["result"]["_source"]["from"], "embedded");
        assert_eq!(notification["protocol"], "embedded");

        // Published by another MQTT client (of the other version).
        let other_version = if version == Version::V5 {
            Version::V311
        } else {
            Version::V5
        };
        let mut publisher = server.client(other_version, &format!("pub-{version:?}")).await;
        let response = publisher
            .request(publish_request(&index, json!({"from": "mqtt"})))
            .await;
        assert_eq!(response["status"], 200);
        let (topic, notification, _, _) = subscriber.next_publish().await;
        assert_eq!(topic, channel);
        assert_eq!(notification["result"]["_source"]["from"], "mqtt");
        assert_eq!(notification["protocol"], "mqtt");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_channels_are_delivered_without_subscribe_at_qos_0() {
    let server = Server::start(MqttConfig::default()).await;
    let embedded = server.embedded();
    for version in VERSIONS {
        let index = format!("nosub-{version:?}");
        let mut client = server.client(version, &format!("nosub-{version:?}")).await;
        let response = client
            .request(json!({"controller": "realtime", "action": "subscribe", "index": index, "collection": "c", "body": {}}))
            .await;
        let channel = response["result"]["channel"]
            .as_str()
            .expect("channel")
            .to_owned();
        embedded.query(publish_request(&index, json!({"n": 1}))).await;
        let (topic, _, qos, _) = client.next_publish().await;
        assert_eq!((topic, qos), (channel, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_subscriber_gets_what_mqtt_publishes() {
    let server = Server::start(MqttConfig::default()).await;
    let mut embedded = server.embedded();
    let response = embedded
        .query(json!({"controller": "realtime", "action": "subscribe", "index": "from-mqtt", "collection": "c", "body": {}}))
        .await;
    assert_eq!(response.status, 200);
    for version in VERSIONS {
        let mut client = server.client(version, &format!("emb-{version:?}")).await;
        let response = client
            .request(publish_request(
                "from-mqtt",
                json!({"version": format!("{version:?}")}),
            ))
            .await;
        assert_eq!(response["status"], 200, "{response}");
        let message = timeout(WAIT, embedded.next_notification())
            .await
            .expect("in time")
            .expect("notification");
        let notification: Value = serde_json::from_slice(&message.payload).expect("json");
        assert_eq!(notification["protocol"], "mqtt");
        assert_eq!(
            notification["result"]["_source"]["version"],
            format!("{version:?}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_reach_their_requester_only() {
    for config in [MqttConfig::default(), pub_sub()] {
        let allow = config.allow_pub_sub;
        let server = Server::start(config).await;
        for version in VERSIONS {
            let mut requester = server.client(version, &format!("requester-{version:?}")).await;
            let mut spy = server.client(version, &format!("spy-{version:?}")).await;
            assert_eq!(spy.subscribe("Kuzzle/response", 1).await, vec![1]);
            if allow {
                assert_eq!(spy.subscribe("#", 1).await, vec![1]);
                assert_eq!(spy.subscribe("Kuzzle/#", 0).await, vec![0]);
            }
            for n in 0..5 {
                let response = requester
                    .request(
                        json!({"controller": "server", "action": "now", "requestId": format!("secret-{n}")}),
                    )
                    .await;
                assert_eq!(response["requestId"], format!("secret-{n}"));
            }
            let seen: Vec<_> = spy
                .collect(QUIET)
                .await
                .into_iter()
                .filter(|received| matches!(received, Received::Publish { .. }))
                .collect();
            assert!(
                seen.is_empty(),
                "allow_pub_sub {allow}, {version:?}: spy got {seen:?}"
            );
            // The spy's own requests are answered to it.
            let response = spy
                .request(json!({"controller": "server", "action": "now", "requestId": "mine"}))
                .await;
            assert_eq!(response["requestId"], "mine");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_topics_and_wildcards_are_refused_without_pub_sub() {
    let server = Server::start(MqttConfig::default()).await;

    // MQTT 5: reason codes, and the connection stays.
    let mut client = server.client(Version::V5, "refused-v5").await;
    client.publish("some/topic", 1, "{}").await;
    assert_eq!(client.next_puback().await, 0x87);
    assert_eq!(client.subscribe("#", 0).await, vec![0xA2]);
    assert_eq!(client.subscribe("a/+/b", 1).await, vec![0xA2]);
    assert_eq!(client.subscribe("Kuzzle/request", 0).await, vec![0x87]);
    assert_eq!(client.subscribe("$share/g/x", 0).await, vec![0x9E]);
    assert_eq!(client.subscribe("ok/topic", 1).await, vec![1]);
    client.publish("Kuzzle/response", 0, "{}").await;
    let response = client
        .request(json!({"controller": "server", "action": "now"}))
        .await;
    assert_eq!(response["status"], 200);

    // MQTT 3.1.1: SUBACK failure for subscriptions; a refused PUBLISH closes
    // the connection (no way to refuse it otherwise), as Kuzzle does.
    let mut client = server.client(Version::V311, "refused-v4").await;
    assert_eq!(client.subscribe("#", 0).await, vec![0x80]);
    assert_eq!(client.subscribe("Kuzzle/request", 0).await, vec![0x80]);
    let response = client
        .request(json!({"controller": "server", "action": "now"}))
        .await;
    assert_eq!(response["status"], 200);
    client.publish("some/topic", 0, "{}").await;
    assert_eq!(client.closed().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_between_mqtt_clients() {
    let server = Server::start(pub_sub()).await;
    for version in VERSIONS {
        let mut reader = server.client(version, &format!("reader-{version:?}")).await;
        let mut writer = server.client(version, &format!("writer-{version:?}")).await;
        assert_eq!(reader.subscribe("sensors/+/temp", 1).await, vec![1]);
        assert_eq!(reader.subscribe("exact/topic", 0).await, vec![0]);
        writer.publish("sensors/42/temp", 1, "21.5").await;
        assert_eq!(writer.next_puback().await, 0);
        let (topic, payload, qos, _) = reader.next_publish().await;
        assert_eq!(
            (topic.as_str(), payload, qos),
            ("sensors/42/temp", json!(21.5), 1)
        );
        writer.publish("exact/topic", 0, "\"hello\"").await;
        let (topic, payload, qos, _) = reader.next_publish().await;
        assert_eq!((topic.as_str(), payload, qos), ("exact/topic", json!("hello"), 0));
        // Not matching: nothing.
        writer.publish("sensors/42/humidity", 0, "1").await;
        // The response topic is read-only (MQTT 5: 0x87), and never reaches subscribers.
        if version == Version::V5 {
            assert_eq!(reader.subscribe("Kuzzle/response", 0).await, vec![0]);
            writer.publish("Kuzzle/response", 1, "{\"forged\":true}").await;
            assert_eq!(writer.next_puback().await, 0x87);
            writer.publish("nobody/listens", 1, "1").await;
            assert_eq!(writer.next_puback().await, 0x10);
        }
        let extra: Vec<_> = reader
            .collect(QUIET)
            .await
            .into_iter()
            .filter(|received| matches!(received, Received::Publish { .. }))
            .collect();
        assert!(extra.is_empty(), "{version:?}: {extra:?}");
        // A subscriber that left is unsubscribed (MQTT 5: "no matching subscribers").
        reader.disconnect().await;
        server.wait_connections(1).await;
        writer.publish("sensors/1/temp", 1, "1").await;
        let expected = if version == Version::V5 { 0x10 } else { 0 };
        assert_eq!(writer.next_puback().await, expected);
        drop(writer);
        server.wait_connections(0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_payloads_get_a_400_answer() {
    let server = Server::start(MqttConfig::default()).await;
    for version in VERSIONS {
        let mut client = server.client(version, &format!("bad-{version:?}")).await;
        for payload in ["not json", "[1,2,3]", "42", "\"text\"", ""] {
            client.publish("Kuzzle/request", 1, payload).await;
            let (topic, response, _, _) = client.next_publish().await;
            assert_eq!(topic, "Kuzzle/response");
            assert_eq!(response["status"], 400, "{payload}: {response}");
            assert_eq!(
                response["error"]["id"], "api.assert.invalid_argument",
                "{payload}"
            );
        }
        // The connection goes on.
        let response = client
            .request(json!({"controller": "server", "action": "now"}))
            .await;
        assert_eq!(response["status"], 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_connections_are_removed_after_the_delay() {
    let config = MqttConfig {
        disconnect_delay: 600,
        ..MqttConfig::default()
    };
    let server = Server::start(config).await;
    let embedded = server.embedded();
    let response = embedded
        .query(json!({"controller": "realtime", "action": "subscribe", "index": "cleanup", "collection": "c", "body": {}}))
        .await;
    let room = response.result["roomId"].as_str().expect("roomId").to_owned();
    for (version, how) in [
        (Version::V311, "disconnect"),
        (Version::V5, "disconnect"),
        (Version::V311, "drop"),
        (Version::V5, "drop"),
    ] {
        let mut client = server
            .client(version, &format!("cleanup-{version:?}-{how}"))
            .await;
        client.subscribe_room("cleanup", json!({}), Some(0)).await;
        assert_eq!(count(&embedded, &room).await, 2);
        let started = Instant::now();
        if how == "disconnect" {
            client.disconnect().await;
        } else {
            drop(client);
        }
        server.wait_connections(0).await;
        // Still there before the delay...
        if started.elapsed() < Duration::from_millis(300) {
            tokio::time::sleep(Duration::from_millis(300).saturating_sub(started.elapsed())).await;
            assert_eq!(
                count(&embedded, &room).await,
                2,
                "{version:?} {how}: removed before the delay"
            );
        }
        // ...gone after it.
        wait_count(&embedded, &room, 1).await;
        assert!(
            started.elapsed() >= Duration::from_millis(550),
            "{version:?} {how}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_is_enforced() {
    let server = Server::start(MqttConfig::default()).await;
    for version in VERSIONS {
        let mut stream = raw::client(version, server.address, &format!("idle-{version:?}"), 1).await;
        server.wait_connections(1).await;
        let started = Instant::now();
        let reason = raw::until_closed(&mut stream).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1300),
            "{version:?}: closed after {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "{version:?}: closed after {elapsed:?}"
        );
        assert_eq!(reason, (version == Version::V5).then_some(0x8D));
        server.wait_connections(0).await;
    }
    // A client that pings stays.
    let mut stream = raw::client(Version::V311, server.address, "pinger", 1).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        stream.write_all(&[0xC0, 0x00]).await.expect("ping");
        assert_eq!(raw::read_packet(&mut stream).await, Some((0xD0, vec![])));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_packet_closes_only_its_connection() {
    let server = Server::start(MqttConfig::default()).await;
    let mut healthy = server.client(Version::V5, "healthy").await;
    let malformed: [&[u8]; 4] = [
        // PUBLISH whose topic length runs past the packet.
        &[0x30, 0x04, 0x00, 0x10, b'a', b'b'],
        // Reserved packet type 0.
        &[0x00, 0x00],
        // A second CONNECT.
        &raw::connect(Version::V311, "again", 10),
        // Remaining length over 4 bytes.
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
    ];
    for version in VERSIONS {
        for (n, bytes) in malformed.into_iter().enumerate() {
            let mut stream =
                raw::client(version, server.address, &format!("broken-{version:?}-{n}"), 30).await;
            stream.write_all(bytes).await.expect("write");
            let reason = raw::until_closed(&mut stream).await;
            if version == Version::V5 {
                assert!(matches!(reason, Some(0x81 | 0x82)), "{bytes:?}: {reason:?}");
            }
            let response = healthy
                .request(json!({"controller": "server", "action": "now"}))
                .await;
            assert_eq!(response["status"], 200);
        }
    }
    // Not MQTT at all, before any CONNECT.
    let mut stream = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connect");
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
    assert_eq!(raw::until_closed(&mut stream).await, None);
    // An unsupported protocol level gets CONNACK 0x01.
    let mut stream = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connect");
    let mut connect = raw::connect(Version::V311, "old", 10);
    connect[8] = 3;
    stream.write_all(&connect).await.expect("write");
    assert_eq!(raw::read_packet(&mut stream).await, Some((0x20, vec![0, 1])));
    let response = healthy
        .request(json!({"controller": "server", "action": "now"}))
        .await;
    assert_eq!(response["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packets_are_refused() {
    let core = CoreConfig {
        limits: Limits {
            max_request_size: 1024,
            ..Limits::default()
        },
        ..CoreConfig::default()
    };
    let server = Server::start_with(core, MqttConfig::default()).await;
    for version in VERSIONS {
        // Over the request limit, within the packet margin: a 413 answer.
        let mut client = server.client(version, &format!("big-{version:?}")).await;
        let request = json!({"controller": "server", "action": "now", "padding": "x".repeat(2000)});
        client.publish("Kuzzle/request", 1, request.to_string()).await;
        let (_, response, _, _) = client.next_publish().await;
        assert_eq!(response["status"], 413, "{response}");
        assert_eq!(response["error"]["id"], "network.entrypoint.request_too_large");

        // Way over: closed from the fixed header, before the body is sent.
        let mut stream = raw::client(version, server.address, &format!("huge-{version:?}"), 30).await;
        let mut header = vec![0x30];
        // Remaining length: 100 MB.
        let mut length = 100_000_000_usize;
        while length > 0 {
            let mut byte = (length % 128) as u8;
            length /= 128;
            if length > 0 {
                byte |= 0x80;
            }
            header.push(byte);
        }
        header.extend_from_slice(&[0x00, 0x0E]);
        header.extend_from_slice(b"Kuzzle/request");
        stream.write_all(&header).await.expect("write");
        let started = Instant::now();
        let reason = raw::until_closed(&mut stream).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        if version == Version::V5 {
            assert_eq!(reason, Some(0x95));
        }
        // The well-behaved client goes on.
        let response = client
            .request(json!({"controller": "server", "action": "now"}))
            .await;
        assert_eq!(response["status"], 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_asking_faster_than_its_queue_holds_is_slowed_down_not_cut_off() {
    // A queue of 32 packets, and 2000 requests sent in one burst by a client
    // whose event loop reads its answers all along: every answer arrives.
    let config = MqttConfig {
        outgoing_queue: 32,
        max_in_flight: 8,
        ..MqttConfig::default()
    };
    let server = Server::start(config).await;
    for version in VERSIONS {
        let mut client = server.client(version, "burst").await;
        const REQUESTS: usize = 2000;
        for n in 0..REQUESTS {
            let request = json!({"controller":"server","action":"now","requestId":format!("burst-{n}")});
            client.publish("Kuzzle/request", 0, request.to_string()).await;
        }
        let mut answered = std::collections::HashSet::new();
        while answered.len() < REQUESTS {
            let (topic, answer, _, _) = client.next_publish().await;
            assert_eq!(topic, "Kuzzle/response", "{version:?}");
            assert_eq!(answer["status"], 200, "{version:?}: {answer}");
            assert!(answered.insert(answer["requestId"].as_str().expect("id").to_owned()));
        }
        client.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_cut_off_and_the_others_get_everything() {
    let config = MqttConfig {
        outgoing_queue: 8,
        ..MqttConfig::default()
    };
    let server = Server::start(config).await;
    let embedded = server.embedded();

    // The slow client subscribes, then never reads its socket.
    let mut slow = raw::client(Version::V311, server.address, "slow", 0).await;
    let subscribe = json!({"controller": "realtime", "action": "subscribe", "index": "flood", "collection": "c", "body": {}});
    slow.write_all(&raw::publish(
        Version::V311,
        "Kuzzle/request",
        subscribe.to_string().as_bytes(),
    ))
    .await
    .expect("write");

    let mut healthy = Vec::new();
    for version in VERSIONS {
        let mut client = server.client(version, &format!("fast-{version:?}")).await;
        let (room, _) = client.subscribe_room("flood", json!({}), Some(1)).await;
        healthy.push((client, room));
    }
    let room = healthy[0].1.clone();
    wait_count(&embedded, &room, 3).await;

    let payload = "x".repeat(64 * 1024);
    let mut sent = 0;
    let started = Instant::now();
    // Lock-step with the healthy clients, until the slow one is cut off.
    while server.mqtt.connection_count() == 3 {
        assert!(started.elapsed() < WAIT, "the slow client was never cut off");
        assert!(sent < 2000, "the slow client was never cut off");
        let response = embedded
            .query(publish_request("flood", json!({"n": sent, "padding": payload})))
            .await;
        assert_eq!(response.status, 200);
        for (client, _) in &mut healthy {
            let (_, notification, qos, _) = client.next_publish().await;
            assert_eq!(notification["result"]["_source"]["n"], sent);
            assert_eq!(qos, 1);
        }
        sent += 1;
    }
    assert!(sent > 8, "cut off after {sent} messages only");
    // The healthy ones go on, and the slow one leaves its room.
    for n in sent..sent + 5 {
        embedded.query(publish_request("flood", json!({"n": n}))).await;
        for (client, _) in &mut healthy {
            let (_, notification, _, _) = client.next_publish().await;
            assert_eq!(notification["result"]["_source"]["n"], n);
        }
    }
    wait_count(&embedded, &room, 2).await;
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_then_closes() {
    let server = Server::start(MqttConfig::default()).await;
    let mut v5 = server.client(Version::V5, "shut-v5").await;
    let mut v4 = server.client(Version::V311, "shut-v4").await;
    for client in [&v5, &v4] {
        client
            .publish(
                "Kuzzle/request",
                0,
                json!({"controller": "test", "action": "sleep", "ms": 300}).to_string(),
            )
            .await;
    }
    // Both requests are read before the shutdown starts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.router.shutdown(WAIT).await, "tasks ended in time");
    for client in [&mut v5, &mut v4] {
        let (_, response, _, _) = client.next_publish().await;
        assert_eq!(response["result"]["slept"], 300, "{response}");
    }
    assert_eq!(v5.closed().await, Some(0x8B));
    assert_eq!(v4.closed().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_disconnects_a_client_after_its_answers() {
    let server = Server::start(MqttConfig::default()).await;
    for version in VERSIONS {
        let mut client = server.client(version, &format!("kicked-{version:?}")).await;
        let response = client
            .request(json!({"controller": "test", "action": "kick"}))
            .await;
        assert_eq!(response["result"]["kicked"], true);
        let reason = client.closed().await;
        assert_eq!(reason, (version == Version::V5).then_some(0x98));
        server.wait_connections(0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_taken_over_closes_the_first_connection() {
    let server = Server::start(MqttConfig::default()).await;
    let mut first = server.client(Version::V5, "same-id").await;
    let mut second = server.client(Version::V5, "same-id").await;
    assert_eq!(first.closed().await, Some(0x8E));
    let response = second
        .request(json!({"controller": "server", "action": "now"}))
        .await;
    assert_eq!(response["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_must_connect_in_time() {
    let config = MqttConfig {
        connect_timeout: 300,
        ..MqttConfig::default()
    };
    let server = Server::start(config).await;
    let mut stream = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connect");
    let started = Instant::now();
    assert_eq!(raw::until_closed(&mut stream).await, None);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "closed after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_per_connection_are_bounded() {
    let server = Server::start(MqttConfig::default()).await;
    for version in VERSIONS {
        let mut client = server.client(version, &format!("many-{version:?}")).await;
        let filters: Vec<String> = (0..10_001).map(|n| format!("topic/{n}")).collect();
        let codes = client.subscribe_many(&filters, 1).await;
        assert_eq!(codes.len(), 10_001);
        assert!(codes[..10_000].iter().all(|code| *code == 1));
        assert_eq!(codes[10_000], if version == Version::V5 { 0x97 } else { 0x80 });
        // Subscribing again to a held filter is fine.
        assert_eq!(client.subscribe("topic/0", 0).await, vec![0]);
    }
}
