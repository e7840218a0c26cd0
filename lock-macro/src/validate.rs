//! Rules that need the whole picture: required arguments, durations, the key template
//! against the function's parameters, and what happens when the lock cannot be had.

use proc_macro2::Span;
use syn::{Block, Expr, FnArg, Ident, LitStr, Pat, ReturnType, Type};

use crate::{
    args::{Args, Flavor},
    duration,
    item::{self, ItemFn},
    template::{self, Template},
};

/// The longest TTL, in milliseconds: a year, as `lock_runtime::MAX_TTL`. The UI tests keep
/// the two in step: `ttl-over-a-year` must fail here, and `ttl-of-a-year` must compile and
/// be granted by the runtime.
pub(crate) const MAX_TTL_MS: u64 = 365 * 24 * 60 * 60 * 1000;

/// Everything `expand` needs, checked.
pub(crate) struct Plan {
    /// The key template (for several keys, all of them, for the metrics' label).
    pub(crate) key: LitStr,
    /// Each key's literal and template: one for `key`, any number for `keys`.
    pub(crate) keys: Vec<(LitStr, Template)>,
    /// `keys = [...]`: several locks at once.
    pub(crate) several: bool,
    /// `mode = "read"`.
    pub(crate) read: bool,
    /// A semaphore's permit count.
    pub(crate) permits: Option<u32>,
    pub(crate) ttl_ms: u64,
    pub(crate) wait_ms: u64,
    pub(crate) client: Option<LitStr>,
    /// `Some(max_hold_ms)` when renewing (`None` inside: the runtime's default).
    pub(crate) renew: Option<Option<u64>>,
    pub(crate) fencing: bool,
    pub(crate) finish_on_lost: bool,
    /// `lock_delay`, in milliseconds (0: none).
    pub(crate) lock_delay_ms: u64,
    pub(crate) on_fail: OnFail,
    pub(crate) shape: Shape,
    /// `#[leader]`: the body runs whenever this process leads, made afresh each time.
    pub(crate) leader: bool,
    /// The path of the runtime crate: `::lock_runtime` unless `crate = "..."` says otherwise.
    pub(crate) krate: syn::Path,
}

/// What the function returns when the lock cannot be had.
pub(crate) enum OnFail {
    /// `Err(E::from(lock_error))`, through the return type's `FromLockError`.
    Propagate,
    /// `Default::default()`, after a tracing event.
    Skip(Ident),
    /// The user's value, after a tracing event.
    Return(Expr),
}

/// Where the body to guard is.
pub(crate) enum Shape {
    /// An `async fn`: its body.
    AsyncFn,
    /// A function another attribute already turned synchronous (`#[tokio::test]`): the
    /// async block its body starts with.
    Wrapped(Block),
    /// A method `#[async_trait]` already rewrote: its `Box::pin(async move { .. })` call,
    /// and the future's output type.
    AsyncTrait(syn::ExprCall, ReturnType),
}

/// Checks the arguments against the function; all problems found are reported together.
pub(crate) fn plan(args: Args, item: &ItemFn) -> syn::Result<Plan> {
    let mut errors: Option<syn::Error> = None;
    let mut report = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };

    let flavor = args.flavor;
    let shape = match shape(item, flavor) {
        Ok(shape) => Some(shape),
        Err(e) => {
            report(e);
            None
        }
    };

    if flavor == Flavor::Leader {
        if let Some(shape) = &shape {
            if !matches!(shape, Shape::AsyncFn) {
                report(syn::Error::new_spanned(
                    &item.sig.ident,
                    "`#[leader]` goes on a plain `async fn` (or method), below `#[tokio::test]` \
                     or `#[async_trait]` if it has them",
                ));
            }
        }
        if let Some(FnArg::Receiver(receiver)) = item.sig.inputs.first() {
            if receiver.reference.is_none() {
                report(syn::Error::new_spanned(
                    receiver,
                    "`#[leader]` runs the body again each time this process is elected anew, \
                     so it cannot consume `self`: take `&self`",
                ));
            }
        }
    }

    let several = args.keys.is_some();
    let literals = match (&args.key, &args.keys) {
        (Some(_), Some((name, _))) => {
            report(syn::Error::new(
                name.span(),
                "`key` and `keys` both name what to lock; keep `key` for one lock, or list \
                 every key in `keys`",
            ));
            None
        }
        (Some(key), None) => Some(vec![key.clone()]),
        (None, Some((_, keys))) => Some(keys.clone()),
        (None, None) if flavor == Flavor::Leader => {
            report(syn::Error::new(
                Span::call_site(),
                "missing `name`: name the election, for example `name = \"scheduler\"`",
            ));
            None
        }
        (None, None) => {
            let also = match flavor {
                Flavor::Lock => ", or several with `keys = [\"account:{from}\", \"account:{to}\"]`",
                _ => "",
            };
            report(syn::Error::new(
                Span::call_site(),
                format!(
                    "missing `key`: name the lock, for example `key = \"order:{{order_id}}\"`{also}"
                ),
            ));
            None
        }
    };
    let mut keys = Vec::new();
    for lit in literals.iter().flatten() {
        match template::parse(&lit.value()) {
            Ok(template) => match check_placeholders(&template, item) {
                Ok(()) => keys.push((lit.clone(), template)),
                Err(message) => report(syn::Error::new(lit.span(), message)),
            },
            Err(message) => report(syn::Error::new(lit.span(), message)),
        }
    }
    // The metrics' label: the templates, joined.
    let key = literals.as_ref().and_then(|literals| {
        let first = literals.first()?;
        let text: Vec<String> = literals.iter().map(LitStr::value).collect();
        Some(LitStr::new(&text.join(", "), first.span()))
    });
    let template = (literals.as_ref().map(Vec::len) == Some(keys.len())).then_some(());

    let read = match &args.mode {
        None => Some(false),
        Some(lit) => match lit.value().as_str() {
            "read" => Some(true),
            "write" => Some(false),
            other => {
                let hint = match suggest_mode(other) {
                    Some(mode) => format!("did you mean \"{mode}\"? "),
                    None => String::new(),
                };
                report(syn::Error::new(
                    lit.span(),
                    format!(
                        "unknown `mode` \"{other}\"; {hint}use \"read\" (beside other readers) \
                         or \"write\" (alone, the default)"
                    ),
                ));
                None
            }
        },
    };
    if let (Some(true), Some((name, _))) = (read, &args.keys) {
        report(syn::Error::new(
            name.span(),
            "`keys` takes exclusive locks; `mode = \"read\"` takes one key at a time",
        ));
    }

    let permits = match (&args.permits, flavor) {
        (None, Flavor::Semaphore) => {
            report(syn::Error::new(
                Span::call_site(),
                "missing `permits`: how many holders the semaphore admits at once, for example \
                 `permits = 5`",
            ));
            None
        }
        (None, Flavor::Lock | Flavor::Leader) => Some(None),
        (Some(lit), _) => match lit.base10_parse::<u32>() {
            Ok(0) => {
                report(syn::Error::new(
                    lit.span(),
                    "`permits = 0` admits nobody: a semaphore needs at least one permit",
                ));
                None
            }
            Ok(permits) => Some(Some(permits)),
            Err(_) => {
                report(syn::Error::new(
                    lit.span(),
                    format!("`permits` must be a whole number from 1 to {}", u32::MAX),
                ));
                None
            }
        },
    };

    let ttl_ms = match &args.ttl {
        None => {
            report(syn::Error::new(
                Span::call_site(),
                "missing `ttl`: how long the lock outlives a holder that vanished, for example \
                 `ttl = \"10s\"`",
            ));
            None
        }
        Some(lit) => match duration::parse_millis(&lit.value()) {
            Ok(0) => {
                report(syn::Error::new(
                    lit.span(),
                    "the ttl must be more than zero: a lock that expires at once protects nothing",
                ));
                None
            }
            Ok(ms) if ms > MAX_TTL_MS => {
                report(syn::Error::new(
                    lit.span(),
                    format!(
                        "the ttl may be at most a year (\"8760h\"), the longest lease the runtime \
                         grants; `{}` is longer",
                        lit.value()
                    ),
                ));
                None
            }
            Ok(ms) => Some(ms),
            Err(message) => {
                report(syn::Error::new(lit.span(), message));
                None
            }
        },
    };

    let wait_ms = match &args.wait {
        None => Some(0),
        Some(lit) => match duration::parse_millis(&lit.value()) {
            Ok(ms) => Some(ms),
            Err(message) => {
                report(syn::Error::new(lit.span(), message));
                None
            }
        },
    };

    let max_hold_ms = match (&args.max_hold, &args.renew) {
        (None, _) => Some(None),
        (Some(lit), None) => {
            report(syn::Error::new(
                lit.span(),
                "`max_hold` bounds renewal, which is off; add `renew` to keep the lease alive \
                 while the body runs",
            ));
            None
        }
        (Some(lit), Some(_)) => match duration::parse_millis(&lit.value()) {
            Ok(0) => {
                report(syn::Error::new(
                    lit.span(),
                    "`max_hold` must be more than zero",
                ));
                None
            }
            Ok(ms) => Some(Some(ms)),
            Err(message) => {
                report(syn::Error::new(lit.span(), message));
                None
            }
        },
    };

    let lock_delay_ms = match &args.lock_delay {
        None => Some(0),
        Some(lit) if read == Some(true) || flavor == Flavor::Semaphore => {
            report(syn::Error::new(
                lit.span(),
                "`lock_delay` is for exclusive locks: readers and permits take none",
            ));
            None
        }
        Some(lit) => match duration::parse_millis(&lit.value()) {
            Ok(ms) => Some(ms),
            Err(message) => {
                report(syn::Error::new(lit.span(), message));
                None
            }
        },
    };

    let finish_on_lost = match &args.on_lost {
        None => Some(false),
        Some(lit) => match lit.value().as_str() {
            "cancel" => Some(false),
            "finish" => Some(true),
            other => {
                report(syn::Error::new(
                    lit.span(),
                    format!(
                        "unknown `on_lost` policy \"{other}\": use \"cancel\" (drop the body at \
                         its next await, the default) or \"finish\" (let it complete, then \
                         report the loss)"
                    ),
                ));
                None
            }
        },
    };

    let krate = match &args.krate {
        None => Some(syn::parse_quote!(::lock_runtime)),
        Some(lit) => match lit.parse::<syn::Path>() {
            // A bare name is a crate: make it absolute, so no local item can shadow it.
            Ok(path) if path.leading_colon.is_none() && path.segments.len() == 1 => {
                let name = &path.segments[0].ident;
                Some(syn::parse_quote_spanned!(lit.span()=> ::#name))
            }
            Ok(path) => Some(path),
            Err(_) => {
                report(syn::Error::new(
                    lit.span(),
                    format!(
                        "`crate` names the `lock-runtime` dependency by the name your \
                         Cargo.toml gives it, such as \"locks\"; `{}` is not a path",
                        lit.value()
                    ),
                ));
                None
            }
        },
    };

    if let Some(client) = &args.client {
        if client.value().is_empty() {
            report(syn::Error::new(
                client.span(),
                "the client name is empty; leave `client` out to use the default client",
            ));
        }
    }

    let on_fail = match (args.skip, args.or_return) {
        (Some(_), Some((name, _))) => {
            report(syn::Error::new(
                name.span(),
                "`skip` and `or_return` both say what to return when the lock cannot be had; \
                 keep one",
            ));
            None
        }
        (Some(skip), None) => Some(OnFail::Skip(skip)),
        (None, Some((_, value))) => Some(OnFail::Return(value)),
        (None, None) if returns_unit(declared_output(item, shape.as_ref())) => {
            let name = &item.sig.ident;
            report(syn::Error::new(
                name.span(),
                format!(
                    "`{name}` returns `()`, so it cannot report that the lock was busy or lost; \
                     say what happens instead: add `skip` to return without running the body \
                     (a tracing event records it), `or_return = <value>`, or return \
                     `Result<T, E>` where `E: From<lock_runtime::LockError>`"
                ),
            ));
            None
        }
        (None, None) => Some(OnFail::Propagate),
    };

    if let Some(errors) = errors {
        return Err(errors);
    }
    match (
        (key, template, read, permits),
        ttl_ms,
        wait_ms,
        on_fail,
        shape,
        max_hold_ms,
        finish_on_lost,
        krate,
        lock_delay_ms,
    ) {
        (
            (Some(key), Some(()), Some(read), Some(permits)),
            Some(ttl_ms),
            Some(wait_ms),
            Some(on_fail),
            Some(shape),
            Some(max_hold_ms),
            Some(finish_on_lost),
            Some(krate),
            Some(lock_delay_ms),
        ) => Ok(Plan {
            key,
            keys,
            several,
            read,
            permits,
            ttl_ms,
            wait_ms,
            client: args.client,
            renew: args.renew.map(|_| max_hold_ms),
            fencing: args.fencing.is_some(),
            finish_on_lost,
            lock_delay_ms,
            on_fail,
            leader: flavor == Flavor::Leader,
            shape,
            krate,
        }),
        // Every `None` above was reported; this arm only keeps the macro panic-free.
        _ => Err(syn::Error::new(
            Span::call_site(),
            format!("`{}`: invalid arguments", flavor.attribute()),
        )),
    }
}

/// The mode a wrong one most likely meant.
fn suggest_mode(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "r" | "reader" | "readers" | "shared" | "share" | "ro" | "read_only" | "readonly"
        | "reed" | "raed" | "rad" | "red" | "reads" => Some("read"),
        "w" | "writer" | "writers" | "exclusive" | "rw" | "wirte" | "wite" | "writ" | "writes"
        | "wrte" | "rite" => Some("write"),
        _ if lower.starts_with("rea") || lower.starts_with("sha") => Some("read"),
        _ if lower.starts_with("wr") || lower.starts_with("ex") => Some("write"),
        _ => None,
    }
}

fn shape(item: &ItemFn, flavor: Flavor) -> syn::Result<Shape> {
    let attribute = flavor.attribute();
    let sig = &item.sig;
    if sig.asyncness.is_some() {
        return Ok(Shape::AsyncFn);
    }
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            format!("`{attribute}` needs an `async fn`; a `const fn` cannot wait for a lock"),
        ));
    }
    if let Some(block) = item::wrapped_async_body(item) {
        return Ok(Shape::Wrapped(block));
    }
    if let Some((call, output)) = item::async_trait_body(item) {
        return Ok(Shape::AsyncTrait(call, output));
    }
    Err(syn::Error::new_spanned(
        sig.fn_token,
        format!(
            "`{attribute}` needs an `async fn`: taking the lock awaits the store; \
             write `async fn {}`",
            sig.ident
        ),
    ))
}

/// Every placeholder must name a parameter (or `self` in a method).
fn check_placeholders(template: &Template, item: &ItemFn) -> Result<(), String> {
    let params = parameter_names(item);
    for placeholder in template.placeholders() {
        if params.contains(&placeholder.root) {
            continue;
        }
        let name = &item.sig.ident;
        // `#[async_trait]` names the parameters it takes apart `__arg0`, `__arg1`, ...:
        // names the user never wrote, so not offered.
        let params: Vec<&String> = params
            .iter()
            .filter(|param| !param.starts_with("__arg"))
            .collect();
        let usable = if params.is_empty() {
            format!("`{name}` has no parameters a key can use")
        } else {
            let names: Vec<&str> = params.iter().map(|param| param.as_str()).collect();
            format!("parameters a key can use: {}", names.join(", "))
        };
        return Err(if placeholder.root == "self" {
            format!("the key uses `self`, but `{name}` is not a method; {usable}")
        } else {
            format!(
                "`{{{}}}` in the key names no parameter of `{name}`; {usable}",
                placeholder.root
            )
        });
    }
    Ok(())
}

/// `self` and every name a parameter pattern binds: `x: T`, `mut x: T`, and the names
/// inside destructuring patterns such as `Path(id): Path<u64>`, `(a, b): (u32, u32)` or
/// `User { id, .. }: User`.
fn parameter_names(item: &ItemFn) -> Vec<String> {
    let mut names = Vec::new();
    for input in &item.sig.inputs {
        match input {
            FnArg::Receiver(_) => names.push("self".to_owned()),
            FnArg::Typed(typed) => bound_names(&typed.pat, &mut names),
        }
    }
    names
}

fn bound_names(pat: &Pat, names: &mut Vec<String>) {
    match pat {
        Pat::Ident(ident) => {
            names.push(ident.ident.to_string());
            if let Some((_, sub)) = &ident.subpat {
                bound_names(sub, names);
            }
        }
        Pat::Tuple(tuple) => tuple.elems.iter().for_each(|p| bound_names(p, names)),
        Pat::TupleStruct(tuple) => tuple.elems.iter().for_each(|p| bound_names(p, names)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| bound_names(&f.pat, names)),
        Pat::Slice(slice) => slice.elems.iter().for_each(|p| bound_names(p, names)),
        Pat::Reference(reference) => bound_names(&reference.pat, names),
        Pat::Paren(paren) => bound_names(&paren.pat, names),
        Pat::Type(typed) => bound_names(&typed.pat, names),
        _ => {}
    }
}

/// What the body produces: the declared return type, or, for a method `#[async_trait]`
/// rewrote, its future's output.
fn declared_output<'a>(item: &'a ItemFn, shape: Option<&'a Shape>) -> &'a ReturnType {
    match shape {
        Some(Shape::AsyncTrait(_, output)) => output,
        _ => &item.sig.output,
    }
}

fn returns_unit(output: &ReturnType) -> bool {
    match output {
        ReturnType::Default => true,
        ReturnType::Type(_, ty) => matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()),
    }
}
