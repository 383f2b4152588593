//! The metadata Microsoft's client libraries read before asking for a token:
//! OpenID configuration (`{authority}/v2.0/.well-known/openid-configuration`),
//! instance discovery (`/common/discovery/instance`), and the signing keys.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::EntraError;
use crate::http::{self, query_pairs};
use crate::state::Sim;

fn tenant_id(sim: &Sim, name: &str) -> Option<String> {
    if matches!(name, "common" | "organizations" | "consumers") {
        return Some(name.to_owned());
    }
    sim.directory().iter().find(|t| t.is_named(name)).map(|t| t.id.clone())
}

fn unknown_tenant(sim: &Sim, name: &str) -> Response {
    EntraError::bad(
        "invalid_tenant",
        90002,
        format!("Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
    )
    .into_response_at(sim.clock.now(), &sim.guid(), &sim.guid())
}

/// GET /{tenant}/v2.0/.well-known/openid-configuration
pub async fn openid_configuration(State(sim): State<Sim>, Path(tenant): Path<String>) -> Response {
    let Some(tid) = tenant_id(&sim, &tenant) else { return unknown_tenant(&sim, &tenant) };
    let b = &sim.base_url;
    let body = json!({
        "token_endpoint": format!("{b}/{tid}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{tid}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{b}/{tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{b}/{tid}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{b}/{tid}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{tid}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{b}/{tid}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    http::json(StatusCode::OK, &body, http::PLAIN_JSON)
}

/// GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…
/// MSAL asks this before trusting an authority host it does not know.
pub async fn instance_discovery(State(sim): State<Sim>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let auth = pairs.iter().find(|(k, _)| k == "authorization_endpoint").map(|(_, v)| v.clone()).unwrap_or_default();
    let b = &sim.base_url;
    let host = b.trim_start_matches("https://");
    let host_name = host.split(':').next().unwrap_or(host);
    // MSAL sends the authority's host without its port.
    let Some((auth_host, path)) = auth.strip_prefix("https://").and_then(|r| r.split_once('/')) else {
        return EntraError::bad("invalid_instance", 50049, "Unknown or invalid instance.").into_response_at(
            sim.clock.now(),
            &sim.guid(),
            &sim.guid(),
        );
    };
    if auth_host != host && auth_host != host_name {
        return EntraError::bad("invalid_instance", 50049, "Unknown or invalid instance.").into_response_at(
            sim.clock.now(),
            &sim.guid(),
            &sim.guid(),
        );
    }
    let tenant = path.split('/').next().unwrap_or("common");
    let body = json!({
        "tenant_discovery_endpoint": format!("{b}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    });
    http::json(StatusCode::OK, &body, http::PLAIN_JSON)
}

/// GET /{tenant}/discovery/v2.0/keys
pub async fn keys(State(sim): State<Sim>, Path(tenant): Path<String>) -> Response {
    if tenant_id(&sim, &tenant).is_none() {
        return unknown_tenant(&sim, &tenant);
    }
    http::json(StatusCode::OK, &json!({"keys": [sim.signer.jwk()]}), http::PLAIN_JSON).into_response()
}
