//! `sotto doctor`: what this machine offers a local model, measured rather than assumed (seed
//! 004: an installer that guessed from RAM and core count promised 15 s and delivered minutes).
//! The CPU and its cores, the CPUs this process may use, the instruction-set features
//! llama.cpp uses, memory and its measured bandwidth, GPUs, power, and the OS facilities
//! sotto relies on; a readable summary, or JSON with `--json`.
//!
//! Must not: change the machine (see `probe.rs`), or claim a GPU helps: sotto's llama.cpp is
//! built for the CPU, and the report says so beside any GPU it finds.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

pub mod bandwidth;
pub mod probe;

use bandwidth::Bandwidth;
use probe::{CpuInfo, Facilities, Gpu, Isa, Power};

/// Everything `doctor` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cpu: CpuInfo,
    /// CPUs in this process's affinity mask, and the cgroup's `cpu.max` quota in CPUs.
    pub affinity_cpus: usize,
    pub cgroup_cpus: Option<f64>,
    /// What budgets are fractions of: the smaller of the two.
    pub usable_cpus: f64,
    pub isa: Isa,
    pub memory_total: Option<u64>,
    pub memory_available: Option<u64>,
    pub bandwidth: Option<Bandwidth>,
    pub gpus: Vec<Gpu>,
    pub power: Power,
    pub facilities: Facilities,
}

/// Reads the machine; measures the bandwidth for `bandwidth` (zero: not measured).
pub fn examine(bandwidth: Duration) -> Report {
    let cpu = probe::parse_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    let machine = sotto_governor::Machine::detect();
    let (memory_total, memory_available) =
        probe::parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let usable = machine.cpus();
    Report {
        cpu,
        affinity_cpus: machine.affinity_cpus,
        cgroup_cpus: machine.cgroup_cpus,
        usable_cpus: usable,
        isa: probe::isa(),
        memory_total,
        memory_available,
        bandwidth: (!bandwidth.is_zero()).then(|| bandwidth::measure(usable.ceil() as usize, bandwidth)),
        gpus: probe::gpus(),
        power: probe::power(),
        facilities: probe::facilities(),
    }
}

fn gib(bytes: Option<u64>) -> String {
    bytes.map_or("unknown".into(), |b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64))
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The readable summary.
pub fn summary(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<12}{v}\n"));
    line("CPU", r.cpu.model.clone().unwrap_or_else(|| "unknown".into()));
    let physical = r.cpu.physical_cores.map_or("unknown".into(), |n| n.to_string());
    let cgroup = r.cgroup_cpus.map_or("no cpu.max quota".into(), |c| format!("cgroup cpu.max {c:.2}"));
    line(
        "cores",
        format!(
            "{physical} physical, {} logical; this process may use {:.2} (affinity {}, {cgroup})",
            r.cpu.logical_cpus, r.usable_cpus, r.affinity_cpus
        ),
    );
    let i = &r.isa;
    line(
        "ISA",
        if cfg!(target_arch = "aarch64") {
            format!("NEON {}, SVE {}, i8mm {}", yes(i.neon), yes(i.sve), yes(i.i8mm))
        } else {
            format!(
                "AVX2 {}, AVX-512 {} (VNNI {}), AVX-VNNI {}, F16C {}, FMA {}",
                yes(i.avx2),
                yes(i.avx512),
                yes(i.avx512_vnni),
                yes(i.avx_vnni),
                yes(i.f16c),
                yes(i.fma)
            )
        },
    );
    line("memory", format!("{} total, {} available", gib(r.memory_total), gib(r.memory_available)));
    line(
        "bandwidth",
        r.bandwidth.map_or("not measured (--bandwidth-secs 0)".into(), |b| {
            format!(
                "copy {:.1} GB/s, triad {:.1} GB/s ({} threads, {} MiB arrays, best of {} passes)",
                b.copy / 1e9,
                b.triad / 1e9,
                b.threads,
                b.array_bytes >> 20,
                b.passes
            )
        }),
    );
    if r.gpus.is_empty() {
        line("GPU", "none found; sotto runs llama.cpp on the CPU".into());
    } else {
        for g in &r.gpus {
            line(
                "GPU",
                format!(
                    "{} {} (seen in {}); not used: sotto's llama.cpp is built for the CPU",
                    g.vendor, g.name, g.seen_in
                ),
            );
        }
    }
    let f = &r.facilities;
    line(
        "idle class",
        match &f.idle_class {
            Ok(()) => "available: inference threads yield to everything else".into(),
            Err(e) => format!("unavailable ({e}); nice 19 is the fallback"),
        },
    );
    line(
        "cgroup v2",
        match (&f.cgroup, f.cgroup_v2) {
            (Some((dir, w)), true) => format!("yes; this process is in {dir}, its cpu.max writable: {}", yes(*w)),
            (_, v2) => yes(v2).into(),
        },
    );
    line("Landlock", f.landlock.clone());
    let p = &r.power;
    let ac = p.on_ac.map_or("no mains supply listed".into(), |on| format!("on AC: {}", yes(on)));
    let battery = p.battery.as_ref().map_or("no battery".into(), |(c, st)| format!("battery {c}% {st}"));
    line("power", format!("{ac}; {battery}"));
    s
}

pub fn run(args: crate::cli::DoctorArgs) -> anyhow::Result<ExitCode> {
    if !args.json && args.bandwidth_secs > 0.0 {
        eprintln!("doctor: measuring memory bandwidth for {} s", args.bandwidth_secs);
    }
    let report = examine(Duration::from_secs_f64(args.bandwidth_secs.max(0.0)));
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", summary(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}
