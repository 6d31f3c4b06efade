//! Splits a SQL script into its statements: for the migration engine, which
//! runs and records them one by one, and for the spans of a batch
//! (`db.operation.batch.size`). It imports nothing of the crate.
//!
//! PostgreSQL runs a multi-statement string as one implicit transaction, so a
//! migration that must run outside a transaction (`CREATE INDEX
//! CONCURRENTLY`, `ALTER TYPE ... ADD VALUE` before PG 12, ...) has to be sent
//! one statement at a time. This splitter understands what can hide a `;`:
//! `--` and nested `/* */` comments, '...' and E'...' strings, "quoted"
//! identifiers, $tag$ dollar-quoted bodies, parentheses (`CREATE RULE ... DO
//! (a; b)`) and SQL-standard `BEGIN ATOMIC ... END` bodies of
//! `CREATE [OR REPLACE] FUNCTION | PROCEDURE`, the way psql does: inside a
//! function or procedure definition, `BEGIN` (and `CASE` within it) opens a
//! block that `END` closes, and a `;` inside one does not end the statement.

/// The statements of `sql`, trimmed, without empty or comment-only ones.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    let mut i = 0;
    // psql's rules: no split inside parentheses or a BEGIN ... END body.
    let mut paren_depth = 0usize;
    let mut begin_depth = 0usize;
    let mut head = StatementHead::default();

    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = find_from(bytes, i, b"\n").map_or(bytes.len(), |p| p + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(bytes, i);
                continue;
            }
            b'\'' => {
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !is_ident_byte(bytes[i - 2]));
                i = skip_quoted(bytes, i, b'\'', escapes);
                has_code = true;
                continue;
            }
            b'"' => {
                i = skip_quoted(bytes, i, b'"', false);
                has_code = true;
                continue;
            }
            b'$' if i == 0 || !is_ident_byte(bytes[i - 1]) => {
                if let Some(tag_len) = dollar_tag_len(&bytes[i..]) {
                    let tag = &bytes[i..i + tag_len];
                    i = find_from(bytes, i + tag_len, tag).map_or(bytes.len(), |p| p + tag_len);
                    has_code = true;
                    continue;
                }
            }
            b'(' => {
                paren_depth += 1;
                has_code = true;
            }
            b')' => {
                paren_depth = paren_depth.saturating_sub(1);
                has_code = true;
            }
            b';' if paren_depth == 0 && begin_depth == 0 => {
                if has_code {
                    statements.push(sql[start..i].trim());
                }
                start = i + 1;
                has_code = false;
                head = StatementHead::default();
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let word_start = i;
                while i < bytes.len() && (is_ident_byte(bytes[i]) || bytes[i] == b'$') {
                    i += 1;
                }
                let word = &sql[word_start..i];
                head.push(word);
                if head.defines_routine() && paren_depth == 0 {
                    // CASE also ends with END; it only matters inside a BEGIN.
                    let opens = word.eq_ignore_ascii_case("begin")
                        || (word.eq_ignore_ascii_case("case") && begin_depth > 0);
                    if opens {
                        begin_depth += 1;
                    } else if word.eq_ignore_ascii_case("end") {
                        begin_depth = begin_depth.saturating_sub(1);
                    }
                }
                has_code = true;
                continue;
            }
            c if !c.is_ascii_whitespace() => has_code = true,
            _ => {}
        }
        i += 1;
    }
    if has_code {
        statements.push(sql[start..].trim());
    }
    statements
}

/// The first words of a statement, enough to tell a `CREATE [OR REPLACE]
/// FUNCTION | PROCEDURE` (whose `BEGIN ATOMIC` body may hold `;`).
#[derive(Default)]
struct StatementHead {
    /// First letters of the leading create/or/replace/function/procedure words.
    words: [u8; 4],
    count: usize,
}

impl StatementHead {
    fn push(&mut self, word: &str) {
        if self.count < self.words.len() {
            let known = ["create", "or", "replace", "function", "procedure"]
                .iter()
                .any(|k| word.eq_ignore_ascii_case(k));
            if known {
                self.words[self.count] = word.as_bytes()[0].to_ascii_lowercase();
            }
        }
        self.count += 1;
    }

    fn defines_routine(&self) -> bool {
        let w = &self.words;
        w[0] == b'c'
            && (matches!(w[1], b'f' | b'p')
                || (w[1] == b'o' && w[2] == b'r' && matches!(w[3], b'f' | b'p')))
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn find_from(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Index just past the comment that opens at `i` (comments nest in PostgreSQL).
fn skip_block_comment(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Index just past the quoted run opening at `i`. A doubled quote is an
/// escaped quote, which falls out naturally: it closes and reopens.
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8, backslash_escapes: bool) -> usize {
    i += 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash_escapes => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Length of a dollar-quote tag (`$$` or `$name$`) at the start of `s`.
fn dollar_tag_len(s: &[u8]) -> Option<usize> {
    let mut j = 1;
    while j < s.len() {
        match s[j] {
            b'$' => return Some(j + 1),
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {}
            b if b.is_ascii_digit() && j > 1 => {}
            _ => return None,
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_plain_statements() {
        assert_eq!(
            split_statements("CREATE TABLE a (x int);\nDROP TABLE b ;  "),
            vec!["CREATE TABLE a (x int)", "DROP TABLE b"]
        );
    }

    #[test]
    fn keeps_semicolons_inside_strings_identifiers_and_comments() {
        let sql = "INSERT INTO t VALUES ('a;b', 'it''s;'); -- c;d\n\
                   SELECT \"odd;name\" FROM t /* x; /* nested; */ y; */ WHERE E'\\';' <> '';";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts[0].starts_with("INSERT"));
        assert!(parts[1].starts_with("-- c;d\nSELECT"));
        assert!(parts[1].ends_with("<> ''"));
    }

    #[test]
    fn keeps_dollar_quoted_bodies_whole() {
        let sql = "CREATE FUNCTION f() RETURNS trigger AS $body$ BEGIN x := 1; RETURN NEW; END; $body$ LANGUAGE plpgsql;\n\
                   DO $$ BEGIN PERFORM 1; END $$;\n\
                   SELECT $1, a$b FROM t";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert!(parts[0].ends_with("LANGUAGE plpgsql"));
        assert_eq!(parts[1], "DO $$ BEGIN PERFORM 1; END $$");
        assert_eq!(parts[2], "SELECT $1, a$b FROM t");
    }

    #[test]
    fn keeps_a_create_rule_with_several_actions_whole() {
        let sql = "CREATE RULE log_update AS ON UPDATE TO t DO ALSO (\n\
                       INSERT INTO log VALUES (old.id, 'u');\n\
                       UPDATE stats SET n = n + 1;\n\
                   );\n\
                   SELECT 1;";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(
            parts[0].starts_with("CREATE RULE") && parts[0].ends_with(")"),
            "{parts:?}"
        );
        assert_eq!(parts[1], "SELECT 1");
    }

    #[test]
    fn keeps_begin_atomic_bodies_whole() {
        let sql = "CREATE OR REPLACE FUNCTION grade(n int) RETURNS text LANGUAGE sql\n\
                   BEGIN ATOMIC\n\
                       SELECT CASE WHEN n > 5 THEN 'high' ELSE 'low' END;\n\
                       SELECT 'x';\n\
                   END;\n\
                   CREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); END;\n\
                   SELECT \"end\" FROM t;";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert!(parts[0].starts_with("CREATE OR REPLACE FUNCTION") && parts[0].ends_with("END"));
        assert!(parts[1].starts_with("CREATE PROCEDURE") && parts[1].ends_with("END"));
        assert_eq!(parts[2], "SELECT \"end\" FROM t");
    }

    #[test]
    fn transaction_blocks_and_case_outside_functions_still_split() {
        let sql = "BEGIN;\nSELECT CASE WHEN true THEN 1 END;\nCOMMIT;\nDO $$ BEGIN NULL; END $$;";
        assert_eq!(
            split_statements(sql),
            vec![
                "BEGIN",
                "SELECT CASE WHEN true THEN 1 END",
                "COMMIT",
                "DO $$ BEGIN NULL; END $$"
            ]
        );
    }

    #[test]
    fn drops_empty_and_comment_only_statements() {
        assert_eq!(
            split_statements("-- header\n;;\n/* only a comment */;\nSELECT 1;\n-- trailer\n"),
            vec!["SELECT 1"]
        );
        assert!(split_statements("  \n-- nothing\n").is_empty());
    }
}
