//! TLS listener directives. Midge's TLS is rustls, so what needs OpenSSL (engines, DH
//! parameters) or TLS-PSK cannot be honoured: those are refused at start with the reason rather
//! than ignored, because a listener the user believes protected must not open without it.

use std::path::PathBuf;

use super::{Directive, Scope, flag, never, supported, text};
use crate::config::TlsVersion;
use crate::config::parser::{Failure, Parser};
use crate::config::value::{self, Args};

use Scope::Listener;

pub(super) const NO_PSK: &str = "rustls, Midge's TLS library, has no TLS-PSK; use certificates";
const NO_ENGINE: &str = "rustls, Midge's TLS library, has no OpenSSL engines; keep keys in PEM files";

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    supported("cafile", Listener, cafile),
    supported("capath", Listener, capath),
    supported("certfile", Listener, certfile),
    supported("keyfile", Listener, keyfile),
    supported("crlfile", Listener, crlfile),
    supported("dhparamfile", Listener, dhparamfile),
    supported("ciphers", Listener, ciphers),
    supported("ciphers_tls1.3", Listener, ciphers_tls13),
    supported("tls_version", Listener, tls_version),
    supported("require_certificate", Listener, require_certificate),
    supported("use_identity_as_username", Listener, use_identity_as_username),
    supported("use_subject_as_username", Listener, use_subject_as_username),
    never("tls_engine", Listener, NO_ENGINE, text),
    never("tls_engine_kpass_sha1", Listener, NO_ENGINE, text),
    supported("tls_keyform", Listener, tls_keyform),
    never("psk_hint", Listener, NO_PSK, text),
    never("disable_client_cert_date_checks", Listener,
        "rustls always checks the validity dates of client certificates", flag),
];

/// The value of a path directive, marking the current listener as a TLS listener (Mosquitto
/// opens the default listener for any TLS option, whatever its value).
fn path_value(parser: &mut Parser, args: &mut Args<'_>) -> Result<PathBuf, Failure> {
    let path = PathBuf::from(parser.string_value(args)?);
    parser.listener_option(true);
    let target = parser.listener_target();
    parser.set_once(target);
    Ok(path)
}

fn cafile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = path_value(parser, args)?;
    parser.current_listener().listener.tls.cafile = Some(path);
    Ok(())
}

fn capath(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = path_value(parser, args)?;
    parser.current_listener().listener.tls.capath = Some(path);
    Ok(())
}

fn certfile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = path_value(parser, args)?;
    parser.current_listener().listener.tls.certfile = Some(path);
    Ok(())
}

fn keyfile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = path_value(parser, args)?;
    parser.current_listener().listener.tls.keyfile = Some(path);
    Ok(())
}

fn crlfile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = path_value(parser, args)?;
    parser.current_listener().listener.tls.crlfile = Some(path);
    Ok(())
}

/// `dhparamfile`: rustls offers only (EC)DHE key exchange with named groups, for which DH
/// parameters mean nothing; the file is checked to exist so a typo still shows.
fn dhparamfile(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    path_value(parser, args)?;
    parser.notice(crate::config::NoticeKind::Ignored {
        reason: "rustls uses only named (EC)DHE groups; DH parameters are not needed",
    });
    Ok(())
}

fn ciphers(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let list = parser.string_value(args)?.to_owned();
    parser.listener_option(true);
    parser.current_listener().listener.tls.ciphers = Some(list);
    Ok(())
}

fn ciphers_tls13(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let list = parser.string_value(args)?.to_owned();
    parser.listener_option(true);
    parser.current_listener().listener.tls.ciphers_tls13 = Some(list);
    Ok(())
}

/// `tls_version tlsv1.3|tlsv1.2|tlsv1.1|tlsv1`: the lowest version accepted.
fn tls_version(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let choices = [
        ("tlsv1.3", TlsVersion::V1_3),
        ("tlsv1.2", TlsVersion::V1_2),
        ("tlsv1.1", TlsVersion::V1_1),
        ("tlsv1", TlsVersion::V1_0),
    ];
    let version = value::choice(args.value()?, "tlsv1.3, tlsv1.2, tlsv1.1 or tlsv1", &choices)?;
    parser.listener_option(true);
    parser.current_listener().listener.tls.min_version = Some(version);
    Ok(())
}

fn require_certificate(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let on = value::boolean(args.value()?)?;
    parser.listener_option(true);
    parser.current_listener().listener.tls.require_certificate = on;
    Ok(())
}

fn use_identity_as_username(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let on = value::boolean(args.value()?)?;
    parser.listener_option(true);
    parser.current_listener().listener.tls.use_identity_as_username = on;
    Ok(())
}

fn use_subject_as_username(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let on = value::boolean(args.value()?)?;
    parser.listener_option(true);
    parser.current_listener().listener.tls.use_subject_as_username = on;
    Ok(())
}

/// `tls_keyform pem|engine`: PEM is what Midge reads; `engine` needs OpenSSL.
fn tls_keyform(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let engine = value::choice(
        args.value()?,
        "pem or engine",
        &[("pem", false), ("engine", true)],
    )?;
    parser.listener_option(true);
    if engine {
        parser.notice(crate::config::NoticeKind::CannotHonour { reason: NO_ENGINE });
    }
    Ok(())
}
