//! Database URLs as people write them, and as they may be printed.

/// The URL with its password replaced by `***`, for logs and errors.
pub fn redact_url(raw: &str) -> String {
    if let Ok(mut url) = url::Url::parse(raw) {
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        // Also `?password=...` in the query string.
        if url.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return url.to_string();
    }
    // A libpq key=value string: "host=x password=secret dbname=y".
    raw.split_whitespace()
        .map(|part| match part.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/app"),
            "postgres://app:***@db.internal:5432/app"
        );
        assert_eq!(
            redact_url("postgres://app@localhost/app"),
            "postgres://app@localhost/app"
        );
        assert!(!redact_url("postgres://h/app?password=s3cret&sslmode=require").contains("s3cret"));
        assert_eq!(
            redact_url("host=x password=s3cret dbname=y"),
            "host=x password=*** dbname=y"
        );
    }
}
