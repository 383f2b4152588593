//! SQS accepts only some Unicode in a message body (#x9, #xA, #xD, #x20–#xD7FF, #xE000–#xFFFD,
//! #x10000–#x10FFFF; SendMessage API reference). Graph passes through whatever an attacker put in
//! an email subject, so a body is made safe by escaping, never by dropping characters.

/// Whether SQS accepts `c` in a message body.
pub fn sqs_accepts(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Whether SQS accepts all of `s`. Every character it refuses is an ASCII control (a byte below
/// 0x20) or U+FFFE/U+FFFF (UTF-8 lead byte 0xEF), so one pass over the bytes, written to
/// vectorise, settles nearly every message; the rare candidate is checked character by character.
pub fn sqs_safe(s: &str) -> bool {
    let candidate = s.as_bytes().chunks(64).any(|c| c.iter().fold(false, |hit, &b| hit | (b < 0x20) | (b == 0xEF)));
    !candidate || s.chars().all(sqs_accepts)
}

/// `json` (a serialised JSON value) with every character SQS refuses written as a JSON `\uXXXX`
/// escape: the same JSON value, in characters SQS takes. Such characters can stand only inside
/// JSON strings (outside them JSON allows only ASCII), where an escape means the same.
pub fn escape_for_sqs(json: String) -> String {
    if sqs_safe(&json) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if sqs_accepts(c) {
            out.push(c);
        } else {
            // Every refused character is in the Basic Multilingual Plane: one escape each.
            out.push_str(&format!("\\u{:04x}", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_characters_are_escaped_and_mean_the_same() {
        let raw = serde_json::json!({"subject": "Invoice\u{FFFF}\u{FFFE} \u{1F600} ok"}).to_string();
        assert!(!raw.chars().all(sqs_accepts));
        let safe = escape_for_sqs(raw.clone());
        assert!(safe.chars().all(sqs_accepts), "{safe}");
        assert!(safe.contains("\\uffff\\ufffe"));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap_or_default();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(&raw).unwrap_or_default(), "nothing dropped");
        assert_eq!(escape_for_sqs("{\"a\":\"plain\"}".into()), "{\"a\":\"plain\"}");
        // U+F8FF shares the 0xEF lead byte with the refused ones and is accepted.
        assert!(sqs_safe("\u{F8FF} \t\n\r") && !sqs_safe("a\u{1}") && !sqs_safe("\u{FFFE}"));
    }

    #[test]
    fn the_accepted_set_is_sqs_s() {
        for c in ['\u{0}', '\u{8}', '\u{B}', '\u{1F}', '\u{FFFE}', '\u{FFFF}'] {
            assert!(!sqs_accepts(c), "{:x}", c as u32);
        }
        for c in ['\t', '\n', '\r', ' ', '\u{D7FF}', '\u{E000}', '\u{FFFD}', '\u{10000}', '\u{10FFFF}'] {
            assert!(sqs_accepts(c), "{:x}", c as u32);
        }
    }
}
