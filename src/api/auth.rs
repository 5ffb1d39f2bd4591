//! Who may do what: the API's bearer token and the git webhook's
//! signatures. Pure checks on bytes; the handlers turn them into responses.
//!
//! Secrets are compared in constant time, and through their SHA-256 so that
//! not even their length leaks through timing.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret read from a file or the environment. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from text; surrounding whitespace (a file's trailing
    /// newline) is not part of it. `None` when nothing is left.
    pub fn new(text: &str) -> Option<Secret> {
        let t = text.trim();
        (!t.is_empty()).then(|| Secret(t.as_bytes().to_vec()))
    }

    /// Whether `offered` is this secret, in time independent of both.
    pub fn matches(&self, offered: &[u8]) -> bool {
        let a = Sha256::digest(&self.0);
        let b = Sha256::digest(offered);
        a.ct_eq(&b).into()
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error(
        "no API token is configured, so this endpoint is disabled (set DRIFTCRON_API_TOKEN or --api-token-file)"
    )]
    Disabled,
    #[error("missing credentials: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error(
        "no webhook secret is configured, so /hooks/git is disabled (set DRIFTCRON_WEBHOOK_SECRET or --webhook-secret-file)"
    )]
    WebhookDisabled,
    #[error("unsigned webhook: send GitHub's X-Hub-Signature-256 or GitLab's X-Gitlab-Token")]
    Unsigned,
    #[error("invalid webhook signature")]
    BadSignature,
}

/// Checks an `Authorization` header value against the token.
///
/// # Errors
/// Which check failed.
pub fn check_bearer(token: Option<&Secret>, header: Option<&[u8]>) -> Result<(), Denied> {
    let token = token.ok_or(Denied::Disabled)?;
    let header = header.ok_or(Denied::Missing)?;
    let offered = header
        .strip_prefix(b"Bearer ")
        .or_else(|| header.strip_prefix(b"bearer "))
        .ok_or(Denied::Missing)?;
    if token.matches(offered.trim_ascii()) {
        Ok(())
    } else {
        Err(Denied::Invalid)
    }
}

/// An incremental check of a GitHub `X-Hub-Signature-256` over a body that
/// arrives in chunks, so a large push payload is never held in memory.
pub struct GithubSignature {
    mac: Hmac<Sha256>,
    expected: Vec<u8>,
}

impl GithubSignature {
    /// Starts checking `header` (`sha256=<64 hex digits>`).
    ///
    /// # Errors
    /// [`Denied::BadSignature`] when the header is not of that form.
    pub fn start(secret: &Secret, header: &[u8]) -> Result<GithubSignature, Denied> {
        let hex = header
            .strip_prefix(b"sha256=")
            .ok_or(Denied::BadSignature)?;
        let expected = decode_hex(hex.trim_ascii()).ok_or(Denied::BadSignature)?;
        if expected.len() != 32 {
            return Err(Denied::BadSignature);
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).map_err(|_| Denied::Disabled)?;
        Ok(GithubSignature { mac, expected })
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.mac.update(chunk);
    }

    /// Whether the body read so far carries the signature (constant time).
    ///
    /// # Errors
    /// [`Denied::BadSignature`].
    pub fn finish(self) -> Result<(), Denied> {
        self.mac
            .verify_slice(&self.expected)
            .map_err(|_| Denied::BadSignature)
    }
}

/// The signature GitHub sends for `body` (for clients and tests).
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.trim().as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::from("sha256=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn decode_hex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in GitHub's "Validating webhook deliveries" docs.
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_reference_vector() {
        assert_eq!(github_signature(SECRET, BODY), SIG);
        let secret = Secret::new(SECRET).unwrap();
        let mut check = GithubSignature::start(&secret, SIG.as_bytes()).unwrap();
        check.update(&BODY[..5]);
        check.update(&BODY[5..]);
        assert_eq!(check.finish(), Ok(()));

        let mut check = GithubSignature::start(&secret, SIG.as_bytes()).unwrap();
        check.update(b"Hello, World?");
        assert_eq!(check.finish(), Err(Denied::BadSignature));
        for bad in ["", "sha256=", "sha1=abcd", "sha256=zz", "sha256=abcd"] {
            assert!(
                GithubSignature::start(&secret, bad.as_bytes()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bearer_tokens() {
        let t = Secret::new("s3cret\n").unwrap();
        assert_eq!(
            check_bearer(None, Some(b"Bearer s3cret")),
            Err(Denied::Disabled)
        );
        assert_eq!(check_bearer(Some(&t), None), Err(Denied::Missing));
        assert_eq!(
            check_bearer(Some(&t), Some(b"Basic s3cret")),
            Err(Denied::Missing)
        );
        assert_eq!(
            check_bearer(Some(&t), Some(b"Bearer s3cre")),
            Err(Denied::Invalid)
        );
        assert_eq!(check_bearer(Some(&t), Some(b"Bearer s3cret")), Ok(()));
        assert!(Secret::new(" \n").is_none());
        assert_eq!(format!("{t:?}"), "Secret(..)");
    }
}
