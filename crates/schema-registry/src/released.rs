//! The contract's schemas checked against the versions already released,
//! kept in the repository, with this registry's own compatibility logic: so
//! an incompatible edit fails CI before any registry sees it.
//!
//! Layout: `schemas/{topic}.avsc` is the schema as it stands; its subject is
//! `{topic}-value` (what provisioning registers it under), and
//! `schemas/released/{subject}/v{N}.avsc` are the versions released so far,
//! v1 first. Each schema must be FULL_TRANSITIVE compatible with every
//! released version of its subject: readers on any released version read
//! data written with it, and it reads data written with any of them.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::Path;

use apache_avro::Schema;

use crate::compatibility::{self, CompatibilityLevel};

/// The level the contract is held to (and that provisioning sets globally).
pub const LEVEL: CompatibilityLevel = CompatibilityLevel::FullTransitive;

/// The outcome for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectCheck {
    pub subject: String,
    /// The released versions found, ascending.
    pub released: Vec<i32>,
    /// Why the schema may not be released as it stands; empty when it may.
    pub problems: Vec<String>,
}

impl SubjectCheck {
    pub fn is_compatible(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for SubjectCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_compatible() {
            write!(f, "{}: INCOMPATIBLE under {LEVEL}", self.subject)?;
            for problem in &self.problems {
                write!(f, "\n  {}: {problem}", self.subject)?;
            }
            return Ok(());
        }
        match self.released.as_slice() {
            [] => write!(f, "{}: new subject, no version released yet", self.subject),
            [only] => write!(f, "{}: compatible with v{only} ({LEVEL})", self.subject),
            [first, .., last] => write!(
                f,
                "{}: compatible with v{first}..v{last} ({LEVEL})",
                self.subject
            ),
        }
    }
}

/// Checks every `*.avsc` in `schemas` against `schemas/released/`, one
/// result per subject (a released subject whose schema file is gone is a
/// problem too), sorted by subject. Fails only when a directory cannot be read.
pub fn check_dir(schemas: &Path) -> std::io::Result<Vec<SubjectCheck>> {
    let mut current = BTreeMap::new();
    for entry in fs::read_dir(schemas)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "avsc")
            && let Some(topic) = path.file_stem().and_then(|stem| stem.to_str())
        {
            current.insert(format!("{topic}-value"), fs::read_to_string(&path)?);
        }
    }
    let released_dir = schemas.join("released");
    let mut released: BTreeMap<String, Vec<(i32, String, String)>> = BTreeMap::new();
    if released_dir.is_dir() {
        for subject in fs::read_dir(&released_dir)? {
            let subject = subject?;
            if !subject.file_type()?.is_dir() {
                continue;
            }
            let name = subject.file_name().to_string_lossy().into_owned();
            let versions = released.entry(name).or_default();
            for file in fs::read_dir(subject.path())? {
                let path = file?.path();
                let file_name = path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let version = file_name
                    .strip_prefix('v')
                    .and_then(|rest| rest.strip_suffix(".avsc"))
                    .and_then(|number| number.parse::<i32>().ok());
                match version {
                    Some(version) => {
                        versions.push((version, file_name, fs::read_to_string(&path)?));
                    }
                    None => versions.push((0, file_name, String::new())),
                }
            }
            versions.sort_by_key(|(version, _, _)| *version);
        }
    }
    let subjects: std::collections::BTreeSet<&String> =
        current.keys().chain(released.keys()).collect();
    Ok(subjects
        .into_iter()
        .map(|subject| {
            check_subject(
                subject,
                current.get(subject).map(String::as_str),
                released.get(subject).map(Vec::as_slice).unwrap_or(&[]),
            )
        })
        .collect())
}

fn check_subject(
    subject: &str,
    current: Option<&str>,
    released: &[(i32, String, String)],
) -> SubjectCheck {
    let mut problems = Vec::new();
    let mut existing = Vec::new();
    for (index, (version, file_name, text)) in released.iter().enumerate() {
        let expected = i32::try_from(index + 1).unwrap_or(i32::MAX);
        if *version != expected {
            problems.push(format!(
                "released/{subject}/{file_name}: expected v{expected}.avsc (versions are v1, v2, ... without gaps)"
            ));
            continue;
        }
        match Schema::parse_str(text) {
            Ok(schema) => existing.push((*version, schema)),
            Err(error) => problems.push(format!(
                "released/{subject}/{file_name} does not parse: {error}"
            )),
        }
    }
    let versions = existing.iter().map(|(version, _)| *version).collect();
    match current {
        None => problems.push(format!(
            "released, but its schema ({}.avsc) is gone: producers and consumers of released versions still exist",
            subject.trim_end_matches("-value")
        )),
        Some(text) => match Schema::parse_str(text) {
            Err(error) => problems.push(format!("the schema does not parse: {error}")),
            Ok(candidate) => {
                problems.extend(
                    compatibility::check(LEVEL, &candidate, &existing)
                        .into_iter()
                        .map(|problem| {
                            format!("against v{}: {}", problem.existing_version, problem.message)
                        }),
                );
            }
        },
    }
    SubjectCheck {
        subject: subject.to_owned(),
        released: versions,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn repository_schemas() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
    }

    /// A copy of the repository's schemas/ (with released/) to break.
    fn copy() -> tempfile::TempDir {
        fn copy_dir(from: &Path, to: &Path) {
            fs::create_dir_all(to).unwrap();
            for entry in fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy_dir(&entry.path(), &target);
                } else {
                    fs::copy(entry.path(), target).unwrap();
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repository_schemas(), dir.path());
        dir
    }

    fn edit(dir: &Path, file: &str, from: &str, to: &str) {
        let path = dir.join(file);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from}");
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    fn failures(dir: &Path) -> Vec<SubjectCheck> {
        check_dir(dir)
            .unwrap()
            .into_iter()
            .filter(|check| !check.is_compatible())
            .collect()
    }

    #[test]
    fn every_schema_is_full_transitive_compatible_with_its_released_versions() {
        let checks = check_dir(&repository_schemas()).unwrap();
        assert_eq!(checks.len(), 11, "{checks:#?}");
        for check in &checks {
            assert!(check.is_compatible(), "{check}");
            assert!(!check.released.is_empty(), "{check}: nothing released");
        }
        let debited = checks
            .iter()
            .find(|check| check.subject == "account.debited-value")
            .unwrap();
        assert_eq!(debited.released, vec![1, 2]);
        assert_eq!(
            debited.to_string(),
            "account.debited-value: compatible with v1..v2 (FULL_TRANSITIVE)"
        );
    }

    #[test]
    fn a_new_required_field_without_default_is_reported_with_subject_and_field() {
        let dir = copy();
        edit(
            dir.path(),
            "payment.submitted.avsc",
            r#""fields": ["#,
            r#""fields": [{"name": "channelCode", "type": "string"},"#,
        );
        let failures = failures(dir.path());
        assert_eq!(failures.len(), 1, "{failures:#?}");
        let report = failures[0].to_string();
        assert!(
            report.starts_with("payment.submitted-value: INCOMPATIBLE under FULL_TRANSITIVE"),
            "{report}"
        );
        assert!(report.contains("against v1"), "{report}");
        assert!(report.contains("channelCode"), "{report}");
        assert!(
            report.contains("new schema cannot read data written with"),
            "{report}"
        );
    }

    #[test]
    fn a_removed_field_without_default_is_reported_against_every_version_it_breaks() {
        let dir = copy();
        // Dropping the (defaulted) remittanceInformation would be fine; the
        // envelope, required since v1, is not: v1 and v2 readers need it.
        let path = dir.path().join("account.debited.avsc");
        let mut schema: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        schema["fields"]
            .as_array_mut()
            .unwrap()
            .retain(|field| field["name"] != "envelope");
        fs::write(&path, schema.to_string()).unwrap();
        let failures = failures(dir.path());
        assert_eq!(failures.len(), 1, "{failures:#?}");
        let check = &failures[0];
        assert_eq!(check.subject, "account.debited-value");
        let report = check.to_string();
        assert!(report.contains("against v1"), "{report}");
        assert!(report.contains("against v2"), "{report}");
        assert!(report.contains("envelope"), "{report}");
        assert!(
            report.contains("data written with the new schema cannot be read by"),
            "{report}"
        );
    }

    #[test]
    fn an_edit_compatible_with_the_latest_but_not_an_older_version_fails_transitively() {
        let dir = copy();
        // v3 released without remittanceInformation: compatible with v2
        // (it has a default) and with v1.
        let v1 =
            fs::read_to_string(dir.path().join("released/account.debited-value/v1.avsc")).unwrap();
        fs::write(
            dir.path().join("released/account.debited-value/v3.avsc"),
            &v1,
        )
        .unwrap();
        fs::write(dir.path().join("account.debited.avsc"), &v1).unwrap();
        assert!(failures(dir.path()).is_empty());
        // Re-adding it as a long with a default: fine against v1 and v3,
        // which lack it, but v2 wrote it as a string.
        edit(
            dir.path(),
            "account.debited.avsc",
            r#""fields": ["#,
            r#""fields": [{"name": "remittanceInformation", "type": "long", "default": 0},"#,
        );
        let failures = failures(dir.path());
        assert_eq!(failures.len(), 1, "{failures:#?}");
        let report = failures[0].to_string();
        assert!(report.contains("against v2"), "{report}");
        assert!(!report.contains("against v1"), "{report}");
        assert!(!report.contains("against v3"), "{report}");
    }

    #[test]
    fn a_gap_in_released_versions_or_a_vanished_schema_is_reported() {
        let dir = copy();
        fs::rename(
            dir.path().join("released/account.debited-value/v2.avsc"),
            dir.path().join("released/account.debited-value/v3.avsc"),
        )
        .unwrap();
        fs::remove_file(dir.path().join("rtgs.settled.avsc")).unwrap();
        let failures = failures(dir.path());
        let reports: Vec<String> = failures.iter().map(ToString::to_string).collect();
        assert_eq!(failures.len(), 2, "{reports:#?}");
        assert!(reports[0].contains("expected v2.avsc"), "{reports:#?}");
        assert!(
            reports[1].starts_with("rtgs.settled-value: INCOMPATIBLE")
                && reports[1].contains("is gone"),
            "{reports:#?}"
        );
    }
}
