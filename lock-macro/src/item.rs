//! The annotated function, read tolerantly: attributes, visibility and signature are
//! parsed, the body is kept as tokens, so a body with errors in it still expands and the
//! compiler reports those errors where the user wrote them.

use proc_macro2::TokenStream;
use quote::ToTokens as _;
use syn::{
    braced,
    parse::{Parse, ParseStream},
    token, Attribute, Block, Expr, ExprCall, GenericArgument, Pat, PathArguments, ReturnType,
    Signature, Stmt, Type, TypeParamBound, Visibility,
};

pub(crate) struct ItemFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) brace: token::Brace,
    pub(crate) body: TokenStream,
}

impl Parse for ItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let body = content.parse()?;
        Ok(Self {
            attrs,
            vis,
            sig,
            brace,
            body,
        })
    }
}

/// The error for an item that is not a function with a body, pointing at its keyword.
pub(crate) fn not_a_function(item: &TokenStream, attribute: &str) -> syn::Error {
    let message = &format!("`{attribute}` goes on an `async fn` with a body");
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => syn::Error::new_spanned(s.struct_token, message),
        Ok(syn::Item::Enum(e)) => syn::Error::new_spanned(e.enum_token, message),
        Ok(syn::Item::Impl(i)) => syn::Error::new_spanned(
            i.impl_token,
            format!(
                "`{attribute}` goes on each `async fn` inside the impl block, not on the block"
            ),
        ),
        Ok(syn::Item::Verbatim(tokens)) if tokens.to_string().ends_with(';') => {
            syn::Error::new_spanned(tokens, format!("{message}; this declaration has none"))
        }
        _ => {
            let first = item.clone().into_iter().next();
            match first {
                Some(token) => syn::Error::new(token.span(), message),
                None => syn::Error::new(proc_macro2::Span::call_site(), message),
            }
        }
    }
}

/// A synchronous function whose body starts with `let <name> = async { ... };`: the shape
/// `#[tokio::test]` and `#[tokio::main]` give an async fn they expanded first. The lock then
/// goes around that async block, which holds the whole original body.
pub(crate) fn wrapped_async_body(item: &ItemFn) -> Option<Block> {
    let block: Block = syn::parse2(item.body_block()).ok()?;
    let Some(Stmt::Local(local)) = block.stmts.first() else {
        return None;
    };
    let is_async = matches!(
        local.init.as_ref().map(|init| &*init.expr),
        Some(Expr::Async(_))
    );
    (matches!(local.pat, Pat::Ident(_)) && is_async).then_some(block)
}

/// A method `#[async_trait]` rewrote first: a synchronous function returning
/// `Pin<Box<dyn Future<Output = R> + ...>>` whose body is `Box::pin(async move { ... })`.
/// Returns that call and `-> R`, so the lock goes around the async block inside, as
/// tracing's `#[instrument]` does.
pub(crate) fn async_trait_body(item: &ItemFn) -> Option<(ExprCall, ReturnType)> {
    let block: Block = syn::parse2(item.body_block()).ok()?;
    let [Stmt::Expr(Expr::Call(call), None)] = block.stmts.as_slice() else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    let pins = func.path.segments.last().is_some_and(|s| s.ident == "pin");
    let boxed_async =
        matches!(call.args.first(), Some(Expr::Async(block)) if block.capture.is_some());
    if !(pins && boxed_async && call.args.len() == 1) {
        return None;
    }
    let ReturnType::Type(arrow, ty) = &item.sig.output else {
        return None;
    };
    let output = future_output(ty)?;
    Some((call.clone(), ReturnType::Type(*arrow, Box::new(output))))
}

/// `R` in a type such as `Pin<Box<dyn Future<Output = R> + Send + 'a>>`.
fn future_output(ty: &Type) -> Option<Type> {
    match ty {
        Type::Path(path) => path.path.segments.iter().find_map(|segment| {
            let PathArguments::AngleBracketed(args) = &segment.arguments else {
                return None;
            };
            args.args.iter().find_map(|arg| match arg {
                GenericArgument::AssocType(assoc) if assoc.ident == "Output" => {
                    Some(assoc.ty.clone())
                }
                GenericArgument::Type(inner) => future_output(inner),
                _ => None,
            })
        }),
        Type::TraitObject(object) => object.bounds.iter().find_map(|bound| match bound {
            TypeParamBound::Trait(bound) => future_output(&Type::Path(syn::TypePath {
                qself: None,
                path: bound.path.clone(),
            })),
            _ => None,
        }),
        Type::Paren(inner) => future_output(&inner.elem),
        Type::Group(inner) => future_output(&inner.elem),
        _ => None,
    }
}

impl ItemFn {
    /// The body with its braces, as tokens.
    pub(crate) fn body_block(&self) -> TokenStream {
        let mut tokens = TokenStream::new();
        self.brace
            .surround(&mut tokens, |inner| self.body.to_tokens(inner));
        tokens
    }
}
