//! The key template: `"order:{order_id}"`, `"user:{user.id}:cart"`, `"{self.tenant}:report"`.
//!
//! Literal text is kept as is (`{{` and `}}` stand for braces); each placeholder names a
//! parameter (or `self`) followed by field accesses, and is formatted with `Display`.

/// A parsed key template.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) segments: Vec<Segment>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Text(String),
    Place(Placeholder),
}

/// `{root.field.0}`: a parameter and the fields read from it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Placeholder {
    pub(crate) root: String,
    pub(crate) fields: Vec<Field>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Named(String),
    Index(u32),
}

impl Template {
    /// The placeholders, in order.
    pub(crate) fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Place(p) => Some(p),
            Segment::Text(_) => None,
        })
    }

    /// The `format!` string: text with braces escaped, `{}` for each placeholder.
    pub(crate) fn format_string(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(&text.replace('{', "{{").replace('}', "}}")),
                Segment::Place(_) => out.push_str("{}"),
            }
        }
        out
    }
}

/// The longest lock name every store can hold, in bytes: `lock_runtime::MAX_NAME_LEN`
/// (the runtime depends on this crate, not the other way round; a test checks that the two
/// agree).
pub(crate) const MAX_NAME_LEN: usize = 1024;

/// Parses a key template; the error is a sentence for the user.
pub(crate) fn parse(template: &str) -> Result<Template, String> {
    if template.is_empty() {
        return Err("the lock key is empty; name the resource, like \"order:{order_id}\"".into());
    }
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().is_some_and(|&(_, next)| next == '{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().is_some_and(|&(_, next)| next == '}') => {
                chars.next();
                text.push('}');
            }
            '}' => {
                return Err(format!(
                    "unmatched `}}` in `{}`; write `}}}}` for a literal brace",
                    &template[..=at]
                ))
            }
            '{' => {
                let inner_start = at + 1;
                let unclosed = || {
                    format!(
                        "unclosed `{{` in `{}`; close the placeholder with `}}`, or write `{{{{` \
                         for a literal brace",
                        &template[at..]
                    )
                };
                let Some(len) = template[inner_start..].find(['{', '}']) else {
                    return Err(unclosed());
                };
                let inner = &template[inner_start..inner_start + len];
                if template[inner_start + len..].starts_with('{') {
                    return Err(unclosed());
                }
                for _ in 0..=inner.chars().count() {
                    chars.next();
                }
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                segments.push(Segment::Place(placeholder(inner)?));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
    let fixed: usize = segments
        .iter()
        .map(|s| match s {
            Segment::Text(text) => text.len(),
            Segment::Place(_) => 0,
        })
        .sum();
    if fixed > MAX_NAME_LEN {
        return Err(format!(
            "the lock key's text alone is {fixed} bytes long; every store takes names of at \
             most {MAX_NAME_LEN} bytes"
        ));
    }
    Ok(Template { segments })
}

fn placeholder(inner: &str) -> Result<Placeholder, String> {
    if inner.is_empty() {
        return Err(
            "empty placeholder `{}` in the key; name a parameter, like `{order_id}`".into(),
        );
    }
    if let Some((name, _)) = inner.split_once(':') {
        return Err(format!(
            "formatting options are not supported in a key placeholder (`{{{inner}}}`); \
             write `{{{name}}}`: values are formatted with `Display`"
        ));
    }
    let mut parts = inner.split('.');
    let root = parts.next().unwrap_or_default();
    if !is_ident(root) {
        return Err(format!(
            "`{{{inner}}}` does not start with a parameter name; placeholders look like \
             `{{order_id}}`, `{{user.id}}` or `{{self.tenant}}`"
        ));
    }
    let mut fields = Vec::new();
    for part in parts {
        if is_ident(part) && part != "self" {
            fields.push(Field::Named(part.to_owned()));
        } else if let Ok(index) = part.parse::<u32>().map_err(drop).and_then(|i| {
            // `0` and `12` but not `01` or `+1`.
            if part == i.to_string() {
                Ok(i)
            } else {
                Err(())
            }
        }) {
            fields.push(Field::Index(index));
        } else {
            return Err(format!(
                "`{part}` in `{{{inner}}}` is not a field name; placeholders look like \
                 `{{user.id}}` or `{{pair.0}}`"
            ));
        }
    }
    Ok(Placeholder {
        root: root.to_owned(),
        fields,
    })
}

fn is_ident(text: &str) -> bool {
    text == "self" || syn::parse_str::<syn::Ident>(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(root: &str, fields: &[&str]) -> Segment {
        Segment::Place(Placeholder {
            root: root.into(),
            fields: fields
                .iter()
                .map(|f| match f.parse() {
                    Ok(i) => Field::Index(i),
                    Err(_) => Field::Named((*f).into()),
                })
                .collect(),
        })
    }

    #[test]
    fn splits_text_and_placeholders() {
        let t = parse("order:{order_id}").unwrap();
        assert_eq!(
            t.segments,
            vec![Segment::Text("order:".into()), place("order_id", &[])]
        );
        let t = parse("{self.tenant}:report:{pair.0}").unwrap();
        assert_eq!(
            t.segments,
            vec![
                place("self", &["tenant"]),
                Segment::Text(":report:".into()),
                place("pair", &["0"])
            ]
        );
        assert_eq!(t.format_string(), "{}:report:{}");
    }

    #[test]
    fn escaped_braces_stay_literal() {
        let t = parse("a{{b}}c:{x}").unwrap();
        assert_eq!(
            t.segments,
            vec![Segment::Text("a{b}c:".into()), place("x", &[])]
        );
        assert_eq!(t.format_string(), "a{{b}}c:{}");
        assert_eq!(t.placeholders().count(), 1);
    }

    #[test]
    fn non_ascii_text_is_kept() {
        let t = parse("ключ:{id}:ü").unwrap();
        assert_eq!(t.format_string(), "ключ:{}:ü");
    }

    #[test]
    fn rejects_text_longer_than_every_store_takes() {
        let longest = "k".repeat(MAX_NAME_LEN);
        assert!(parse(&longest).is_ok());
        assert!(parse(&format!("{longest}:{{id}}"))
            .unwrap_err()
            .contains("1025 bytes"));
    }

    #[test]
    fn rejects_malformed_templates() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("order:{id").unwrap_err().contains("unclosed `{`"));
        assert!(parse("order:{a{b}").unwrap_err().contains("unclosed `{`"));
        assert!(parse("order:id}").unwrap_err().contains("unmatched `}`"));
        assert!(parse("order:{}").unwrap_err().contains("empty placeholder"));
        assert!(parse("order:{id:?}")
            .unwrap_err()
            .contains("formatting options"));
        assert!(parse("order:{1x}").unwrap_err().contains("parameter name"));
        assert!(parse("order:{a.}")
            .unwrap_err()
            .contains("not a field name"));
        assert!(parse("order:{a.01}")
            .unwrap_err()
            .contains("not a field name"));
        assert!(parse("order:{a b}").unwrap_err().contains("parameter name"));
    }
}
