//! Who may see the streams.
//!
//! - With a token (required on any address but loopback, as Jupyter does):
//!   every request carries it as `?token=` or `Authorization: token ...`,
//!   or is refused with 403.
//! - Without one (loopback only): the Host header must name a loopback
//!   address, so a web page that rebinds its DNS name to 127.0.0.1 cannot
//!   read the streams.
//! - Always: a request that states an Origin (a browser's fetch or WebSocket)
//!   must come from this server's own origin, so another site open in the
//!   same browser cannot open a stream's WebSocket.

use axum::http::{header, HeaderMap, Uri};

/// A new random token: 24 bytes as 48 hex digits.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the access token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A token given by the user is used in URLs unescaped: keep it to URL-safe
/// characters.
pub fn check_token_text(token: &str) -> Result<(), String> {
    if token.len() < 8 || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("the token must be at least 8 characters of A-Z a-z 0-9 - _".into());
    }
    Ok(())
}

/// Why a request is refused (the 403 body).
pub fn refusal(token: Option<&str>, uri: &Uri, headers: &HeaderMap) -> Option<&'static str> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    match token {
        Some(t) => {
            if !presented(uri, headers).is_some_and(|p| same(p.as_bytes(), t.as_bytes())) {
                return Some("403: a valid token is required (open the URL printed by shmimage web)\n");
            }
        }
        None => {
            if !is_loopback_host(host) {
                return Some("403: this server answers only to localhost names\n");
            }
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ok =
            origin.to_str().ok().and_then(|o| o.strip_prefix("http://")).is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !ok {
            return Some("403: cross-origin request refused\n");
        }
    }
    None
}

/// The token a request carries, if any.
fn presented<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let from_query = uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    from_query.or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("token ").or_else(|| h.strip_prefix("Token ")))
            .map(str::trim)
    })
}

/// Compare without an early exit, so the time taken tells nothing of the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("origin"));
        }
        h
    }

    #[test]
    fn tokens_are_checked_exactly() {
        let uri: Uri = "/?token=abcdefgh".parse().expect("uri");
        let h = headers("10.0.0.1:8000", None);
        assert_eq!(refusal(Some("abcdefgh"), &uri, &h), None);
        assert!(refusal(Some("abcdefgi"), &uri, &h).is_some());
        assert!(refusal(Some("abcdefghi"), &uri, &h).is_some());
        let bare: Uri = "/".parse().expect("uri");
        assert!(refusal(Some("abcdefgh"), &bare, &h).is_some());
        let mut auth = h.clone();
        auth.insert(header::AUTHORIZATION, HeaderValue::from_static("token abcdefgh"));
        assert_eq!(refusal(Some("abcdefgh"), &bare, &auth), None);
    }

    #[test]
    fn without_a_token_only_loopback_names_and_same_origin() {
        let uri: Uri = "/".parse().expect("uri");
        for ok in ["127.0.0.1:80", "localhost:9", "[::1]:5", "LOCALHOST"] {
            assert_eq!(refusal(None, &uri, &headers(ok, None)), None, "{ok}");
        }
        for bad in ["evil.example:80", "10.1.2.3:80", ""] {
            assert!(refusal(None, &uri, &headers(bad, None)).is_some(), "{bad}");
        }
        assert_eq!(refusal(None, &uri, &headers("127.0.0.1:80", Some("http://127.0.0.1:80"))), None);
        assert!(refusal(None, &uri, &headers("127.0.0.1:80", Some("http://evil.example"))).is_some());
        assert!(refusal(None, &uri, &headers("127.0.0.1:80", Some("null"))).is_some());
    }

    #[test]
    fn generated_tokens_are_long_and_differ() {
        let (a, b) = (new_token().expect("a"), new_token().expect("b"));
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
        assert!(check_token_text(&a).is_ok());
        assert!(check_token_text("short").is_err());
        assert!(check_token_text("has space in it").is_err());
    }
}
