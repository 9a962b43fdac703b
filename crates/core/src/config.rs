//! Configuration of the core: limits and node identity, with Kuzzle's defaults.

use serde::{Deserialize, Serialize};

/// Configuration of the router and the realtime engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreConfig {
    /// Name of this node in responses and notifications (`node`).
    /// Default: `protoplex-` followed by 8 random hex digits.
    pub node_id: String,
    /// Request and subscription limits.
    pub limits: Limits,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            node_id: default_node_id(),
            limits: Limits::default(),
        }
    }
}

fn default_node_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("protoplex-{}", &uuid[..8])
}

/// Request and subscription limits (Kuzzle's `limits` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request accepted, in bytes, on every protocol. Default: 1 MiB.
    pub max_request_size: usize,
    /// Requests executing at once; the others wait in the buffer. Default: 100.
    pub concurrent_requests: usize,
    /// Requests waiting for an execution slot before new ones get
    /// `api.process.overloaded` (503). Default: 50,000.
    pub requests_buffer_size: usize,
    /// Conditions a realtime filter may hold after normalization. Default: 100.
    pub subscription_conditions: usize,
    /// Distinct rooms the server holds at once (0: no limit). Default: 1,000,000.
    pub subscription_rooms: usize,
    /// Client connections open at once, all protocols together (0: no limit).
    /// Each protocol may have a cap of its own too (its `max_connections`).
    /// A connection over the cap is refused the protocol's way (HTTP 503,
    /// WebSocket close 1013, MQTT CONNACK "server unavailable"/"server busy").
    /// Default: 0 (Kuzzle has no such cap).
    pub max_connections: usize,
    /// Requests per second a single connection may send; the ones over it are
    /// answered 429 `api.process.too_many_requests` (0: no limit). Kuzzle's
    /// WebSocket `rateLimit`, here for every protocol. An HTTP request is a
    /// connection of its own, so this does not limit HTTP. Default: 0.
    pub requests_rate_limit: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_size: 1024 * 1024,
            concurrent_requests: 100,
            requests_buffer_size: 50_000,
            subscription_conditions: 100,
            subscription_rooms: 1_000_000,
            max_connections: 0,
            requests_rate_limit: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kuzzles() {
        let config: CoreConfig = serde_json::from_str("{}").expect("empty config");
        assert_eq!(config.limits.max_request_size, 1_048_576);
        assert_eq!(config.limits.concurrent_requests, 100);
        assert_eq!(config.limits.requests_buffer_size, 50_000);
        assert_eq!(config.limits.subscription_conditions, 100);
        assert_eq!(config.limits.subscription_rooms, 1_000_000);
        assert_eq!(config.limits.max_connections, 0);
        assert_eq!(config.limits.requests_rate_limit, 0);
        assert!(config.node_id.starts_with("protoplex-"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error =
            serde_json::from_str::<CoreConfig>(r#"{"limits":{"max_requests":1}}"#).expect_err("unknown key");
        assert!(error.to_string().contains("max_requests"), "{error}");
    }
}
