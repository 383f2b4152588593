//! Unpaired UTF-16 surrogates in the text Graph serves.
//!
//! A Windows file name is a sequence of UTF-16 code units with no pairing rule ("Naming Files,
//! Paths, and Namespaces", learn.microsoft.com/windows/win32/fileio/naming-a-file), and JSON's
//! grammar admits an escape of an unpaired surrogate (RFC 8259 §7; §8.2 says parsers then
//! disagree). Microsoft documents nothing about how Graph encodes such a name; the simulator
//! serves the `\uDXXX` escape, the answer strict parsers refuse (README "Undocumented").
//!
//! `serde_json::Value` cannot hold an unpaired surrogate, so the simulator stands for one with
//! a character of Supplementary Private Use Area-B, U+10F800 plus the surrogate's offset from
//! U+D800, and writes the escape in its place on the way out.

use std::borrow::Cow;

const BASE: u32 = 0x10F800;

/// The stand-in of the surrogate code unit `unit` (0xD800..=0xDFFF).
pub fn stand_in(unit: u16) -> char {
    char::from_u32(BASE + u32::from(unit.clamp(0xD800, 0xDFFF) - 0xD800)).unwrap_or('\u{fffd}')
}

/// Serialised JSON with every stand-in (always inside a string) written as its `\uDXXX` escape.
pub fn escape_stand_ins(bytes: Vec<u8>) -> Vec<u8> {
    // UTF-8 of U+10F800..=U+10FFFF: F4 8F A0..BF 80..BF.
    let found = |b: &[u8], i: usize| b[i] == 0xF4 && b.get(i + 1) == Some(&0x8F) && b.get(i + 2).is_some_and(|c| (0xA0..=0xBF).contains(c));
    if !(0..bytes.len()).any(|i| found(&bytes, i)) {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut i = 0;
    while i < bytes.len() {
        if found(&bytes, i) && i + 3 < bytes.len() {
            let c = (u32::from(bytes[i + 2] & 0x3F) << 6) | u32::from(bytes[i + 3] & 0x3F);
            let unit = 0xD800 + (c - 0x800);
            out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// JSON text (a seed file) with each escape of an unpaired surrogate replaced by its stand-in,
/// so that it loads into a `Value` and is served as written.
pub fn stand_ins_for_escapes(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let unit_at = |i: usize| -> Option<u16> {
        if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
            return None;
        }
        u16::from_str_radix(text.get(i + 2..i + 6)?, 16).ok()
    };
    let mut out = String::new();
    let (mut copied, mut i) = (0, 0);
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit_at(i) {
            Some(hi @ 0xD800..=0xDBFF) if !matches!(unit_at(i + 6), Some(0xDC00..=0xDFFF)) => {
                out.push_str(&text[copied..i]);
                out.push(stand_in(hi));
                i += 6;
                copied = i;
            }
            Some(0xD800..=0xDBFF) => i += 12,
            Some(lo @ 0xDC00..=0xDFFF) => {
                out.push_str(&text[copied..i]);
                out.push(stand_in(lo));
                i += 6;
                copied = i;
            }
            Some(_) => i += 6,
            None => i += 2,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_escape_is_served_as_written() {
        let seed = r#"{"fileName":"a\ud800b\udfff\ud83d\ude00","p":"C:\\ud800"}"#;
        let v: serde_json::Value = serde_json::from_str(&stand_ins_for_escapes(seed)).unwrap_or_default();
        let served = String::from_utf8(escape_stand_ins(serde_json::to_vec(&v).unwrap_or_default())).unwrap_or_default();
        assert_eq!(served, r#"{"fileName":"a\ud800b\udfff😀","p":"C:\\ud800"}"#);
        assert!(serde_json::from_str::<serde_json::Value>(&served).is_err(), "a strict parser refuses what is served");
    }

    #[test]
    fn only_stand_ins_are_rewritten_and_other_text_is_untouched() {
        let b = "{\"a\":\"\u{10ffff}é\"}".as_bytes().to_vec();
        assert_eq!(escape_stand_ins(b.clone()), "{\"a\":\"\\udfff\u{e9}\"}".as_bytes().to_vec());
        let plain = br#"{"a":"\u00e9"}"#.to_vec();
        assert_eq!(escape_stand_ins(plain.clone()), plain);
    }
}
