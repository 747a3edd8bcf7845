//! Health and metrics endpoints.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::registry::Registry;

/// `/healthz` on the TLS port: `ok` once the mappers have loaded, 503 before.
///
/// upstream: pkg/server/server.go answers 200 `ok` unconditionally; we answer 503 until
/// every mapping backend has loaded, so a readiness probe keeps traffic away from a
/// replica that would deny everyone.
pub fn readiness(ready: bool) -> Response<Full<Bytes>> {
    if ready {
        ok()
    } else {
        plain(StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// `ok`, 200 (no newline, as upstream).
pub fn ok() -> Response<Full<Bytes>> {
    plain(StatusCode::OK, "ok")
}

/// `/metrics`: `registry` (the components' metrics and the process collector),
/// OpenMetrics text.
pub fn metrics(registry: &Registry) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(crate::metrics::encode(registry))));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// Go's `http.NotFound`.
pub fn not_found() -> Response<Full<Bytes>> {
    super::outcome::text(StatusCode::NOT_FOUND, "404 page not found\n")
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
