//! Test & Save as a whole: the check, then, when it passes and the request asks for it, the
//! save: new credentials to the secret store first, then the record's next revision, which
//! relaxes a guard rail only where the request names it.

use super::features::check;
use super::report::{Report, Saved};
use crate::domain::field_error::FieldError;
use crate::domain::integration::doc::IntegrationDoc;
use crate::domain::integration::revision::{self as revision, Provenance, Relaxation};
use crate::domain::integration::Credentials;
use crate::domain::time::GraphTime;
use crate::ports::{IntegrationStore, MicrosoftProbe, SecretSource, SecretWriter};

/// The credentials to test: the ones stored under the document's `secret_ref`, or new ones
/// (written to Secrets Manager only if the check passes).
pub enum CredentialInput {
    Stored,
    New(Credentials),
}

/// A save as it was asked for: how, by whom, and which guard-rail relaxations the request
/// names (a relaxation it does not name is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Save {
    pub mode: SaveMode,
    /// The caller, as the revision records it.
    pub by: String,
    /// The fields (`remediation.mode`, `remediation.protect_privileged_roles`,
    /// `remediation.protected_users`, `remediation.protected_groups`, `filters`) whose
    /// relaxation the request allows.
    pub relax: Vec<String>,
}

/// The fields a request may name to allow a relaxation.
pub const RELAXABLE: &[&str] = &[
    "remediation.mode",
    "remediation.protect_privileged_roles",
    "remediation.protected_users",
    "remediation.protected_groups",
    "remediation.allowed_groups",
    "remediation.max_actions_per_hour",
    "remediation.actions",
    "filters",
];

impl SaveMode {
    /// This mode, saved by `who`, relaxing nothing.
    pub fn by(self, who: impl Into<String>) -> Save {
        Save { mode: self, by: who.into(), relax: Vec::new() }
    }
}

/// How a passing configuration is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Test only.
    No,
    /// A new integration: fails if the id exists.
    Create,
    /// A new revision of an existing integration (or the first).
    Update,
}

pub struct Checker<M, S, I, W> {
    pub microsoft: M,
    pub secrets: S,
    pub store: I,
    pub writer: W,
    /// Secret names the functions may read (the stack's SecretPrefix); empty = any.
    pub secret_prefix: String,
}

impl<M: MicrosoftProbe, S: SecretSource, I: IntegrationStore, W: SecretWriter> Checker<M, S, I, W> {
    /// Tests `doc` with its credentials and, when it passes and `save` says so, saves it:
    /// new credentials to the secret store first, then the record (so a saved record never
    /// points at a secret that was not written).
    pub async fn test_and_save(&self, doc: &IntegrationDoc, input: CredentialInput, request: Save, now: GraphTime) -> Report {
        let save = request.mode;
        let (creds, new) = match input {
            CredentialInput::New(c) => (Ok(c), true),
            CredentialInput::Stored => (self.secrets.load(&doc.secret_ref).await, false),
        };
        if let Some(problem) = secret_outside(&doc.secret_ref, &self.secret_prefix) {
            return Report::failed(&doc.id, vec![FieldError { field: "secret_ref".into(), problem }], now);
        }
        let mut report = check(&self.microsoft, doc, creds.clone(), now).await;
        if !report.passed || save == SaveMode::No {
            return report;
        }
        let before = match self.store.get(&doc.id).await {
            Ok(r) => r,
            Err(e) => {
                report.not_saved = Some(format!("reading the current record failed: {e}"));
                return report;
            }
        };
        let current = before.as_ref().map(|r| r.revision);
        if save == SaveMode::Create && current.is_some() {
            report.not_saved = Some(format!("integration `{}` exists already; use `integration update` to save a new revision", doc.id));
            return report;
        }
        let relaxed = revision::relaxations(before.as_ref().map(|r| &r.doc), doc);
        let unconfirmed: Vec<Relaxation> = relaxed.iter().filter(|r| !request.relax.contains(&r.field)).cloned().collect();
        if !unconfirmed.is_empty() {
            let fields: std::collections::BTreeSet<&str> = unconfirmed.iter().map(|r| r.field.as_str()).collect();
            report.not_saved = Some(format!(
                "this revision relaxes a guard rail ({}); save it only by naming each in the request (`relax`: {})",
                unconfirmed.iter().map(|r| format!("{}: {}", r.field, r.detail)).collect::<Vec<_>>().join("; "),
                fields.into_iter().collect::<Vec<_>>().join(", ")
            ));
            report.unconfirmed_relaxations = unconfirmed;
            return report;
        }
        let mut secret = None;
        if new && !doc.shared_secret {
            match self.store.secret_users(&doc.secret_ref).await {
                Ok(users) => {
                    let owners: Vec<String> = users.into_iter().filter(|id| *id != doc.id).collect();
                    if !owners.is_empty() {
                        report.not_saved = Some(format!(
                            "`{}` holds the credentials of integration(s) {} as well; writing it would change theirs: give this integration a secret_ref of its own, or set shared_secret = true if they share one app registration",
                            doc.secret_ref,
                            owners.join(", ")
                        ));
                        return report;
                    }
                }
                Err(e) => {
                    report.not_saved = Some(format!("reading the integrations that use `{}` failed: {e}", doc.secret_ref));
                    return report;
                }
            }
        }
        if let (true, Ok(c)) = (new, &creds) {
            match self.writer.put(&doc.secret_ref, c).await {
                Ok(arn) => secret = Some(arn),
                Err(e) => {
                    report.not_saved = Some(format!("writing the credentials to `{}` failed: {e}", doc.secret_ref));
                    return report;
                }
            }
        }
        let provenance = Provenance { saved_by: request.by, changes: revision::changes(before.as_ref().map(|r| &r.doc), doc), relaxed };
        match self.store.save(doc, current, now, &provenance).await {
            Ok(revision) => {
                if !provenance.relaxed.is_empty() {
                    tracing::warn!(
                        integration = %doc.id,
                        revision,
                        saved_by = %provenance.saved_by,
                        relaxed = ?provenance.relaxed.iter().map(|r| r.field.as_str()).collect::<Vec<_>>(),
                        "a guard rail was relaxed"
                    );
                }
                report.saved = Some(Saved {
                    revision,
                    saved_by: provenance.saved_by,
                    changes: provenance.changes,
                    relaxed: provenance.relaxed,
                    secret,
                })
            }
            Err(e) => report.not_saved = Some(e.to_string()),
        }
        report
    }
}

/// Why `secret_ref` is out of the functions' reach, if it is: their IAM policies allow the
/// secrets under the stack's prefix only, by name or by ARN.
fn secret_outside(secret_ref: &str, prefix: &str) -> Option<String> {
    let name = match secret_ref.strip_prefix("arn:") {
        Some(arn) => arn.split_once(":secret:").map_or(arn, |(_, n)| n),
        None => secret_ref,
    };
    (!prefix.is_empty() && !name.starts_with(prefix)).then(|| {
        format!("`{secret_ref}` is outside `{prefix}`, the only secrets the functions may read (the stack's SecretPrefix): name it {prefix}<something>")
    })
}
