//! The resource APIs the simulator issues tokens for, keyed as in scenario grants.

/// One resource application: how clients name it in `scope`, and what its tokens say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// Key in `AppSpec::grants`.
    pub key: &'static str,
    /// The resource's application id in every tenant.
    pub app_id: &'static str,
    /// Identifiers accepted before `/.default` (ms-apis.md §1, audience table).
    pub identifiers: &'static [&'static str],
    /// `aud` of issued tokens.
    pub audience: &'static str,
    /// v2.0 tokens (issuer `login.microsoftonline.com/{tid}/v2.0`, `azp`) or v1.0.
    pub v2: bool,
}

pub const GRAPH: Resource = Resource {
    key: "graph",
    app_id: "00000003-0000-0000-c000-000000000000",
    identifiers: &["https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"],
    audience: "https://graph.microsoft.com",
    v2: false,
};

pub const MDE: Resource = Resource {
    key: "mde",
    app_id: "fc780465-2017-40d4-a0c5-307022471b92",
    identifiers: &[
        "https://api.securitycenter.microsoft.com",
        "https://api.security.microsoft.com",
        "https://securitycenter.onmicrosoft.com/windowsatpservice",
        "fc780465-2017-40d4-a0c5-307022471b92",
    ],
    audience: "https://api.securitycenter.microsoft.com",
    v2: false,
};

pub const MDCA: Resource = Resource {
    key: "mdca",
    app_id: "05a65629-4c1b-48c1-a78b-804c4abdd4af",
    identifiers: &["05a65629-4c1b-48c1-a78b-804c4abdd4af"],
    audience: "05a65629-4c1b-48c1-a78b-804c4abdd4af",
    v2: true,
};

pub const EXCHANGE: Resource = Resource {
    key: "exchange",
    app_id: "00000002-0000-0ff1-ce00-000000000000",
    identifiers: &["https://outlook.office365.com", "https://outlook.office.com", "00000002-0000-0ff1-ce00-000000000000"],
    audience: "https://outlook.office365.com",
    v2: false,
};

pub const ALL: &[Resource] = &[GRAPH, MDE, MDCA, EXCHANGE];

/// Finds the resource a `…/.default` scope names (case-insensitive, trailing slash tolerated).
pub fn by_identifier(id: &str) -> Option<Resource> {
    let id = id.trim_end_matches('/');
    ALL.iter().copied().find(|r| r.identifiers.iter().any(|i| i.eq_ignore_ascii_case(id)))
}

pub fn by_audience(aud: &str) -> Option<Resource> {
    ALL.iter().copied().find(|r| r.audience == aud)
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
        _ => return None,
    })
}
