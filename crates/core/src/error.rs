//! Errors of the Kuzzle API, and the one place where they become Kuzzle error
//! objects (`{message, status, id, code}`).

use serde::Serialize;

use crate::filter::FilterError;

/// Everything a request can fail with, typed where it is made.
///
/// [`ApiError::to_kuzzle`] turns each variant into the Kuzzle error object with
/// its id (`domain.subdomain.error`), HTTP status and numeric code, as Kuzzle v2's
/// `kerror` does.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// The payload is not a JSON object, or an argument has a value that is not accepted.
    #[error("Invalid argument \"{argument}\". Expected: {expected}")]
    InvalidArgument {
        /// The faulty argument.
        argument: String,
        /// What was expected instead.
        expected: String,
    },
    /// An argument has the wrong JSON type.
    #[error("Wrong type for argument \"{argument}\" (expected: {expected})")]
    InvalidType {
        /// The faulty argument.
        argument: String,
        /// The expected type.
        expected: &'static str,
    },
    /// A required argument is missing.
    #[error("Missing argument \"{0}\".")]
    MissingArgument(String),
    /// The action needs a body and got none.
    #[error("The request must specify a body.")]
    BodyRequired,
    /// A realtime filter is not valid Koncorde (the message names the faulty part).
    #[error("{0}")]
    InvalidFilter(String),
    /// No controller of that name.
    #[error("API controller \"{0}\" not found.")]
    ControllerNotFound(String),
    /// The controller has no action of that name.
    #[error("API action \"{controller}\":\"{action}\" not found")]
    ActionNotFound {
        /// The controller asked for.
        controller: String,
        /// The action asked for.
        action: String,
    },
    /// The request buffer is full.
    #[error("Request discarded: Kuzzle Server is temporarily overloaded.")]
    Overloaded,
    /// The server is shutting down and takes no new request.
    #[error("Rejected: this node is shutting down.")]
    ShuttingDown,
    /// The connection that sent the request is gone.
    #[error("Client connection dropped")]
    ConnectionDropped,
    /// A request larger than `limits.max_request_size`, received over a
    /// persistent connection (WebSocket, MQTT, AMQP, ...).
    #[error("Maximum request size exceeded.")]
    RequestTooLarge,
    /// An HTTP request body larger than `limits.max_request_size`.
    #[error("Maximum HTTP request size exceeded.")]
    HttpRequestTooLarge,
    /// No HTTP route for that verb and path.
    #[error("API URL not found: {0}.")]
    HttpUrlNotFound(String),
    /// An HTTP body that could not be decoded (bad compression, too many layers...).
    #[error("{0}")]
    HttpBadBody(String),
    /// The server, or the protocol, holds as many connections as it is allowed
    /// (`limits.max_connections`, or the protocol's `max_connections`).
    #[error("Connection refused: {0} reached its maximum number of connections.")]
    TooManyConnections(String),
    /// Too many requests from one client.
    #[error("Rejected: too many requests received from that client.")]
    TooManyRequests,
    /// The room does not exist.
    #[error("The room \"{0}\" doesn't exist")]
    RoomNotFound(String),
    /// The connection is not subscribed to that room.
    #[error("User \"{connection}\" has not subscribed to \"{room}\".")]
    NotSubscribed {
        /// The connection id.
        connection: String,
        /// The room id.
        room: String,
    },
    /// Bad `scope` value.
    #[error("Invalid value for the \"scope\" parameter (allowed: \"all\", \"in\", \"out\", \"none\").")]
    InvalidScope,
    /// Bad `users` value.
    #[error("Invalid value for the \"users\" parameter (allowed: \"all\", \"in\", \"out\", \"none\").")]
    InvalidUsers,
    /// `limits.subscription_rooms` reached.
    #[error("Unable to subscribe: maximum number of unique rooms reached.")]
    TooManyRooms,
    /// An error made by a custom controller, already in Kuzzle's terms.
    #[error("{message}")]
    Custom {
        /// HTTP status.
        status: u16,
        /// Kuzzle error id (`domain.subdomain.error`).
        id: String,
        /// Human-readable message.
        message: String,
        /// Numeric code (0 when the error has none).
        code: u32,
    },
    /// A bug or an unexpected failure.
    #[error("Caught an unexpected error: {0}.")]
    Internal(String),
}

impl From<FilterError> for ApiError {
    fn from(error: FilterError) -> Self {
        Self::InvalidFilter(error.to_string())
    }
}

/// A Kuzzle error object, as sent in a response's `error` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KuzzleError {
    /// Human-readable message.
    pub message: String,
    /// HTTP status code.
    pub status: u16,
    /// Kuzzle error id, `domain.subdomain.error`.
    pub id: String,
    /// Numeric code: `domain << 24 | subdomain << 16 | error`, as Kuzzle's kerror.
    pub code: u32,
}

/// Kuzzle's numeric error code from its three parts.
const fn code(domain: u32, subdomain: u32, error: u32) -> u32 {
    (domain << 24) | (subdomain << 16) | error
}

impl ApiError {
    /// A custom error for controllers written outside this crate.
    pub fn custom(status: u16, id: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Custom {
            status,
            id: id.into(),
            message: message.into(),
            code: 0,
        }
    }

    /// Shorthand for [`ApiError::InvalidArgument`].
    pub fn invalid_argument(argument: impl Into<String>, expected: impl Into<String>) -> Self {
        Self::InvalidArgument {
            argument: argument.into(),
            expected: expected.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        self.identity().1
    }

    /// (Kuzzle id, status, code) of each variant.
    fn identity(&self) -> (&str, u16, u32) {
        match self {
            Self::InvalidType { .. } => ("api.assert.invalid_type", 400, code(2, 1, 1)),
            Self::InvalidArgument { .. } => ("api.assert.invalid_argument", 400, code(2, 1, 2)),
            Self::MissingArgument(_) => ("api.assert.missing_argument", 400, code(2, 1, 3)),
            Self::BodyRequired => ("api.assert.body_required", 400, code(2, 1, 8)),
            Self::InvalidFilter(_) => ("api.assert.koncorde_dsl_error", 400, code(2, 1, 14)),
            Self::Overloaded => ("api.process.overloaded", 503, code(2, 2, 2)),
            Self::ConnectionDropped => ("api.process.connection_dropped", 400, code(2, 2, 3)),
            Self::ControllerNotFound(_) => ("api.process.controller_not_found", 404, code(2, 2, 4)),
            Self::ActionNotFound { .. } => ("api.process.action_not_found", 404, code(2, 2, 5)),
            Self::ShuttingDown => ("api.process.shutting_down", 503, code(2, 2, 7)),
            Self::TooManyRequests => ("api.process.too_many_requests", 429, code(2, 2, 8)),
            Self::HttpRequestTooLarge => ("network.http.request_too_large", 413, code(3, 1, 1)),
            Self::HttpUrlNotFound(_) => ("network.http.url_not_found", 404, code(3, 1, 7)),
            Self::HttpBadBody(_) => ("network.http.body_parse_failed", 400, code(3, 1, 12)),
            // Kuzzle has no generic "request too large" error outside HTTP: this id
            // is the contract's, numbered after Kuzzle's last entrypoint error.
            Self::RequestTooLarge => ("network.entrypoint.request_too_large", 413, code(3, 4, 4)),
            // Kuzzle has no connection cap: numbered after the error above.
            Self::TooManyConnections(_) => ("network.entrypoint.too_many_connections", 503, code(3, 4, 5)),
            Self::RoomNotFound(_) => ("core.realtime.room_not_found", 404, code(0, 1, 1)),
            Self::InvalidScope => ("core.realtime.invalid_scope", 400, code(0, 1, 4)),
            Self::InvalidUsers => ("core.realtime.invalid_users", 400, code(0, 1, 5)),
            Self::TooManyRooms => ("core.realtime.too_many_rooms", 413, code(0, 1, 7)),
            Self::NotSubscribed { .. } => ("core.realtime.not_subscribed", 412, code(0, 1, 8)),
            Self::Custom { status, id, code, .. } => (id.as_str(), *status, *code),
            Self::Internal(_) => ("core.fatal.unexpected_error", 500, code(0, 0, 1)),
        }
    }

    /// The Kuzzle error object sent to clients.
    pub fn to_kuzzle(&self) -> KuzzleError {
        let (id, status, code) = self.identity();
        KuzzleError {
            message: self.to_string(),
            status,
            id: id.to_owned(),
            code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_kuzzle_kerror_layout() {
        let overloaded = ApiError::Overloaded.to_kuzzle();
        assert_eq!(overloaded.id, "api.process.overloaded");
        assert_eq!(overloaded.status, 503);
        assert_eq!(overloaded.code, 0x0202_0002);

        let missing = ApiError::MissingArgument("index".into()).to_kuzzle();
        assert_eq!(missing.message, "Missing argument \"index\".");
        assert_eq!(missing.code, 0x0201_0003);
        assert_eq!(ApiError::RoomNotFound("x".into()).to_kuzzle().code, 0x0001_0001);
    }

    #[test]
    fn custom_errors_keep_their_identity() {
        let error = ApiError::custom(418, "plugin.tea.teapot", "I am a teapot").to_kuzzle();
        assert_eq!(error.status, 418);
        assert_eq!(error.id, "plugin.tea.teapot");
        assert_eq!(error.message, "I am a teapot");
    }
}
