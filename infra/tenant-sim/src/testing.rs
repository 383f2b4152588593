//! Helpers for tests that talk to the simulator: client certificates and
//! client assertions signed the two ways Entra accepts.

use rcgen::{date_time_ymd, CertificateParams, DnType, KeyPair, PKCS_RSA_SHA256};
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::entra::jwt::b64url;
use crate::ids;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlg {
    /// RS256 with `x5t` (SHA-1 thumbprint): the 2024 doc and MSAL's thumbprint path.
    Rs256,
    /// PS256 with `x5t#S256` (SHA-256 thumbprint): the 2025 doc.
    Ps256,
}

/// An RSA key and a self-signed certificate for it, as an admin would upload to an app registration.
pub struct ClientCertificate {
    pub cert_pem: String,
    /// PKCS#8 PEM ("BEGIN PRIVATE KEY").
    pub key_pem: String,
    pub sha1: Vec<u8>,
    pub sha256: Vec<u8>,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate").field("sha1", &hex(&self.sha1)).field("key_pem", &"***").finish()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

impl ClientCertificate {
    /// Valid from 2020 to 2099.
    pub fn generate(seed: u64) -> Result<Self, String> {
        Self::with_validity(seed, (2020, 1, 1), (2099, 1, 1))
    }

    /// Expired at the end of 2021.
    pub fn generate_expired(seed: u64) -> Result<Self, String> {
        Self::with_validity(seed, (2020, 1, 1), (2021, 12, 31))
    }

    pub fn with_validity(seed: u64, from: (i32, u8, u8), to: (i32, u8, u8)) -> Result<Self, String> {
        let key = RsaPrivateKey::new(&mut ids::rng(seed, 0xCE), 2048).map_err(|e| e.to_string())?;
        let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
        let key_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?.to_string();
        let pair = KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der.as_bytes()), &PKCS_RSA_SHA256)
            .map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, "m365-ingest test client");
        params.not_before = date_time_ymd(from.0, from.1, from.2);
        params.not_after = date_time_ymd(to.0, to.1, to.2);
        let cert = params.self_signed(&pair).map_err(|e| e.to_string())?;
        Ok(ClientCertificate {
            sha1: Sha1::digest(cert.der()).to_vec(),
            sha256: Sha256::digest(cert.der()).to_vec(),
            cert_pem: cert.pem(),
            key_pem,
            key,
        })
    }

    /// SHA-1 thumbprint in hex, the form the Entra portal shows and MSAL takes.
    pub fn sha1_hex(&self) -> String {
        hex(&self.sha1)
    }

    /// A signed client assertion; `claims` may override or remove (null) defaults.
    pub fn assertion(&self, alg: AssertionAlg, client_id: &str, aud: &str, now_unix: i64, jti: &str, overrides: &Value) -> String {
        let header = match alg {
            AssertionAlg::Rs256 => json!({"alg": "RS256", "typ": "JWT", "x5t": b64url(&self.sha1)}),
            AssertionAlg::Ps256 => json!({"alg": "PS256", "typ": "JWT", "x5t#S256": b64url(&self.sha256)}),
        };
        let mut claims = json!({
            "aud": aud, "iss": client_id, "sub": client_id, "jti": jti,
            "nbf": now_unix, "iat": now_unix, "exp": now_unix + 600,
        });
        if let (Some(c), Some(o)) = (claims.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let digest = Sha256::digest(input.as_bytes());
        let sig = match alg {
            AssertionAlg::Rs256 => self.key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest),
            AssertionAlg::Ps256 => self.key.sign_with_rng(&mut ids::rng(now_unix as u64, 0x55), rsa::Pss::new::<Sha256>(), &digest),
        };
        format!("{input}.{}", b64url(&sig.unwrap_or_default()))
    }
}
