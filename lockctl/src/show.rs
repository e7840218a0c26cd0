//! How lockctl prints locks: a table for `list`, one field per line for `show`, one line
//! per change for `watch`, one line per leader for `leader`. Writes to a closed pipe are ignored.

use std::{
    io::Write,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lock_runtime::{store::LockKind, Leader, LockInfo};

/// `list`: one row per lock, columns aligned.
pub(crate) fn table(out: &mut impl Write, locks: &[LockInfo]) {
    let header = ["NAME", "HOLDER", "FUNCTION", "AGE", "REMAINING", "FENCE"].map(str::to_owned);
    let rows: Vec<[String; 6]> = locks
        .iter()
        .map(|info| {
            let holder = info.holder.as_ref();
            let (holders, functions) = if info.sharers.is_empty() {
                (
                    holder.map_or_else(|| "-".to_owned(), |h| format!("{}:{}", h.host, h.pid)),
                    holder
                        .and_then(|h| h.function.clone())
                        .unwrap_or_else(|| "-".to_owned()),
                )
            } else {
                (sharing(info), shared_functions(info))
            };
            [
                info.name.clone(),
                holders,
                functions,
                info.age().map_or_else(|| "-".to_owned(), duration),
                remaining(info),
                info.fence_counter
                    .map_or_else(|| "-".to_owned(), |f| f.to_string()),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// `2 readers`, `2 of 3 permits`: who shares a key.
fn sharing(info: &LockInfo) -> String {
    let n = info.sharers.len();
    match info.kind {
        LockKind::Permit { permits } => format!("{n} of {permits} permits"),
        _ if n == 1 => "1 reader".to_owned(),
        _ => format!("{n} readers"),
    }
}

/// The functions a shared key's holders recorded, each once.
fn shared_functions(info: &LockInfo) -> String {
    let mut functions: Vec<&str> = info
        .sharers
        .iter()
        .filter_map(|s| s.holder.as_ref()?.function.as_deref())
        .collect();
    functions.sort_unstable();
    functions.dedup();
    if functions.is_empty() {
        "-".to_owned()
    } else {
        functions.join(",")
    }
}

/// `show`: every field of one lock.
pub(crate) fn details(out: &mut impl Write, info: &LockInfo) {
    if !info.sharers.is_empty() {
        return shared_details(out, info);
    }
    let mut lines = vec![("name", info.name.clone()), ("token", info.token.clone())];
    match &info.holder {
        Some(holder) => {
            lines.push(("host", holder.host.clone()));
            lines.push(("pid", holder.pid.to_string()));
            if let Some(function) = &holder.function {
                lines.push(("function", function.clone()));
            }
            let age = info.age().map(duration).unwrap_or_default();
            lines.push((
                "taken",
                format!("{} ({age} ago)", timestamp(holder.taken_at)),
            ));
            if let Some(fence) = holder.fence {
                lines.push(("fence", fence.to_string()));
            }
        }
        None => lines.push(("holder", "no record (written by another client)".to_owned())),
    }
    lines.push(("remaining", remaining(info)));
    if let Some(counter) = info.fence_counter {
        lines.push(("counter", counter.to_string()));
    }
    for (field, value) in lines {
        let _ = writeln!(out, "{:<10} {value}", format!("{field}:"));
    }
}

/// `show` of a key held by readers or permits: one line per holder.
fn shared_details(out: &mut impl Write, info: &LockInfo) {
    let (kind, each) = match info.kind {
        LockKind::Permit { permits } => (format!("semaphore of {permits} permits"), "permit"),
        _ => ("read-write lock, held by readers".to_owned(), "reader"),
    };
    let mut lines = vec![
        ("name", info.name.clone()),
        ("kind", kind),
        ("holders", info.sharers.len().to_string()),
    ];
    for sharer in &info.sharers {
        let mut line = match &sharer.holder {
            Some(holder) => format!("{}:{}", holder.host, holder.pid),
            None => "an unknown holder".to_owned(),
        };
        if let Some(holder) = &sharer.holder {
            if let Some(function) = &holder.function {
                line.push_str(&format!(" ({function})"));
            }
            line.push_str(&format!(" taken {}", timestamp(holder.taken_at)));
            if let Some(fence) = holder.fence {
                line.push_str(&format!(" fence {fence}"));
            }
        }
        let left = sharer
            .remaining
            .map_or_else(|| "while its session lives".to_owned(), duration);
        line.push_str(&format!(" remaining {left} token {}", sharer.token));
        lines.push((each, line));
    }
    lines.push(("remaining", remaining(info)));
    if let Some(counter) = info.fence_counter {
        lines.push(("counter", counter.to_string()));
    }
    for (field, value) in lines {
        let _ = writeln!(out, "{:<10} {value}", format!("{field}:"));
    }
}

/// `watch`: one line for a new holder or a release.
pub(crate) fn change(out: &mut impl Write, name: &str, now: Option<&LockInfo>) {
    let at = timestamp(SystemTime::now());
    let _ = match now {
        Some(info) => writeln!(
            out,
            "{at} {name} held by {} remaining {}",
            who(info),
            remaining(info)
        ),
        None => writeln!(out, "{at} {name} free"),
    };
}

/// `host:pid (function) token …`: who holds a lock; `2 readers`, `1 of 3 permits` for a
/// shared key.
pub(crate) fn who(info: &LockInfo) -> String {
    if !info.sharers.is_empty() {
        return sharing(info);
    }
    let mut who = match &info.holder {
        Some(holder) => format!("{}:{}", holder.host, holder.pid),
        None => "an unknown holder".to_owned(),
    };
    if let Some(function) = info.holder.as_ref().and_then(|h| h.function.as_deref()) {
        who.push_str(&format!(" ({function})"));
    }
    who.push_str(&format!(" token {}", info.token));
    who
}

fn remaining(info: &LockInfo) -> String {
    info.remaining
        .map_or_else(|| "while its session lives".to_owned(), duration)
}

/// `850ms`, `8.8s`, `12m03s`, `3h04m`.
fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{:.1}s", d.as_secs_f64()),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

/// `2026-11-27T04:45:47.123Z`.
fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    let (year, month, day) = civil(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    )
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `leader`: who leads an election, its term and since when; `--watch`: one line per change,
/// stamped.
pub(crate) fn leader(out: &mut impl Write, name: &str, leader: Option<&Leader>, stamped: bool) {
    let at = match stamped {
        true => format!("{} ", timestamp(SystemTime::now())),
        false => String::new(),
    };
    let Some(leader) = leader else {
        let _ = writeln!(out, "{at}{name}: no leader");
        return;
    };
    let who = match (&leader.host, leader.pid) {
        (Some(host), Some(pid)) => format!("{host}:{pid}"),
        _ => "a leader without a record (a Curator LeaderSelector?)".to_owned(),
    };
    let function = leader
        .function
        .as_ref()
        .map_or_else(String::new, |f| format!(" ({f})"));
    let term = leader
        .term
        .map_or_else(|| "unknown".to_owned(), |t| t.to_string());
    let since = leader.since.map_or_else(String::new, |since| {
        let age = SystemTime::now().duration_since(since).unwrap_or_default();
        format!(", since {} ({} ago)", timestamp(since), duration(age))
    });
    let _ = writeln!(
        out,
        "{at}{name}: led by {who}{function}, term {term}{since}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_as_people_write_them() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_754_747_123);
        assert_eq!(timestamp(at), "2026-11-27T04:45:47.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(8_840)), "8.8s");
        assert_eq!(duration(Duration::from_secs(723)), "12m03s");
        assert_eq!(duration(Duration::from_secs(3 * 3600 + 4 * 60)), "3h04m");
    }
}
