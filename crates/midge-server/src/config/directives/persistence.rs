//! Persistence directives: all known, none supported yet. Midge will keep its own durable format
//! (see `shared/reference/mosquitto.md`); these say whether and where.

use super::{Area, Directive, Scope, flag, not_yet, text, whole_number};

const fn persistence(name: &'static str, apply: super::Apply) -> Directive {
    not_yet(name, Scope::Broker, Area::Persistence, apply)
}

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    persistence("persistence", flag),
    persistence("persistence_file", text),
    persistence("persistence_location", text),
    // Mosquitto reads a negative interval as 0.
    persistence("autosave_interval", whole_number),
    persistence("autosave_on_changes", flag),
];
