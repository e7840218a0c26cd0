//! The `#[distributed_lock]`, `#[distributed_semaphore]` and `#[leader]` attributes. Use them through
//! `lock-runtime`, which re-exports and documents them: `use lock_runtime::distributed_lock;`.
//!
//! The work is split by phase: `args` reads the attribute's arguments, `item` the
//! function, `template` and `duration` the literals; `validate` checks them together and
//! `expand` generates code; `fallback` is what is emitted on error.

mod args;
mod duration;
mod expand;
mod fallback;
mod item;
mod template;
mod validate;

use proc_macro::TokenStream;

/// (The attribute is implemented in the `lock-macro` crate.)
#[proc_macro_attribute]
pub fn distributed_lock(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::distributed_lock(args.into(), item.into()).into()
}

/// (The attribute is implemented in the `lock-macro` crate.)
#[proc_macro_attribute]
pub fn distributed_semaphore(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::distributed_semaphore(args.into(), item.into()).into()
}

/// (The attribute is implemented in the `lock-macro` crate.)
#[proc_macro_attribute]
pub fn leader(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::leader(args.into(), item.into()).into()
}
