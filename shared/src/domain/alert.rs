//! A Microsoft object as the poller sees it: the few fields the protocol needs, decoded, and
//! the original bytes, passed through untouched (DESIGN.md §8).

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
#[error("an item has no usable id and version: {0}")]
pub struct HeadError(#[from] serde_json::Error);

/// Which members of a source's objects are its id and version, and how the version is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadSpec {
    pub id: &'static str,
    pub version: &'static str,
    pub version_format: VersionFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionFormat {
    /// An ISO 8601 date-time string, as Graph writes them.
    IsoTime,
    /// A number of milliseconds since the Unix epoch (Cloud Apps' `timestamp`).
    UnixMillis,
}

impl Item {
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
    pub fn decode(raw: &RawValue, spec: &HeadSpec) -> Result<Item, HeadError> {
        let head = Head::decode(raw.get(), spec)?;
        Item::from_raw_with(raw, head)
    }
}

impl Head {
    /// Reads the object's members until it has both its id and its version, in whatever
    /// order they come (none is documented), and skips the rest: the evidence that follows them
    /// in Graph's answers is most of an alert's bytes, and the page decode has already proven
    /// the whole object well-formed. Decoding the whole object instead was a second full pass
    /// over every page.
    fn decode(object: &str, spec: &HeadSpec) -> Result<Head, serde_json::Error> {
        use serde::de::{Deserializer as _, Error as _};
        let mut head = None;
        let mut de = serde_json::Deserializer::from_str(object);
        let read = de.deserialize_map(HeadVisitor { spec, out: &mut head });
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

/// Reads a member name as one of the head's keys.
struct KeyOf<'s>(&'s HeadSpec);

impl<'de> serde::de::DeserializeSeed<'de> for KeyOf<'_> {
    type Value = HeadKey;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<HeadKey, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl serde::de::Visitor<'_> for KeyOf<'_> {
    type Value = HeadKey;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<HeadKey, E> {
        Ok(if key == self.0.id {
            HeadKey::Id
        } else if key == self.0.version {
            HeadKey::Version
        } else {
            HeadKey::Other
        })
    }
}

struct HeadVisitor<'a> {
    spec: &'a HeadSpec,
    out: &'a mut Option<Head>,
}

impl<'de> serde::de::Visitor<'de> for HeadVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an object with {} and {}", self.spec.id, self.spec.version)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let (mut id, mut version) = (None, None);
        while let Some(key) = map.next_key_seed(KeyOf(self.spec))? {
            match key {
                HeadKey::Id if id.is_some() => return Err(A::Error::duplicate_field(self.spec.id)),
                HeadKey::Id => id = Some(map.next_value::<String>()?),
                HeadKey::Version if version.is_some() => return Err(A::Error::duplicate_field(self.spec.version)),
                HeadKey::Version => {
                    version = Some(match self.spec.version_format {
                        VersionFormat::IsoTime => map.next_value::<GraphTime>()?,
                        VersionFormat::UnixMillis => GraphTime::from_unix_millis(map.next_value::<i64>()?),
                    })
                }
                HeadKey::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            if let (Some(_), Some(_)) = (&id, &version) {
                *self.out = id.take().zip(version.take()).map(|(id, version)| Head { id, version });
                return Ok(());
            }
        }
        Err(match id {
            None => A::Error::missing_field(self.spec.id),
            Some(_) => A::Error::missing_field(self.spec.version),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAPH_HEAD: HeadSpec = HeadSpec { id: "id", version: "lastUpdateDateTime", version_format: VersionFormat::IsoTime };

    #[test]
    fn decodes_only_the_head_and_keeps_the_bytes() {
        let raw = RawValue::from_string(
            r#"{"id":"da1","title":"x","lastUpdateDateTime":"2021-05-02T14:19:01.3266667Z","evidence":[{"a":1}]}"#.into(),
        );
        let item = raw.as_deref().map(|r| Item::decode(r, &GRAPH_HEAD));
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
        let Ok(Ok(item)) = raw.as_deref().map(|r| Item::decode(r, &GRAPH_HEAD)) else { panic!("parse") };
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
            assert_eq!(Head::decode(object, &GRAPH_HEAD).ok(), Some(Head { id: "da1".into(), version }), "{object}");
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
            assert!(Head::decode(object, &GRAPH_HEAD).is_err(), "{object}");
        }
    }

    #[test]
    fn a_version_in_unix_milliseconds_is_read_as_a_time() {
        let spec = HeadSpec { id: "_id", version: "timestamp", version_format: VersionFormat::UnixMillis };
        let head = Head::decode(r#"{"_id":"ca1","title":"x","timestamp":1620000000123,"id":"other"}"#, &spec);
        assert_eq!(head.ok(), Some(Head { id: "ca1".into(), version: GraphTime::from_unix_millis(1_620_000_000_123) }));
        assert!(Head::decode(r#"{"_id":"ca1","timestamp":"yesterday"}"#, &spec).is_err());
    }

    #[test]
    fn an_item_without_a_version_is_an_error() {
        let raw = RawValue::from_string(r#"{"id":"x"}"#.into());
        assert!(raw.as_deref().map(|r| Item::decode(r, &GRAPH_HEAD)).is_ok_and(|r| r.is_err()));
    }
}
