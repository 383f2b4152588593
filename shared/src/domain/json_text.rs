//! JSON text whose string escapes decode to no Unicode scalar value.
//!
//! JSON's grammar (RFC 8259 §7) admits `\uD800`–`\uDFFF` escapes that pair with nothing, and
//! §8.2 warns that parsers then disagree. Windows file names are UTF-16 code units with no
//! pairing rule ("Naming Files, Paths, and Namespaces"), and Graph returns a name as the device
//! reported it, so an alert's `fileName` can carry one. Rust strings cannot hold it: serde_json
//! refuses the whole object. The processor reads such an object with each unpaired escape as
//! U+FFFD (visible in every field) and keeps Microsoft's bytes unchanged in the artifact store.

use std::borrow::Cow;

/// The text with every escape of an unpaired UTF-16 surrogate replaced by `\ufffd`, and how
/// many were replaced. Borrowed (and 0) when there was none; linear in the text.
pub fn replace_unpaired_surrogates(text: &str) -> (Cow<'_, str>, usize) {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut count = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape: `\` and one character, or `\uXXXX`.
        let Some(unit) = hex_escape(b, i) else {
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF => match hex_escape(b, i + 6) {
                Some(0xDC00..=0xDFFF) => i += 12,
                _ => {
                    replace(text, &mut out, &mut copied, i);
                    count += 1;
                    i += 6;
                    copied = i;
                }
            },
            0xDC00..=0xDFFF => {
                replace(text, &mut out, &mut copied, i);
                count += 1;
                i += 6;
                copied = i;
            }
            _ => i += 6,
        }
    }
    match out {
        None => (Cow::Borrowed(text), 0),
        Some(mut s) => {
            s.push_str(&text[copied..]);
            (Cow::Owned(s), count)
        }
    }
}

fn replace(text: &str, out: &mut Option<String>, copied: &mut usize, at: usize) {
    let s = out.get_or_insert_with(|| String::with_capacity(text.len()));
    s.push_str(&text[*copied..at]);
    s.push_str("\\ufffd");
    *copied = at;
}

/// The code unit of a `\uXXXX` escape starting at `at`, if one starts there.
fn hex_escape(b: &[u8], at: usize) -> Option<u32> {
    if b.get(at) != Some(&b'\\') || b.get(at + 1) != Some(&b'u') {
        return None;
    }
    let hex = b.get(at + 2..at + 6)?;
    hex.iter().try_fold(0u32, |acc, &c| Some(acc * 16 + (c as char).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &str) -> Option<String> {
        serde_json::from_str::<String>(&replace_unpaired_surrogates(text).0).ok()
    }

    #[test]
    fn unpaired_escapes_become_the_replacement_character_and_pairs_stay() {
        assert!(serde_json::from_str::<String>(r#""a\ud800b""#).is_err(), "serde_json refuses it, which is the point");
        assert_eq!(decoded(r#""a\ud800b""#).as_deref(), Some("a\u{fffd}b"));
        assert_eq!(decoded(r#""a\uDC00b""#).as_deref(), Some("a\u{fffd}b"));
        assert_eq!(decoded(r#""\ud800\ud800\udc00""#).as_deref(), Some("\u{fffd}\u{10000}"));
        assert_eq!(decoded(r#""\ud83d\ude00 end\ud83d""#).as_deref(), Some("\u{1f600} end\u{fffd}"));
        assert_eq!(decoded(r#""\udc00\ud800""#).as_deref(), Some("\u{fffd}\u{fffd}"));
        assert_eq!(replace_unpaired_surrogates(r#""a\ud800b\udfffc""#).1, 2);
    }

    #[test]
    fn an_escaped_backslash_before_u_is_text_not_an_escape() {
        let t = r#""C:\\ud800\\x""#;
        assert!(matches!(replace_unpaired_surrogates(t), (Cow::Borrowed(_), 0)));
        assert_eq!(decoded(t).as_deref(), Some(r"C:\ud800\x"));
        assert_eq!(decoded(r#""\\\ud800""#).as_deref(), Some("\\\u{fffd}"));
    }

    #[test]
    fn text_without_such_escapes_is_borrowed_and_truncated_escapes_are_left_alone() {
        assert!(matches!(replace_unpaired_surrogates(r#"{"a":"\u00e9\n"}"#), (Cow::Borrowed(_), 0)));
        assert!(matches!(replace_unpaired_surrogates(r#""\ud8"#), (Cow::Borrowed(_), 0)));
        assert!(matches!(replace_unpaired_surrogates("é\\"), (Cow::Borrowed(_), 0)));
        assert!(matches!(replace_unpaired_surrogates("plain"), (Cow::Borrowed(_), 0)));
    }
}
