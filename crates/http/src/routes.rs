//! The route table: `(verb, path template)` -> action, and the matching of a
//! request's path against it.
//!
//! As Kuzzle's HTTP router: one tree per verb, a path is split on `/` (empty
//! parts ignored, so a trailing slash does not matter), each part is
//! percent-decoded, and a static part wins over a `:placeholder`. Unlike
//! Kuzzle's, matching backtracks: a path that fails under a static part is
//! tried again under the placeholder.

use std::collections::HashMap;

use crate::error::HttpError;

/// What a route leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A controller's action.
    Action {
        /// Controller name.
        controller: String,
        /// Action name.
        action: String,
    },
    /// `POST /_query`: the body is a whole request.
    Query,
}

/// A route's end: its target and the names of its placeholders, in path order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    target: Target,
    placeholders: Vec<String>,
}

/// One level of a route tree.
#[derive(Debug, Default)]
struct Node {
    statics: HashMap<String, Node>,
    placeholder: Option<Box<Node>>,
    endpoint: Option<Endpoint>,
}

/// A matched route: its target and the `(placeholder, value)` pairs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RouteMatch<'a> {
    /// What the route leads to.
    pub(crate) target: &'a Target,
    /// Placeholder names with their decoded values.
    pub(crate) arguments: Vec<(&'a str, String)>,
}

/// Every route, by verb.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    verbs: HashMap<String, Node>,
}

impl RouteTable {
    /// The table for `routes` (`(verb, path, target)`), with `POST /_query` first.
    /// A duplicate of an existing `(verb, path)` is ignored with a warning.
    pub(crate) fn new<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str, Target)>) -> Self {
        let mut table = Self::default();
        table.insert("POST", "/_query", Target::Query);
        for (verb, path, target) in routes {
            if !table.insert(verb, path, target) {
                tracing::warn!(verb, path, "Duplicate HTTP route ignored.");
            }
        }
        table
    }

    /// Adds a route; false when `(verb, path)` already leads somewhere.
    fn insert(&mut self, verb: &str, path: &str, target: Target) -> bool {
        let mut node = self.verbs.entry(verb.to_ascii_uppercase()).or_default();
        let mut placeholders = Vec::new();
        for part in path.split('/').filter(|part| !part.is_empty()) {
            node = match part.strip_prefix(':') {
                Some(name) => {
                    placeholders.push(name.to_owned());
                    node.placeholder.get_or_insert_with(Box::default)
                }
                None => node.statics.entry(part.to_owned()).or_default(),
            };
        }
        if node.endpoint.is_some() {
            return false;
        }
        node.endpoint = Some(Endpoint { target, placeholders });
        true
    }

    /// The route of a request as the handler looks it up: the five verbs of
    /// the API, and `HEAD` falling back to `GET`.
    pub(crate) fn route(&self, verb: &str, path: &str) -> Result<RouteMatch<'_>, HttpError> {
        let found = match verb {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => self.find(verb, path),
            "HEAD" => self.find("HEAD", path).or_else(|| self.find("GET", path)),
            _ => return Err(HttpError::UnsupportedVerb(verb.to_owned())),
        };
        found.ok_or_else(|| HttpError::UrlNotFound(path.to_owned()))
    }

    /// The route for `verb` and `path` (without its query string).
    pub(crate) fn find(&self, verb: &str, path: &str) -> Option<RouteMatch<'_>> {
        let root = self.verbs.get(verb)?;
        let parts: Vec<String> = path
            .split('/')
            .filter(|part| !part.is_empty())
            .map(|part| percent_decode(part, false))
            .collect();
        let mut values = Vec::with_capacity(parts.len());
        let endpoint = descend(root, &parts, &mut values)?;
        let arguments = endpoint
            .placeholders
            .iter()
            .map(String::as_str)
            .zip(values)
            .collect();
        Some(RouteMatch {
            target: &endpoint.target,
            arguments,
        })
    }
}

/// Walks down the tree, statics first; `values` collects the placeholder values.
fn descend<'a>(node: &'a Node, parts: &[String], values: &mut Vec<String>) -> Option<&'a Endpoint> {
    let Some((part, rest)) = parts.split_first() else {
        return node.endpoint.as_ref();
    };
    if let Some(found) = node
        .statics
        .get(part)
        .and_then(|next| descend(next, rest, values))
    {
        return Some(found);
    }
    let next = node.placeholder.as_deref()?;
    values.push(part.clone());
    let found = descend(next, rest, values);
    if found.is_none() {
        values.pop();
    }
    found
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in
/// query strings). Invalid escapes are kept as they are; invalid UTF-8 is
/// replaced, as Node's `querystring.unescape` does.
pub(crate) fn percent_decode(input: &str, plus_is_space: bool) -> String {
    let escaped = input.contains('%') || (plus_is_space && input.contains('+'));
    if !escaped {
        return input.to_owned();
    }
    let bytes = input.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let escaped = (byte == b'%')
            .then(|| Some((hex(*bytes.get(index + 1)?)?, hex(*bytes.get(index + 2)?)?)))
            .flatten();
        match (byte, escaped) {
            (_, Some((high, low))) => {
                decoded.push(high << 4 | low);
                index += 3;
            }
            (b'+', None) if plus_is_space => {
                decoded.push(b' ');
                index += 1;
            }
            (byte, None) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(controller: &str, action: &str) -> Target {
        Target::Action {
            controller: controller.into(),
            action: action.into(),
        }
    }

    fn table() -> RouteTable {
        RouteTable::new([
            (
                "POST",
                "/:index/:collection/_publish",
                action("realtime", "publish"),
            ),
            ("GET", "/_now", action("server", "now")),
            ("GET", "/", action("server", "info")),
            ("GET", "/:index/_exists", action("index", "exists")),
            ("GET", "/_foo/:id/_bar", action("custom", "bar")),
            ("GET", "/_now", action("custom", "duplicate")),
        ])
    }

    #[test]
    fn placeholders_become_arguments() {
        let table = table();
        let found = table.find("POST", "/my%20index/c/_publish/").expect("route");
        assert_eq!(found.target, &action("realtime", "publish"));
        assert_eq!(
            found.arguments,
            vec![("index", "my index".to_owned()), ("collection", "c".to_owned())]
        );
        assert_eq!(
            table.find("POST", "/_query").expect("query").target,
            &Target::Query
        );
    }

    #[test]
    fn statics_win_and_matching_backtracks() {
        let table = table();
        assert_eq!(
            table.find("GET", "/_now").expect("now").target,
            &action("server", "now")
        );
        assert_eq!(
            table.find("GET", "//_now//").expect("now").target,
            &action("server", "now")
        );
        assert_eq!(
            table.find("GET", "").expect("root").target,
            &action("server", "info")
        );
        // `_foo` is a static first part, but `/_foo/_exists` only matches `/:index/_exists`.
        let found = table.find("GET", "/_foo/_exists").expect("backtracked");
        assert_eq!(found.target, &action("index", "exists"));
        assert_eq!(found.arguments, vec![("index", "_foo".to_owned())]);
        assert!(table.find("GET", "/a/b/c").is_none());
        assert!(table.find("DELETE", "/_now").is_none());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%20c", false), "a/b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("a+b%2B", true), "a b+");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz%4", true), "%zz%4");
        assert_eq!(percent_decode("%C3%A9", true), "é");
        assert_eq!(percent_decode("%FF", true), "\u{FFFD}");
    }
}
