//! App-only tokens from Entra ID (client credentials): client secret or a certificate-signed
//! assertion (PS256, `x5t#S256`: certificate-credentials.md, 2025), cached per tenant, app and
//! audience until shortly before they expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RSA_PSS_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::retry::{parse_retry_after, RetryPolicy};
use crate::domain::integration::{Credential, Credentials};
use crate::error::GraphError;
use crate::secret::Secret;

/// The APIs tokens are asked for; the domain names them, the token provider uses them.
pub use crate::domain::permissions::{Api as Audience, TokenClaims};

/// Tokens are renewed this long before `expires_in` runs out, so none expires mid-request.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);
/// A token response is a few KB; anything near this is not one.
const TOKEN_BODY_LIMIT: usize = 1 << 20;
/// Assertions live 10 minutes (the doc suggests 5–10).
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// What a cached token was issued for: tenant, app, API and the credential that proved the app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    tenant: String,
    client: String,
    audience: Audience,
    credential: [u8; 32],
}

/// SHA-256 over the credential: tells two secrets (or certificates) apart without keeping either.
fn fingerprint(creds: &Credentials) -> [u8; 32] {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    match &creds.credential {
        Credential::ClientSecret(s) => {
            h.update(b"secret\0");
            h.update(s.expose().as_bytes());
        }
        Credential::Certificate { certificate_pem, private_key_pem } => {
            h.update(b"certificate\0");
            h.update(certificate_pem.as_bytes());
            h.update(b"\0");
            h.update(private_key_pem.expose().as_bytes());
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finish().as_ref());
    out
}

struct Cached {
    token: Secret,
    renew_at: Instant,
    claims: TokenClaims,
}

/// Acquires and caches tokens. Holds no secret beyond the cache; prints none.
pub struct TokenProvider {
    http: reqwest::Client,
    login_base: String,
    /// Each API's scope in the deployment's cloud.
    scopes: crate::domain::cloud::Scopes,
    policy: RetryPolicy,
    cache: Mutex<HashMap<CacheKey, Cached>>,
    rng: SystemRandom,
    /// Unix seconds for a client assertion's `nbf`/`exp`: the system's clock, or a simulated
    /// one where the identity platform is the simulator on a clock of its own.
    clock: Option<AssertionClock>,
}

/// "Now" in Unix seconds, for client assertions.
pub type AssertionClock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenProvider {
    pub fn new(http: reqwest::Client, login_base: &str, scopes: crate::domain::cloud::Scopes, policy: RetryPolicy) -> Self {
        TokenProvider {
            http,
            login_base: login_base.trim_end_matches('/').to_owned(),
            scopes,
            policy,
            cache: Mutex::new(HashMap::new()),
            rng: SystemRandom::new(),
            clock: None,
        }
    }

    /// Client assertions dated by `clock` rather than the system's.
    pub fn set_assertion_clock(&mut self, clock: AssertionClock) {
        self.clock = Some(clock);
    }

    fn key(creds: &Credentials, aud: Audience) -> CacheKey {
        CacheKey { tenant: creds.tenant_id.clone(), client: creds.client_id.clone(), audience: aud, credential: fingerprint(creds) }
    }

    /// A valid token for `aud`, from the cache or from Entra ID. The cache is keyed by the
    /// credential itself too, so a token got with one secret never answers for another.
    pub async fn token(&self, creds: &Credentials, aud: Audience) -> Result<Secret, GraphError> {
        let key = Self::key(creds, aud);
        if let Some(c) = self.cache.lock().await.get(&key) {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        self.fetch(creds, aud, key).await
    }

    /// A token straight from Entra ID, whatever the cache holds: Test & Save proves the
    /// credential it was given, never one that worked an hour ago.
    pub async fn fresh_token(&self, creds: &Credentials, aud: Audience) -> Result<Secret, GraphError> {
        self.fetch(creds, aud, Self::key(creds, aud)).await
    }

    async fn fetch(&self, creds: &Credentials, aud: Audience, key: CacheKey) -> Result<Secret, GraphError> {
        let (token, expires_in) = self.request(creds, aud).await?;
        let claims = token_claims(token.expose());
        let lifetime = Duration::from_secs(expires_in).saturating_sub(RENEW_BEFORE).max(Duration::from_secs(expires_in / 2));
        self.cache.lock().await.insert(key, Cached { token: token.clone(), renew_at: Instant::now() + lifetime, claims });
        Ok(token)
    }

    /// Forgets a token Graph refused (401), so the next call gets a fresh one.
    pub async fn invalidate(&self, creds: &Credentials, aud: Audience) {
        self.cache.lock().await.remove(&Self::key(creds, aud));
    }

    /// The `roles` claim of the cached token: the application permissions granted, or None when
    /// the token has no `roles` claim at all (no admin consent).
    pub async fn roles(&self, creds: &Credentials, aud: Audience) -> Option<Option<Vec<String>>> {
        self.cache.lock().await.get(&Self::key(creds, aud)).map(|c| c.claims.roles.clone())
    }

    /// A token for `aud` freshly issued by Entra ID, and what it says about the app's access.
    pub async fn claims(&self, creds: &Credentials, aud: Audience) -> Result<TokenClaims, GraphError> {
        let token = self.fresh_token(creds, aud).await?;
        Ok(token_claims(token.expose()))
    }

    async fn request(&self, creds: &Credentials, aud: Audience) -> Result<(Secret, u64), GraphError> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.login_base, creds.tenant_id);
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            // A 429 that says how long to wait is expected (debug); any other retry warns.
            let mut throttled = false;
            let mut form: Vec<(&str, String)> = vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", creds.client_id.clone()),
                ("scope", self.scopes.of(aud).into()),
            ];
            match &creds.credential {
                Credential::ClientSecret(s) => form.push(("client_secret", s.expose().to_owned())),
                Credential::Certificate { certificate_pem, private_key_pem } => {
                    let assertion = self.assertion(&url, &creds.client_id, certificate_pem, private_key_pem)?;
                    form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                    form.push(("client_assertion", assertion.expose().to_owned()));
                }
            }
            let outcome: Result<std::convert::Infallible, (GraphError, Option<Duration>)> =
                match self.http.post(&url).form(&form).send().await {
                    Err(e) => Err((GraphError::Transport { what: "the token endpoint".into(), detail: without_url(&e) }, None)),
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let retry_after = parse_retry_after(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()));
                        throttled = status == 429;
                        match super::body::read_capped(resp, "the token endpoint", TOKEN_BODY_LIMIT).await {
                            Err(super::body::BodyError::TooLarge(e)) => return Err(e),
                            Err(super::body::BodyError::Transport(e)) => {
                                Err((GraphError::Transport { what: "the token endpoint".into(), detail: without_url(&e) }, retry_after))
                            }
                            Ok(body) if status == 200 => match serde_json::from_slice::<TokenResponse>(&body) {
                                Ok(t) => return Ok((t.access_token, t.expires_in)),
                                Err(e) => Err((GraphError::Decode { what: "the token response".into(), detail: e.to_string() }, None)),
                            },
                            Ok(body) => {
                                let e: TokenErrorBody = serde_json::from_slice(&body).unwrap_or_default();
                                let first_line = e.error_description.lines().next().unwrap_or_default().to_owned();
                                let retryable = status == 429 || status >= 500 || e.error == "temporarily_unavailable";
                                let err = GraphError::Token {
                                    code: if e.error.is_empty() { format!("HTTP {status}") } else { e.error },
                                    description: first_line,
                                    retryable,
                                };
                                if !retryable {
                                    return Err(err);
                                }
                                Err((err, retry_after))
                            }
                        }
                    }
                };
            let Err((err, retry_after)) = outcome;
            attempt += 1;
            let delay = self.policy.delay(attempt, retry_after);
            if !self.policy.allows(attempt, started.elapsed(), delay) {
                return Err(err);
            }
            if throttled && retry_after.is_some() {
                tracing::debug!(expected_retry = true, attempt, delay_ms = delay.as_millis() as u64, error = %err, "token request throttled, retrying as asked");
            } else {
                tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "token request failed, retrying");
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// A client assertion signed with the certificate's key.
    fn assertion(&self, aud: &str, client_id: &str, certificate_pem: &str, key_pem: &Secret) -> Result<Secret, GraphError> {
        let cert = CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .map_err(|e| GraphError::Credential(format!("certificate_pem is not a PEM certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
            .map_err(|_| GraphError::Credential("private_key_pem is not a PEM private key (PKCS#8 or PKCS#1 RSA)".into()))?;
        let pair = match &key {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(GraphError::Credential("private_key_pem must be an RSA key (Entra takes RSA certificates)".into())),
        }
        .map_err(|_| GraphError::Credential("private_key_pem is not a usable RSA key".into()))?;
        let thumb = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        let header = serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": URL_SAFE_NO_PAD.encode(thumb.as_ref())});
        let now = self.clock.as_ref().map_or_else(|| chrono::Utc::now().timestamp(), |c| c());
        let mut jti = [0u8; 16];
        self.rng.fill(&mut jti).map_err(|_| GraphError::Credential("no randomness for the assertion id".into()))?;
        let claims = serde_json::json!({
            "aud": aud, "iss": client_id, "sub": client_id, "jti": uuid(jti),
            "nbf": now, "iat": now, "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(&RSA_PSS_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .map_err(|_| GraphError::Credential("signing the assertion failed".into()))?;
        Ok(Secret::new(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))))
    }
}

fn uuid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// reqwest errors print the URL; ours carry none of the query (no secrets there, but no noise).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response body was cut off or unreadable"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// The `roles` claim of an access token, decoded without verification (diagnostics only).
pub fn roles_claim(jwt: &str) -> Option<Vec<String>> {
    token_claims(jwt).roles
}

/// The `roles` and `wids` claims of an access token, decoded without verification.
pub fn token_claims(jwt: &str) -> TokenClaims {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).or_else(|_| STANDARD.decode(payload)).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let strings =
        |k: &str| -> Option<Vec<String>> { Some(v.get(k)?.as_array()?.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect()) };
    TokenClaims { roles: strings("roles"), wids: strings("wids").unwrap_or_default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"roles":["SecurityAlert.Read.All"],"tid":"t"}"#);
        assert_eq!(roles_claim(&format!("h.{payload}.s")), Some(vec!["SecurityAlert.Read.All".to_owned()]));
        let none = URL_SAFE_NO_PAD.encode(r#"{"tid":"t"}"#);
        assert_eq!(roles_claim(&format!("h.{none}.s")), None);
    }

    #[test]
    fn ids_are_v4_uuids() {
        let u = uuid([0xff; 16]);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
