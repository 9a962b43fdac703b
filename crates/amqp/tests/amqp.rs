//! The AMQP protocol against a real RabbitMQ (see `scripts/services.sh`).
//! Each test has its own request queue, routing key and index, so that they
//! run in parallel on one broker.

mod common;

use common::{Client, Proxy, QUIET, WAIT, count, eventually, publish, subscribe, unique};
use lapin::options::QueueDeleteOptions;
use protoplex_core::CoreConfig;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_go_to_reply_to_with_the_correlation_id() {
    let proxy = Proxy::start().await;
    let mut client = Client::new(&proxy).await;

    let answer = client
        .query(json!({"controller": "server", "action": "now", "requestId": "req-1", "volatile": {"v": 1}}))
        .await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["requestId"], "req-1");
    assert_eq!(answer["volatile"], json!({"v": 1}));
    assert!(answer["result"]["now"].is_u64(), "{answer}");

    // Several at once: each answer carries its own correlation id and request id.
    let ids: Vec<String> = (0..20).map(|_| unique("corr")).collect();
    for (n, id) in ids.iter().enumerate() {
        let request = json!({"controller": "server", "action": "now", "requestId": format!("r{n}")});
        client
            .send_raw(request.to_string().as_bytes(), Some(id), true)
            .await;
    }
    for (n, id) in ids.iter().enumerate() {
        let answer = client.answer(id).await;
        assert_eq!(answer["requestId"], format!("r{n}"));
    }

    // Without a correlation id, the answer still comes, with the request id.
    client
        .send_raw(
            br#"{"controller":"server","action":"now","requestId":"plain"}"#,
            None,
            true,
        )
        .await;
    let message = client.next_message(WAIT).await.expect("answer");
    assert_eq!(message.correlation_id, None);
    assert_eq!(message.body["requestId"], "plain");

    // Unknown action: a 404 answer.
    let answer = client
        .query(json!({"controller": "server", "action": "nope"}))
        .await;
    assert_eq!(answer["status"], 404);
    assert_eq!(answer["error"]["id"], "api.process.action_not_found");

    assert_eq!(
        proxy.amqp.connection_count(),
        1,
        "one connection per reply_to queue"
    );
    client.close().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_answers_and_are_acknowledged() {
    let mut core = CoreConfig::default();
    core.limits.max_request_size = 2048;
    let proxy = Proxy::start_with(core, |_| {}).await;
    let mut client = Client::new(&proxy).await;

    client.send_raw(b"{not json", Some("bad-json"), true).await;
    let answer = client.answer("bad-json").await;
    assert_eq!(answer["status"], 400, "{answer}");
    assert_eq!(answer["error"]["id"], "api.assert.invalid_argument");

    client.send_raw(b"[1, 2]", Some("not-object"), true).await;
    let answer = client.answer("not-object").await;
    assert_eq!(answer["status"], 400);
    assert_eq!(answer["error"]["id"], "api.assert.invalid_argument");

    let big = json!({"controller": "server", "action": "now", "pad": "x".repeat(4096)});
    client
        .send_raw(big.to_string().as_bytes(), Some("too-large"), true)
        .await;
    let answer = client.answer("too-large").await;
    assert_eq!(answer["status"], 413);
    assert_eq!(answer["error"]["id"], "network.entrypoint.request_too_large");

    // Bad input without reply_to: acknowledged, nothing answered.
    client.send_raw(b"garbage", None, false).await;

    // Nothing was requeued: the proxy goes on answering, and its queue drains.
    let answer = client
        .query(json!({"controller": "server", "action": "now"}))
        .await;
    assert_eq!(answer["status"], 200);
    let queue = proxy.config.queue.clone();
    let channel = client.connection.create_channel().await.expect("channel");
    eventually("the request queue is empty", || {
        let channel = channel.clone();
        let queue = queue.clone();
        async move {
            let declared = channel
                .queue_declare(
                    queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    Default::default(),
                )
                .await
                .expect("request queue");
            declared.message_count() == 0
        }
    })
    .await;
    assert!(
        client.next_message(QUIET).await.is_none(),
        "no answer without reply_to"
    );
    client.close().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_subscribers_get_notifications_from_other_clients() {
    let proxy = Proxy::start().await;
    let index = unique("idx");
    let mut subscriber = Client::new(&proxy).await;
    let mut publisher = Client::new(&proxy).await;
    let embedded = proxy.embedded_client();

    let answer = subscriber.query(subscribe(&index, "col")).await;
    assert_eq!(answer["status"], 200, "{answer}");
    let channel = answer["result"]["channel"].as_str().expect("channel").to_owned();
    let room_id = answer["result"]["roomId"].as_str().expect("roomId").to_owned();

    // From the embedded protocol (another protocol of the same router).
    let response = embedded
        .query(publish(&index, "col", json!({"from": "embedded"})))
        .await;
    assert_eq!(response.status, 200);
    let notification = subscriber.notification(WAIT).await.expect("notification");
    assert_eq!(notification["type"], "document");
    assert_eq!(notification["room"], channel.as_str());
    assert_eq!(notification["protocol"], "embedded");
    assert_eq!(notification["result"]["_source"]["from"], "embedded");

    // From another AMQP client.
    let answer = publisher
        .query(publish(&index, "col", json!({"from": "amqp"})))
        .await;
    assert_eq!(answer["result"]["published"], true);
    let notification = subscriber.notification(WAIT).await.expect("notification");
    assert_eq!(notification["protocol"], "amqp");
    assert_eq!(notification["result"]["_source"]["from"], "amqp");
    assert_eq!(notification["room"], channel.as_str());

    // The publisher did not subscribe: it gets nothing.
    assert!(publisher.notification(QUIET).await.is_none());
    assert_eq!(count(&embedded, &room_id).await, Some(1));

    subscriber.close().await;
    publisher.close().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_subscribers_get_what_amqp_clients_publish() {
    let proxy = Proxy::start().await;
    let index = unique("idx");
    let mut embedded = proxy.embedded_client();
    let response = embedded.query(subscribe(&index, "col")).await;
    assert_eq!(response.status, 200);

    let mut client = Client::new(&proxy).await;
    let answer = client.query(publish(&index, "col", json!({"n": 1}))).await;
    assert_eq!(answer["status"], 200);
    let notification = tokio::time::timeout(WAIT, embedded.next_notification())
        .await
        .expect("in time")
        .expect("notification");
    let body: Value = serde_json::from_slice(&notification.payload).expect("json");
    assert_eq!(body["protocol"], "amqp");
    assert_eq!(body["result"]["_source"]["n"], 1);

    // Without reply_to: executed all the same, nothing answered.
    client
        .send_raw(
            publish(&index, "col", json!({"n": 2})).to_string().as_bytes(),
            None,
            false,
        )
        .await;
    let notification = tokio::time::timeout(WAIT, embedded.next_notification())
        .await
        .expect("in time")
        .expect("notification");
    let body: Value = serde_json::from_slice(&notification.payload).expect("json");
    assert_eq!(body["result"]["_source"]["n"], 2);
    assert_eq!(body["protocol"], "amqp");
    assert!(client.next_message(QUIET).await.is_none());
    eventually("the anonymous connection is gone", || async {
        proxy.router.connection_count() == 2
    })
    .await;

    client.close().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_ends_the_subscription() {
    let proxy = Proxy::start().await;
    let index = unique("idx");
    let mut client = Client::new(&proxy).await;
    let embedded = proxy.embedded_client();

    let answer = client.query(subscribe(&index, "col")).await;
    let room_id = answer["result"]["roomId"].as_str().expect("roomId").to_owned();
    assert_eq!(count(&embedded, &room_id).await, Some(1));

    let answer = client
        .query(json!({"controller": "realtime", "action": "unsubscribe", "body": {"roomId": room_id}}))
        .await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_ne!(count(&embedded, &room_id).await, Some(1));

    // A second subscriber keeps the room alive: the first one gets nothing.
    let mut other = Client::new(&proxy).await;
    let answer = other.query(subscribe(&index, "col")).await;
    assert_eq!(answer["result"]["roomId"], room_id.as_str());
    embedded
        .query(publish(&index, "col", json!({"after": "unsubscribe"})))
        .await;
    assert!(other.notification(WAIT).await.is_some());
    assert!(
        client.notification(QUIET).await.is_none(),
        "unbound queue gets nothing"
    );

    client.close().await;
    other.close().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_queue_ends_the_connection() {
    let proxy = Proxy::start().await;
    let index = unique("idx");
    let mut client = Client::new(&proxy).await;
    let embedded = proxy.embedded_client();

    let answer = client.query(subscribe(&index, "col")).await;
    let room_id = answer["result"]["roomId"].as_str().expect("roomId").to_owned();
    assert_eq!(count(&embedded, &room_id).await, Some(1));
    assert_eq!(proxy.amqp.connection_count(), 1);

    client
        .channel
        .queue_delete(client.queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("queue deleted");
    eventually("the subscription ends", || async {
        count(&embedded, &room_id).await.unwrap_or(0) == 0
    })
    .await;
    eventually("the connection is removed", || async {
        proxy.amqp.connection_count() == 0
    })
    .await;

    client.close().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_answer_removes_the_connection() {
    // No periodic check here: the answer returned unroutable alone removes it.
    let proxy = Proxy::start_with(CoreConfig::default(), |config| config.queue_check_interval = 0).await;
    let index = unique("idx");
    let mut client = Client::new(&proxy).await;
    let embedded = proxy.embedded_client();

    let answer = client.query(subscribe(&index, "col")).await;
    let room_id = answer["result"]["roomId"].as_str().expect("roomId").to_owned();
    client
        .channel
        .queue_delete(client.queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("queue deleted");
    // A request whose reply_to is the deleted queue: its answer comes back.
    client
        .send_raw(br#"{"controller":"server","action":"now"}"#, Some("lost"), true)
        .await;
    eventually("the connection is removed", || async {
        proxy.amqp.connection_count() == 0
    })
    .await;
    eventually("the subscription ends", || async {
        count(&embedded, &room_id).await.unwrap_or(0) == 0
    })
    .await;
    client.close().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_expire_when_configured() {
    let proxy = Proxy::start_with(CoreConfig::default(), |config| {
        config.idle_timeout = 300;
        config.queue_check_interval = 100;
    })
    .await;
    let index = unique("idx");
    let mut client = Client::new(&proxy).await;
    let embedded = proxy.embedded_client();
    let answer = client.query(subscribe(&index, "col")).await;
    let room_id = answer["result"]["roomId"].as_str().expect("roomId").to_owned();

    eventually("the idle connection is removed", || async {
        proxy.amqp.connection_count() == 0
    })
    .await;
    assert_eq!(count(&embedded, &room_id).await.unwrap_or(0), 0);
    // Its queue was unbound: publishing there reaches nobody.
    let mut witness = proxy.embedded_client();
    witness.query(subscribe(&index, "col")).await;
    embedded.query(publish(&index, "col", json!({"n": 1}))).await;
    assert!(
        tokio::time::timeout(WAIT, witness.next_notification())
            .await
            .is_ok(),
        "the notification was sent"
    );
    assert!(
        client.notification(QUIET).await.is_none(),
        "expired queue unbound"
    );

    // Its next request makes it a connection again.
    let answer = client
        .query(json!({"controller": "server", "action": "now"}))
        .await;
    assert_eq!(answer["status"], 200);
    client.close().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_task() {
    let proxy = Proxy::start().await;
    let mut client = Client::new(&proxy).await;
    let answer = client
        .query(json!({"controller": "server", "action": "now"}))
        .await;
    assert_eq!(answer["status"], 200);
    proxy.stop().await;
    client.close().await;
}

/// More gone queues than lapin has channel ids on one connection (2,047): each
/// missing queue found closes the checking channel, and lapin keeps a channel
/// the broker closed taken until its connection ends. The sweeper must go on
/// removing connections past that (it once stopped for good there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_outlasts_thousands_of_gone_queues() {
    const QUEUES: usize = 2_300;
    let proxy = Proxy::start().await;
    let connection = common::connect().await;
    let channel = connection.create_channel().await.expect("channel");
    let prefix = unique("gone");
    let request = json!({"controller": "server", "action": "now"}).to_string();
    for n in 0..QUEUES {
        let queue = format!("{prefix}-{n}");
        channel
            .queue_declare(queue.as_str().into(), Default::default(), Default::default())
            .await
            .expect("queue declared");
        let properties = lapin::BasicProperties::default().with_reply_to(queue.as_str().into());
        channel
            .basic_publish(
                "".into(),
                proxy.config.queue.as_str().into(),
                Default::default(),
                request.as_bytes(),
                properties,
            )
            .await
            .expect("request published");
    }
    let settle = |what: &'static str, target: usize| {
        let amqp = proxy.amqp.clone();
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
            while amqp.connection_count() != target {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: {} connections, expected {target}",
                    amqp.connection_count()
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    settle("every queue became a connection", QUEUES).await;
    for n in 0..QUEUES {
        let queue = format!("{prefix}-{n}");
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("queue deleted");
    }
    settle("every connection whose queue is gone was removed", 0).await;
    let _ = connection.close(200, "done".into()).await;
    proxy.stop().await;
}
