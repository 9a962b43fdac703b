//! Kuzzle's application-level heartbeat for browsers, which cannot send ping
//! frames: `{"p":1}` is answered `{"p":2}` without going through the router.

use serde::Deserialize;

/// The answer to an application ping.
pub(crate) const PONG: &str = r#"{"p":2}"#;

/// Longer payloads are requests, not pings (`{"p":1}` with generous whitespace
/// fits easily).
const MAX_PING_LEN: usize = 64;

/// A JSON object with `p` as its only key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ping {
    p: serde_json::Number,
}

/// Whether `payload` is a JSON object whose only key is `p`, with value 1
/// (Kuzzle checks `parsed.p === 1 && Object.keys(parsed).length === 1`).
pub(crate) fn is_ping(payload: &[u8]) -> bool {
    payload.len() <= MAX_PING_LEN
        && payload.trim_ascii_start().starts_with(b"{")
        && serde_json::from_slice::<Ping>(payload).is_ok_and(|ping| ping.p.as_f64() == Some(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_p_equal_to_one_is_a_ping() {
        assert!(is_ping(br#"{"p":1}"#));
        assert!(is_ping(br#" { "p" : 1.0 } "#));
        assert!(!is_ping(br#"{"p":2}"#));
        assert!(!is_ping(br#"{"p":"1"}"#));
        assert!(!is_ping(br#"{"p":1,"controller":"server"}"#));
        assert!(!is_ping(br#"{}"#));
        assert!(!is_ping(b"p"));
        assert!(!is_ping(br#"[{"p":1}]"#));
    }
}
