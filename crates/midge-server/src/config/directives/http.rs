//! The HTTP listener's directives (Midge's own): `http_listener` opens the HTTP API, `/metrics`
//! and the web view (docs/http-api.md); the others say who may use it and how it is encrypted.
//! Broker-wide: there is one HTTP listener.

use std::path::PathBuf;

use super::{Directive, Scope, supported};
use crate::config::http::HttpListener;
use crate::config::parser::{Failure, Parser, Target};
use crate::config::value::{self, Args};
use crate::config::{ListenerAddress, Problem};

use Scope::Broker;

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    supported("http_listener", Broker, http_listener),
    supported("http_auth_token", Broker, http_auth_token),
    supported("http_password_file", Broker, http_password_file),
    supported("http_allow_anonymous", Broker, http_allow_anonymous),
    supported("http_certfile", Broker, http_certfile),
    supported("http_keyfile", Broker, http_keyfile),
    supported("http_log_lines", Broker, http_log_lines),
];

/// `http_listener PORT [ADDRESS]`: one per broker.
fn http_listener(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let port = value::port(args.value()?)?;
    let bind = args.next().map(value::bind_address).transpose()?;
    if let Some(first) = &parser.config.http.listener {
        return Err(Problem::Duplicate {
            what: "http_listener".into(),
            first: first.at.clone(),
        }
        .into());
    }
    // The same port as an MQTT listener on the same address could never be bound.
    let clash = ListenerAddress::Tcp {
        port,
        bind: bind.clone(),
    };
    if port != 0
        && let Some(first) = crate::config::parser::duplicate_of(&clash, &parser.listeners)
    {
        return Err(Problem::DuplicateListener {
            address: clash.to_string(),
            first,
        }
        .into());
    }
    parser.config.http.listener = Some(HttpListener {
        port,
        bind,
        at: parser.file.at.clone(),
    });
    Ok(())
}

/// `http_auth_token TOKEN`: each line adds a token. At least 16 characters, without spaces,
/// so that a placeholder such as `changeme` is refused rather than trusted.
fn http_auth_token(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let token = args.value()?;
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::expected("a token of at least 16 printable characters", token).into());
    }
    parser.config.http.auth_tokens.push(token.to_owned());
    Ok(())
}

fn http_password_file(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = PathBuf::from(parser.string_value(args)?);
    parser.set_once(Target::Broker);
    parser.config.http.password_file = Some(path);
    Ok(())
}

fn http_allow_anonymous(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.http.allow_anonymous = Some(value::boolean(args.value()?)?);
    Ok(())
}

fn http_certfile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = PathBuf::from(parser.string_value(args)?);
    parser.set_once(Target::Broker);
    parser.config.http.certfile = Some(path);
    Ok(())
}

fn http_keyfile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = PathBuf::from(parser.string_value(args)?);
    parser.set_once(Target::Broker);
    parser.config.http.keyfile = Some(path);
    Ok(())
}

/// `http_log_lines N`: 0 keeps none (the log endpoint then answers with an empty list).
fn http_log_lines(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.config.http.log_lines = value::number(args.value()?, 0, 1_000_000)?;
    Ok(())
}
