//! Configuration of the MQTT protocol, with Kuzzle's defaults.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::topics;

/// Configuration of the MQTT protocol.
///
/// Every field has a default, so `{}` is a valid configuration; unknown keys
/// are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Address to listen on. Default: `0.0.0.0`.
    pub bind: IpAddr,
    /// Port to listen on (`0`: any free port). Default: `1883`.
    pub port: u16,
    /// Topic clients PUBLISH their requests to. Default: `Kuzzle/request`.
    pub request_topic: String,
    /// Topic the answers are sent on, to the requesting client only (MQTT 5
    /// clients may name another one with the `response_topic` property).
    /// Default: `Kuzzle/response`.
    pub response_topic: String,
    /// When true, PUBLISH to any other topic is delivered to the MQTT clients
    /// subscribed to a matching filter (wildcards allowed), as a plain broker.
    /// When false, only the request topic may be published to, and wildcard
    /// subscriptions are refused. Default: `false`.
    pub allow_pub_sub: bool,
    /// Milliseconds between the end of a connection and its removal from the
    /// router (its subscriptions dropped); requests it sent just before
    /// leaving still run meanwhile. Default: `250` (Kuzzle's).
    pub disconnect_delay: u64,
    /// Messages (answers, notifications, acknowledgements) a client may leave
    /// unread before it is disconnected as too slow. Default: `1024`.
    pub outgoing_queue: usize,
    /// Milliseconds a new TCP client gets to send its CONNECT packet.
    /// Default: `10000`.
    pub connect_timeout: u64,
    /// Requests of one client executing at once; past that, its next packets
    /// are not read until one ends. Default: `64`.
    pub max_in_flight: usize,
    /// QoS 1 messages sent to one client and not acknowledged yet; past that,
    /// its outgoing queue waits (and fills up, until the client is cut off).
    /// An MQTT 5 client's smaller `receive_maximum` wins. Default: `32`.
    pub max_unacked: u16,
    /// Milliseconds a closing connection gets to deliver what it owes (answers
    /// to the requests already read, queued messages, the DISCONNECT packet)
    /// before its socket is dropped. Default: `2000`.
    pub close_timeout: u64,
    /// MQTT connections open at once (`0`: no cap of the protocol's own;
    /// `limits.max_connections` still applies). A client over it gets a CONNACK
    /// "server unavailable" (3.1.1) or "server busy" (5.0). Default: `0`.
    pub max_connections: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 1883,
            request_topic: "Kuzzle/request".into(),
            response_topic: "Kuzzle/response".into(),
            allow_pub_sub: false,
            disconnect_delay: 250,
            outgoing_queue: 1024,
            connect_timeout: 10_000,
            max_in_flight: 64,
            max_unacked: 32,
            close_timeout: 2000,
            max_connections: 0,
        }
    }
}

/// Why an [`MqttConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The request or response topic is not a valid MQTT topic name (empty,
    /// wildcards, starting with `$`).
    #[error("{name} \"{topic}\" is not a valid topic name (not empty, no wildcard, no leading $)")]
    InvalidTopic {
        /// `request_topic` or `response_topic`.
        name: &'static str,
        /// The configured value.
        topic: String,
    },
    /// The request and response topics are the same.
    #[error("request_topic and response_topic must differ")]
    SameTopics,
    /// `outgoing_queue`, `max_in_flight` or `max_unacked` is 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

impl MqttConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, topic) in [
            ("request_topic", &self.request_topic),
            ("response_topic", &self.response_topic),
        ] {
            if !topics::valid_topic_name(topic) || topic.starts_with('$') {
                return Err(ConfigError::InvalidTopic {
                    name,
                    topic: topic.clone(),
                });
            }
        }
        if self.request_topic == self.response_topic {
            return Err(ConfigError::SameTopics);
        }
        if self.outgoing_queue == 0 {
            return Err(ConfigError::Zero("outgoing_queue"));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::Zero("max_in_flight"));
        }
        if self.max_unacked == 0 {
            return Err(ConfigError::Zero("max_unacked"));
        }
        Ok(())
    }

    pub(crate) fn removal_delay(&self) -> Duration {
        Duration::from_millis(self.disconnect_delay)
    }

    pub(crate) fn connect_window(&self) -> Duration {
        Duration::from_millis(self.connect_timeout)
    }

    pub(crate) fn close_grace(&self) -> Duration {
        Duration::from_millis(self.close_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kuzzles() {
        let config: MqttConfig = serde_json::from_str("{}").expect("empty config");
        assert_eq!(config, MqttConfig::default());
        assert_eq!(config.port, 1883);
        assert_eq!(config.request_topic, "Kuzzle/request");
        assert_eq!(config.response_topic, "Kuzzle/response");
        assert!(!config.allow_pub_sub);
        assert_eq!(config.removal_delay(), Duration::from_millis(250));
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = serde_json::from_str::<MqttConfig>(r#"{"allowPubSub":true}"#).expect_err("unknown key");
        assert!(error.to_string().contains("allowPubSub"), "{error}");
    }

    #[test]
    fn bad_values_are_refused() {
        let wildcard = MqttConfig {
            request_topic: "Kuzzle/#".into(),
            ..MqttConfig::default()
        };
        assert!(matches!(
            wildcard.validate(),
            Err(ConfigError::InvalidTopic { .. })
        ));
        let same = MqttConfig {
            response_topic: "Kuzzle/request".into(),
            ..MqttConfig::default()
        };
        assert_eq!(same.validate(), Err(ConfigError::SameTopics));
        let queue = MqttConfig {
            outgoing_queue: 0,
            ..MqttConfig::default()
        };
        assert_eq!(queue.validate(), Err(ConfigError::Zero("outgoing_queue")));
    }
}
