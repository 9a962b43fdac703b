//! The channel -> members map kept by `join_channel` / `leave_channel`, as
//! Kuzzle's protocols keep theirs: a broadcast is one lookup per channel and one
//! queue push per member.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use protoplex_core::{ChannelName, ConnectionId};

use crate::client::Client;

type Members = HashMap<ConnectionId, Arc<Client>>;

/// Members of each channel.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    map: RwLock<HashMap<ChannelName, Members>>,
}

impl Channels {
    /// Adds `client` to `channel`.
    pub(crate) fn join(&self, channel: &ChannelName, id: ConnectionId, client: Arc<Client>) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(channel.clone())
            .or_default()
            .insert(id, client);
    }

    /// Removes a connection from `channel`; the channel goes with its last member.
    pub(crate) fn leave(&self, channel: &ChannelName, id: ConnectionId) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(members) = map.get_mut(channel) {
            members.remove(&id);
            if members.is_empty() {
                map.remove(channel);
            }
        }
    }

    /// Calls `deliver` for each member of `channel`. It must not block.
    pub(crate) fn for_each_member(&self, channel: &ChannelName, mut deliver: impl FnMut(&Client)) {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        for client in map.get(channel).into_iter().flat_map(HashMap::values) {
            deliver(client);
        }
    }

    /// Number of channels with at least one member.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;
    use crate::close::CloseSignal;

    fn client(id: ConnectionId) -> (Arc<Client>, mpsc::Receiver<Message>) {
        let (sender, receiver) = mpsc::channel(4);
        let signal = Arc::new(CloseSignal::new(Duration::from_secs(1)));
        (Arc::new(Client::new(id, sender, signal)), receiver)
    }

    #[test]
    fn join_deliver_leave() {
        let channels = Channels::default();
        let channel: ChannelName = "room-abc".into();
        let (a, b) = (ConnectionId::next(), ConnectionId::next());
        let (client_a, mut queue_a) = client(a);
        let (client_b, mut queue_b) = client(b);
        channels.join(&channel, a, client_a);
        channels.join(&channel, b, client_b);
        channels.for_each_member(&channel, |client| client.send(Message::text("hi")));
        assert_eq!(queue_a.try_recv().ok(), Some(Message::text("hi")));
        assert_eq!(queue_b.try_recv().ok(), Some(Message::text("hi")));
        channels.leave(&channel, a);
        channels.for_each_member(&channel, |client| client.send(Message::text("again")));
        assert!(queue_a.try_recv().is_err());
        assert_eq!(queue_b.try_recv().ok(), Some(Message::text("again")));
        channels.leave(&channel, b);
        assert_eq!(channels.len(), 0);
        // Unknown channels and members are ignored.
        channels.leave(&channel, b);
        channels.for_each_member(&"nope".into(), |_| panic!("no member"));
    }
}
