//! What can go wrong with an HTTP request before it reaches the router, and the
//! one place where it becomes a Kuzzle API error.

use protoplex_core::ApiError;

/// Kuzzle's numeric code for `network.http.<error>` (domain 3, subdomain 1).
const fn http_code(error: u32) -> u32 {
    (3 << 24) | (1 << 16) | error
}

/// An HTTP request refused by this protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// The body (announced, read, or decompressed) exceeds `limits.max_request_size`.
    #[error("request body larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// More `Content-Encoding` layers than `max_encoding_layers`.
    #[error("{layers} content encodings, at most {max} accepted")]
    TooManyEncodings {
        /// Layers announced.
        layers: usize,
        /// The limit.
        max: usize,
    },
    /// A `Content-Encoding` other than gzip, deflate or identity.
    #[error("unsupported content encoding \"{0}\"")]
    UnsupportedEncoding(String),
    /// A compressed body while compression is disabled.
    #[error("compressed body refused: compression is disabled")]
    CompressionDisabled,
    /// The body could not be read or decompressed.
    #[error("unreadable body: {0}")]
    BadBody(String),
    /// The body is not valid JSON.
    #[error("body is not JSON: {0}")]
    BadJson(String),
    /// The body is valid JSON but not an object.
    #[error("body is not a JSON object")]
    NotAnObject,
    /// The `X-Kuzzle-Volatile` header is not JSON.
    #[error("X-Kuzzle-Volatile is not JSON: {0}")]
    BadVolatile(String),
    /// No route for this verb and path.
    #[error("no route for {0}")]
    UrlNotFound(String),
    /// A verb the API does not use (TRACE, CONNECT...).
    #[error("unsupported verb {0}")]
    UnsupportedVerb(String),
    /// A WebSocket upgrade while no WebSocket protocol is attached.
    #[error("WebSocket upgrade refused: not served on this port")]
    WebSocketUnavailable,
    /// A WebSocket upgrade request missing what the handshake needs.
    #[error("bad WebSocket handshake: {0}")]
    BadHandshake(&'static str),
}

impl From<&HttpError> for ApiError {
    fn from(error: &HttpError) -> Self {
        let custom = |status: u16, id: &str, message: String, code: u32| ApiError::Custom {
            status,
            id: id.to_owned(),
            message,
            code,
        };
        match error {
            HttpError::TooLarge { .. } => ApiError::HttpRequestTooLarge,
            HttpError::TooManyEncodings { .. } => custom(
                400,
                "network.http.too_many_encodings",
                "Too many encodings.".to_owned(),
                http_code(3),
            ),
            HttpError::UnsupportedEncoding(encoding) => custom(
                400,
                "network.http.unsupported_compression",
                format!("Unsupported compression algorithm \"{encoding}\"."),
                http_code(4),
            ),
            HttpError::CompressionDisabled => custom(
                400,
                "network.http.compression_disabled",
                "Compression support is disabled.".to_owned(),
                http_code(5),
            ),
            HttpError::BadBody(reason) => {
                ApiError::HttpBadBody(format!("Unable to decode the HTTP body: {reason}"))
            }
            HttpError::BadJson(reason) => {
                ApiError::HttpBadBody(format!("Unable to convert the HTTP body to JSON: {reason}"))
            }
            HttpError::NotAnObject => ApiError::invalid_argument("body", "a JSON object"),
            HttpError::BadVolatile(reason) => custom(
                400,
                "network.http.volatile_parse_failed",
                format!("Unable to convert the \"x-kuzzle-volatile\" HTTP header to JSON: {reason}"),
                http_code(11),
            ),
            HttpError::UrlNotFound(url) => ApiError::HttpUrlNotFound(url.clone()),
            HttpError::UnsupportedVerb(verb) => custom(
                400,
                "network.http.unsupported_verb",
                format!("Unsupported HTTP verb \"{verb}\"."),
                http_code(6),
            ),
            HttpError::WebSocketUnavailable => custom(
                400,
                "network.http.websocket_unavailable",
                "WebSocket is not served on this port.".to_owned(),
                0,
            ),
            HttpError::BadHandshake(reason) => custom(
                400,
                "network.http.bad_websocket_handshake",
                format!("Invalid WebSocket handshake: {reason}."),
                0,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kuzzle_identities() {
        let cases = [
            (
                HttpError::TooLarge { max: 1 },
                "network.http.request_too_large",
                413,
            ),
            (
                HttpError::TooManyEncodings { layers: 4, max: 3 },
                "network.http.too_many_encodings",
                400,
            ),
            (
                HttpError::BadJson("x".into()),
                "network.http.body_parse_failed",
                400,
            ),
            (HttpError::NotAnObject, "api.assert.invalid_argument", 400),
            (
                HttpError::UrlNotFound("/x".into()),
                "network.http.url_not_found",
                404,
            ),
        ];
        for (error, id, status) in cases {
            let kuzzle = ApiError::from(&error).to_kuzzle();
            assert_eq!((kuzzle.id.as_str(), kuzzle.status), (id, status), "{error}");
        }
        assert_eq!(
            ApiError::from(&HttpError::TooManyEncodings { layers: 4, max: 3 })
                .to_kuzzle()
                .code,
            0x0301_0003
        );
    }
}
