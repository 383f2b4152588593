//! The token endpoint: client secrets and certificate assertions, checked as Entra checks them,
//! and every refusal in Entra's error shape with its AADSTS code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::{claims, fixed_scenario, Harness, CLIENT, GRAPH_SCOPE, SECRET, TENANT};
use serde_json::{json, Value};
use tenant_sim::scenario::{AppSpec, CertificateSpec, SecretSpec};
use tenant_sim::testing::{AssertionAlg, ClientCertificate};
use tenant_sim::{Instant, Scenario};

const NO_CONSENT: &str = "11111111-1111-4111-8111-111111111111";
const EXPIRED_SECRET: &str = "22222222-2222-4222-8222-222222222222";
const DISABLED: &str = "33333333-3333-4333-8333-333333333333";
const CERT_APP: &str = "44444444-4444-4444-8444-444444444444";

fn certs() -> &'static (ClientCertificate, ClientCertificate, ClientCertificate) {
    static C: OnceLock<(ClientCertificate, ClientCertificate, ClientCertificate)> = OnceLock::new();
    C.get_or_init(|| {
        (
            ClientCertificate::generate(1).unwrap(),
            ClientCertificate::generate_expired(2).unwrap(),
            ClientCertificate::generate(3).unwrap(), // never registered
        )
    })
}

fn app(id: &str) -> AppSpec {
    AppSpec { client_id: id.into(), display_name: format!("app {id}"), ..AppSpec::default() }
}

fn scenario() -> Scenario {
    let (good, expired, _) = certs();
    let mut s = fixed_scenario();
    s.tenants[0].alerts.count = 10;
    let apps = &mut s.tenants[0].apps;
    apps.push(AppSpec { grants: BTreeMap::new(), ..app(NO_CONSENT) });
    apps.push(AppSpec {
        secrets: vec![SecretSpec { value: "old".into(), expires: Some("2025-01-01T00:00:00Z".into()) }],
        ..app(EXPIRED_SECRET)
    });
    apps.push(AppSpec { disabled: true, ..app(DISABLED) });
    apps.push(AppSpec {
        secrets: vec![],
        certificates: vec![
            CertificateSpec { pem: Some(good.cert_pem.clone()), pem_file: None },
            CertificateSpec { pem: Some(expired.cert_pem.clone()), pem_file: None },
        ],
        ..app(CERT_APP)
    });
    s
}

async fn secret_token(h: &Harness, client: &str, secret: &str, scope: &str) -> (u16, Value) {
    h.token_request(TENANT, &[("grant_type", "client_credentials"), ("client_id", client), ("client_secret", secret), ("scope", scope)])
        .await
}

fn aadsts(body: &Value) -> (String, u64) {
    (body["error"].as_str().unwrap_or_default().to_owned(), body["error_codes"][0].as_u64().unwrap_or_default())
}

fn now_unix() -> i64 {
    Instant::parse(common::START).unwrap().unix_seconds()
}

#[tokio::test]
async fn secret_grants_a_graph_token_listing_the_consented_roles() {
    let h = Harness::start(scenario()).await;
    let (status, body) = secret_token(&h, CLIENT, SECRET, GRAPH_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["tid"], TENANT);
    assert_eq!(c["appid"], CLIENT);
    assert_eq!(c["appidacr"], "1");
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3599);
    let roles: Vec<&str> = c["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(roles.contains(&"SecurityAlert.Read.All") && roles.contains(&"SecurityIncident.Read.All"), "{roles:?}");
    assert!(c["wids"].as_array().unwrap().contains(&json!("194ae4cb-b126-40b2-bd5b-6091b380977d")), "Security Administrator role id");
}

#[tokio::test]
async fn each_api_gets_its_own_audience_and_roles() {
    let h = Harness::start(scenario()).await;
    for (scope, aud, role, ver) in [
        ("https://api.securitycenter.microsoft.com/.default", "https://api.securitycenter.microsoft.com", "Machine.LiveResponse", "1.0"),
        ("05a65629-4c1b-48c1-a78b-804c4abdd4af/.default", "05a65629-4c1b-48c1-a78b-804c4abdd4af", "investigation.read", "2.0"),
        ("https://outlook.office365.com/.default", "https://outlook.office365.com", "Exchange.ManageAsApp", "1.0"),
    ] {
        let (status, body) = secret_token(&h, CLIENT, SECRET, scope).await;
        assert_eq!(status, 200, "{scope}: {body}");
        let c = claims(body["access_token"].as_str().unwrap());
        assert_eq!((c["aud"].as_str(), c["ver"].as_str()), (Some(aud), Some(ver)));
        assert!(c["roles"].as_array().unwrap().contains(&json!(role)), "{scope}");
    }
}

#[tokio::test]
async fn app_without_admin_consent_gets_a_token_without_roles() {
    let h = Harness::start(scenario()).await;
    let (status, body) = secret_token(&h, NO_CONSENT, SECRET, GRAPH_SCOPE).await;
    assert_eq!(status, 200);
    let c = claims(body["access_token"].as_str().unwrap());
    assert!(c.get("roles").is_none(), "{c}");
    // ... which Graph then refuses with 403.
    let (status, _, err) = h.get("/v1.0/security/alerts_v2", body["access_token"].as_str().unwrap(), false).await;
    assert_eq!(status, 403);
    assert_eq!(err["error"]["code"], "Forbidden");
    assert!(err["error"]["message"].as_str().unwrap().contains("SecurityAlert.Read.All"));
}

#[tokio::test]
async fn secret_failures_carry_entra_codes() {
    let h = Harness::start(scenario()).await;
    let cases: Vec<(&str, &str, &str, &str, u16, &str, u64)> = vec![
        (TENANT, CLIENT, "wrong", GRAPH_SCOPE, 401, "invalid_client", 7000215),
        (TENANT, EXPIRED_SECRET, "old", GRAPH_SCOPE, 401, "invalid_client", 7000222),
        (TENANT, "99999999-9999-4999-8999-999999999999", SECRET, GRAPH_SCOPE, 400, "unauthorized_client", 700016),
        (TENANT, DISABLED, SECRET, GRAPH_SCOPE, 400, "unauthorized_client", 7000112),
        ("00000000-0000-4000-8000-000000000000", CLIENT, SECRET, GRAPH_SCOPE, 400, "invalid_request", 90002),
        (TENANT, CLIENT, SECRET, "https://graph.microsoft.com/SecurityAlert.Read.All", 400, "invalid_scope", 1002012),
        (
            TENANT,
            CLIENT,
            SECRET,
            "https://graph.microsoft.com/.default https://outlook.office365.com/.default",
            400,
            "invalid_scope",
            28000,
        ),
    ];
    for (tenant, client, secret, scope, status, error, code) in cases {
        let (s, body) = h
            .token_request(
                tenant,
                &[("grant_type", "client_credentials"), ("client_id", client), ("client_secret", secret), ("scope", scope)],
            )
            .await;
        assert_eq!((s, aadsts(&body)), (status, (error.to_owned(), code)), "{client} {scope}: {body}");
        let desc = body["error_description"].as_str().unwrap();
        assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
        for k in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
            assert!(body[k].is_string(), "{k} in {body}");
        }
        assert!(!desc.contains(secret) || secret.len() < 4, "the secret must not be echoed: {desc}");
    }
}

#[tokio::test]
async fn missing_parameters_are_named() {
    let h = Harness::start(scenario()).await;
    let (s, b) = h.token_request(TENANT, &[("client_id", CLIENT), ("client_secret", SECRET), ("scope", GRAPH_SCOPE)]).await;
    assert_eq!((s, aadsts(&b).1), (400, 900144));
    assert!(b["error_description"].as_str().unwrap().contains("'grant_type'"));
    let (s, b) = h.token_request(TENANT, &[("grant_type", "client_credentials"), ("client_id", CLIENT), ("scope", GRAPH_SCOPE)]).await;
    assert_eq!((s, aadsts(&b).1), (401, 7000218));
    let (s, b) = h.token_request(TENANT, &[("grant_type", "password"), ("client_id", CLIENT), ("scope", GRAPH_SCOPE)]).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("unsupported_grant_type")));
}

#[tokio::test]
async fn http_basic_client_authentication_and_domain_tenant_names_work() {
    let h = Harness::start(scenario()).await;
    let r = h
        .http
        .post(h.sim.token_url("contoso.onmicrosoft.com"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

async fn assertion_token(h: &Harness, assertion: &str) -> (u16, Value) {
    h.token_request(
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CERT_APP),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await
}

#[tokio::test]
async fn certificate_assertions_in_both_documented_forms_are_accepted() {
    let h = Harness::start(scenario()).await;
    let aud = h.sim.token_url(TENANT);
    let (good, _, _) = certs();
    for (alg, jti) in [(AssertionAlg::Ps256, "j-ps"), (AssertionAlg::Rs256, "j-rs")] {
        let a = good.assertion(alg, CERT_APP, &aud, now_unix(), jti, &json!({}));
        let (status, body) = assertion_token(&h, &a).await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        assert_eq!(claims(body["access_token"].as_str().unwrap())["appidacr"], "2");
    }
    // MSAL for Python sends no nbf: accepted.
    let a = good.assertion(AssertionAlg::Rs256, CERT_APP, &aud, now_unix(), "j-nonbf", &json!({"nbf": null}));
    assert_eq!(assertion_token(&h, &a).await.0, 200);
}

#[tokio::test]
async fn bad_assertions_are_refused_with_the_reason() {
    let h = Harness::start(scenario()).await;
    let aud = h.sim.token_url(TENANT);
    let (good, expired, stranger) = certs();
    let now = now_unix();
    let cases: Vec<(String, u64, &str)> = vec![
        (stranger.assertion(AssertionAlg::Ps256, CERT_APP, &aud, now, "a1", &json!({})), 700027, "The key was not found"),
        (expired.assertion(AssertionAlg::Rs256, CERT_APP, &aud, now, "a2", &json!({})), 700027, "The key used is expired"),
        (
            good.assertion(
                AssertionAlg::Ps256,
                CERT_APP,
                "https://login.microsoftonline.com/other/oauth2/v2.0/token",
                now,
                "a3",
                &json!({}),
            ),
            700023,
            "audience",
        ),
        (
            good.assertion(AssertionAlg::Ps256, CERT_APP, &aud, now, "a4", &json!({"iss": "someone-else"})),
            700021,
            "doesn't match 'client_id'",
        ),
        (good.assertion(AssertionAlg::Ps256, CERT_APP, &aud, now - 7200, "a5", &json!({})), 700024, "not within its valid time range"),
        (
            good.assertion(AssertionAlg::Ps256, CERT_APP, &aud, now, "a6", &json!({"nbf": now + 3600})),
            700024,
            "not within its valid time range",
        ),
        (good.assertion(AssertionAlg::Ps256, CERT_APP, &aud, now, "a7", &json!({"jti": null})), 50027, "'jti' is missing"),
        ("not.a.jwt".into(), 50027, "malformed"),
    ];
    for (assertion, code, reason) in cases {
        let (status, body) = assertion_token(&h, &assertion).await;
        assert_eq!((status, aadsts(&body)), (401, ("invalid_client".to_owned(), code)), "{reason}: {body}");
        assert!(body["error_description"].as_str().unwrap().contains(reason), "{reason}: {body}");
    }
    // A signature made with another key under a registered thumbprint.
    let a = good.assertion(AssertionAlg::Rs256, CERT_APP, &aud, now, "a8", &json!({}));
    let forged = format!(
        "{}.{}",
        a.rsplit_once('.').unwrap().0,
        stranger.assertion(AssertionAlg::Rs256, CERT_APP, &aud, now, "a9", &json!({})).rsplit_once('.').unwrap().1
    );
    let (status, body) = assertion_token(&h, &forged).await;
    assert_eq!((status, aadsts(&body).1), (401, 700027), "{body}");
    // An assertion used again within its lifetime is accepted, as Entra does: MSAL caches one
    // assertion and signs it again only shortly before it expires (msal `oauth2cli/assertion.py`).
    let a = good.assertion(AssertionAlg::Ps256, CERT_APP, &aud, now, "reused", &json!({}));
    assert_eq!(assertion_token(&h, &a).await.0, 200);
    assert_eq!(assertion_token(&h, &a).await.0, 200);
}

#[tokio::test]
async fn discovery_documents_point_at_the_simulator() {
    let h = Harness::start(scenario()).await;
    let oidc: Value =
        h.http.get(h.url(&format!("/{TENANT}/v2.0/.well-known/openid-configuration"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(oidc["token_endpoint"], h.sim.token_url(TENANT));
    assert!(oidc["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("private_key_jwt")));
    let inst: Value = h
        .http
        .get(h.url("/common/discovery/instance"))
        .query(&[("api-version", "1.1"), ("authorization_endpoint", &format!("{}/{TENANT}/oauth2/v2.0/authorize", h.sim.base_url()))])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inst["tenant_discovery_endpoint"], h.url(&format!("/{TENANT}/v2.0/.well-known/openid-configuration")));
    let keys: Value = h.http.get(oidc["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys["keys"][0]["kty"], "RSA");
    let r = h.http.get(h.url("/no-such-tenant/v2.0/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
