//! What the soak sends: the steady messages, with the attributes the steady
//! subscribers' filters select on, the churn clients' own messages, and the
//! Kuzzle requests.
//!
//! A steady message's attributes are a function of its publisher and sequence
//! number, which the [payload marker](crate::clients::payload) carries: a
//! subscriber checks each notification against its own filter from the marker
//! alone, and the expected deliveries are counted from what was published.

use serde_json::{Value, json};

use crate::clients::INDEX;
use crate::clients::payload::Marker;

/// Collection of the steady traffic.
pub const STEADY: &str = "soak";
/// Collection of the churn clients' messages (no steady filter sees them).
pub const CHURN: &str = "soak-churn";
/// Values of the `group` attribute: `g0` .. `g3`.
pub const GROUPS: u64 = 4;
/// Marker publisher ids from this one up belong to churn clients.
pub const CHURN_BASE: u64 = 1 << 20;

/// A request that is not JSON (answered 400 with an empty `requestId`).
pub const INVALID_JSON: &str = r#"{"controller":"realtime","action":"publish","#;

/// The attributes of a steady message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// `group`: `g{group}`, 0 .. [`GROUPS`].
    pub group: u64,
    /// `n`: 0 .. 100.
    pub n: u64,
}

/// The attributes of message `seq` of steady publisher `publisher`.
pub fn attributes(publisher: u64, seq: u64) -> Attributes {
    Attributes {
        group: (seq.wrapping_add(publisher)) % GROUPS,
        n: (seq.wrapping_mul(37).wrapping_add(publisher.wrapping_mul(11))) % 100,
    }
}

/// The filter of a steady subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `equals` on the group.
    Group(u64),
    /// `range`: `n` below the bound.
    Below(u64),
    /// `in`: one of two groups.
    Groups(u64, u64),
    /// `and` of `equals` on the group and `range` `n >= bound`.
    GroupAndAtLeast(u64, u64),
    /// `not` `equals` on the group.
    NotGroup(u64),
}

impl Filter {
    /// The filter of steady subscriber `index` (all kinds in turn).
    pub fn of_subscriber(index: usize) -> Self {
        let i = index as u64;
        match index % 5 {
            0 => Filter::Group(i % GROUPS),
            1 => Filter::Below(30 + i % 40),
            2 => Filter::Groups(i % GROUPS, (i + 1) % GROUPS),
            3 => Filter::GroupAndAtLeast(i % GROUPS, 20 + i % 50),
            _ => Filter::NotGroup(i % GROUPS),
        }
    }

    /// The Koncorde filter.
    pub fn to_json(self) -> Value {
        let group = |g: u64| format!("g{g}");
        match self {
            Filter::Group(g) => json!({ "equals": { "group": group(g) } }),
            Filter::Below(bound) => json!({ "range": { "n": { "lt": bound } } }),
            Filter::Groups(a, b) => json!({ "in": { "group": [group(a), group(b)] } }),
            Filter::GroupAndAtLeast(g, bound) => json!({
                "and": [
                    { "equals": { "group": group(g) } },
                    { "range": { "n": { "gte": bound } } },
                ]
            }),
            Filter::NotGroup(g) => json!({ "not": { "equals": { "group": group(g) } } }),
        }
    }

    /// Whether a message with these attributes matches.
    pub fn matches(self, attributes: Attributes) -> bool {
        let Attributes { group, n } = attributes;
        match self {
            Filter::Group(g) => group == g,
            Filter::Below(bound) => n < bound,
            Filter::Groups(a, b) => group == a || group == b,
            Filter::GroupAndAtLeast(g, bound) => group == g && n >= bound,
            Filter::NotGroup(g) => group != g,
        }
    }
}

/// A steady message of about `size` bytes: the marker, the attributes, padding.
pub fn steady_body(marker: Marker, size: usize) -> String {
    let Attributes { group, n } = attributes(marker.publisher, marker.seq);
    let head = format!(
        r#"{{"lg":"{}:{}:{}","group":"g{group}","n":{n},"pad":""#,
        marker.publisher, marker.seq, marker.sent_ns
    );
    let pad = size.saturating_sub(head.len() + 2);
    let mut body = String::with_capacity(head.len() + pad + 2);
    body.push_str(&head);
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str("\"}");
    body
}

/// The tag of churn client `id`'s messages and filter.
pub fn churn_tag(id: u64) -> String {
    format!("c{id}")
}

/// The filter of churn client `id`: its own messages only.
pub fn churn_filter(id: u64) -> Value {
    json!({ "equals": { "churn": churn_tag(id) } })
}

/// Message `seq` of churn client `id`.
pub fn churn_body(id: u64, seq: u64, sent_ns: u64) -> String {
    format!(r#"{{"lg":"{id}:{seq}:{sent_ns}","churn":"{}"}}"#, churn_tag(id))
}

/// `realtime:subscribe` to `collection` with `filter`.
pub fn subscribe(request_id: &str, collection: &str, filter: &Value) -> String {
    json!({
        "controller": "realtime",
        "action": "subscribe",
        "index": INDEX,
        "collection": collection,
        "body": filter,
        "requestId": request_id,
    })
    .to_string()
}

/// `realtime:publish` of `body` (a JSON object) to `collection`.
pub fn publish(request_id: &str, collection: &str, body: &str) -> String {
    format!(
        r#"{{"controller":"realtime","action":"publish","index":"{INDEX}","collection":"{collection}","requestId":"{request_id}","body":{body}}}"#
    )
}

/// `realtime:unsubscribe` from `room_id`.
pub fn unsubscribe(request_id: &str, room_id: &str) -> String {
    json!({
        "controller": "realtime",
        "action": "unsubscribe",
        "body": { "roomId": room_id },
        "requestId": request_id,
    })
    .to_string()
}

/// A request to a controller that does not exist (answered 404).
pub fn unknown_controller(request_id: &str) -> String {
    format!(r#"{{"controller":"soak-nowhere","action":"x","requestId":"{request_id}"}}"#)
}

/// The `status` of an answer (0 when missing).
pub fn status(answer: &Value) -> u64 {
    answer.get("status").and_then(Value::as_u64).unwrap_or(0)
}

/// `result.roomId` of a subscribe answer.
pub fn room_id(answer: &Value) -> Option<&str> {
    answer.get("result")?.get("roomId")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::payload;

    #[test]
    fn steady_bodies_are_json_with_marker_and_attributes() {
        let marker = Marker {
            publisher: 2,
            seq: 77,
            sent_ns: 123,
        };
        let body = steady_body(marker, 256);
        assert_eq!(body.len(), 256);
        let value: Value = serde_json::from_str(&body).expect("JSON");
        let attributes = attributes(2, 77);
        assert_eq!(value["group"], format!("g{}", attributes.group));
        assert_eq!(value["n"], attributes.n);
        assert_eq!(payload::find(body.as_bytes()), Some(marker));
        let request: Value = serde_json::from_str(&publish("r1", STEADY, &body)).expect("JSON");
        assert_eq!(request["body"], value);
    }

    #[test]
    fn churn_bodies_carry_their_marker() {
        let body = churn_body(CHURN_BASE + 5, 2, 99);
        let value: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(value["churn"], churn_tag(CHURN_BASE + 5));
        let marker = payload::find(body.as_bytes()).expect("marker");
        assert_eq!((marker.publisher, marker.seq), (CHURN_BASE + 5, 2));
    }

    #[test]
    fn filters_select_a_fair_share_and_serialize() {
        for index in 0..10 {
            let filter = Filter::of_subscriber(index);
            let matched = (0..4u64)
                .flat_map(|p| (0..1000u64).map(move |s| attributes(p, s)))
                .filter(|a| filter.matches(*a))
                .count();
            assert!(matched > 200 && matched < 3900, "{filter:?}: {matched}");
            assert!(filter.to_json().is_object());
        }
        assert!(Filter::GroupAndAtLeast(1, 20).matches(Attributes { group: 1, n: 20 }));
        assert!(!Filter::GroupAndAtLeast(1, 20).matches(Attributes { group: 1, n: 19 }));
        assert!(!Filter::NotGroup(3).matches(Attributes { group: 3, n: 0 }));
        assert!(Filter::Groups(3, 0).matches(Attributes { group: 0, n: 0 }));
    }

    #[test]
    fn requests_are_json() {
        for text in [
            subscribe("a", STEADY, &Filter::Below(3).to_json()),
            unsubscribe("b", "room"),
            unknown_controller("c"),
        ] {
            let value: Value = serde_json::from_str(&text).expect("JSON");
            assert!(value["requestId"].is_string());
        }
        assert!(serde_json::from_str::<Value>(INVALID_JSON).is_err());
        let answer: Value = serde_json::from_str(r#"{"status":200,"result":{"roomId":"r"}}"#).expect("JSON");
        assert_eq!((status(&answer), room_id(&answer)), (200, Some("r")));
    }
}
