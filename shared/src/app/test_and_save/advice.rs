//! What to do about a failed token request or API call, in the words of the Entra admin center
//! (AADSTS codes from Entra's error-code reference, as the simulator and Entra return them).

use crate::domain::permissions::{Api, Feature, EXCHANGE_DIRECTORY_ROLES};
use crate::error::GraphError;

/// The context a fix is written for.
pub struct Ctx<'a> {
    pub tenant_id: &'a str,
    pub client_id: &'a str,
    pub secret_ref: &'a str,
    /// The sign-in host of the deployment's Microsoft cloud, which the function must reach.
    pub login_host: &'a str,
}

/// The AADSTS number in an Entra error description (`AADSTS7000215: ...`).
pub fn aadsts(description: &str) -> Option<u32> {
    let rest = &description[description.find("AADSTS")? + 6..];
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// (what went wrong, what to do) for a token request Entra refused.
pub fn token_failure(e: &GraphError, api: Api, c: &Ctx<'_>) -> (String, String) {
    let GraphError::Token { code, description, .. } = e else {
        return match e {
            GraphError::Transport { detail, .. } => (
                format!("cannot reach Entra ID to get a token: {detail}"),
                format!("allow outbound HTTPS to {} from the function (VPC route/NAT, proxy, firewall)", c.login_host),
            ),
            GraphError::Credential(p) => (
                format!("the stored certificate cannot sign: {p}"),
                format!("store a PEM certificate and its RSA private key in secret `{}`", c.secret_ref),
            ),
            other => (format!("the token request failed: {other}"), "try again; if it persists, check Entra ID's service health".into()),
        };
    };
    let what = format!("Entra ID refused the token ({code}): {description}");
    let fix = match aadsts(description) {
        Some(7000215) => format!(
            "wrong client secret: in App registrations → {} → Certificates & secrets, copy the secret's Value (not its Secret ID) into secret `{}`",
            c.client_id, c.secret_ref
        ),
        Some(7000222) => format!(
            "the client secret expired: add a new client secret under App registrations → {} → Certificates & secrets and store its Value in secret `{}`",
            c.client_id, c.secret_ref
        ),
        Some(90002) | Some(900023) | Some(90072) => format!(
            "wrong tenant: `{}` is not a tenant Entra knows; copy the Directory (tenant) ID from the app registration's Overview into tenant_id",
            c.tenant_id
        ),
        Some(700016) => format!(
            "wrong tenant or client ID: app `{}` is not registered in tenant `{}`; check client_id and tenant_id on the app registration's Overview (a multi-tenant app must be consented in this tenant first)",
            c.client_id, c.tenant_id
        ),
        Some(7000112) => format!("the app `{}` is disabled: enable it under Enterprise applications → Properties → Enabled for users to sign in", c.client_id),
        Some(700027) if description.contains("expired") => format!(
            "the certificate expired: upload a new certificate under App registrations → {} → Certificates & secrets → Certificates and store it with its key in secret `{}`",
            c.client_id, c.secret_ref
        ),
        Some(700027) => format!(
            "the certificate is not registered on the app: upload its public part (.cer/.pem) under App registrations → {} → Certificates & secrets → Certificates, or store the registered certificate and key in secret `{}`",
            c.client_id, c.secret_ref
        ),
        Some(7000218) => format!("no credential was sent: store client_secret, or certificate_pem + private_key_pem, in secret `{}`", c.secret_ref),
        Some(500011) | Some(650057) => format!(
            "{} is not available in this tenant: check that the tenant is licensed for it, then add its permission to the app and grant admin consent; \
             a tenant of another Microsoft cloud (GCC High and DoD tenants sign in at login.microsoftonline.us) needs a deployment with MicrosoftCloud set to that cloud",
            api.owner()
        ),
        _ => "check tenant_id, client_id and the stored credential against the app registration; the message above has Entra's reason".into(),
    };
    (what, fix)
}

pub fn consent_fix(api: Api, c: &Ctx<'_>) -> String {
    format!(
        "grant admin consent: in App registrations → {} → API permissions, click \"Grant admin consent for <tenant>\" ({} permissions were added but not consented, or none were added)",
        c.client_id,
        api.owner()
    )
}

pub fn missing_fix(api: Api, missing: &[&str], c: &Ctx<'_>) -> String {
    format!(
        "add the Application permission{} {} of \"{}\" (API permissions → Add a permission → {} → {} → Application permissions) to app {}, then grant admin consent",
        if missing.len() > 1 { "s" } else { "" },
        missing.join(", "),
        api.owner(),
        api.tab(),
        api.owner(),
        c.client_id
    )
}

pub fn exchange_role_fix(c: &Ctx<'_>) -> String {
    let names: Vec<&str> = EXCHANGE_DIRECTORY_ROLES.iter().map(|(n, _)| *n).collect();
    format!(
        "assign an Entra role to the app's service principal (Entra admin center → Roles and administrators → e.g. Security Reader → Add assignments → app {}); Exchange accepts: {}",
        c.client_id,
        names.join(", ")
    )
}

pub fn sensitive_action_fix(c: &Ctx<'_>) -> String {
    format!(
        "assign the Entra role Privileged Authentication Administrator to the app's service principal (Entra admin center → \
         Roles and administrators → Privileged Authentication Administrator → Add assignments → app {}): Microsoft lets an app \
         disable or revoke a user who holds an admin role only then (user-update.md, who can perform sensitive actions); or \
         turn remediation.protect_privileged_roles back on, so admins are never acted on",
        c.client_id
    )
}

pub fn quarantine_export_fix(c: &Ctx<'_>) -> String {
    format!(
        "assign the Entra role Security Administrator to the app's service principal (Entra admin center → Roles and administrators → \
         Security Administrator → Add assignments → app {}), or turn evidence.quarantined_email off",
        c.client_id
    )
}

/// (what went wrong, what to do) for the call of `feature` that failed after a token was
/// issued; `probe_target` is what it was about (the portal, the mailbox, the organization).
pub fn call_failure(e: &GraphError, feature: Feature, probe_target: &str) -> (String, String) {
    let what = e.to_string();
    let api = feature.api();
    let mailbox = feature == Feature::PhishingMailbox;
    let fix = match (e, api) {
        (GraphError::Transport { .. }, Api::CloudApps) => format!(
            "cannot reach the Portal URL `{probe_target}`: copy the API URL from Defender portal → Settings → Cloud Apps → System → About, and allow outbound HTTPS to it"
        ),
        (GraphError::Transport { .. }, _) => format!("cannot reach {}: allow outbound HTTPS to it from the function", api.owner()),
        (GraphError::Http { status: 404, .. }, Api::CloudApps) => {
            format!("the Portal URL `{probe_target}` does not serve the Cloud Apps API: copy it again from Settings → Cloud Apps → System → About")
        }
        (GraphError::Http { status: 404, code, .. }, Api::Graph) if mailbox && (code == "ErrorInvalidUser" || code == "ResourceNotFound") => {
            format!("the mailbox `{probe_target}` does not exist in this tenant: fix sources.phishing_mailbox.address")
        }
        (GraphError::Http { status: 400, .. }, Api::Graph) if mailbox => {
            "Graph refused the mailbox filter: fix sources.phishing_mailbox.filter (OData $filter syntax on message properties)".into()
        }
        (GraphError::Http { status: 404, .. }, Api::Exchange) => {
            format!("Exchange Online does not know organization `{probe_target}`: set organization_id to the tenant's initial contoso.onmicrosoft.com domain")
        }
        (GraphError::Http { status: 401, .. }, _) => format!(
            "{} refused the token: check that the app is registered in this tenant and that the permission is an Application permission, not a Delegated one",
            api.owner()
        ),
        (GraphError::Http { status: 403, message, .. }, Api::Graph) if mailbox && (message.contains("ErrorAccessDenied") || message.contains("Access to OData")) => {
            "an Exchange application access policy or RBAC for Applications scope excludes this mailbox: add the mailbox to the app's scope".into()
        }
        (GraphError::Http { status: 403, .. }, Api::Exchange) => {
            "Exchange Online refused the app: assign it an Entra role Exchange accepts (e.g. Security Reader) and wait up to an hour for it to apply".into()
        }
        (GraphError::Http { status: 403, .. }, _) => format!(
            "{} refused the call although the token carries the permission: the change may take a few minutes to apply, or the tenant lacks the product licence",
            api.owner()
        ),
        (GraphError::Throttled { .. }, _) | (GraphError::Http { status: 429, .. }, _) => {
            "throttled by Microsoft: wait a minute and test again (other tools sharing the app's quota count too)".into()
        }
        _ => format!("try again; if it persists, check {}'s service health", api.owner()),
    };
    (what, fix)
}

#[cfg(test)]
mod tests {
    use crate::app::test_and_save::advice::*;

    #[test]
    fn the_aadsts_number_is_read_from_the_description() {
        assert_eq!(aadsts("AADSTS7000215: Invalid client secret provided."), Some(7000215));
        assert_eq!(aadsts("no code here"), None);
    }

    #[test]
    fn an_unreachable_entra_is_named_by_the_clouds_sign_in_host() {
        use crate::domain::cloud::Cloud;
        let e = GraphError::Transport { what: "token".into(), detail: "connection refused".into() };
        for (cloud, host) in [(Cloud::Global, "login.microsoftonline.com"), (Cloud::GccHigh, "login.microsoftonline.us")] {
            let login = cloud.endpoints().login;
            let c = Ctx { tenant_id: "t", client_id: "c", secret_ref: "s", login_host: login.trim_start_matches("https://") };
            let (what, fix) = token_failure(&e, Api::Graph, &c);
            assert!(what.contains("connection refused"), "{what}");
            assert!(fix.contains(&format!("HTTPS to {host} ")), "{fix}");
        }
    }
}
