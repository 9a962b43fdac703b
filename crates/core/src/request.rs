//! A Kuzzle API request, parsed from the JSON object a client sends.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::error::ApiError;

/// A request to the Kuzzle API.
///
/// Built from a JSON object by [`Request::from_slice`] or [`Request::from_value`]:
/// the known keys fill the fields, every other key is kept in [`Request::args`]
/// as an action argument (`scope`, `users`, query-string keys over HTTP...).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Controller name (`realtime`, `server`, or a custom controller).
    pub controller: String,
    /// Action name within the controller.
    pub action: String,
    /// Client-chosen id echoed in the response; generated when absent.
    pub request_id: String,
    /// `index` resource argument.
    pub index: Option<String>,
    /// `collection` resource argument.
    pub collection: Option<String>,
    /// `_id` resource argument.
    pub id: Option<String>,
    /// The action's payload: a JSON object when present.
    pub body: Option<Value>,
    /// Volatile data, copied into the response and every notification the request causes.
    pub volatile: Option<Map<String, Value>>,
    /// Authentication token (accepted, not checked yet).
    pub jwt: Option<String>,
    /// Every other key of the request object.
    pub args: Map<String, Value>,
    /// When the request was received, in milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// What a client should still get back from a request that could not be parsed:
/// the identifying fields that were readable, to echo in the error response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestEcho {
    /// The requestId, when the payload had a string one.
    pub request_id: Option<String>,
    /// The controller, when readable.
    pub controller: Option<String>,
    /// The action, when readable.
    pub action: Option<String>,
    /// The volatile object, when readable.
    pub volatile: Option<Map<String, Value>>,
}

/// A request that was refused before it could be executed.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRequest {
    /// What could be read of the request.
    pub echo: Box<RequestEcho>,
    /// Why it was refused.
    pub error: ApiError,
}

impl RejectedRequest {
    fn new(echo: &RequestEcho, error: ApiError) -> Self {
        Self {
            echo: Box::new(echo.clone()),
            error,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

/// A new random request id (UUID v4).
pub fn generate_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Request {
    /// A request for `controller:action`, with a generated requestId and nothing else.
    pub fn new(controller: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            controller: controller.into(),
            action: action.into(),
            request_id: generate_request_id(),
            index: None,
            collection: None,
            id: None,
            body: None,
            volatile: None,
            jwt: None,
            args: Map::new(),
            timestamp: now_millis(),
        }
    }

    /// Parses a request from raw JSON bytes.
    pub fn from_slice(payload: &[u8]) -> Result<Self, RejectedRequest> {
        match serde_json::from_slice::<Value>(payload) {
            Ok(value) => Self::from_value(value),
            Err(error) => Err(RejectedRequest::new(
                &RequestEcho::default(),
                ApiError::invalid_argument("payload", format!("a JSON object ({error})")),
            )),
        }
    }

    /// Builds a request from a parsed JSON value, which must be an object.
    pub fn from_value(value: Value) -> Result<Self, RejectedRequest> {
        let Value::Object(object) = value else {
            return Err(RejectedRequest::new(
                &RequestEcho::default(),
                ApiError::invalid_argument("payload", "a JSON object"),
            ));
        };
        Self::from_object(object)
    }

    /// Builds a request from a JSON object.
    pub fn from_object(mut object: Map<String, Value>) -> Result<Self, RejectedRequest> {
        let mut echo = RequestEcho::default();
        // Read the identifying fields first, so that any later error still
        // reaches the client under its requestId.
        let request_id = take_string(&mut object, "requestId").map_err(|e| RejectedRequest::new(&echo, e))?;
        echo.request_id.clone_from(&request_id);
        echo.controller = object
            .get("controller")
            .and_then(Value::as_str)
            .map(str::to_owned);
        echo.action = object.get("action").and_then(Value::as_str).map(str::to_owned);
        let volatile = take_object(&mut object, "volatile").map_err(|e| RejectedRequest::new(&echo, e))?;
        echo.volatile.clone_from(&volatile);

        let fail = |error| RejectedRequest::new(&echo, error);
        let controller = take_string(&mut object, "controller")
            .map_err(fail)?
            .filter(|c| !c.is_empty())
            .ok_or_else(|| fail(ApiError::MissingArgument("controller".into())))?;
        let action = take_string(&mut object, "action")
            .map_err(fail)?
            .filter(|a| !a.is_empty())
            .ok_or_else(|| fail(ApiError::MissingArgument("action".into())))?;
        let index = take_string(&mut object, "index").map_err(fail)?;
        let collection = take_string(&mut object, "collection").map_err(fail)?;
        let id = take_string(&mut object, "_id").map_err(fail)?;
        let jwt = take_string(&mut object, "jwt").map_err(fail)?;
        let body = take_object(&mut object, "body").map_err(fail)?.map(Value::Object);

        Ok(Self {
            controller,
            action,
            request_id: request_id.unwrap_or_else(generate_request_id),
            index,
            collection,
            id,
            body,
            volatile,
            jwt,
            args: object,
            timestamp: now_millis(),
        })
    }

    /// What to echo in a response to this request.
    pub fn echo(&self) -> RequestEcho {
        RequestEcho {
            request_id: Some(self.request_id.clone()),
            controller: Some(self.controller.clone()),
            action: Some(self.action.clone()),
            volatile: self.volatile.clone(),
        }
    }

    /// The `index` argument, or a missing-argument error.
    pub fn require_index(&self) -> Result<&str, ApiError> {
        require(self.index.as_deref(), "index")
    }

    /// The `collection` argument, or a missing-argument error.
    pub fn require_collection(&self) -> Result<&str, ApiError> {
        require(self.collection.as_deref(), "collection")
    }

    /// The body, or a body-required error.
    pub fn require_body(&self) -> Result<&Map<String, Value>, ApiError> {
        match &self.body {
            None | Some(Value::Null) => Err(ApiError::BodyRequired),
            Some(Value::Object(body)) => Ok(body),
            Some(_) => Err(ApiError::InvalidType {
                argument: "body".into(),
                expected: "object",
            }),
        }
    }

    /// A string field of the body (`body.roomId`...), or the matching error.
    pub fn require_body_string(&self, field: &str) -> Result<&str, ApiError> {
        let argument = || format!("body.{field}");
        match self.require_body()?.get(field) {
            None | Some(Value::Null) => Err(ApiError::MissingArgument(argument())),
            Some(Value::String(s)) if s.is_empty() => Err(ApiError::MissingArgument(argument())),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(ApiError::InvalidType {
                argument: argument(),
                expected: "string",
            }),
        }
    }

    /// A string action argument (`scope`, `users`...), `None` when absent or null.
    pub fn string_arg(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.args.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::InvalidType {
                argument: name.to_owned(),
                expected: "string",
            }),
        }
    }
}

fn require<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::MissingArgument(name.to_owned()))
}

/// Removes `key` from `object`: a string, or `None` when absent or null.
fn take_string(object: &mut Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        // Kuzzle accepts numeric ids and coerces them to strings.
        Some(Value::Number(n)) if key == "_id" || key == "requestId" => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::InvalidType {
            argument: key.to_owned(),
            expected: "string",
        }),
    }
}

/// Removes `key` from `object`: an object, or `None` when absent or null.
fn take_object(object: &mut Map<String, Value>, key: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(ApiError::InvalidType {
            argument: key.to_owned(),
            expected: "object",
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn known_keys_fill_fields_and_others_become_args() {
        let request = Request::from_slice(
            br#"{"controller":"realtime","action":"subscribe","requestId":"r1","index":"i",
                "collection":"c","_id":"d","body":{"equals":{"a":1}},"volatile":{"v":true},
                "jwt":"t","scope":"in","users":"all"}"#,
        )
        .expect("valid request");
        assert_eq!(request.controller, "realtime");
        assert_eq!(request.action, "subscribe");
        assert_eq!(request.request_id, "r1");
        assert_eq!(request.index.as_deref(), Some("i"));
        assert_eq!(request.collection.as_deref(), Some("c"));
        assert_eq!(request.id.as_deref(), Some("d"));
        assert_eq!(request.jwt.as_deref(), Some("t"));
        assert_eq!(request.body, Some(json!({"equals":{"a":1}})));
        assert_eq!(request.volatile, json!({"v":true}).as_object().cloned());
        assert_eq!(request.args.len(), 2);
        assert_eq!(request.string_arg("scope"), Ok(Some("in")));
    }

    #[test]
    fn request_id_is_generated_when_absent() {
        let a = Request::from_slice(br#"{"controller":"server","action":"now"}"#).expect("valid");
        let b = Request::from_slice(br#"{"controller":"server","action":"now"}"#).expect("valid");
        assert_eq!(a.request_id.len(), 36);
        assert_ne!(a.request_id, b.request_id);
    }

    #[test]
    fn invalid_json_and_non_objects_are_invalid_arguments() {
        for payload in [&b"{not json"[..], b"[1,2]", b"\"str\"", b"42", b"", b"\xff\xfe"] {
            let rejected = Request::from_slice(payload).expect_err("must be refused");
            assert_eq!(rejected.error.to_kuzzle().id, "api.assert.invalid_argument");
            assert_eq!(rejected.error.status(), 400);
        }
    }

    #[test]
    fn errors_echo_the_request_id() {
        let rejected =
            Request::from_slice(br#"{"requestId":"abc","action":"now"}"#).expect_err("no controller");
        assert_eq!(rejected.error, ApiError::MissingArgument("controller".into()));
        assert_eq!(rejected.echo.request_id.as_deref(), Some("abc"));
        assert_eq!(rejected.echo.action.as_deref(), Some("now"));

        let rejected = Request::from_slice(br#"{"requestId":"x","controller":"a","action":"b","body":[1]}"#)
            .expect_err("bad body");
        assert_eq!(rejected.error.to_kuzzle().id, "api.assert.invalid_type");
        assert_eq!(rejected.echo.request_id.as_deref(), Some("x"));
    }

    #[test]
    fn wrong_types_are_refused() {
        for payload in [
            &br#"{"controller":1,"action":"b"}"#[..],
            br#"{"controller":"a","action":"b","index":{}}"#,
            br#"{"controller":"a","action":"b","volatile":"v"}"#,
        ] {
            let rejected = Request::from_slice(payload).expect_err("must be refused");
            assert_eq!(rejected.error.to_kuzzle().id, "api.assert.invalid_type");
        }
    }

    #[test]
    fn body_string_fields_are_checked() {
        let mut request = Request::new("realtime", "count");
        assert_eq!(request.require_body_string("roomId"), Err(ApiError::BodyRequired));
        request.body = Some(json!({"roomId": 3}));
        assert!(matches!(
            request.require_body_string("roomId"),
            Err(ApiError::InvalidType { .. })
        ));
        request.body = Some(json!({"roomId": "r"}));
        assert_eq!(request.require_body_string("roomId"), Ok("r"));
    }
}
