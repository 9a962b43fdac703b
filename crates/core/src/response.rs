//! A Kuzzle API response and its JSON form.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, KuzzleError};
use crate::request::{Request, RequestEcho};

/// The answer to one request:
/// `{requestId, status, error, controller, action, index, collection, volatile, result, node}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The request's id.
    pub request_id: String,
    /// HTTP status code, in every protocol.
    pub status: u16,
    /// `null` on success.
    pub error: Option<KuzzleError>,
    /// The request's controller.
    pub controller: Option<String>,
    /// The request's action.
    pub action: Option<String>,
    /// The request's index.
    pub index: Option<String>,
    /// The request's collection.
    pub collection: Option<String>,
    /// The request's volatile data.
    pub volatile: Option<Map<String, Value>>,
    /// The action's result (`null` on error).
    pub result: Value,
    /// The id of the node that answered.
    pub node: String,
}

/// The response's JSON with an added `room` key (WebSocket answers carry `room` = requestId).
#[derive(Serialize)]
struct WithRoom<'a> {
    #[serde(flatten)]
    response: &'a Response,
    room: &'a str,
}

impl Response {
    /// A successful response to `request`.
    pub fn success(request: &Request, result: Value, node: &str) -> Self {
        Self {
            request_id: request.request_id.clone(),
            status: 200,
            error: None,
            controller: Some(request.controller.clone()),
            action: Some(request.action.clone()),
            index: request.index.clone(),
            collection: request.collection.clone(),
            volatile: request.volatile.clone(),
            result,
            node: node.to_owned(),
        }
    }

    /// An error response to `request`.
    pub fn failure(request: &Request, error: &ApiError, node: &str) -> Self {
        let mut response = Self::rejected(&request.echo(), error, node);
        response.index.clone_from(&request.index);
        response.collection.clone_from(&request.collection);
        response
    }

    /// An error response to a request that could not be parsed whole.
    pub fn rejected(echo: &RequestEcho, error: &ApiError, node: &str) -> Self {
        let error = error.to_kuzzle();
        Self {
            request_id: echo.request_id.clone().unwrap_or_default(),
            status: error.status,
            error: Some(error),
            controller: echo.controller.clone(),
            action: echo.action.clone(),
            index: None,
            collection: None,
            volatile: echo.volatile.clone(),
            result: Value::Null,
            node: node.to_owned(),
        }
    }

    /// The response as compact JSON.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serialize(self))
    }

    /// The response as indented JSON (HTTP `?pretty`).
    pub fn to_pretty_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(self).unwrap_or_else(|_| serialize(self)))
    }

    /// The response as compact JSON with `room` = requestId, as sent over WebSocket.
    pub fn to_bytes_with_room(&self) -> Bytes {
        Bytes::from(serialize(&WithRoom {
            response: self,
            room: &self.request_id,
        }))
    }
}

/// Serializes a value that cannot fail to serialize (no map with non-string keys).
fn serialize<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|error| {
        tracing::error!(%error, "Response serialization failed.");
        br#"{"status":500,"error":{"message":"response serialization failed","status":500,"id":"core.fatal.unexpected_error","code":1},"result":null}"#.to_vec()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn success_has_every_contract_field() {
        let mut request = Request::new("server", "now");
        request.request_id = "r1".into();
        request.volatile = json!({"a": 1}).as_object().cloned();
        let response = Response::success(&request, json!({"now": 5}), "node-1");
        let value: Value = serde_json::from_slice(&response.to_bytes()).expect("json");
        assert_eq!(
            value,
            json!({"requestId":"r1","status":200,"error":null,"controller":"server","action":"now",
                   "index":null,"collection":null,"volatile":{"a":1},"result":{"now":5},"node":"node-1"})
        );
        let value: Value = serde_json::from_slice(&response.to_bytes_with_room()).expect("json");
        assert_eq!(value["room"], "r1");
    }

    #[test]
    fn failure_carries_the_kuzzle_error() {
        let request = Request::new("nope", "nothing");
        let error = ApiError::ControllerNotFound("nope".into());
        let response = Response::failure(&request, &error, "n");
        assert_eq!(response.status, 404);
        let value: Value = serde_json::from_slice(&response.to_bytes()).expect("json");
        assert_eq!(value["error"]["id"], "api.process.controller_not_found");
        assert_eq!(value["error"]["status"], 404);
        assert_eq!(value["result"], Value::Null);
    }
}
