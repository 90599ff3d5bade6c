//! Which network an address belongs to (ASN and owner, from the DB-IP ASN
//! ranges) and what kind of network that is: VPN operator, hosting provider,
//! open proxy or Tor exit.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkClass {
    Vpn,
    Proxy,
    Tor,
    Hosting,
}

impl NetworkClass {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "vpn" => Some(Self::Vpn),
            "proxy" => Some(Self::Proxy),
            "tor" => Some(Self::Tor),
            "hosting" => Some(Self::Hosting),
            _ => None,
        }
    }
}

/// Autonomous systems whose address space is, as a whole, commercial VPN exit
/// or datacenter hosting. The VPN operators are those that run their own ASNs
/// for exits (Mullvad's 31173 Services, NordVPN's PacketHub, Datacamp/CDN77
/// and M247, which host most large VPN brands' exits). Deployments add more
/// precise data with `--network-list`.
const CLASSIFIED_ASNS: &[(u32, NetworkClass)] = &[
    (39351, NetworkClass::Vpn),      // 31173 Services AB (Mullvad)
    (136787, NetworkClass::Vpn),     // PacketHub S.A. (NordVPN)
    (147049, NetworkClass::Vpn),     // PacketHub S.A.
    (207137, NetworkClass::Vpn),     // PacketHub S.A.
    (141039, NetworkClass::Vpn),     // PacketHub S.A.
    (212238, NetworkClass::Vpn),     // Datacamp Limited
    (60068, NetworkClass::Vpn),      // Datacamp Limited
    (9009, NetworkClass::Vpn),       // M247 Europe SRL
    (16247, NetworkClass::Vpn),      // M247 UK Ltd
    (209103, NetworkClass::Vpn),     // Proton AG
    (16509, NetworkClass::Hosting),  // Amazon
    (14618, NetworkClass::Hosting),  // Amazon
    (396982, NetworkClass::Hosting), // Google Cloud
    (8075, NetworkClass::Hosting),   // Microsoft Azure
    (14061, NetworkClass::Hosting),  // DigitalOcean
    (16276, NetworkClass::Hosting),  // OVH
    (24940, NetworkClass::Hosting),  // Hetzner
    (63949, NetworkClass::Hosting),  // Akamai Connected Cloud (Linode)
    (20473, NetworkClass::Hosting),  // Vultr (The Constant Company)
    (45102, NetworkClass::Hosting),  // Alibaba Cloud
    (31898, NetworkClass::Hosting),  // Oracle Cloud
];

#[derive(Debug, thiserror::Error)]
pub enum NetworkDataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Malformed {
        path: String,
        line: usize,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
struct Range {
    start: u128,
    end: u128,
    asn: u32,
    owner: u32,
}

/// Sorted, non-overlapping address ranges, IPv4 mapped into IPv6 space so one
/// binary search serves both families.
#[derive(Debug, Default)]
pub struct Networks {
    ranges: Vec<Range>,
    owners: Vec<String>,
    asn_classes: HashMap<u32, NetworkClass>,
    listed: Vec<(u128, u128, NetworkClass)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    pub asn: Option<u32>,
    pub owner: Option<String>,
    pub classes: Vec<NetworkClass>,
}

fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn parse_ip(text: &str) -> Option<u128> {
    text.trim().parse::<IpAddr>().ok().map(key)
}

/// Parses `a.b.c.d/nn` (or an IPv6 CIDR, or one address) into a range.
fn parse_cidr(text: &str) -> Option<(u128, u128)> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = address.trim().parse().ok()?;
    let offset = if ip.is_ipv4() { 96 } else { 0 };
    let width = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u32 = match prefix {
        Some(prefix) => prefix.trim().parse().ok().filter(|p| *p <= width)?,
        None => width,
    };
    let host_bits = 128 - (offset + prefix);
    let start = key(ip);
    let mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    Some((start & !mask, start | mask))
}

impl Networks {
    pub fn new() -> Self {
        Self {
            asn_classes: CLASSIFIED_ASNS.iter().copied().collect(),
            ..Self::default()
        }
    }

    /// Loads an `@ip-location-db/asn` CSV: `start,end,asn,owner` rows, the
    /// owner quoted when it holds a comma.
    pub fn load_asn_csv(&mut self, path: &Path) -> Result<usize, NetworkDataError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| NetworkDataError::Io {
            path: name.clone(),
            source,
        })?;
        let mut owner_ids: HashMap<String, u32> = self
            .owners
            .iter()
            .enumerate()
            .map(|(i, owner)| (owner.clone(), i as u32))
            .collect();
        let before = self.ranges.len();
        for (number, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| NetworkDataError::Io {
                path: name.clone(),
                source,
            })?;
            if line.is_empty() {
                continue;
            }
            let malformed = |reason: &str| NetworkDataError::Malformed {
                path: name.clone(),
                line: number + 1,
                reason: reason.to_owned(),
            };
            let mut fields = line.splitn(4, ',');
            let (Some(start), Some(end), Some(asn), Some(owner)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed("expected start,end,asn,owner"));
            };
            let start = parse_ip(start).ok_or_else(|| malformed("bad start address"))?;
            let end = parse_ip(end).ok_or_else(|| malformed("bad end address"))?;
            let asn: u32 = asn.trim().parse().map_err(|_| malformed("bad ASN"))?;
            let owner = owner.trim().trim_matches('"').replace("\"\"", "\"");
            // Most rows repeat an owner already seen: look up before copying.
            let owner = match owner_ids.get(&owner) {
                Some(id) => *id,
                None => {
                    let id = self.owners.len() as u32;
                    owner_ids.insert(owner.clone(), id);
                    self.owners.push(owner);
                    id
                }
            };
            self.ranges.push(Range {
                start,
                end,
                asn,
                owner,
            });
        }
        self.ranges.sort_unstable_by_key(|range| range.start);
        Ok(self.ranges.len() - before)
    }

    /// Loads a list of classified networks, one per line: `CLASS,TARGET` where
    /// CLASS is vpn, proxy, tor or hosting and TARGET an address, a CIDR range
    /// or `AS1234`. `#` starts a comment. A Tor bulk exit list becomes one with
    /// `sed 's/^/tor,/'`.
    pub fn load_network_list(&mut self, path: &Path) -> Result<usize, NetworkDataError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| NetworkDataError::Io {
            path: name.clone(),
            source,
        })?;
        let mut count = 0;
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let malformed = |reason: &str| NetworkDataError::Malformed {
                path: name.clone(),
                line: number + 1,
                reason: reason.to_owned(),
            };
            let (class, target) = line
                .split_once(',')
                .ok_or_else(|| malformed("expected CLASS,TARGET"))?;
            let class = NetworkClass::parse(class)
                .ok_or_else(|| malformed("class must be vpn, proxy, tor or hosting"))?;
            let target = target.trim();
            if let Some(asn) = target
                .strip_prefix("AS")
                .or_else(|| target.strip_prefix("as"))
            {
                let asn = asn.parse().map_err(|_| malformed("bad ASN"))?;
                self.asn_classes.insert(asn, class);
            } else {
                let (start, end) =
                    parse_cidr(target).ok_or_else(|| malformed("bad address or CIDR"))?;
                self.listed.push((start, end, class));
            }
            count += 1;
        }
        Ok(count)
    }

    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }

    pub fn lookup(&self, ip: IpAddr) -> Network {
        let ip = key(ip);
        let range = self
            .ranges
            .partition_point(|range| range.start <= ip)
            .checked_sub(1)
            .map(|index| self.ranges[index])
            .filter(|range| range.end >= ip);
        let mut classes: Vec<NetworkClass> = self
            .listed
            .iter()
            .filter(|(start, end, _)| (*start..=*end).contains(&ip))
            .map(|(_, _, class)| *class)
            .collect();
        if let Some(class) = range.and_then(|range| self.asn_classes.get(&range.asn)) {
            classes.push(*class);
        }
        classes.sort_by_key(|class| *class as u8);
        classes.dedup();
        Network {
            asn: range.map(|range| range.asn),
            owner: range.and_then(|range| self.owners.get(range.owner as usize).cloned()),
            classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::file;

    #[test]
    fn ranges_are_found_by_binary_search_across_both_families() {
        let csv = file(concat!(
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n",
            "2.56.8.0,2.56.8.255,9009,M247 Europe SRL\n",
            "2001:db8::,2001:db8::ffff,64500,Example \"\"Six\"\" Ltd\n",
        ));
        let mut networks = Networks::new();
        assert_eq!(networks.load_asn_csv(&csv).ok(), Some(3));
        let cloudflare = networks.lookup("1.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])));
        assert_eq!(cloudflare.asn, Some(13335));
        assert_eq!(cloudflare.owner.as_deref(), Some("Cloudflare, Inc."));
        assert!(cloudflare.classes.is_empty());
        let m247 = networks.lookup(IpAddr::from([2, 56, 8, 7]));
        assert_eq!(m247.classes, vec![NetworkClass::Vpn]);
        let six = networks.lookup("2001:db8::1".parse().unwrap_or(IpAddr::from([0; 4])));
        assert_eq!(six.owner.as_deref(), Some("Example \"Six\" Ltd"));
        let nowhere = networks.lookup(IpAddr::from([1, 0, 1, 0]));
        assert_eq!(nowhere.asn, None);
    }

    #[test]
    fn network_lists_classify_addresses_ranges_and_asns() {
        let mut list = file(
            "# tor exits\ntor,185.220.101.1\nproxy,10.1.0.0/16\nhosting,AS13335\nvpn, 2001:db8::/32\n",
        );
        let mut networks = Networks::new();
        let csv = file("1.0.0.0,1.0.0.255,13335,Cloudflare\n");
        let _ = networks.load_asn_csv(&csv);
        assert_eq!(networks.load_network_list(&list).ok(), Some(4));
        assert_eq!(
            networks.lookup(IpAddr::from([185, 220, 101, 1])).classes,
            vec![NetworkClass::Tor]
        );
        assert!(
            networks
                .lookup(IpAddr::from([185, 220, 101, 2]))
                .classes
                .is_empty()
        );
        assert_eq!(
            networks.lookup(IpAddr::from([10, 1, 200, 3])).classes,
            vec![NetworkClass::Proxy]
        );
        assert_eq!(
            networks.lookup(IpAddr::from([1, 0, 0, 9])).classes,
            vec![NetworkClass::Hosting]
        );
        assert_eq!(
            networks
                .lookup("2001:db8:1::1".parse().unwrap_or(IpAddr::from([0; 4])))
                .classes,
            vec![NetworkClass::Vpn]
        );
        list = file("tor 1.2.3.4\n");
        assert!(matches!(
            networks.load_network_list(&list),
            Err(NetworkDataError::Malformed { line: 1, .. })
        ));
    }
}
