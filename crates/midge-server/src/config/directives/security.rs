//! Authentication and access-control directives, and plugins. Their scope is the broker, or the
//! current listener with `per_listener_settings true` (see `Parser::security`).

use std::path::PathBuf;

use super::{Area, Directive, Scope, flag, never, not_yet, supported, text};
use crate::config::parser::{Failure, Parser};
use crate::config::value::{self, Args};

use Scope::{Broker, Listener, PluginOption, Security};

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    supported("allow_anonymous", Security, allow_anonymous),
    supported("allow_zero_length_clientid", Security, allow_zero_length_clientid),
    supported("auto_id_prefix", Security, auto_id_prefix),
    supported("listener_allow_anonymous", Listener, listener_allow_anonymous),
    supported("listener_auto_id_prefix", Listener, listener_auto_id_prefix),
    supported("password_file", Security, password_file),
    supported("acl_file", Security, acl_file),
    supported("scram_file", Security, scram_file),
    never("psk_file", Security, super::tls::NO_PSK, security_file),
    not_yet("plugin", Security, Area::Security, plugin),
    not_yet("auth_plugin", Security, Area::Security, plugin),
    not_yet("global_plugin", Broker, Area::Security, global_plugin),
    not_yet("plugin_opt_*", PluginOption, Area::Security, plugin_option),
    not_yet("auth_opt_*", PluginOption, Area::Security, plugin_option),
    not_yet("auth_plugin_deny_special_chars", PluginOption, Area::Security, flag),
    not_yet("check_retain_source", Broker, Area::Security, check_retain_source),
    not_yet("clientid_prefixes", Broker, Area::Security, text),
    not_yet("enable_control_api", Broker, Area::Security, flag),
];

fn allow_anonymous(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let allow = value::boolean(args.value()?)?;
    parser.security().allow_anonymous = Some(allow);
    Ok(())
}

fn allow_zero_length_clientid(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let allow = value::boolean(args.value()?)?;
    parser.security().allow_zero_length_clientid = Some(allow);
    Ok(())
}

fn auto_id_prefix(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let prefix = parser.string_value(args)?.to_owned();
    let target = parser.security_target();
    parser.set_once(target);
    parser.security().auto_id_prefix = Some(prefix);
    Ok(())
}

fn listener_allow_anonymous(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.require_listener()?;
    let allow = value::boolean(args.value()?)?;
    parser.current_listener().allow_anonymous = Some(allow);
    Ok(())
}

fn listener_auto_id_prefix(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.require_listener()?;
    let prefix = parser.string_value(args)?.to_owned();
    let target = parser.listener_target();
    parser.set_once(target);
    parser.current_listener().auto_id_prefix = Some(prefix);
    Ok(())
}

/// `password_file`: a path, in the security scope.
fn password_file(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = PathBuf::from(parser.string_value(args)?);
    let target = parser.security_target();
    parser.set_once(target);
    parser.security().password_file = Some(path);
    Ok(())
}

/// `acl_file`: a path, in the security scope.
fn acl_file(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = PathBuf::from(parser.string_value(args)?);
    let target = parser.security_target();
    parser.set_once(target);
    parser.security().acl_file = Some(path);
    Ok(())
}

/// `scram_file`: a path, in the security scope (Midge's own: SCRAM verifiers for enhanced
/// authentication).
fn scram_file(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    let path = PathBuf::from(parser.string_value(args)?);
    let target = parser.security_target();
    parser.set_once(target);
    parser.security().scram_file = Some(path);
    Ok(())
}

/// `psk_file`: a path, in the security scope.
fn security_file(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.string_value(args)?;
    let target = parser.security_target();
    parser.set_once(target);
    parser.security();
    Ok(())
}

/// `plugin PATH` (and the older `auth_plugin`): starts a block for `plugin_opt_*` lines.
fn plugin(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.string_value(args)?;
    parser.security();
    parser.file.plugin = true;
    Ok(())
}

/// `global_plugin PATH` (Mosquitto 2.1): a plugin for the whole broker whatever the scope.
fn global_plugin(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    parser.string_value(args)?;
    parser.file.plugin = true;
    Ok(())
}

/// `plugin_opt_KEY VALUE`: the value runs to the end of the line and must be there.
fn plugin_option(_: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    args.rest_of_line()?;
    Ok(())
}

/// Stored broker-wide, but Mosquitto counts it as a security option for `per_listener_settings`.
fn check_retain_source(parser: &mut Parser, args: &mut Args<'_>) -> Result<(), Failure> {
    value::boolean(args.value()?)?;
    parser.security();
    Ok(())
}
