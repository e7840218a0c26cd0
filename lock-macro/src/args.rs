//! The attributes' arguments: `key = "..."` or `keys = ["...", ...]`, `ttl = "..."`,
//! `wait = "..."`, `client = "..."`, `mode = "read"`, `permits = N` (semaphores), `skip`,
//! `or_return = <expr>`, and more. Each may be given once; unknown names get a suggestion.

use syn::{
    ext::IdentExt as _,
    parse::{Parse, ParseStream},
    Expr, ExprLit, Ident, Lit, LitInt, LitStr, Token,
};

/// Which attribute the arguments are for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `#[distributed_lock]`.
    Lock,
    /// `#[distributed_semaphore]`.
    Semaphore,
    /// `#[leader]`.
    Leader,
}

impl Flavor {
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Self::Lock => "#[distributed_lock]",
            Self::Semaphore => "#[distributed_semaphore]",
            Self::Leader => "#[leader]",
        }
    }

    /// Every argument the attribute takes, for messages.
    pub(crate) fn valid(self) -> &'static str {
        match self {
            Self::Lock => {
                "key, keys, ttl, wait, client, mode, skip, or_return, renew, max_hold, fencing, \
                 on_lost, lock_delay, crate"
            }
            Self::Semaphore => {
                "key, permits, ttl, wait, client, skip, or_return, renew, max_hold, fencing, \
                 on_lost, lock_delay, crate"
            }
            Self::Leader => "name, ttl, client, on_lost, lock_delay, crate",
        }
    }
}

const NAMES: [&str; 15] = [
    "key",
    "keys",
    "mode",
    "permits",
    "ttl",
    "wait",
    "client",
    "skip",
    "or_return",
    "renew",
    "max_hold",
    "fencing",
    "on_lost",
    "lock_delay",
    "crate",
];

/// The arguments as written; presence and combinations are checked in `validate`.
pub(crate) struct Args {
    pub(crate) flavor: Flavor,
    pub(crate) key: Option<LitStr>,
    /// `keys = ["a:{x}", "b:{y}"]`: several locks at once; the bracket's span.
    pub(crate) keys: Option<(Ident, Vec<LitStr>)>,
    /// `mode = "read" | "write"`.
    pub(crate) mode: Option<LitStr>,
    /// `permits = 5` (semaphores).
    pub(crate) permits: Option<LitInt>,
    pub(crate) ttl: Option<LitStr>,
    pub(crate) wait: Option<LitStr>,
    pub(crate) client: Option<LitStr>,
    /// `skip`: when the lock cannot be had, return `Default::default()`.
    pub(crate) skip: Option<Ident>,
    /// `or_return = <expr>`: when the lock cannot be had, return this.
    pub(crate) or_return: Option<(Ident, Expr)>,
    /// `renew`: extend the lease every third of the TTL while the body runs.
    pub(crate) renew: Option<Ident>,
    /// `max_hold = "..."`: how long renewal may keep the lock.
    pub(crate) max_hold: Option<LitStr>,
    /// `fencing`: issue a fencing token with each acquisition.
    pub(crate) fencing: Option<Ident>,
    /// `on_lost = "cancel" | "finish"`.
    pub(crate) on_lost: Option<LitStr>,
    /// `lock_delay = "..."`: how long the lock stays unavailable after a lease that ended
    /// without a release.
    pub(crate) lock_delay: Option<LitStr>,
    /// `crate = "locks"`: the path of `lock-runtime` when the dependency is renamed.
    pub(crate) krate: Option<LitStr>,
}

impl Args {
    fn new(flavor: Flavor) -> Self {
        Self {
            flavor,
            key: None,
            keys: None,
            mode: None,
            permits: None,
            ttl: None,
            wait: None,
            client: None,
            skip: None,
            or_return: None,
            renew: None,
            max_hold: None,
            fencing: None,
            on_lost: None,
            lock_delay: None,
            krate: None,
        }
    }

    /// Parses the arguments of the attribute `flavor`.
    pub(crate) fn parse_for(flavor: Flavor) -> impl FnOnce(ParseStream<'_>) -> syn::Result<Self> {
        move |input| Self::parse_with(input, flavor)
    }
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Self::parse_with(input, Flavor::Lock)
    }
}

impl Args {
    fn parse_with(input: ParseStream<'_>, flavor: Flavor) -> syn::Result<Self> {
        let mut args = Args::new(flavor);
        while !input.is_empty() {
            let name = input.call(Ident::parse_any)?;
            match name.to_string().as_str() {
                "key" | "keys" | "mode" | "permits" | "wait" | "skip" | "or_return" | "renew"
                | "max_hold" | "fencing"
                    if flavor == Flavor::Leader =>
                {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "`{name}` does not apply to `#[leader]`: a candidate waits until \
                             elected, the leader renews its lease for as long as it leads, and \
                             its term is a fencing token; it takes name, ttl, client, on_lost, \
                             lock_delay and crate"
                        ),
                    ))
                }
                "keys" if flavor == Flavor::Lock => {
                    let value = key_list(input, &name)?;
                    set_once(&mut args.keys, (name.clone(), value), &name)?;
                }
                "mode" if flavor == Flavor::Lock => {
                    let value = string_value(input, &name, Expect::Mode)?;
                    set_once(&mut args.mode, value, &name)?;
                }
                "permits" if flavor == Flavor::Semaphore => {
                    let value = permits_value(input, &name)?;
                    set_once(&mut args.permits, value, &name)?;
                }
                "keys" | "mode" => {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "`{name}` does not apply to a semaphore: its permits are one key's, \
                             and each permit is alike; use `#[distributed_lock]` for several \
                             keys or a read-write lock"
                        ),
                    ))
                }
                "permits" => {
                    return Err(syn::Error::new(
                        name.span(),
                        "`permits` belongs to a semaphore: write \
                         `#[distributed_semaphore(key = \"...\", permits = 5, ttl = \"...\")]`",
                    ))
                }
                "name" if flavor == Flavor::Leader => {
                    let value = string_value(input, &name, Expect::Template)?;
                    set_once(&mut args.key, value, &name)?;
                }
                "key" => {
                    let value = string_value(input, &name, Expect::Template)?;
                    set_once(&mut args.key, value, &name)?;
                }
                "ttl" => {
                    let value = string_value(input, &name, Expect::Duration)?;
                    set_once(&mut args.ttl, value, &name)?;
                }
                "wait" => {
                    let value = string_value(input, &name, Expect::Duration)?;
                    set_once(&mut args.wait, value, &name)?;
                }
                "client" => {
                    let value = string_value(input, &name, Expect::ClientName)?;
                    set_once(&mut args.client, value, &name)?;
                }
                "skip" => {
                    flag(
                        input,
                        &name,
                        "; to return a value of your own, write `or_return = <value>`",
                    )?;
                    set_once(&mut args.skip, name.clone(), &name)?;
                }
                "renew" => {
                    flag(input, &name, "; bound it with `max_hold = \"5m\"`")?;
                    set_once(&mut args.renew, name.clone(), &name)?;
                }
                "fencing" => {
                    flag(input, &name, "")?;
                    set_once(&mut args.fencing, name.clone(), &name)?;
                }
                "max_hold" => {
                    let value = string_value(input, &name, Expect::Duration)?;
                    set_once(&mut args.max_hold, value, &name)?;
                }
                "on_lost" => {
                    let value = string_value(input, &name, Expect::OnLost)?;
                    set_once(&mut args.on_lost, value, &name)?;
                }
                "lock_delay" => {
                    let value = string_value(input, &name, Expect::Duration)?;
                    set_once(&mut args.lock_delay, value, &name)?;
                }
                "crate" => {
                    let value = string_value(input, &name, Expect::CratePath)?;
                    set_once(&mut args.krate, value, &name)?;
                }
                "or_return" => {
                    input.parse::<Token![=]>()?;
                    let value: Expr = input.parse()?;
                    set_once(&mut args.or_return, (name.clone(), value), &name)?;
                }
                other => return Err(unknown(&name, other, flavor)),
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

#[derive(Clone, Copy)]
enum Expect {
    Template,
    Duration,
    ClientName,
    OnLost,
    CratePath,
    Mode,
}

/// Parses `= ["a:{x}", "b:{y}"]`.
fn key_list(input: ParseStream<'_>, name: &Ident) -> syn::Result<Vec<LitStr>> {
    let usage = "`keys = [\"account:{from}\", \"account:{to}\"]`";
    if !input.peek(Token![=]) {
        return Err(syn::Error::new_spanned(
            name,
            format!("`keys` needs a list of key templates: {usage}"),
        ));
    }
    input.parse::<Token![=]>()?;
    let value: Expr = input.parse()?;
    let Expr::Array(array) = value else {
        return Err(syn::Error::new_spanned(
            value,
            format!("`keys` expects a list of string literals in brackets: {usage}"),
        ));
    };
    if array.elems.is_empty() {
        return Err(syn::Error::new_spanned(
            array,
            format!("`keys` is empty: name at least one lock, as in {usage}"),
        ));
    }
    array
        .elems
        .into_iter()
        .map(|elem| match elem {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => Ok(lit),
            other => Err(syn::Error::new_spanned(
                other,
                "each of `keys` must be a string literal key template such as \
                 \"account:{from}\"",
            )),
        })
        .collect()
}

/// Parses `= 5`.
fn permits_value(input: ParseStream<'_>, name: &Ident) -> syn::Result<LitInt> {
    if !input.peek(Token![=]) {
        return Err(syn::Error::new_spanned(
            name,
            "`permits` needs a value: how many holders at once, such as `permits = 5`",
        ));
    }
    input.parse::<Token![=]>()?;
    let value: Expr = input.parse()?;
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => Ok(int),
        other => Err(syn::Error::new_spanned(
            other,
            "`permits` expects a whole number such as `permits = 5` (checked at compile time, \
             so not an expression)",
        )),
    }
}

/// A flag takes no value.
fn flag(input: ParseStream<'_>, name: &Ident, hint: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        return Err(syn::Error::new_spanned(
            name,
            format!("`{name}` takes no value{hint}"),
        ));
    }
    Ok(())
}

/// Parses `= "literal"`, with a message that says what literal was expected.
fn string_value(input: ParseStream<'_>, name: &Ident, expect: Expect) -> syn::Result<LitStr> {
    if !input.peek(Token![=]) {
        return Err(syn::Error::new_spanned(
            name,
            format!("`{name}` needs a value: {}", example(name, expect)),
        ));
    }
    input.parse::<Token![=]>()?;
    let value: Expr = input.parse()?;
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit),
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) if matches!(expect, Expect::Duration) => Err(syn::Error::new(
            int.span(),
            format!(
                "`{int}` has no unit; write the duration as a string such as \"{int}s\" or \
                 \"{int}ms\""
            ),
        )),
        other => {
            let what = match expect {
                Expect::Duration => {
                    "a duration string such as \"10s\", \"500ms\" or \"1m30s\" \
                                     (checked at compile time, so not an expression)"
                }
                Expect::Template => "a string literal key template such as \"order:{order_id}\"",
                Expect::ClientName => "a string literal naming a registered client",
                Expect::OnLost => "\"cancel\" or \"finish\"",
                Expect::Mode => "\"read\" or \"write\"",
                Expect::CratePath => {
                    "a string literal naming the `lock-runtime` dependency, such as \"locks\""
                }
            };
            Err(syn::Error::new_spanned(
                other,
                format!("`{name}` expects {what}"),
            ))
        }
    }
}

fn example(name: &Ident, expect: Expect) -> String {
    match expect {
        Expect::Template => format!("`{name} = \"order:{{order_id}}\"`"),
        Expect::Duration => format!("`{name} = \"10s\"`"),
        Expect::ClientName => format!("`{name} = \"billing\"`"),
        Expect::OnLost => format!("`{name} = \"finish\"`"),
        Expect::CratePath => format!("`{name} = \"locks\"`"),
        Expect::Mode => format!("`{name} = \"read\"`"),
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &Ident) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            name,
            format!("`{name}` is given more than once; keep one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn unknown(name: &Ident, text: &str, flavor: Flavor) -> syn::Error {
    let valid = flavor.valid();
    let message = match suggest(text) {
        Some(known) => {
            format!("unknown argument `{text}`; did you mean `{known}`? valid arguments: {valid}")
        }
        None => format!("unknown argument `{text}`; valid arguments: {valid}"),
    };
    syn::Error::new(name.span(), message)
}

/// The valid argument closest to a wrong one: by known synonyms, then by spelling.
fn suggest(text: &str) -> Option<&'static str> {
    const SYNONYMS: &[(&str, &str)] = &[
        ("timeout", "wait"),
        ("wait_for", "wait"),
        ("max_wait", "wait"),
        ("block", "wait"),
        ("retry", "wait"),
        ("lease", "ttl"),
        ("expire", "ttl"),
        ("expiry", "ttl"),
        ("expires", "ttl"),
        ("duration", "ttl"),
        ("lock_ttl", "ttl"),
        ("name", "key"),
        ("lock", "key"),
        ("resource", "key"),
        ("backend", "client"),
        ("store", "client"),
        ("redis", "client"),
        ("connection", "client"),
        ("on_busy", "skip"),
        ("skip_if_busy", "skip"),
        ("default", "or_return"),
        ("fallback", "or_return"),
        ("otherwise", "or_return"),
        ("or_else", "or_return"),
        ("renewal", "renew"),
        ("auto_renew", "renew"),
        ("keep_alive", "renew"),
        ("watchdog", "renew"),
        ("max_lease", "max_hold"),
        ("hold", "max_hold"),
        ("fence", "fencing"),
        ("fenced", "fencing"),
        ("fencing_token", "fencing"),
        ("lost", "on_lost"),
        ("on_lease_lost", "on_lost"),
        ("names", "keys"),
        ("locks", "keys"),
        ("key_list", "keys"),
        ("read", "mode"),
        ("write", "mode"),
        ("shared", "mode"),
        ("kind", "mode"),
        ("limit", "permits"),
        ("max_holders", "permits"),
        ("concurrency", "permits"),
        ("size", "permits"),
    ];
    let lower = text.to_ascii_lowercase();
    if let Some((_, known)) = SYNONYMS.iter().find(|(alias, _)| *alias == lower) {
        return Some(known);
    }
    NAMES
        .into_iter()
        .map(|known| (edit_distance(&lower, known), known))
        .filter(|(distance, known)| *distance <= 2 && *distance < known.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Edits from `a` to `b`, a swap of two neighbours counting as one (`kyes` is one from
/// `keys`, two from `key`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j]: edits from a[..i] to b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]));
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_by_synonym_and_spelling() {
        assert_eq!(suggest("timeout"), Some("wait"));
        assert_eq!(suggest("TTL"), Some("ttl"));
        assert_eq!(suggest("tll"), Some("ttl"));
        assert_eq!(suggest("kye"), Some("key"));
        assert_eq!(suggest("kyes"), Some("keys"));
        assert_eq!(suggest("permtis"), Some("permits"));
        assert_eq!(suggest("cliennt"), Some("client"));
        assert_eq!(suggest("zzzzzz"), None);
    }

    #[test]
    fn parses_every_argument() {
        let args: Args = syn::parse_str(
            r#"key = "order:{id}", ttl = "10s", wait = "1s", client = "billing", skip"#,
        )
        .unwrap();
        assert_eq!(args.key.unwrap().value(), "order:{id}");
        assert_eq!(args.ttl.unwrap().value(), "10s");
        assert_eq!(args.wait.unwrap().value(), "1s");
        assert_eq!(args.client.unwrap().value(), "billing");
        assert!(args.skip.is_some());
        let args: Args =
            syn::parse_str(r#"key = "k", ttl = "1s", or_return = Outcome::Skipped,"#).unwrap();
        assert!(args.or_return.is_some());
    }

    #[test]
    fn rejects_repeats_and_unknowns() {
        let err = syn::parse_str::<Args>(r#"ttl = "1s", ttl = "2s""#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("more than once"));
        let err = syn::parse_str::<Args>(r#"timeout = "1s""#).err().unwrap();
        assert!(err.to_string().contains("did you mean `wait`"));
        let err = syn::parse_str::<Args>("ttl = 10").err().unwrap();
        assert!(err.to_string().contains("no unit"));
    }
}
