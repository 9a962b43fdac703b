//! Configuration of the HTTP protocol, with Kuzzle's defaults
//! (`http` and `server.protocols.http` sections of Kuzzle's configuration).

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Configuration of the HTTP protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on. Default: `0.0.0.0`.
    pub bind: IpAddr,
    /// Port to listen on (0: any free port). Default: 7512.
    pub port: u16,
    /// Origins allowed to call the API from a browser: a comma-separated list,
    /// or `*` for any. An allowed `Origin` is echoed in
    /// `Access-Control-Allow-Origin` (with `Vary: Origin`). Default: `*`.
    pub access_control_allow_origin: String,
    /// Value of `Access-Control-Allow-Methods`.
    /// Default: `GET,POST,PUT,PATCH,DELETE,OPTIONS,HEAD`.
    pub access_control_allow_methods: String,
    /// Value of `Access-Control-Allow-Headers`. Default: `Content-Type,
    /// Access-Control-Allow-Headers, Authorization, X-Requested-With,
    /// Content-Encoding, Content-Length, X-Kuzzle-Volatile`.
    pub access_control_allow_headers: String,
    /// Most `Content-Encoding` layers a request body may have. Default: 3.
    pub max_encoding_layers: usize,
    /// Whether compressed request bodies are accepted and responses compressed
    /// per `Accept-Encoding` (gzip, deflate). Default: true.
    pub allow_compression: bool,
    /// HTTP connections (TCP sockets, kept alive or not) open at once on the
    /// listener (0: no limit). Over it, the request of a new connection is
    /// answered 503 `network.entrypoint.too_many_connections` and the connection
    /// closed. A connection upgraded to WebSocket stops counting here and counts
    /// as a WebSocket one. `limits.max_connections` counts each HTTP request in
    /// flight as a connection, as Kuzzle does. Default: 0.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 7512,
            access_control_allow_origin: "*".to_owned(),
            access_control_allow_methods: "GET,POST,PUT,PATCH,DELETE,OPTIONS,HEAD".to_owned(),
            access_control_allow_headers: "Content-Type, Access-Control-Allow-Headers, Authorization, \
                                           X-Requested-With, Content-Encoding, Content-Length, X-Kuzzle-Volatile"
                .to_owned(),
            max_encoding_layers: 3,
            allow_compression: true,
            max_connections: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kuzzles() {
        let config: HttpConfig = serde_json::from_str("{}").expect("empty config");
        assert_eq!(config, HttpConfig::default());
        assert_eq!(config.port, 7512);
        assert_eq!(config.bind.to_string(), "0.0.0.0");
        assert_eq!(config.max_encoding_layers, 3);
        assert!(config.allow_compression);
        assert!(config.access_control_allow_headers.contains("X-Kuzzle-Volatile"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = serde_json::from_str::<HttpConfig>(r#"{"prot":1}"#).expect_err("unknown key");
        assert!(error.to_string().contains("prot"), "{error}");
    }
}
