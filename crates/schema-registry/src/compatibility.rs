//! Compatibility levels and the checks behind them, with Confluent's semantics:
//! BACKWARD means consumers on the new schema can read data written with the old
//! one; FORWARD the reverse; FULL both; the `_TRANSITIVE` forms check against
//! every live version instead of only the latest.

use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompatibilityLevel {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    pub const ALL: [CompatibilityLevel; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether a new schema is checked against every live version (true) or
    /// only the latest one.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    fn needs_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    fn needs_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown compatibility level '{0}'")]
pub struct UnknownLevel(pub String);

impl FromStr for CompatibilityLevel {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

/// One reason a candidate schema is incompatible with an existing version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    pub existing_version: i32,
    pub message: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "version {}: {}", self.existing_version, self.message)
    }
}

/// Checks `candidate` against `existing` (oldest first, as `(version, schema)`)
/// under `level`. Transitivity is applied here, so callers pass every live version.
pub fn check(
    level: CompatibilityLevel,
    candidate: &Schema,
    existing: &[(i32, Schema)],
) -> Vec<Incompatibility> {
    let against: &[(i32, Schema)] = if level.is_transitive() {
        existing
    } else {
        existing.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut problems = Vec::new();
    for (version, old) in against {
        if level.needs_backward()
            && let Some(message) =
                can_read(old, candidate, "new schema cannot read data written with")
        {
            problems.push(Incompatibility {
                existing_version: *version,
                message,
            });
        }
        if level.needs_forward()
            && let Some(message) = can_read(
                candidate,
                old,
                "data written with the new schema cannot be read by",
            )
        {
            problems.push(Incompatibility {
                existing_version: *version,
                message,
            });
        }
    }
    problems
}

/// `None` when `reader` can always read data written with `writer`. Partial
/// compatibility (for example an enum missing some of the writer's symbols) counts
/// as incompatible: some records would fail to decode.
fn can_read(writer: &Schema, reader: &Schema, direction: &str) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => Some(format!(
            "{direction} this version for some values (partially compatible)"
        )),
        Err(error) => Some(format!("{direction} this version: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"Payment","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    fn v1() -> Schema {
        schema(r#"{"name":"id","type":"string"},{"name":"amountMinor","type":"long"}"#)
    }

    #[test]
    fn levels_parse_case_insensitively_and_print_in_confluent_form() {
        for level in CompatibilityLevel::ALL {
            assert_eq!(
                level
                    .as_str()
                    .to_lowercase()
                    .parse::<CompatibilityLevel>()
                    .unwrap(),
                level
            );
        }
        assert!("SIDEWAYS".parse::<CompatibilityLevel>().is_err());
    }

    #[test]
    fn optional_field_with_default_is_fully_compatible() {
        let v2 = schema(
            r#"{"name":"id","type":"string"},{"name":"amountMinor","type":"long"},
               {"name":"corridorCode","type":["null","string"],"default":null}"#,
        );
        assert!(check(CompatibilityLevel::FullTransitive, &v2, &[(1, v1())]).is_empty());
    }

    #[test]
    fn removed_field_without_default_breaks_forward_but_not_backward() {
        let v2 = schema(r#"{"name":"id","type":"string"}"#);
        assert!(check(CompatibilityLevel::Backward, &v2, &[(1, v1())]).is_empty());
        let problems = check(CompatibilityLevel::Full, &v2, &[(1, v1())]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("cannot be read by"),
            "{problems:?}"
        );
    }

    #[test]
    fn changed_type_breaks_both_directions() {
        let v2 = schema(r#"{"name":"id","type":"string"},{"name":"amountMinor","type":"string"}"#);
        assert_eq!(check(CompatibilityLevel::Full, &v2, &[(1, v1())]).len(), 2);
    }

    #[test]
    fn non_transitive_levels_only_look_at_the_latest_version() {
        // v2 drops amountMinor (backward compatible with v1); v3 re-adds it as a
        // string, which v2 can read (it ignores the field) but v1 data cannot feed.
        let v2 = schema(r#"{"name":"id","type":"string"}"#);
        let v3 = schema(
            r#"{"name":"id","type":"string"},{"name":"amountMinor","type":"string","default":""}"#,
        );
        let history = [(1, v1()), (2, v2)];
        assert!(check(CompatibilityLevel::Backward, &v3, &history).is_empty());
        let problems = check(CompatibilityLevel::BackwardTransitive, &v3, &history);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].existing_version, 1);
    }

    #[test]
    fn none_accepts_anything() {
        let unrelated = Schema::parse_str(r#""string""#).unwrap();
        assert!(check(CompatibilityLevel::None, &unrelated, &[(1, v1())]).is_empty());
    }
}
