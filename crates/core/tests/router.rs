//! The router: custom controllers, the server controller, the request buffer and shutdown.

use std::sync::Arc;
use std::time::Duration;

use protoplex_core::embedded::EmbeddedProtocol;
use protoplex_core::{
    ActionCall, ActionSpec, ApiError, BoxFuture, BuildError, ChannelMessage, Controller, CoreConfig, Router,
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// A controller of our own: `greeter:hello` answers, `greeter:wait` blocks
/// until the test lets it go, `greeter:poke` notifies the caller, `greeter:fail`
/// fails with a custom error.
struct Greeter {
    release: Arc<Semaphore>,
}

impl Controller for Greeter {
    fn name(&self) -> &str {
        "greeter"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        vec![
            ActionSpec::new("hello").with_http("get", "/_hello/:name"),
            ActionSpec::new("wait"),
            ActionSpec::new("poke"),
            ActionSpec::new("fail"),
        ]
    }

    fn execute<'a>(&'a self, call: ActionCall<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            match call.request.action.as_str() {
                "hello" => {
                    let name = call.request.string_arg("name")?.unwrap_or("world");
                    Ok(json!({"greeting": format!("Hello, {name}!"), "protocol": call.connection.protocol}))
                }
                "wait" => {
                    let permit = self
                        .release
                        .acquire()
                        .await
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
                    permit.forget();
                    Ok(json!({"waited": true}))
                }
                "poke" => {
                    let message = ChannelMessage {
                        channel: "pokes".into(),
                        payload: bytes::Bytes::from_static(br#"{"poke":true,"room":"pokes"}"#),
                    };
                    Ok(json!({"delivered": call.router.notify(call.connection.id, &[message])}))
                }
                _ => Err(ApiError::custom(418, "plugin.greeter.teapot", "I am a teapot")),
            }
        })
    }
}

async fn start(config: CoreConfig) -> (Router, Arc<EmbeddedProtocol>, Arc<Semaphore>) {
    let release = Arc::new(Semaphore::new(0));
    let embedded = EmbeddedProtocol::new(16);
    let router = Router::builder(config)
        .protocol(embedded.clone())
        .controller(Greeter {
            release: release.clone(),
        })
        .build()
        .expect("router");
    router.start().await.expect("start");
    (router, embedded, release)
}

#[tokio::test]
async fn custom_controllers_answer_and_fail_in_kuzzle_terms() {
    let (_router, embedded, _) = start(CoreConfig::default()).await;
    let mut client = embedded.connect().expect("connect");
    let hello = client
        .query(json!({"controller":"greeter","action":"hello","name":"Ada","requestId":"h"}))
        .await;
    assert_eq!(hello.status, 200);
    assert_eq!(hello.request_id, "h");
    assert_eq!(
        hello.result,
        json!({"greeting":"Hello, Ada!","protocol":"embedded"})
    );

    let teapot = client
        .query(json!({"controller":"greeter","action":"fail"}))
        .await;
    assert_eq!(teapot.status, 418);
    assert_eq!(teapot.error.expect("error").id, "plugin.greeter.teapot");

    let unknown = client
        .query(json!({"controller":"greeter","action":"dance"}))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error.expect("error").id, "api.process.action_not_found");

    let poke = client
        .query(json!({"controller":"greeter","action":"poke"}))
        .await;
    assert_eq!(poke.result, json!({"delivered": true}));
    let message = client.try_next_notification().expect("notified");
    assert_eq!(&*message.channel, "pokes");
    assert_eq!(&message.payload[..], br#"{"poke":true,"room":"pokes"}"#);
}

#[tokio::test]
async fn a_custom_controller_cannot_replace_a_builtin_one() {
    struct Impostor;
    impl Controller for Impostor {
        fn name(&self) -> &str {
            "realtime"
        }
        fn actions(&self) -> Vec<ActionSpec> {
            vec![ActionSpec::new("publish")]
        }
        fn execute<'a>(&'a self, _: ActionCall<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
            Box::pin(async { Ok(Value::Null) })
        }
    }
    let built = Router::builder(CoreConfig::default())
        .controller(Impostor)
        .build();
    assert_eq!(
        built.err(),
        Some(BuildError::DuplicateController("realtime".into()))
    );

    let twice = Router::builder(CoreConfig::default())
        .protocol(EmbeddedProtocol::new(1))
        .protocol(EmbeddedProtocol::new(1))
        .build();
    assert_eq!(
        twice.err(),
        Some(BuildError::DuplicateProtocol("embedded".into()))
    );
}

#[tokio::test]
async fn server_controller_actions() {
    let (router, embedded, _) = start(CoreConfig::default()).await;
    let client = embedded.connect().expect("connect");

    let before = protoplex_core::request::now_millis();
    let now = client.query(json!({"controller":"server","action":"now"})).await;
    let now = now.result["now"].as_u64().expect("now");
    assert!(now >= before && now < before + 60_000);

    let health = client
        .query(json!({"controller":"server","action":"healthCheck"}))
        .await;
    assert_eq!(health.result["status"], "green");

    let api = client
        .query(json!({"controller":"server","action":"publicApi"}))
        .await;
    assert_eq!(
        api.result["realtime"]["publish"]["http"],
        json!([{"verb":"POST","path":"/:index/:collection/_publish","url":"/:index/:collection/_publish"}])
    );
    assert_eq!(api.result["server"]["now"]["http"][0]["path"], "/_now");
    assert_eq!(api.result["greeter"]["hello"]["http"][0]["path"], "/_hello/:name");
    assert_eq!(
        api.result["greeter"]["wait"],
        json!({"controller":"greeter","action":"wait"})
    );

    let info = client.query(json!({"controller":"server","action":"info"})).await;
    let kuzzle = &info.result["serverInfo"]["kuzzle"];
    assert_eq!(kuzzle["node"], router.config().node_id);
    assert_eq!(kuzzle["protocols"], json!(["embedded"]));
    assert_eq!(kuzzle["api"]["routes"], api.result);

    let routes = router.http_routes();
    assert!(
        routes
            .iter()
            .any(|(c, a, r)| *c == "server" && *a == "info" && r.path == "/")
    );
    assert!(
        routes
            .iter()
            .any(|(c, a, r)| *c == "greeter" && *a == "hello" && r.verb == "GET")
    );
}

#[tokio::test]
async fn a_full_request_buffer_answers_overloaded() {
    let mut config = CoreConfig::default();
    config.limits.concurrent_requests = 1;
    config.limits.requests_buffer_size = 1;
    let (_router, embedded, release) = start(config).await;
    let client = Arc::new(embedded.connect().expect("connect"));

    // One request executes, one waits in the buffer...
    let running = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .query(json!({"controller":"greeter","action":"wait"}))
                .await
        }
    });
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.query(json!({"controller":"server","action":"now"})).await }
    });
    // ... until both are in place, the third is refused.
    let mut refused = None;
    for _ in 0..100 {
        let third = client
            .query(json!({"controller":"server","action":"now","requestId":"third"}))
            .await;
        if third.status == 503 {
            refused = Some(third);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a request refused while the buffer is full");
    assert_eq!(refused.request_id, "third");
    assert_eq!(refused.error.expect("error").id, "api.process.overloaded");

    release.add_permits(1);
    assert_eq!(running.await.expect("task").result, json!({"waited": true}));
    assert_eq!(waiting.await.expect("task").status, 200);
    // Room again once the buffer drained.
    assert_eq!(
        client
            .query(json!({"controller":"server","action":"now"}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn shutdown_refuses_new_requests_and_connections() {
    let (router, embedded, _) = start(CoreConfig::default()).await;
    let client = embedded.connect().expect("connect");
    assert!(router.shutdown(Duration::from_secs(1)).await);
    let refused = client.query(json!({"controller":"server","action":"now"})).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.error.expect("error").id, "api.process.shutting_down");
    assert_eq!(
        embedded.connect().err().map(|e| e.to_kuzzle().id),
        Some("api.process.shutting_down".to_owned())
    );
}

#[tokio::test]
async fn oversized_payloads_are_refused_before_parsing() {
    let mut config = CoreConfig::default();
    config.limits.max_request_size = 48;
    let (router, embedded, _) = start(config).await;
    let client = embedded.connect().expect("connect");
    let payload = format!(
        r#"{{"controller":"server","action":"now","x":"{}"}}"#,
        "y".repeat(64)
    );
    let response = router.execute_payload(client.id(), payload.as_bytes()).await;
    assert_eq!(response.status, 413);
    assert_eq!(
        response.error.expect("error").id,
        "network.entrypoint.request_too_large"
    );
    let small = router
        .execute_payload(client.id(), br#"{"controller":"server","action":"now"}"#)
        .await;
    assert_eq!(small.status, 200);
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_until_one_leaves() {
    let mut config = CoreConfig::default();
    config.limits.max_connections = 2;
    let (router, embedded, _) = start(config).await;
    let first = embedded.connect().expect("first");
    let _second = embedded.connect().expect("second");
    let Err(refused) = embedded.connect() else {
        panic!("a third connection over the cap of 2 was accepted");
    };
    let refused = refused.to_kuzzle();
    assert_eq!(refused.id, "network.entrypoint.too_many_connections");
    assert_eq!(refused.status, 503);
    assert_eq!(router.connection_count(), 2);
    drop(first);
    embedded.connect().expect("room again once a client left");
}

#[tokio::test]
async fn the_rate_limit_refuses_a_flooding_connection_only() {
    let mut config = CoreConfig::default();
    config.limits.requests_rate_limit = 5;
    let (_router, embedded, _) = start(config).await;
    let flooder = embedded.connect().expect("flooder");
    let other = embedded.connect().expect("other");
    let now = json!({"controller":"server","action":"now"});

    let mut responses = Vec::new();
    for _ in 0..30 {
        responses.push(flooder.query(now.clone()).await);
    }
    // The burst may straddle two one-second windows: at most 2 x 5 pass.
    let statuses: Vec<u16> = responses.iter().map(|response| response.status).collect();
    assert!(
        statuses.iter().filter(|&&status| status == 429).count() >= 20,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&status| status == 200 || status == 429),
        "{statuses:?}"
    );
    let error = responses
        .into_iter()
        .find_map(|response| response.error)
        .expect("a refusal");
    assert_eq!(error.id, "api.process.too_many_requests");
    assert_eq!(error.status, 429);

    assert_eq!(
        other.query(now.clone()).await.status,
        200,
        "another connection is not limited"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        flooder.query(now).await.status,
        200,
        "a new second, a new allowance"
    );
}
