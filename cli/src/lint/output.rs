//! How findings are printed: `text` (one finding a line, for people),
//! `json` (for tools; the format is documented in the README) and `github`
//! (workflow commands that become annotations on the pull request).

use super::{Finding, Severity};

/// An output format of `db lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `PATH:LINE: [RULE] message. advice`
    Text,
    /// One JSON document.
    Json,
    /// `::error file=PATH,line=LINE,title=RULE::message`
    Github,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "github" => Ok(Format::Github),
            other => Err(format!("unknown format `{other}` (text, json or github)")),
        }
    }
}

/// One line per finding: `PATH:LINE: [RULE] message. advice`; a warning's
/// message begins with `warning:`.
pub fn text_line(f: &Finding) -> String {
    let level = match f.severity() {
        Severity::Warning => "warning: ",
        Severity::Error => "",
    };
    format!(
        "{}:{}: [{}] {level}{}. {}",
        f.file, f.line, f.rule, f.message, f.advice
    )
}

/// The whole report as text, with a summary line.
pub fn text(findings: &[Finding], allowed: usize) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&text_line(f));
        out.push('\n');
    }
    let (errors, warnings) = counts(findings);
    let allowed_note = if allowed > 0 {
        format!(" ({allowed} allowed by the allow-list)")
    } else {
        String::new()
    };
    if findings.is_empty() {
        out.push_str(&format!("No findings{allowed_note}.\n"));
    } else {
        out.push_str(&format!(
            "{errors} error(s), {warnings} warning(s){allowed_note}.\n"
        ));
    }
    out
}

/// The report as one JSON document (see the README's lint section).
pub fn json(findings: &[Finding], allowed: usize) -> String {
    let (errors, warnings) = counts(findings);
    let items: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "file": f.file,
                "line": f.line,
                "rule": f.rule.name(),
                "severity": f.severity().name(),
                "message": f.message,
                "advice": f.advice,
                "migration": f.version,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "findings": items,
        "summary": { "errors": errors, "warnings": warnings, "allowed": allowed },
    });
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes") + "\n"
}

/// GitHub Actions workflow commands: one annotation per finding.
pub fn github(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "::{} file={},line={},title={}::{}\n",
            f.severity().name(),
            escape_property(&f.file),
            f.line,
            escape_property(f.rule.name()),
            escape_data(&format!("{}. {}", f.message, f.advice)),
        ));
    }
    out
}

/// (errors, warnings).
pub fn counts(findings: &[Finding]) -> (usize, usize) {
    let errors = findings
        .iter()
        .filter(|f| f.severity() == Severity::Error)
        .count();
    (errors, findings.len() - errors)
}

/// A GitHub workflow command's message, escaped.
pub(crate) fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A GitHub workflow command's property (`file=`, `title=`), escaped.
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}
