//! Persistence directives: whether and where the broker keeps its state on disk, and (a Midge
//! extension) how often the store is synced. Mosquitto's autosave directives are accepted and
//! have no effect: Midge writes every change ahead of acknowledging it.

use std::path::PathBuf;
use std::time::Duration;

use midge_store::FsyncPolicy;

use super::{Apply, Directive, Scope, flag, no_effect, supported, whole_number};
use crate::config::Problem;
use crate::config::parser::{Failure, Parser, Target};
use crate::config::value::{self, Args};

const WRITE_AHEAD: &str =
    "Midge writes every change to its store before acknowledging it, so periodic saves are not needed";

const fn persistence(name: &'static str, apply: Apply) -> Directive {
    supported(name, Scope::Broker, apply)
}

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    persistence("persistence", enabled),
    persistence("persistence_file", file),
    persistence("persistence_location", location),
    persistence("persistence_fsync", fsync),
    // Mosquitto reads a negative interval as 0.
    no_effect("autosave_interval", Scope::Broker, WRITE_AHEAD, whole_number),
    no_effect("autosave_on_changes", Scope::Broker, WRITE_AHEAD, flag),
];

fn enabled(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.persistence.enabled = value::boolean(args.value()?)?;
    Ok(())
}

fn file(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = parser.string_value(args)?;
    parser.set_once(Target::Broker);
    parser.config.persistence.file = name.to_owned();
    Ok(())
}

fn location(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = parser.string_value(args)?;
    parser.set_once(Target::Broker);
    parser.config.persistence.location = Some(PathBuf::from(path));
    Ok(())
}

/// `persistence_fsync every_batch | interval MS | never` (Midge).
fn fsync(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let mode = args.value()?;
    let policy = match mode {
        "every_batch" => FsyncPolicy::EveryBatch,
        "never" => FsyncPolicy::Never,
        "interval" => {
            let text = args
                .value()
                .map_err(|_| Problem::expected("a number of milliseconds after \"interval\"", ""))?;
            let ms: u64 = value::number(text, 1, 3_600_000)?;
            FsyncPolicy::Interval(Duration::from_millis(ms))
        }
        other => return Err(Problem::expected("every_batch, interval MS or never", other).into()),
    };
    parser.config.persistence.fsync = policy;
    Ok(())
}
