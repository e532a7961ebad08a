//! Fuzzes the `.evtx` reader with the bytes as a whole file (seed the corpus with a valid
//! file header so the fuzzer reaches chunks and records). Must not: assert anything but the
//! absence of a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(records) = sotto_events::read_evtx_from(std::io::Cursor::new(data.to_vec()), "fuzz.evtx") else {
        return;
    };
    for mut event in records.flatten() {
        event.truncate(8);
        let _ = event.render();
    }
});
