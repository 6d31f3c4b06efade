//! Input rules every domain shares, written once: text that PostgreSQL
//! would refuse with a 500 (NUL bytes) or that no one means to store
//! (control characters, whitespace-only names), and JSON payloads that would
//! be committed but could never be read back (nested deeper than serde_json
//! reads) or are unreasonably large.
//!
//! Each rule is a validator custom function (`#[validate(custom(function =
//! "crate::input::line"))]`) and, for values that arrive as plain function
//! parameters, a `check_*` helper returning `Error::Invalid` naming the field.

use serde_json::Value;
use validator::ValidationError;

use crate::{Error, Result};

/// The deepest JSON nesting a payload may have. serde_json refuses to read
/// more than 128 levels; a payload stored inside another document (a node's
/// `data` inside a graph) gets a few more, so 64 leaves ample room.
pub const MAX_JSON_DEPTH: usize = 64;

/// The largest JSON payload of one column, serialised: 1 MiB (graphs,
/// canvases, execution and step input/output, notification data, audit
/// snapshots, webhook payloads, message parts).
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

fn error(code: &'static str, message: String) -> ValidationError {
    ValidationError::new(code).with_message(message.into())
}

/// A one-line value (a name, title, id or kind): no control characters and
/// not only whitespace.
pub fn line(value: &str) -> std::result::Result<(), ValidationError> {
    if value.chars().any(char::is_control) {
        return Err(error(
            "control_character",
            "must not contain control characters (NUL, line breaks, ...)".into(),
        ));
    }
    if !value.is_empty() && value.trim().is_empty() {
        return Err(error("blank", "must not be only whitespace".into()));
    }
    Ok(())
}

/// Free text (a description, body, error message): line breaks and tabs
/// are fine, NUL and other control characters are not.
pub fn text(value: &str) -> std::result::Result<(), ValidationError> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(error(
            "control_character",
            "must not contain NUL or control characters other than line breaks and tabs".into(),
        ));
    }
    Ok(())
}

/// A JSON payload of one column: at most `MAX_JSON_DEPTH` levels, at most
/// `MAX_JSON_BYTES` serialised, and no `\u0000` in any string or key
/// (PostgreSQL's `jsonb` refuses it).
pub fn json(value: &Value) -> std::result::Result<(), ValidationError> {
    json_within(value, MAX_JSON_BYTES)
}

/// The shape a JSON field must have.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    /// Any JSON value.
    Any,
    /// An object.
    Object,
    /// A non-empty array.
    NonEmptyArray,
}

/// One JSON field of an input struct, checked by `json` and for its shape,
/// as a struct-level rule: `#[validate(schema(function = "...",
/// skip_on_field_errors = false))]` calling this for each JSON field. Not a
/// field-level `custom` rule: the validation library copies a field's value
/// into the error of a failed field-level rule, recursively, and a value
/// nested a million levels deep (built in code: serde_json's parser stops at
/// 128) overflowed the stack. The error names the field (`field` parameter,
/// read by `Error::from(ValidationErrors)`) and holds nothing of the value.
pub(crate) fn json_field(
    field: &'static str,
    value: &Value,
    shape: Shape,
) -> std::result::Result<(), ValidationError> {
    let fits = match shape {
        Shape::Any => true,
        Shape::Object => value.is_object(),
        Shape::NonEmptyArray => value.as_array().is_some_and(|a| !a.is_empty()),
    };
    let mut err = if fits {
        match json(value) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        }
    } else {
        match shape {
            Shape::Object => error("object", "must be a JSON object".into()),
            _ => error("parts", "must be a non-empty JSON array".into()),
        }
    };
    err.add_param(crate::error::FIELD_PARAM.into(), &field);
    Err(err)
}

/// `json` with a size limit of `max_bytes`.
pub fn json_within(value: &Value, max_bytes: usize) -> std::result::Result<(), ValidationError> {
    walk(value, 1)?;
    let size = json_size(value);
    if size > max_bytes {
        return Err(error(
            "size",
            format!("must be at most {max_bytes} bytes of JSON (is {size})"),
        ));
    }
    Ok(())
}

fn walk(value: &Value, depth: usize) -> std::result::Result<(), ValidationError> {
    let too_deep = || {
        error(
            "depth",
            format!("must be nested at most {MAX_JSON_DEPTH} levels deep"),
        )
    };
    let nul = || error("nul", "must not contain \\u0000".into());
    match value {
        Value::String(s) if s.contains('\0') => Err(nul()),
        Value::Array(items) => {
            if depth > MAX_JSON_DEPTH {
                return Err(too_deep());
            }
            items.iter().try_for_each(|v| walk(v, depth + 1))
        }
        Value::Object(map) => {
            if depth > MAX_JSON_DEPTH {
                return Err(too_deep());
            }
            map.iter().try_for_each(|(k, v)| {
                if k.contains('\0') {
                    return Err(nul());
                }
                walk(v, depth + 1)
            })
        }
        _ => Ok(()),
    }
}

/// `measure()` (a `json_size`), or 0 when `fields` already refuse a value
/// for its depth: measuring serialises as deep as the value goes, which for
/// a value nested a million levels would overflow the stack.
pub(crate) fn size_unless_too_deep(
    fields: &[crate::error::FieldError],
    measure: impl FnOnce() -> usize,
) -> usize {
    if fields.iter().any(|f| f.code == "depth") {
        0
    } else {
        measure()
    }
}

/// The length of `value` serialised as compact JSON, without building it.
pub(crate) fn json_size<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("input values serialise");
    count.0
}

fn invalid(field: &str, e: ValidationError) -> Error {
    let message = e
        .message
        .map(|m| m.to_string())
        .unwrap_or_else(|| "is invalid".into());
    Error::invalid(field.to_owned(), e.code, message)
}

/// `json` for a value passed as a parameter: `Invalid { field }`.
pub(crate) fn check_json(field: &str, value: &Value) -> Result<()> {
    json(value).map_err(|e| invalid(field, e))
}

/// `text` plus a length of `min..=max` characters, for a parameter.
pub(crate) fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    if !(min..=max).contains(&value.chars().count()) {
        return Err(Error::invalid(
            field.to_owned(),
            "length",
            format!("must be {min} to {max} characters long"),
        ));
    }
    text(value).map_err(|e| invalid(field, e))
}

/// `line` plus a length of `min..=max` characters, for a parameter.
pub(crate) fn check_line(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    check_text(field, value, min, max)?;
    line(value).map_err(|e| invalid(field, e))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn nested(depth: usize) -> serde_json::Value {
        (1..depth).fold(json!([]), |v, _| json!([v]))
    }

    #[test]
    fn depth_size_and_nul_are_checked() {
        assert!(super::json(&nested(super::MAX_JSON_DEPTH)).is_ok());
        assert!(super::json(&nested(super::MAX_JSON_DEPTH + 1)).is_err());
        assert!(super::json(&json!({"a": "x\u{0}y"})).is_err());
        assert!(super::json(&json!({"a\u{0}": 1})).is_err());
        assert!(super::json_within(&json!("0123456789"), 11).is_err());
        assert_eq!(super::json_size(&json!({"a": [1, 2]})), 11);
        assert!(super::line("  ").is_err());
        assert!(super::line("a\u{0}").is_err());
        assert!(super::line("a\nb").is_err());
        assert!(super::text("a\nb\tc").is_ok());
        assert!(super::text("a\u{0}b").is_err());
    }
}
