//! What a connection learns from its upgrade request: its headers and the
//! client's addresses (the socket's peer, then `X-Forwarded-For`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use tokio_tungstenite::tungstenite::http::HeaderMap;

/// The request's headers, names in lowercase; repeated headers are joined with
/// `", "` and values that are not UTF-8 are decoded lossily.
pub(crate) fn to_map(headers: &HeaderMap) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = HashMap::with_capacity(headers.keys_len());
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}

/// The client's addresses: `peer` first, then each `x-forwarded-for` entry that
/// parses as an address (with or without a port).
pub(crate) fn client_ips(peer: SocketAddr, headers: &HashMap<String, String>) -> Vec<IpAddr> {
    let mut ips = vec![peer.ip()];
    if let Some(forwarded) = headers.get("x-forwarded-for") {
        ips.extend(forwarded.split(',').filter_map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<IpAddr>()
                .or_else(|_| entry.parse::<SocketAddr>().map(|address| address.ip()))
                .ok()
        }));
    }
    ips
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_addresses_follow_the_peer() {
        let peer: SocketAddr = "10.0.0.1:4000".parse().expect("address");
        let mut headers = HashMap::new();
        headers.insert(
            "x-forwarded-for".to_owned(),
            "203.0.113.7, garbage, [2001:db8::1]:443 ,198.51.100.2:80".to_owned(),
        );
        let ips = client_ips(peer, &headers);
        let expected: Vec<IpAddr> = ["10.0.0.1", "203.0.113.7", "2001:db8::1", "198.51.100.2"]
            .iter()
            .map(|ip| ip.parse().expect("ip"))
            .collect();
        assert_eq!(ips, expected);
        assert_eq!(client_ips(peer, &HashMap::new()), vec![peer.ip()]);
    }

    #[test]
    fn header_names_are_lowercase_and_repeats_joined() {
        let mut headers = HeaderMap::new();
        headers.append("X-Forwarded-For", HeaderValue::from_static("1.1.1.1"));
        headers.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        headers.append("Origin", HeaderValue::from_static("http://example.com"));
        let map = to_map(&headers);
        assert_eq!(map["x-forwarded-for"], "1.1.1.1, 2.2.2.2");
        assert_eq!(map["origin"], "http://example.com");
    }
}
