//! Verifies a client assertion as Entra does (certificate-credentials.md, both
//! stored versions): RS256 with `x5t` (SHA-1) or PS256 with `x5t#S256`
//! (SHA-256), signed by a certificate registered on the app; `aud` the token
//! endpoint; `iss` = `sub` = client id; `exp`, `nbf` when present; a `jti`. An assertion may be
//! used again while it is valid: Entra accepts it, and MSAL relies on that (it reuses one
//! signed assertion for minutes). Nothing documents a one-time `jti` check on Entra's side.

use super::directory::{App, RegisteredCert};
use super::error::EntraError;
use super::jwt::{b64url_decode, Jws};
use crate::time::Instant;

/// Entra tolerates this much clock skew on `nbf`/`exp`.
const SKEW_SECS: i64 = 300;

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn key_doc() -> &'static str {
    "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials ."
}

fn malformed(reason: &str) -> EntraError {
    EntraError::client(50027, format!("JWT token is invalid or malformed. [Reason - {reason}]"))
}

pub struct AssertionContext<'a> {
    pub app: &'a App,
    pub client_id: &'a str,
    /// Every `aud` value Entra would accept for this tenant's token endpoint.
    pub audiences: Vec<String>,
    pub now: Instant,
}

/// Checks the assertion and returns the registered certificate that signed it.
pub fn verify<'a>(assertion: &str, ctx: &AssertionContext<'a>) -> Result<&'a RegisteredCert, EntraError> {
    let jws = Jws::parse(assertion).ok_or_else(|| malformed("the client_assertion is not a compact JWS"))?;
    let alg = jws.header_str("alg").unwrap_or_default();
    let (thumb, by_sha256) = match (jws.header_str("x5t#S256"), jws.header_str("x5t")) {
        (Some(t), _) => (t, true),
        (None, Some(t)) => (t, false),
        (None, None) => return Err(malformed("the header has neither x5t#S256 nor x5t")),
    };
    let thumb = b64url_decode(thumb).ok_or_else(|| malformed("the thumbprint is not base64url"))?;
    let cert = ctx
        .app
        .certs
        .iter()
        .find(|c| if by_sha256 { c.sha256 == thumb } else { c.sha1 == thumb })
        .ok_or_else(|| {
            EntraError::client(
                700027,
                format!(
                    "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                    hex_upper(&thumb),
                    ctx.client_id
                ),
            )
        })?;
    if ctx.now > cert.not_after || ctx.now < cert.not_before {
        return Err(EntraError::client(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{}', Found key 'Start={}, End={}']",
                hex_upper(&thumb),
                cert.not_before.entra(),
                cert.not_after.entra()
            ),
        ));
    }
    let signed = match alg {
        "RS256" => jws.verify_rs256(&cert.public_key),
        "PS256" => jws.verify_ps256(&cert.public_key),
        other => return Err(malformed(&format!("unsupported alg '{other}'; use PS256 or RS256"))),
    };
    if !signed {
        return Err(EntraError::client(700027, format!("Client assertion failed signature validation. {}", key_doc())));
    }
    let aud = jws.claim_str("aud").unwrap_or_default();
    if !ctx.audiences.iter().any(|a| a.eq_ignore_ascii_case(aud)) {
        return Err(EntraError::client(
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. Expected '{}', got '{aud}'. {}",
                ctx.audiences.first().map_or("", String::as_str),
                key_doc()
            ),
        ));
    }
    if jws.claim_str("iss") != Some(ctx.client_id) || jws.claim_str("sub") != Some(ctx.client_id) {
        return Err(EntraError::client(
            700021,
            format!("Client assertion application identifier doesn't match 'client_id' parameter. {}", key_doc()),
        ));
    }
    let now = ctx.now.unix_seconds();
    let exp = jws.claim_i64("exp").ok_or_else(|| malformed("the claim 'exp' is missing"))?;
    // MSAL for Python omits nbf (ms-apis.md §1): check it only when present.
    let nbf = jws.claim_i64("nbf");
    if exp + SKEW_SECS < now || nbf.is_some_and(|n| n - SKEW_SECS > now) {
        let show = |s: i64| Instant::from_unix_seconds(s).entra();
        return Err(EntraError::client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. {}",
                ctx.now.entra(),
                nbf.map_or("(not set)".to_owned(), show),
                show(exp),
                key_doc()
            ),
        ));
    }
    jws.claim_str("jti").ok_or_else(|| malformed("the claim 'jti' is missing"))?;
    Ok(cert)
}
