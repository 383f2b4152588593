//! Secret material in a type that never prints it.

use std::fmt;

/// A client secret, private key or access token. `Debug` and `Display` print `***`, so a
/// secret inside an error, a log field or a `{:?}` of a struct stays hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The only way to the value: call sites that need it are easy to find.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// serde's message for `e` without any value from the input. serde quotes the offending value
/// in type and value errors (`invalid type: string "hunter2", expected a map`); for input that
/// may hold a credential only the kind of value and what was expected are kept. Field names
/// (`unknown field `x``) and positions stay: they carry no value.
pub fn serde_message_without_values(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or_default();
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let expected = rest.rsplit_once(", expected ").map(|(_, x)| x).unwrap_or("another kind of value");
            let kind = rest.split([' ', ',']).next().unwrap_or_default();
            // The kind is a serde word (string, integer, map ...), never input.
            let kind = if kind.bytes().all(|b| b.is_ascii_lowercase()) { kind } else { "value" };
            return format!("{}: {kind} given, expected {expected}", prefix.trim_end_matches(": ").trim_end());
        }
    }
    if e.is_syntax() || e.is_eof() {
        return format!("not valid JSON ({})", if e.is_eof() { "it ends early" } else { "a syntax error" });
    }
    if msg.starts_with("unknown field") || msg.starts_with("missing field") || msg.starts_with("duplicate field") {
        return msg.to_owned();
    }
    "the value has the wrong shape".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_keep_no_value() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Doc {
            a: std::collections::BTreeMap<String, String>,
            n: Option<u8>,
        }
        for (json, needle) in [
            (r#""hunter2""#, "invalid type: string given, expected struct Doc"),
            (r#"{"a": "hunter2"}"#, "invalid type: string given, expected a map"),
            (r#"{"a": {"k": 987654}}"#, "invalid type: integer given"),
            (r#"{"a": {}, "n": 9876}"#, "invalid value: integer given, expected u8"),
            (r#"{"a": {}, "hunter": 1}"#, "unknown field `hunter`"),
            (r#"{"a": {"k": "hunter2"#, "not valid JSON"),
            (r#"{"a": {"k": hunter2}}"#, "not valid JSON"),
        ] {
            let Err(e) = serde_json::from_str::<Doc>(json) else { panic!("{json} parsed") };
            let m = serde_message_without_values(&e);
            assert!(m.contains(needle), "{json}: {m}");
            assert!(!m.contains("hunter2") && !m.contains("987654") && !m.contains("9876"), "{m}");
        }
    }

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
