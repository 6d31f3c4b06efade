//! Function volatility, as PostgreSQL's catalog has it (`pg_proc.provolatile`).
//! Since PostgreSQL 11, `ADD COLUMN ... DEFAULT expr` stores a non-volatile
//! expression's value once in the catalog and rewrites nothing; a volatile
//! one is evaluated for every row, in a rewrite. The built-in functions'
//! volatility ships as data (`data/pg_volatility.tsv`, generated from
//! PostgreSQL 15's `pg_proc` by `scripts/pg-volatility`), so lint needs no
//! database; functions the migrations create count with the volatility they
//! declare (VOLATILE when they declare none, as in PostgreSQL). A function
//! known to neither (an extension's, say `uuid_generate_v4`) counts as
//! volatile.

use std::collections::HashMap;
use std::sync::OnceLock;

use pg_query::NodeEnum;
use pg_query::protobuf::CreateFunctionStmt;

/// The built-in functions' volatility, one `name<TAB>i|s|v` a line.
const BUILTIN: &str = include_str!("data/pg_volatility.tsv");

/// How a function's result may change: `provolatile` i, s, v (ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Volatility {
    /// Same arguments, same result, forever.
    Immutable,
    /// Same result within one statement (`now()`).
    Stable,
    /// May change on every call (`random()`, `clock_timestamp()`).
    Volatile,
}

impl Volatility {
    fn from_code(code: &str) -> Option<Self> {
        match code {
            "i" => Some(Volatility::Immutable),
            "s" => Some(Volatility::Stable),
            "v" => Some(Volatility::Volatile),
            _ => None,
        }
    }

    /// What a `CREATE FUNCTION` declares (VOLATILE when it says nothing).
    pub fn declared(f: &CreateFunctionStmt) -> Self {
        f.options
            .iter()
            .find_map(|o| match o.node.as_ref()? {
                NodeEnum::DefElem(d) if d.defname == "volatility" => {
                    let word = d.arg.as_deref().and_then(super::ast::sval)?;
                    match word {
                        "immutable" => Some(Volatility::Immutable),
                        "stable" => Some(Volatility::Stable),
                        _ => Some(Volatility::Volatile),
                    }
                }
                _ => None,
            })
            .unwrap_or(Volatility::Volatile)
    }

    /// The most volatile built-in function called `name` (lowercase), if any.
    pub fn builtin(name: &str) -> Option<Self> {
        static TABLE: OnceLock<HashMap<&'static str, Volatility>> = OnceLock::new();
        TABLE
            .get_or_init(|| {
                BUILTIN
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| {
                        let (name, code) = l.split_once('\t')?;
                        Some((name, Volatility::from_code(code.trim())?))
                    })
                    .collect()
            })
            .get(name)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_table_knows_the_common_defaults() {
        assert_eq!(Volatility::builtin("now"), Some(Volatility::Stable));
        assert_eq!(Volatility::builtin("timezone"), Some(Volatility::Stable));
        assert_eq!(Volatility::builtin("lower"), Some(Volatility::Immutable));
        for volatile in ["random", "gen_random_uuid", "clock_timestamp", "nextval"] {
            assert_eq!(
                Volatility::builtin(volatile),
                Some(Volatility::Volatile),
                "{volatile}"
            );
        }
        assert_eq!(Volatility::builtin("uuid_generate_v4"), None);
        assert!(
            BUILTIN.lines().count() > 2000,
            "generated from a full pg_proc"
        );
    }
}
