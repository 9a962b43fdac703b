//! The published message: a JSON object whose `"lg"` field carries the
//! publisher id, its sequence number and the send time, padded to the
//! requested size. Receivers find the field by a byte search, without parsing
//! the frame, so checking costs the same whatever envelope the server wraps
//! the message in (a Kuzzle notification or nothing at all).

use memchr::memmem;

/// The key that marks the load generator's field.
const KEY: &[u8] = b"\"lg\":\"";

/// The smallest body: `{"lg":"p:s:t","pad":""}` with realistic numbers.
pub const MIN_SIZE: usize = 48;

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Which publisher sent it.
    pub publisher: u64,
    /// Its sequence number at that publisher (0, 1, 2, ...).
    pub seq: u64,
    /// Send time, in [`crate::clock::now_ns`] nanoseconds.
    pub sent_ns: u64,
}

/// A JSON object body of about `size` bytes (exactly, when `size` is at least
/// the unpadded length) carrying `marker`.
pub fn body(marker: Marker, size: usize) -> String {
    let head = format!(
        "{{\"lg\":\"{}:{}:{}\",\"pad\":\"",
        marker.publisher, marker.seq, marker.sent_ns
    );
    let pad = size.saturating_sub(head.len() + 2);
    let mut body = String::with_capacity(head.len() + pad + 2);
    body.push_str(&head);
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str("\"}");
    body
}

/// Finds the marker in a frame, whatever surrounds it; `None` if absent or malformed.
pub fn find(frame: &[u8]) -> Option<Marker> {
    let start = memmem::find(frame, KEY)? + KEY.len();
    let rest = frame.get(start..)?;
    let end = memchr::memchr(b'"', rest)?;
    let mut fields = rest[..end].split(|byte| *byte == b':').map(parse_u64);
    let marker = Marker {
        publisher: fields.next()??,
        seq: fields.next()??,
        sent_ns: fields.next()??,
    };
    match fields.next() {
        None => Some(marker),
        Some(_) => None,
    }
}

/// A decimal number of at most 20 digits, nothing else.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |value, digit| {
        if digit.is_ascii_digit() {
            value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: Marker = Marker {
        publisher: 3,
        seq: 12345,
        sent_ns: 987_654_321_000,
    };

    #[test]
    fn body_has_the_requested_size_and_is_json() {
        for size in [MIN_SIZE, 256, 4096] {
            let body = body(MARKER, size);
            assert_eq!(body.len(), size);
            let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(value["lg"], "3:12345:987654321000");
        }
        // Too small a size gives the unpadded body.
        assert!(body(MARKER, 0).ends_with("\"pad\":\"\"}"));
    }

    #[test]
    fn marker_is_found_inside_any_envelope() {
        let raw = body(MARKER, 100);
        assert_eq!(find(raw.as_bytes()), Some(MARKER));
        let notification = format!(
            r#"{{"status":200,"type":"document","result":{{"_id":null,"_source":{raw}}},"room":"abc-7a1"}}"#
        );
        assert_eq!(find(notification.as_bytes()), Some(MARKER));
    }

    #[test]
    fn malformed_markers_are_refused() {
        for frame in [
            &br#"{"p":2}"#[..],
            br#"{"lg":"1:2"}"#,
            br#"{"lg":"1:2:3:4"}"#,
            br#"{"lg":"1:x:3"}"#,
            br#"{"lg":"1::3"}"#,
            br#"{"lg":"1:2:3"#,
            br#"{"lg":"99999999999999999999999:2:3"}"#,
        ] {
            assert_eq!(find(frame), None, "{}", String::from_utf8_lossy(frame));
        }
    }
}
