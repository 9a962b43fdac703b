//! The realtime state: rooms (one per normalized filter), their channels, and each
//! connection's subscriptions, kept consistent under one lock.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{Map, Value};

use super::channel::{Scope, Users, channel_name};
use crate::connection::ConnectionId;
use crate::error::ApiError;
use crate::filter::{FilterEngine, FilterId, NormalizedFilter};
use crate::protocol::{ChannelName, Protocol};

/// A connection as the realtime engine knows it: its id and the index of its
/// protocol in the router's protocol list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscriber {
    pub(crate) id: ConnectionId,
    pub(crate) protocol: usize,
}

/// Where a notification goes: channel names, and a bit per protocol that has at
/// least one member on one of them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Targets {
    pub(crate) channels: Vec<ChannelName>,
    pub(crate) protocols: u64,
}

/// A user joined or left a room: who to tell, and what.
#[derive(Debug)]
pub(crate) struct UserEvent {
    pub(crate) joining: bool,
    pub(crate) index: Arc<str>,
    pub(crate) collection: Arc<str>,
    pub(crate) count: usize,
    pub(crate) volatile: Option<Map<String, Value>>,
    pub(crate) targets: Targets,
}

/// A subscription made: the room and the channel of the subscriber.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) room_id: FilterId,
    pub(crate) channel: ChannelName,
    pub(crate) event: Option<UserEvent>,
}

struct ChannelEntry {
    name: ChannelName,
    scope: Scope,
    users: Users,
    /// Members per protocol index.
    members: Vec<u32>,
}

impl ChannelEntry {
    fn protocol_mask(&self) -> u64 {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .fold(0, |mask, (index, _)| mask | (1 << index))
    }
}

struct Room {
    index: Arc<str>,
    collection: Arc<str>,
    channels: Vec<ChannelEntry>,
    subscribers: usize,
}

impl Room {
    fn targets(&self, accepts: impl Fn(&ChannelEntry) -> bool, into: &mut Targets) {
        for channel in self.channels.iter().filter(|c| accepts(c)) {
            let mask = channel.protocol_mask();
            if mask != 0 {
                into.channels.push(channel.name.clone());
                into.protocols |= mask;
            }
        }
    }

    fn user_event(&self, joining: bool, volatile: Option<Map<String, Value>>) -> UserEvent {
        let mut targets = Targets::default();
        self.targets(|c| c.users.accepts(joining), &mut targets);
        UserEvent {
            joining,
            index: self.index.clone(),
            collection: self.collection.clone(),
            count: self.subscribers,
            volatile,
            targets,
        }
    }
}

struct Subscription {
    volatile: Option<Map<String, Value>>,
    channels: Vec<ChannelName>,
}

struct State {
    filters: FilterEngine,
    rooms: HashMap<FilterId, Room>,
    subscriptions: HashMap<ConnectionId, HashMap<FilterId, Subscription>>,
}

/// Rooms, channels and subscriptions; calls `join_channel`/`leave_channel` on the
/// protocols as subscriptions come and go, while its lock is held, so that the
/// calls about one connection reach its protocol in order.
pub(crate) struct Rooms {
    state: RwLock<State>,
    /// An engine holding no filter, to normalize outside the lock: a costly
    /// filter (a large normal form) then delays no other subscription.
    normalizer: FilterEngine,
    protocol_count: usize,
    max_rooms: usize,
}

impl Rooms {
    pub(crate) fn new(max_conditions: usize, max_rooms: usize, protocol_count: usize) -> Self {
        Self {
            state: RwLock::new(State {
                filters: FilterEngine::new(max_conditions),
                rooms: HashMap::new(),
                subscriptions: HashMap::new(),
            }),
            normalizer: FilterEngine::new(max_conditions),
            protocol_count,
            max_rooms,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Validates and normalizes a filter.
    pub(crate) fn normalize(
        &self,
        index: &str,
        collection: &str,
        filter: &Value,
    ) -> Result<NormalizedFilter, ApiError> {
        Ok(self.normalizer.normalize(index, collection, filter)?)
    }

    /// Subscribes `subscriber` to the room of `filter`, creating it when needed.
    ///
    /// `alive` tells, under the lock, whether the connection still exists: a
    /// connection removed while its subscribe request ran gets no subscription
    /// (its removal, which takes this lock after forgetting the connection,
    /// then finds nothing to leave behind).
    pub(crate) fn subscribe(
        &self,
        protocols: &[Arc<dyn Protocol>],
        subscriber: Subscriber,
        alive: impl Fn() -> bool,
        filter: NormalizedFilter,
        options: (Scope, Users),
        volatile: Option<Map<String, Value>>,
    ) -> Result<Joined, ApiError> {
        let mut state = self.write();
        if !alive() {
            return Err(ApiError::ConnectionDropped);
        }
        let room_id = filter.id().clone();
        if !state.rooms.contains_key(&room_id) {
            if self.max_rooms > 0 && state.rooms.len() >= self.max_rooms {
                return Err(ApiError::TooManyRooms);
            }
            let room = Room {
                index: filter.index().into(),
                collection: filter.collection().into(),
                channels: Vec::new(),
                subscribers: 0,
            };
            state.filters.store(filter);
            state.rooms.insert(room_id.clone(), room);
        }
        Ok(self.enter_room(&mut state, protocols, subscriber, room_id, options, volatile))
    }

    /// Subscribes `subscriber` to an existing room (`alive`: see [`Rooms::subscribe`]).
    pub(crate) fn join(
        &self,
        protocols: &[Arc<dyn Protocol>],
        subscriber: Subscriber,
        alive: impl Fn() -> bool,
        room_id: &str,
        options: (Scope, Users),
        volatile: Option<Map<String, Value>>,
    ) -> Result<Joined, ApiError> {
        let mut state = self.write();
        if !alive() {
            return Err(ApiError::ConnectionDropped);
        }
        let Some((room_id, _)) = state.rooms.get_key_value(room_id) else {
            return Err(ApiError::RoomNotFound(room_id.to_owned()));
        };
        let room_id = room_id.clone();
        Ok(self.enter_room(&mut state, protocols, subscriber, room_id, options, volatile))
    }

    fn enter_room(
        &self,
        state: &mut State,
        protocols: &[Arc<dyn Protocol>],
        subscriber: Subscriber,
        room_id: FilterId,
        (scope, users): (Scope, Users),
        volatile: Option<Map<String, Value>>,
    ) -> Joined {
        let State {
            rooms, subscriptions, ..
        } = state;
        let Some(room) = rooms.get_mut(&room_id) else {
            unreachable!("enter_room is called with an existing room");
        };
        let name = channel_name(&room_id, scope, users);
        let position = match room.channels.iter().position(|c| *c.name == name) {
            Some(position) => position,
            None => {
                room.channels.push(ChannelEntry {
                    name: name.into(),
                    scope,
                    users,
                    members: vec![0; self.protocol_count],
                });
                room.channels.len() - 1
            }
        };
        let channel = &mut room.channels[position];
        let channel_name = channel.name.clone();

        let rooms_of_connection = subscriptions.entry(subscriber.id).or_default();
        let (subscription, new_subscriber) = match rooms_of_connection.entry(room_id.clone()) {
            Entry::Occupied(entry) => (entry.into_mut(), false),
            Entry::Vacant(entry) => (
                entry.insert(Subscription {
                    volatile: volatile.clone(),
                    channels: Vec::new(),
                }),
                true,
            ),
        };
        if !subscription.channels.contains(&channel_name) {
            subscription.channels.push(channel_name.clone());
            if let Some(count) = channel.members.get_mut(subscriber.protocol) {
                *count += 1;
            }
            if let Some(protocol) = protocols.get(subscriber.protocol) {
                protocol.join_channel(&channel_name, subscriber.id);
            }
        }
        let event = new_subscriber.then(|| {
            room.subscribers += 1;
            room.user_event(true, volatile)
        });
        Joined {
            room_id,
            channel: channel_name,
            event,
        }
    }

    /// Removes the subscription of `subscriber` to `room_id`.
    pub(crate) fn unsubscribe(
        &self,
        protocols: &[Arc<dyn Protocol>],
        subscriber: Subscriber,
        room_id: &str,
    ) -> Result<Option<UserEvent>, ApiError> {
        let mut state = self.write();
        let subscription = state
            .subscriptions
            .get_mut(&subscriber.id)
            .and_then(|rooms| rooms.remove(room_id))
            .ok_or_else(|| ApiError::NotSubscribed {
                connection: subscriber.id.to_string(),
                room: room_id.to_owned(),
            })?;
        if state
            .subscriptions
            .get(&subscriber.id)
            .is_some_and(HashMap::is_empty)
        {
            state.subscriptions.remove(&subscriber.id);
        }
        Ok(leave_room(
            &mut state,
            protocols,
            subscriber,
            room_id,
            subscription,
        ))
    }

    /// Removes every subscription of a connection.
    pub(crate) fn remove_connection(
        &self,
        protocols: &[Arc<dyn Protocol>],
        subscriber: Subscriber,
    ) -> Vec<UserEvent> {
        let mut state = self.write();
        let Some(subscriptions) = state.subscriptions.remove(&subscriber.id) else {
            return Vec::new();
        };
        subscriptions
            .into_iter()
            .filter_map(|(room_id, subscription)| {
                leave_room(&mut state, protocols, subscriber, &room_id, subscription)
            })
            .collect()
    }

    /// Subscribers of a room.
    pub(crate) fn count(&self, room_id: &str) -> Result<usize, ApiError> {
        self.read()
            .rooms
            .get(room_id)
            .map(|room| room.subscribers)
            .ok_or_else(|| ApiError::RoomNotFound(room_id.to_owned()))
    }

    /// `{index: {collection: {roomId: count}}}` for every room.
    pub(crate) fn list(&self) -> Value {
        let state = self.read();
        let mut list = Map::new();
        for (room_id, room) in &state.rooms {
            let collections = list
                .entry(room.index.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(collections) = collections {
                let rooms = collections
                    .entry(room.collection.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(rooms) = rooms {
                    rooms.insert(room_id.to_string(), Value::from(room.subscribers));
                }
            }
        }
        Value::Object(list)
    }

    /// The channels that get a document entering (`entering`) or leaving the
    /// scope of the filters it matches.
    pub(crate) fn document_targets(
        &self,
        index: &str,
        collection: &str,
        document: &Value,
        id: Option<&str>,
        entering: bool,
    ) -> Targets {
        let state = self.read();
        let mut targets = Targets::default();
        for room_id in state.filters.test(index, collection, document, id) {
            if let Some(room) = state.rooms.get(&room_id) {
                room.targets(|c| c.scope.accepts(entering), &mut targets);
            }
        }
        targets
    }

    /// Rooms and connections with subscriptions (for tests and metrics).
    pub(crate) fn sizes(&self) -> (usize, usize) {
        let state = self.read();
        (state.rooms.len(), state.subscriptions.len())
    }
}

/// Takes a subscription out of its room: leaves its channels, drops the room when
/// it was the last subscriber, and returns the `out` notice for the others.
fn leave_room(
    state: &mut State,
    protocols: &[Arc<dyn Protocol>],
    subscriber: Subscriber,
    room_id: &str,
    subscription: Subscription,
) -> Option<UserEvent> {
    let room = state.rooms.get_mut(room_id)?;
    for name in &subscription.channels {
        if let Some(protocol) = protocols.get(subscriber.protocol) {
            protocol.leave_channel(name, subscriber.id);
        }
        if let Some(channel) = room.channels.iter_mut().find(|c| c.name == *name)
            && let Some(count) = channel.members.get_mut(subscriber.protocol)
        {
            *count = count.saturating_sub(1);
        }
    }
    room.channels.retain(|c| c.members.iter().any(|count| *count > 0));
    room.subscribers = room.subscribers.saturating_sub(1);
    if room.subscribers == 0 {
        state.rooms.remove(room_id);
        state.filters.remove(room_id);
        return None;
    }
    Some(room.user_event(false, subscription.volatile))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_connection_removed_during_its_subscribe_gets_no_subscription() {
        let rooms = Rooms::new(100, 0, 1);
        let subscriber = Subscriber {
            id: ConnectionId::next(),
            protocol: 0,
        };
        let filter = rooms.normalize("i", "c", &json!({})).expect("filter");
        let refused = rooms.subscribe(&[], subscriber, || false, filter, (Scope::All, Users::None), None);
        assert_eq!(refused.err(), Some(ApiError::ConnectionDropped));
        assert_eq!(rooms.sizes(), (0, 0));

        let filter = rooms.normalize("i", "c", &json!({})).expect("filter");
        let joined = rooms
            .subscribe(&[], subscriber, || true, filter, (Scope::All, Users::None), None)
            .expect("subscribed");
        assert_eq!(rooms.sizes(), (1, 1));
        let other = Subscriber {
            id: ConnectionId::next(),
            protocol: 0,
        };
        let refused = rooms.join(
            &[],
            other,
            || false,
            &joined.room_id,
            (Scope::All, Users::None),
            None,
        );
        assert_eq!(refused.err(), Some(ApiError::ConnectionDropped));
        assert_eq!(rooms.count(&joined.room_id), Ok(1));
    }
}
