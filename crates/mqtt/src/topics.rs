//! Topics: names and filters as the MQTT specification defines them, what a
//! client may publish and subscribe to, and the small broker that serves
//! `allow_pub_sub`.
//!
//! Answers and notifications never go through [`PubSub`]: they are queued to
//! their recipients directly, so no subscription (`#` included) can reach
//! them.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use protoplex_core::ConnectionId;

use crate::client::{Client, Delivery, DeliveryQos};

/// Whether `topic` is a valid topic name: not empty, no wildcard, no NUL.
pub(crate) fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

/// Whether `filter` is a valid topic filter: not empty, no NUL, `+` alone in
/// its level, `#` alone in the last level.
pub(crate) fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && !(last && level == "#") {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

/// Whether a filter holds a wildcard.
pub(crate) fn has_wildcards(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Whether `topic` matches `filter` (both valid). Wildcards in the first
/// level do not match topics starting with `$`.
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        if level == "#" {
            // `a/#` matches `a` too.
            return true;
        }
        match topic_levels.next() {
            Some(_) if level == "+" => {}
            Some(name) if name == level => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// Why a PUBLISH or a subscription is refused: the MQTT 5 reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 0x87: the topic is reserved (`allow_pub_sub` off, response topic,
    /// request topic for subscriptions, channel topics, `$` topics).
    NotAuthorized,
    /// 0x90 / 0x8F: not a valid topic name or filter.
    InvalidTopic,
    /// 0xA2: wildcards while `allow_pub_sub` is off.
    WildcardsNotSupported,
    /// 0x9E: `$share/` filters.
    SharedNotSupported,
    /// 0x97: too many subscriptions on one connection.
    Quota,
}

/// Where a PUBLISH goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublishRoute {
    /// A request to execute.
    Request,
    /// A message for the subscribers of matching filters.
    PubSub,
    /// Refused.
    Refused(Refusal),
}

/// What a subscription becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscribeRoute {
    /// An exact topic: the response topic, a channel, or (with
    /// `allow_pub_sub`) any topic: its QoS is recorded for the notifications
    /// of that channel, and it joins [`PubSub`] when `pub_sub` is true.
    Exact {
        /// Whether it also receives pub/sub messages.
        pub_sub: bool,
    },
    /// A wildcard filter, for pub/sub messages only.
    Wildcard,
    /// Refused.
    Refused(Refusal),
}

/// What clients may publish and subscribe to.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    request_topic: String,
    response_topic: Arc<str>,
    allow_pub_sub: bool,
}

impl Rules {
    /// The rules for these topics.
    pub(crate) fn new(request_topic: &str, response_topic: &str, allow_pub_sub: bool) -> Self {
        Self {
            request_topic: request_topic.to_owned(),
            response_topic: response_topic.into(),
            allow_pub_sub,
        }
    }

    /// The default response topic.
    pub(crate) fn response_topic(&self) -> &Arc<str> {
        &self.response_topic
    }

    /// Where a PUBLISH on `topic` goes; `is_channel` tells whether a topic is a
    /// realtime channel, which only the server publishes to.
    pub(crate) fn publish(&self, topic: &str, is_channel: impl FnOnce(&str) -> bool) -> PublishRoute {
        if topic == self.request_topic {
            return PublishRoute::Request;
        }
        if !self.allow_pub_sub {
            return PublishRoute::Refused(Refusal::NotAuthorized);
        }
        if !valid_topic_name(topic) {
            return PublishRoute::Refused(Refusal::InvalidTopic);
        }
        if topic == &*self.response_topic || topic.starts_with('$') || is_channel(topic) {
            return PublishRoute::Refused(Refusal::NotAuthorized);
        }
        PublishRoute::PubSub
    }

    /// What a subscription to `filter` becomes.
    pub(crate) fn subscribe(&self, filter: &str) -> SubscribeRoute {
        if !valid_filter(filter) {
            return SubscribeRoute::Refused(Refusal::InvalidTopic);
        }
        if filter.starts_with("$share/") {
            return SubscribeRoute::Refused(Refusal::SharedNotSupported);
        }
        if filter == self.request_topic {
            return SubscribeRoute::Refused(Refusal::NotAuthorized);
        }
        if has_wildcards(filter) {
            return if self.allow_pub_sub {
                SubscribeRoute::Wildcard
            } else {
                SubscribeRoute::Refused(Refusal::WildcardsNotSupported)
            };
        }
        SubscribeRoute::Exact {
            pub_sub: self.allow_pub_sub && filter != &*self.response_topic,
        }
    }
}

/// One client's subscription to a filter.
#[derive(Debug, Clone)]
struct Subscriber {
    client: Arc<Client>,
    qos: u8,
    no_local: bool,
}

/// The `allow_pub_sub` broker: filters and their subscribers, exact filters
/// found by lookup, wildcard ones by a scan.
#[derive(Debug, Default)]
pub(crate) struct PubSub {
    exact: RwLock<HashMap<String, HashMap<ConnectionId, Subscriber>>>,
    wildcard: RwLock<HashMap<String, HashMap<ConnectionId, Subscriber>>>,
}

impl PubSub {
    fn table(&self, filter: &str) -> &RwLock<HashMap<String, HashMap<ConnectionId, Subscriber>>> {
        if has_wildcards(filter) {
            &self.wildcard
        } else {
            &self.exact
        }
    }

    /// Subscribes `client` to `filter` (replacing its previous subscription to it).
    pub(crate) fn subscribe(&self, filter: &str, client: Arc<Client>, qos: u8, no_local: bool) {
        self.table(filter)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(filter.to_owned())
            .or_default()
            .insert(
                client.id(),
                Subscriber {
                    client,
                    qos,
                    no_local,
                },
            );
    }

    /// Unsubscribes a connection from `filter`; true when it was subscribed.
    pub(crate) fn unsubscribe(&self, filter: &str, id: ConnectionId) -> bool {
        let mut table = self.table(filter).write().unwrap_or_else(PoisonError::into_inner);
        let Some(members) = table.get_mut(filter) else {
            return false;
        };
        let removed = members.remove(&id).is_some();
        if members.is_empty() {
            table.remove(filter);
        }
        removed
    }

    /// Delivers a message to the subscribers of filters matching `topic`: once
    /// per client, at the highest QoS of its matching subscriptions (capped
    /// by `qos` and by 1). Returns the number of recipients.
    pub(crate) fn publish(&self, topic: &str, payload: &Bytes, qos: u8, from: ConnectionId) -> usize {
        let mut recipients: HashMap<ConnectionId, (Arc<Client>, u8)> = HashMap::new();
        let mut collect = |subscriber: &Subscriber| {
            if subscriber.no_local && subscriber.client.id() == from {
                return;
            }
            let qos = subscriber.qos.min(qos).min(1);
            recipients
                .entry(subscriber.client.id())
                .and_modify(|(_, best)| *best = (*best).max(qos))
                .or_insert_with(|| (subscriber.client.clone(), qos));
        };
        if let Some(members) = self
            .exact
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
        {
            members.values().for_each(&mut collect);
        }
        for (filter, members) in self
            .wildcard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if matches(filter, topic) {
                members.values().for_each(&mut collect);
            }
        }
        if recipients.is_empty() {
            return 0;
        }
        let topic: Arc<str> = topic.into();
        let count = recipients.len();
        for (client, qos) in recipients.into_values() {
            client.deliver(Delivery {
                topic: topic.clone(),
                payload: payload.clone(),
                qos: if qos == 0 {
                    DeliveryQos::AtMostOnce
                } else {
                    DeliveryQos::AtLeastOnce
                },
                correlation: None,
            });
        }
        count
    }

    /// Number of filters with subscribers.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.exact.read().unwrap_or_else(PoisonError::into_inner).len()
            + self.wildcard.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::client::Outgoing;
    use crate::close::CloseSignal;

    #[test]
    fn filters_are_validated() {
        for valid in ["a", "a/b", "+", "#", "a/+/c", "a/#", "+/+", "/", "$SYS/#"] {
            assert!(valid_filter(valid), "{valid}");
        }
        for invalid in ["", "a#", "a/#/b", "a+", "a/b+/c", "##", "a\0"] {
            assert!(!valid_filter(invalid), "{invalid}");
        }
        assert!(valid_topic_name("a/b"));
        assert!(!valid_topic_name("a/+"));
        assert!(!valid_topic_name(""));
    }

    #[test]
    fn matching_follows_the_specification() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/b", "a/b", true),
            ("+", "/a", false),
            ("+/+", "/a", true),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("$SYS/+", "$SYS/x", true),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), expected, "{filter} ~ {topic}");
        }
    }

    #[test]
    fn rules_without_pub_sub() {
        let rules = Rules::new("Kuzzle/request", "Kuzzle/response", false);
        assert_eq!(rules.publish("Kuzzle/request", |_| false), PublishRoute::Request);
        assert_eq!(
            rules.publish("other", |_| false),
            PublishRoute::Refused(Refusal::NotAuthorized)
        );
        assert_eq!(
            rules.subscribe("Kuzzle/response"),
            SubscribeRoute::Exact { pub_sub: false }
        );
        assert_eq!(
            rules.subscribe("channel-abc"),
            SubscribeRoute::Exact { pub_sub: false }
        );
        assert_eq!(
            rules.subscribe("#"),
            SubscribeRoute::Refused(Refusal::WildcardsNotSupported)
        );
        assert_eq!(
            rules.subscribe("Kuzzle/request"),
            SubscribeRoute::Refused(Refusal::NotAuthorized)
        );
        assert_eq!(
            rules.subscribe("a/#/b"),
            SubscribeRoute::Refused(Refusal::InvalidTopic)
        );
    }

    #[test]
    fn rules_with_pub_sub() {
        let rules = Rules::new("Kuzzle/request", "Kuzzle/response", true);
        assert_eq!(rules.publish("a/b", |_| false), PublishRoute::PubSub);
        assert_eq!(
            rules.publish("Kuzzle/response", |_| false),
            PublishRoute::Refused(Refusal::NotAuthorized)
        );
        assert_eq!(
            rules.publish("room-abc", |topic| topic == "room-abc"),
            PublishRoute::Refused(Refusal::NotAuthorized)
        );
        assert_eq!(
            rules.publish("$SYS/x", |_| false),
            PublishRoute::Refused(Refusal::NotAuthorized)
        );
        assert_eq!(
            rules.publish("a/+", |_| false),
            PublishRoute::Refused(Refusal::InvalidTopic)
        );
        assert_eq!(rules.subscribe("#"), SubscribeRoute::Wildcard);
        assert_eq!(rules.subscribe("a/b"), SubscribeRoute::Exact { pub_sub: true });
        assert_eq!(
            rules.subscribe("Kuzzle/response"),
            SubscribeRoute::Exact { pub_sub: false }
        );
        assert_eq!(
            rules.subscribe("$share/g/a"),
            SubscribeRoute::Refused(Refusal::SharedNotSupported)
        );
    }

    fn client() -> (Arc<Client>, mpsc::Receiver<Outgoing>) {
        let (sender, receiver) = mpsc::channel(8);
        let signal = Arc::new(CloseSignal::new(Duration::from_secs(1)));
        (
            Arc::new(Client::new(ConnectionId::next(), "c".into(), sender, signal)),
            receiver,
        )
    }

    fn received(queue: &mut mpsc::Receiver<Outgoing>) -> Vec<(String, DeliveryQos)> {
        let mut out = Vec::new();
        while let Ok(Outgoing::Publish(delivery)) = queue.try_recv() {
            out.push((delivery.topic.to_string(), delivery.qos));
        }
        out
    }

    #[test]
    fn pub_sub_delivers_once_per_client_at_the_best_qos() {
        let pubsub = PubSub::default();
        let (a, mut queue_a) = client();
        let (b, mut queue_b) = client();
        pubsub.subscribe("x/y", a.clone(), 0, false);
        pubsub.subscribe("x/#", a.clone(), 1, false);
        pubsub.subscribe("+/y", b.clone(), 0, true);
        let payload = Bytes::from_static(b"hi");
        assert_eq!(pubsub.publish("x/y", &payload, 1, b.id()), 1);
        assert_eq!(
            received(&mut queue_a),
            vec![("x/y".into(), DeliveryQos::AtLeastOnce)]
        );
        // b's subscription is no-local.
        assert!(received(&mut queue_b).is_empty());
        assert_eq!(pubsub.publish("z/y", &payload, 0, a.id()), 1);
        assert_eq!(
            received(&mut queue_b),
            vec![("z/y".into(), DeliveryQos::AtMostOnce)]
        );
        assert!(pubsub.unsubscribe("x/#", a.id()));
        assert!(!pubsub.unsubscribe("x/#", a.id()));
        pubsub.unsubscribe("x/y", a.id());
        pubsub.unsubscribe("+/y", b.id());
        assert_eq!(pubsub.len(), 0);
        assert_eq!(pubsub.publish("x/y", &payload, 1, b.id()), 0);
    }
}
