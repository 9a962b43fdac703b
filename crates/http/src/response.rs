//! HTTP responses: the JSON of a Kuzzle response, with its status, the CORS
//! headers (on every response, errors included) and compression per
//! `Accept-Encoding`.

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::config::HttpConfig;
use crate::error::HttpError;

/// The body type of every response of this crate.
pub(crate) type Body = Full<Bytes>;

const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");
/// Request encodings accepted, advertised in responses as Kuzzle does.
const ACCEPTED_ENCODINGS: HeaderValue = HeaderValue::from_static("gzip,deflate,identity");

/// Who may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origins {
    Any,
    Only(Vec<String>),
}

/// A response compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compressor {
    Gzip,
    Deflate,
}

/// What every response carries: CORS headers and the compression policy.
#[derive(Debug, Clone)]
pub(crate) struct ResponseFactory {
    origins: Origins,
    allow_methods: HeaderValue,
    allow_headers: HeaderValue,
    compression: bool,
}

impl ResponseFactory {
    /// The factory for `config`; fails on a CORS value that cannot be a header.
    pub(crate) fn new(config: &HttpConfig) -> Result<Self, String> {
        let value = |name: &str, value: &str| {
            HeaderValue::from_str(value).map_err(|_| format!("{name} is not a valid header value: {value:?}"))
        };
        let origins: Vec<String> = config
            .access_control_allow_origin
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(str::to_owned)
            .collect();
        for origin in &origins {
            value("access_control_allow_origin", origin)?;
        }
        Ok(Self {
            origins: if origins.iter().any(|origin| origin == "*") {
                Origins::Any
            } else {
                Origins::Only(origins)
            },
            allow_methods: value(
                "access_control_allow_methods",
                &config.access_control_allow_methods,
            )?,
            allow_headers: value(
                "access_control_allow_headers",
                &config.access_control_allow_headers,
            )?,
            compression: config.allow_compression,
        })
    }

    /// A JSON response with `status`, compressed when the request accepts it.
    pub(crate) fn json(&self, request_headers: &HeaderMap, status: u16, json: Bytes) -> Response<Body> {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Response::new(Body::new(json.clone()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, JSON);
        self.cors(request_headers, headers);
        if !self.compression {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            return response;
        }
        headers.insert(header::ACCEPT_ENCODING, ACCEPTED_ENCODINGS);
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        let chosen = request_headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|value| value.to_str().ok())
            .and_then(choose_compressor);
        if let Some(compressor) = chosen {
            match compress(compressor, &json) {
                Ok(compressed) => {
                    let name = match compressor {
                        Compressor::Gzip => "gzip",
                        Compressor::Deflate => "deflate",
                    };
                    response
                        .headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
                    *response.body_mut() = Body::new(compressed);
                }
                Err(error) => tracing::warn!(%error, "Response compression failed: sent as is."),
            }
        }
        response
    }

    /// The `101 Switching Protocols` answer to a WebSocket upgrade.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn switching_protocols(accept: &str) -> Result<Response<Body>, HttpError> {
        let accept = HeaderValue::from_str(accept).map_err(|_| HttpError::BadHandshake("invalid key"))?;
        let mut response = Response::new(Body::default());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        Ok(response)
    }

    /// Adds the CORS headers: methods and headers always; the origin when the
    /// request's `Origin` is allowed (echoed, with `Vary: Origin`), or `*` when
    /// the request has none and every origin is allowed.
    fn cors(&self, request_headers: &HeaderMap, headers: &mut HeaderMap) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, self.allow_methods.clone());
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, self.allow_headers.clone());
        let allowed_origin = match request_headers.get(header::ORIGIN) {
            Some(origin) => {
                let allowed = match &self.origins {
                    Origins::Any => true,
                    Origins::Only(list) => origin
                        .to_str()
                        .is_ok_and(|origin| list.iter().any(|allowed| allowed == origin)),
                };
                headers.append(header::VARY, HeaderValue::from_static("Origin"));
                allowed.then(|| origin.clone())
            }
            None => (self.origins == Origins::Any).then(|| HeaderValue::from_static("*")),
        };
        if let Some(origin) = allowed_origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
    }
}

/// The preferred of gzip and deflate in an `Accept-Encoding` value (highest
/// `q`, gzip on a tie, `q=0` meaning refused), as Kuzzle chooses.
fn choose_compressor(accept: &str) -> Option<Compressor> {
    let mut best: Option<(Compressor, f32)> = None;
    for entry in accept.split(',') {
        let mut parameters = entry.split(';').map(str::trim);
        let compressor = match parameters.next().map(str::to_ascii_lowercase).as_deref() {
            Some("gzip" | "x-gzip") => Compressor::Gzip,
            Some("deflate") => Compressor::Deflate,
            _ => continue,
        };
        let quality = parameters
            .find_map(|parameter| {
                parameter
                    .strip_prefix("q=")
                    .or_else(|| parameter.strip_prefix("Q="))
            })
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        if quality <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((current, best_quality)) => {
                quality > best_quality
                    || (quality == best_quality && current != compressor && compressor == Compressor::Gzip)
            }
        };
        if better {
            best = Some((compressor, quality));
        }
    }
    best.map(|(compressor, _)| compressor)
}

fn compress(compressor: Compressor, data: &[u8]) -> std::io::Result<Bytes> {
    let compressed = match compressor {
        Compressor::Gzip => {
            let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 2), Compression::fast());
            encoder.write_all(data)?;
            encoder.finish()?
        }
        Compressor::Deflate => {
            let mut encoder = ZlibEncoder::new(Vec::with_capacity(data.len() / 2), Compression::fast());
            encoder.write_all(data)?;
            encoder.finish()?
        }
    };
    Ok(Bytes::from(compressed))
}

/// Whether the request asks for a WebSocket upgrade (`Upgrade: websocket`).
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, &header::UPGRADE, "websocket")
}

/// Whether a comma-separated header holds `token` (any case).
pub(crate) fn header_has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_preferences() {
        assert_eq!(choose_compressor("gzip, deflate"), Some(Compressor::Gzip));
        assert_eq!(choose_compressor("deflate, gzip"), Some(Compressor::Gzip));
        assert_eq!(choose_compressor("deflate"), Some(Compressor::Deflate));
        assert_eq!(
            choose_compressor("gzip;q=0.5, deflate"),
            Some(Compressor::Deflate)
        );
        assert_eq!(choose_compressor("gzip;q=0, br"), None);
        assert_eq!(choose_compressor("identity"), None);
        assert_eq!(choose_compressor(""), None);
    }

    #[test]
    fn cors_origins() {
        let mut config = HttpConfig {
            access_control_allow_origin: "https://a.example, https://b.example".into(),
            ..HttpConfig::default()
        };
        let factory = ResponseFactory::new(&config).expect("factory");
        let mut request = HeaderMap::new();
        request.insert(header::ORIGIN, HeaderValue::from_static("https://b.example"));
        let response = factory.json(&request, 200, Bytes::from_static(b"{}"));
        assert_eq!(
            response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://b.example"
        );
        request.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        let response = factory.json(&request, 200, Bytes::from_static(b"{}"));
        assert!(
            response
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
        assert!(
            response
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_METHODS)
        );

        config.access_control_allow_origin = "*".into();
        let factory = ResponseFactory::new(&config).expect("factory");
        let response = factory.json(&HeaderMap::new(), 404, Bytes::from_static(b"{}"));
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");

        config.access_control_allow_methods = "GET\n".into();
        assert!(ResponseFactory::new(&config).is_err());
    }
}
