//! The `#[evloop::main]` and `#[evloop::test]` attributes, re-exported by the `evloop` crate.
//!
//! A proc-macro crate of its own because Rust requires one; everything the expansions call lives
//! in `evloop::__private`, so this crate knows nothing of the loop. Both attributes turn the
//! `async fn` into an inner `async fn` with the same signature (so `?` and the return type work
//! exactly as written) and a plain `fn` around it that does the process pool's worker entry
//! check first and then runs the inner one under `evloop::run`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::{ItemFn, ReturnType};

/// Runs an `async fn main` under `evloop::run`, with the worker entry check first.
///
/// The function's output may be anything `main` may return (`()`, `Result<(), E: Debug>`,
/// `ExitCode`, ...): an `Err` is printed as `Error: {err:?}` and the process exits with 1. A run
/// that ends without a value exits with 1 after printing why (the main task panicked or was
/// cancelled), or with 130 on Ctrl-C (asyncio's `KeyboardInterrupt`).
///
/// ```
/// #[evloop::main]
/// async fn main() -> Result<(), std::num::ParseIntError> {
///     let n: u32 = "42".parse()?;
///     evloop::sleep(std::time::Duration::from_millis(1)).await;
///     assert_eq!(n, 42);
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test under `evloop::run`, on a loop of its own.
///
/// The test fails if the body panics, is cancelled or returns `Err` (any return type libtest
/// accepts works). The function does the process pool's worker entry check first and registers
/// itself as the test that workers start as, so process pools work in the test binary without
/// `evloop::process_pool::test_worker!()`. `#[should_panic]` and `#[ignore]` go on as usual.
///
/// ```
/// #[evloop::test]
/// async fn sleeps() {
///     evloop::sleep(std::time::Duration::from_millis(1)).await;
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Test, args.into(), item.into()).into()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attribute(self) -> &'static str {
        match self {
            Kind::Main => "#[evloop::main]",
            Kind::Test => "#[evloop::test]",
        }
    }
}

fn expand(kind: Kind, args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        // Give the item back untouched so the compiler's own errors about it still show.
        Err(error) => {
            let error = error.to_compile_error();
            return quote! { #error #item };
        }
    };
    match check(kind, &args, &function) {
        Ok(()) => match kind {
            Kind::Main => expand_main(function),
            Kind::Test => expand_test(function),
        },
        Err(error) => {
            let error = error.to_compile_error();
            quote! { #error #item }
        }
    }
}

/// What both attributes refuse, each with a message saying what to write instead.
fn check(kind: Kind, args: &TokenStream2, function: &ItemFn) -> syn::Result<()> {
    let name = kind.attribute();
    if !args.is_empty() {
        return Err(syn::Error::new_spanned(
            args,
            format!("{name} takes no arguments"),
        ));
    }
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            format!("{name} needs an `async fn`: the `async` keyword is missing"),
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            format!("{name} functions take no arguments"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            format!("{name} functions cannot be generic"),
        ));
    }
    let second_test = function.attrs.iter().find(|a| a.path().is_ident("test"));
    if let (Kind::Test, Some(attr)) = (kind, second_test) {
        return Err(syn::Error::new_spanned(
            attr,
            "#[evloop::test] already makes this a test: remove the #[test]",
        ));
    }
    Ok(())
}

/// The inner `async fn`: the user's function renamed, private, attributes dropped (they belong to
/// the outer function).
fn inner(function: &ItemFn, name: &syn::Ident) -> TokenStream2 {
    let sig = &function.sig;
    let output = &sig.output;
    let block = &function.block;
    quote! { async fn #name() #output #block }
}

fn output_type(function: &ItemFn) -> TokenStream2 {
    match &function.sig.output {
        ReturnType::Default => quote! { () },
        ReturnType::Type(_, ty) => quote! { #ty },
    }
}

fn expand_main(function: ItemFn) -> TokenStream2 {
    let inner_name = format_ident!("__evloop_main");
    let inner = inner(&function, &inner_name);
    let ItemFn {
        attrs, vis, sig, ..
    } = &function;
    let name = &sig.ident;
    let span = sig.ident.span();
    let run = quote_spanned! {span=> ::evloop::__private::run_main(#inner_name()) };
    quote! {
        #(#attrs)*
        #vis fn #name() -> ::std::process::ExitCode {
            ::evloop::__private::worker_entry_check();
            #inner
            #run
        }
    }
}

fn expand_test(function: ItemFn) -> TokenStream2 {
    let inner_name = format_ident!("__evloop_test");
    let inner = inner(&function, &inner_name);
    let output = output_type(&function);
    let ItemFn {
        attrs, vis, sig, ..
    } = &function;
    let name = &sig.ident;
    let ignored = attrs.iter().any(|a| a.path().is_ident("ignore"));
    // An ignored test is not run by `<binary> <name> --exact`, so it cannot be the worker entry.
    let register = if ignored {
        TokenStream2::new()
    } else {
        register_worker_entry(name)
    };
    quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() -> #output {
            ::evloop::__private::worker_entry_check();
            #inner
            ::evloop::__private::run_test(#inner_name())
        }
        #register
    }
}

/// Registers the test as the one process-pool workers start as (`<binary> <test> --exact`), from
/// a life-before-main constructor (ELF's `.init_array`), as `test_worker!()` does. Each
/// `#[evloop::test]` registers itself; whichever wins, it starts with the entry check.
fn register_worker_entry(name: &syn::Ident) -> TokenStream2 {
    let register = format_ident!("__evloop_register_{}", name, span = Span::call_site());
    let test_name = name.to_string();
    quote! {
        #[cfg(test)]
        const _: () = {
            extern "C" fn #register() {
                ::evloop::__private::register_test_worker(::core::module_path!(), #test_name);
            }
            #[used]
            #[unsafe(link_section = ".init_array")]
            static REGISTER: extern "C" fn() = #register;
        };
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, TokenStream2, expand, quote};

    fn expanded(kind: Kind, args: TokenStream2, item: TokenStream2) -> String {
        expand(kind, args, item).to_string()
    }

    #[test]
    fn refuses_what_it_cannot_run_with_a_message_that_says_why() {
        let cases = [
            (
                Kind::Main,
                quote!(),
                quote!(
                    fn main() {}
                ),
                "#[evloop::main] needs an `async fn`: the `async` keyword is missing",
            ),
            (
                Kind::Main,
                quote!(debug),
                quote!(
                    async fn main() {}
                ),
                "#[evloop::main] takes no arguments",
            ),
            (
                Kind::Test,
                quote!(),
                quote!(
                    async fn t(x: u32) {}
                ),
                "#[evloop::test] functions take no arguments",
            ),
            (
                Kind::Test,
                quote!(),
                quote!(
                    async fn t<T>() {}
                ),
                "#[evloop::test] functions cannot be generic",
            ),
            (
                Kind::Test,
                quote!(),
                quote!(
                    #[test]
                    async fn t() {}
                ),
                "#[evloop::test] already makes this a test: remove the #[test]",
            ),
        ];
        for (kind, args, item, message) in cases {
            let out = expanded(kind, args, item);
            assert!(out.contains("compile_error"), "{out}");
            assert!(out.contains(message), "{out}");
        }
    }

    #[test]
    fn main_checks_the_worker_entry_before_running_the_body() {
        let out = expanded(
            Kind::Main,
            quote!(),
            quote!(
                async fn main() -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        let check = out.find("worker_entry_check").unwrap();
        let run = out.find("run_main").unwrap();
        assert!(check < run, "{out}");
        assert!(
            out.contains("fn main () -> :: std :: process :: ExitCode"),
            "{out}"
        );
        assert!(
            out.contains("async fn __evloop_main () -> Result < () , E >"),
            "{out}"
        );
    }

    #[test]
    fn an_ignored_test_is_not_registered_as_the_worker_entry() {
        let plain = expanded(
            Kind::Test,
            quote!(),
            quote!(
                async fn t() {}
            ),
        );
        assert!(plain.contains("register_test_worker"), "{plain}");
        let ignored = expanded(
            Kind::Test,
            quote!(),
            quote!(
                #[ignore]
                async fn t() {}
            ),
        );
        assert!(!ignored.contains("register_test_worker"), "{ignored}");
    }
}
