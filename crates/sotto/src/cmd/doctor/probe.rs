//! What `sotto doctor` reads from the machine: the CPU and its cores, the instruction-set
//! features llama.cpp uses, memory, GPUs, power, and the OS facilities sotto relies on. The
//! parsers take the text of `/proc` and `/sys` files as arguments, so they are tested on any
//! text; the probes only read.
//!
//! Must not: change anything on the machine (a facility is tried on a thread of its own that
//! then exits, or a file is opened without being written), or fail the report because one
//! fact is unreadable (that fact is `None`).

use std::path::Path;

use serde::Serialize;

/// The CPU as `/proc/cpuinfo` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuInfo {
    pub model: Option<String>,
    /// Distinct (package, core) pairs; `None` where the file does not say.
    pub physical_cores: Option<usize>,
    pub logical_cpus: usize,
}

/// Parses `/proc/cpuinfo` (x86 and ARM shapes: ARM has no `model name` on some kernels, and
/// no `core id`).
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let mut cores = std::collections::BTreeSet::new();
    let mut package = String::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => info.logical_cpus += 1,
            "model name" | "Hardware" | "cpu model" if info.model.is_none() && !value.is_empty() => {
                info.model = Some(value.to_string());
            }
            "physical id" => package = value.to_string(),
            "core id" => {
                cores.insert((package.clone(), value.to_string()));
            }
            _ => {}
        }
    }
    info.physical_cores = (!cores.is_empty()).then_some(cores.len());
    info
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, bytes.
pub fn parse_meminfo(text: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            kib.checked_mul(1024)
        })
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// Instruction-set features llama.cpp's kernels use, as this CPU reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Isa {
    pub avx2: bool,
    pub avx512: bool,
    pub avx512_vnni: bool,
    pub avx_vnni: bool,
    pub f16c: bool,
    pub fma: bool,
    pub neon: bool,
    pub sve: bool,
    pub i8mm: bool,
}

pub fn isa() -> Isa {
    #[allow(unused_mut, reason = "set on x86 and aarch64 only")]
    let mut isa = Isa::default();
    #[cfg(target_arch = "x86_64")]
    {
        isa.avx2 = std::arch::is_x86_feature_detected!("avx2");
        isa.avx512 = std::arch::is_x86_feature_detected!("avx512f");
        isa.avx512_vnni = std::arch::is_x86_feature_detected!("avx512vnni");
        isa.avx_vnni = std::arch::is_x86_feature_detected!("avxvnni");
        isa.f16c = std::arch::is_x86_feature_detected!("f16c");
        isa.fma = std::arch::is_x86_feature_detected!("fma");
    }
    #[cfg(target_arch = "aarch64")]
    {
        isa.neon = std::arch::is_aarch64_feature_detected!("neon");
        isa.sve = std::arch::is_aarch64_feature_detected!("sve");
        isa.i8mm = std::arch::is_aarch64_feature_detected!("i8mm");
        isa.fma = isa.neon;
    }
    isa
}

/// A GPU, and whether sotto's build can use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// `nvidia`, `amd`, `intel`, `apple`.
    pub vendor: String,
    pub name: String,
    /// Where it was seen (`/proc/driver/nvidia`, `nvidia-smi`, `/sys/class/drm`, ...).
    pub seen_in: String,
}

/// The `Model:` line of an NVIDIA driver `information` file.
pub fn parse_nvidia_information(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string())).filter(|m| !m.is_empty())
}

/// The vendor of a PCI vendor id as `/sys/class/drm/card*/device/vendor` writes it.
pub fn gpu_vendor(pci_vendor: &str) -> Option<&'static str> {
    match pci_vendor.trim().to_lowercase().as_str() {
        "0x10de" => Some("nvidia"),
        "0x1002" => Some("amd"),
        "0x8086" => Some("intel"),
        _ => None,
    }
}

pub fn gpus() -> Vec<Gpu> {
    let mut out = Vec::new();
    for dir in read_dir("/proc/driver/nvidia/gpus") {
        if let Some(name) = read(&dir.join("information")).as_deref().and_then(parse_nvidia_information) {
            out.push(Gpu { vendor: "nvidia".into(), name, seen_in: "/proc/driver/nvidia".into() });
        }
    }
    let smi = || std::process::Command::new("nvidia-smi").args(["--query-gpu=name", "--format=csv,noheader"]).output();
    if let Some(o) = out.is_empty().then(smi).and_then(Result::ok) {
        for name in String::from_utf8_lossy(&o.stdout).lines().map(str::trim).filter(|n| !n.is_empty()) {
            out.push(Gpu { vendor: "nvidia".into(), name: name.into(), seen_in: "nvidia-smi".into() });
        }
    }
    for card in read_dir("/sys/class/drm") {
        let file = card.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if !file.starts_with("card") || file.contains('-') {
            continue; // connectors (card0-HDMI-A-1) are not devices
        }
        let Some(vendor) = read(&card.join("device/vendor")).as_deref().and_then(gpu_vendor) else { continue };
        if vendor == "nvidia" && !out.is_empty() {
            continue; // already named by the driver
        }
        let device = read(&card.join("device/device")).unwrap_or_default();
        let rocm = vendor == "amd" && Path::new("/dev/kfd").exists();
        let name = format!("PCI device {}{}", device.trim(), if rocm { ", ROCm /dev/kfd present" } else { "" });
        out.push(Gpu { vendor: vendor.into(), name, seen_in: "/sys/class/drm".into() });
    }
    if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        out.push(Gpu {
            vendor: "apple".into(),
            name: "Apple silicon GPU (Metal)".into(),
            seen_in: "the platform".into(),
        });
    }
    out
}

/// Mains and battery, where `/sys/class/power_supply` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Power {
    /// Whether mains power is connected; `None`: no mains supply is listed.
    pub on_ac: Option<bool>,
    /// Battery charge, percent, and its status (`Discharging`, `Charging`, `Full`).
    pub battery: Option<(u8, String)>,
}

pub fn power() -> Power {
    let mut p = Power::default();
    for supply in read_dir("/sys/class/power_supply") {
        match read(&supply.join("type")).as_deref().map(str::trim) {
            Some("Mains") => {
                let online = read(&supply.join("online")).is_some_and(|o| o.trim() == "1");
                p.on_ac = Some(p.on_ac.unwrap_or(false) || online);
            }
            Some("Battery") => {
                let capacity = read(&supply.join("capacity")).and_then(|c| c.trim().parse().ok());
                let status = read(&supply.join("status")).unwrap_or_default().trim().to_string();
                if let Some(c) = capacity {
                    p.battery = Some((c, status));
                }
            }
            _ => {}
        }
    }
    p
}

/// The OS facilities sotto uses to stay unnoticed and contained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facilities {
    /// SCHED_IDLE (Linux) or background QoS (macOS) could be set on a thread: `Ok(())`, or why not.
    pub idle_class: Result<(), String>,
    /// The unified cgroup hierarchy is mounted.
    pub cgroup_v2: bool,
    /// This process's cgroup directory, and whether its `cpu.max` opens for writing (the
    /// `budget.cgroup` cap needs a delegated cgroup).
    pub cgroup: Option<(String, bool)>,
    /// Landlock on a probe thread: `fully`, `partly`, `not` enforced, or the error.
    pub landlock: String,
}

pub fn facilities() -> Facilities {
    let idle_class = std::thread::spawn(|| sotto_governor::SchedClass::Idle.apply_to_current_thread())
        .join()
        .map_err(|_| "the probe thread panicked".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let cgroup_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cgroup = read(Path::new("/proc/self/cgroup")).and_then(|text| {
        let rel = sotto_governor::machine::cgroup_v2_path(&text)?.to_string();
        let cpu_max = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')).join("cpu.max");
        // Opened for writing and closed at once: nothing is written.
        let writable = std::fs::OpenOptions::new().write(true).open(&cpu_max).is_ok();
        Some((rel, writable))
    });
    let landlock = std::thread::spawn(|| {
        // Restricts only this probe thread, which then exits.
        let allowed = crate::sandbox::Allowed { read: vec!["/".into()], write: Vec::new() };
        match crate::sandbox::restrict(&allowed) {
            Ok(crate::sandbox::Enforced::Fully) => "fully enforced".to_string(),
            Ok(crate::sandbox::Enforced::Partly) => "partly enforced (an older ABI)".to_string(),
            Ok(crate::sandbox::Enforced::Not) => "not available".to_string(),
            Err(e) => e,
        }
    })
    .join()
    .unwrap_or_else(|_| "the probe thread panicked".into());
    Facilities { idle_class, cgroup_v2, cgroup, landlock }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_dir(dir: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpuinfo_counts_cores_per_package() {
        let text = "processor\t: 0\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t: 0\n\n\
                    processor\t: 1\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t: 0\n\n\
                    processor\t: 2\nphysical id\t: 1\ncore id\t: 0\n";
        let info = parse_cpuinfo(text);
        assert_eq!(info.model.as_deref(), Some("Test CPU"));
        assert_eq!((info.physical_cores, info.logical_cpus), (Some(2), 3));
        let arm = parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 48.00\n\nprocessor\t: 1\n");
        assert_eq!((arm.model, arm.physical_cores, arm.logical_cpus), (None, None, 2));
    }

    #[test]
    fn meminfo_reads_bytes() {
        let text = "MemTotal:       24576000 kB\nMemFree:  1 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_meminfo(text), (Some(24_576_000 * 1024), Some(20_000_000 * 1024)));
        assert_eq!(parse_meminfo("MemTotalish: 5 kB\n"), (None, None));
    }

    #[test]
    fn gpu_facts_parse() {
        assert_eq!(parse_nvidia_information("Model: \t\t NVIDIA H200\nIRQ: 5\n").as_deref(), Some("NVIDIA H200"));
        assert_eq!(parse_nvidia_information("IRQ: 5\n"), None);
        assert_eq!(gpu_vendor("0x1002\n"), Some("amd"));
        assert_eq!(gpu_vendor("0x1af4"), None);
    }

    #[test]
    fn the_probes_describe_this_machine() {
        let info = parse_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
        if cfg!(target_os = "linux") {
            assert!(info.logical_cpus >= 1, "{info:?}");
            assert!(parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap()).0.unwrap() > 0);
        }
        // The report must not depend on a probe succeeding; these only must not panic.
        let _ = (gpus(), power());
        let f = facilities();
        assert!(!f.landlock.is_empty());
    }

    proptest! {
        #[test]
        fn the_parsers_take_any_text(text in any::<String>()) {
            let info = parse_cpuinfo(&text);
            prop_assert!(info.physical_cores.unwrap_or(0) <= text.len());
            let _ = parse_meminfo(&text);
            let _ = parse_nvidia_information(&text);
            let _ = gpu_vendor(&text);
        }
    }
}
