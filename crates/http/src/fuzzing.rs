//! Entry points for `fuzz/`, not a stable API.
//!
//! Public wrappers around the crate's internal request path (route table,
//! query string, body decoding, request building), so that the fuzz targets of
//! `fuzz/` run the code the server runs. [`head_to_request`] takes the steps of
//! `handler::respond` that need no socket, in the same order; nothing here is
//! meant for any other use, and it may change at any time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use protoplex_core::request::RejectedRequest;
use protoplex_core::{ApiError, ClientConnection, Request, Router};
use serde_json::{Map, Value};

use crate::HttpConfig;
use crate::body;
use crate::error::HttpError;
use crate::request_builder;
use crate::routes::{RouteMatch, RouteTable, Target};

/// The route table of a router, built as the protocol builds it when it starts.
#[derive(Debug)]
pub struct Routes(RouteTable);

impl Routes {
    /// The routes of every action `router` serves, and `POST /_query`.
    pub fn of(router: &Router) -> Self {
        Self(RouteTable::new(router.http_routes().into_iter().map(
            |(controller, action, route)| {
                let target = Target::Action {
                    controller: controller.to_owned(),
                    action: action.to_owned(),
                };
                (route.verb.as_str(), route.path.as_str(), target)
            },
        )))
    }

    /// The route of `verb` and `path` as the handler looks it up: the five
    /// verbs of the API, and `HEAD` falling back to `GET`. `None` for any other
    /// verb and for a path no route matches.
    pub fn find(&self, verb: &str, path: &str) -> Option<RouteFound> {
        self.0.route(verb, path).ok().map(RouteFound::from)
    }
}

impl From<RouteMatch<'_>> for RouteFound {
    fn from(found: RouteMatch<'_>) -> Self {
        let (controller, action) = match found.target {
            Target::Action { controller, action } => (Some(controller.clone()), Some(action.clone())),
            Target::Query => (None, None),
        };
        RouteFound {
            controller,
            action,
            arguments: found
                .arguments
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        }
    }
}

/// A matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFound {
    /// The action's controller (`None` for `POST /_query`).
    pub controller: Option<String>,
    /// The action (`None` for `POST /_query`).
    pub action: Option<String>,
    /// The path's placeholders with their decoded values, in path order.
    pub arguments: Vec<(String, String)>,
}

/// What the handler makes of a request head and body, short of executing it.
#[derive(Debug)]
pub enum Outcome {
    /// hyper refuses the head itself (method, URI or a header is not valid HTTP).
    BadHead,
    /// `OPTIONS`: a CORS preflight, answered without routing.
    Preflight,
    /// Refused before execution: the error and the request id it is answered under.
    Refused {
        /// The error the client gets.
        error: ApiError,
        /// What the response echoes.
        echo: Box<protoplex_core::request::RequestEcho>,
    },
    /// The request the router would execute, on its connection.
    Execute {
        /// The matched route.
        route: RouteFound,
        /// The API request.
        request: Box<Request>,
        /// The connection declared for it.
        connection: Box<ClientConnection>,
        /// Whether the answer is indented (`?pretty`).
        pretty: bool,
    },
}

/// Turns a request head (`method`, `target` as on the request line, `headers`)
/// and its body, as received, into what the handler would execute or answer,
/// with the default [`HttpConfig`] and `max_request_size` as the body limit.
/// Headers hyper would refuse make [`Outcome::BadHead`].
pub fn head_to_request(
    routes: &Routes,
    method: &str,
    target: &str,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
    max_request_size: usize,
) -> Outcome {
    let Ok(method) = hyper::Method::from_bytes(method.as_bytes()) else {
        return Outcome::BadHead;
    };
    let Ok(uri) = target.parse::<hyper::Uri>() else {
        return Outcome::BadHead;
    };
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
            return Outcome::BadHead;
        };
        map.append(name, value);
    }
    let query = request_builder::parse_query(uri.query());
    let pretty = query.contains_key("pretty");
    if method == hyper::Method::OPTIONS {
        return Outcome::Preflight;
    }
    let verb = method.as_str();
    let path = uri.path();
    let refuse = |error: &HttpError, route: Option<&RouteFound>| Outcome::Refused {
        error: ApiError::from(error),
        echo: Box::new(request_builder::echo(
            &map,
            route.and_then(|route| route.controller.as_deref()),
            route.and_then(|route| route.action.as_deref()),
        )),
    };
    let route = match routes.0.route(verb, path) {
        Ok(found) => RouteFound::from(found),
        Err(error) => return refuse(&error, None),
    };
    let content = match decode_body(&map, body, max_request_size) {
        Ok(content) => content,
        Err(error) => return refuse(&error, Some(&route)),
    };
    let built = match (&route.controller, &route.action) {
        (Some(controller), Some(action)) => request_builder::action_request(
            controller,
            action,
            route
                .arguments
                .iter()
                .map(|(name, value)| (name.as_str(), value.clone()))
                .collect(),
            query,
            &map,
            &content,
        ),
        _ => request_builder::query_request(&map, &content),
    };
    match built {
        Ok(request) => Outcome::Execute {
            route,
            request: Box::new(request),
            connection: Box::new(request_builder::connection(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000),
                &map,
            )),
            pretty,
        },
        Err(rejected) => {
            let RejectedRequest { echo, error } = *rejected;
            Outcome::Refused { error, echo }
        }
    }
}

/// The body as the handler reads it: its head checked, its size within `max`
/// (as `read_limited` enforces), then the encodings undone within `max` bytes.
fn decode_body(headers: &HeaderMap, body: &[u8], max: usize) -> Result<Bytes, HttpError> {
    let config = HttpConfig::default();
    let (_, encodings) =
        body::check_head(headers, max, config.max_encoding_layers, config.allow_compression)?;
    if body.len() > max {
        return Err(HttpError::TooLarge { max });
    }
    body::decode(Bytes::copy_from_slice(body), &encodings, max)
}

/// Parses a query string as the handler does.
pub fn parse_query(query: Option<&str>) -> Map<String, Value> {
    request_builder::parse_query(query)
}

/// Decodes `%XX` escapes as the router does (`+` as a space when `plus_is_space`).
pub fn percent_decode(input: &str, plus_is_space: bool) -> String {
    crate::routes::percent_decode(input, plus_is_space)
}

/// The path and query string of a request target as hyper parses it; `None`
/// when hyper refuses it.
pub fn path_and_query(target: &str) -> Option<(String, Option<String>)> {
    let uri = target.parse::<hyper::Uri>().ok()?;
    Some((uri.path().to_owned(), uri.query().map(str::to_owned)))
}
