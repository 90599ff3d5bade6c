//! The API's boolean query parameters. Confluent's server reads them
//! leniently and its clients rely on that (the Python client sends `True` and
//! `False`), so case is ignored; a value that is no boolean at all is a 400 in
//! Confluent's error shape rather than being read as false.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use crate::error::ApiError;

/// The boolean query parameters; an absent one is false. Other keys (`format`,
/// `subject`, `fetchMaxId`, ...) are ignored, as Confluent does.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    pub deleted: bool,
    pub permanent: bool,
    pub verbose: bool,
    pub default_to_global: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Deleted,
    Permanent,
    Verbose,
    DefaultToGlobal,
    /// Schemas are always compared in normalized form, so `normalize` changes
    /// nothing here; it is still checked to be a boolean.
    Normalize,
}

impl Flag {
    fn from_key(key: &str) -> Option<Self> {
        match key {
            "deleted" => Some(Self::Deleted),
            "permanent" => Some(Self::Permanent),
            "verbose" => Some(Self::Verbose),
            "defaultToGlobal" => Some(Self::DefaultToGlobal),
            "normalize" => Some(Self::Normalize),
            _ => None,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Permanent => "permanent",
            Self::Verbose => "verbose",
            Self::DefaultToGlobal => "defaultToGlobal",
            Self::Normalize => "normalize",
        }
    }
}

fn parse_bool(flag: Flag, value: &str) -> Result<bool, ApiError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ApiError::InvalidFlag {
            name: flag.key(),
            value: value.to_owned(),
        })
    }
}

impl Flags {
    fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ApiError> {
        let mut flags = Self::default();
        for (key, value) in pairs {
            let Some(flag) = Flag::from_key(key) else {
                continue;
            };
            let value = parse_bool(flag, value)?;
            match flag {
                Flag::Deleted => flags.deleted = value,
                Flag::Permanent => flags.permanent = value,
                Flag::Verbose => flags.verbose = value,
                Flag::DefaultToGlobal => flags.default_to_global = value,
                Flag::Normalize => {}
            }
        }
        Ok(flags)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Flags {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
        Self::from_pairs(
            pairs
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Flags, ApiError> {
        Flags::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn booleans_are_read_whatever_their_case() {
        let flags = parse(&[
            ("deleted", "True"),
            ("permanent", "TRUE"),
            ("verbose", "true"),
            ("defaultToGlobal", "tRuE"),
            ("normalize", "False"),
        ])
        .unwrap();
        assert_eq!(
            flags,
            Flags {
                deleted: true,
                permanent: true,
                verbose: true,
                default_to_global: true,
            }
        );
        assert_eq!(parse(&[("verbose", "FALSE")]).unwrap(), Flags::default());
    }

    #[test]
    fn absent_and_unknown_keys_leave_the_defaults() {
        let flags = parse(&[("format", "resolved"), ("deleted_only", "x")]).unwrap();
        assert_eq!(flags, Flags::default());
    }

    #[test]
    fn a_value_that_is_no_boolean_names_the_parameter() {
        for value in ["yes", "1", "", "truee"] {
            let error = parse(&[("normalize", value)]).unwrap_err();
            assert!(
                matches!(
                    error,
                    ApiError::InvalidFlag {
                        name: "normalize",
                        ..
                    }
                ),
                "{value}: {error:?}"
            );
        }
    }
}
