//! Re-quantizing a GGUF file with llama.cpp's own quantizer: how `sotto bench plan` makes the
//! Q8_0 and Q4_0 variants of the shipped models it validates the predictor on, and `sotto plan`
//! the Q4_K_M file it measures the K-quants' decode on. The weights'
//! quality does not matter there (speed does not depend on their values), so a file already
//! quantized may be quantized again.
//!
//! Must not: leave a partial output behind when llama.cpp fails.

use std::ffi::CString;
use std::path::Path;

use crate::EngineError;

/// The target types the bench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    Q4_0,
    Q8_0,
    /// Q4_K_M: K-quants, Q6_K for the attention values and half the feed-forward downs.
    Q4KM,
}

impl QuantType {
    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q4_0 => "Q4_0",
            QuantType::Q8_0 => "Q8_0",
            QuantType::Q4KM => "Q4_K_M",
        }
    }

    fn ftype(self) -> llama_cpp_sys_2::llama_ftype {
        match self {
            QuantType::Q4_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_0,
            QuantType::Q8_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0,
            QuantType::Q4KM => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_K_M,
        }
    }
}

/// Writes `input` quantized to `to` at `output`, with `threads` threads.
pub fn quantize(input: &Path, output: &Path, to: QuantType, threads: u32) -> Result<(), EngineError> {
    let path = |p: &Path| {
        CString::new(p.to_string_lossy().as_bytes())
            .map_err(|_| EngineError::Decode(format!("{} has a NUL byte in its path", p.display())))
    };
    let (input_c, output_c) = (path(input)?, path(output)?);
    // The backend must be up for llama.cpp's quantizer; initialising it again is harmless.
    // SAFETY: plain calls into llama.cpp with valid, NUL-terminated paths and its default
    // parameters, changed only in plain fields; the parameter struct outlives the call.
    let rc = unsafe {
        llama_cpp_sys_2::llama_backend_init();
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.nthread = threads.max(1) as i32;
        params.ftype = to.ftype();
        params.allow_requantize = true;
        llama_cpp_sys_2::llama_model_quantize(input_c.as_ptr(), output_c.as_ptr(), &params)
    };
    if rc != 0 {
        let _ = std::fs::remove_file(output);
        return Err(EngineError::Decode(format!(
            "llama.cpp could not quantize {} to {} (status {rc})",
            input.display(),
            to.name()
        )));
    }
    Ok(())
}
