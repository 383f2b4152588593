//! How a string, a flag or a list is read from Microsoft's answers: each string cut to
//! [`MAX_TEXT`], each list to its cap, so the section stays bounded whatever a tenant holds.

use serde_json::Value;

/// The longest string kept from Microsoft's answers.
pub const MAX_TEXT: usize = 512;

pub(super) fn cut(s: Option<String>) -> Option<String> {
    s.map(|s| if s.len() <= MAX_TEXT { s } else { s.char_indices().take_while(|(i, _)| *i < MAX_TEXT).map(|(_, c)| c).collect() })
}

pub(super) fn text(v: &Value, pointer: &str) -> Option<String> {
    cut(v.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned))
}

pub(super) fn flag(v: &Value, pointer: &str) -> Option<bool> {
    v.pointer(pointer).and_then(Value::as_bool)
}

pub(super) fn strings(v: &Value, pointer: &str, max: usize) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).take(max).filter_map(|s| cut(Some(s.to_owned()))).collect())
        .unwrap_or_default()
}
