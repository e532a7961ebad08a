//! Fuzzes `parse_line` (JSON, Windows event XML, auditd text) and `parse_auditd`, and renders
//! and truncates whatever parses. Must not: assert anything but the absence of a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(mut event) = sotto_events::parse_line(&text) {
        let _ = event.render();
        event.truncate(8);
        let _ = event.render();
    }
    for mut event in sotto_events::parse_auditd(&text).into_iter().flatten() {
        event.truncate(8);
        let _ = event.render();
    }
});
