//! The bearer token a server may require: read from a flag, an environment variable or a file,
//! and checked on the request head, in constant time, before any of the body is read.

use std::path::Path;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use subtle::ConstantTimeEq;

use crate::problem::Problem;
use crate::Error;

/// A bearer token (never printed: `Debug` hides it).
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

impl Token {
    /// The token given directly, else the one in `file` (surrounding whitespace, such as the
    /// final newline of a mounted secret, removed), else none.
    pub fn resolve(direct: Option<&str>, file: Option<&Path>) -> Result<Option<Token>, Error> {
        let (text, what) = match (direct, file) {
            (Some(t), _) => (t.to_string(), "given"),
            (None, Some(path)) => (
                std::fs::read_to_string(path).map_err(|source| Error::TokenFile {
                    path: path.to_path_buf(),
                    source,
                })?,
                "in the token file",
            ),
            (None, None) => return Ok(None),
        };
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::BadToken(what));
        }
        Ok(Some(Token(text.as_bytes().to_vec())))
    }

    /// The token's text, for a server that must present it to its peers (the broker's cluster
    /// RPCs). It was read as text, so it always is.
    pub fn secret(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Whether `Authorization: Bearer <token>` carries this token. The comparison takes the
    /// same time wherever the first difference is (the length is not secret).
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .and_then(|v| strip_scheme(v, b"bearer "))
            .map(<[u8]>::trim_ascii)
            .unwrap_or_default();
        given.ct_eq(&self.0).into()
    }
}

/// The credentials after `scheme` (matched case-insensitively, as RFC 9110 says schemes are).
fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &value[scheme.len()..])
}

/// The 401 answer: problem+json with `WWW-Authenticate: Bearer`.
pub fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "this resource needs an Authorization: Bearer <token> header with the server's token",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn only_the_whole_token_is_admitted() {
        let token = Token::resolve(Some("s3cret"), None).unwrap().unwrap();
        assert!(token.admits(&headers("Bearer s3cret")));
        assert!(token.admits(&headers("bearer  s3cret ")));
        assert!(!token.admits(&headers("Bearer s3creT")));
        assert!(!token.admits(&headers("Bearer s3cret1")));
        assert!(!token.admits(&headers("Basic s3cret")));
        assert!(!token.admits(&HeaderMap::new()));
    }

    #[test]
    fn a_token_file_is_read_and_trimmed_and_an_empty_one_refused() {
        let dir = std::env::temp_dir().join(format!("token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let token = Token::resolve(None, Some(&file)).unwrap().unwrap();
        assert!(token.admits(&headers("Bearer from-file")));
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            Token::resolve(None, Some(&file)),
            Err(Error::BadToken(_))
        ));
        assert!(matches!(
            Token::resolve(None, Some(&dir.join("missing"))),
            Err(Error::TokenFile { .. })
        ));
        assert!(Token::resolve(None, None).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
