//! Fuzzy name screening against the loaded lists.
//!
//! Names are transliterated to ASCII (so "Qoussaï" and "Qoussai", or Cyrillic
//! and Latin spellings, compare equal), lower-cased, split into tokens, and
//! stripped of legal forms and honorifics. Two names are compared token by
//! token with Jaro-Winkler, in both directions, so word order does not matter
//! ("PUTIN, Vladimir" = "Vladimir Putin") and a listed name's extra middle
//! names lower the score only a little. Candidates come from an index on each
//! token's first and last three letters, so a query is compared with the few
//! thousand names that could match rather than all ~60,000.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::lists::{ListedParty, LoadedList, PartyKind, SanctionsList};

/// Scores at or above this are a HIGH risk (a likely true match).
pub const HIGH_SCORE: f64 = 0.93;
/// Scores at or above this are a MEDIUM risk (a possible match for review).
pub const MEDIUM_SCORE: f64 = 0.86;
/// Matches below this are not reported at all.
pub const REPORT_SCORE: f64 = 0.80;
const MAX_MATCHES: usize = 5;

/// Tokens that say nothing about who a party is.
const NOISE: &[&str] = &[
    "mr", "mrs", "ms", "dr", "the", "of", "and", "ltd", "llc", "inc", "co", "corp", "company",
    "limited", "gmbh", "sa", "ag", "plc", "jsc", "ooo", "pjsc", "bv", "nv", "srl", "spa",
];

pub fn tokens(name: &str) -> Vec<String> {
    deunicode::deunicode(name)
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|token| !token.is_empty() && !NOISE.contains(token))
        .map(str::to_owned)
        .collect()
}

fn block_keys(token: &str) -> [String; 2] {
    let chars: Vec<char> = token.chars().collect();
    let head: String = chars.iter().take(3).collect();
    let tail: String = chars[chars.len().saturating_sub(3)..].iter().collect();
    [format!("^{head}"), format!("{tail}$")]
}

/// How well each token of `from` is found in `to`, weighted by token length
/// so initials count for less than names.
fn directed(from: &[String], to: &[String]) -> f64 {
    let mut total = 0.0;
    let mut weight = 0.0;
    for token in from {
        let best = to
            .iter()
            .map(|other| strsim::jaro_winkler(token, other))
            .fold(0.0, f64::max);
        let w = if token.len() <= 1 { 0.3 } else { 1.0 };
        total += best * w;
        weight += w;
    }
    if weight == 0.0 { 0.0 } else { total / weight }
}

/// Similarity of two token lists in 0..=1.
pub fn similarity(query: &[String], listed: &[String]) -> f64 {
    if query.is_empty() || listed.is_empty() {
        return 0.0;
    }
    // A query must be found in the listed name; the listed name's extra
    // tokens (middle names, patronymics) cost less, but enough that two
    // common given names alone do not block a payment.
    0.7 * directed(query, listed) + 0.3 * directed(listed, query)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone)]
pub struct Party<'a> {
    pub name: &'a str,
    pub country: Option<&'a str>,
    pub birth_year: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    pub list: SanctionsList,
    pub reference: String,
    pub listed_name: String,
    pub matched_name: String,
    pub kind: PartyKind,
    pub programs: Vec<String>,
    pub score: f64,
    /// Whether the listed birth years contradict the one screened.
    pub birth_year_differs: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Screening {
    pub risk_level: RiskLevel,
    pub score: f64,
    pub matches: Vec<Match>,
}

struct IndexedName {
    party: u32,
    alias: u16,
    tokens: Vec<String>,
}

pub struct Screener {
    parties: Vec<(SanctionsList, ListedParty)>,
    names: Vec<IndexedName>,
    index: HashMap<String, Vec<u32>>,
}

impl Screener {
    pub fn new(lists: Vec<LoadedList>) -> Self {
        let mut screener = Screener {
            parties: Vec::new(),
            names: Vec::new(),
            index: HashMap::new(),
        };
        for loaded in lists {
            for party in loaded.parties {
                let party_id = screener.parties.len() as u32;
                for (alias, name) in party.names.iter().enumerate().take(usize::from(u16::MAX)) {
                    let tokens = tokens(name);
                    if tokens.is_empty() {
                        continue;
                    }
                    let name_id = screener.names.len() as u32;
                    let keys: HashSet<String> = tokens.iter().flat_map(|t| block_keys(t)).collect();
                    for key in keys {
                        screener.index.entry(key).or_default().push(name_id);
                    }
                    screener.names.push(IndexedName {
                        party: party_id,
                        alias: alias as u16,
                        tokens,
                    });
                }
                screener.parties.push((loaded.list, party));
            }
        }
        screener
    }

    pub fn names(&self) -> usize {
        self.names.len()
    }

    pub fn screen(&self, party: &Party<'_>) -> Screening {
        let query = tokens(party.name);
        // Which query tokens each indexed name shares a block key with. A
        // name must share keys with two query tokens (one, for a one-word
        // query): a name sharing only one of several tokens cannot reach the
        // report score, and scoring the thousands that share a common
        // prefix like "mor" is where the time would go.
        let mut shared: HashMap<u32, u32> = HashMap::new();
        for (position, token) in query.iter().enumerate().take(32) {
            for key in block_keys(token) {
                for name_id in self.index.get(&key).into_iter().flatten() {
                    *shared.entry(*name_id).or_default() |= 1 << position;
                }
            }
        }
        let needed = query.len().min(2) as u32;
        let candidates = shared
            .into_iter()
            .filter(|(_, tokens)| tokens.count_ones() >= needed)
            .map(|(name_id, _)| name_id);

        // Best-scoring name per listed party.
        let mut best: HashMap<u32, (f64, u16)> = HashMap::new();
        for name_id in candidates {
            let name = &self.names[name_id as usize];
            let score = similarity(&query, &name.tokens);
            if score < REPORT_SCORE {
                continue;
            }
            let entry = best.entry(name.party).or_insert((score, name.alias));
            if score > entry.0 {
                *entry = (score, name.alias);
            }
        }

        let mut matches: Vec<Match> = best
            .into_iter()
            .filter_map(|(party_id, (score, alias))| {
                let (list, listed) = self.parties.get(party_id as usize)?;
                let birth_year_differs = match party.birth_year {
                    Some(year) if !listed.birth_years.is_empty() => !listed
                        .birth_years
                        .iter()
                        .any(|listed| (listed - year).abs() <= 1),
                    _ => false,
                };
                Some(Match {
                    list: *list,
                    reference: listed.reference.clone(),
                    listed_name: listed.names.first().cloned().unwrap_or_default(),
                    matched_name: listed
                        .names
                        .get(usize::from(alias))
                        .cloned()
                        .unwrap_or_default(),
                    kind: listed.kind,
                    programs: listed.programs.clone(),
                    score: (score * 1000.0).round() / 1000.0,
                    birth_year_differs,
                })
            })
            .collect();
        matches.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.reference.cmp(&b.reference))
        });
        matches.truncate(MAX_MATCHES);

        let risk_level = matches
            .iter()
            .map(|found| {
                let level = if found.score >= HIGH_SCORE {
                    RiskLevel::High
                } else if found.score >= MEDIUM_SCORE {
                    RiskLevel::Medium
                } else {
                    RiskLevel::Low
                };
                // A different date of birth makes a name match a question for
                // a reviewer, not a block.
                if found.birth_year_differs {
                    level.min(RiskLevel::Medium)
                } else {
                    level
                }
            })
            .max()
            .unwrap_or(RiskLevel::Low);
        Screening {
            risk_level,
            score: matches.first().map(|found| found.score).unwrap_or(0.0),
            matches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screener() -> Screener {
        let party = |reference: &str, names: &[&str], years: &[i32]| ListedParty {
            reference: reference.into(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            kind: PartyKind::Individual,
            birth_years: years.to_vec(),
            ..ListedParty::default()
        };
        Screener::new(vec![LoadedList {
            list: SanctionsList::Eu,
            published: None,
            parties: vec![
                party(
                    "EU.1",
                    &["PUTIN, Vladimir Vladimirovich", "Путин Владимир"],
                    &[1952],
                ),
                party("EU.2", &["Qoussaï Saddam Hussein Al-Tikriti"], &[1966]),
                party("EU.3", &["ACME Trading Company Ltd"], &[]),
            ],
        }])
    }

    fn screen(screener: &Screener, name: &str, birth_year: Option<i32>) -> Screening {
        screener.screen(&Party {
            name,
            country: None,
            birth_year,
        })
    }

    #[test]
    fn word_order_case_and_diacritics_do_not_hide_a_listed_name() {
        let screener = screener();
        let found = screen(&screener, "Vladimir Putin", None);
        assert_eq!(found.risk_level, RiskLevel::High, "{found:?}");
        assert_eq!(found.matches[0].reference, "EU.1");
        let found = screen(&screener, "qoussai saddam hussein al tikriti", None);
        assert_eq!(found.risk_level, RiskLevel::High, "{found:?}");
        let found = screen(&screener, "ACME TRADING CO.", None);
        assert_eq!(found.risk_level, RiskLevel::High, "{found:?}");
    }

    #[test]
    fn another_script_is_transliterated_before_matching() {
        let found = screen(&screener(), "Путин Владимир Владимирович", None);
        assert_eq!(found.risk_level, RiskLevel::High, "{found:?}");
    }

    #[test]
    fn a_typo_still_matches_and_a_stranger_does_not() {
        let screener = screener();
        let typo = screen(&screener, "Vladimir Poutin", None);
        assert!(typo.risk_level >= RiskLevel::Medium, "{typo:?}");
        let stranger = screen(&screener, "Maria Fernanda Gonzalez", None);
        assert_eq!(stranger.risk_level, RiskLevel::Low);
        assert!(stranger.matches.is_empty());
    }

    #[test]
    fn a_different_birth_year_turns_a_block_into_a_review() {
        let screener = screener();
        assert_eq!(
            screen(&screener, "Vladimir Putin", Some(1952)).risk_level,
            RiskLevel::High
        );
        let other = screen(&screener, "Vladimir Putin", Some(1990));
        assert_eq!(other.risk_level, RiskLevel::Medium);
        assert!(other.matches[0].birth_year_differs);
    }
}
