//! `#[database::test]`: an async test that receives its own database.
//!
//! Used through the `database` crate (feature `testing`), which re-exports
//! it; the expansion calls `::database::testing::run`. See
//! `database::testing` for what the test's parameters receive.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, Type};

/// Runs an `async fn` test on a fresh database cloned from the migrated
/// template, dropped when the test passes and kept (its name and URL
/// printed) when it fails.
///
/// Each parameter is chosen by its type:
/// - `Db`: the service's role on the test's database (row-level security applies);
/// - `&TestDb`: the test's database itself (its owner's `Db`, name, URL);
/// - `SqliteDb`: a SQLite database copied from the migrated SQLite template;
/// - `Ctx`: the context of a new tenant (`fixtures::tenant()`) and its owner.
///
/// The test may return `()` or a `Result` whose error is `Debug`. Optional
/// arguments: `#[database::test(migrations = path::to::set())]` migrates the
/// template with a service's own `MigrationSet` (an expression of type
/// `&'static MigrationSet`) instead of the crate's embedded one.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(
    args: proc_macro2::TokenStream,
    item: TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut migrations = None;
    if !args.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("migrations") {
                migrations = Some(meta.value()?.parse::<syn::Expr>()?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown argument: the only one is `migrations = <&'static MigrationSet>`",
                ))
            }
        });
        syn::parse::Parser::parse2(parser, args)?;
    }
    let function: ItemFn = syn::parse(item)?;
    if function.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            function.sig.fn_token.span(),
            "#[database::test] goes on an `async fn`",
        ));
    }
    let name = &function.sig.ident;
    let attrs = &function.attrs;
    let inner = format_ident!("__database_test_{}", name);
    let mut inner_fn = function.clone();
    inner_fn.sig.ident = inner.clone();
    inner_fn.attrs.clear();

    let mut arguments = Vec::new();
    let (mut postgres, mut sqlite) = (false, false);
    for input in &function.sig.inputs {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new(input.span(), "a test takes no `self`"));
        };
        if !matches!(&*typed.pat, Pat::Ident(_) | Pat::Wild(_)) {
            return Err(syn::Error::new(
                typed.pat.span(),
                "name each parameter of a test",
            ));
        }
        let (reference, type_name) = match &*typed.ty {
            Type::Reference(r) if r.mutability.is_some() => {
                return Err(syn::Error::new(
                    typed.ty.span(),
                    "a test receives `&TestDb` (shared): its methods take `&self`",
                ));
            }
            Type::Reference(r) => (true, last_segment(&r.elem)),
            other => (false, last_segment(other)),
        };
        let argument = match (reference, type_name.as_deref()) {
            (false, Some("Db")) => {
                postgres = true;
                quote!(__test.service_db())
            }
            (true, Some("TestDb")) => {
                postgres = true;
                quote!(__test)
            }
            (false, Some("SqliteDb")) => {
                sqlite = true;
                quote!(__sqlite.db())
            }
            (false, Some("Ctx")) => {
                postgres = true;
                quote!(__test.tenant_ctx().await)
            }
            _ => {
                return Err(syn::Error::new(
                    typed.ty.span(),
                    "a #[database::test] parameter is one of `Db` (the service's role), \
                     `&TestDb` (the test's database), `SqliteDb` or `Ctx` (a new tenant's)",
                ));
            }
        };
        arguments.push(argument);
    }
    let options = match migrations {
        Some(set) => quote!(::database::testing::Options::migrations(#set)),
        None => quote!(::database::testing::Options::default()),
    };
    // A `#[should_panic]` test passes by panicking: its database is dropped
    // then, not kept.
    let options = if attrs.iter().any(|a| a.path().is_ident("should_panic")) {
        quote!(#options.expect_panic())
    } else {
        options
    };
    let test_name = quote!(::core::concat!(
        ::core::module_path!(),
        "::",
        ::core::stringify!(#name)
    ));
    let body = match (postgres, sqlite) {
        // PostgreSQL (and a SQLite file too when asked for both).
        (true, _) | (false, false) => {
            let sqlite_setup = if sqlite {
                quote!(let __sqlite = ::database::testing::SqliteTestDb::new().await;)
            } else {
                quote!()
            };
            // A failing test keeps its SQLite file too (a panic keeps it
            // while unwinding; an error returned, here).
            let keep_sqlite = if sqlite {
                quote! {
                    if ::database::testing::Outcome::is_failure(&__outcome) {
                        __sqlite.keep();
                    }
                }
            } else {
                quote!()
            };
            quote! {
                ::database::testing::run(
                    #test_name,
                    #options,
                    async |__test: &::database::testing::TestDb| {
                        #sqlite_setup
                        let __outcome = #inner(#(#arguments),*).await;
                        #keep_sqlite
                        __outcome
                    },
                )
            }
        }
        (false, true) => quote! {
            ::database::testing::run_sqlite(
                #test_name,
                #options,
                async |__sqlite: &::database::testing::SqliteTestDb| #inner(#(#arguments),*).await,
            )
        },
    };
    Ok(quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        fn #name() {
            #inner_fn
            #body
        }
    })
}

fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}
