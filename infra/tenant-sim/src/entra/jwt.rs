//! JWTs: the simulator signs access tokens (RS256, like Entra) and checks them
//! when they come back; it also reads client assertions.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::ids::SimRng;

/// Base64url without padding, but tolerant of it on input (MSAL keeps `=` in `x5t`).
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let t = s.trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(t).ok().or_else(|| URL_SAFE.decode(s).ok())
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A parsed compact JWS: header, claims, and what the signature covers.
#[derive(Debug, Clone)]
pub struct Jws {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub signing_input: String,
    pub signature: Vec<u8>,
}

impl Jws {
    pub fn parse(token: &str) -> Option<Jws> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Map<String, Value> = serde_json::from_slice(&b64url_decode(h)?).ok()?;
        let claims: Map<String, Value> = serde_json::from_slice(&b64url_decode(c)?).ok()?;
        Some(Jws { header, claims, signing_input: format!("{h}.{c}"), signature: b64url_decode(s)? })
    }

    pub fn header_str(&self, k: &str) -> Option<&str> {
        self.header.get(k).and_then(Value::as_str)
    }

    pub fn claim_str(&self, k: &str) -> Option<&str> {
        self.claims.get(k).and_then(Value::as_str)
    }

    pub fn claim_i64(&self, k: &str) -> Option<i64> {
        self.claims.get(k).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    }

    pub fn verify_rs256(&self, key: &RsaPublicKey) -> bool {
        let digest = Sha256::digest(self.signing_input.as_bytes());
        key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &self.signature).is_ok()
    }

    pub fn verify_ps256(&self, key: &RsaPublicKey) -> bool {
        let digest = Sha256::digest(self.signing_input.as_bytes());
        key.verify(rsa::Pss::new::<Sha256>(), &digest, &self.signature).is_ok()
    }
}

/// The key the simulated Entra signs access tokens with.
#[derive(Debug)]
pub struct TokenSigner {
    key: RsaPrivateKey,
    public: RsaPublicKey,
    pub kid: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot create the token signing key: {0}")]
pub struct SignerError(String);

impl TokenSigner {
    pub fn generate(rng: &mut SimRng) -> Result<Self, SignerError> {
        let key = RsaPrivateKey::new(rng, 2048).map_err(|e| SignerError(e.to_string()))?;
        let public = key.to_public_key();
        let kid = b64url(&Sha1::digest(public.n().to_bytes_be()));
        Ok(TokenSigner { key, public, kid })
    }

    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "x5t": self.kid, "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64url(&serde_json::to_vec(&header).unwrap_or_default()),
            b64url(&serde_json::to_vec(claims).unwrap_or_default())
        );
        let digest = Sha256::digest(input.as_bytes());
        let sig = self.key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap_or_default();
        format!("{input}.{}", b64url(&sig))
    }

    /// The signing key as a JWKS entry (`/discovery/v2.0/keys`).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
            "n": b64url(&self.public.n().to_bytes_be()), "e": b64url(&self.public.e().to_bytes_be()),
        })
    }
}
