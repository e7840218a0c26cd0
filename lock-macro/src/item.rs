//! The annotated function, read tolerantly: attributes, visibility and signature are
//! parsed, the body is kept as tokens, so a body with errors in it still expands and the
//! compiler reports those errors where the user wrote them.

use proc_macro2::TokenStream;
use quote::ToTokens as _;
use syn::{
    braced,
    parse::{Parse, ParseStream},
    token, Attribute, Block, Expr, Pat, Signature, Stmt, Visibility,
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
pub(crate) fn not_a_function(item: &TokenStream) -> syn::Error {
    let message = "`#[distributed_lock]` goes on an `async fn` with a body";
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => syn::Error::new_spanned(s.struct_token, message),
        Ok(syn::Item::Enum(e)) => syn::Error::new_spanned(e.enum_token, message),
        Ok(syn::Item::Impl(i)) => syn::Error::new_spanned(
            i.impl_token,
            "`#[distributed_lock]` goes on each `async fn` inside the impl block, not on the block",
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

impl ItemFn {
    /// The body with its braces, as tokens.
    pub(crate) fn body_block(&self) -> TokenStream {
        let mut tokens = TokenStream::new();
        self.brace
            .surround(&mut tokens, |inner| self.body.to_tokens(inner));
        tokens
    }
}
