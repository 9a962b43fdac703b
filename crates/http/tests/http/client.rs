//! A tiny HTTP/1.1 client over a tokio `TcpStream`, enough to see exactly what
//! goes on the wire (raw requests, chunked bodies, compressed answers).

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use flate2::read::{MultiGzDecoder, ZlibDecoder};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Bound on every network wait of the tests.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// A response as received.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    /// The body as sent (possibly compressed).
    pub(crate) body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every value of header `name`, joined with ", ".
    pub(crate) fn header_all(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The body, decompressed per its Content-Encoding.
    pub(crate) fn decoded_body(&self) -> Vec<u8> {
        let mut decoded = Vec::new();
        match self.header("content-encoding") {
            Some("gzip") => {
                MultiGzDecoder::new(&self.body[..])
                    .read_to_end(&mut decoded)
                    .expect("gzip body");
            }
            Some("deflate") => {
                ZlibDecoder::new(&self.body[..])
                    .read_to_end(&mut decoded)
                    .expect("deflate body");
            }
            _ => decoded.clone_from(&self.body),
        }
        decoded
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        let body = self.decoded_body();
        serde_json::from_slice(&body).unwrap_or_else(|error| {
            panic!("JSON body expected ({error}): {}", String::from_utf8_lossy(&body))
        })
    }
}

/// One client connection (keep-alive).
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub(crate) async fn open(address: SocketAddr) -> Self {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(address))
            .await
            .expect("connect in time")
            .expect("connect");
        Self {
            stream: BufReader::new(stream),
        }
    }

    /// Writes raw bytes.
    pub(crate) async fn write(&mut self, raw: &[u8]) {
        self.stream.get_mut().write_all(raw).await.expect("write");
    }

    /// Sends a raw request and reads its response (`head`: no body expected).
    pub(crate) async fn send(&mut self, raw: &[u8], head: bool) -> HttpResponse {
        self.write(raw).await;
        self.read_response(head).await
    }

    /// Reads one response.
    pub(crate) async fn read_response(&mut self, head: bool) -> HttpResponse {
        tokio::time::timeout(TIMEOUT, self.read_response_unbounded(head))
            .await
            .expect("a response in time")
    }

    async fn read_response_unbounded(&mut self, head: bool) -> HttpResponse {
        let status_line = self.line().await;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 101 {
            return response;
        }
        if response.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(self.line().await.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.expect("chunk");
                if size == 0 {
                    break;
                }
                response.body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = response.header("content-length") {
            let mut body = vec![0; length.parse().expect("content-length")];
            self.stream.read_exact(&mut body).await.expect("body");
            response.body = body;
        } else {
            self.stream.read_to_end(&mut response.body).await.expect("body");
        }
        response
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("read line");
        assert!(!line.is_empty(), "connection closed before a full response");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    /// Whether the server closed the connection (EOF within the timeout).
    pub(crate) async fn is_closed(&mut self) -> bool {
        let mut buffer = [0u8; 1];
        matches!(
            tokio::time::timeout(TIMEOUT, self.stream.read(&mut buffer)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// The socket, for WebSocket frames after an upgrade.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn into_inner(self) -> BufReader<TcpStream> {
        self.stream
    }
}

/// A raw request with `Host`, `Content-Length` when there is a body, and `headers`.
pub(crate) fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// One request on a new connection.
pub(crate) async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut connection = Connection::open(address).await;
    connection
        .send(&raw_request(method, path, headers, body), method == "HEAD")
        .await
}

/// `GET path`.
pub(crate) async fn get(address: SocketAddr, path: &str) -> HttpResponse {
    request(address, "GET", path, &[], b"").await
}

/// `POST path` with a JSON body.
pub(crate) async fn post_json(address: SocketAddr, path: &str, body: &Value) -> HttpResponse {
    request(
        address,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await
}
