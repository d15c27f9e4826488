//! Keeps `docs/conformance.md` true. Every test the table names as `path::name` must still be a
//! `fn` (Rust) or `def` (Python) in that file; every malformed-input catalogue case it quotes must
//! still be in the catalogue; the MQTT 5.0 rows must be in specification order, each with a known
//! duty and status, every `covered` row naming a test; and the summary's totals must be the
//! rows' totals. It reads a few dozen files and runs in milliseconds.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOC: &str = "docs/conformance.md";
const CATALOGUE: &str = "crates/midge-codec/tests/malformed.rs";
/// Where the MQTT 5.0 part of the document ends.
const V311_HEADING: &str = "## MQTT 3.1.1";
const DUTIES: [&str; 5] = [
    "server",
    "both",
    "client",
    "client (server enforces)",
    "client (server parses)",
];
/// Each status with the label the summary table gives its total.
const STATUSES: [(&str, &str); 3] = [
    ("covered", "covered"),
    ("n/a", "not applicable"),
    ("not covered", "not covered"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The inline code spans of a piece of markdown (the document has no fenced blocks).
fn code_spans(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// A span naming a test: `path/to/file.rs::name` or `path/to/file.py::name`.
fn test_reference(span: &str) -> Option<(&str, &str)> {
    let (path, name) = span.split_once("::")?;
    let is_test_file = path.ends_with(".rs") || path.ends_with(".py");
    let is_name = !name.is_empty() && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
    (is_test_file && is_name).then_some((path, name))
}

/// A span quoting a catalogue case: `"[MQTT-3.1.2-3] reserved CONNECT flag"`.
fn catalogue_case(span: &str) -> Option<&str> {
    (span.len() > 2 && span.starts_with('"') && span.ends_with('"')).then_some(span)
}

/// The cells of a table row of the MQTT 5.0 part, or `None` for any other line.
fn statement_row(line: &str) -> Option<Vec<&str>> {
    if !line.starts_with("| [MQTT-") {
        return None;
    }
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    assert_eq!(cells.len(), 7, "a row has five cells: {line}");
    Some(cells[1..6].to_vec())
}

/// `[MQTT-3.10.4-2]` as `[3, 10, 4, 2]`, which sorts in specification order.
fn statement_key(id: &str) -> Vec<u32> {
    let inner = id
        .strip_prefix("[MQTT-")
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a statement identifier: {id}"));
    inner
        .split(['.', '-'])
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("not a statement identifier: {id}"))
        })
        .collect()
}

fn v5_part(doc: &str) -> &str {
    doc.split_once(V311_HEADING).map_or(doc, |(v5, _)| v5)
}

#[test]
fn every_test_the_conformance_table_names_exists() {
    let doc = read(DOC);
    let mut files: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let mut missing = BTreeSet::new();
    let mut checked = 0;
    for (path, name) in code_spans(&doc).filter_map(test_reference) {
        checked += 1;
        let text = files
            .entry(path)
            .or_insert_with(|| std::fs::read_to_string(root().join(path)).ok());
        let Some(text) = text else {
            missing.insert(format!("{path}::{name}: no file {path}"));
            continue;
        };
        let definition = if path.ends_with(".py") {
            format!("def {name}(")
        } else {
            format!("fn {name}(")
        };
        if !text.contains(&definition) {
            missing.insert(format!("{path}::{name}: no `{definition}` in {path}"));
        }
    }
    assert!(
        checked >= 200,
        "only {checked} test references found in {DOC}: has its format changed?"
    );
    assert!(
        missing.is_empty(),
        "{DOC} names tests that do not exist (renamed or removed? update the table):\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_catalogue_case_the_conformance_table_quotes_exists() {
    let doc = read(DOC);
    let catalogue = read(CATALOGUE);
    let cases: Vec<&str> = code_spans(&doc).filter_map(catalogue_case).collect();
    assert!(
        cases.len() >= 40,
        "only {} catalogue cases quoted in {DOC}: has its format changed?",
        cases.len()
    );
    let missing: Vec<&&str> = cases.iter().filter(|c| !catalogue.contains(**c)).collect();
    assert!(
        missing.is_empty(),
        "{DOC} quotes catalogue cases that {CATALOGUE} no longer has: {missing:?}"
    );
}

#[test]
fn the_mqtt_5_rows_are_in_specification_order_and_add_up_to_the_summary() {
    let doc = read(DOC);
    let v5 = v5_part(&doc);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut previous: Option<(Vec<u32>, &str)> = None;
    let mut problems = Vec::new();
    for row in v5.lines().filter_map(statement_row) {
        let [id, says, duty, status, checked_by] = row[..] else {
            unreachable!("five cells")
        };
        let key = statement_key(id);
        if let Some((before, before_id)) = &previous
            && *before >= key
        {
            problems.push(format!("{id} comes after {before_id}: out of order or repeated"));
        }
        previous = Some((key, id));
        if says.is_empty() {
            problems.push(format!("{id}: says nothing"));
        }
        if !DUTIES.contains(&duty) {
            problems.push(format!("{id}: unknown duty {duty:?}"));
        }
        let Some((_, label)) = STATUSES.iter().find(|(s, _)| *s == status) else {
            problems.push(format!("{id}: unknown status {status:?}"));
            continue;
        };
        *counts.entry(label).or_default() += 1;
        if (duty == "client") != (status == "n/a") {
            problems.push(format!(
                "{id}: only a client-only duty is n/a (duty {duty:?}, status {status:?})"
            ));
        }
        let names_a_check = code_spans(checked_by)
            .any(|span| test_reference(span).is_some() || catalogue_case(span).is_some());
        if status == "covered" && !names_a_check {
            problems.push(format!("{id}: covered, but names no test"));
        }
    }
    assert!(
        problems.is_empty(),
        "{DOC}: MQTT 5.0 table:\n{}",
        problems.join("\n")
    );

    // The summary table: `| covered | 147 |` and so on, and `| total | 235 |`.
    let mut summary: BTreeMap<&str, usize> = BTreeMap::new();
    for line in v5.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, label, number, _] = cells[..]
            && let Ok(number) = number.parse::<usize>()
        {
            summary.insert(label, number);
        }
    }
    let total: usize = counts.values().sum();
    assert!(total >= 200, "only {total} MQTT 5.0 rows in {DOC}");
    for (_, label) in STATUSES {
        assert_eq!(
            summary.get(label).copied(),
            Some(counts.get(label).copied().unwrap_or(0)),
            "{DOC}: the summary's \"{label}\" is not the number of rows with that status"
        );
    }
    assert_eq!(
        summary.get("total").copied(),
        Some(total),
        "{DOC}: the summary's total is not the number of rows"
    );
}
