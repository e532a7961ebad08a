//! MITRE ATT&CK Enterprise technique ids, to check the ids a model puts in a verdict (and the
//! ids in the evaluation suite) against ones that exist.
//!
//! The table (`techniques/table.rs`) is a static sorted slice searched by binary search. Must
//! not: accept ids by shape alone (`T9999` is well formed and does not exist), or allocate
//! on lookup.

mod table;

use table::TECHNIQUES;

/// Every known id with its name, sorted by id.
pub fn all() -> &'static [(&'static str, &'static str)] {
    TECHNIQUES
}

fn find(id: &str) -> Option<usize> {
    TECHNIQUES.binary_search_by(|(t, _)| (*t).cmp(id)).ok()
}

/// Whether `id` is an ATT&CK Enterprise technique or sub-technique id, exactly as ATT&CK
/// writes it (`T1059.001`; no lower case, no spaces).
pub fn is_valid(id: &str) -> bool {
    find(id).is_some()
}

/// The technique's name (`T1059.001` is "PowerShell"; sub-technique names omit the parent's).
pub fn name(id: &str) -> Option<&'static str> {
    find(id).map(|i| TECHNIQUES[i].1)
}

/// Splits ids into (valid, rejected), keeping order and duplicates as given. Ids are trimmed
/// and upper-cased first, since models write `t1059.001 ` as often as `T1059.001`.
pub fn validate<I, S>(ids: I) -> (Vec<String>, Vec<String>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut valid = Vec::new();
    let mut rejected = Vec::new();
    for id in ids {
        let raw = id.as_ref();
        let norm = raw.trim().to_ascii_uppercase();
        if is_valid(&norm) {
            valid.push(norm);
        } else {
            rejected.push(raw.to_string());
        }
    }
    (valid, rejected)
}

/// Whether `id` has the shape `T` + 4 digits, optionally `.` + 3 digits.
pub fn is_well_formed(id: &str) -> bool {
    let b = id.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..5]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..9]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_well_formed() {
        for w in TECHNIQUES.windows(2) {
            assert!(w[0].0 < w[1].0, "{} then {}", w[0].0, w[1].0);
        }
        for (id, name) in TECHNIQUES {
            assert!(is_well_formed(id), "{id}");
            assert!(!name.is_empty() && name.len() < 80, "{id}");
        }
    }

    #[test]
    fn every_sub_technique_has_its_parent() {
        for (id, _) in TECHNIQUES {
            if let Some((parent, _)) = id.split_once('.') {
                assert!(is_valid(parent), "{id} without {parent}");
            }
        }
    }

    #[test]
    fn commonly_cited_ids_are_present() {
        let ids = [
            "T1003.001",
            "T1016",
            "T1018",
            "T1021.002",
            "T1027",
            "T1033",
            "T1036",
            "T1047",
            "T1048",
            "T1053.005",
            "T1057",
            "T1059",
            "T1059.001",
            "T1059.004",
            "T1059.008",
            "T1070.001",
            "T1071.001",
            "T1074.001",
            "T1082",
            "T1087",
            "T1090",
            "T1098",
            "T1105",
            "T1112",
            "T1113",
            "T1115",
            "T1119",
            "T1135",
            "T1136.001",
            "T1140",
            "T1190",
            "T1197",
            "T1204.002",
            "T1218",
            "T1218.005",
            "T1218.010",
            "T1218.011",
            "T1219",
            "T1222",
            "T1486",
            "T1489",
            "T1490",
            "T1496",
            "T1485",
            "T1505.003",
            "T1529",
            "T1531",
            "T1543.003",
            "T1547.001",
            "T1548",
            "T1552.001",
            "T1555",
            "T1560.001",
            "T1562.001",
            "T1564.001",
            "T1566.001",
            "T1567.002",
            "T1569.002",
            "T1572",
            "T1574.002",
            "T1609",
            "T1610",
            "T1611",
            "T1613",
            "T1620",
        ];
        for id in ids {
            assert!(is_valid(id), "{id}");
        }
        assert_eq!(name("T1059.001"), Some("PowerShell"));
        assert_eq!(name("T1003.008"), Some("/etc/passwd and /etc/shadow"));
    }

    #[test]
    fn made_up_and_malformed_ids_are_rejected() {
        for id in ["T9999", "T1059.999", "T1218.006", "t1059", "T1059.1", "1059", "", "T1059.001 "] {
            assert!(!is_valid(id), "{id:?}");
        }
        assert!(!is_well_formed("T105"));
        assert!(is_well_formed("T1105"));
    }

    #[test]
    fn validate_splits_and_normalises() {
        let (valid, rejected) = validate(["T1105", " t1059.001", "T9999", "bogus"]);
        assert_eq!(valid, ["T1105", "T1059.001"]);
        assert_eq!(rejected, ["T9999", "bogus"]);
    }
}
