//! Who may use the HTTP API: bearer tokens (`http_auth_token`), HTTP basic authentication
//! against a Mosquitto password file (`http_password_file`), and requests without credentials
//! (`http_allow_anonymous`; by default only from loopback addresses).
//!
//! Credentials that are sent are always checked: a wrong token or password is refused even
//! where an anonymous request would be served, so a typo shows at once. Tokens are compared in
//! constant time; password hashes are checked off the network threads by the broker's
//! [`Authenticator`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use bytestring::ByteString;
use midge_core::Credentials;

use super::error::ApiError;
use super::routes::AppState;
use crate::security::Authenticator;

/// Who may send requests without credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    /// Only from a loopback address (the default).
    Loopback,
    /// From anywhere (`http_allow_anonymous true`).
    Always,
    /// Never (`http_allow_anonymous false`).
    Never,
}

/// The HTTP listener's authentication settings.
#[derive(Debug, Clone)]
pub struct HttpAuth {
    /// `http_auth_token` lines.
    pub tokens: Vec<String>,
    /// `http_password_file`, loaded.
    pub passwords: Option<Arc<Authenticator>>,
    /// `http_allow_anonymous`.
    pub anonymous: Anonymous,
}

/// The peer of the connection a request came on, put in the request's extensions by the
/// accept loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

impl HttpAuth {
    /// The `WWW-Authenticate` challenge naming the schemes this listener accepts.
    fn challenge(&self) -> HeaderValue {
        let mut schemes = Vec::new();
        if !self.tokens.is_empty() || self.passwords.is_none() {
            schemes.push("Bearer realm=\"midge\"");
        }
        if self.passwords.is_some() {
            schemes.push("Basic realm=\"midge\", charset=\"UTF-8\"");
        }
        HeaderValue::from_str(&schemes.join(", ")).unwrap_or(HeaderValue::from_static("Bearer"))
    }

    fn refuse(&self, message: &str) -> ApiError {
        let mut error = ApiError::new(StatusCode::UNAUTHORIZED, message);
        error.challenge = Some(self.challenge());
        error
    }

    /// Whether a request from `peer` with this `Authorization` header (if any) may go on.
    pub(crate) async fn check(
        &self,
        peer: Option<SocketAddr>,
        authorization: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        let Some(value) = authorization else {
            let loopback = peer.is_some_and(|p| p.ip().is_loopback() || is_mapped_loopback(&p));
            return match self.anonymous {
                Anonymous::Always => Ok(()),
                Anonymous::Loopback if loopback => Ok(()),
                _ => Err(self.refuse("credentials needed: a bearer token or a user name and password")),
            };
        };
        let text = std::str::from_utf8(value).map_err(|_| self.refuse("malformed Authorization header"))?;
        let (scheme, credentials) = text.trim().split_once(' ').unwrap_or((text, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let known = self.tokens.iter().fold(false, |found, token| {
                found | same(token.as_bytes(), credentials.as_bytes())
            });
            return if known {
                Ok(())
            } else {
                Err(self.refuse("unknown bearer token"))
            };
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Some(passwords) = &self.passwords else {
                return Err(self.refuse("basic authentication needs http_password_file"));
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .map_err(|_| self.refuse("malformed basic credentials"))?;
            let decoded =
                String::from_utf8(decoded).map_err(|_| self.refuse("malformed basic credentials"))?;
            let Some((user, password)) = decoded.split_once(':') else {
                return Err(self.refuse("malformed basic credentials"));
            };
            let verdict = passwords
                .verdict(
                    Some(&ByteString::from(user)),
                    Some(&Bytes::copy_from_slice(password.as_bytes())),
                )
                .await;
            return if verdict == Credentials::Valid {
                Ok(())
            } else {
                tracing::info!("HTTP API: bad user name or password for {user:?}.");
                Err(self.refuse("bad user name or password"))
            };
        }
        Err(self.refuse("unsupported authorization scheme; use Bearer or Basic"))
    }
}

/// `::ffff:127.0.0.1`, how a dual-stack socket may show an IPv4 loopback peer.
fn is_mapped_loopback(peer: &SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}

/// Equal bytes, compared in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The middleware in front of every protected route.
pub(crate) async fn require(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<Peer>().map(|p| p.0);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    match state.auth.check(peer, authorization.as_deref()).await {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(anonymous: Anonymous) -> HttpAuth {
        HttpAuth {
            tokens: vec!["0123456789abcdef".to_owned()],
            passwords: None,
            anonymous,
        }
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        format!("{ip}:5000").parse().ok()
    }

    #[tokio::test]
    async fn anonymous_requests_by_default_only_from_loopback() {
        let auth = auth(Anonymous::Loopback);
        assert!(auth.check(peer("127.0.0.1"), None).await.is_ok());
        assert!(auth.check(peer("[::1]"), None).await.is_ok());
        assert!(auth.check(peer("[::ffff:127.0.0.1]"), None).await.is_ok());
        let refused = auth.check(peer("10.0.0.7"), None).await.err();
        assert_eq!(refused.map(|e| e.status), Some(StatusCode::UNAUTHORIZED));
        assert!(Anonymous::Always != Anonymous::Never);
        assert!(
            self::auth(Anonymous::Always)
                .check(peer("10.0.0.7"), None)
                .await
                .is_ok()
        );
        assert!(
            self::auth(Anonymous::Never)
                .check(peer("127.0.0.1"), None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn tokens_are_checked_even_from_loopback() {
        let auth = auth(Anonymous::Loopback);
        let good = b"Bearer 0123456789abcdef".as_slice();
        assert!(auth.check(peer("10.0.0.7"), Some(good)).await.is_ok());
        assert!(
            auth.check(peer("127.0.0.1"), Some(b"Bearer 0123456789abcdeX"))
                .await
                .is_err()
        );
        assert!(auth.check(peer("127.0.0.1"), Some(b"Basic YTpi")).await.is_err());
        assert!(auth.check(peer("127.0.0.1"), Some(b"Negotiate x")).await.is_err());
        assert!(auth.check(peer("127.0.0.1"), Some(b"\xff\xfe")).await.is_err());
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
