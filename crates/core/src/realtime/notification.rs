//! Document and user notifications, serialized once per channel.
//!
//! A notification is serialized once without its `room` field; each channel's
//! payload is that JSON with `,"room":"<channel>"` spliced before the closing
//! brace: one copy per channel, none per recipient.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::protocol::{ChannelMessage, ChannelName};

/// A document notification (`type: "document"`), as caused by `realtime:publish`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentNotification<'a> {
    /// Always 200.
    pub status: u16,
    /// Always `document`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Controller of the request that caused it.
    pub controller: &'a str,
    /// Action of the request that caused it.
    pub action: &'a str,
    /// `publish`, `write` or `delete`.
    pub event: &'static str,
    /// `in` (the document enters the filter's scope) or `out`.
    pub scope: &'static str,
    /// Index of the document.
    pub index: &'a str,
    /// Collection of the document.
    pub collection: &'a str,
    /// Protocol of the connection that caused it.
    pub protocol: &'a str,
    /// When the request was received (ms since the epoch).
    pub timestamp: u64,
    /// Volatile data of the request.
    pub volatile: Option<&'a Map<String, Value>>,
    /// Node that produced it.
    pub node: &'a str,
    /// Id of the request that caused it.
    pub request_id: &'a str,
    /// The document.
    pub result: DocumentContent<'a>,
}

/// The `result` of a document notification.
#[derive(Debug, Serialize)]
pub struct DocumentContent<'a> {
    /// Document id (omitted when the publish had none, as Kuzzle does).
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// Document content.
    #[serde(rename = "_source")]
    pub source: &'a Value,
}

/// A user notification (`type: "user"`): a connection joined or left a room.
#[derive(Debug, Serialize)]
pub struct UserNotification<'a> {
    /// Always 200.
    pub status: u16,
    /// Always `user`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `in` (joined) or `out` (left).
    pub user: &'static str,
    /// Always `realtime`.
    pub controller: &'static str,
    /// `subscribe`, `join` or `unsubscribe`.
    pub action: &'a str,
    /// Index of the room.
    pub index: &'a str,
    /// Collection of the room.
    pub collection: &'a str,
    /// Protocol of the connection that joined or left.
    pub protocol: &'a str,
    /// When it happened (ms since the epoch).
    pub timestamp: u64,
    /// Volatile data of the subscription.
    pub volatile: Option<&'a Map<String, Value>>,
    /// Node that produced it.
    pub node: &'a str,
    /// The room's subscriber count after the change.
    pub result: UserCount,
}

/// The `result` of a user notification.
#[derive(Debug, Serialize)]
pub struct UserCount {
    /// Subscribers of the room.
    pub count: usize,
}

/// Serializes `notification` once, then makes one payload per channel.
pub fn per_channel<T: Serialize>(notification: &T, channels: &[ChannelName]) -> Vec<ChannelMessage> {
    let base = match serde_json::to_vec(notification) {
        Ok(base) if base.last() == Some(&b'}') => base,
        Ok(_) | Err(_) => {
            tracing::error!("Notification serialization failed.");
            return Vec::new();
        }
    };
    let body = &base[..base.len() - 1];
    channels
        .iter()
        .map(|channel| {
            let mut payload = BytesMut::with_capacity(body.len() + channel.len() + 12);
            payload.put_slice(body);
            payload.put_slice(b",\"room\":");
            // Channel names are generated (hex and digits), but stay valid JSON whatever they hold.
            if serde_json::to_writer((&mut payload).writer(), &**channel).is_err() {
                payload.put_slice(b"null");
            }
            payload.put_u8(b'}');
            ChannelMessage {
                channel: channel.clone(),
                payload: payload.freeze(),
            }
        })
        .collect()
}

/// Serializes `notification` for one channel.
pub fn for_channel<T: Serialize>(notification: &T, channel: &ChannelName) -> Option<Bytes> {
    per_channel(notification, std::slice::from_ref(channel))
        .pop()
        .map(|message| message.payload)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_channel_gets_its_room() {
        let source = json!({"a": 1});
        let notification = DocumentNotification {
            status: 200,
            kind: "document",
            controller: "realtime",
            action: "publish",
            event: "publish",
            scope: "in",
            index: "i",
            collection: "c",
            protocol: "websocket",
            timestamp: 7,
            volatile: None,
            node: "n",
            request_id: "r",
            result: DocumentContent {
                id: Some("d"),
                source: &source,
            },
        };
        let channels: Vec<ChannelName> = vec!["room-311".into(), "room-112".into()];
        let messages = per_channel(&notification, &channels);
        assert_eq!(messages.len(), 2);
        for (message, channel) in messages.iter().zip(&channels) {
            let value: Value = serde_json::from_slice(&message.payload).expect("json");
            assert_eq!(value["room"], **channel);
            assert_eq!(value["result"], json!({"_id": "d", "_source": {"a": 1}}));
            assert_eq!(value["type"], "document");
            assert_eq!(value["requestId"], "r");
            assert_eq!(value["volatile"], Value::Null);
            assert_eq!(message.channel, *channel);
        }
    }

    #[test]
    fn user_notification_shape() {
        let notification = UserNotification {
            status: 200,
            kind: "user",
            user: "in",
            controller: "realtime",
            action: "subscribe",
            index: "i",
            collection: "c",
            protocol: "mqtt",
            timestamp: 1,
            volatile: None,
            node: "n",
            result: UserCount { count: 2 },
        };
        let payload = for_channel(&notification, &"x-111".into()).expect("payload");
        let value: Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(
            value,
            json!({"status":200,"type":"user","user":"in","controller":"realtime","action":"subscribe",
                   "index":"i","collection":"c","protocol":"mqtt","timestamp":1,"volatile":null,
                   "node":"n","result":{"count":2},"room":"x-111"})
        );
    }
}
