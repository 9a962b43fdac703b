//! An HTTP/1.1 client (hyper) on one keep-alive connection.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::ClientError;
use super::ws::PATIENCE;

/// Largest answer body read.
const MAX_ANSWER: usize = 1024 * 1024;

/// One keep-alive HTTP/1.1 connection, one request at a time.
pub struct HttpClient {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    connection: JoinHandle<()>,
}

impl HttpClient {
    /// Connects to `server`.
    pub async fn connect(server: SocketAddr) -> Result<Self, ClientError> {
        let tcp = tokio::time::timeout(PATIENCE, TcpStream::connect(server))
            .await
            .map_err(|_| ClientError::Timeout("HTTP connection"))??;
        tcp.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            authority: server.to_string(),
            connection,
        })
    }

    /// Sends one request; its status and body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), ClientError> {
        let exchange = async {
            self.sender.ready().await?;
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, &self.authority)
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))?;
            let answer = self.sender.send_request(request).await?;
            let status = answer.status().as_u16();
            let body = Limited::new(answer.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|error| ClientError::Unexpected(format!("answer body: {error}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(PATIENCE, exchange)
            .await
            .map_err(|_| ClientError::Timeout("HTTP answer"))?
    }
}

impl Drop for HttpClient {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
