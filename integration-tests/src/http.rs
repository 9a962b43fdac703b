//! A minimal HTTP/1.1 client over a plain TCP socket: one request per connection.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::PATIENCE;

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("JSON body ({e}): {:?}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Talks HTTP to one server.
pub struct HttpClient {
    address: SocketAddr,
}

impl HttpClient {
    /// A client of the server at `address`.
    pub fn new(address: SocketAddr) -> Self {
        Self { address }
    }

    /// `POST /_query` with `request`; the JSON answer.
    pub async fn query(&self, request: &Value) -> Value {
        let body = request.to_string();
        self.send(
            "POST",
            "/_query",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await
        .json()
    }

    /// Any request; the whole answer.
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        tokio::time::timeout(PATIENCE, self.exchange(method, path, headers, body))
            .await
            .expect("an HTTP answer in time")
    }

    async fn exchange(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(self.address).await.expect("connect");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            self.address,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body).await.expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read answer");
        parse(&raw)
    }
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// One HTTP/1.1 connection kept open across requests (keep-alive), writing
/// raw bytes when asked: for tests that check what becomes of a connection
/// after a bad request.
pub struct HttpConnection {
    stream: TcpStream,
    address: SocketAddr,
    read: Vec<u8>,
}

impl HttpConnection {
    /// Connects to the server at `address`.
    pub async fn open(address: SocketAddr) -> Self {
        let stream = tokio::time::timeout(PATIENCE, TcpStream::connect(address))
            .await
            .expect("connected in time")
            .expect("connect");
        Self {
            stream,
            address,
            read: Vec::new(),
        }
    }

    /// Writes raw bytes (a request, part of one, anything).
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes raw bytes; false when the server closed or reset the connection first.
    pub async fn try_write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Closes the writing half (the server reads an end of stream).
    pub async fn finish(&mut self) {
        self.stream.shutdown().await.expect("half-close");
    }

    /// Sends a request with `body` and a matching `Content-Length`, and reads
    /// its answer (also when the server refused the request before reading all
    /// of it, and the write failed). Panics when the connection ends before an answer.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
            self.address,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.try_write(&bytes).await;
        self.reply().await.expect("an answer before the connection ended")
    }

    /// Reads the next answer; `None` when the server closed the connection
    /// first. Panics when nothing comes in time.
    pub async fn reply(&mut self) -> Option<Reply> {
        tokio::time::timeout(PATIENCE, self.read_reply())
            .await
            .expect("an HTTP answer (or the end) in time")
    }

    /// Whether the server ends the connection within [`PATIENCE`] (reads and
    /// drops what comes before the end).
    pub async fn ends(&mut self) -> bool {
        let mut scratch = [0_u8; 4096];
        let ended = tokio::time::timeout(PATIENCE, async {
            loop {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        ended.is_ok()
    }

    /// Reads until `wanted` bytes are buffered; false at the end of the stream.
    async fn fill(&mut self, wanted: usize) -> bool {
        let mut chunk = [0_u8; 16 * 1024];
        while self.read.len() < wanted {
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(read) => self.read.extend_from_slice(&chunk[..read]),
            }
        }
        true
    }

    async fn read_reply(&mut self) -> Option<Reply> {
        let head_end = loop {
            if let Some(end) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let wanted = self.read.len() + 1;
            if !self.fill(wanted).await {
                return None;
            }
        };
        let head: Vec<u8> = self.read.drain(..head_end).collect();
        let mut reply = parse(&head);
        let length = reply
            .header("content-length")
            .and_then(|length| length.parse::<usize>().ok());
        let chunked = reply
            .header("transfer-encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                if let Some(end) = self.read.windows(5).position(|w| w == b"0\r\n\r\n") {
                    let raw: Vec<u8> = self.read.drain(..end + 5).collect();
                    reply.body = dechunk(&raw);
                    break;
                }
                let wanted = self.read.len() + 1;
                if !self.fill(wanted).await {
                    return None;
                }
            }
        } else if let Some(length) = length {
            if !self.fill(length).await {
                return None;
            }
            reply.body = self.read.drain(..length).collect();
        } else {
            // Neither: the body runs to the end of the stream.
            let mut rest = Vec::new();
            let _ = self.stream.read_to_end(&mut rest).await;
            self.read.extend_from_slice(&rest);
            reply.body = std::mem::take(&mut self.read);
        }
        Some(reply)
    }
}
