//! `POST /{tenant}/oauth2/v2.0/token`, client credentials grant
//! (entra-docs v2-oauth2-client-creds-grant-flow.md): client secret (form or
//! HTTP Basic) or a certificate-signed client assertion.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::assertion::{self, AssertionContext};
use super::directory::{App, Tenant};
use super::error::EntraError;
use super::resources::{self, Resource};
use crate::http::{self, header_str};
use crate::record::Caller;
use crate::state::Sim;
use crate::time::Instant;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

pub async fn token(State(sim): State<Sim>, Path(tenant): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form(form_urlencoded::parse(&body).into_owned().collect());
    let now = sim.clock.now();
    let correlation = header_str(&headers, "client-request-id").map(str::to_owned).unwrap_or_else(|| sim.guid());
    let trace = sim.guid();
    let caller = form.get("client_id").map(str::to_owned).or_else(|| basic_auth(&headers).map(|(id, _)| id));
    let mut response = match issue(&sim, &tenant, &headers, &form, now) {
        Ok(body) => {
            let mut r = http::json(StatusCode::OK, &body, http::PLAIN_JSON);
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
            r
        }
        Err(e) => e.into_response_at(now, &trace, &correlation),
    };
    if let Ok(v) = HeaderValue::from_str(&trace) {
        response.headers_mut().insert("x-ms-request-id", v);
    }
    if let Some(c) = caller {
        response.extensions_mut().insert(Caller(c));
    }
    response
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = header_str(headers, "authorization")?.strip_prefix("Basic ")?;
    let raw = String::from_utf8(STANDARD.decode(v.trim()).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((dec(id)?, dec(secret)?))
}

fn issue(sim: &Sim, tenant_name: &str, headers: &HeaderMap, form: &Form, now: Instant) -> Result<Value, EntraError> {
    let directory = sim.directory();
    let tenant = directory.iter().find(|t| t.is_named(tenant_name)).ok_or_else(|| {
        EntraError::bad(
            "invalid_request",
            90002,
            format!("Tenant '{tenant_name}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        )
    })?;
    match form.get("grant_type") {
        None => return Err(EntraError::missing("grant_type")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(EntraError::bad("unsupported_grant_type", 70003, format!("The app requested an unsupported grant type '{other}'.")))
        }
    }
    let basic = basic_auth(headers);
    let client_id = form
        .get("client_id")
        .map(str::to_owned)
        .or_else(|| basic.as_ref().map(|b| b.0.clone()))
        .ok_or_else(|| EntraError::missing("client_id"))?;
    let app = tenant.app(&client_id).ok_or_else(|| {
        EntraError::bad(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", tenant.domain),
        )
    })?;
    if app.disabled {
        return Err(EntraError::bad(
            "unauthorized_client",
            7000112,
            format!("Application '{client_id}'({}) is disabled.", app.display_name),
        ));
    }
    let resource = parse_scope(tenant, form.get("scope"))?;
    let acr = authenticate(sim, tenant, tenant_name, app, &client_id, form, basic.map(|b| b.1), now)?;
    Ok(access_token(sim, tenant, app, resource, acr, now))
}

fn parse_scope(tenant: &Tenant, scope: Option<&str>) -> Result<(Resource, &'static str), EntraError> {
    let scope = scope.filter(|s| !s.trim().is_empty()).ok_or_else(|| EntraError::missing("scope"))?;
    let items: Vec<&str> = scope.split_whitespace().collect();
    let mut found: Option<(Resource, &'static str)> = None;
    for item in &items {
        let Some(id) = item.strip_suffix("/.default") else {
            return Err(EntraError::bad(
                "invalid_scope",
                1002012,
                format!("The provided value for scope {item} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
            ));
        };
        let r = match resources::by_identifier(tenant.cloud, id) {
            Ok(r) => r,
            // Another cloud's resource has no service principal in this cloud: Entra ID's
            // AADSTS500011 (InvalidResourceServicePrincipalNotFound, reference-error-codes.md).
            Err(true) => {
                return Err(EntraError::bad(
                    "invalid_resource",
                    500011,
                    format!("The resource principal named {id} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", tenant.domain),
                ))
            }
            // As the doc's error sample (entra_token_error_response.json) answers an unknown resource.
            Err(false) => {
                return Err(EntraError::bad(
                    "invalid_scope",
                    70011,
                    format!("The provided value for the input parameter 'scope' is not valid. The scope {item} is not valid."),
                ))
            }
        };
        if found.is_some_and(|f| f.0 != r.0) {
            return Err(EntraError::bad(
                "invalid_scope",
                28000,
                format!("Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."),
            ));
        }
        found = Some(r);
    }
    found.ok_or_else(|| EntraError::missing("scope"))
}

/// Returns `appidacr`: "1" for a secret, "2" for a certificate.
#[allow(clippy::too_many_arguments)]
fn authenticate(
    sim: &Sim,
    tenant: &Tenant,
    tenant_name: &str,
    app: &App,
    client_id: &str,
    form: &Form,
    basic_secret: Option<String>,
    now: Instant,
) -> Result<&'static str, EntraError> {
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(EntraError::bad("invalid_request", 50027, format!("client_assertion_type must be '{ASSERTION_TYPE}'.")));
        }
        let base = &sim.base_url;
        let audiences = [tenant_name, tenant.id.as_str(), tenant.domain.as_str()]
            .iter()
            .flat_map(|t| [format!("{base}/{t}/oauth2/v2.0/token"), format!("{base}/{t}/oauth2/token"), format!("{base}/{t}/v2.0")])
            .collect();
        let ctx = AssertionContext { app, client_id, audiences, now };
        assertion::verify(assertion, &ctx)?;
        return Ok("2");
    }
    let secret = form.get("client_secret").map(str::to_owned).or(basic_secret).ok_or_else(|| {
        EntraError::client(7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
    })?;
    let Some(found) = app.secrets.iter().find(|s| s.value == secret) else {
        return Err(EntraError::client(
            7000215,
            format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
        ));
    };
    if found.expires.is_some_and(|e| e < now) {
        return Err(EntraError::client(
            7000222,
            format!("The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."),
        ));
    }
    Ok("1")
}

fn access_token(sim: &Sim, tenant: &Tenant, app: &App, (r, audience): (Resource, &str), acr: &str, now: Instant) -> Value {
    let iat = now.unix_seconds();
    let exp = iat + sim.token_lifetime_secs;
    let tid = &tenant.id;
    let mut wids: Vec<&str> = app.directory_roles.iter().filter_map(|n| resources::role_template_id(n)).collect();
    // Every service principal carries the default user role template.
    wids.push("0997a1d0-0d1d-4acb-b408-d5ca73121e90");
    let mut claims = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        claims.insert(k.to_owned(), v);
    };
    put("aud", json!(audience));
    let login = resources::login_host(tenant.cloud);
    // v1.0 issuers outside the global service are not documented; the v2.0 form is the authority's.
    put("iss", json!(if r.v2 { format!("https://{login}/{tid}/v2.0") } else { format!("https://sts.windows.net/{tid}/") }));
    put("iat", json!(iat));
    put("nbf", json!(iat));
    put("exp", json!(exp));
    put("aio", json!(crate::entra::jwt::b64url(sim.guid().as_bytes())));
    if r.v2 {
        put("azp", json!(app.client_id));
        put("azpacr", json!(acr));
    } else {
        put("app_displayname", json!(app.display_name));
        put("appid", json!(app.client_id));
        put("appidacr", json!(acr));
        put("idp", json!(format!("https://sts.windows.net/{tid}/")));
    }
    put("idtyp", json!("app"));
    put("oid", json!(app.sp_object_id));
    put("rh", json!("0.AAAA-simulated."));
    // No admin consent for this resource = no `roles` claim at all (ms-apis.md §1).
    if let Some(roles) = app.grants.get(r.key).filter(|g| !g.is_empty()) {
        put("roles", json!(roles));
    }
    put("sub", json!(app.sp_object_id));
    put("tid", json!(tid));
    put("uti", json!(sim.guid().replace('-', "")));
    put("ver", json!(if r.v2 { "2.0" } else { "1.0" }));
    put("wids", json!(wids));
    let token = sim.signer.sign(&Value::Object(claims));
    json!({
        "token_type": "Bearer",
        "expires_in": sim.token_lifetime_secs,
        "ext_expires_in": sim.token_lifetime_secs,
        "access_token": token,
    })
}
