//! The studio's front door, in the order a request meets it:
//!
//! 1. `Host` must be `127.0.0.1:PORT` or `localhost:PORT`: a page on
//!    another site that rebinds its own name to 127.0.0.1 (DNS rebinding)
//!    sends its own name here and is refused.
//! 2. The path must be under this process's random prefix (`/3f9a...`,
//!    128 bits): anything else is 404.
//! 3. The random token of this process, from `?token=` (exchanged for an
//!    `HttpOnly`, `SameSite=Strict` cookie scoped to the prefix, and a
//!    redirect that drops it from the address bar) or from that cookie;
//!    neither: 401. Browsers keep cookies per host, not per port, and
//!    `SameSite` ignores ports too: a cookie for `Path=/` would reach every
//!    other web server on 127.0.0.1 the browser visits (a dev server, a
//!    package's docs), and that server could replay it here. Scoped to
//!    the prefix, it is sent only to paths no other server is asked for.
//! 4. A state-changing request (anything but GET/HEAD) must carry an
//!    `Origin` of this server: a form on another site that posts here is
//!    refused (403) even though the browser would attach the cookie.
//!
//! Every response gets a restrictive Content-Security-Policy, `nosniff`,
//! no referrer to other sites and no caching; none gets a CORS header.
//! (`Referrer-Policy: no-referrer` would make browsers send `Origin: null`
//! on the studio's own form posts, so it is `same-origin`.)

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Studio;

/// The cookie that carries the token after the first visit, named per
/// port: browsers keep cookies per host, not per port, so two studios on
/// 127.0.0.1 must not overwrite each other's.
fn cookie_name(port: u16) -> String {
    format!("db_studio_{port}")
}

/// Scripts, styles and images from this server only; no frames, no plugins,
/// forms post only here.
/// `base-uri 'self'`: the layout's `<base>` (the prefix) is this server's.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'";

/// A fresh 256-bit token, hex.
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A fresh path prefix: `/` and 128 random bits in hex.
pub fn new_base() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("/{}", hex::encode(bytes))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, why.to_owned()).into_response()
}

/// The middleware that applies the rules above, then the headers.
pub async fn guard(State(studio): State<Arc<Studio>>, request: Request, next: Next) -> Response {
    let mut response = check(&studio, request, next).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn check(studio: &Studio, request: Request, next: Next) -> Response {
    let port = studio.port;
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if host != format!("127.0.0.1:{port}") && host != format!("localhost:{port}") {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden: the Host header is not this studio's address (127.0.0.1 or localhost)",
        );
    }

    let (path, base) = (request.uri().path().as_bytes(), studio.base.as_bytes());
    let under_base = path.len() >= base.len()
        && same(&path[..base.len()], base)
        && matches!(path.get(base.len()), None | Some(b'/'));
    if !under_base {
        return refuse(
            StatusCode::NOT_FOUND,
            "not found: open the URL `db studio` printed",
        );
    }

    let from_query = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(token) = from_query {
        if !same(token.as_bytes(), studio.token.as_bytes()) {
            return refuse(StatusCode::UNAUTHORIZED, "unauthorized: wrong token");
        }
        // Trade the token for the cookie and drop it from the address bar
        // (and from the history and any Referer).
        let rest: Vec<(String, String)> = request
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k != "token")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let mut location = request.uri().path().to_owned();
        if !rest.is_empty() {
            location.push('?');
            location.push_str(&super::html::query(&rest));
        }
        return Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, location)
            .header(
                header::SET_COOKIE,
                format!(
                    "{}={}; HttpOnly; SameSite=Strict; Path={}",
                    cookie_name(port),
                    studio.token,
                    studio.base
                ),
            )
            .body(Body::empty())
            .expect("static response");
    }

    let name = cookie_name(port);
    let cookie_ok = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == name && same(v.as_bytes(), studio.token.as_bytes()));
    if !cookie_ok {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized: open the URL `db studio` printed (it carries the token)",
        );
    }

    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if origin != format!("http://127.0.0.1:{port}")
            && origin != format!("http://localhost:{port}")
        {
            return refuse(
                StatusCode::FORBIDDEN,
                "forbidden: a state-changing request must come from a studio page (Origin)",
            );
        }
    }
    next.run(request).await
}
