//! The launcher's configuration: a TOML file, then `PROTOPLEX_*` environment
//! overrides, then command-line flags, over Kuzzle's defaults.

use std::path::Path;

use protoplex_core::{CoreConfig, Limits};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// Environment variables starting with this prefix override configuration keys:
/// `PROTOPLEX_LIMITS__MAX_REQUEST_SIZE=2097152` sets `limits.max_request_size`
/// (`__` separates sections, names are case-insensitive).
pub(crate) const ENV_PREFIX: &str = "PROTOPLEX_";

/// Environment variables with the prefix that are not configuration keys.
const RESERVED_ENV: &[&str] = &["PROTOPLEX_CONFIG"];

/// Environment variables that name a key without the `SECTION__KEY` form:
/// `PROTOPLEX_AMQP_URL` is the broker URL the scripts and tests share.
const ENV_ALIASES: &[(&str, &[&str])] = &[("PROTOPLEX_AMQP_URL", &["amqp", "url"])];

/// Everything the launcher reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Node identity and shutdown.
    pub(crate) server: ServerConfig,
    /// Request and subscription limits (Kuzzle's `limits`).
    pub(crate) limits: Limits,
    /// HTTP entry point (and WebSocket, on the same port, when both are built).
    #[cfg(feature = "http")]
    pub(crate) http: protoplex_http::HttpConfig,
    /// WebSocket entry point.
    #[cfg(feature = "websocket")]
    pub(crate) websocket: protoplex_websocket::WebSocketConfig,
    /// MQTT entry point.
    #[cfg(feature = "mqtt")]
    pub(crate) mqtt: protoplex_mqtt::MqttConfig,
    /// AMQP entry point (through a RabbitMQ broker).
    #[cfg(feature = "amqp")]
    pub(crate) amqp: protoplex_amqp::AmqpConfig,
}

impl Default for Config {
    fn default() -> Self {
        let core = CoreConfig::default();
        Self {
            server: ServerConfig {
                node_id: core.node_id,
                shutdown_timeout_ms: default_shutdown_timeout_ms(),
            },
            limits: core.limits,
            #[cfg(feature = "http")]
            http: Default::default(),
            #[cfg(feature = "websocket")]
            websocket: Default::default(),
            #[cfg(feature = "mqtt")]
            mqtt: Default::default(),
            #[cfg(feature = "amqp")]
            amqp: Default::default(),
        }
    }
}

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// Node name in responses and notifications. Default: `protoplex-` and 8 random hex digits.
    pub(crate) node_id: String,
    /// How long, in milliseconds, a SIGINT/SIGTERM waits for requests in flight
    /// and connections to finish before exiting. Default: 5000.
    pub(crate) shutdown_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Config::default().server
    }
}

fn default_shutdown_timeout_ms() -> u64 {
    5000
}

impl Config {
    /// The core's part of the configuration.
    pub(crate) fn core(&self) -> CoreConfig {
        CoreConfig {
            node_id: self.server.node_id.clone(),
            limits: self.limits.clone(),
        }
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path} is not valid TOML: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parse error.
        source: toml::de::Error,
    },
    /// An environment variable names no configuration key.
    #[error("environment variable {0} does not name a configuration key (use SECTION__KEY)")]
    BadEnv(String),
    /// A value has the wrong type, or a key is unknown.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Overrides given on the command line.
#[derive(Debug, Default)]
pub(crate) struct FlagOverrides {
    /// Address every listener binds.
    pub(crate) bind: Option<String>,
    /// HTTP/WebSocket port.
    pub(crate) port: Option<u16>,
    /// MQTT port.
    #[cfg_attr(not(feature = "mqtt"), allow(dead_code))]
    pub(crate) mqtt_port: Option<u16>,
}

/// Reads the configuration: `file` (if any), then `env` (`PROTOPLEX_*` pairs), then `flags`.
pub(crate) fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &FlagOverrides,
) -> Result<Config, ConfigError> {
    let mut table = match file {
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: name.clone(),
                source,
            })?;
            text.parse::<Table>()
                .map_err(|source| ConfigError::Parse { path: name, source })?
        }
        None => Table::new(),
    };
    for (name, raw) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if RESERVED_ENV.contains(&name.as_str()) {
            continue;
        }
        if let Some((_, path)) = ENV_ALIASES.iter().find(|(alias, _)| *alias == name) {
            if cfg!(feature = "amqp") || !path.starts_with(&["amqp"]) {
                let path: Vec<String> = path.iter().map(|part| part.to_string()).collect();
                set(&mut table, &path, Value::String(raw)).map_err(|()| ConfigError::BadEnv(name.clone()))?;
            }
            continue;
        }
        let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::BadEnv(name));
        }
        set(&mut table, &path, parse_env_value(&raw)).map_err(|()| ConfigError::BadEnv(name.clone()))?;
    }
    // (section, port flag) of every listener of this build.
    let listeners: &[(&str, Option<u16>)] = &[
        #[cfg(feature = "http")]
        ("http", flags.port),
        #[cfg(feature = "websocket")]
        ("websocket", flags.port),
        #[cfg(feature = "mqtt")]
        ("mqtt", flags.mqtt_port),
    ];
    for (section, port) in listeners {
        let not_a_table = |()| ConfigError::Invalid(format!("[{section}] is not a table"));
        if let Some(bind) = &flags.bind {
            set(
                &mut table,
                &[section.to_string(), "bind".into()],
                Value::String(bind.clone()),
            )
            .map_err(not_a_table)?;
        }
        if let Some(port) = port {
            set(
                &mut table,
                &[section.to_string(), "port".into()],
                Value::Integer((*port).into()),
            )
            .map_err(not_a_table)?;
        }
    }
    Config::deserialize(table).map_err(|error| ConfigError::Invalid(error.to_string()))
}

/// A value from the environment: TOML when it parses as a TOML value
/// (`8080`, `true`, `"x"`, `[1, 2]`), a plain string otherwise.
fn parse_env_value(raw: &str) -> Value {
    format!("value = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

/// Sets `path` in `table`, creating the sections on the way.
fn set(table: &mut Table, path: &[String], value: Value) -> Result<(), ()> {
    let Some((last, sections)) = path.split_last() else {
        return Err(());
    };
    let mut current = table;
    for section in sections {
        let entry = current
            .entry(section.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        current = entry.as_table_mut().ok_or(())?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kuzzles() {
        let config = load(None, env(&[]), &FlagOverrides::default()).expect("defaults");
        assert_eq!(config.limits.max_request_size, 1024 * 1024);
        assert_eq!(config.limits.concurrent_requests, 100);
        assert_eq!(config.server.shutdown_timeout_ms, 5000);
    }

    #[test]
    fn file_then_env_then_flags() {
        let mut file = tempfile();
        writeln!(
            file.1,
            "[limits]\nconcurrent_requests = 7\nrequests_buffer_size = 9\n[server]\nnode_id = \"n1\""
        )
        .expect("write");
        let config = load(
            Some(&file.0),
            env(&[
                ("PROTOPLEX_LIMITS__REQUESTS_BUFFER_SIZE", "11"),
                ("PROTOPLEX_SERVER__NODE_ID", "from-env"),
                ("PROTOPLEX_CONFIG", "ignored"),
                ("HOME", "/root"),
            ]),
            &FlagOverrides::default(),
        )
        .expect("config");
        assert_eq!(config.limits.concurrent_requests, 7);
        assert_eq!(config.limits.requests_buffer_size, 11);
        assert_eq!(config.server.node_id, "from-env");
        let _ = std::fs::remove_file(&file.0);
    }

    #[cfg(feature = "http")]
    #[test]
    fn flags_set_every_listener() {
        let flags = FlagOverrides {
            bind: Some("127.0.0.1".into()),
            port: Some(8080),
            mqtt_port: None,
        };
        let config = load(None, env(&[("PROTOPLEX_HTTP__PORT", "9000")]), &flags).expect("config");
        assert_eq!(config.http.port, 8080);
        assert_eq!(config.http.bind.to_string(), "127.0.0.1");
    }

    #[cfg(feature = "amqp")]
    #[test]
    fn the_shared_broker_url_variable_sets_the_amqp_url() {
        let url = "amqp://user:secret@127.0.0.1:5673/%2f";
        let config = load(
            None,
            env(&[("PROTOPLEX_AMQP_URL", url)]),
            &FlagOverrides::default(),
        )
        .expect("config");
        assert_eq!(config.amqp.url, url);
    }

    #[test]
    fn mistakes_are_reported() {
        let unknown = load(
            None,
            env(&[("PROTOPLEX_LIMITS__NOPE", "1")]),
            &FlagOverrides::default(),
        );
        assert!(matches!(unknown, Err(ConfigError::Invalid(m)) if m.contains("nope")));
        let wrong_type = load(
            None,
            env(&[("PROTOPLEX_LIMITS__CONCURRENT_REQUESTS", "many")]),
            &FlagOverrides::default(),
        );
        assert!(matches!(wrong_type, Err(ConfigError::Invalid(_))));
        let bad_env = load(
            None,
            env(&[("PROTOPLEX_LIMITS____X", "1")]),
            &FlagOverrides::default(),
        );
        assert!(matches!(bad_env, Err(ConfigError::BadEnv(_))));
        let missing = load(
            Some(Path::new("/nonexistent/protoplex.toml")),
            env(&[]),
            &FlagOverrides::default(),
        );
        assert!(matches!(missing, Err(ConfigError::Read { .. })));
    }

    fn tempfile() -> (std::path::PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!("protoplex-config-{}.toml", std::process::id()));
        let file = std::fs::File::create(&path).expect("create");
        (path, file)
    }
}
