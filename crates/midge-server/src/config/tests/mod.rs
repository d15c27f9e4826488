//! Tests of the mosquitto.conf parser, by theme: a realistic configuration end to end, every
//! kind of bad line with its exact message, notices, scope rules, and random input.

use std::path::Path;

use super::{Config, ConfigError};

mod cluster;
mod docs;
mod errors;
mod notices;
mod random;
mod real_world;
mod scope;
mod values;

/// Parses text that must be accepted.
fn parse(text: &str) -> Config {
    match Config::parse_str(text, "test.conf") {
        Ok(config) => config,
        Err(error) => panic!("unexpected error: {error}\n--- input ---\n{text}"),
    }
}

/// The message of the error that text must cause.
fn error(text: &str) -> String {
    match Config::parse_str(text, "test.conf") {
        Ok(config) => panic!("accepted: {config:#?}\n--- input ---\n{text}"),
        Err(error) => error.to_string(),
    }
}

/// The notices of text that must be accepted, as displayed.
fn notices(text: &str) -> Vec<String> {
    parse(text).notices.iter().map(ToString::to_string).collect()
}

/// Loads a file that must fail, and returns the error.
fn load_error(path: &Path) -> ConfigError {
    match Config::load(path) {
        Ok(config) => panic!("accepted: {config:#?}"),
        Err(error) => error,
    }
}
