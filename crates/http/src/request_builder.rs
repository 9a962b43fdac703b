//! From an HTTP request (route, query string, headers, decoded body) to a
//! Kuzzle API [`Request`] and its [`ClientConnection`], as Kuzzle's
//! `HttpMessage` and `RouteHandler` do.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use hyper::HeaderMap;
use protoplex_core::request::{RejectedRequest, RequestEcho};
use protoplex_core::{ApiError, ClientConnection, Request};
use serde_json::{Map, Value};

use crate::error::HttpError;
use crate::routes::percent_decode;

/// The protocol's name, in connections and notifications.
pub(crate) const PROTOCOL: &str = "http";
/// Header carrying the request's volatile data (a JSON object).
const VOLATILE_HEADER: &str = "x-kuzzle-volatile";
/// Header carrying the client's request id.
const REQUEST_ID_HEADER: &str = "x-kuzzle-request-id";

/// Parses a query string: keys and values percent-decoded (`+` is a space),
/// repeated keys gathered in an array, as Node's `querystring`. A key without
/// a value (`?pretty`, `?refresh=`) is `true`: over HTTP, Kuzzle's boolean
/// arguments are flags set by their mere presence.
pub(crate) fn parse_query(query: Option<&str>) -> Map<String, Value> {
    let mut arguments = Map::new();
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.is_empty() {
            continue;
        }
        let value = match value {
            "" => Value::Bool(true),
            value => Value::String(percent_decode(value, true)),
        };
        match arguments.entry(percent_decode(key, true)) {
            serde_json::map::Entry::Vacant(entry) => {
                entry.insert(value);
            }
            serde_json::map::Entry::Occupied(mut entry) => match entry.get_mut() {
                Value::Array(values) => values.push(value),
                first => {
                    let first = first.take();
                    entry.insert(Value::Array(vec![first, value]));
                }
            },
        }
    }
    arguments
}

/// The client's addresses: the socket's peer, then each `X-Forwarded-For` entry
/// that is an IP address (with or without a port).
pub(crate) fn client_ips(peer: SocketAddr, headers: &HeaderMap) -> Vec<IpAddr> {
    let mut ips = vec![peer.ip()];
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter_map(|entry| {
            entry
                .parse::<IpAddr>()
                .or_else(|_| entry.parse::<SocketAddr>().map(|address| address.ip()))
                .ok()
        });
    ips.extend(forwarded);
    ips
}

/// The request's headers with lower-case names; repeated headers joined with
/// `", "`, values that are not text left out.
pub(crate) fn connection_headers(headers: &HeaderMap) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = HashMap::with_capacity(headers.keys_len());
    for (name, value) in headers {
        let Ok(value) = value.to_str() else {
            continue;
        };
        map.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    map
}

/// A new HTTP client connection for one request.
pub(crate) fn connection(peer: SocketAddr, headers: &HeaderMap) -> ClientConnection {
    ClientConnection::new(PROTOCOL, client_ips(peer, headers), connection_headers(headers))
}

/// What to echo in an error response when the request could not be built:
/// the `X-Kuzzle-Request-Id` header, or a generated request id.
pub(crate) fn echo(headers: &HeaderMap, controller: Option<&str>, action: Option<&str>) -> RequestEcho {
    RequestEcho {
        request_id: Some(
            header(headers, REQUEST_ID_HEADER)
                .map_or_else(protoplex_core::request::generate_request_id, str::to_owned),
        ),
        controller: controller.map(str::to_owned),
        action: action.map(str::to_owned),
        volatile: None,
    }
}

/// The request of an action's route: query-string arguments, then the path's
/// placeholders, then the route's controller and action, the body, and what the
/// headers carry (`Authorization: Bearer` -> jwt, `X-Kuzzle-Volatile` ->
/// volatile, `X-Kuzzle-Request-Id` -> requestId unless the query sets one).
pub(crate) fn action_request(
    controller: &str,
    action: &str,
    placeholders: Vec<(&str, String)>,
    query: Map<String, Value>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Request, Box<RejectedRequest>> {
    let refuse = |error: &HttpError| {
        Box::new(RejectedRequest {
            echo: Box::new(echo(headers, Some(controller), Some(action))),
            error: ApiError::from(error),
        })
    };
    let mut object = Map::with_capacity(query.len() + placeholders.len() + 6);
    if let Some(request_id) = header(headers, REQUEST_ID_HEADER) {
        object.insert("requestId".into(), Value::String(request_id.to_owned()));
    }
    object.extend(query);
    object.extend(
        placeholders
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::String(value))),
    );
    object.insert("controller".into(), Value::String(controller.to_owned()));
    object.insert("action".into(), Value::String(action.to_owned()));
    if let Some(body) = parse_body(body).map_err(|error| refuse(&error))? {
        object.insert("body".into(), Value::Object(body));
    }
    if let Some(jwt) = bearer_token(headers) {
        object.insert("jwt".into(), Value::String(jwt.to_owned()));
    }
    if let Some(volatile) = header(headers, VOLATILE_HEADER) {
        let volatile = serde_json::from_str::<Value>(volatile)
            .map_err(|error| refuse(&HttpError::BadVolatile(error.to_string())))?;
        object.insert("volatile".into(), volatile);
    }
    Request::from_object(object).map_err(Box::new)
}

/// The request of `POST /_query`: the body is the whole request, run as is;
/// the `Authorization` header provides its jwt when it has none.
pub(crate) fn query_request(headers: &HeaderMap, body: &[u8]) -> Result<Request, Box<RejectedRequest>> {
    let refuse = |error: &HttpError| {
        Box::new(RejectedRequest {
            echo: Box::new(echo(headers, None, None)),
            error: ApiError::from(error),
        })
    };
    let mut object = parse_body(body)
        .map_err(|error| refuse(&error))?
        .ok_or_else(|| refuse(&HttpError::NotAnObject))?;
    if !object.contains_key("jwt")
        && let Some(jwt) = bearer_token(headers)
    {
        object.insert("jwt".into(), Value::String(jwt.to_owned()));
    }
    Request::from_object(object).map_err(Box::new)
}

/// The body as a JSON object; `None` when empty (Kuzzle: a `null` body).
fn parse_body(body: &[u8]) -> Result<Option<Map<String, Value>>, HttpError> {
    if body.is_empty() {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(_) => Err(HttpError::NotAnObject),
        Err(error) => Err(HttpError::BadJson(error.to_string())),
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = header(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn query_strings() {
        let query = parse_query(Some("a=1&pretty&b=x%20y+z&a=2&=skip&&refresh="));
        assert_eq!(
            Value::Object(query),
            json!({"a":["1","2"],"pretty":true,"b":"x y z","refresh":true})
        );
        assert!(parse_query(None).is_empty());
    }

    #[test]
    fn forwarded_addresses_follow_the_peer() {
        let peer: SocketAddr = "127.0.0.1:4000".parse().expect("address");
        let headers = headers(&[
            ("x-forwarded-for", "10.0.0.1, bogus, [::1]:80"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        let ips: Vec<String> = client_ips(peer, &headers)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ips, ["127.0.0.1", "10.0.0.1", "::1", "10.0.0.2"]);
    }

    #[test]
    fn routes_build_requests() {
        let headers = headers(&[
            ("authorization", "Bearer tok"),
            ("x-kuzzle-volatile", r#"{"v":1}"#),
            ("x-kuzzle-request-id", "rid"),
        ]);
        let query = parse_query(Some("scope=in&index=ignored&flag"));
        let request = action_request(
            "realtime",
            "publish",
            vec![("index", "i".into()), ("collection", "c".into())],
            query,
            &headers,
            br#"{"msg":true}"#,
        )
        .expect("request");
        assert_eq!(request.controller, "realtime");
        assert_eq!(request.index.as_deref(), Some("i"));
        assert_eq!(request.collection.as_deref(), Some("c"));
        assert_eq!(request.request_id, "rid");
        assert_eq!(request.jwt.as_deref(), Some("tok"));
        assert_eq!(request.body, Some(json!({"msg":true})));
        assert_eq!(request.volatile, json!({"v":1}).as_object().cloned());
        assert_eq!(Value::Object(request.args), json!({"scope":"in","flag":true}));
    }

    #[test]
    fn bad_bodies_and_headers_are_refused() {
        let none = HeaderMap::new();
        let refused = action_request("a", "b", vec![], Map::new(), &none, b"{oops").expect_err("bad json");
        assert_eq!(refused.error.to_kuzzle().id, "network.http.body_parse_failed");
        assert_eq!(refused.echo.controller.as_deref(), Some("a"));
        let refused = action_request("a", "b", vec![], Map::new(), &none, b"[1]").expect_err("array");
        assert_eq!(refused.error.to_kuzzle().id, "api.assert.invalid_argument");
        let bad_volatile = headers(&[("x-kuzzle-volatile", "{")]);
        let refused = action_request("a", "b", vec![], Map::new(), &bad_volatile, b"").expect_err("volatile");
        assert_eq!(refused.error.to_kuzzle().id, "network.http.volatile_parse_failed");
        let refused = query_request(&none, b"").expect_err("empty query");
        assert_eq!(refused.error.to_kuzzle().id, "api.assert.invalid_argument");
    }

    #[test]
    fn query_requests_run_as_is() {
        let headers = headers(&[("authorization", "bearer abc")]);
        let request = query_request(
            &headers,
            br#"{"controller":"server","action":"now","requestId":"q"}"#,
        )
        .expect("request");
        assert_eq!(
            (request.controller.as_str(), request.action.as_str()),
            ("server", "now")
        );
        assert_eq!(request.request_id, "q");
        assert_eq!(request.jwt.as_deref(), Some("abc"));
    }
}
