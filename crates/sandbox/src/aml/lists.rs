//! Readers for the official sanctions list formats: OFAC's SDN XML (also used
//! for its non-SDN consolidated list), the UN Security Council consolidated
//! list, and the EU consolidated financial sanctions file. Each is streamed, so
//! the 20 MB files never sit in memory as a tree.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use quick_xml::events::{BytesStart, Event};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SanctionsList {
    #[serde(rename = "OFAC-SDN")]
    OfacSdn,
    #[serde(rename = "OFAC-CONSOLIDATED")]
    OfacConsolidated,
    #[serde(rename = "UN")]
    Un,
    #[serde(rename = "EU")]
    Eu,
}

impl SanctionsList {
    pub const ALL: [SanctionsList; 4] = [Self::OfacSdn, Self::OfacConsolidated, Self::Un, Self::Eu];

    pub fn name(self) -> &'static str {
        match self {
            Self::OfacSdn => "OFAC-SDN",
            Self::OfacConsolidated => "OFAC-CONSOLIDATED",
            Self::Un => "UN",
            Self::Eu => "EU",
        }
    }

    /// File name the fetch script gives the list in the reference data dir.
    pub fn default_file(self) -> &'static str {
        match self {
            Self::OfacSdn => "ofac-sdn.xml",
            Self::OfacConsolidated => "ofac-consolidated.xml",
            Self::Un => "un-consolidated.xml",
            Self::Eu => "eu-consolidated.xml",
        }
    }
}

impl fmt::Display for SanctionsList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SanctionsList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|list| list.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!("unknown list `{text}` (expected OFAC-SDN, OFAC-CONSOLIDATED, UN or EU)")
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PartyKind {
    Individual,
    Entity,
    #[default]
    Other,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListedParty {
    pub reference: String,
    /// The primary name first, then aliases.
    pub names: Vec<String>,
    pub kind: PartyKind,
    pub birth_years: Vec<i32>,
    pub countries: Vec<String>,
    pub programs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadedList {
    pub list: SanctionsList,
    /// Publication date as the file states it.
    pub published: Option<String>,
    pub parties: Vec<ListedParty>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not well-formed XML at byte {position}: {source}")]
    Xml {
        path: PathBuf,
        position: u64,
        source: quick_xml::Error,
    },
    #[error("{path} holds no {list} entries; is it the right file?")]
    Empty { path: PathBuf, list: SanctionsList },
}

/// One step of a streamed document: an element opened (with its attributes)
/// or closed (with the text directly inside it).
enum Step<'a> {
    Open(&'a [u8], &'a BytesStart<'a>),
    Close(&'a [u8], String),
}

/// Streams `path`, calling `visit` with each step and the names of the
/// enclosing elements (outermost first, not including the element itself).
fn walk(path: &Path, mut visit: impl FnMut(&[Vec<u8>], Step<'_>)) -> Result<(), ListError> {
    let file = File::open(path).map_err(|source| ListError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = quick_xml::Reader::from_reader(BufReader::with_capacity(1 << 16, file));
    reader.config_mut().trim_text(true);
    let mut buffer = Vec::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    loop {
        let event = reader
            .read_event_into(&mut buffer)
            .map_err(|source| ListError::Xml {
                path: path.to_owned(),
                position: reader.buffer_position(),
                source,
            })?;
        match event {
            Event::Start(start) => {
                let name = start.local_name().as_ref().to_vec();
                visit(&stack, Step::Open(&name, &start));
                stack.push(name);
                text.clear();
            }
            Event::Empty(start) => {
                let name = start.local_name().as_ref().to_vec();
                visit(&stack, Step::Open(&name, &start));
                stack.push(name.clone());
                visit(&stack[..stack.len() - 1], Step::Close(&name, String::new()));
                stack.pop();
            }
            Event::Text(content) => {
                let unescaped = content.unescape().map_err(|source| ListError::Xml {
                    path: path.to_owned(),
                    position: reader.buffer_position(),
                    source,
                })?;
                text.push_str(&unescaped);
            }
            Event::CData(content) => text.push_str(&String::from_utf8_lossy(&content)),
            Event::End(_) => {
                if let Some(name) = stack.pop() {
                    let content = std::mem::take(&mut text);
                    visit(&stack, Step::Close(&name, content.trim().to_owned()));
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buffer.clear();
    }
}

fn attribute(start: &BytesStart<'_>, name: &str) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|attribute| attribute.key.local_name().as_ref() == name.as_bytes())
        .and_then(|attribute| attribute.unescape_value().ok())
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Every four-digit year in 1800–2100 in a free-form date ("10 Dec 1948",
/// "1961", "circa 1955-1958").
fn years_in(text: &str) -> Vec<i32> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|digits| digits.len() == 4)
        .filter_map(|digits| digits.parse().ok())
        .filter(|year| (1800..=2100).contains(year))
        .collect()
}

fn join_names(parts: &[String]) -> String {
    parts
        .iter()
        .map(|part| part.trim())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn parent(stack: &[Vec<u8>]) -> &[u8] {
    stack.last().map(Vec::as_slice).unwrap_or_default()
}

pub fn load(list: SanctionsList, path: &Path) -> Result<LoadedList, ListError> {
    let loaded = match list {
        SanctionsList::OfacSdn | SanctionsList::OfacConsolidated => load_ofac(list, path)?,
        SanctionsList::Un => load_un(path)?,
        SanctionsList::Eu => load_eu(path)?,
    };
    if loaded.parties.is_empty() {
        return Err(ListError::Empty {
            path: path.to_owned(),
            list,
        });
    }
    Ok(loaded)
}

fn load_ofac(list: SanctionsList, path: &Path) -> Result<LoadedList, ListError> {
    let mut parties = Vec::new();
    let mut published = None;
    let mut party = ListedParty::default();
    // First and last names of the entry, and of the alias being read.
    let mut primary = [String::new(), String::new()];
    let mut alias = [String::new(), String::new()];
    walk(path, |stack, step| match step {
        Step::Open(b"sdnEntry", _) => {
            party = ListedParty::default();
            primary = Default::default();
        }
        Step::Open(b"aka", _) => alias = Default::default(),
        Step::Open(..) => {}
        Step::Close(name, text) => match (parent(stack), name) {
            (_, b"Publish_Date") => published = Some(text),
            (b"sdnEntry", b"uid") => party.reference = format!("OFAC-{text}"),
            (b"sdnEntry", b"firstName") => primary[0] = text,
            (b"sdnEntry", b"lastName") => primary[1] = text,
            (b"aka", b"firstName") => alias[0] = text,
            (b"aka", b"lastName") => alias[1] = text,
            (b"sdnEntry", b"sdnType") => {
                party.kind = match text.as_str() {
                    "Individual" => PartyKind::Individual,
                    "Entity" => PartyKind::Entity,
                    _ => PartyKind::Other,
                }
            }
            (b"programList", b"program") => party.programs.push(text),
            (b"dateOfBirthItem", b"dateOfBirth") => party.birth_years.extend(years_in(&text)),
            (b"nationality" | b"citizenship", b"country") => party.countries.push(text),
            (_, b"aka") => party.names.push(join_names(&alias)),
            (_, b"sdnEntry") => {
                // The primary name goes first; aliases were pushed as read.
                party.names.insert(0, join_names(&primary));
                party.names.retain(|name| !name.is_empty());
                parties.push(std::mem::take(&mut party));
            }
            _ => {}
        },
    })?;
    Ok(LoadedList {
        list,
        published,
        parties,
    })
}

fn load_un(path: &Path) -> Result<LoadedList, ListError> {
    let mut parties = Vec::new();
    let mut published = None;
    let mut party = ListedParty::default();
    let mut name_parts: Vec<String> = Vec::new();
    walk(path, |stack, step| match step {
        Step::Open(b"CONSOLIDATED_LIST", start) => published = attribute(start, "dateGenerated"),
        Step::Open(b"INDIVIDUAL", _) => {
            party = ListedParty {
                kind: PartyKind::Individual,
                ..ListedParty::default()
            };
            name_parts.clear();
        }
        Step::Open(b"ENTITY", _) => {
            party = ListedParty {
                kind: PartyKind::Entity,
                ..ListedParty::default()
            };
            name_parts.clear();
        }
        Step::Open(..) => {}
        Step::Close(name, text) => match (parent(stack), name) {
            (
                b"INDIVIDUAL" | b"ENTITY",
                b"FIRST_NAME" | b"SECOND_NAME" | b"THIRD_NAME" | b"FOURTH_NAME",
            ) => name_parts.push(text),
            (b"INDIVIDUAL" | b"ENTITY", b"REFERENCE_NUMBER") => party.reference = text,
            (b"INDIVIDUAL" | b"ENTITY", b"UN_LIST_TYPE") => party.programs.push(text),
            (b"INDIVIDUAL" | b"ENTITY", b"NAME_ORIGINAL_SCRIPT") if !text.is_empty() => {
                party.names.push(text)
            }
            (b"INDIVIDUAL_ALIAS" | b"ENTITY_ALIAS", b"ALIAS_NAME") if !text.is_empty() => {
                party.names.push(text)
            }
            (b"INDIVIDUAL_DATE_OF_BIRTH", b"DATE" | b"YEAR" | b"FROM_YEAR" | b"TO_YEAR") => {
                party.birth_years.extend(years_in(&text))
            }
            (b"NATIONALITY", b"VALUE") => party.countries.push(text),
            (_, b"INDIVIDUAL" | b"ENTITY") => {
                party.names.insert(0, join_names(&name_parts));
                party.names.retain(|name| !name.is_empty());
                parties.push(std::mem::take(&mut party));
            }
            _ => {}
        },
    })?;
    Ok(LoadedList {
        list: SanctionsList::Un,
        published,
        parties,
    })
}

fn load_eu(path: &Path) -> Result<LoadedList, ListError> {
    let mut parties = Vec::new();
    let mut published = None;
    let mut party = ListedParty::default();
    walk(path, |_stack, step| match step {
        Step::Open(b"export", start) => published = attribute(start, "generationDate"),
        Step::Open(b"sanctionEntity", start) => {
            party = ListedParty {
                reference: attribute(start, "euReferenceNumber")
                    .or_else(|| attribute(start, "logicalId").map(|id| format!("EU-{id}")))
                    .unwrap_or_default(),
                ..ListedParty::default()
            }
        }
        Step::Open(b"subjectType", start) => {
            party.kind = match attribute(start, "code").as_deref() {
                Some("person") => PartyKind::Individual,
                Some("enterprise") => PartyKind::Entity,
                _ => PartyKind::Other,
            }
        }
        Step::Open(b"nameAlias", start) => {
            if let Some(name) = attribute(start, "wholeName") {
                party.names.push(name);
            }
        }
        Step::Open(b"citizenship", start) => {
            if let Some(country) = attribute(start, "countryIso2Code").filter(|c| c != "00") {
                party.countries.push(country);
            }
        }
        Step::Open(b"birthdate", start) => {
            let date = attribute(start, "birthdate").or_else(|| attribute(start, "year"));
            party
                .birth_years
                .extend(date.map(|date| years_in(&date)).unwrap_or_default());
        }
        Step::Open(b"regulation", start) => {
            if let Some(programme) = attribute(start, "programme")
                && !party.programs.contains(&programme)
            {
                party.programs.push(programme);
            }
        }
        Step::Close(b"sanctionEntity", _) => parties.push(std::mem::take(&mut party)),
        _ => {}
    })?;
    Ok(LoadedList {
        list: SanctionsList::Eu,
        published,
        parties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::file;

    #[test]
    fn ofac_entries_have_their_primary_name_first_then_aliases() {
        let xml = file(
            r#"<?xml version="1.0" standalone="yes"?>
<sdnList xmlns="https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/XML">
  <publshInformation><Publish_Date>05/07/2024</Publish_Date></publshInformation>
  <sdnEntry>
    <uid>7</uid><firstName>Abu</firstName><lastName>ABBAS</lastName>
    <sdnType>Individual</sdnType>
    <programList><program>SDGT</program></programList>
    <akaList><aka><uid>1795</uid><lastName>ZAYDAN</lastName><firstName>Muhammad</firstName></aka></akaList>
    <dateOfBirthList><dateOfBirthItem><uid>1</uid><dateOfBirth>10 Dec 1948</dateOfBirth></dateOfBirthItem></dateOfBirthList>
    <nationalityList><nationality><uid>2</uid><country>Iraq</country></nationality></nationalityList>
  </sdnEntry>
  <sdnEntry><uid>36</uid><lastName>AEROCARIBBEAN &amp; CO</lastName><sdnType>Entity</sdnType></sdnEntry>
</sdnList>"#,
        );
        let loaded = load(SanctionsList::OfacSdn, &xml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.published.as_deref(), Some("05/07/2024"));
        assert_eq!(loaded.parties.len(), 2);
        let abbas = &loaded.parties[0];
        assert_eq!(abbas.reference, "OFAC-7");
        assert_eq!(abbas.names, vec!["Abu ABBAS", "Muhammad ZAYDAN"]);
        assert_eq!(abbas.kind, PartyKind::Individual);
        assert_eq!(abbas.birth_years, vec![1948]);
        assert_eq!(abbas.countries, vec!["Iraq"]);
        assert_eq!(abbas.programs, vec!["SDGT"]);
        assert_eq!(loaded.parties[1].names, vec!["AEROCARIBBEAN & CO"]);
        assert_eq!(loaded.parties[1].kind, PartyKind::Entity);
    }

    #[test]
    fn un_and_eu_entries_read_names_aliases_and_birth_years() {
        let un = file(
            r#"<CONSOLIDATED_LIST dateGenerated="2024-05-15T00:00:03.012Z"><INDIVIDUALS><INDIVIDUAL>
  <FIRST_NAME>MUHAMMAD</FIRST_NAME><SECOND_NAME>TAHER</SECOND_NAME><THIRD_NAME>ANWARI</THIRD_NAME>
  <UN_LIST_TYPE>Taliban</UN_LIST_TYPE><REFERENCE_NUMBER>TAi.005</REFERENCE_NUMBER>
  <NATIONALITY><VALUE>Afghanistan</VALUE></NATIONALITY>
  <INDIVIDUAL_ALIAS><QUALITY>Good</QUALITY><ALIAS_NAME>Mohammad Taher Anwari</ALIAS_NAME></INDIVIDUAL_ALIAS>
  <INDIVIDUAL_ALIAS><QUALITY>Low</QUALITY><ALIAS_NAME/></INDIVIDUAL_ALIAS>
  <INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>APPROXIMATELY</TYPE_OF_DATE><YEAR>1961</YEAR></INDIVIDUAL_DATE_OF_BIRTH>
</INDIVIDUAL></INDIVIDUALS><ENTITIES><ENTITY><FIRST_NAME>AFGHAN SUPPORT COMMITTEE (ASC)</FIRST_NAME>
  <REFERENCE_NUMBER>QDe.069</REFERENCE_NUMBER></ENTITY></ENTITIES></CONSOLIDATED_LIST>"#,
        );
        let loaded = load(SanctionsList::Un, &un).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.published.as_deref(),
            Some("2024-05-15T00:00:03.012Z")
        );
        let anwari = &loaded.parties[0];
        assert_eq!(
            anwari.names,
            vec!["MUHAMMAD TAHER ANWARI", "Mohammad Taher Anwari"]
        );
        assert_eq!(anwari.reference, "TAi.005");
        assert_eq!(anwari.birth_years, vec![1961]);
        assert_eq!(loaded.parties[1].kind, PartyKind::Entity);

        let eu = file(
            r#"<export xmlns="http://eu.europa.ec/fpi/fsd/export" generationDate="2024-05-13T17:44:28.283+02:00">
  <sanctionEntity euReferenceNumber="EU.27.28" logicalId="13">
    <regulation programme="IRQ"><publicationUrl>x</publicationUrl></regulation>
    <subjectType code="person" classificationCode="P"/>
    <nameAlias firstName="Saddam" wholeName="Saddam Hussein Al-Tikriti" strong="true"><regulationSummary/></nameAlias>
    <nameAlias wholeName="Abu Ali" strong="true"/>
    <citizenship countryIso2Code="IQ"/>
    <birthdate birthdate="1937-04-28" year="1937" countryIso2Code="IQ"/>
  </sanctionEntity>
</export>"#,
        );
        let loaded = load(SanctionsList::Eu, &eu).unwrap_or_else(|e| panic!("{e}"));
        let saddam = &loaded.parties[0];
        assert_eq!(saddam.reference, "EU.27.28");
        assert_eq!(saddam.names, vec!["Saddam Hussein Al-Tikriti", "Abu Ali"]);
        assert_eq!(saddam.kind, PartyKind::Individual);
        assert_eq!(saddam.countries, vec!["IQ"]);
        assert_eq!(saddam.birth_years, vec![1937]);
        assert_eq!(saddam.programs, vec!["IRQ"]);
    }

    #[test]
    fn a_file_of_the_wrong_format_is_refused_not_loaded_empty() {
        let wrong = file("<export><sanctionEntity/></export>");
        assert!(matches!(
            load(SanctionsList::OfacSdn, &wrong),
            Err(ListError::Empty { .. })
        ));
        let broken = file("<sdnList><sdnEntry></sdnList>");
        assert!(matches!(
            load(SanctionsList::OfacSdn, &broken),
            Err(ListError::Xml { .. } | ListError::Empty { .. })
        ));
    }
}
