//! Every directive Midge knows: Mosquitto 2.0's, 2.1's, and the few older ones Mosquitto 2 still
//! recognises. One table per group (one file each); each entry gives the directive's scope, its
//! support status and the function that reads its value into the parse state.
//!
//! A directive Midge does not support yet still has its value checked where that is cheap
//! (`persistence maybe` is an error), so a file that Mosquitto would refuse is refused now rather
//! than when the feature arrives. `docs/configuration.md` lists the same directives; a test keeps
//! the two in step.

use super::Area;
use super::parser::{Failure, Parser};
use super::value::{self, Args};

mod bridge;
mod cluster;
mod general;
mod http;
mod listener;
mod logging;
mod mqttsn;
mod persistence;
mod security;
mod tls;

/// Reads a directive's values from the rest of its line into the parse state.
pub(super) type Apply = fn(&mut Parser, &mut Args<'_>) -> Result<(), Failure>;

/// One known directive.
#[derive(Debug)]
pub(super) struct Directive {
    /// Its name; `plugin_opt_*` and `auth_opt_*` stand for every name with that prefix.
    pub(super) name: &'static str,
    /// What it applies to.
    pub(super) scope: Scope,
    /// Whether Midge acts on it.
    pub(super) support: Support,
    /// What it does.
    pub(super) apply: Apply,
}

/// What a directive applies to, which decides where it is allowed and where it takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The whole broker.
    Broker,
    /// The broker, or with `per_listener_settings true` the current listener.
    Security,
    /// The current listener (the default listener before a file's first `listener` line).
    Listener,
    /// The current bridge: only after a `connection` line.
    Bridge,
    /// The current plugin: only after a `plugin` line.
    PluginOption,
}

/// Whether Midge acts on a directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Support {
    /// Read into [`Config`](super::Config) and acted on.
    Supported,
    /// Checked, reported with a notice, not acted on: the feature comes with its area's issue.
    NotYet(Area),
    /// Checked and ignored, for this reason (deprecated or removed in Mosquitto, or moot in Midge).
    NoEffect(&'static str),
    /// Checked and refused at start, for this reason: Midge cannot do what it asks, and running
    /// without it would be less safe than the file says (TLS-PSK, OpenSSL engines).
    Never(&'static str),
}

/// The groups, in the order of `docs/configuration.md`.
pub(super) const GROUPS: [(&str, &[Directive]); 10] = [
    ("General", general::DIRECTIVES),
    ("Logging", logging::DIRECTIVES),
    ("Security", security::DIRECTIVES),
    ("Listeners", listener::DIRECTIVES),
    ("TLS", tls::DIRECTIVES),
    ("Persistence", persistence::DIRECTIVES),
    ("Bridges", bridge::DIRECTIVES),
    ("HTTP API", http::DIRECTIVES),
    ("MQTT-SN", mqttsn::DIRECTIVES),
    ("Cluster", cluster::DIRECTIVES),
];

/// Every known directive.
pub(super) fn all() -> impl Iterator<Item = &'static Directive> {
    GROUPS.iter().flat_map(|(_, table)| table.iter())
}

/// The directive called `name`, if Midge knows it.
pub(super) fn find(name: &str) -> Option<&'static Directive> {
    let pattern = ["plugin_opt_", "auth_opt_"]
        .into_iter()
        .find(|prefix| name.len() > prefix.len() && name.starts_with(prefix))
        .map_or(name, |prefix| {
            if prefix == "plugin_opt_" {
                "plugin_opt_*"
            } else {
                "auth_opt_*"
            }
        });
    all().find(|directive| directive.name == pattern)
}

/// The known directive closest to a misspelt `name`, if one is close enough to be a typo.
pub(super) fn suggest(name: &str) -> Option<&'static str> {
    // No known name is this long; comparing would only cost time.
    if name.len() > 64 {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let len = name.chars().count();
    let max_distance = (len / 4).clamp(1, 3);
    all()
        .map(|directive| directive.name)
        .filter(|known| !known.ends_with('*'))
        // The distance is at least the difference in length (known names are ASCII): most
        // names need no comparison, which matters for a file full of unknown lines.
        .filter(|known| known.len().abs_diff(len) <= max_distance)
        .filter_map(|known| Some((edit_distance_within(&lower, known, max_distance)?, known)))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// The Levenshtein distance between two strings, by characters.
#[cfg(test)]
fn edit_distance(a: &str, b: &str) -> usize {
    edit_distance_within(a, b, usize::MAX).unwrap_or(usize::MAX)
}

/// The Levenshtein distance between two strings, by characters, or `None` once it is sure to be
/// more than `limit`. Two rows for the whole comparison, and it stops at the first row whose
/// every entry is past the limit, so dissimilar names cost a few rows.
fn edit_distance_within(a: &str, b: &str, limit: usize) -> Option<usize> {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        let mut left = i + 1;
        if let Some(first) = current.first_mut() {
            *first = left;
        }
        let mut row_min = left;
        for ((above, cb), cell) in previous.windows(2).zip(&b).zip(current.iter_mut().skip(1)) {
            let (diagonal, up) = (above[0], above[1]);
            left = (diagonal + usize::from(ca != *cb)).min(up + 1).min(left + 1);
            *cell = left;
            row_min = row_min.min(left);
        }
        if row_min > limit {
            return None;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous.last().copied().filter(|&distance| distance <= limit)
}

/// A directive Midge acts on.
const fn supported(name: &'static str, scope: Scope, apply: Apply) -> Directive {
    Directive {
        name,
        scope,
        support: Support::Supported,
        apply,
    }
}

/// A directive Midge checks and reports but does not act on yet.
const fn not_yet(name: &'static str, scope: Scope, area: Area, apply: Apply) -> Directive {
    Directive {
        name,
        scope,
        support: Support::NotYet(area),
        apply,
    }
}

/// A directive Midge checks and refuses to start with, for `reason`.
const fn never(name: &'static str, scope: Scope, reason: &'static str, apply: Apply) -> Directive {
    Directive {
        name,
        scope,
        support: Support::Never(reason),
        apply,
    }
}

/// A directive Midge checks and ignores.
const fn no_effect(name: &'static str, scope: Scope, reason: &'static str, apply: Apply) -> Directive {
    Directive {
        name,
        scope,
        support: Support::NoEffect(reason),
        apply,
    }
}

/// Checks a boolean value.
fn flag(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::boolean(args.value()?)?;
    Ok(())
}

/// Checks a whole-number value.
fn whole_number(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::integer(args.value()?)?;
    Ok(())
}

/// Checks a non-negative whole-number value.
fn count(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::integer_in(args.value()?, 0, i64::MAX)?;
    Ok(())
}

/// Checks a value from 0 to 65535.
fn count_u16(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::integer_in(args.value()?, 0, u16::MAX.into())?;
    Ok(())
}

/// Checks that a string value (a path, a name, free text up to the end of the line) is there.
fn text(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.string_value(args)?;
    Ok(())
}

/// Accepts anything, even nothing: for directives Mosquitto itself ignores.
fn anything(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    args.rest_of_line().ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for directive in all() {
            assert!(seen.insert(directive.name), "{} is listed twice", directive.name);
        }
    }

    #[test]
    fn plugin_options_match_by_prefix() {
        assert_eq!(
            find("plugin_opt_config_file").map(|d| d.name),
            Some("plugin_opt_*")
        );
        assert_eq!(find("auth_opt_db_host").map(|d| d.name), Some("auth_opt_*"));
        assert!(find("plugin_opt_").is_none());
        assert!(find("plugin_opt_*").is_some_and(|d| d.name == "plugin_opt_*"));
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("max_inflight_mesages"), Some("max_inflight_messages"));
        assert_eq!(suggest("Listener"), Some("listener"));
        assert_eq!(suggest("alow_anonymous"), Some("allow_anonymous"));
        assert_eq!(suggest("frobnicate"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance_within("kitten", "sitting", 3), Some(3));
        assert_eq!(edit_distance_within("kitten", "sitting", 2), None);
        assert_eq!(edit_distance_within("zzzzzzzz", "listener", 3), None);
    }

    /// Skipping names of a different length must not change which name is suggested: compare
    /// with every distance computed, for one-edit typos of every directive.
    #[test]
    fn suggestions_are_the_nearest_name_within_reach() {
        let names: Vec<&str> = all().map(|d| d.name).filter(|n| !n.ends_with('*')).collect();
        for name in &names {
            let typos = [
                name[1..].to_owned(),
                format!("{name}x"),
                format!("x{}", &name[1..]),
                name.replacen('_', "", 1),
            ];
            for typo in typos {
                let reach = (typo.chars().count() / 4).clamp(1, 3);
                let nearest = names.iter().map(|known| edit_distance(&typo, known)).min();
                match suggest(&typo) {
                    Some(found) => assert_eq!(Some(edit_distance(&typo, found)), nearest, "{typo}"),
                    None => assert!(nearest.is_none_or(|d| d > reach), "{typo}"),
                }
            }
        }
    }
}
