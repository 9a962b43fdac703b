//! Configuration of the WebSocket protocol, with Kuzzle's defaults.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Frames this much larger than `limits.max_request_size` are still read whole
/// (and answered 413) when [`WebSocketConfig::max_frame_size`] is automatic.
const AUTO_FRAME_SLACK: usize = 64 * 1024;

/// Configuration of the WebSocket protocol.
///
/// Every field has a default, so `{}` is a valid configuration; unknown keys
/// are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// Address to listen on, in standalone mode. Default: `0.0.0.0`.
    pub bind: IpAddr,
    /// Port to listen on, in standalone mode (`0`: any free port). Default: `7512`.
    pub port: u16,
    /// Milliseconds without any frame from a client (requests, pongs...) before it
    /// is closed (checked every half of it, so a silent client goes after 1 to 1.5
    /// times this). Clients quiet for a quarter of it are pinged: those that answer
    /// stay. `0`: never. Default: `60000` (Kuzzle's 60 s).
    pub idle_timeout: u64,
    /// Messages (responses and notifications) a client may leave unread before it
    /// is closed with code 1011 "too much backpressure". Default: `1024`.
    pub outgoing_queue: usize,
    /// Requests of one client executing at once; past that, its next frames are
    /// not read until one ends. Default: `64`.
    pub max_in_flight: usize,
    /// Largest frame or message read, in bytes: past it the connection is closed
    /// with code 1009. Frames between `limits.max_request_size` and this size are
    /// answered with a 413 error and the connection stays. `0`: automatic, the
    /// larger of twice `max_request_size` and `max_request_size` + 64 KiB.
    /// Default: `0`.
    pub max_frame_size: usize,
    /// Milliseconds a closing connection gets to deliver what it owes (answers to
    /// the requests already read, queued messages, the close frame) before its
    /// socket is dropped. Default: `2000`.
    pub close_timeout: u64,
    /// WebSocket connections open at once (`0`: no cap of the protocol's own;
    /// `limits.max_connections` still applies). A client over it is closed with
    /// code 1013 "try again later" right after the handshake. Default: `0`.
    pub max_connections: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 7512,
            idle_timeout: 60_000,
            outgoing_queue: 1024,
            max_in_flight: 64,
            max_frame_size: 0,
            close_timeout: 2000,
            max_connections: 0,
        }
    }
}

/// Why a [`WebSocketConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `outgoing_queue` is 0.
    #[error("outgoing_queue must be at least 1")]
    EmptyQueue,
    /// `max_in_flight` is 0.
    #[error("max_in_flight must be at least 1")]
    NoRequestInFlight,
    /// `max_frame_size` is set below `limits.max_request_size`.
    #[error("max_frame_size ({frame}) is below limits.max_request_size ({request})")]
    FrameBelowRequest {
        /// The configured `max_frame_size`.
        frame: usize,
        /// The router's `max_request_size`.
        request: usize,
    },
}

impl WebSocketConfig {
    /// Checks the configuration against the router's `max_request_size`.
    pub fn validate(&self, max_request_size: usize) -> Result<(), ConfigError> {
        if self.outgoing_queue == 0 {
            return Err(ConfigError::EmptyQueue);
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::NoRequestInFlight);
        }
        if self.max_frame_size != 0 && self.max_frame_size < max_request_size {
            return Err(ConfigError::FrameBelowRequest {
                frame: self.max_frame_size,
                request: max_request_size,
            });
        }
        Ok(())
    }

    /// The largest frame read whole, for a router whose largest request is
    /// `max_request_size`.
    pub fn frame_limit(&self, max_request_size: usize) -> usize {
        if self.max_frame_size != 0 {
            return self.max_frame_size;
        }
        max_request_size
            .saturating_mul(2)
            .max(max_request_size.saturating_add(AUTO_FRAME_SLACK))
    }

    /// The idle timeout, `None` when disabled.
    pub(crate) fn idle(&self) -> Option<Duration> {
        (self.idle_timeout != 0).then(|| Duration::from_millis(self.idle_timeout))
    }

    /// The time a closing connection gets.
    pub(crate) fn close_grace(&self) -> Duration {
        Duration::from_millis(self.close_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config: WebSocketConfig = serde_json::from_str("{}").expect("empty config");
        assert_eq!(config, WebSocketConfig::default());
        assert_eq!(config.port, 7512);
        assert_eq!(config.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(config.idle(), Some(Duration::from_secs(60)));
        assert!(config.validate(1 << 20).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = serde_json::from_str::<WebSocketConfig>(r#"{"idleTimeout":1}"#).expect_err("unknown key");
        assert!(error.to_string().contains("idleTimeout"), "{error}");
    }

    #[test]
    fn frame_limit_leaves_room_for_a_413() {
        let config = WebSocketConfig::default();
        assert_eq!(config.frame_limit(1 << 20), 2 << 20);
        assert_eq!(config.frame_limit(1000), 1000 + 64 * 1024);
        let fixed = WebSocketConfig {
            max_frame_size: 5000,
            ..WebSocketConfig::default()
        };
        assert_eq!(fixed.frame_limit(1000), 5000);
        assert_eq!(
            fixed.validate(6000),
            Err(ConfigError::FrameBelowRequest {
                frame: 5000,
                request: 6000
            })
        );
    }

    #[test]
    fn zero_sizes_are_refused() {
        let config = WebSocketConfig {
            outgoing_queue: 0,
            ..WebSocketConfig::default()
        };
        assert_eq!(config.validate(10), Err(ConfigError::EmptyQueue));
        let config = WebSocketConfig {
            max_in_flight: 0,
            ..WebSocketConfig::default()
        };
        assert_eq!(config.validate(10), Err(ConfigError::NoRequestInFlight));
        let never = WebSocketConfig {
            idle_timeout: 0,
            ..WebSocketConfig::default()
        };
        assert_eq!(never.idle(), None);
    }
}
