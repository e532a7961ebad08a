//! One module per input format, each with `matches` (shape detection, where the format is
//! JSON) and `parse` (normalisation). Shared helpers for values several formats spell alike.
//!
//! Must not: decide detection order (that is `lib.rs`, documented on `parse_json`), or render
//! anything for a model.

pub(crate) mod auditd;
pub(crate) mod ecs;
pub(crate) mod falco;
pub(crate) mod ocsf;
pub(crate) mod osquery;
pub(crate) mod plain;
pub(crate) mod security;
pub(crate) mod sysmon;
pub(crate) mod windows;

/// A hash algorithm name as a map key: lower case, without dashes or underscores
/// ("SHA-256" and "SHA256" both become "sha256").
pub(crate) fn hash_key(algorithm: &str) -> String {
    algorithm.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect()
}

/// `DOMAIN\name` when a separate domain is given and the name does not already carry one.
pub(crate) fn join_domain(domain: Option<String>, name: Option<String>) -> Option<String> {
    match (domain, name) {
        (Some(d), Some(n)) if !n.contains('\\') && !n.contains('@') => Some(format!("{d}\\{n}")),
        (_, n) => n,
    }
}

/// A user described by name or numeric id, with the login (audit) user when it differs: on
/// Linux `sudo` keeps the login uid, which tells who really ran the command.
pub(crate) fn describe_user(user: Option<String>, login: Option<String>) -> Option<String> {
    /// auditd and osquery spell "no login user" as (u32)-1 or "unset".
    fn unset(s: &str) -> bool {
        matches!(s, "4294967295" | "-1" | "unset" | "auid=4294967295" | "auid=-1")
    }
    let login = login.filter(|l| !unset(l));
    match (user, login) {
        (Some(u), Some(l)) if u.strip_prefix("uid=").unwrap_or(&u) != l.strip_prefix("auid=").unwrap_or(&l) => {
            Some(format!("{u} (login {l})"))
        }
        (Some(u), _) => Some(u),
        (None, Some(l)) => Some(format!("login {l}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys_are_normalised() {
        assert_eq!(hash_key("SHA-256"), "sha256");
        assert_eq!(hash_key("IMPHASH"), "imphash");
        assert_eq!(hash_key("sha_1"), "sha1");
    }

    #[test]
    fn domains_join_once() {
        assert_eq!(join_domain(Some("CORP".into()), Some("jdoe".into())).as_deref(), Some("CORP\\jdoe"));
        assert_eq!(join_domain(Some("CORP".into()), Some("CORP\\jdoe".into())).as_deref(), Some("CORP\\jdoe"));
        assert_eq!(join_domain(None, Some("root".into())).as_deref(), Some("root"));
        assert_eq!(join_domain(Some("CORP".into()), None), None);
    }

    #[test]
    fn login_user_is_kept_when_it_differs() {
        let d = |u: &str, l: &str| describe_user(Some(u.into()), Some(l.into()));
        assert_eq!(d("root", "alice").as_deref(), Some("root (login alice)"));
        assert_eq!(d("uid=0", "auid=1000").as_deref(), Some("uid=0 (login auid=1000)"));
        assert_eq!(d("uid=1000", "auid=1000").as_deref(), Some("uid=1000"));
        assert_eq!(d("root", "4294967295").as_deref(), Some("root"));
        assert_eq!(d("alice", "alice").as_deref(), Some("alice"));
    }
}
