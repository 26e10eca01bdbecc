//! `ingest` and `api`: the HTTP API behind API Gateway (HTTP API, payload format 2.0).
//!
//! Both serve the one router of `ember-http` — the same routes, answers and errors as `ember
//! dev`; API Gateway sends `POST /v1/events` to `ingest` and everything else to `api`, so each
//! function's role only holds the permissions its routes need.

use crate::AwsServices;

/// The router, over the stack's services.
pub fn router(services: &AwsServices) -> axum::Router {
    ember_http::router(services.ember.clone(), services.api.clone())
}

use lambda_http::http::header::{HeaderName, HOST};
use lambda_http::request::LambdaRequest;

/// Makes an HTTP API event safe for `lambda_http`'s translation into a request, which panics —
/// aborting the function's process, so one crafted request costs a cold start — when the URI
/// it builds is invalid: a raw query string with a character a URI may not hold (`"`, a space,
/// …), or a `Host` / `X-Forwarded-Proto` header that is not a host or a scheme. Such characters
/// in the query are percent-encoded (decoding gives the same parameters), a `Host` that is not
/// a valid authority is dropped (API Gateway's own domain name is used instead), as is an
/// `X-Forwarded-Proto` other than `http` or `https` and a body marked base64 that does not
/// decode, and a path is made to start with `/`.
/// Found by the `http_api_v2` fuzz target.
pub fn safe_request(mut request: LambdaRequest) -> LambdaRequest {
    if let LambdaRequest::ApiGatewayV2(ag) = &mut request {
        if let Some(q) = ag.raw_query_string.as_mut() {
            if q.bytes().any(|b| !query_byte_ok(b)) {
                *q = encode_query(q);
            }
        }
        if let Some(p) = ag.raw_path.as_mut() {
            if !p.starts_with('/') {
                p.insert(0, '/');
            }
        }
        let proto = HeaderName::from_static("x-forwarded-proto");
        if ag.headers.get(&proto).is_some_and(|v| !matches!(v.to_str(), Ok("http" | "https"))) {
            ag.headers.remove(&proto);
        }
        if ag.headers.get(HOST).is_some_and(|v| !v.to_str().is_ok_and(valid_host)) {
            ag.headers.remove(HOST);
        }
        if ag.request_context.domain_name.as_deref().is_some_and(|d| !valid_host(d)) {
            ag.request_context.domain_name = None;
        }
        // `lambda_http` panics on a body marked base64 that does not decode: the request goes
        // on with no body (the route answers that it is missing).
        if ag.is_base64_encoded {
            use base64::Engine;
            if ag.body.as_deref().is_some_and(|b| base64::engine::general_purpose::STANDARD.decode(b).is_err()) {
                tracing::warn!("a request body marked base64 does not decode; dropped");
                ag.body = None;
                ag.is_base64_encoded = false;
            }
        }
    }
    request
}

/// Whether `lambda_http` can put this host in a URL (`https://{host}/path`).
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.parse::<lambda_http::http::uri::Authority>().is_ok()
        && !h.contains('@')
        && url_ok(h)
}

/// Whether `https://{host}/` parses as a URL with that host, both as `http::Uri` and as the
/// WHATWG URL `lambda_http` builds (which reads a host ending in a number as IPv4).
fn url_ok(h: &str) -> bool {
    format!("https://{h}/").parse::<lambda_http::http::Uri>().is_ok()
        && h.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_ok())
        && url::Url::parse(&format!("https://{h}/v1/events")).is_ok()
}

/// Query bytes a URI holds as they are (RFC 3986 `query`, and `%`).
fn query_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

fn encode_query(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 16);
    for b in q.bytes() {
        if query_byte_ok(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::safe_request;
    use lambda_http::request::LambdaRequest;

    /// The sample `GET /v1/leads/{id}` event with one field changed.
    fn event(change: impl FnOnce(&mut serde_json::Value)) -> LambdaRequest {
        let mut v: serde_json::Value = serde_json::from_str(include_str!("../../../../events/http-get-lead.json")).unwrap();
        change(&mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn requests_lambda_http_cannot_build_are_made_safe_not_a_panic() {
        // Each of these made `lambda_http` panic ("failed to build request: InvalidUri") before
        // Ember's router saw the request.
        let cases: Vec<(&str, Box<dyn FnOnce(&mut serde_json::Value)>)> = vec![
            ("quote in the query", Box::new(|v| v["rawQueryString"] = "email=a\"b".into())),
            ("space in the query", Box::new(|v| v["rawQueryString"] = "email=a b&x=1".into())),
            ("bad host", Box::new(|v| v["headers"]["host"] = "abc.example`com".into())),
            ("bad scheme", Box::new(|v| v["headers"]["x-forwarded-proto"] = "ht tp".into())),
            // Found by the fuzz target: a host ending in a number is read as an invalid IPv4.
            ("host ending in a number", Box::new(|v| v["headers"]["host"] = "abc123.execute-api.euts-w-e1203.0.113.7".into())),
            // Found by the fuzz target: "failed to decode aws base64 encoded body".
            ("body marked base64 that does not decode", Box::new(|v| {
                v["isBase64Encoded"] = true.into();
                v["body"] = "eyJiYXRjaCI6IFt7ImV2ZW50X2lkIjogInNhbXBsZS1iNjjQubGVhZEBleGF".into();
            })),
        ];
        for (what, change) in cases {
            let req = safe_request(event(change));
            let built = std::panic::catch_unwind(|| lambda_http::Request::from(req));
            let built = built.unwrap_or_else(|_| panic!("{what}: lambda_http panicked"));
            assert!(built.uri().path().starts_with("/v1/leads"), "{what}: {}", built.uri());
            if what == "space in the query" {
                assert_eq!(built.uri().query(), Some("email=a%20b&x=1"));
            }
        }
    }

    #[test]
    fn valid_requests_are_unchanged() {
        let req = safe_request(event(|v| v["rawQueryString"] = "email=a%40b.example&limit=5".into()));
        let built = lambda_http::Request::from(req);
        assert_eq!(built.uri().query(), Some("email=a%40b.example&limit=5"));
        assert_eq!(built.uri().host(), Some("abc123.execute-api.eu-west-1.amazonaws.com"));
    }
}
