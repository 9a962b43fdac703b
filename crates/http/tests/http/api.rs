//! The API through HTTP routes: server actions, `_query`, publish, custom routes,
//! arguments from the path, the query string and the headers.

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{self, TIMEOUT};
use crate::start;

#[tokio::test]
async fn server_routes() {
    let server = start().await;

    let now = client::get(server.address, "/_now").await;
    assert_eq!(now.status, 200);
    assert_eq!(
        now.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let now = now.json();
    assert_eq!(
        (now["controller"].as_str(), now["action"].as_str()),
        (Some("server"), Some("now"))
    );
    assert!(
        now["result"]["now"]
            .as_u64()
            .is_some_and(|ms| ms > 1_600_000_000_000),
        "{now}"
    );
    assert_eq!(now["error"], Value::Null);

    let info = client::get(server.address, "/").await.json();
    assert_eq!(info["action"], "info", "{info}");
    let protocols = &info["result"]["serverInfo"]["kuzzle"]["protocols"];
    assert!(
        protocols.as_array().is_some_and(|p| p.contains(&json!("http"))),
        "{protocols}"
    );
    assert_eq!(
        client::get(server.address, "/_serverInfo").await.json()["action"],
        "info"
    );
    assert_eq!(
        client::get(server.address, "/_healthCheck").await.json()["action"],
        "healthCheck"
    );

    let api = client::get(server.address, "/_publicApi").await.json();
    assert_eq!(
        api["result"]["realtime"]["publish"]["http"][0]["path"],
        "/:index/:collection/_publish"
    );
    assert_eq!(api["result"]["realtime"]["publish"]["http"][0]["verb"], "POST");
    assert_eq!(api["result"]["echo"]["greet"]["http"][0]["path"], "/_greet/:name");

    let list = client::get(server.address, "/_listSubscriptions").await.json();
    assert_eq!(
        (list["status"].as_u64(), list["action"].as_str()),
        (Some(200), Some("list"))
    );
}

#[tokio::test]
async fn query_runs_a_whole_request() {
    let server = start().await;
    let response = client::post_json(
        server.address,
        "/_query",
        &json!({"controller":"server","action":"now","requestId":"q-1","volatile":{"a":1}}),
    )
    .await;
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["requestId"], "q-1");
    assert_eq!(body["volatile"], json!({"a":1}));
    assert!(body["result"]["now"].is_u64());

    let unknown = client::post_json(
        server.address,
        "/_query",
        &json!({"controller":"nope","action":"x"}),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["id"], "api.process.controller_not_found");

    let missing = client::post_json(server.address, "/_query", &json!({"action":"now"})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"]["id"], "api.assert.missing_argument");
}

#[tokio::test]
async fn publish_reaches_an_embedded_subscriber() {
    let server = start().await;
    let mut subscriber = server.embedded.connect().expect("embedded client");
    let subscribed = subscriber
        .query(json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{}}))
        .await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");

    let response = client::request(
        server.address,
        "POST",
        "/i/c/_publish?_id=doc-7",
        &[
            ("Content-Type", "application/json"),
            ("X-Kuzzle-Volatile", r#"{"from":"http"}"#),
        ],
        br#"{"hello":"world"}"#,
    )
    .await;
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["result"], json!({"published": true}));
    assert_eq!(
        (body["index"].as_str(), body["collection"].as_str()),
        (Some("i"), Some("c"))
    );
    assert_eq!(body["volatile"], json!({"from":"http"}));

    let message = tokio::time::timeout(TIMEOUT, subscriber.next_notification())
        .await
        .expect("a notification in time")
        .expect("subscribed");
    let notification: Value = serde_json::from_slice(&message.payload).expect("json");
    assert_eq!(notification["protocol"], "http");
    assert_eq!(notification["result"]["_source"], json!({"hello":"world"}));
    assert_eq!(notification["result"]["_id"], "doc-7");
    assert_eq!(notification["volatile"], json!({"from":"http"}));
    assert_eq!(
        (notification["event"].as_str(), notification["scope"].as_str()),
        (Some("publish"), Some("in"))
    );

    // Each HTTP request had a connection of its own, gone with its answer.
    for _ in 0..50 {
        if server.router.connection_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        server.router.connection_count(),
        1,
        "only the embedded subscriber is left"
    );
}

#[tokio::test]
async fn a_custom_controllers_route() {
    let server = start().await;
    let response = client::get(server.address, "/_greet/J%C3%BCrgen").await;
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["controller"], "echo");
    assert_eq!(body["result"]["greeting"], "Hello, Jürgen!");
}

#[tokio::test]
async fn path_query_and_headers_become_arguments() {
    let server = start().await;
    let response = client::request(
        server.address,
        "POST",
        "/_echo/my%20index/doc-1?scope=in&refresh&tag=a&tag=b&note=x+y%2Bz",
        &[
            ("Authorization", "Bearer my-token"),
            ("X-Kuzzle-Volatile", r#"{"trace":42}"#),
            ("X-Kuzzle-Request-Id", "rid-9"),
            ("X-Forwarded-For", "10.1.2.3, 10.4.5.6"),
            ("X-Custom", "yes"),
        ],
        br#"{"payload":[1,2]}"#,
    )
    .await;
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["requestId"], "rid-9");
    let result = &body["result"];
    assert_eq!(result["index"], "my index");
    assert_eq!(result["_id"], "doc-1");
    assert_eq!(
        result["args"],
        json!({"scope":"in","refresh":true,"tag":["a","b"],"note":"x y+z"})
    );
    assert_eq!(result["body"], json!({"payload":[1,2]}));
    assert_eq!(result["jwt"], "my-token");
    assert_eq!(result["volatile"], json!({"trace":42}));
    assert_eq!(result["protocol"], "http");
    assert_eq!(result["ips"], json!(["127.0.0.1", "10.1.2.3", "10.4.5.6"]));
    assert_eq!(result["headers"]["x-custom"], "yes");
    assert_eq!(result["headers"]["host"], "localhost");
}

#[tokio::test]
async fn pretty_indents() {
    let server = start().await;
    let compact = client::get(server.address, "/_now").await;
    assert!(!compact.body.contains(&b'\n'));
    let pretty = client::get(server.address, "/_now?pretty").await;
    assert_eq!(pretty.status, 200);
    let text = String::from_utf8(pretty.body.clone()).expect("utf-8");
    assert!(text.contains("\n  \"requestId\""), "{text}");
    assert!(pretty.json()["result"]["now"].is_u64());
}

#[tokio::test]
async fn keep_alive_serves_several_requests() {
    let server = start().await;
    let mut connection = client::Connection::open(server.address).await;
    for path in ["/_now", "/_greet/a", "/nowhere/at/all/really", "/_now"] {
        let response = connection
            .send(&client::raw_request("GET", path, &[], b""), false)
            .await;
        assert!(matches!(response.status, 200 | 404), "{response:?}");
        assert!(response.json()["node"].is_string());
    }
    let head = connection
        .send(&client::raw_request("HEAD", "/_now", &[], b""), true)
        .await;
    assert_eq!(head.status, 200);
    assert!(head.header("content-length").is_some_and(|length| length != "0"));
    // Nothing was sent after the HEAD response's headers: the next answer parses.
    let after = connection
        .send(&client::raw_request("GET", "/_greet/b", &[], b""), false)
        .await;
    assert_eq!(after.json()["result"]["greeting"], "Hello, b!");
}
