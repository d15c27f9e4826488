//! TLS and TLS-PSK listener directives: all known, none supported yet. A listener given one of
//! them lists [`Area::Tls`] in `Listener::not_supported_yet`, so the runtime can refuse to open
//! in plain text a listener meant to be encrypted.

use super::{Area, Directive, Scope, flag, not_yet, text};

const fn tls(name: &'static str, apply: super::Apply) -> Directive {
    not_yet(name, Scope::Listener, Area::Tls, apply)
}

#[rustfmt::skip]
pub(super) const DIRECTIVES: &[Directive] = &[
    tls("cafile", text),
    tls("capath", text),
    tls("certfile", text),
    tls("keyfile", text),
    tls("crlfile", text),
    tls("dhparamfile", text),
    tls("ciphers", text),
    tls("ciphers_tls1.3", text),
    tls("tls_version", text),
    tls("require_certificate", flag),
    tls("use_identity_as_username", flag),
    tls("use_subject_as_username", flag),
    tls("tls_engine", text),
    tls("tls_engine_kpass_sha1", text),
    tls("tls_keyform", text),
    tls("psk_hint", text),
    tls("disable_client_cert_date_checks", flag),
];
