//! The system query options of a Graph collection request, checked against its limits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::eval::{BoundFilter, FilterSchema};
use super::filter;

/// Limits of one Graph collection, with the source of each number.
#[derive(Debug)]
pub struct QueryLimits {
    pub schema: &'static FilterSchema,
    /// Page size when `$top` is absent.
    pub default_top: usize,
    /// Largest `$top`; above it Graph clamps (alerts_v2, as Elastic observed: ms-apis.md §2)
    /// or rejects.
    pub max_top: usize,
    pub clamp_top: bool,
    /// `$skip` above this is a 400 (security-error-codes.md "Constraints": `$skip=501`).
    pub max_skip: usize,
    pub orderable: &'static [&'static str],
    pub expandable: &'static [&'static str],
    /// The caller sent `Prefer: include-unknown-enum-members` (evolvable enums, below).
    pub include_unknown: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBy {
    pub prop: &'static str,
    pub desc: bool,
}

#[derive(Debug, Clone)]
pub struct CollectionQuery {
    pub filter: Option<BoundFilter>,
    pub top: usize,
    /// Offset of the first item: `$skip` or the offset inside a `$skiptoken`.
    pub offset: usize,
    pub order: Vec<OrderBy>,
    pub count: bool,
    pub expand: Vec<&'static str>,
    /// The caller's query pairs minus `$skip`/`$skiptoken`, to build the next link from.
    pub carry: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub message: String,
}

fn bad(message: impl Into<String>) -> QueryError {
    QueryError { message: message.into() }
}

pub fn encode_skiptoken(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("sim-offset:{offset}"))
}

fn decode_skiptoken(t: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(t).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix("sim-offset:")?.parse().ok()
}

impl CollectionQuery {
    pub fn parse(pairs: &[(String, String)], limits: &QueryLimits) -> Result<Self, QueryError> {
        let mut q = CollectionQuery {
            filter: None,
            top: limits.default_top,
            offset: 0,
            order: Vec::new(),
            count: false,
            expand: Vec::new(),
            carry: Vec::new(),
        };
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in pairs {
            if k.starts_with('$') {
                if seen.contains(&k.as_str()) {
                    return Err(bad(format!("Query option '{k}' was specified more than once, but it must be specified at most once.")));
                }
                seen.push(k);
            }
            match k.as_str() {
                "$filter" => {
                    let e = filter::parse(v).map_err(|e| bad(e.to_string()))?;
                    q.filter = Some(limits.schema.bind(e, limits.include_unknown).map_err(|e| bad(e.0))?);
                }
                "$top" => {
                    let n: usize = v.parse().map_err(|_| {
                        bad(format!(
                            "Invalid value '{v}' for $top query option found. The $top query option requires a non-negative integer value."
                        ))
                    })?;
                    if n > limits.max_top && !limits.clamp_top {
                        return Err(bad(format!(
                            "The limit of '{}' for Top query has been exceeded. The value from the incoming request is '{n}'.",
                            limits.max_top
                        )));
                    }
                    q.top = n.min(limits.max_top);
                }
                "$skip" => {
                    let n: usize = v.parse().map_err(|_| bad(format!("Invalid value '{v}' for $skip query option found. The $skip query option requires a non-negative integer value.")))?;
                    if n > limits.max_skip {
                        return Err(bad(format!(
                            "The value of '$skip' must be between 0 and {}. The value from the incoming request is '{n}'.",
                            limits.max_skip
                        )));
                    }
                    q.offset = n;
                }
                "$skiptoken" => {
                    q.offset = decode_skiptoken(v).ok_or_else(|| bad("The $skiptoken is invalid or has been tampered with."))?;
                }
                "$count" => {
                    q.count = match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad(format!("'{v}' is not a valid count option. Use true or false."))),
                    };
                }
                "$orderby" => q.order = parse_orderby(v, limits)?,
                "$expand" => {
                    for item in v.split(',').map(str::trim) {
                        match limits.expandable.iter().find(|e| **e == item) {
                            Some(e) => q.expand.push(e),
                            None => {
                                return Err(bad(format!(
                                    "Could not find a property named '{item}' on type 'microsoft.graph.security.{}'.",
                                    limits.schema.entity
                                )))
                            }
                        }
                    }
                }
                other if other.starts_with('$') => {
                    return Err(bad(format!("Query option '{other}' is not supported by this collection.")));
                }
                _ => {}
            }
            if k != "$skip" && k != "$skiptoken" {
                q.carry.push((k.clone(), v.clone()));
            }
        }
        Ok(q)
    }
}

fn parse_orderby(v: &str, limits: &QueryLimits) -> Result<Vec<OrderBy>, QueryError> {
    let mut out = Vec::new();
    for item in v.split(',') {
        let mut parts = item.split_whitespace();
        let name = parts.next().ok_or_else(|| bad("$orderby has an empty item."))?;
        let desc = match parts.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(d) => return Err(bad(format!("'{d}' is not a sort direction in $orderby; use asc or desc."))),
        };
        if parts.next().is_some() {
            return Err(bad(format!("'{item}' is not a valid $orderby item.")));
        }
        let prop =
            limits.orderable.iter().find(|p| **p == name).ok_or_else(|| {
                bad(format!("$orderby is not supported on property '{name}'. Supported: {}.", limits.orderable.join(", ")))
            })?;
        out.push(OrderBy { prop, desc });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::eval::{Prop, PropKind};
    use super::*;

    static SCHEMA: FilterSchema = FilterSchema { entity: "alert", props: &[Prop { name: "lastUpdateDateTime", kind: PropKind::DateTime }] };
    static LIMITS: QueryLimits = QueryLimits {
        schema: &SCHEMA,
        default_top: 100,
        max_top: 1000,
        clamp_top: true,
        max_skip: 500,
        orderable: &["lastUpdateDateTime", "createdDateTime"],
        expandable: &[],
        include_unknown: false,
    };

    fn q(pairs: &[(&str, &str)]) -> Result<CollectionQuery, QueryError> {
        let p: Vec<(String, String)> = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        CollectionQuery::parse(&p, &LIMITS)
    }

    #[test]
    fn top_above_1000_is_clamped() {
        assert_eq!(q(&[("$top", "2000")]).map(|q| q.top), Ok(1000));
        assert_eq!(q(&[]).map(|q| q.top), Ok(100));
    }

    #[test]
    fn skip_above_500_is_a_bad_request() {
        assert_eq!(q(&[("$skip", "500")]).map(|q| q.offset), Ok(500));
        assert!(q(&[("$skip", "501")]).is_err());
        assert!(q(&[("$top", "-1")]).is_err());
    }

    #[test]
    fn orderby_accepts_documented_window_fields_only() {
        let o = q(&[("$orderby", "lastUpdateDateTime asc,createdDateTime desc")]).map(|q| q.order);
        assert_eq!(o, Ok(vec![OrderBy { prop: "lastUpdateDateTime", desc: false }, OrderBy { prop: "createdDateTime", desc: true }]));
        assert!(q(&[("$orderby", "title")]).is_err());
        assert!(q(&[("$orderby", "lastUpdateDateTime up")]).is_err());
    }

    #[test]
    fn skiptoken_round_trips_and_rejects_garbage() {
        let t = encode_skiptoken(1234);
        assert_eq!(q(&[("$skiptoken", &t)]).map(|q| q.offset), Ok(1234));
        assert!(q(&[("$skiptoken", "nope")]).is_err());
    }

    #[test]
    fn unknown_and_repeated_options_are_rejected() {
        assert!(q(&[("$search", "x")]).is_err());
        assert!(q(&[("$top", "1"), ("$top", "2")]).is_err());
        assert!(q(&[("api-version", "1")]).is_ok());
    }
}
