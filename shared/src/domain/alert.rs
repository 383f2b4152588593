//! A Microsoft object as the poller sees it: the few fields the protocol needs, decoded, and
//! the original bytes, passed through untouched (DESIGN.md §8).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::time::GraphTime;

/// The fields of an alert or incident that paging and the cursor need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub id: String,
    /// `lastUpdateDateTime`.
    pub version: GraphTime,
}

/// One item of a Graph page.
#[derive(Debug, Clone)]
pub struct Item {
    pub head: Head,
    pub raw: Box<RawValue>,
}

/// An item of a page that could not be decoded: its bytes as they came, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub raw: String,
    pub reason: String,
}

impl Rejected {
    /// Names the item by its bytes (it has no usable id).
    pub fn key(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, self.raw.as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("an item has no usable id and version (lastUpdateDateTime, or _id and timestamp): {0}")]
pub struct HeadError(#[from] serde_json::Error);

/// The head of a Cloud Apps alert: `_id` and `timestamp` in Unix milliseconds (api-alerts-list.md).
#[derive(Deserialize)]
struct CloudAppsHead {
    #[serde(rename = "_id")]
    id: String,
    timestamp: i64,
}

impl Item {
    /// A Cloud Apps alert: its `timestamp` (ms) is the version the window and cursor use.
    pub fn from_cloud_apps(raw: &RawValue) -> Result<Item, HeadError> {
        let h: CloudAppsHead = serde_json::from_str(raw.get())?;
        Item::from_raw_with(raw, Head { id: h.id, version: GraphTime::from_unix_millis(h.timestamp) })
    }

    fn from_raw_with(raw: &RawValue, head: Head) -> Result<Item, HeadError> {
        let text = raw.get();
        // memchr: `str::contains` with a char set walks the object char by char (7 % of the
        // poll process's CPU at 4 KB an alert).
        let raw = if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() {
            RawValue::from_string(text.replace(['\n', '\r'], " "))?
        } else {
            raw.to_owned()
        };
        Ok(Item { head, raw })
    }

    /// Keeps the bytes as they came, except that line breaks become spaces: in valid JSON a
    /// line break can only be whitespace (inside strings it is escaped), and one message per
    /// line is what NDJSON outputs and line-oriented consumers need.
    pub fn from_raw(raw: &RawValue) -> Result<Item, HeadError> {
        let head = Head::decode(raw.get())?;
        Item::from_raw_with(raw, head)
    }
}

impl Head {
    /// Reads the object's members until it has both `id` and `lastUpdateDateTime`, in whatever
    /// order they come (none is documented), and skips the rest: the evidence that follows them
    /// in Graph's answers is most of an alert's bytes, and the page decode has already proven
    /// the whole object well-formed. Decoding the whole object instead was a second full pass
    /// over every page.
    fn decode(object: &str) -> Result<Head, serde_json::Error> {
        use serde::de::{Deserializer as _, Error as _};
        let mut head = None;
        let mut de = serde_json::Deserializer::from_str(object);
        let read = de.deserialize_map(HeadVisitor(&mut head));
        match (head, read) {
            // Stopping early leaves members unread, which serde_json reports once the visitor
            // returns; the head was found by then.
            (Some(head), _) => Ok(head),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(serde_json::Error::custom("no head was read")),
        }
    }
}

/// The members the head needs; every other key is skipped unread.
enum HeadKey {
    Id,
    Version,
    Other,
}

impl<'de> Deserialize<'de> for HeadKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = HeadKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<HeadKey, E> {
                Ok(match key {
                    "id" => HeadKey::Id,
                    "lastUpdateDateTime" => HeadKey::Version,
                    _ => HeadKey::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

struct HeadVisitor<'a>(&'a mut Option<Head>);

impl<'de> serde::de::Visitor<'de> for HeadVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with id and lastUpdateDateTime")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let (mut id, mut version) = (None, None);
        while let Some(key) = map.next_key::<HeadKey>()? {
            match key {
                HeadKey::Id if id.is_some() => return Err(A::Error::duplicate_field("id")),
                HeadKey::Id => id = Some(map.next_value::<String>()?),
                HeadKey::Version if version.is_some() => return Err(A::Error::duplicate_field("lastUpdateDateTime")),
                HeadKey::Version => version = Some(map.next_value::<GraphTime>()?),
                HeadKey::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            if let (Some(_), Some(_)) = (&id, &version) {
                *self.0 = id.take().zip(version.take()).map(|(id, version)| Head { id, version });
                return Ok(());
            }
        }
        Err(match id {
            None => A::Error::missing_field("id"),
            Some(_) => A::Error::missing_field("lastUpdateDateTime"),
        })
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
    fn pretty_printed_objects_become_one_line() {
        let raw = RawValue::from_string(
            "{\n  \"id\": \"a\",\r\n  \"title\": \"x\\ny\",\n  \"lastUpdateDateTime\": \"2021-05-02T14:19:01Z\"\n}".into(),
        );
        let Ok(Ok(item)) = raw.as_deref().map(Item::from_raw) else { panic!("parse") };
        assert!(!item.raw.get().contains('\n'));
        let v: serde_json::Value = serde_json::from_str(item.raw.get()).unwrap_or_default();
        assert_eq!(v["title"], "x\ny", "escaped line breaks inside strings are kept");
    }

    #[test]
    fn the_head_is_found_in_any_member_order_and_with_escapes() {
        let version = GraphTime::parse("2021-05-02T14:19:01.3266667Z").unwrap_or_default();
        for object in [
            r#"{"lastUpdateDateTime":"2021-05-02T14:19:01.3266667Z","evidence":[{"id":"no"}],"id":"da1"}"#,
            r#"{"id":"da1","lastUpdateDateTime":"2021-05-02T14:19:01.3266667Z","evidence":[{"id":"no"}],"x":{"lastUpdateDateTime":1}}"#,
            r#"{"nested":{"id":"no","lastUpdateDateTime":"2020-01-01T00:00:00Z"},"id":"da1","lastUpdateDateTime":"2021-05-02T14:19:01.3266667Z"}"#,
        ] {
            assert_eq!(Head::decode(object).ok(), Some(Head { id: "da1".into(), version }), "{object}");
        }
    }

    #[test]
    fn a_head_that_is_repeated_or_not_a_string_is_refused() {
        for object in [
            r#"{"id":"a","id":"b","lastUpdateDateTime":"2021-05-02T14:19:01Z"}"#,
            r#"{"lastUpdateDateTime":"2021-05-02T14:19:01Z","lastUpdateDateTime":"2021-05-02T14:19:02Z","id":"a"}"#,
            r#"{"id":7,"lastUpdateDateTime":"2021-05-02T14:19:01Z"}"#,
            r#"{"id":"a","lastUpdateDateTime":"yesterday"}"#,
            r#"["id","a"]"#,
        ] {
            assert!(Head::decode(object).is_err(), "{object}");
        }
    }

    #[test]
    fn an_item_without_a_version_is_an_error() {
        let raw = RawValue::from_string(r#"{"id":"x"}"#.into());
        assert!(raw.as_deref().map(Item::from_raw).is_ok_and(|r| r.is_err()));
    }
}
