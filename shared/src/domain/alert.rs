//! A Microsoft object as the poller sees it: the few fields the protocol needs, decoded, and
//! the original bytes, passed through untouched (DESIGN.md §8).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::time::GraphTime;

/// The fields of an alert or incident that paging and the cursor need.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Head {
    pub id: String,
    #[serde(rename = "lastUpdateDateTime")]
    pub version: GraphTime,
}

/// One item of a Graph page.
#[derive(Debug, Clone)]
pub struct Item {
    pub head: Head,
    pub raw: Box<RawValue>,
}

#[derive(Debug, thiserror::Error)]
#[error("a Graph item has no usable id/lastUpdateDateTime: {0}")]
pub struct HeadError(#[from] serde_json::Error);

impl Item {
    pub fn from_raw(raw: &RawValue) -> Result<Item, HeadError> {
        let head: Head = serde_json::from_str(raw.get())?;
        Ok(Item { head, raw: raw.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_only_the_head_and_keeps_the_bytes() {
        let raw = RawValue::from_string(
            r#"{"id":"da1","title":"x","lastUpdateDateTime":"2021-05-02T14:19:01.3266667Z","evidence":[{"a":1}]}"#.into(),
        );
        let item = raw.as_deref().map(Item::from_raw);
        let Ok(Ok(item)) = item else { panic!("parse") };
        assert_eq!(item.head.id, "da1");
        assert_eq!(item.head.version.to_string(), "2021-05-02T14:19:01.3266667Z");
        assert!(item.raw.get().contains(r#""evidence":[{"a":1}]"#));
    }

    #[test]
    fn an_item_without_a_version_is_an_error() {
        let raw = RawValue::from_string(r#"{"id":"x"}"#.into());
        assert!(raw.as_deref().map(Item::from_raw).is_ok_and(|r| r.is_err()));
    }
}
