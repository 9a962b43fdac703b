//! Request bodies: reading them within `limits.max_request_size`, and undoing
//! their `Content-Encoding` layers without ever inflating past that size.

use std::io::Read;

use bytes::Bytes;
use flate2::read::{MultiGzDecoder, ZlibDecoder};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};

use crate::error::HttpError;

/// One `Content-Encoding` layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// No transformation.
    Identity,
    /// gzip (RFC 1952); concatenated members are accepted, as Node's gunzip does.
    Gzip,
    /// HTTP's "deflate": zlib-wrapped deflate (RFC 1950).
    Deflate,
}

/// What a request's head says of its body, checked before reading it: its
/// announced length (within `max`) and its encoding layers.
pub(crate) fn check_head(
    headers: &HeaderMap,
    max: usize,
    max_layers: usize,
    allow_compression: bool,
) -> Result<(Option<u64>, Vec<Encoding>), HttpError> {
    let announced = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|value| value.trim().parse::<u64>().ok())
                .ok_or_else(|| HttpError::BadBody("invalid Content-Length".into()))?,
        ),
    };
    if announced.is_some_and(|length| length > u64::try_from(max).unwrap_or(u64::MAX)) {
        return Err(HttpError::TooLarge { max });
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| {
            value.to_str().map_err(|_| {
                HttpError::UnsupportedEncoding(String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
        })
        .transpose()?;
    let encodings = parse_encodings(encoding, max_layers, allow_compression)?;
    Ok((announced, encodings))
}

/// The layers of a `Content-Encoding` header, in the order they were applied.
///
/// More than `max_layers` entries is refused, as is an unknown encoding, and a
/// compressed one when `allow_compression` is false.
pub(crate) fn parse_encodings(
    header: Option<&str>,
    max_layers: usize,
    allow_compression: bool,
) -> Result<Vec<Encoding>, HttpError> {
    let Some(header) = header else {
        return Ok(Vec::new());
    };
    let names: Vec<&str> = header
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if names.len() > max_layers {
        return Err(HttpError::TooManyEncodings {
            layers: names.len(),
            max: max_layers,
        });
    }
    names
        .into_iter()
        .map(|name| {
            let encoding = match name.to_ascii_lowercase().as_str() {
                "identity" => return Ok(Encoding::Identity),
                "gzip" | "x-gzip" => Encoding::Gzip,
                "deflate" => Encoding::Deflate,
                _ => return Err(HttpError::UnsupportedEncoding(name.to_owned())),
            };
            if allow_compression {
                Ok(encoding)
            } else {
                Err(HttpError::CompressionDisabled)
            }
        })
        .collect()
}

/// Reads a whole body, refusing it as soon as it grows past `max` bytes
/// (whatever its `Content-Length` said, chunked bodies included).
pub(crate) async fn read_limited(
    mut body: Incoming,
    max: usize,
    size_hint: Option<u64>,
) -> Result<Bytes, HttpError> {
    let capacity = size_hint
        .and_then(|hint| usize::try_from(hint).ok())
        .unwrap_or(0)
        .min(max);
    let mut collected: Vec<u8> = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| HttpError::BadBody(error.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if collected.len().saturating_add(data.len()) > max {
                return Err(HttpError::TooLarge { max });
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(collected))
}

/// Undoes `encodings` (last applied first). Each layer may produce at most
/// `max` bytes: a body that inflates past it is refused (zip bombs included).
pub(crate) fn decode(body: Bytes, encodings: &[Encoding], max: usize) -> Result<Bytes, HttpError> {
    if body.is_empty() {
        return Ok(body);
    }
    encodings
        .iter()
        .rev()
        .try_fold(body, |data, encoding| match encoding {
            Encoding::Identity => Ok(data),
            Encoding::Gzip => inflate(MultiGzDecoder::new(&data[..]), max),
            Encoding::Deflate => inflate(ZlibDecoder::new(&data[..]), max),
        })
}

fn inflate(decoder: impl Read, max: usize) -> Result<Bytes, HttpError> {
    let mut inflated = Vec::new();
    decoder
        .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut inflated)
        .map_err(|error| HttpError::BadBody(error.to_string()))?;
    if inflated.len() > max {
        return Err(HttpError::TooLarge { max });
    }
    Ok(Bytes::from(inflated))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("write");
        encoder.finish().expect("finish")
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("write");
        encoder.finish().expect("finish")
    }

    #[test]
    fn layers_are_parsed_and_bounded() {
        assert_eq!(parse_encodings(None, 3, true), Ok(vec![]));
        assert_eq!(
            parse_encodings(Some("gzip, Deflate ,identity"), 3, true),
            Ok(vec![Encoding::Gzip, Encoding::Deflate, Encoding::Identity])
        );
        assert_eq!(
            parse_encodings(Some("gzip,gzip,gzip,gzip"), 3, true),
            Err(HttpError::TooManyEncodings { layers: 4, max: 3 })
        );
        assert_eq!(
            parse_encodings(Some("br"), 3, true),
            Err(HttpError::UnsupportedEncoding("br".into()))
        );
        assert_eq!(
            parse_encodings(Some("gzip"), 3, false),
            Err(HttpError::CompressionDisabled)
        );
        assert_eq!(
            parse_encodings(Some("identity"), 3, false),
            Ok(vec![Encoding::Identity])
        );
    }

    #[test]
    fn layers_are_undone_in_reverse_order() {
        let original = br#"{"hello":"world"}"#;
        let encoded = deflate(&gzip(original));
        let decoded =
            decode(Bytes::from(encoded), &[Encoding::Gzip, Encoding::Deflate], 1024).expect("decoded");
        assert_eq!(&decoded[..], original);
    }

    #[test]
    fn inflation_is_capped() {
        let bomb = gzip(&vec![b' '; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20 * 1024);
        assert_eq!(
            decode(Bytes::from(bomb), &[Encoding::Gzip], 1024),
            Err(HttpError::TooLarge { max: 1024 })
        );
    }

    #[test]
    fn corrupt_data_is_a_bad_body() {
        let result = decode(Bytes::from_static(b"not gzip at all"), &[Encoding::Gzip], 1024);
        assert!(matches!(result, Err(HttpError::BadBody(_))), "{result:?}");
        let result = decode(Bytes::from_static(b"not zlib"), &[Encoding::Deflate], 1024);
        assert!(matches!(result, Err(HttpError::BadBody(_))), "{result:?}");
    }
}
