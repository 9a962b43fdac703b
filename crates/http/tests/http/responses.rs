//! Responses: compression, CORS, preflight, HEAD, unknown routes and verbs.

use protoplex_core::CoreConfig;
use protoplex_http::HttpConfig;

use crate::client;
use crate::{start, start_with};

fn assert_cors(response: &client::HttpResponse, origin: &str) {
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(origin),
        "{response:?}"
    );
    assert_eq!(
        response.header("access-control-allow-methods"),
        Some("GET,POST,PUT,PATCH,DELETE,OPTIONS,HEAD")
    );
    let headers = response
        .header("access-control-allow-headers")
        .unwrap_or_default();
    assert!(
        headers.contains("X-Kuzzle-Volatile") && headers.contains("Authorization"),
        "{headers}"
    );
}

#[tokio::test]
async fn responses_are_compressed_per_accept_encoding() {
    let server = start().await;
    for (accept, expected) in [
        ("gzip", Some("gzip")),
        ("deflate", Some("deflate")),
        ("deflate, gzip", Some("gzip")),
        ("gzip;q=0.2, deflate;q=0.8", Some("deflate")),
        ("br, identity", None),
    ] {
        let response = client::request(
            server.address,
            "GET",
            "/_publicApi",
            &[("Accept-Encoding", accept)],
            b"",
        )
        .await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-encoding"), expected, "{accept}");
        assert!(response.header_all("vary").contains("Accept-Encoding"));
        assert!(response.json()["result"]["server"]["now"].is_object(), "{accept}");
    }
    let plain = client::get(server.address, "/_publicApi").await;
    assert_eq!(plain.header("content-encoding"), None);
    let compressed = client::request(
        server.address,
        "GET",
        "/_publicApi",
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .await;
    assert!(compressed.body.len() < plain.body.len());

    // Errors are compressed too.
    let missing = client::request(
        server.address,
        "GET",
        "/missing",
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("content-encoding"), Some("gzip"));
    assert_eq!(missing.json()["error"]["id"], "network.http.url_not_found");
}

#[tokio::test]
async fn cors_headers_on_success_and_on_error() {
    let server = start().await;
    let ok = client::get(server.address, "/_now").await;
    assert_eq!(ok.status, 200);
    assert_cors(&ok, "*");

    let not_found = client::get(server.address, "/_nothing/here").await;
    assert_eq!(not_found.status, 404);
    assert_cors(&not_found, "*");

    let raw = b"POST /_query HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nContent-Length: 999999999\r\n\r\n";
    let too_large = client::Connection::open(server.address)
        .await
        .send(raw, false)
        .await;
    assert_eq!(too_large.status, 413);
    assert_cors(&too_large, "https://app.example");
    assert!(too_large.header_all("vary").contains("Origin"));
}

#[tokio::test]
async fn cors_with_a_list_of_origins() {
    let config = HttpConfig {
        access_control_allow_origin: "https://a.example,https://b.example".into(),
        ..HttpConfig::default()
    };
    let server = start_with(CoreConfig::default(), config).await;
    let allowed = client::request(
        server.address,
        "GET",
        "/_now",
        &[("Origin", "https://b.example")],
        b"",
    )
    .await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://b.example")
    );
    let refused = client::request(
        server.address,
        "GET",
        "/_now",
        &[("Origin", "https://c.example")],
        b"",
    )
    .await;
    assert_eq!(refused.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn options_is_a_preflight_on_any_path() {
    let server = start().await;
    for path in ["/", "/i/c/_publish", "/does/not/exist"] {
        let response = client::request(
            server.address,
            "OPTIONS",
            path,
            &[
                ("Origin", "https://app.example"),
                ("Access-Control-Request-Method", "POST"),
            ],
            b"",
        )
        .await;
        assert_eq!(response.status, 200, "{path}");
        assert_cors(&response, "https://app.example");
        assert_eq!(response.json()["status"], 200);
    }
}

#[tokio::test]
async fn head_is_get_without_a_body() {
    let server = start().await;
    let response = client::request(server.address, "HEAD", "/", &[], b"").await;
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty());
    assert_eq!(
        client::request(server.address, "HEAD", "/nope/nope", &[], b"")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn unknown_routes_and_verbs() {
    let server = start().await;
    let response = client::get(server.address, "/i/c/_publish").await;
    assert_eq!(response.status, 404);
    let body = response.json();
    assert_eq!(body["status"], 404);
    assert_eq!(body["error"]["id"], "network.http.url_not_found");
    assert_eq!(body["error"]["status"], 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/i/c/_publish"))
    );

    let response = client::request(server.address, "DELETE", "/_now", &[], b"").await;
    assert_eq!(response.status, 404);

    let response = client::request(server.address, "TRACE", "/", &[], b"").await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["id"], "network.http.unsupported_verb");
}

#[tokio::test]
async fn an_upgrade_without_websocket_is_refused() {
    let server = start().await;
    let response = client::request(
        server.address,
        "GET",
        "/",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json()["error"]["id"],
        "network.http.websocket_unavailable"
    );
}
