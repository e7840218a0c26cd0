//! Keeping secrets out of errors and logs: a URL's password is replaced before the URL is
//! shown anywhere.

/// `url` with the password of its user-info part, if any, replaced by `***`:
/// `redis://user:secret@host/` becomes `redis://user:***@host/`.
pub(crate) fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The user-info ends at the last `@` before the path.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None if at > 0 => "***".to_owned(),
        None => String::new(),
    };
    format!("{scheme}://{user}@{}", &rest[at + 1..])
}

/// `text` with every occurrence of `secret` replaced by `***` (for error messages from a
/// driver that may quote what it was given).
#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "***"),
        _ => text.to_owned(),
    }
}

/// The password in `url`'s user-info, if any.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let userinfo = &rest[..at];
    Some(
        userinfo
            .split_once(':')
            .map_or(userinfo, |(_, password)| password),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_replaced() {
        assert_eq!(super::url("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(super::url("redis://u:p%40ss@h/"), "redis://u:***@h/");
        assert_eq!(super::url("redis://u:a@b@h/"), "redis://u:***@h/");
        assert_eq!(super::url("rediss://h:6379"), "rediss://h:6379");
        assert_eq!(super::url("redis://token@h"), "redis://***@h");
        assert_eq!(super::url("memory://"), "memory://");
        assert_eq!(super::password("redis://u:a@b@h/"), Some("a@b"));
        assert_eq!(super::password("redis://h/"), None);
        assert_eq!(super::scrub("bad a@b here", Some("a@b")), "bad *** here");
    }
}
