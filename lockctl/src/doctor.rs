//! `lockctl doctor`: the store's findings, one line each for people (the worst first
//! column at a glance, a fix under each finding that needs one), or one JSON object for
//! scripts. The exit code is the worst finding's (Nagios' convention): 0 pass, 1 warn,
//! 2 fail, 3 the store could not be reached.

use std::io::Write as _;

use lock_runtime::store::{Finding, Status};

use crate::{chain, connect, Cli, Failure};

pub(crate) async fn run(cli: &Cli, url: &str, json: bool) -> Result<(), Failure> {
    let backend = match connect(cli, url).await {
        Ok(backend) => backend,
        Err(Failure::Store(error)) if json => {
            let said = chain(&error);
            println!("{{\"status\":\"unreachable\",\"error\":{}}}", quoted(&said));
            return Err(Failure::Store(error));
        }
        Err(Failure::Usage(said)) if json => {
            println!("{{\"status\":\"usage\",\"error\":{}}}", quoted(&said));
            return Err(Failure::Usage(said));
        }
        Err(failure) => return Err(failure),
    };
    let store = backend.capabilities().label();
    let findings = backend.doctor().await?;
    let worst = findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Pass);
    let count = |status: Status| findings.iter().filter(|f| f.status == status).count();
    let (passed, warned, failed) = (
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
    );
    let mut out = std::io::stdout().lock();
    if json {
        let items: Vec<String> = findings.iter().map(object).collect();
        let _ = writeln!(
            out,
            "{{\"store\":{},\"status\":\"{worst}\",\"passed\":{passed},\"warnings\":{warned},\
             \"failed\":{failed},\"findings\":[{}]}}",
            quoted(store),
            items.join(",")
        );
    } else {
        let width = findings
            .iter()
            .map(|f| f.check.chars().count())
            .max()
            .unwrap_or(0);
        for finding in &findings {
            let status = finding.status.as_str().to_uppercase();
            let _ = writeln!(
                out,
                "{status:<4}  {:<width$}  {}",
                finding.check, finding.detail
            );
            if let Some(fix) = &finding.fix {
                let _ = writeln!(out, "{:<4}  {:<width$}  fix: {fix}", "", "");
            }
        }
        let warnings = if warned == 1 { "warning" } else { "warnings" };
        let _ = writeln!(
            out,
            "{store}: {failed} failed, {warned} {warnings}, {passed} passed"
        );
    }
    match worst {
        Status::Pass => Ok(()),
        Status::Warn => Err(Failure::Findings(1)),
        _ => Err(Failure::Findings(2)),
    }
}

/// One finding as a JSON object.
fn object(finding: &Finding) -> String {
    format!(
        "{{\"check\":{},\"status\":\"{}\",\"detail\":{},\"fix\":{}}}",
        quoted(&finding.check),
        finding.status,
        quoted(&finding.detail),
        finding
            .fix
            .as_deref()
            .map_or_else(|| "null".to_owned(), quoted)
    )
}

/// `text` as a JSON string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn strings_are_escaped_as_json_wants() {
        assert_eq!(quoted("a \"b\" \\ c\nd\u{1}"), r#""a \"b\" \\ c\nd\u0001""#);
        assert_eq!(quoted("µs"), "\"µs\"");
    }
}
