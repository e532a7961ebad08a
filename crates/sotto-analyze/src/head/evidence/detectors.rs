//! The detector table: every piece of evidence, its id (part of the head file's feature
//! layout), the phrase a verdict shows and the test on the event's view. Data, in the order the
//! head weighs it; the helpers it calls live in `evidence`.

use sotto_events::Os;

use super::*;

/// Every detector, in a fixed order: the order is part of the head file's feature layout.
pub static DETECTORS: &[Detector] = &[
    Detector {
        id: "image_user_writable",
        phrase: "runs from a user-writable folder",
        test: |v| b(user_writable(&v.image)),
    },
    Detector {
        id: "image_temp",
        phrase: "runs from Temp",
        test: |v| b(any(&v.image, &["\\temp\\", "\\tmp\\", "/tmp/", "/var/tmp/", "/dev/shm/", "/private/tmp/"])),
    },
    Detector {
        id: "image_public",
        phrase: "runs from a public or shared folder",
        test: |v| b(any(&v.image, &["\\users\\public\\", "\\programdata\\", "\\perflogs\\", "/users/shared/"])),
    },
    Detector { id: "image_system_dir", phrase: "runs from the system folder", test: |v| b(system_dir(&v.image)) },
    Detector {
        id: "image_program_files",
        phrase: "runs from an installed program's folder",
        test: |v| b(program_files(&v.image)),
    },
    Detector {
        id: "image_hidden",
        phrase: "runs from a hidden path",
        test: |v| b(v.image.contains("/.") || v.image.contains("\\$recycle")),
    },
    Detector { id: "dual_use", phrase: "dual-use system binary", test: |v| b(DUAL_USE.contains(&v.name.as_str())) },
    Detector { id: "shell", phrase: "a command shell", test: |v| b(is_shell(&v.name)) },
    Detector {
        id: "masquerade",
        phrase: "system binary name outside the system folder",
        test: |v| b(MASQUERADE.contains(&v.name.as_str()) && v.image.contains('\\') && !system_dir(&v.image)),
    },
    Detector {
        id: "odd_name",
        phrase: "random-looking or double-extension file name",
        test: |v| {
            b(HEX_NAME.is_match(&v.name)
                || any(&v.name, &[".pdf.exe", ".doc.exe", ".docx.exe", ".jpg.exe", ".txt.exe", ".xls.exe", ".scr"]))
        },
    },
    Detector {
        id: "office_parent",
        phrase: "Office or document-reader parent",
        test: |v| b(OFFICE.contains(&v.parent.as_str())),
    },
    Detector {
        id: "office_spawns_shell",
        phrase: "a document spawned a shell or script host",
        test: |v| b(OFFICE.contains(&v.parent.as_str()) && (is_shell(&v.name) || DUAL_USE.contains(&v.name.as_str()))),
    },
    Detector {
        id: "script_host_parent",
        phrase: "script-host parent",
        test: |v| b(SCRIPT_HOSTS.contains(&v.parent.as_str())),
    },
    Detector {
        id: "server_spawns_shell",
        phrase: "a server process spawned a shell or system tool",
        test: |v| {
            b(SERVERS.contains(&v.parent.as_str())
                && (is_shell(&v.name)
                    || DUAL_USE.contains(&v.name.as_str())
                    || v.name == "whoami.exe"
                    || v.name == "whoami"))
        },
    },
    Detector {
        id: "wmi_parent",
        phrase: "started through WMI",
        test: |v| b(v.parent == "wmiprvse.exe" && (is_shell(&v.name) || DUAL_USE.contains(&v.name.as_str()))),
    },
    Detector { id: "shell_parent", phrase: "started from a shell", test: |v| b(is_shell(&v.parent)) },
    Detector {
        id: "parent_user_writable",
        phrase: "parent runs from a user-writable folder",
        test: |v| b(user_writable(&v.parent_path)),
    },
    Detector {
        id: "services_parent",
        phrase: "started by the service manager",
        test: |v| b(v.parent == "services.exe" || v.parent == "systemd" || v.parent == "launchd"),
    },
    Detector {
        id: "encoded_powershell",
        phrase: "encoded PowerShell",
        test: |v| {
            b(any(&v.name, &["powershell", "pwsh"]) && PS_ENC.is_match(&v.cmd_raw) || v.cmd.contains("-encodedcommand"))
        },
    },
    Detector { id: "base64_blob", phrase: "long base64 argument", test: |v| b(BASE64.is_match(&v.cmd_raw)) },
    Detector {
        id: "decode_then_run",
        phrase: "decodes data and runs it",
        test: |v| {
            b(v.has(&[
                "frombase64string",
                "base64 -d",
                "base64 --decode",
                "certutil -decode",
                "-decodehex",
                "b64decode",
                "openssl enc -d",
            ]) || (v.cmd.contains("base64") && v.has(&["| sh", "|sh", "| bash", "|bash", "| python"])))
        },
    },
    Detector {
        id: "obfuscation",
        phrase: "obfuscated command line",
        test: |v| {
            let carets = v.cmd.matches('^').count();
            let ticks = v.cmd.matches('`').count();
            let concat = v.cmd.matches("'+'").count() + v.cmd.matches("\"+\"").count();
            b(carets >= 3
                || ticks >= 3
                || concat >= 2
                || v.has(&[
                    "[char]",
                    "-join",
                    "-bxor",
                    "[array]::reverse",
                    "%comspec:~",
                    "set-alias",
                    "-replace",
                    "::utf8.getstring",
                    "iex(",
                    "i`e`x",
                    "$env:comspec[",
                    "chr(",
                ]))
        },
    },
    Detector { id: "url", phrase: "URL in the command line", test: |v| b(URL.is_match(&v.cmd)) },
    Detector { id: "ip_url", phrase: "URL to a bare IP address", test: |v| b(IP_URL.is_match(&v.cmd)) },
    Detector {
        id: "bare_ip",
        phrase: "IP address in the arguments",
        test: |v| b(BARE_IP.captures_iter(v.args()).any(|c| !c[1].starts_with("127.") && &c[1] != "0.0.0.0")),
    },
    Detector {
        id: "download",
        phrase: "downloads a file",
        test: |v| {
            b(v.has(&[
                "downloadstring",
                "downloadfile",
                "downloaddata",
                "invoke-webrequest",
                "iwr ",
                "wget ",
                "curl ",
                "-urlcache",
                "/transfer",
                "start-bitstransfer",
                "net.webclient",
                "invoke-restmethod",
                "irm ",
                "urldownloadtofile",
                "msxml2.xmlhttp",
                "winhttprequest",
            ]) || (v.name == "curl" || v.name == "wget" || v.name == "curl.exe") && URL.is_match(&v.cmd))
        },
    },
    Detector {
        id: "download_exec",
        phrase: "runs what it downloads",
        test: |v| {
            let download = v.has(&[
                "downloadstring",
                "net.webclient",
                "invoke-webrequest",
                "iwr ",
                "curl ",
                "wget ",
                "invoke-restmethod",
                "irm ",
            ]);
            let exec = v.has(&[
                "iex",
                "invoke-expression",
                "| sh",
                "|sh",
                "| bash",
                "|bash",
                "| python",
                "|python",
                "&& chmod +x",
                "; chmod +x",
                "start-process",
            ]);
            b(download && exec)
        },
    },
    Detector {
        id: "hidden_window",
        phrase: "hidden or non-interactive PowerShell",
        test: |v| {
            b(any(&v.name, &["powershell", "pwsh"])
                && v.has(&[
                    "-w hidden",
                    "-windowstyle hidden",
                    "-win hidden",
                    "-window hidden",
                    "-nop ",
                    "-noni ",
                    "-noninteractive",
                    "-w 1 ",
                ]))
        },
    },
    Detector {
        id: "policy_bypass",
        phrase: "execution policy bypassed",
        test: |v| {
            b(v.has(&[
                "-executionpolicy bypass",
                "-ep bypass",
                "-exec bypass",
                "-executionpolicy unrestricted",
                "set-executionpolicy",
            ]))
        },
    },
    Detector {
        id: "script_file_user_path",
        phrase: "runs a script from a user folder",
        test: |v| {
            let script =
                v.has(&[".js", ".jse", ".vbs", ".vbe", ".hta", ".wsf", ".ps1", ".bat", ".cmd", ".sct", ".sh", ".py"]);
            b(script && user_writable(v.args()))
        },
    },
    Detector {
        id: "proxy_execution",
        phrase: "signed binary used to run other code",
        test: |v| {
            b(match v.name.as_str() {
                "rundll32.exe" => {
                    v.has(&[
                        "javascript:",
                        "url.dll",
                        "advpack",
                        "ieadvpack",
                        "shell32.dll,control_rundll",
                        "zipfldr",
                        "pcwutl",
                        "mshtml",
                        "setupapi",
                        ",#",
                    ]) || user_writable(v.args())
                        || v.args().is_empty()
                }
                "regsvr32.exe" => v.has(&["/i:", "-i:", "scrobj", "http"]) || user_writable(v.args()),
                "mshta.exe" => v.has(&["http", "javascript:", "vbscript:", ".hta"]),
                "msbuild.exe" | "installutil.exe" | "regasm.exe" | "regsvcs.exe" | "cmstp.exe" | "odbcconf.exe"
                | "mavinject.exe" => true,
                "forfiles.exe" => v.cmd.contains("/c"),
                "pcalua.exe" => v.cmd.contains("-a"),
                "msiexec.exe" => URL.is_match(&v.cmd) || (v.cmd.contains("/y") || v.cmd.contains("/z")),
                "hh.exe" => URL.is_match(&v.cmd),
                "certutil.exe" => v.has(&["-urlcache", "-decode", "-verifyctl", "-split"]),
                _ => false,
            })
        },
    },
    Detector {
        id: "credential_access",
        phrase: "touches credentials (LSASS, SAM, NTDS, shadow, keychain)",
        test: |v| {
            b(v.has(&[
                "lsass",
                "sekurlsa",
                "logonpasswords",
                "asreproast",
                "tgtdeleg",
                "/format:hashcat",
                "-format:hashcat",
                "s4u ",
                "/ptt",
                "golden ",
                "lazagne",
                "lsadump",
                "hklm\\sam",
                "hklm\\security",
                "hkey_local_machine\\sam",
                "ntds.dit",
                "minidump",
                "comsvcs",
                "/etc/shadow",
                "unshadow",
                "dump-keychain",
                "find-generic-password",
                "find-internet-password",
                "hashdump",
                "mimikatz",
                "kerberoast",
                "asktgt",
                "dcsync",
                "vaultcmd",
                "cmdkey /list",
                "credentialmanager",
                "login data",
                ".aws/credentials",
                "id_rsa",
            ]) || (any(&v.name, &["procdump", "rdrleakdiag"]) && v.cmd.contains("-ma")))
        },
    },
    Detector {
        id: "directory_dump",
        phrase: "copies the domain database or makes a snapshot to read it",
        test: |v| {
            b((v.cmd.contains("ntdsutil") && v.has(&["ifm", "ac i ntds", "activate instance", "create full"]))
                || (v.cmd.contains("esentutl") && v.has(&["/vss", "ntds", "/y"]))
                || v.cmd.contains("harddiskvolumeshadowcopy"))
        },
    },
    Detector {
        id: "tunnel",
        phrase: "opens a port forward or tunnel",
        test: |v| {
            b(v.has(&[
                "portproxy",
                "ssh -r ",
                "ssh -d ",
                "plink",
                "chisel",
                "ngrok",
                "frpc",
                "socks5",
                "-nfr ",
                "-fnr ",
                "reverse tunnel",
                "cloudflared tunnel",
                "gost -l",
            ]))
        },
    },
    Detector {
        id: "hidden_staging",
        phrase: "writes to or runs from a hidden folder in a temporary or cache location",
        test: |v| {
            let hidden = [
                "/tmp/.",
                "/var/tmp/.",
                "/dev/shm/.",
                "/private/tmp/.",
                "/private/var/tmp/.",
                "/library/caches/.",
                "\\appdata\\local\\temp\\.",
            ];
            b(any(&v.cmd, &hidden) || any(&v.image, &hidden))
        },
    },
    Detector {
        id: "hijack",
        phrase: "loader or debugger hijack",
        test: |v| {
            b(v.has(&[
                "ld_preload=",
                "ld.so.preload",
                "dyld_insert_libraries",
                "\\debugger",
                "appinit_dlls",
                "image file execution options",
                "silentprocessexit",
                "inprocserver32",
            ]))
        },
    },
    Detector {
        id: "setuid",
        phrase: "makes a setuid binary",
        test: |v| b(v.has(&["chmod u+s", "chmod +s", "chmod 4755", "chmod 4777", "chmod 6755", "chmod g+s"])),
    },
    Detector {
        id: "collection",
        phrase: "collects screens, keystrokes, clipboard or mail",
        test: |v| {
            b(v.has(&[
                "screencapture",
                "screenshot",
                "get-clipboard",
                "pbpaste",
                "xclip",
                "keylog",
                "getasynckeystate",
                ".pst",
                ".ost",
                "copyfromscreen",
                "import -window root",
                "xwd -root",
            ]))
        },
    },
    Detector {
        id: "hive_save",
        phrase: "saves a registry hive",
        test: |v| b(v.cmd.contains("reg") && v.cmd.contains(" save ") && v.has(&["sam", "system", "security"])),
    },
    Detector {
        id: "shadow_or_backup_delete",
        phrase: "deletes shadow copies or backups",
        test: |v| {
            b(v.has(&[
                "delete shadows",
                "shadowcopy delete",
                "shadowcopy where",
                "delete catalog",
                "recoveryenabled no",
                "bootstatuspolicy ignoreallfailures",
                "resize shadowstorage",
                "delete systemstatebackup",
                "win32_shadowcopy",
                "tmutil delete",
            ]))
        },
    },
    Detector {
        id: "log_tamper",
        phrase: "clears logs or history",
        test: |v| {
            b(v.has(&[
                "wevtutil cl",
                "wevtutil.exe cl",
                "clear-eventlog",
                "remove-eventlog",
                "usn deletejournal",
                "history -c",
                "unset histfile",
                "histfile=/dev/null",
                "rm -rf /var/log",
                "> /var/log/",
                "log erase",
                "lsquarantineevent",
                "shred ",
                ".bash_history",
                "auditpol /clear",
                "auditpol /set",
            ]))
        },
    },
    Detector {
        id: "defense_tamper",
        phrase: "disables security tools or the firewall",
        test: |v| {
            b(v.has(&[
                "disablerealtimemonitoring",
                "exclusionpath",
                "exclusionprocess",
                "exclusionextension",
                "disableantispyware",
                "disableioavprotection",
                "disablebehaviormonitoring",
                "advfirewall set",
                "firewall set opmode disable",
                "state off",
                "sc stop windefend",
                "sc config windefend",
                "setenforce 0",
                "systemctl stop auditd",
                "service auditd stop",
                "spctl --master-disable",
                "ufw disable",
                "iptables -f",
                "quarantine",
                "amsiutils",
                "amsiinitfailed",
            ]))
        },
    },
    Detector {
        id: "persistence",
        phrase: "sets up persistence (run key, task, service, cron, launch agent)",
        test: |v| {
            b(v.has(&[
                "\\currentversion\\run",
                "\\currentversion\\winlogon",
                "image file execution options",
                "schtasks /create",
                "schtasks.exe /create",
                "schtasks /change",
                "new-scheduledtask",
                "register-scheduledtask",
                "sc create",
                "sc.exe create",
                "sc config",
                "new-service",
                "crontab",
                "/etc/cron",
                "authorized_keys",
                "launchagents",
                "launchdaemons",
                "ld.so.preload",
                "/etc/rc.local",
                ".bashrc",
                ".bash_profile",
                ".zshrc",
                "__eventfilter",
                "commandlineeventconsumer",
                "startup\\",
                "userinit",
                "systemctl enable",
            ]))
        },
    },
    Detector {
        id: "account_change",
        phrase: "creates or elevates an account",
        test: |v| {
            b((v.cmd.contains("net") && v.cmd.contains(" user ") && v.cmd.contains("/add"))
                || (v.cmd.contains("localgroup") && v.cmd.contains("/add"))
                || (v.cmd.contains("group") && v.cmd.contains("/add") && v.cmd.contains("/domain"))
                || v.has(&[
                    "useradd",
                    "adduser",
                    "usermod -ag",
                    "usermod -a -g",
                    "dscl . -create",
                    "dscl . -append",
                    "new-localuser",
                    "add-localgroupmember",
                    "-o -u 0",
                    "passwd --stdin",
                ]))
        },
    },
    Detector {
        id: "discovery",
        phrase: "discovery commands",
        test: |v| {
            let n = [
                "whoami",
                "net group",
                "net1 group",
                "net localgroup",
                "nltest",
                "dsquery",
                "adfind",
                "systeminfo",
                "ipconfig",
                "tasklist",
                "quser",
                "qwinsta",
                "arp -a",
                "netstat",
                "net view",
                "net share",
                "net session",
                "get-aduser",
                "get-adcomputer",
                "get-netdomain",
                "sharphound",
                "bloodhound",
                "seatbelt",
                "uname -a",
                "id;",
                "cat /etc/passwd",
                "hostname",
                "ifconfig",
                "route print",
                "cmdkey",
                "klist",
                "wmic computersystem",
                "wmic os",
                "domain_trusts",
                "dclist",
            ]
            .iter()
            .filter(|n| v.cmd.contains(*n))
            .count();
            n.min(4) as f32 / 2.0
        },
    },
    Detector {
        id: "domain_discovery",
        phrase: "domain or privileged-group discovery",
        test: |v| {
            b(v.has(&[
                "domain admins",
                "enterprise admins",
                "nltest",
                "dsquery",
                "adfind",
                "/domain",
                "domain_trusts",
                "sharphound",
                "get-netdomain",
                "get-adgroupmember",
            ]))
        },
    },
    Detector {
        id: "remote_execution",
        phrase: "runs a command on another host",
        test: |v| {
            b(v.has(&[
                "/node:",
                "\\\\admin$",
                "\\admin$",
                "\\c$",
                "invoke-command",
                "enter-pssession",
                "-computername",
                "winrs",
                "psexec",
                "paexec",
                "schtasks /s ",
                "sc \\\\",
                "wmiexec",
                "smbexec",
                "dcomexec",
            ]) || v.name == "psexesvc.exe"
                || v.parent == "psexesvc.exe"
                || v.parent == "wsmprovhost.exe")
        },
    },
    Detector {
        id: "reverse_shell",
        phrase: "reverse-shell pattern",
        test: |v| {
            b(v.has(&[
                "/dev/tcp/",
                "/dev/udp/",
                "nc -e",
                "ncat -e",
                "nc -c",
                "-e /bin/sh",
                "-e /bin/bash",
                "pty.spawn",
                "mkfifo",
                "socat exec",
                "socat tcp",
                "exec:",
                "bash -i",
                "sh -i",
                "s.connect((",
                "tcpclient(",
                "net.sockets.tcpclient",
                "fsockopen",
                "socket(socket",
            ]))
        },
    },
    Detector {
        id: "miner",
        phrase: "crypto-miner arguments",
        test: |v| {
            b(v.has(&[
                "stratum+tcp",
                "stratum+ssl",
                "xmrig",
                "minerd",
                "--donate-level",
                "cryptonight",
                "randomx",
                "-o pool.",
                "nicehash",
            ]))
        },
    },
    Detector {
        id: "exfil",
        phrase: "uploads data or stages an archive",
        test: |v| {
            b(v.has(&[
                "rclone",
                "megacmd",
                "mega-put",
                "transfer.sh",
                "pastebin",
                "--upload-file",
                "-t ftp",
                "curl -f ",
                "curl -x post",
                "-method post",
                "uploadfile",
                "ftp -s:",
                "scp -r /",
                "exfil",
            ]) || (v.has(&["7z", "rar", "zip"]) && v.has(&[" -p", " -hp", "-password", "--password", " -e "])))
        },
    },
    Detector {
        id: "impact",
        phrase: "destroys or encrypts data",
        test: |v| {
            b(v.has(&[
                "cipher /w",
                "cipher.exe /w",
                "format c:",
                "del /s /q c:\\",
                "rm -rf /",
                "dd if=/dev/zero of=/dev/",
                "shred -",
                "readme_decrypt",
                "how_to_decrypt",
                "your files",
                ".locked",
                "vssadmin resize",
                "everyone:f",
                "everyone:(f)",
                "/grant everyone",
                "mkfs.",
            ]))
        },
    },
    Detector {
        id: "permission_change",
        phrase: "makes a file executable or setuid",
        test: |v| {
            b(v.has(&[
                "chmod +x",
                "chmod 777",
                "chmod 755 /tmp",
                "chmod u+s",
                "chmod 4755",
                "chmod +s",
                "attrib +h",
                "attrib +s",
                "chattr +i",
                "takeown /f",
                "icacls",
            ]))
        },
    },
    Detector {
        id: "container_escape",
        phrase: "privileged container or host namespace",
        test: |v| {
            b(v.has(&[
                "--privileged",
                "-v /:/",
                "--pid=host",
                "nsenter",
                "chroot /host",
                "/var/run/docker.sock",
                "--net=host",
                "kube-system",
            ]))
        },
    },
    Detector {
        id: "uac_bypass",
        phrase: "UAC-bypass pattern",
        test: |v| {
            b(matches!(
                v.parent.as_str(),
                "fodhelper.exe"
                    | "eventvwr.exe"
                    | "sdclt.exe"
                    | "computerdefaults.exe"
                    | "wsreset.exe"
                    | "slui.exe"
                    | "cmstp.exe"
            ) || v.has(&["ms-settings\\shell", "mscfile\\shell", "delegateexecute"]))
        },
    },
    Detector {
        id: "named_pipe_echo",
        phrase: "writes to a named pipe from a shell",
        test: |v| b(v.cmd.contains("\\\\.\\pipe\\") && v.cmd.contains("echo")),
    },
    Detector {
        id: "lolbin_no_args",
        phrase: "a proxy binary started with no arguments",
        test: |v| {
            b(matches!(
                v.name.as_str(),
                "rundll32.exe"
                    | "regsvr32.exe"
                    | "dllhost.exe"
                    | "gpupdate.exe"
                    | "werfault.exe"
                    | "searchprotocolhost.exe"
            ) && v.args().is_empty()
                && !v.cmd.is_empty()
                && !matches!(v.parent.as_str(), "svchost.exe" | "services.exe"))
        },
    },
    Detector {
        id: "chained",
        phrase: "several commands chained",
        test: |v| {
            let n = v.cmd.matches("&&").count()
                + v.cmd.matches("||").count()
                + v.cmd.matches(" & ").count()
                + v.cmd.matches("; ").count()
                + v.cmd.matches(" | ").count();
            (n.min(6) as f32) / 3.0
        },
    },
    Detector {
        id: "long_command",
        phrase: "very long command line",
        test: |v| ((v.cmd.len() as f32 + 1.0).ln() / 8.0).min(1.5),
    },
    Detector {
        id: "system_user",
        phrase: "runs as SYSTEM or root",
        test: |v| {
            b(any(&v.user, &["system", "nt authority\\system", "root", "uid=0"])
                && !v.user.contains("local service")
                && !v.user.contains("network service")
                || v.integrity == "system")
        },
    },
    Detector { id: "high_integrity", phrase: "elevated (high integrity)", test: |v| b(v.integrity == "high") },
    Detector {
        id: "low_integrity",
        phrase: "low integrity",
        test: |v| b(v.integrity == "low" || v.integrity == "untrusted"),
    },
    Detector {
        id: "service_account",
        phrase: "runs as a service account",
        test: |v| {
            b(any(
                &v.user,
                &[
                    "local service",
                    "network service",
                    "www-data",
                    "nobody",
                    "daemon",
                    "_www",
                    "apache",
                    "nginx",
                    "iis apppool",
                ],
            ))
        },
    },
    Detector {
        id: "web_user_shell",
        phrase: "a web or service account runs a shell",
        test: |v| {
            b(any(&v.user, &["www-data", "iis apppool", "apache", "nginx", "_www", "tomcat"])
                && (is_shell(&v.name) || DUAL_USE.contains(&v.name.as_str())))
        },
    },
    Detector { id: "cmd_missing", phrase: "command line not recorded", test: |v| b(v.cmd_missing) },
    Detector { id: "os_windows", phrase: "Windows", test: |v| b(v.os == Os::Windows) },
    Detector { id: "os_linux", phrase: "Linux", test: |v| b(v.os == Os::Linux) },
    Detector { id: "os_macos", phrase: "macOS", test: |v| b(v.os == Os::Macos) },
];
