//! Validation failures (the `validator` crate's) as `Error::Invalid`: one
//! entry per field, with its path for nested inputs and a message in words.

use super::{Error, FIELD_PARAM, FieldError, InvalidInput, Result};

impl From<validator::ValidationErrors> for Error {
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut fields = Vec::new();
        collect_validation_errors(&errors, "", &mut fields);
        fields.sort_by(|a, b| a.field.cmp(&b.field));
        Error::Invalid(InvalidInput { fields })
    }
}

fn collect_validation_errors(
    errors: &validator::ValidationErrors,
    prefix: &str,
    out: &mut Vec<FieldError>,
) {
    use validator::ValidationErrorsKind;
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    // A struct-level rule about one field (`input::json_field`)
                    // is that field's error.
                    let path = match e.params.get(FIELD_PARAM) {
                        Some(serde_json::Value::String(f)) if field == "__all__" => {
                            if prefix.is_empty() {
                                f.clone()
                            } else {
                                format!("{prefix}.{f}")
                            }
                        }
                        _ => path.clone(),
                    };
                    out.push(FieldError {
                        field: path,
                        code: e.code.clone(),
                        message: describe_validation_error(e),
                    });
                }
            }
            ValidationErrorsKind::Struct(inner) => collect_validation_errors(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    collect_validation_errors(inner, &format!("{path}[{i}]"), out);
                }
            }
        }
    }
}

/// A readable sentence for a validator error: its own message when the
/// derive gave one, else one built from the code and its parameters.
fn describe_validation_error(e: &validator::ValidationError) -> String {
    if let Some(msg) = &e.message {
        return msg.to_string();
    }
    let param = |k: &str| e.params.get(k).map(|v| v.to_string());
    match e.code.as_ref() {
        "length" => match (param("min"), param("max"), param("equal")) {
            (_, _, Some(eq)) => format!("must be exactly {eq} characters long"),
            (Some(min), Some(max), _) => format!("must be {min} to {max} characters long"),
            (Some(min), None, _) => format!("must be at least {min} characters long"),
            (None, Some(max), _) => format!("must be at most {max} characters long"),
            _ => "has an invalid length".to_owned(),
        },
        "range" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            (Some(min), None) => format!("must be at least {min}"),
            (None, Some(max)) => format!("must be at most {max}"),
            _ => "is out of range".to_owned(),
        },
        "email" => "must be a valid email address".to_owned(),
        "url" => "must be a valid URL".to_owned(),
        code => format!("is invalid ({code})"),
    }
}

/// Validates an input struct, turning every failed rule into `Error::Invalid`.
pub fn validate<T: validator::Validate>(input: &T) -> Result<()> {
    input.validate().map_err(Error::from)
}
