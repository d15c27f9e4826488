//! Logging directives. `log_dest` and `log_type` name one value per line and accumulate.

use std::path::PathBuf;

use super::{Area, Directive, Scope, count_u16, not_yet, supported};
use crate::config::logging::{LogDestinations, LogFormat, LogType, LogTypes};
use crate::config::parser::{Failure, Parser, Target};
use crate::config::value::{self, Args};
use crate::config::{NoticeKind, Problem};

use Scope::Broker;

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    supported("log_dest", Broker, log_dest),
    supported("log_type", Broker, log_type),
    supported("log_timestamp", Broker, log_timestamp),
    supported("log_timestamp_format", Broker, log_timestamp_format),
    supported("connection_messages", Broker, connection_messages),
    supported("log_facility", Broker, log_facility),
    supported("log_format", Broker, log_format),
    not_yet("websockets_log_level", Broker, Area::Websockets, count_u16),
];

fn log_dest(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = args.value()?;
    if name == "file" {
        let path = match parser.string_value(args) {
            Ok(path) => path,
            Err(Problem::MissingValue) => return Err(Problem::expected("a path after \"file\"", "").into()),
            Err(problem) => return Err(problem.into()),
        };
        if let Some(first) = parser.log_file_at.clone() {
            return Err(Problem::Duplicate {
                what: "\"log_dest file\"".into(),
                first,
            }
            .into());
        }
        parser.log_file_at = Some(parser.file.at.clone());
        parser.log_dest.get_or_insert(LogDestinations::NONE).file = Some(PathBuf::from(path));
        return Ok(());
    }
    let not_yet = match name {
        "dlt" | "android" => Some(Area::Other),
        "topic" => Some(Area::Sys),
        _ => None,
    };
    let dest = parser.log_dest.get_or_insert(LogDestinations::NONE);
    match name {
        "none" => *dest = LogDestinations::NONE,
        "stdout" => dest.stdout = true,
        "stderr" => dest.stderr = true,
        "syslog" => dest.syslog = true,
        "topic" => dest.topic = true,
        "dlt" => dest.dlt = true,
        "android" => dest.android = true,
        _ => {
            let what = "stdout, stderr, file PATH, syslog, topic, dlt, android or none";
            return Err(Problem::expected(what, name).into());
        }
    }
    if let Some(area) = not_yet {
        parser.notice(NoticeKind::NotSupportedYet { area });
    }
    Ok(())
}

fn log_type(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let name = args.value()?;
    let types = parser.log_type.get_or_insert(LogTypes::NONE);
    match name {
        "none" => *types = LogTypes::NONE,
        "all" => *types = LogTypes::ALL,
        _ => match LogType::from_name(name) {
            Some(kind) => types.insert(kind),
            None => {
                let what = "error, warning, notice, information, debug, subscribe, unsubscribe, websockets, all \
                            or none";
                return Err(Problem::expected(what, name).into());
            }
        },
    }
    Ok(())
}

fn log_timestamp(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.log.log_timestamp = value::boolean(args.value()?)?;
    Ok(())
}

fn log_timestamp_format(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let format = args.rest_of_line()?;
    parser.set_once(Target::Broker);
    parser.config.log.log_timestamp_format = Some(format.to_owned());
    Ok(())
}

fn connection_messages(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.log.connection_messages = value::boolean(args.value()?)?;
    Ok(())
}

/// `log_facility N`: syslog's `localN`, 0 to 7.
fn log_facility(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let n: u8 = value::number(args.value()?, 0, 7)?;
    parser.config.log.log_facility = Some(n);
    Ok(())
}

/// `log_format text|json`, a Midge extension.
fn log_format(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.log.log_format = match args.value()? {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(Problem::expected("text or json", other).into()),
    };
    Ok(())
}
