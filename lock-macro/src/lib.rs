//! The `#[distributed_lock]` attribute. Use it through `lock-runtime`, which re-exports it
//! and documents it: `use lock_runtime::distributed_lock;`.
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
