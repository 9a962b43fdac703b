//! The embedded realtime engine: rooms, channels, subscriptions and notifications.

pub mod channel;
pub mod notification;
pub(crate) mod rooms;
