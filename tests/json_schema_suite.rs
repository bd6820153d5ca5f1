//! The official JSON Schema Test Suite, draft 2020-12 (every file of
//! `tests/draft2020-12/`, not `optional/`), through the compile and validate
//! functions the gateway runs (`config::schema`), with the gateway's settings: no
//! schema is ever loaded from a URL, formats are annotations.
//!
//! Every case must give the suite's answer, except the cases listed in
//! [`KNOWN_FAILING`] with their reason; a listed case that starts passing fails
//! the test too, so the list stays exact. The pass rate is printed and is the
//! figure the README gives.

use std::collections::BTreeMap;
use std::path::Path;

use edge_gateway::config::schema;
use serde_json::Value;

const SUITE: &str = "tests/json-schema-test-suite/draft2020-12";

/// `file: group description` -> why the gateway answers otherwise. A whole group
/// fails when its schema does not compile here.
const KNOWN_FAILING: &[(&str, &str)] = &[
    (
        "dynamicRef.json: $ref and $dynamicAnchor are independent of order - $defs first",
        REMOTE,
    ),
    (
        "dynamicRef.json: $ref and $dynamicAnchor are independent of order - $ref first",
        REMOTE,
    ),
    (
        "dynamicRef.json: $ref to $dynamicRef finds detached $dynamicAnchor",
        REMOTE,
    ),
    (
        "dynamicRef.json: strict-tree schema, guards against misspelled properties",
        REMOTE,
    ),
    (
        "dynamicRef.json: tests for implementation dynamic anchor and reference link",
        REMOTE,
    ),
    (
        "refRemote.json: $ref to $ref finds detached $anchor",
        REMOTE,
    ),
    (
        "refRemote.json: Location-independent identifier in remote ref",
        REMOTE,
    ),
    ("refRemote.json: anchor within remote ref", REMOTE),
    ("refRemote.json: base URI change", REMOTE),
    ("refRemote.json: base URI change - change folder", REMOTE),
    (
        "refRemote.json: base URI change - change folder in subschema",
        REMOTE,
    ),
    ("refRemote.json: fragment within remote ref", REMOTE),
    ("refRemote.json: ref within remote ref", REMOTE),
    ("refRemote.json: remote HTTP ref with different $id", REMOTE),
    (
        "refRemote.json: remote HTTP ref with different URN $id",
        REMOTE,
    ),
    (
        "refRemote.json: remote HTTP ref with nested absolute ref",
        REMOTE,
    ),
    ("refRemote.json: remote ref", REMOTE),
    ("refRemote.json: remote ref with ref to defs", REMOTE),
    (
        "refRemote.json: retrieved nested refs resolve relative to their URI not $id",
        REMOTE,
    ),
    ("refRemote.json: root ref in remote ref", REMOTE),
    (
        "vocabulary.json: ignore unrecognized optional vocabulary",
        REMOTE,
    ),
    (
        "vocabulary.json: schema that uses custom metaschema with with no validation vocabulary",
        REMOTE,
    ),
];

/// The gateway never loads a schema from a URL: these groups `$ref` (or take their
/// metaschema from) documents the suite serves at http://localhost:1234/.
const REMOTE: &str = "remote schema, never loaded";

#[test]
fn draft_2020_12_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(SUITE);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the suite's files are missing");
    let known: BTreeMap<&str, &str> = KNOWN_FAILING.iter().copied().collect();
    let (mut cases, mut passed) = (0usize, 0usize);
    let mut failing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let groups: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for group in &groups {
            let name = format!("{file}: {}", group["description"].as_str().unwrap());
            let compiled = schema::compile(&group["schema"]);
            for case in group["tests"].as_array().unwrap() {
                cases += 1;
                let want = case["valid"].as_bool().unwrap();
                let outcome = match &compiled {
                    Ok(s) => {
                        let got = s.is_valid(&case["data"]);
                        // `errors` agrees with `is_valid`, and names where.
                        assert_eq!(s.errors(&case["data"]).is_empty(), got, "{name}");
                        (got == want)
                            .then_some(())
                            .ok_or("wrong answer".to_string())
                    }
                    Err(e) => Err(format!("does not compile: {e}")),
                };
                match outcome {
                    Ok(()) => passed += 1,
                    Err(why) => failing
                        .entry(name.clone())
                        .or_default()
                        .push(format!("{} ({why})", case["description"].as_str().unwrap())),
                }
            }
        }
    }
    let rate = 100.0 * passed as f64 / cases as f64;
    println!(
        "JSON Schema Test Suite draft 2020-12: {passed} of {cases} cases pass ({rate:.2}%), {} files",
        files.len()
    );
    // The listed groups fail for their reason, not another.
    for (group, cases) in &failing {
        if known.get(group.as_str()) == Some(&REMOTE) {
            for case in cases {
                assert!(
                    case.contains("http://localhost:1234/") && case.contains("is not loaded"),
                    "{group}: {case}"
                );
            }
        }
    }
    let remote: usize = failing
        .iter()
        .filter(|(g, _)| known.get(g.as_str()) == Some(&REMOTE))
        .map(|(_, c)| c.len())
        .sum();
    println!(
        "  without the {remote} cases that need a remote schema: {passed} of {} ({:.2}%)",
        cases - remote,
        100.0 * passed as f64 / (cases - remote) as f64
    );
    let unexpected: Vec<String> = failing
        .iter()
        .filter(|(g, _)| !known.contains_key(g.as_str()))
        .map(|(g, cases)| format!("{g}: {cases:?}"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "failing, not listed:\n{}",
        unexpected.join("\n")
    );
    let fixed: Vec<&&str> = known
        .keys()
        .filter(|g| !failing.contains_key(**g))
        .collect();
    assert!(fixed.is_empty(), "listed as failing but passing: {fixed:?}");
}
