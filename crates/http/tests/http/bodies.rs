//! Request bodies: encodings, size limits, bad JSON.

use std::io::Write;

use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use protoplex_core::CoreConfig;
use protoplex_http::HttpConfig;
use serde_json::json;

use crate::client::{self, Connection};
use crate::{start, start_with};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("write");
    encoder.finish().expect("finish")
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("write");
    encoder.finish().expect("finish")
}

/// `data` encoded with `layers`, in the order of the Content-Encoding header.
fn encode(data: &[u8], layers: &[&str]) -> Vec<u8> {
    layers.iter().fold(data.to_vec(), |data, layer| match *layer {
        "gzip" => gzip(&data),
        "deflate" => deflate(&data),
        _ => data,
    })
}

fn small_limits() -> CoreConfig {
    let mut config = CoreConfig::default();
    config.limits.max_request_size = 1024;
    config
}

#[tokio::test]
async fn compressed_bodies_up_to_three_layers() {
    let server = start().await;
    let original = br#"{"controller":"server","action":"now","requestId":"zipped"}"#;
    for layers in [
        &["gzip"][..],
        &["deflate"],
        &["gzip", "deflate"],
        &["deflate", "identity", "gzip"],
        &["gzip", "deflate", "gzip"],
    ] {
        let header = layers.join(", ");
        let response = client::request(
            server.address,
            "POST",
            "/_query",
            &[("Content-Encoding", &header)],
            &encode(original, layers),
        )
        .await;
        assert_eq!(response.status, 200, "{header}: {:?}", response.json());
        assert_eq!(response.json()["requestId"], "zipped", "{header}");
    }

    let layers = ["gzip", "gzip", "gzip", "gzip"];
    let response = client::request(
        server.address,
        "POST",
        "/_query",
        &[("Content-Encoding", &layers.join(","))],
        &encode(original, &layers),
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["id"], "network.http.too_many_encodings");

    let response = client::request(
        server.address,
        "POST",
        "/_query",
        &[("Content-Encoding", "br")],
        b"xx",
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json()["error"]["id"],
        "network.http.unsupported_compression"
    );

    let response = client::request(
        server.address,
        "POST",
        "/_query",
        &[("Content-Encoding", "gzip")],
        b"not gzip",
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["id"], "network.http.body_parse_failed");
}

#[tokio::test]
async fn compression_can_be_disabled() {
    let config = HttpConfig {
        allow_compression: false,
        ..HttpConfig::default()
    };
    let server = start_with(CoreConfig::default(), config).await;
    let body = gzip(br#"{"controller":"server","action":"now"}"#);
    let response = client::request(
        server.address,
        "POST",
        "/_query",
        &[("Content-Encoding", "gzip")],
        &body,
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json()["error"]["id"],
        "network.http.compression_disabled"
    );
    let response = client::request(
        server.address,
        "GET",
        "/_now",
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), None);
}

#[tokio::test]
async fn too_large_by_content_length_before_reading() {
    let server = start_with(small_limits(), HttpConfig::default()).await;
    let mut connection = Connection::open(server.address).await;
    // Only the head is sent: the answer must not wait for the announced body.
    let response = connection
        .send(
            b"POST /_query HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10485760\r\n\r\n",
            false,
        )
        .await;
    assert_eq!(response.status, 413);
    assert_eq!(response.header("connection"), Some("close"));
    let body = response.json();
    assert_eq!(body["error"]["id"], "network.http.request_too_large");
    assert_eq!(body["status"], 413);
    assert!(connection.is_closed().await);
}

#[tokio::test]
async fn too_large_while_reading_a_chunked_body() {
    let server = start_with(small_limits(), HttpConfig::default()).await;
    let mut raw =
        b"POST /i/c/_publish HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b' '; 0x200]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut connection = Connection::open(server.address).await;
    let response = connection.send(&raw, false).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["error"]["id"], "network.http.request_too_large");

    // A chunked body within the limit is fine.
    let body = br#"{"controller":"server","action":"now"}"#;
    let mut raw = b"POST /_query HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(10) {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let response = Connection::open(server.address).await.send(&raw, false).await;
    assert_eq!(response.status, 200, "{:?}", response.json());
}

#[tokio::test]
async fn too_large_once_decompressed() {
    let server = start_with(small_limits(), HttpConfig::default()).await;
    // 8 MiB, gzipped twice: a few hundred bytes on the wire.
    let bomb = gzip(&gzip(&vec![b' '; 8 * 1024 * 1024]));
    assert!(
        bomb.len() < 1024,
        "the bomb fits the limit compressed ({} bytes)",
        bomb.len()
    );
    let response = client::request(
        server.address,
        "POST",
        "/_query",
        &[("Content-Encoding", "gzip, gzip")],
        &bomb,
    )
    .await;
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["error"]["id"], "network.http.request_too_large");
}

#[tokio::test]
async fn bad_json_and_non_object_bodies() {
    let server = start().await;
    let response = client::request(server.address, "POST", "/i/c/_publish", &[], b"{\"oops\":").await;
    assert_eq!(response.status, 400);
    let body = response.json();
    assert_eq!(body["error"]["id"], "network.http.body_parse_failed");
    assert_eq!(
        (body["controller"].as_str(), body["action"].as_str()),
        (Some("realtime"), Some("publish"))
    );

    for payload in [&b"[1,2]"[..], b"42", b"\"text\""] {
        let response = client::request(server.address, "POST", "/_query", &[], payload).await;
        assert_eq!(response.status, 400);
        assert_eq!(response.json()["error"]["id"], "api.assert.invalid_argument");
    }

    let response = client::request(server.address, "POST", "/_query", &[], b"").await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["id"], "api.assert.invalid_argument");

    let response = client::request(
        server.address,
        "GET",
        "/_now",
        &[("X-Kuzzle-Volatile", "{nope")],
        b"",
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json()["error"]["id"],
        "network.http.volatile_parse_failed"
    );

    // A publish without body: the router's own error.
    let response = client::request(server.address, "POST", "/i/c/_publish", &[], b"").await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["id"], "api.assert.body_required");
    let response = client::post_json(server.address, "/i/c/_publish", &json!(null)).await;
    assert_eq!(response.json()["error"]["id"], "api.assert.invalid_argument");
}
