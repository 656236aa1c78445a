//! The HTTP interface: one module per area, merged into one router.

mod admin;
pub mod api;
pub mod archive;
mod assets;
pub mod auth;
mod confirm;
mod error;
mod extract;
mod feed;
mod feedback;
mod health;
pub mod limiter;
mod metrics;
mod pages;
pub mod password_checks;
pub mod server;
mod subscribe;
mod subscribers_api;
mod unsubscribe;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Request};
use axum::Router;
use tera::Tera;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::Newsletter;
use crate::config::Settings;
use crate::domain::Signer;
use crate::store::Store;

pub use error::AppError;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub signer: Signer,
    pub tera: Arc<Tera>,
    /// Words for the few reader-facing sentences built outside templates.
    pub catalogue: Arc<crate::i18n::Catalogue>,
    /// Failed editor logins, per address and per client.
    pub login_limiter: Arc<limiter::AttemptLimiter>,
    /// Sign-ups per client address.
    pub signup_limiter: Arc<limiter::AttemptLimiter>,
    /// Password checks of logins, bounded.
    pub password_checks: Arc<password_checks::PasswordChecks>,
    /// The archive index's lines, parsed once per report version.
    pub archive_entries: Arc<archive::ArchiveEntries>,
    /// The page that thanks a sign-up from the form: the same for every
    /// sign-up, so rendered once.
    pub signup_accepted_page: Arc<std::sync::OnceLock<String>>,
}

impl AppState {
    /// The service behind the editors' API and pages.
    pub fn newsletter(&self) -> Newsletter<'_> {
        Newsletter::new(&self.store, &self.settings)
    }

    /// The client's address: the peer, or the configured proxy header's
    /// last entry (the one our own proxy appended; earlier ones are the
    /// client's word and could be forged). A header sent on several lines
    /// is one list, so the last entry is on the last line.
    pub fn client_ip(
        &self,
        headers: &axum::http::HeaderMap,
        peer: std::net::SocketAddr,
    ) -> std::net::IpAddr {
        self.settings
            .client_ip_header
            .as_deref()
            .and_then(|name| headers.get_all(name).iter().next_back())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(peer.ip())
    }

    /// Where a client's attempts are counted from: an IPv4 client by its
    /// address, an IPv6 client by its /64, since one subscriber's network
    /// hands out as many addresses within it as anyone cares to use.
    pub fn client_network(
        &self,
        headers: &axum::http::HeaderMap,
        peer: std::net::SocketAddr,
    ) -> String {
        network_of(self.client_ip(headers, peer))
    }

    /// Whether a form was posted from our own pages. Browsers say where a
    /// POST comes from in `Sec-Fetch-Site`, or, older ones, in `Origin`;
    /// a client sending neither is not a browser used by another site, and
    /// passes. Pages that post such forms set a referrer policy under which
    /// browsers name our origin rather than "null".
    pub fn same_origin(&self, headers: &axum::http::HeaderMap) -> bool {
        if let Some(site) = headers.get("sec-fetch-site") {
            return matches!(site.as_bytes(), b"same-origin" | b"none");
        }
        match headers.get(header::ORIGIN) {
            Some(origin) => {
                origin.to_str().ok()
                    == Some(
                        self.settings
                            .base_url
                            .origin()
                            .ascii_serialization()
                            .as_str(),
                    )
            }
            None => true,
        }
    }
}

/// Requests larger than this are refused with 413 before a handler runs.
const BODY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Pages may load scripts and styles from us only, and never be framed;
/// images from us, and from the brand logo's origin when it has one.
fn content_security_policy(logo: Option<&url::Url>) -> HeaderValue {
    let logo_origin = logo
        .map(|url| format!(" {}", url.origin().ascii_serialization()))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:{logo_origin}; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).expect("an origin is a valid header value")
}

pub fn router(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        // The path only: query strings carry tokens, which must never be logged.
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
    });
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(state.settings.brand.logo_url.as_ref()),
        ))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"));

    let https = state.settings.base_url.scheme() == "https";
    Router::new()
        .merge(subscribe::routes(&state.settings.embed))
        .merge(api::routes())
        .merge(subscribers_api::routes())
        .merge(admin::routes())
        .merge(confirm::routes())
        .merge(unsubscribe::routes())
        .merge(feedback::routes())
        .merge(archive::routes())
        .merge(feed::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(assets::routes())
        .merge(webhooks::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(metrics::count_requests))
        .layer(axum::middleware::from_fn(move |request, next| {
            transport_and_cache_policy(https, request, next)
        }))
        .layer(middleware)
        .with_state(state)
}

/// Editors' pages, the API and their CSV downloads hold readers' data: no
/// cache (a shared one, or the browser's on a shared computer) may keep
/// them. Over https, browsers are told never to use plain http here again.
async fn transport_and_cache_policy(
    https: bool,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path();
    let private = ["/admin", "/api/"]
        .iter()
        .any(|prefix| path == prefix.trim_end_matches('/') || path.starts_with(prefix));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if private {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// No such address: a browser (a reader following an old or mistyped
/// link) gets a page in the publication's language; a program gets JSON.
async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    match wants_html {
        true => state.message_page(
            axum::http::StatusCode::NOT_FOUND,
            "page-not-found-heading",
            "page-not-found-message",
            false,
        ),
        false => axum::response::IntoResponse::into_response(AppError::NotFound("no such page")),
    }
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// An IPv4 address as it is; an IPv6 address as its /64 (an IPv4 address
/// written as IPv6 is the IPv4 address).
pub fn network_of(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            let network = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{network}/64")
        }
    }
}

#[cfg(test)]
mod network_tests {
    use super::network_of;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let at = |s: &str| network_of(s.parse().unwrap());
        assert_eq!(at("2001:db8:1:2::1"), at("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(at("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(at("2001:db8:1:2::1"), at("2001:db8:1:3::1"));
        assert_eq!(at("::ffff:192.0.2.1"), "192.0.2.1");
        assert_ne!(at("192.0.2.1"), at("192.0.2.2"));
    }
}
