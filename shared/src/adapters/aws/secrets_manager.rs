//! Integration credentials from Secrets Manager: one JSON secret per integration.
//!
//! ```json
//! {"tenant_id": "<GUID>", "client_id": "<GUID>", "client_secret": "<value>"}
//! {"tenant_id": "<GUID>", "client_id": "<GUID>", "certificate_pem": "-----BEGIN CERTIFICATE-----…", "private_key_pem": "-----BEGIN PRIVATE KEY-----…"}
//! ```

use aws_sdk_secretsmanager::Client;
use serde::Deserialize;

use super::sdk::describe;
use crate::domain::integration::{Credential, Credentials};
use crate::error::SecretError;
use crate::ports::{SecretSource, SecretWriter};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct SecretsManagerSource {
    client: Client,
}

impl SecretsManagerSource {
    pub fn new(client: Client) -> Self {
        SecretsManagerSource { client }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretDoc {
    tenant_id: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<Secret>,
    #[serde(default)]
    certificate_pem: Option<String>,
    #[serde(default)]
    private_key_pem: Option<Secret>,
}

/// Reads the secret's JSON; every problem names the field and never echoes a value.
pub fn parse_secret(secret_ref: &str, json: &str) -> Result<Credentials, SecretError> {
    let bad = |problem: String| SecretError::Invalid { secret_ref: secret_ref.to_owned(), problem };
    let doc: SecretDoc = serde_json::from_str(json).map_err(|e| bad(crate::secret::serde_message_without_values(&e)))?;
    let credential = match (doc.client_secret, doc.certificate_pem, doc.private_key_pem) {
        (Some(s), None, None) if !s.expose().is_empty() => Credential::ClientSecret(s),
        (None, Some(c), Some(k)) => {
            if !c.contains("BEGIN CERTIFICATE") {
                return Err(bad("certificate_pem must be a PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
            }
            if !k.expose().contains("PRIVATE KEY") {
                return Err(bad("private_key_pem must be a PEM private key (-----BEGIN PRIVATE KEY-----)".into()));
            }
            Credential::Certificate { certificate_pem: c, private_key_pem: k }
        }
        (None, Some(_), None) => return Err(bad("private_key_pem is missing: a certificate needs its private key".into())),
        (None, None, Some(_)) => return Err(bad("certificate_pem is missing: a private key needs its certificate".into())),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(bad("give either client_secret or certificate_pem + private_key_pem, not both".into()))
        }
        _ => return Err(bad("client_secret is missing or empty (or give certificate_pem + private_key_pem)".into())),
    };
    if doc.tenant_id.is_empty() {
        return Err(bad("tenant_id is empty".into()));
    }
    if doc.client_id.is_empty() {
        return Err(bad("client_id is empty".into()));
    }
    Ok(Credentials {
        tenant_id: crate::domain::integration::normalize_guid(&doc.tenant_id),
        client_id: crate::domain::integration::normalize_guid(&doc.client_id),
        credential,
    })
}

impl SecretSource for SecretsManagerSource {
    async fn load(&self, secret_ref: &str) -> Result<Credentials, SecretError> {
        let out = self.client.get_secret_value().secret_id(secret_ref).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) {
                SecretError::NotFound { secret_ref: secret_ref.to_owned() }
            } else if e.as_service_error().and_then(|se| se.meta().code()) == Some("AccessDeniedException") {
                // What IAM answers for a secret outside the functions' policies (SecretPrefix).
                SecretError::Store {
                    detail: format!(
                        "this function's role may not read `{secret_ref}`: the functions read only secrets named under the stack's SecretPrefix (m365-ingest/ by default); store the credentials there and point secret_ref at them"
                    ),
                    retryable: false,
                }
            } else {
                SecretError::Store { detail: describe(&e), retryable: super::sdk::sdk_retryable(&e) }
            }
        })?;
        let json = out.secret_string().ok_or_else(|| SecretError::Invalid {
            secret_ref: secret_ref.to_owned(),
            problem: "the secret has no SecretString (binary secrets are not supported)".into(),
        })?;
        parse_secret(secret_ref, json)
    }
}

/// Credentials given for a document rather than read from a secret: the secret's fields
/// (`client_secret`, or `certificate_pem` + `private_key_pem`), with the tenant and client of
/// the document unless `given` names others. `label` names them in errors.
pub fn credentials_for(
    label: &str,
    tenant_id: &str,
    client_id: &str,
    given: serde_json::Map<String, serde_json::Value>,
) -> Result<Credentials, SecretError> {
    let mut v = serde_json::Map::new();
    v.insert("tenant_id".into(), tenant_id.into());
    v.insert("client_id".into(), client_id.into());
    v.extend(given);
    parse_secret(label, &serde_json::Value::Object(v).to_string())
}

/// The secret's JSON for `creds`, in the format `parse_secret` reads.
pub fn secret_json(creds: &Credentials) -> Secret {
    let mut v = serde_json::json!({"tenant_id": creds.tenant_id, "client_id": creds.client_id});
    match &creds.credential {
        Credential::ClientSecret(s) => v["client_secret"] = s.expose().into(),
        Credential::Certificate { certificate_pem, private_key_pem } => {
            v["certificate_pem"] = certificate_pem.as_str().into();
            v["private_key_pem"] = private_key_pem.expose().into();
        }
    }
    Secret::new(v.to_string())
}

/// Days a removed integration's secret can still be restored (Secrets Manager's minimum is 7).
const RECOVERY_WINDOW_DAYS: i64 = 7;

impl SecretWriter for SecretsManagerSource {
    async fn put(&self, name: &str, credentials: &Credentials) -> Result<String, SecretError> {
        let value = secret_json(credentials);
        let store = |e: String, retryable: bool| SecretError::Store { detail: e, retryable };
        match self.client.put_secret_value().secret_id(name).secret_string(value.expose()).send().await {
            Ok(out) => Ok(out.arn().unwrap_or(name).to_owned()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => {
                let out = self
                    .client
                    .create_secret()
                    .name(name)
                    .description("m365-ingest integration credentials (Entra ID app registration)")
                    .secret_string(value.expose())
                    .send()
                    .await
                    .map_err(|e| store(describe(&e), !matches!(e, aws_sdk_secretsmanager::error::SdkError::ServiceError(_))))?;
                Ok(out.arn().unwrap_or(name).to_owned())
            }
            Err(e) => Err(store(describe(&e), !matches!(e, aws_sdk_secretsmanager::error::SdkError::ServiceError(_)))),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        match self.client.delete_secret().secret_id(name).recovery_window_in_days(RECOVERY_WINDOW_DAYS).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => Ok(()),
            Err(e) => Err(SecretError::Store { detail: describe(&e), retryable: false }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_secrets_read_back() {
        let creds = parse_secret("s", r#"{"tenant_id":"t","client_id":"c","client_secret":"v\"q"}"#).unwrap();
        let back = parse_secret("s", secret_json(&creds).expose()).unwrap();
        assert!(matches!(back.credential, Credential::ClientSecret(ref s) if s.expose() == "v\"q"));
        assert_eq!((back.tenant_id.as_str(), back.client_id.as_str()), ("t", "c"));
    }

    #[test]
    fn accepts_a_secret_or_a_certificate() {
        let c = parse_secret("s", r#"{"tenant_id":"t","client_id":"c","client_secret":"v"}"#).unwrap();
        assert!(matches!(c.credential, Credential::ClientSecret(ref s) if s.expose() == "v"));
        let c = parse_secret("s", r#"{"tenant_id":"t","client_id":"c","certificate_pem":"-----BEGIN CERTIFICATE-----x","private_key_pem":"-----BEGIN PRIVATE KEY-----y"}"#).unwrap();
        assert!(matches!(c.credential, Credential::Certificate { .. }));
    }

    #[test]
    fn problems_name_the_field_and_hide_the_value() {
        for (json, needle) in [
            (r#"{"tenant_id":"t","client_id":"c"}"#, "client_secret is missing"),
            (r#"{"tenant_id":"t","client_id":"c","client_secret":"hunter2","certificate_pem":"x"}"#, "either client_secret"),
            (r#"{"tenant_id":"t","client_id":"c","certificate_pem":"-----BEGIN CERTIFICATE-----"}"#, "private_key_pem is missing"),
            (r#"{"tenant_id":"t","client_id":"c","client_secrt":"hunter2"}"#, "unknown field `client_secrt`"),
            (r#"{"tenant_id":"t","client_id":"c","client_secret":"hunter2""#, "not valid JSON"),
            // A secret stored as a bare string, or a value of the wrong type, is not echoed.
            (r#""hunter2""#, "invalid type: string given"),
            (r#"{"tenant_id":"t","client_id":"c","client_secret":["hunter2"]}"#, "invalid type: sequence given"),
            (r#"{"tenant_id":"t","client_id":"c","client_secret":7654321}"#, "invalid type: integer given"),
        ] {
            let e = parse_secret("s", json).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("7654321"), "{e}");
        }
    }
}
