//! What to emit when something is wrong: the user's item unchanged, and the error beside
//! it, so the IDE keeps working and the user sees one error, not a cascade.

use proc_macro2::TokenStream;

pub(crate) fn with_error(mut item: TokenStream, error: &syn::Error) -> TokenStream {
    item.extend(error.to_compile_error());
    item
}
