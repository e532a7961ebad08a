//! Fuzzes `parse_json` with whatever JSON the bytes hold, and renders and truncates whatever
//! parses. Must not: assert anything but the absence of a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(mut event) = sotto_events::parse_json(&value) {
        let _ = event.render();
        event.truncate(8);
        let _ = event.render();
    }
});
