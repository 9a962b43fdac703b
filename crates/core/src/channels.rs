//! The channel -> members map every protocol keeps, as Kuzzle's protocol plugins
//! do: `join_channel`/`leave_channel` maintain it, and a broadcast is one lookup
//! per channel and one call per member.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use crate::connection::ConnectionId;
use crate::protocol::ChannelName;

/// Members of each channel, with whatever the protocol needs to reach them
/// (`M`: typically an `Arc` of the connection's outgoing queue).
#[derive(Debug)]
pub struct ChannelMembers<M> {
    map: RwLock<HashMap<ChannelName, HashMap<ConnectionId, M>>>,
}

impl<M> Default for ChannelMembers<M> {
    fn default() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<M> ChannelMembers<M> {
    /// Adds the connection `id`, reached through `member`, to `channel`.
    pub fn join(&self, channel: &ChannelName, id: ConnectionId, member: M) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(channel.clone())
            .or_default()
            .insert(id, member);
    }

    /// Removes the connection from `channel`; the channel goes with its last member.
    pub fn leave(&self, channel: &ChannelName, id: ConnectionId) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(members) = map.get_mut(channel) {
            members.remove(&id);
            if members.is_empty() {
                map.remove(channel);
            }
        }
    }

    /// Calls `deliver` for each member of `channel`, under a read lock: it must
    /// not block, nor join or leave channels.
    pub fn for_each_member(&self, channel: &str, mut deliver: impl FnMut(ConnectionId, &M)) {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        for (id, member) in map.get(channel).into_iter().flatten() {
            deliver(*id, member);
        }
    }

    /// Whether `channel` has members.
    pub fn contains(&self, channel: &str) -> bool {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(channel)
    }

    /// Channels with at least one member.
    pub fn channel_count(&self) -> usize {
        self.map.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_deliver_leave() {
        let members = ChannelMembers::default();
        let channel: ChannelName = "room-311".into();
        let (a, b) = (ConnectionId::next(), ConnectionId::next());
        members.join(&channel, a, "a");
        members.join(&channel, b, "b");
        let mut seen = Vec::new();
        members.for_each_member(&channel, |id, name| seen.push((id, *name)));
        seen.sort();
        assert_eq!(seen, vec![(a, "a"), (b, "b")]);
        assert!(members.contains("room-311"));

        members.leave(&channel, a);
        let mut seen = Vec::new();
        members.for_each_member(&channel, |_, name| seen.push(*name));
        assert_eq!(seen, vec!["b"]);
        members.leave(&channel, b);
        assert!(!members.contains("room-311"));
        assert_eq!(members.channel_count(), 0);
        members.for_each_member("unknown", |_, _| panic!("no member"));
    }
}
