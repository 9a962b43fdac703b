//! The realtime controller end to end through the router, with embedded clients.

use std::sync::Arc;
use std::time::Duration;

use protoplex_core::embedded::{EmbeddedClient, EmbeddedProtocol};
use protoplex_core::{CoreConfig, Response, Router};
use serde_json::{Value, json};

async fn start() -> (Router, Arc<EmbeddedProtocol>) {
    start_with(CoreConfig::default()).await
}

async fn start_with(config: CoreConfig) -> (Router, Arc<EmbeddedProtocol>) {
    let embedded = EmbeddedProtocol::new(64);
    let router = Router::builder(config)
        .protocol(embedded.clone())
        .build()
        .expect("router");
    router.start().await.expect("start");
    (router, embedded)
}

fn ok(response: &Response) -> &Value {
    assert_eq!(response.status, 200, "{response:?}");
    &response.result
}

async fn subscribe(client: &EmbeddedClient, filter: Value, extra: Value) -> (String, String) {
    let mut request =
        json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":filter});
    if let (Some(request), Some(extra)) = (request.as_object_mut(), extra.as_object()) {
        request.extend(extra.clone());
    }
    let response = client.query(request).await;
    let result = ok(&response);
    (
        result["roomId"].as_str().expect("roomId").to_owned(),
        result["channel"].as_str().expect("channel").to_owned(),
    )
}

async fn publish(client: &EmbeddedClient, body: Value) -> Response {
    client
        .query(
            json!({"controller":"realtime","action":"publish","index":"i","collection":"c",
                      "_id":"doc-1","body":body,"volatile":{"from":"test"},"requestId":"pub-1"}),
        )
        .await
}

async fn next_json(client: &mut EmbeddedClient) -> Value {
    let message = tokio::time::timeout(Duration::from_secs(5), client.next_notification())
        .await
        .expect("a notification in time")
        .expect("connection open");
    let value: Value = serde_json::from_slice(&message.payload).expect("json");
    assert_eq!(value["room"], *message.channel);
    value
}

async fn count(client: &EmbeddedClient, room_id: &str) -> Response {
    client
        .query(json!({"controller":"realtime","action":"count","body":{"roomId":room_id}}))
        .await
}

#[tokio::test]
async fn publish_reaches_matching_subscribers_with_contract_fields() {
    let (router, embedded) = start().await;
    let mut subscriber = embedded.connect().expect("connect");
    let mut other = embedded.connect().expect("connect");
    let publisher = embedded.connect().expect("connect");
    let (room_id, channel) = subscribe(&subscriber, json!({"equals":{"color":"red"}}), json!({})).await;
    assert_eq!(channel, format!("{room_id}-311"));
    subscribe(&other, json!({"equals":{"color":"blue"}}), json!({})).await;

    ok(&publish(&publisher, json!({"color":"red","size":3})).await);
    let notification = next_json(&mut subscriber).await;
    let timestamp = notification["timestamp"].as_u64().expect("timestamp");
    assert!(timestamp > 1_600_000_000_000);
    assert_eq!(
        notification,
        json!({"status":200,"type":"document","controller":"realtime","action":"publish","event":"publish",
               "scope":"in","index":"i","collection":"c","protocol":"embedded","timestamp":timestamp,
               "volatile":{"from":"test"},"node":router.config().node_id,"requestId":"pub-1",
               "result":{"_id":"doc-1","_source":{"color":"red","size":3}},"room":channel})
    );
    assert!(
        other.try_next_notification().is_none(),
        "a non-matching filter got the message"
    );
}

#[tokio::test]
async fn equal_filters_share_a_room_and_count_follows_subscriptions() {
    let (_router, embedded) = start().await;
    let a = embedded.connect().expect("connect");
    let b = embedded.connect().expect("connect");
    let (room_a, _) = subscribe(&a, json!({"and":[{"equals":{"x":1}},{"exists":"y"}]}), json!({})).await;
    let (room_b, _) = subscribe(&b, json!({"and":[{"exists":"y"},{"equals":{"x":1}}]}), json!({})).await;
    assert_eq!(room_a, room_b);
    assert_eq!(ok(&count(&a, &room_a).await)["count"], 2);
    // Subscribing twice to the same room does not count twice.
    subscribe(
        &a,
        json!({"and":[{"equals":{"x":1}},{"exists":"y"}]}),
        json!({"scope":"in"}),
    )
    .await;
    assert_eq!(ok(&count(&a, &room_a).await)["count"], 2);

    drop(b);
    assert_eq!(ok(&count(&a, &room_a).await)["count"], 1);
    let response = a
        .query(json!({"controller":"realtime","action":"unsubscribe","body":{"roomId":room_a}}))
        .await;
    assert_eq!(ok(&response)["roomId"], room_a);
    let response = count(&a, &room_a).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.error.expect("error").id, "core.realtime.room_not_found");
}

#[tokio::test]
async fn scope_selects_channels() {
    let (_router, embedded) = start().await;
    let mut all = embedded.connect().expect("connect");
    let mut inside = embedded.connect().expect("connect");
    let mut outside = embedded.connect().expect("connect");
    let mut none = embedded.connect().expect("connect");
    let publisher = embedded.connect().expect("connect");
    let filter = json!({"range":{"n":{"gte":10}}});
    let (_, all_channel) = subscribe(&all, filter.clone(), json!({"scope":"all"})).await;
    let (_, in_channel) = subscribe(&inside, filter.clone(), json!({"scope":"in"})).await;
    subscribe(&outside, filter.clone(), json!({"scope":"out"})).await;
    subscribe(&none, filter, json!({"scope":"none"})).await;

    ok(&publish(&publisher, json!({"n": 12})).await);
    assert_eq!(next_json(&mut all).await["room"], all_channel);
    assert_eq!(next_json(&mut inside).await["room"], in_channel);
    tokio::task::yield_now().await;
    assert!(outside.try_next_notification().is_none());
    assert!(none.try_next_notification().is_none());
}

#[tokio::test]
async fn users_notifications_follow_the_users_option() {
    let (_router, embedded) = start().await;
    let mut watcher = embedded.connect().expect("connect");
    let mut quiet = embedded.connect().expect("connect");
    let (room_id, channel) = subscribe(&watcher, json!({}), json!({"users":"all"})).await;
    // The watcher is told of its own arrival.
    let own = next_json(&mut watcher).await;
    assert_eq!(own["user"], "in");
    assert_eq!(own["result"]["count"], 1);
    subscribe(&quiet, json!({}), json!({})).await;
    assert_eq!(next_json(&mut watcher).await["result"]["count"], 2);

    let newcomer = embedded.connect().expect("connect");
    subscribe(&newcomer, json!({}), json!({"volatile":{"name":"bob"}})).await;
    let joined = next_json(&mut watcher).await;
    let timestamp = joined["timestamp"].clone();
    assert_eq!(
        joined,
        json!({"status":200,"type":"user","user":"in","controller":"realtime","action":"subscribe",
               "index":"i","collection":"c","protocol":"embedded","timestamp":timestamp,
               "volatile":{"name":"bob"},"node":joined["node"],"result":{"count":3},"room":channel})
    );

    drop(newcomer);
    let left = next_json(&mut watcher).await;
    assert_eq!(left["user"], "out");
    assert_eq!(left["action"], "unsubscribe");
    assert_eq!(left["volatile"], json!({"name":"bob"}));
    assert_eq!(left["result"]["count"], 2);
    assert!(
        quiet.try_next_notification().is_none(),
        "users: none got a user notification"
    );
    assert_eq!(room_id.len(), 32);
}

#[tokio::test]
async fn users_in_and_out_channels_are_distinct() {
    let (_router, embedded) = start().await;
    let mut arrivals = embedded.connect().expect("connect");
    let mut departures = embedded.connect().expect("connect");
    subscribe(&arrivals, json!({}), json!({"users":"in"})).await;
    next_json(&mut arrivals).await; // its own arrival
    subscribe(&departures, json!({}), json!({"users":"out"})).await;
    assert_eq!(next_json(&mut arrivals).await["user"], "in");

    let visitor = embedded.connect().expect("connect");
    subscribe(&visitor, json!({}), json!({})).await;
    assert_eq!(next_json(&mut arrivals).await["result"]["count"], 3);
    drop(visitor);
    let left = next_json(&mut departures).await;
    assert_eq!(left["user"], "out");
    assert_eq!(left["result"]["count"], 2);
    assert!(arrivals.try_next_notification().is_none());
}

#[tokio::test]
async fn unsubscribed_connections_get_nothing_more() {
    let (_router, embedded) = start().await;
    let mut subscriber = embedded.connect().expect("connect");
    let publisher = embedded.connect().expect("connect");
    let (room_id, _) = subscribe(&subscriber, json!({}), json!({})).await;
    ok(&publish(&publisher, json!({"a": 1})).await);
    next_json(&mut subscriber).await;
    ok(&subscriber
        .query(json!({"controller":"realtime","action":"unsubscribe","body":{"roomId":room_id}}))
        .await);
    ok(&publish(&publisher, json!({"a": 2})).await);
    tokio::task::yield_now().await;
    assert!(subscriber.try_next_notification().is_none());

    let again = subscriber
        .query(json!({"controller":"realtime","action":"unsubscribe","body":{"roomId":room_id}}))
        .await;
    assert_eq!(again.status, 412);
    assert_eq!(again.error.expect("error").id, "core.realtime.not_subscribed");
}

#[tokio::test]
async fn join_enters_an_existing_room() {
    let (_router, embedded) = start().await;
    let owner = embedded.connect().expect("connect");
    let mut joiner = embedded.connect().expect("connect");
    let publisher = embedded.connect().expect("connect");
    let (room_id, _) = subscribe(&owner, json!({"equals":{"k":"v"}}), json!({})).await;

    let missing = joiner
        .query(json!({"controller":"realtime","action":"join","body":{"roomId":"nope"}}))
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error.expect("error").id, "core.realtime.room_not_found");

    let joined = joiner
        .query(json!({"controller":"realtime","action":"join","body":{"roomId":room_id},"scope":"in"}))
        .await;
    assert_eq!(ok(&joined)["roomId"], room_id);
    let channel = ok(&joined)["channel"].as_str().expect("channel").to_owned();
    assert_eq!(channel, format!("{room_id}-312"));
    assert_eq!(ok(&count(&owner, &room_id).await)["count"], 2);
    ok(&publish(&publisher, json!({"k":"v"})).await);
    assert_eq!(next_json(&mut joiner).await["room"], channel);
}

#[tokio::test]
async fn list_shows_rooms_by_index_and_collection() {
    let (_router, embedded) = start().await;
    let a = embedded.connect().expect("connect");
    let (room_id, _) = subscribe(&a, json!({"exists":"f"}), json!({})).await;
    let other = a
        .query(json!({"controller":"realtime","action":"subscribe","index":"j","collection":"d","body":{}}))
        .await;
    let other_room = ok(&other)["roomId"].as_str().expect("roomId").to_owned();
    let list = a.query(json!({"controller":"realtime","action":"list"})).await;
    assert_eq!(
        *ok(&list),
        json!({"i":{"c":{room_id:1}},"j":{"d":{other_room:1}}})
    );
}

#[tokio::test]
async fn invalid_requests_get_their_errors() {
    let (_router, embedded) = start().await;
    let client = embedded.connect().expect("connect");
    let cases = [
        (
            json!({"controller":"realtime","action":"subscribe","collection":"c","body":{}}),
            400,
            "api.assert.missing_argument",
        ),
        (
            json!({"controller":"realtime","action":"subscribe","index":"i","body":{}}),
            400,
            "api.assert.missing_argument",
        ),
        (
            json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c"}),
            400,
            "api.assert.body_required",
        ),
        (
            json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{},"scope":"up"}),
            400,
            "core.realtime.invalid_scope",
        ),
        (
            json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{},"users":5}),
            400,
            "api.assert.invalid_type",
        ),
        (
            json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{"near":{"x":1}}}),
            400,
            "api.assert.koncorde_dsl_error",
        ),
        (
            json!({"controller":"realtime","action":"publish","index":"i","collection":"c"}),
            400,
            "api.assert.body_required",
        ),
        (
            json!({"controller":"realtime","action":"count","body":{}}),
            400,
            "api.assert.missing_argument",
        ),
        (
            json!({"controller":"realtime","action":"unsubscribe"}),
            400,
            "api.assert.body_required",
        ),
        (
            json!({"controller":"realtime","action":"teleport"}),
            404,
            "api.process.action_not_found",
        ),
        (
            json!({"controller":"nothing","action":"now"}),
            404,
            "api.process.controller_not_found",
        ),
        (json!({"action":"now"}), 400, "api.assert.missing_argument"),
        (json!([1, 2]), 400, "api.assert.invalid_argument"),
    ];
    for (request, status, id) in cases {
        let response = client.query(request.clone()).await;
        assert_eq!(response.status, status, "{request}: {response:?}");
        let error = response.error.expect("an error");
        assert_eq!(error.id, id, "{request}");
        assert_eq!(error.status, status);
        assert!(!error.message.is_empty());
    }
}

#[tokio::test]
async fn too_many_conditions_and_rooms_are_refused() {
    let mut config = CoreConfig::default();
    config.limits.subscription_conditions = 2;
    config.limits.subscription_rooms = 1;
    let (_router, embedded) = start_with(config).await;
    let client = embedded.connect().expect("connect");
    let big = json!({"and":[{"equals":{"a":1}},{"equals":{"b":1}},{"equals":{"c":1}}]});
    let response = client
        .query(json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":big}))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error.expect("error").id, "api.assert.koncorde_dsl_error");

    subscribe(&client, json!({"equals":{"a":1}}), json!({})).await;
    let response = client
        .query(json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{"equals":{"a":2}}}))
        .await;
    assert_eq!(response.error.expect("error").id, "core.realtime.too_many_rooms");
}

#[tokio::test]
async fn a_full_queue_disconnects_the_slow_client_only() {
    let embedded_small = EmbeddedProtocol::new(2);
    let router = Router::builder(CoreConfig::default())
        .protocol(embedded_small.clone())
        .build()
        .expect("router");
    router.start().await.expect("start");
    let slow = embedded_small.connect().expect("connect");
    let publisher = embedded_small.connect().expect("connect");
    let (room_id, _) = subscribe(&slow, json!({}), json!({})).await;
    for n in 0..3 {
        ok(&publish(&publisher, json!({"n": n})).await);
    }
    // The third notification overflowed the slow client's queue: it is gone.
    let response = count(&publisher, &room_id).await;
    assert_eq!(response.status, 404, "{response:?}");
    assert_eq!(router.connection_count(), 1);
    let dropped = slow.query(json!({"controller":"server","action":"now"})).await;
    assert_eq!(dropped.error.expect("error").id, "api.process.connection_dropped");
}
