//! What an API's refusal means for an evidence job: passing (busy, throttled, down) or final,
//! with the fix where Microsoft's words name one.

use crate::domain::evidence::job::Observation;
use crate::error::GraphError;

/// How an API's refusal bears on a job: passing (busy, throttled, down) or final (with why).
pub(crate) fn observe_error(e: &GraphError) -> Observation {
    match e {
        GraphError::Http { status: 400, code, .. } if code == "ActiveRequestAlreadyExists" => Observation::Busy,
        // OverBudget: the tenant's pace for the API was spent; the step comes back later.
        GraphError::Http { status: 429, .. } | GraphError::Throttled { .. } | GraphError::OverBudget { .. } => Observation::Busy,
        GraphError::Http { status: 404, message, .. } => Observation::NotFound(message.clone()),
        // common-errors.md: "Tenant feature isn't enabled." What live response answers when it is
        // off is not documented; this is the documented code for a feature a tenant has off.
        GraphError::Http { status: 403, code, message, .. } if code == "DisabledFeature" => Observation::Refused(format!(
            "Defender for Endpoint answered DisabledFeature ({message}): live response is off for this tenant; turn on Settings → \
             Endpoints → Advanced features → \"Live Response\" (and \"Live Response for servers\" for a server)"
        )),
        // run-live-response.md: a device group needs an automated remediation level; the words
        // are the ones callers meet (MicrosoftDocs/microsoft-365-docs#6054).
        GraphError::Http { status: 403, code, message, .. }
            if code == "DisallowedOperation" && message.to_ascii_lowercase().contains("automation level") =>
        {
            Observation::Refused(format!(
                "Defender for Endpoint answered DisallowedOperation ({message}): live response needs the device's group to have an \
                 automation level; set at least the minimum one in Settings → Endpoints → Permissions → Device groups"
            ))
        }
        GraphError::Http { status: 400, message, .. } if message.contains("is not recognized") => Observation::Refused(format!(
            "{message} (Exchange offers a cmdlet only to a role that grants it: give the app's service principal the Entra role \
             Security Administrator, or add it to the Quarantine Administrator role group)"
        )),
        GraphError::Http { status: 400 | 401 | 403, api, code, message } => {
            Observation::Refused(format!("{api} answered {code}: {message}"))
        }
        GraphError::Token { retryable: false, .. } | GraphError::Credential(_) => Observation::Refused(e.to_string()),
        e => Observation::Transient(e.to_string()),
    }
}

/// How a mailbox's refusal bears on a job: a mailbox outside the app's access policy names
/// the fix (auth-limit-mailbox-access.md: Exchange answers `ErrorAccessDenied`).
pub(crate) fn observe_mailbox_error(e: &GraphError, mailbox: &str) -> Observation {
    match e {
        // The access policy's own words ("Access to OData is disabled…", "…AccessPolicy…"); any
        // other 403 (a consent revoked) keeps Graph's words.
        GraphError::Http { status: 403, code, message, .. }
            if code == "ErrorAccessDenied" && (message.contains("Access to OData") || message.contains("AccessPolicy")) =>
        {
            Observation::Refused(format!(
                "Graph refused {mailbox}'s mailbox ({code}: {message}): the app's mailbox scope (an application access policy or \
                 RBAC for Applications) leaves it out; add the mailbox to the scope's group, or widen the scope"
            ))
        }
        GraphError::Http { status: 404, code, .. } if code == "ErrorInvalidUser" || code == "MailboxNotEnabledForRESTAPI" => {
            Observation::NotFound(format!("{mailbox} has no mailbox Graph can read ({code})"))
        }
        e => observe_error(e),
    }
}
