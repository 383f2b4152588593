//! The resource APIs the simulator issues tokens for, keyed as in scenario grants, and how
//! each Microsoft cloud names them. A tenant lives in one cloud; a token is issued only for
//! the resource identifiers of its cloud and accepted only by its cloud's APIs ("access tokens
//! acquired for a national cloud deployment are not interchangeable", graph-docs
//! concepts/deployments.md).

use serde::{Deserialize, Serialize};

/// The Microsoft cloud a tenant lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cloud {
    #[default]
    Global,
    /// Worldwide Entra ID, Graph and Exchange; Defender for Endpoint at api-gcc (or, for a
    /// tenant not yet moved, the commercial service: defender-endpoint/gov.md).
    Gcc,
    /// Graph "US Government L4".
    GccHigh,
    /// Graph "US Government L5 (DOD)".
    Dod,
}

/// One resource application: its grants key, application id and token version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// Key in `AppSpec::grants`.
    pub key: &'static str,
    /// The resource's application id in every tenant and cloud.
    pub app_id: &'static str,
    /// v2.0 tokens (issuer `login.microsoftonline.com/{tid}/v2.0`, `azp`) or v1.0.
    pub v2: bool,
}

pub const GRAPH: Resource = Resource { key: "graph", app_id: "00000003-0000-0000-c000-000000000000", v2: false };
pub const MDE: Resource = Resource { key: "mde", app_id: "fc780465-2017-40d4-a0c5-307022471b92", v2: false };
pub const MDCA: Resource = Resource { key: "mdca", app_id: "05a65629-4c1b-48c1-a78b-804c4abdd4af", v2: true };
pub const EXCHANGE: Resource = Resource { key: "exchange", app_id: "00000002-0000-0ff1-ce00-000000000000", v2: false };

pub const ALL: &[Resource] = &[GRAPH, MDE, MDCA, EXCHANGE];

/// How clouds name a resource: the identifiers accepted before `/.default` and the `aud` of
/// tokens issued for them (ms-apis.md §1 audience table; national hosts as in
/// concepts/deployments.md, defender-endpoint/gov.md "API", Connect-ExchangeOnline -ConnectionUri).
struct Naming {
    resource: Resource,
    clouds: &'static [Cloud],
    identifiers: &'static [&'static str],
    audience: &'static str,
}

const COMMERCIAL: &[Cloud] = &[Cloud::Global, Cloud::Gcc];
const US_GOV: &[Cloud] = &[Cloud::GccHigh, Cloud::Dod];

const NAMINGS: &[Naming] = &[
    Naming { resource: GRAPH, clouds: COMMERCIAL, identifiers: &["https://graph.microsoft.com"], audience: "https://graph.microsoft.com" },
    Naming {
        resource: GRAPH,
        clouds: &[Cloud::GccHigh],
        identifiers: &["https://graph.microsoft.us"],
        audience: "https://graph.microsoft.us",
    },
    Naming {
        resource: GRAPH,
        clouds: &[Cloud::Dod],
        identifiers: &["https://dod-graph.microsoft.us"],
        audience: "https://dod-graph.microsoft.us",
    },
    Naming {
        resource: MDE,
        clouds: COMMERCIAL,
        identifiers: &[
            "https://api.securitycenter.microsoft.com",
            "https://api.security.microsoft.com",
            "https://securitycenter.onmicrosoft.com/windowsatpservice",
        ],
        audience: "https://api.securitycenter.microsoft.com",
    },
    Naming {
        resource: MDE,
        clouds: &[Cloud::Gcc],
        identifiers: &["https://api-gcc.securitycenter.microsoft.us"],
        audience: "https://api-gcc.securitycenter.microsoft.us",
    },
    Naming {
        resource: MDE,
        clouds: US_GOV,
        identifiers: &["https://api-gov.securitycenter.microsoft.us"],
        audience: "https://api-gov.securitycenter.microsoft.us",
    },
    Naming {
        resource: MDCA,
        clouds: &[Cloud::Global, Cloud::Gcc, Cloud::GccHigh, Cloud::Dod],
        identifiers: &[],
        audience: "05a65629-4c1b-48c1-a78b-804c4abdd4af",
    },
    Naming {
        resource: EXCHANGE,
        clouds: COMMERCIAL,
        identifiers: &["https://outlook.office365.com", "https://outlook.office.com"],
        audience: "https://outlook.office365.com",
    },
    Naming {
        resource: EXCHANGE,
        clouds: &[Cloud::GccHigh],
        identifiers: &["https://outlook.office365.us"],
        audience: "https://outlook.office365.us",
    },
    Naming { resource: EXCHANGE, clouds: &[Cloud::Dod], identifiers: &["https://webmail.apps.mil"], audience: "https://webmail.apps.mil" },
];

/// What a `…/.default` scope names in `cloud` (case-insensitive, trailing slash tolerated):
/// the resource and the `aud` its token carries. Err(true): a resource of another cloud.
pub fn by_identifier(cloud: Cloud, id: &str) -> Result<(Resource, &'static str), bool> {
    let id = id.trim_end_matches('/');
    let mut elsewhere = false;
    for n in NAMINGS {
        let by_app_id = n.resource.app_id.eq_ignore_ascii_case(id);
        if !by_app_id && !n.identifiers.iter().any(|i| i.eq_ignore_ascii_case(id)) {
            continue;
        }
        if n.clouds.contains(&cloud) {
            return Ok((n.resource, n.audience));
        }
        elsewhere = true;
    }
    Err(elsewhere)
}

/// The resource a token's `aud` names, if it is one of `cloud`'s.
pub fn by_audience(cloud: Cloud, aud: &str) -> Option<Resource> {
    NAMINGS.iter().find(|n| n.audience == aud && n.clouds.contains(&cloud)).map(|n| n.resource)
}

/// The Entra ID host that issues `cloud`'s tokens (concepts/deployments.md).
pub fn login_host(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global | Cloud::Gcc => "login.microsoftonline.com",
        Cloud::GccHigh | Cloud::Dod => "login.microsoftonline.us",
    }
}

/// Template ids of Entra directory roles (the `wids` claim).
pub fn role_template_id(name: &str) -> Option<&'static str> {
    Some(match name {
        "Global Administrator" => "62e90394-69f5-4237-9190-012177145e10",
        "Global Reader" => "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
        "Security Administrator" => "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Security Reader" => "5d6b6bb7-de71-4623-b4af-96380a352509",
        "Security Operator" => "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f",
        "Exchange Administrator" => "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Compliance Administrator" => "17315797-102d-40b4-93e0-432062caca18",
        "Privileged Authentication Administrator" => "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        _ => return None,
    })
}
