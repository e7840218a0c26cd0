//! Code generation. The function keeps its signature, attributes and visibility; its body
//! becomes a call to `lock_runtime::with_lock` with the original body as the guarded
//! future, and the lock error, if any, is turned into the function's return value.
//!
//! Every path is absolute and every local the expansion introduces has a mixed-site span,
//! so nothing in the caller's scope can change what the expansion means.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens as _};
use syn::{spanned::Spanned as _, Expr, ReturnType, Stmt, Type};

use crate::{
    args::{Args, Flavor},
    fallback,
    item::{self, ItemFn},
    template::{Field, Placeholder, Template},
    validate::{self, OnFail, Plan, Shape},
};

/// The whole macro on `proc_macro2` tokens, so it can be unit-tested.
pub(crate) fn distributed_lock(args: TokenStream, item: TokenStream) -> TokenStream {
    attribute(Flavor::Lock, args, item)
}

/// `#[distributed_semaphore]`: the same expansion, taking a permit.
pub(crate) fn distributed_semaphore(args: TokenStream, item: TokenStream) -> TokenStream {
    attribute(Flavor::Semaphore, args, item)
}

/// `#[leader]`: the body runs whenever this process leads the election.
pub(crate) fn leader(args: TokenStream, item: TokenStream) -> TokenStream {
    attribute(Flavor::Leader, args, item)
}

fn attribute(flavor: Flavor, args: TokenStream, item: TokenStream) -> TokenStream {
    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(_) => {
            let error = item::not_a_function(&item, flavor.attribute());
            return fallback::with_error(item, &error);
        }
    };
    let parser = Args::parse_for(flavor);
    let plan =
        syn::parse::Parser::parse2(parser, args).and_then(|args| validate::plan(args, &item_fn));
    match plan {
        Ok(plan) => expand(plan, item_fn),
        Err(error) => fallback::with_error(item, &error),
    }
}

fn expand(plan: Plan, item: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        brace,
        body,
    } = item;
    let guarded_body = match &plan.shape {
        Shape::AsyncFn => {
            let guarded = guarded_call(&plan, &sig, brace.span.open(), quote! { #body });
            let mut tokens = TokenStream::new();
            brace.surround(&mut tokens, |inner| guarded.to_tokens(inner));
            tokens
        }
        Shape::Wrapped(block) => wrapped(&plan, &sig, block.clone()),
        Shape::AsyncTrait(call, output) => {
            let mut call = call.clone();
            if let Some(future) = call.args.first_mut() {
                let guarded = guard_future(&plan, &sig, output, future.to_token_stream());
                *future = syn::parse_quote! { async move { #guarded } };
            }
            let mut tokens = TokenStream::new();
            brace.surround(&mut tokens, |inner| call.to_tokens(inner));
            tokens
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig #guarded_body
    }
}

/// `with_lock(key, options, async move { body })`, mapped to the function's return value.
/// The `async move` block is spanned at `body_span` (where the body starts), so a
/// borrow-check error about what it captures points at the body, not the attribute.
fn guarded_call(
    plan: &Plan,
    sig: &syn::Signature,
    body_span: Span,
    body: TokenStream,
) -> TokenStream {
    let fake_return = fake_return_edge(&sig.output);
    let async_move = quote_spanned! {body_span=> async move };
    let future = quote! {
        #async_move {
            #fake_return
            #body
        }
    };
    guard_future(plan, sig, &sig.output, future)
}

/// `with_lock(key, options, future)`, mapped to the value of type `declared` the function's
/// body produces.
fn guard_future(
    plan: &Plan,
    sig: &syn::Signature,
    declared: &ReturnType,
    future: TokenStream,
) -> TokenStream {
    let rt = &plan.krate;
    let key = Ident::mixed("__lock_key");
    let key_value = key_expr(plan);
    let options = options_expr(plan, &sig.ident);
    let output = Ident::mixed("__lock_output");
    let error = Ident::mixed("__lock_error");
    let body_type = Ident::mixed("__lock_body_type");
    let future = match plan.leader {
        true => leader_work(sig, future),
        false => future,
    };
    let guarded = quote! { (&#key, &#options, #future).await };
    let (key_type, with_lock) = match plan.several {
        false if plan.leader => (quote! { ::std::string::String }, quote! { lead }),
        false => (quote! { ::std::string::String }, quote! { with_lock }),
        true => {
            let count = plan.keys.len();
            let ty = quote! { [::std::string::String; #count] };
            (ty, quote! { with_locks })
        }
    };
    let fallback = match &plan.on_fail {
        OnFail::Propagate => {
            let on_error = propagate(rt, sig, declared, &error);
            return quote! {{
                let #key: #key_type = #key_value;
                match #rt::#with_lock #guarded {
                    ::core::result::Result::Ok(#output) => #output,
                    ::core::result::Result::Err(#error) => #on_error,
                }
            }};
        }
        OnFail::Skip(skip) => skip_value(rt, declared, skip.span()),
        // Under `-> impl Trait`, a fallback of another type than the body's would get
        // rustc's advice to box the attribute; checked against the body's type instead,
        // the error names what to do.
        OnFail::Return(value) if nameable(declared).is_none() => {
            quote_spanned! {value.span()=>
                #rt::__private::or_return_must_have_the_body_type(#body_type, #value)
            }
        }
        OnFail::Return(value) => value.to_token_stream(),
    };
    let (declare, noted) = match &plan.on_fail {
        OnFail::Return(_) if nameable(declared).is_none() => (
            quote! { let mut #body_type = ::core::marker::PhantomData; },
            quote! { #rt::__private::note_body_type(&mut #body_type, &#output); },
        ),
        _ => (TokenStream::new(), TokenStream::new()),
    };
    let name = sig.ident.to_string();
    let client = match &plan.client {
        Some(client) => quote! { ::core::option::Option::Some(#client) },
        None => quote! { ::core::option::Option::None },
    };
    let context = quote! { #name, &#key, #client };
    let lost = lost_after_body(rt, declared, &context, &error, &fallback);
    quote! {{
        let #key: #key_type = #key_value;
        #declare
        match #rt::__private::#with_lock #guarded {
            ::core::result::Result::Ok(#output) => {
                #noted
                #output
            }
            ::core::result::Result::Err(#rt::__private::Failure::Before(#error)) => {
                #rt::__private::skipped(#context, &#error);
                #fallback
            }
            ::core::result::Result::Err(#rt::__private::Failure::After(#error)) => {
                #lost
            }
        }
    }}
}

/// `#[leader]`'s work: a closure that makes the body's future afresh each time this
/// process is elected, from clones of the parameters (a reference is copied).
fn leader_work(sig: &syn::Signature, future: TokenStream) -> TokenStream {
    let mut names = Vec::new();
    for input in &sig.inputs {
        if let syn::FnArg::Typed(typed) = input {
            bound_idents(&typed.pat, &mut names);
        }
    }
    let clones = names.iter().map(|(name, mutable)| {
        let mutable = mutable.then(|| quote! { mut });
        quote! {
            #[allow(unused_variables, unused_mut)]
            let #mutable #name = ::core::clone::Clone::clone(&#name);
        }
    });
    // A `mut` parameter is mutated through its clones only: borrowed mutably here so
    // that the signature's `mut` is not reported unused.
    let mutated = names
        .iter()
        .filter(|(_, mutable)| *mutable)
        .map(|(name, _)| quote! { let _ = &mut #name; });
    quote! {{
        #(#mutated)*
        move || {
            #(#clones)*
            #future
        }
    }}
}

/// The names a parameter pattern binds, and whether each is `mut`.
fn bound_idents(pat: &syn::Pat, names: &mut Vec<(syn::Ident, bool)>) {
    use syn::Pat;
    match pat {
        Pat::Ident(ident) => {
            names.push((ident.ident.clone(), ident.mutability.is_some()));
            if let Some((_, sub)) = &ident.subpat {
                bound_idents(sub, names);
            }
        }
        Pat::Tuple(tuple) => tuple.elems.iter().for_each(|p| bound_idents(p, names)),
        Pat::TupleStruct(tuple) => tuple.elems.iter().for_each(|p| bound_idents(p, names)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| bound_idents(&f.pat, names)),
        Pat::Slice(slice) => slice.elems.iter().for_each(|p| bound_idents(p, names)),
        Pat::Reference(reference) => bound_idents(&reference.pat, names),
        Pat::Paren(paren) => bound_idents(&paren.pat, names),
        Pat::Type(typed) => bound_idents(&typed.pat, names),
        _ => {}
    }
}

/// With a fallback, after the body ran and the lease turned out lost: the error itself
/// when the return type can carry it (decided by its trait bounds, not its name), else the
/// fallback with an error-level event.
fn lost_after_body(
    rt: &syn::Path,
    declared: &ReturnType,
    context: &TokenStream,
    error: &syn::Ident,
    fallback: &TokenStream,
) -> TokenStream {
    let fall_back = quote! {{
        #rt::__private::lost_after_body(#context, &#error);
        #fallback
    }};
    // An `impl Trait` cannot be named, so cannot be asked.
    let Some(ty) = nameable(declared) else {
        return fall_back;
    };
    let carried = Ident::mixed("__lock_carried");
    quote! {{
        #[allow(unused_imports)]
        use #rt::__private::{CanCarry as _, CannotCarry as _};
        match (&#rt::__private::Probe::<#ty>::new()).carry(#error) {
            ::core::result::Result::Ok(#carried) => #carried,
            ::core::result::Result::Err(#error) => #fall_back,
        }
    }}
}

/// A function that `#[tokio::test]` made synchronous: guard its leading async block.
fn wrapped(plan: &Plan, sig: &syn::Signature, mut block: syn::Block) -> TokenStream {
    if let Some(Stmt::Local(local)) = block.stmts.first_mut() {
        if let Some(init) = &mut local.init {
            if let Expr::Async(async_block) = &mut *init.expr {
                let inner = &async_block.block;
                let stmts = &inner.stmts;
                let guarded = guarded_call(plan, sig, inner.span(), quote! { #(#stmts)* });
                let span = inner.span();
                *init.expr = syn::parse_quote_spanned! {span=> async { #guarded } };
            }
        }
    }
    block.into_token_stream()
}

/// The key's value, or for `keys = [...]` an array of them.
fn key_expr(plan: &Plan) -> TokenStream {
    let each = plan
        .keys
        .iter()
        .map(|(lit, template)| one_key_expr(&plan.krate, lit, template));
    match plan.several {
        false => quote! { #(#each)* },
        true => quote! { [#(#each),*] },
    }
}

/// `::std::format!("order:{}", order_id)`, each placeholder passed through a probe that
/// reports a type without `Display` in words of its own; all spanned at the key literal.
fn one_key_expr(rt: &syn::Path, lit: &syn::LitStr, template: &Template) -> TokenStream {
    let span = lit.span();
    let format = syn::LitStr::new(&template.format_string(), span);
    if template.placeholders().next().is_none() {
        // No placeholders: the text itself, `{{` and `}}` being braces.
        let text = format.value().replace("{{", "{").replace("}}", "}");
        let text = syn::LitStr::new(&text, span);
        return quote_spanned! {span=> ::std::string::String::from(#text) };
    }
    let values = template.placeholders().map(|p| {
        let value = placeholder_expr(p, span);
        quote_spanned! {span=> (&#rt::__private::Probe::of(&(#value))).key_part(&(#value)) }
    });
    quote_spanned! {span=> {
        #[allow(unused_imports)]
        use #rt::__private::{Key as _, KeyUnsupported as _};
        ::std::format!(#format, #(#values),*)
    }}
}

fn placeholder_expr(placeholder: &Placeholder, span: Span) -> TokenStream {
    let root = if placeholder.root == "self" {
        quote_spanned! {span=> self }
    } else {
        syn::Ident::new(&placeholder.root, span).into_token_stream()
    };
    let fields = placeholder.fields.iter().map(|field| match field {
        Field::Named(name) => syn::Ident::new(name, span).into_token_stream(),
        Field::Index(index) => syn::Index {
            index: *index,
            span,
        }
        .into_token_stream(),
    });
    quote! { #root #(. #fields)* }
}

fn options_expr(plan: &Plan, function: &syn::Ident) -> TokenStream {
    let rt = &plan.krate;
    let template = &plan.key;
    let function = function.to_string();
    let (ttl, wait) = (plan.ttl_ms, plan.wait_ms);
    let client = plan
        .client
        .as_ref()
        .map(|client| quote! { .client(#client) });
    let renew = plan.renew.map(|max_hold| {
        let max_hold =
            max_hold.map(|ms| quote! { .max_hold(::core::time::Duration::from_millis(#ms)) });
        quote! { .renew(true) #max_hold }
    });
    let fencing = plan.fencing.then(|| quote! { .fencing(true) });
    let on_lost = plan
        .finish_on_lost
        .then(|| quote! { .on_lost(#rt::OnLost::Finish) });
    let mode = plan.read.then(|| quote! { .mode(#rt::LockMode::Read) });
    let permits = plan.permits.map(|permits| quote! { .permits(#permits) });
    let delay = plan.lock_delay_ms;
    let lock_delay =
        (delay > 0).then(|| quote! { .lock_delay(::core::time::Duration::from_millis(#delay)) });
    if plan.leader {
        return quote! {
            #rt::LeaderOptions::new(::core::time::Duration::from_millis(#ttl))
                #client #on_lost #lock_delay
                .name_template(#template)
                .function(::core::concat!(::core::module_path!(), "::", #function))
        };
    }
    quote! {
        #rt::LockOptions::new(::core::time::Duration::from_millis(#ttl))
            .wait(::core::time::Duration::from_millis(#wait))
            #client #renew #fencing #on_lost #mode #permits #lock_delay
            .name_template(#template)
            .function(::core::concat!(::core::module_path!(), "::", #function))
    }
}

/// An unreachable `return` of the declared type, so `?` and `return` in the body infer
/// the async block's output from the signature, as in the original function.
fn fake_return_edge(output: &ReturnType) -> TokenStream {
    let ty = match output {
        ReturnType::Default => quote! { () },
        ReturnType::Type(_, ty) if contains_impl_trait(ty) => return TokenStream::new(),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    let fake = Ident::mixed("__lock_fake_return");
    quote! {
        #[allow(
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::needless_return
        )]
        if false {
            let #fake: #ty = loop {};
            return #fake;
        }
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    fn any_impl(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => ident == "impl",
            proc_macro2::TokenTree::Group(group) => any_impl(group.stream()),
            _ => false,
        })
    }
    any_impl(ty.to_token_stream())
}

/// The function's value for a lock error, through its return type's `FromLockError`; a
/// return type that cannot carry it is a compile error at the return type.
fn propagate(
    rt: &syn::Path,
    sig: &syn::Signature,
    declared: &ReturnType,
    error: &syn::Ident,
) -> TokenStream {
    let span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.ident.span(),
    };
    let rt = respan(rt, span);
    match nameable(declared) {
        Some(ty) => quote_spanned! {span=> {
            #[allow(unused_imports)]
            use #rt::__private::{Propagate as _, PropagateUnsupported as _};
            (&#rt::__private::Probe::<#ty>::new()).propagate(#error)
        }},
        None => quote_spanned! {span=> #rt::__private::from_lock_error(#error) },
    }
}

/// `skip`'s `Default::default()`; a return type without a default is a compile error at
/// `skip`.
fn skip_value(rt: &syn::Path, declared: &ReturnType, span: Span) -> TokenStream {
    let rt = respan(rt, span);
    match nameable(declared) {
        Some(ty) => quote_spanned! {span=> {
            #[allow(unused_imports)]
            use #rt::__private::{Skip as _, SkipUnsupported as _};
            (&#rt::__private::Probe::<#ty>::new()).skip_value()
        }},
        None => quote_spanned! {span=> ::core::default::Default::default() },
    }
}

/// The type a body produces, if it can be named (`impl Trait` cannot).
fn nameable(declared: &ReturnType) -> Option<TokenStream> {
    match declared {
        ReturnType::Default => Some(quote! { () }),
        ReturnType::Type(_, ty) if contains_impl_trait(ty) => None,
        ReturnType::Type(_, ty) => Some(ty.to_token_stream()),
    }
}

/// `path` with every token at `span`, so errors about it are reported there.
fn respan(path: &syn::Path, span: Span) -> TokenStream {
    path.to_token_stream()
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}

/// Identifiers only the expansion can see.
struct Ident;

impl Ident {
    fn mixed(name: &str) -> syn::Ident {
        format_ident!("{}", name, span = Span::mixed_site())
    }
}

#[cfg(test)]
mod tests {
    //! Snapshots of the expansion for representative inputs, so that every change to the
    //! generated code shows in review. `UPDATE_SNAPSHOTS=1 cargo test -p lock-macro` rewrites
    //! them.

    use proc_macro2::TokenStream;
    use quote::quote;

    fn check(name: &str, args: TokenStream, item: TokenStream) {
        check_flavor(name, super::Flavor::Lock, args, item);
    }

    fn check_flavor(name: &str, flavor: super::Flavor, args: TokenStream, item: TokenStream) {
        let expanded = super::attribute(flavor, args, item);
        // Wrap in an impl block so that methods parse as a file too.
        let file: syn::File = syn::parse2(quote! { impl Snapshot { #expanded } })
            .unwrap_or_else(|e| panic!("the expansion of {name} does not parse: {e}\n{expanded}"));
        let pretty = prettyplease::unparse(&file);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("snapshots")
            .join(format!("{name}.rs"));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("create snapshots/");
            std::fs::write(&path, &pretty).expect("write snapshot");
            return;
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            stored == pretty,
            "the expansion of {name} changed; review it and run with UPDATE_SNAPSHOTS=1 to \
             accept.\n--- stored ({})\n{stored}\n--- now\n{pretty}",
            path.display()
        );
    }

    #[test]
    fn free_function_returning_result() {
        check(
            "free_function_returning_result",
            quote! { key = "order:{order_id}:{customer.id}", ttl = "10s", wait = "1m30s" },
            quote! {
                /// Charges an order once.
                pub async fn charge(order_id: u64, customer: &Customer) -> Result<Receipt, AppError> {
                    let receipt = payments::charge(order_id).await?;
                    Ok(receipt)
                }
            },
        );
    }

    #[test]
    fn method_that_skips_when_busy() {
        check(
            "method_that_skips_when_busy",
            quote! { key = "{self.tenant}:report", ttl = "500ms", client = "reports", skip },
            quote! {
                async fn nightly(&self) {
                    self.build().await;
                }
            },
        );
    }

    #[test]
    fn several_keys() {
        check(
            "several_keys",
            quote! { keys = ["account:{from}", "account:{to}"], ttl = "10s", wait = "2s", fencing },
            quote! {
                async fn transfer(from: u32, to: u32) -> Result<(), AppError> {
                    Ok(())
                }
            },
        );
    }

    #[test]
    fn reader_and_semaphore() {
        check(
            "reader",
            quote! { key = "report:{day}", ttl = "30s", mode = "read", skip },
            quote! {
                async fn report(day: u32) -> Vec<u8> {
                    Vec::new()
                }
            },
        );
        check_flavor(
            "leader",
            super::Flavor::Leader,
            quote! { name = "scheduler:{region}", ttl = "15s", lock_delay = "2s" },
            quote! {
                async fn schedule(&self, region: String, mut rounds: u32) -> Result<u64, AppError> {
                    Ok(1)
                }
            },
        );
        check_flavor(
            "semaphore",
            super::Flavor::Semaphore,
            quote! { key = "exports", permits = 5, ttl = "30s", wait = "10s" },
            quote! {
                async fn export() -> Result<u32, AppError> {
                    Ok(1)
                }
            },
        );
    }

    #[test]
    fn errors_keep_the_original_function() {
        let item = quote! { async fn job(id: u32) -> Result<(), E> { Ok(()) } };
        let out = super::distributed_lock(quote! { key = "job:{nope}", ttl = "1s" }, item.clone());
        let text = out.to_string();
        assert!(text.starts_with(&item.to_string()), "{text}");
        assert!(text.contains("compile_error"), "{text}");
        assert!(text.contains("names no parameter of `job`; parameters a key can use: id"));
    }
}
