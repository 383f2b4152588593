//! Checks a parsed `$filter` against an entity's filterable properties, then evaluates it.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::filter::{CmpOp, Expr, Literal};
use crate::time::Instant;

#[derive(Debug, Clone, Copy)]
pub enum PropKind {
    DateTime,
    String,
    Bool,
    /// An evolvable enum: its members, compared case-insensitively as Graph does.
    Enum(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub struct Prop {
    pub name: &'static str,
    pub kind: PropKind,
}

/// What an entity set lets callers filter on; anything else is a 400, as Graph
/// answers for properties outside the documented list.
#[derive(Debug)]
pub struct FilterSchema {
    pub entity: &'static str,
    pub props: &'static [Prop],
}

/// A property value as the filter sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Null,
    Str(Cow<'a, str>),
    Time(Instant),
    Bool(bool),
}

/// Anything that can be filtered: a generated alert or a verbatim JSON object.
pub trait Filterable {
    fn field(&self, prop: &Prop) -> Field<'_>;
}

impl Filterable for serde_json::Map<String, serde_json::Value> {
    fn field(&self, prop: &Prop) -> Field<'_> {
        // A path (`from/emailAddress/address`) walks into nested objects.
        let mut parts = prop.name.split('/');
        let mut v = parts.next().and_then(|first| self.get(first));
        for part in parts {
            v = v.and_then(|x| x.get(part));
        }
        match v {
            Some(serde_json::Value::String(s)) => match prop.kind {
                PropKind::DateTime => Instant::parse(s).map_or(Field::Null, Field::Time),
                _ => Field::Str(Cow::Borrowed(s)),
            },
            Some(serde_json::Value::Bool(b)) => Field::Bool(*b),
            _ => Field::Null,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterBindError(pub String);

/// A filter whose properties and literals were checked against a schema.
#[derive(Debug, Clone)]
pub struct BoundFilter {
    expr: Expr,
    props: Vec<Prop>,
    /// The caller opted into enum members after `unknownFutureValue`; without it they are
    /// masked, in answers and in filters alike.
    include_unknown: bool,
}

const SENTINEL: &str = "unknownFutureValue";

/// Where `member` stands after the evolvable enum's sentinel, if it does (Graph's evolvable
/// enums: members added after `unknownFutureValue` exist for a caller only with
/// `Prefer: include-unknown-enum-members`; best-practices-concept.md "Handling future members
/// in evolvable enumerations").
fn beyond_sentinel(members: &[&str], member: &str) -> bool {
    let sentinel = members.iter().position(|m| *m == SENTINEL);
    let at = members.iter().position(|m| m.eq_ignore_ascii_case(member));
    matches!((sentinel, at), (Some(s), Some(a)) if a > s)
}

impl FilterSchema {
    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }

    pub fn bind(&self, expr: Expr, include_unknown: bool) -> Result<BoundFilter, FilterBindError> {
        let mut props = Vec::new();
        self.check(&expr, &mut props, include_unknown)?;
        Ok(BoundFilter { expr, props, include_unknown })
    }

    fn check(&self, e: &Expr, used: &mut Vec<Prop>, include_unknown: bool) -> Result<(), FilterBindError> {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.check(a, used, include_unknown)?;
                self.check(b, used, include_unknown)
            }
            Expr::Not(a) => self.check(a, used, include_unknown),
            Expr::Cmp { property, op, value } => {
                let p = self.lookup(property)?;
                check_literal(p, value, *op, include_unknown)?;
                used.push(*p);
                Ok(())
            }
            Expr::In { property, values } => {
                let p = self.lookup(property)?;
                for v in values {
                    check_literal(p, v, CmpOp::Eq, include_unknown)?;
                }
                used.push(*p);
                Ok(())
            }
        }
    }

    fn lookup(&self, name: &str) -> Result<&Prop, FilterBindError> {
        self.prop(name).ok_or_else(|| {
            let allowed: Vec<&str> = self.props.iter().map(|p| p.name).collect();
            FilterBindError(format!(
                "Invalid filter clause: the property '{name}' of '{}' cannot be used in $filter. Supported: {}.",
                self.entity,
                allowed.join(", ")
            ))
        })
    }
}

fn check_literal(p: &Prop, v: &Literal, op: CmpOp, include_unknown: bool) -> Result<(), FilterBindError> {
    let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
    match (p.kind, v) {
        (_, Literal::Null) if !ordered => Ok(()),
        (PropKind::DateTime, Literal::DateTime(_)) => Ok(()),
        (PropKind::DateTime, Literal::Str(s)) => Err(FilterBindError(format!(
            "Invalid filter clause: A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and 'Edm.String' for the operator kind '{op:?}'. Write the instant without quotes: {} ge {s}",
            p.name
        ))),
        (PropKind::String, Literal::Str(_)) if !ordered => Ok(()),
        (PropKind::Bool, Literal::Bool(_)) if !ordered => Ok(()),
        (PropKind::Enum(members), Literal::Str(s)) if !ordered => {
            // Without the opt-in, a member after the sentinel does not exist for this caller.
            if members.iter().any(|m| m.eq_ignore_ascii_case(s)) && (include_unknown || !beyond_sentinel(members, s)) {
                Ok(())
            } else {
                Err(FilterBindError(format!(
                    "Invalid filter clause: The string '{s}' is not a valid enumeration type constant for '{}'.",
                    p.name
                )))
            }
        }
        _ => Err(FilterBindError(format!(
            "Invalid filter clause: operator '{op:?}' with literal {v:?} is not supported on '{}'.",
            p.name
        ))),
    }
}

impl BoundFilter {
    /// The properties the filter names, each once, in the order they first appear.
    pub fn properties(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for p in &self.props {
            if !out.contains(&p.name) {
                out.push(p.name);
            }
        }
        out
    }

    pub fn matches(&self, r: &impl Filterable) -> bool {
        self.eval(&self.expr, r)
    }

    /// A property's value as this caller sees it: a masked member reads `unknownFutureValue`.
    fn seen<'a>(&self, p: &Prop, r: &'a impl Filterable) -> Field<'a> {
        match (r.field(p), p.kind) {
            (Field::Str(s), PropKind::Enum(members)) if !self.include_unknown && beyond_sentinel(members, &s) => {
                Field::Str(Cow::Borrowed(SENTINEL))
            }
            (f, _) => f,
        }
    }

    fn eval(&self, e: &Expr, r: &impl Filterable) -> bool {
        match e {
            Expr::And(a, b) => self.eval(a, r) && self.eval(b, r),
            Expr::Or(a, b) => self.eval(a, r) || self.eval(b, r),
            Expr::Not(a) => !self.eval(a, r),
            Expr::Cmp { property, op, value } => match self.props.iter().find(|p| p.name == property) {
                Some(p) => compare(&self.seen(p, r), *op, value),
                None => false,
            },
            Expr::In { property, values } => match self.props.iter().find(|p| p.name == property) {
                Some(p) => {
                    let f = self.seen(p, r);
                    values.iter().any(|v| compare(&f, CmpOp::Eq, v))
                }
                None => false,
            },
        }
    }
}

fn compare(f: &Field<'_>, op: CmpOp, v: &Literal) -> bool {
    let ord = match (f, v) {
        (Field::Null, Literal::Null) => Some(Ordering::Equal),
        (Field::Null, _) | (_, Literal::Null) => None,
        (Field::Time(a), Literal::DateTime(b)) => Some(a.cmp(b)),
        (Field::Str(a), Literal::Str(b)) => Some(if a.eq_ignore_ascii_case(b) { Ordering::Equal } else { a.as_ref().cmp(b.as_str()) }),
        (Field::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match (op, ord) {
        (CmpOp::Eq, Some(o)) => o == Ordering::Equal,
        (CmpOp::Ne, Some(o)) => o != Ordering::Equal,
        // `x ne null` is true for any value, `x eq 'a'` false for null.
        (CmpOp::Ne, None) => true,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::filter::parse;
    use super::*;
    use serde_json::json;

    const SEV: &[&str] = &["unknown", "informational", "low", "medium", "high", "unknownFutureValue"];
    const SERVICE: &[&str] = &["unknown", "dataLossPrevention", "unknownFutureValue", "microsoftSentinel"];
    const SCHEMA: FilterSchema = FilterSchema {
        entity: "alert",
        props: &[
            Prop { name: "severity", kind: PropKind::Enum(SEV) },
            Prop { name: "serviceSource", kind: PropKind::Enum(SERVICE) },
            Prop { name: "assignedTo", kind: PropKind::String },
            Prop { name: "lastUpdateDateTime", kind: PropKind::DateTime },
        ],
    };

    fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn check(filter: &str, v: serde_json::Value) -> Result<bool, String> {
        check_as(filter, v, false)
    }

    fn check_as(filter: &str, v: serde_json::Value, include_unknown: bool) -> Result<bool, String> {
        let e = parse(filter).map_err(|e| e.to_string())?;
        let b = SCHEMA.bind(e, include_unknown).map_err(|e| e.to_string())?;
        Ok(b.matches(&obj(v)))
    }

    /// Evolvable enums: without the Prefer opt-in a member after `unknownFutureValue` is no
    /// valid constant (a 400), and `unknownFutureValue` matches what is masked.
    #[test]
    fn members_after_the_sentinel_exist_only_for_callers_who_opt_in() {
        let a = json!({"serviceSource": "microsoftSentinel"});
        assert!(check("serviceSource eq 'microsoftSentinel'", a.clone()).is_err_and(|e| e.contains("not a valid enumeration")));
        assert_eq!(check("serviceSource eq 'unknownFutureValue'", a.clone()), Ok(true));
        assert_eq!(check("serviceSource eq 'dataLossPrevention'", a.clone()), Ok(false));
        assert_eq!(check_as("serviceSource eq 'microsoftSentinel'", a.clone(), true), Ok(true));
        assert_eq!(check_as("serviceSource eq 'unknownFutureValue'", a, true), Ok(false));
        let b = json!({"serviceSource": "dataLossPrevention"});
        assert_eq!(check("serviceSource eq 'unknownFutureValue'", b.clone()), Ok(false));
        assert_eq!(check("serviceSource eq 'dataLossPrevention'", b), Ok(true));
    }

    #[test]
    fn datetime_comparisons_are_exact_to_the_tick() {
        let a = json!({"lastUpdateDateTime": "2026-11-26T09:00:00.1234567Z"});
        assert_eq!(check("lastUpdateDateTime ge 2026-11-26T09:00:00.1234567Z", a.clone()), Ok(true));
        assert_eq!(check("lastUpdateDateTime gt 2026-11-26T09:00:00.1234567Z", a.clone()), Ok(false));
        assert_eq!(check("lastUpdateDateTime lt 2026-11-26T09:00:00.1234568Z", a.clone()), Ok(true));
        assert_eq!(check("lastUpdateDateTime le 2026-11-26T09:00:00.1234566Z", a), Ok(false));
    }

    #[test]
    fn enums_compare_case_insensitively_and_reject_unknown_members() {
        let a = json!({"severity": "high"});
        assert_eq!(check("severity eq 'High'", a.clone()), Ok(true));
        assert_eq!(check("severity in ('low','high')", a.clone()), Ok(true));
        assert_eq!(check("not (severity in ('low','medium'))", a.clone()), Ok(true));
        assert!(check("severity eq 'critical'", a).is_err_and(|e| e.contains("not a valid enumeration")));
    }

    #[test]
    fn null_semantics() {
        let a = json!({"assignedTo": null});
        assert_eq!(check("assignedTo eq null", a.clone()), Ok(true));
        assert_eq!(check("assignedTo ne null", a.clone()), Ok(false));
        assert_eq!(check("assignedTo eq 'x'", a.clone()), Ok(false));
        assert_eq!(check("assignedTo ne 'x'", a), Ok(true));
    }

    #[test]
    fn undocumented_properties_and_quoted_instants_are_rejected() {
        let a = json!({});
        assert!(check("detectionSource eq 'antivirus'", a.clone()).is_err_and(|e| e.contains("'detectionSource'")));
        assert!(check("lastUpdateDateTime ge '2026-11-26T09:00:00Z'", a).is_err_and(|e| e.contains("incompatible types")));
    }
}
