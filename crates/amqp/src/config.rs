//! Configuration of the AMQP protocol.

use std::str::FromStr;
use std::time::Duration;

use lapin::uri::AMQPUri;
use serde::{Deserialize, Serialize};

/// Configuration of the AMQP protocol.
///
/// Every field has a default, so `{}` is a valid configuration; unknown keys
/// are refused. Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpConfig {
    /// The broker's URL. Default: `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// Topic exchange that clients publish their requests to, and on which
    /// notifications are published with the channel name as routing key. An
    /// `amq.*` exchange is used as it is; any other is declared (topic, durable).
    /// Default: `amq.topic`.
    pub exchange: String,
    /// Routing key of the requests on [`exchange`](Self::exchange).
    /// Default: `kuzzle`.
    pub routing_key: String,
    /// Durable queue, bound to the exchange with the routing key, from which
    /// the requests are consumed. Several protoplex nodes may share it.
    /// Default: `protoplex.requests`.
    pub queue: String,
    /// Requests delivered and not yet acknowledged (executing or waiting for
    /// their answer's confirm) at most: the consumer's prefetch. Default: `100`.
    pub prefetch: u16,
    /// First delay before reconnecting to a broker that went away; it doubles
    /// after each failed attempt. Default: `100`.
    pub reconnect_min_delay: u64,
    /// Longest delay between two reconnection attempts. Default: `5000`.
    pub reconnect_max_delay: u64,
    /// Time one connection attempt (TCP, AMQP handshake, declarations) may
    /// take. Default: `10000`.
    pub connect_timeout: u64,
    /// Binds, unbinds and notifications waiting to be sent to the broker; past
    /// it, new ones are dropped with an error log. Default: `65536`.
    pub command_queue: usize,
    /// Every this often, the queue of each known connection is checked; a
    /// connection whose queue is gone is removed with its subscriptions. `0`:
    /// never (connections then go only when an answer or a notification to
    /// their queue comes back unroutable). Default: `30000`.
    pub queue_check_interval: u64,
    /// A connection that sent no request for this long is removed with its
    /// subscriptions (checked every `queue_check_interval`), even if its queue
    /// still exists. `0`: never, a connection lives as long as its queue.
    /// Default: `0`.
    pub idle_timeout: u64,
    /// Memory, in bytes, for the answers given recently, kept so that a
    /// request received again (same connection, i.e. same reply queue not
    /// found gone in between; same client-given `requestId`; same bytes) is
    /// answered again without being executed twice: a client sending again
    /// what it had no answer for after a lost connection, or the broker
    /// redelivering a request. Counted: each answer,
    /// its request id and 128 bytes; the oldest go first when it is full (an
    /// answer larger than it is not kept). `0`: nothing kept, a request
    /// received again is executed again. Default: `16777216` (16 MiB, some
    /// 40,000 small answers).
    pub answer_cache_size: usize,
    /// How long an answer stays in that cache: the time a client has to send
    /// again a request it had no answer for. `0`: nothing kept.
    /// Default: `60000`.
    pub answer_cache_ttl: u64,
    /// At shutdown, time given to the requests being executed to be answered
    /// and acknowledged, then to the connection to close. Default: `5000`.
    pub close_timeout: u64,
    /// AMQP connections (reply queues) known at once (`0`: no cap of the
    /// protocol's own; `limits.max_connections` still applies). A request from a
    /// new reply queue over it is answered 503
    /// `network.entrypoint.too_many_connections`. Default: `0`.
    pub max_connections: usize,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            exchange: "amq.topic".to_owned(),
            routing_key: "kuzzle".to_owned(),
            queue: "protoplex.requests".to_owned(),
            prefetch: 100,
            reconnect_min_delay: 100,
            reconnect_max_delay: 5000,
            connect_timeout: 10_000,
            command_queue: 65_536,
            queue_check_interval: 30_000,
            idle_timeout: 0,
            answer_cache_size: 16 * 1024 * 1024,
            answer_cache_ttl: 60_000,
            close_timeout: 5000,
            max_connections: 0,
        }
    }
}

/// The default broker URL: a local RabbitMQ with its default account.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Why an [`AmqpConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The URL is not an AMQP URL.
    #[error("invalid url \"{url}\": {reason}")]
    Url {
        /// The configured URL, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A name that must not be empty is.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A name longer than AMQP's 255 bytes.
    #[error("{0} is longer than 255 bytes")]
    TooLong(&'static str),
    /// A size that must be at least 1 is 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// `reconnect_min_delay` is above `reconnect_max_delay`.
    #[error("reconnect_min_delay ({min}) is above reconnect_max_delay ({max})")]
    Backoff {
        /// The configured `reconnect_min_delay`.
        min: u64,
        /// The configured `reconnect_max_delay`.
        max: u64,
    },
}

impl AmqpConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        AMQPUri::from_str(&self.url).map_err(|reason| ConfigError::Url {
            url: redact(&self.url),
            reason,
        })?;
        for (name, value) in [
            ("exchange", &self.exchange),
            ("routing_key", &self.routing_key),
            ("queue", &self.queue),
        ] {
            if value.is_empty() {
                return Err(ConfigError::Empty(name));
            }
            if value.len() > 255 {
                return Err(ConfigError::TooLong(name));
            }
        }
        if self.prefetch == 0 {
            return Err(ConfigError::Zero("prefetch"));
        }
        if self.command_queue == 0 {
            return Err(ConfigError::Zero("command_queue"));
        }
        if self.reconnect_min_delay == 0 {
            return Err(ConfigError::Zero("reconnect_min_delay"));
        }
        if self.reconnect_min_delay > self.reconnect_max_delay {
            return Err(ConfigError::Backoff {
                min: self.reconnect_min_delay,
                max: self.reconnect_max_delay,
            });
        }
        Ok(())
    }

    /// The URL without its password, for logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    pub(crate) fn backoff(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.reconnect_min_delay),
            Duration::from_millis(self.reconnect_max_delay),
        )
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout)
    }

    pub(crate) fn close_grace(&self) -> Duration {
        Duration::from_millis(self.close_timeout)
    }

    pub(crate) fn queue_check(&self) -> Option<Duration> {
        (self.queue_check_interval != 0).then(|| Duration::from_millis(self.queue_check_interval))
    }

    pub(crate) fn answer_ttl(&self) -> Duration {
        Duration::from_millis(self.answer_cache_ttl)
    }

    pub(crate) fn idle(&self) -> Option<Duration> {
        (self.idle_timeout != 0).then(|| Duration::from_millis(self.idle_timeout))
    }

    /// Whether the exchange is one of the broker's predefined `amq.*` ones,
    /// which cannot be declared.
    pub(crate) fn predefined_exchange(&self) -> bool {
        self.exchange.starts_with("amq.")
    }
}

/// `url` with the password of its user info replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config: AmqpConfig = serde_json::from_str("{}").expect("empty config");
        assert_eq!(config, AmqpConfig::default());
        assert_eq!(config.url, DEFAULT_URL);
        assert_eq!(config.exchange, "amq.topic");
        assert_eq!(config.routing_key, "kuzzle");
        assert_eq!(config.prefetch, 100);
        assert!(config.validate().is_ok());
        assert!(config.predefined_exchange());
        assert_eq!(config.queue_check(), Some(Duration::from_secs(30)));
        assert_eq!(config.idle(), None);
        assert_eq!(config.answer_cache_size, 16 * 1024 * 1024);
        assert_eq!(config.answer_ttl(), Duration::from_secs(60));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = serde_json::from_str::<AmqpConfig>(r#"{"routingKey":"x"}"#).expect_err("unknown key");
        assert!(error.to_string().contains("routingKey"), "{error}");
    }

    #[test]
    fn invalid_values_are_refused() {
        let bad_url = AmqpConfig {
            url: "http://user:secret@host/".into(),
            ..AmqpConfig::default()
        };
        let error = bad_url.validate().expect_err("not amqp");
        assert!(!error.to_string().contains("secret"), "{error}");
        let no_prefetch = AmqpConfig {
            prefetch: 0,
            ..AmqpConfig::default()
        };
        assert_eq!(no_prefetch.validate(), Err(ConfigError::Zero("prefetch")));
        let no_queue = AmqpConfig {
            queue: String::new(),
            ..AmqpConfig::default()
        };
        assert_eq!(no_queue.validate(), Err(ConfigError::Empty("queue")));
        let backoff = AmqpConfig {
            reconnect_min_delay: 10,
            reconnect_max_delay: 5,
            ..AmqpConfig::default()
        };
        assert_eq!(backoff.validate(), Err(ConfigError::Backoff { min: 10, max: 5 }));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://localhost"), "amqp://localhost");
    }
}
