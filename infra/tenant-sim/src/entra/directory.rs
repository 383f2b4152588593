//! App registrations per tenant: credentials, admin-consented grants, directory roles.

use std::collections::BTreeMap;

use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::der::{DecodePem, Encode};
use x509_cert::Certificate;

use crate::ids::{self, SimRng};
use crate::scenario::{AppSpec, CertificateSpec, TenantSpec};
use crate::time::Instant;

#[derive(Debug, Clone)]
pub struct RegisteredSecret {
    pub value: String,
    pub expires: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct RegisteredCert {
    pub sha1: Vec<u8>,
    pub sha256: Vec<u8>,
    pub public_key: RsaPublicKey,
    pub not_before: Instant,
    pub not_after: Instant,
}

#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    pub display_name: String,
    /// Object id of the app's service principal in this tenant (`oid`, `sub`).
    pub sp_object_id: String,
    pub secrets: Vec<RegisteredSecret>,
    pub certs: Vec<RegisteredCert>,
    pub grants: BTreeMap<String, Vec<String>>,
    pub directory_roles: Vec<String>,
    pub disabled: bool,
    /// Mailboxes the app's Mail permissions reach (an application access policy); None: all.
    pub mailbox_scope: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub domain: String,
    pub apps: Vec<App>,
    pub cloud: super::resources::Cloud,
    pub license: crate::scenario::EntraLicense,
}

#[derive(Debug, thiserror::Error)]
#[error("tenants[{tenant}].apps[{app}].{field}: {reason}")]
pub struct DirectoryError {
    pub tenant: usize,
    pub app: usize,
    pub field: String,
    pub reason: String,
}

impl Tenant {
    pub fn build(no: usize, spec: &TenantSpec, rng: &mut SimRng) -> Result<Tenant, DirectoryError> {
        let apps = spec
            .apps
            .iter()
            .enumerate()
            .map(|(ai, a)| App::build(a, rng).map_err(|(field, reason)| DirectoryError { tenant: no, app: ai, field, reason }))
            .collect::<Result<_, _>>()?;
        Ok(Tenant { id: spec.id.clone(), domain: spec.domain.clone(), apps, cloud: spec.cloud, license: spec.entra_license })
    }

    /// Matches a tenant named in a URL: its id or its domain, case-insensitively.
    pub fn is_named(&self, name: &str) -> bool {
        self.id.eq_ignore_ascii_case(name) || self.domain.eq_ignore_ascii_case(name)
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }
}

impl App {
    fn build(spec: &AppSpec, rng: &mut SimRng) -> Result<App, (String, String)> {
        let secrets = spec
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let expires =
                    s.expires.as_deref().map(Instant::parse).transpose().map_err(|e| (format!("secrets[{i}].expires"), e.to_string()))?;
                Ok(RegisteredSecret { value: s.value.clone(), expires })
            })
            .collect::<Result<_, (String, String)>>()?;
        let certs = spec
            .certificates
            .iter()
            .enumerate()
            .map(|(i, c)| register_certificate(c).map_err(|r| (format!("certificates[{i}]"), r)))
            .collect::<Result<_, _>>()?;
        Ok(App {
            client_id: spec.client_id.clone(),
            display_name: spec.display_name.clone(),
            sp_object_id: ids::guid(rng),
            secrets,
            certs,
            grants: spec.grants.clone(),
            directory_roles: spec.directory_roles.clone(),
            disabled: spec.disabled,
            mailbox_scope: spec.mailbox_scope.clone(),
        })
    }
}

fn register_certificate(c: &CertificateSpec) -> Result<RegisteredCert, String> {
    let pem = match (&c.pem, &c.pem_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?,
        (None, None) => return Err("give `pem` or `pem_file`".into()),
    };
    parse_certificate(&pem)
}

/// Reads a PEM certificate the way Entra keeps a key credential: thumbprints,
/// RSA public key, validity.
pub fn parse_certificate(pem: &str) -> Result<RegisteredCert, String> {
    let cert = Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("not a PEM X.509 certificate: {e}"))?;
    let der = cert.to_der().map_err(|e| e.to_string())?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| e.to_string())?;
    let public_key = RsaPublicKey::from_public_key_der(&spki).map_err(|e| format!("Entra takes RSA certificates only: {e}"))?;
    let validity = &cert.tbs_certificate.validity;
    let secs = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    Ok(RegisteredCert {
        sha1: Sha1::digest(&der).to_vec(),
        sha256: Sha256::digest(&der).to_vec(),
        public_key,
        not_before: Instant::from_unix_seconds(secs(validity.not_before)),
        not_after: Instant::from_unix_seconds(secs(validity.not_after)),
    })
}
