//! Members added to Microsoft's objects (an incident's alerts, a report's email) with the
//! object's own bytes kept as Microsoft sent them.

use serde_json::value::RawValue;

use crate::domain::alert::Item;
use crate::error::{Error, GraphError};

/// The object with its children appended as an array `member`, as `$expand` would give it.
pub(crate) fn with_children(object: &RawValue, member: &str, children: &[Item]) -> Result<Box<RawValue>, Error> {
    let mut array = String::with_capacity(children.iter().map(|a| a.raw.get().len() + 1).sum::<usize>() + 2);
    array.push('[');
    for (i, a) in children.iter().enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push_str(a.raw.get());
    }
    array.push(']');
    with_member(object, member, &array)
}

/// The object with the JSON `value` appended as `member`; the object's own bytes are kept as
/// Microsoft sent them.
pub(crate) fn with_member(object: &RawValue, member: &str, value: &str) -> Result<Box<RawValue>, Error> {
    let body = object.get().trim_end();
    let open = body.strip_suffix('}').ok_or_else(|| GraphError::Decode { what: "an item".into(), detail: "not a JSON object".into() })?;
    let mut s = String::with_capacity(body.len() + member.len() + value.len() + 8);
    s.push_str(open.trim_end());
    if !open.trim_end().ends_with('{') {
        s.push(',');
    }
    // A member name is ours (a constant), never Microsoft's text: no escaping needed.
    s.push('"');
    s.push_str(member);
    s.push_str("\":");
    s.push_str(value);
    s.push('}');
    RawValue::from_string(s).map_err(|e| GraphError::Decode { what: format!("an item with its {member}"), detail: e.to_string() }.into())
}

#[cfg(test)]
mod tests {
    use crate::app::polling::item_json::*;

    #[test]
    fn alerts_are_appended_to_an_incident() {
        let inc = RawValue::from_string(r#"{"id":"1","lastUpdateDateTime":"2021-01-01T00:00:00Z"}"#.into());
        let a = RawValue::from_string(r#"{"id":"a","lastUpdateDateTime":"2021-01-01T00:00:00Z"}"#.into());
        let (Ok(inc), Ok(a)) = (inc, a) else { panic!("json") };
        let item = Item::decode(&a, &crate::sources::GRAPH_SECURITY_HEAD).map_err(|e| e.to_string());
        let Ok(item) = item else { panic!("item") };
        let out = with_children(&inc, "alerts", &[item.clone(), item]).map(|r| r.get().to_owned()).map_err(|e| e.to_string());
        assert_eq!(
            out.as_deref(),
            Ok(
                r#"{"id":"1","lastUpdateDateTime":"2021-01-01T00:00:00Z","alerts":[{"id":"a","lastUpdateDateTime":"2021-01-01T00:00:00Z"},{"id":"a","lastUpdateDateTime":"2021-01-01T00:00:00Z"}]}"#
            )
        );
        let empty =
            RawValue::from_string("{}".into()).map(|e| with_children(&e, "alerts", &[]).map(|r| r.get().to_owned()).unwrap_or_default());
        assert_eq!(empty.ok().as_deref(), Some(r#"{"alerts":[]}"#));
    }
}
