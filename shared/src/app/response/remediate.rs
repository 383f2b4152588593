//! The remediator (issue 14): one request at a time, checked against every guard rail before
//! Microsoft is asked to act, each request done at most once, every outcome (refusals
//! included) kept as an audit record and sent as a result message.
//!
//! Order: the request is read (a bad one is `rejected`, naming its fields); a request seen
//! before is answered with its first outcome (`repeated`); the integration must enable
//! remediation and the action; the user is read with every role and group it holds, nested ones
//! included; the rules are applied (`domain::remediation::guard`); a dry run stops there; the
//! tenant's hourly cap takes a slot; then Microsoft acts, and its refusal of a user only a more
//! privileged app may change is reported as such.

use std::time::Duration;

use crate::domain::envelope::sha256_hex;
use crate::domain::response::remediation::{
    guard, Action, Refusal, RemediationMode, RemediationRequest, RemediationResult, Status, RESULT_SCHEMA,
};
use crate::domain::time::GraphTime;
use crate::error::{CursorError, GraphError};
use crate::ports::evidence::{EvidenceJobStore, StoredRecord};
use crate::ports::remediation::{DirectoryActions, RateRecord, RemediatePorts, RequestRecord};
use crate::ports::{AlertQueue, Clock, IntegrationSource, QueueEntry, SecretSource};

#[derive(Debug, Clone)]
pub struct RemediateSettings {
    /// Audit records (and the idempotency they give) are kept this long (DynamoDB TTL).
    pub keep_for: Duration,
    /// A request under way this long without a result was abandoned (a crash): taken over.
    pub claim_for: Duration,
    /// Identifies this instance in claims.
    pub owner: String,
}

impl Default for RemediateSettings {
    fn default() -> Self {
        RemediateSettings { keep_for: Duration::from_secs(400 * 86_400), claim_for: Duration::from_secs(300), owner: "remediate".into() }
    }
}

pub struct Remediator<P: RemediatePorts> {
    pub records: P::Records,
    pub directory: P::Directory,
    pub results: P::Results,
    pub secrets: P::Secrets,
    pub integrations: P::Integrations,
    pub clock: P::Clock,
    pub settings: RemediateSettings,
}

/// What handling one message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Ended (done, dry run, refused or rejected), recorded and announced.
    Ended(Box<RemediationResult>),
    /// Not finished: SQS should deliver the request again.
    Retry(String),
}

/// Rate slots lost to a concurrent instance before giving up (then SQS retries the request).
const RATE_ATTEMPTS: usize = 5;

impl<P: RemediatePorts> Remediator<P> {
    pub async fn handle(&self, body: &str) -> Handled {
        self.handle_sent_by(body, None).await
    }

    /// `handle`, recording who sent the message (SQS's `SenderId`) in the audit record and the result.
    pub async fn handle_sent_by(&self, body: &str, sender: Option<&str>) -> Handled {
        let sent_by = sender.map(|s| s.chars().take(256).collect::<String>());
        let now = self.clock.now();
        let request = match RemediationRequest::parse(body) {
            Ok(r) => r,
            Err(problems) => {
                let detail: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.problem)).collect();
                let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().chars().take(256).collect::<String>();
                let result = RemediationResult {
                    schema: RESULT_SCHEMA.into(),
                    request_id: text("request_id"),
                    integration_id: text("integration_id"),
                    action: v.get("action").and_then(|a| serde_json::from_value(a.clone()).ok()),
                    user: text("user"),
                    user_id: None,
                    alert_ref: text("alert_ref"),
                    reason: text("reason"),
                    requested_by: text("requested_by"),
                    sent_by: sent_by.clone(),
                    status: Status::Rejected,
                    refusal: Some(Refusal::new("invalid_request", detail.join("; "))),
                    repeated: false,
                    at: now,
                };
                // Kept under the body's hash: a bad request has no trustworthy id.
                let key = format!("remediation/rejected/{}", sha256_hex(body.as_bytes()));
                return self.record_and_announce(key, None, result, None).await;
            }
        };
        let key = format!("remediation/{}/{}", request.integration_id, request.request_id);
        let fresh = RequestRecord {
            key: key.clone(),
            request: Some(request.clone()),
            claimed_by: self.settings.owner.clone(),
            claimed_at: now,
            result: None,
        };
        let expires = now.plus(self.settings.keep_for);
        let (stored, version) = match self.records.create(&fresh, expires).await {
            Ok(x) => x,
            Err(e) => return Handled::Retry(format!("the request record could not be written: {e}")),
        };
        if let Some(first) = stored.result.clone() {
            // Acknowledged with its first outcome; nothing is done again.
            let again = RemediationResult { repeated: true, ..first };
            if let Err(e) = self.announce(&again).await {
                return Handled::Retry(e);
            }
            return Handled::Ended(Box::new(again));
        }
        if stored.claimed_by != self.settings.owner && now.since(stored.claimed_at) < self.settings.claim_for {
            return Handled::Retry(format!("{key} is being handled by {}", stored.claimed_by));
        }
        let result = self.decide(&request, now).await.map(|r| RemediationResult { sent_by: sent_by.clone(), ..r });
        match result {
            Err(reason) => Handled::Retry(reason),
            Ok(result) => self.record_and_announce(key, Some(request), result, Some(version)).await,
        }
    }

    /// Everything from the integration's rules to Microsoft's answer. Err: try again later.
    async fn decide(&self, r: &RemediationRequest, now: GraphTime) -> Result<RemediationResult, String> {
        let mut result = RemediationResult {
            schema: RESULT_SCHEMA.into(),
            request_id: r.request_id.clone(),
            integration_id: r.integration_id.clone(),
            action: Some(r.action),
            user: r.user.clone(),
            user_id: None,
            alert_ref: r.alert_ref.clone(),
            reason: r.reason.clone(),
            requested_by: r.requested_by.clone(),
            sent_by: None,
            status: Status::Refused,
            refusal: None,
            repeated: false,
            at: now,
        };
        let refuse = |mut res: RemediationResult, code: &str, why: String| {
            res.status = Status::Refused;
            res.refusal = Some(Refusal::new(code, why));
            Ok(res)
        };
        let Some(i) = self.integrations.integration(&r.integration_id).await.map_err(|e| e.to_string())? else {
            return refuse(result, "unknown_integration", format!("integration `{}` is not configured", r.integration_id));
        };
        if !i.features.remediation {
            return refuse(result, "remediation_disabled", format!("integration `{}` does not enable features.remediation", i.id));
        }
        let rules = &i.remediation;
        if !rules.actions.contains(&r.action) {
            return refuse(result, "action_not_allowed", format!("{} is not in remediation.actions of `{}`", r.action.name(), i.id));
        }
        let creds = self.secrets.load(&i.secret_ref).await.map_err(|e| e.to_string())?;
        if !i.owns(&creds) {
            return refuse(
                result,
                "credentials_mismatch",
                format!("the secret `{}` holds another tenant's or app's credentials", i.secret_ref),
            );
        }
        let target = match self.directory.target(&creds, &r.user).await {
            Ok(Some(t)) => t,
            Ok(None) => return refuse(result, "user_not_found", format!("no user `{}` in the tenant", r.user)),
            Err(e) => return self.microsoft_said(result, e),
        };
        result.user_id = Some(target.id.clone());
        if let Err(refusal) = guard(rules, &target) {
            result.refusal = Some(refusal);
            return Ok(result);
        }
        if r.dry_run || rules.mode == RemediationMode::DryRun {
            result.status = Status::DryRun;
            let why = if r.dry_run { "the request asked for a dry run" } else { "remediation.mode is dry_run" };
            result.refusal = Some(Refusal::new(
                "dry_run",
                format!("{why}: every rule allows it; {} of {} was not carried out", r.action.name(), target.upn),
            ));
            return Ok(result);
        }
        let holder = sha256_hex(format!("{}/{}", i.id, r.request_id).as_bytes())[..16].to_owned();
        if !self.take_slot(&i.tenant_id, rules.max_actions_per_hour, &holder, now).await? {
            return refuse(
                result,
                "rate_limited",
                format!("{} actions were done for this tenant this hour (remediation.max_actions_per_hour)", rules.max_actions_per_hour),
            );
        }
        let done = match r.action {
            Action::RevokeSessions => self.directory.revoke_sessions(&creds, &target.id).await,
            Action::DisableAccount => self.directory.disable_account(&creds, &target.id).await,
        };
        match done {
            Ok(()) => {
                result.status = Status::Done;
                tracing::info!(integration = %i.id, action = r.action.name(), user = %target.id, requested_by = %r.requested_by, "remediation done");
                Ok(result)
            }
            Err(e) => self.microsoft_said(result, e),
        }
    }

    /// Microsoft's answer as the result: a refusal that will not pass is final, anything else is tried again.
    fn microsoft_said(&self, mut result: RemediationResult, e: GraphError) -> Result<RemediationResult, String> {
        match &e {
            GraphError::Http { status: 403, .. } => {
                result.status = Status::Refused;
                result.refusal = Some(Refusal::new(
                    "insufficient_privileges",
                    format!(
                        "Microsoft refused: {e}. Changing a user who holds an admin role needs the app to hold a higher-privileged Entra role itself (user-update.md, \"who can perform sensitive actions\"), besides its permission"
                    ),
                ));
                Ok(result)
            }
            GraphError::Http { status: 400 | 404, .. } => {
                result.status = Status::Refused;
                result.refusal = Some(Refusal::new("microsoft_refused", e.to_string()));
                Ok(result)
            }
            _ if e.is_retryable() => Err(e.to_string()),
            _ => {
                result.status = Status::Failed;
                result.refusal = Some(Refusal::new("failed", e.to_string()));
                Ok(result)
            }
        }
    }

    /// One action of the tenant's hourly cap for `holder`; false when the hour's cap is spent.
    /// A holder that took its slot this hour keeps it: the request is being tried again.
    async fn take_slot(&self, tenant: &str, cap: u32, holder: &str, now: GraphTime) -> Result<bool, String> {
        let hour = now.unix_seconds().div_euclid(3600);
        let key = format!("remediation-rate/{tenant}/{hour}");
        let expires = now.plus(Duration::from_secs(2 * 3600));
        for _ in 0..RATE_ATTEMPTS {
            let empty = RateRecord { key: key.clone(), done: 0, holders: Vec::new() };
            let (mut rec, version) = self.records.create(&empty, expires).await.map_err(|e| e.to_string())?;
            if rec.holders.iter().any(|h| h == holder) {
                return Ok(true);
            }
            if rec.done >= cap {
                return Ok(false);
            }
            rec.done += 1;
            rec.holders.push(holder.to_owned());
            match self.records.save(&rec, version, expires).await {
                Ok(_) => return Ok(true),
                Err(CursorError::LeaseLost { .. }) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("the hourly count of {tenant} kept changing under {RATE_ATTEMPTS} attempts"))
    }

    async fn announce(&self, result: &RemediationResult) -> Result<(), String> {
        let body = serde_json::to_string(result).map_err(|e| e.to_string())?;
        let entry = QueueEntry { id: "0".into(), body: crate::domain::sqs_text::escape_for_sqs(body) };
        match self.results.send_batch(std::slice::from_ref(&entry)).await {
            Ok(report) if report.failed.is_empty() => Ok(()),
            Ok(report) => Err(format!("the result was not accepted: {:?}", report.failed)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Keeps the outcome as the request's audit record, then sends it. The record comes first:
    /// a crash after it re-sends the same result on redelivery, never acts twice.
    async fn record_and_announce(
        &self,
        key: String,
        request: Option<RemediationRequest>,
        result: RemediationResult,
        version: Option<u64>,
    ) -> Handled {
        let expires = result.at.plus(self.settings.keep_for);
        let record =
            RequestRecord { key, request, claimed_by: self.settings.owner.clone(), claimed_at: result.at, result: Some(result.clone()) };
        let saved = match version {
            Some(v) => self.records.save(&record, v, expires).await.map(|_| ()),
            None => self.records.create(&record, expires).await.map(|_| ()),
        };
        if let Err(e) = saved {
            return Handled::Retry(format!("{} was not recorded: {e}", record.key()));
        }
        tracing::info!(request = %result.request_id, status = ?result.status, code = result.refusal.as_ref().map_or("", |r| r.code.as_str()), "remediation request ended");
        match self.announce(&result).await {
            Ok(()) => Handled::Ended(Box::new(result)),
            Err(e) => Handled::Retry(e),
        }
    }
}
