//! A synthetic llama GGUF with random weights, written here so that `sotto plan` can calibrate
//! on models shaped unlike the two it ships: a wider one (llama.cpp's kernels cost less per
//! weight on wider matrices, and a fit on 576- and 640-wide models alone over-predicts what a
//! 2048-wide one needs, `sotto bench plan`, 2026-12-03) and a deeper one (each layer costs a
//! decoded token more than its bytes: a 0.5B model of 24 layers decoded 20-30% slower than
//! the bandwidth alone predicted, 2026-12-03). Speed does not depend on the weights' values, so
//! random Q4_0 blocks with one small scale stand in for a trained model.
//!
//! The vocabulary is byte-level SentencePiece (`<unk>`, `<s>`, `</s>` and the 256 byte
//! tokens): every byte of a prompt is one token, and the file needs no tokenizer of another
//! model. The token embedding is f32 and tied (the output matrix), so that every layer weight
//! and nothing else is Q4_0.
//!
//! Must not: leave a partial file under the final name (it is written beside it and renamed).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The shape of a synthetic model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub embedding: u64,
    pub layers: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub feed_forward: u64,
}

impl Dims {
    /// What `sotto plan` calibrates on beside the shipped models: Llama 3.2 1B's layers
    /// (2048 wide, 8192 feed-forward, grouped-query attention), four of them. About 240M
    /// parameters and 140 MB.
    pub const WIDE: Dims = Dims { embedding: 2048, layers: 4, heads: 32, kv_heads: 8, feed_forward: 8192 };
    /// The other end: forty narrow layers (512 wide, 1024 feed-forward), about 88M parameters
    /// and 50 MB, so that a decoded token's cost per layer beyond its bytes (each layer's
    /// operations dispatched and their threads joined) is told apart from the bandwidth.
    pub const DEEP: Dims = Dims { embedding: 512, layers: 40, heads: 8, kv_heads: 2, feed_forward: 1024 };
}

/// Byte-level SentencePiece tokens: three specials, then the 256 bytes.
const VOCAB: u64 = 3 + 256;
/// GGUF value types.
const T_U32: u32 = 4;
const T_F32: u32 = 6;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_I32: u32 = 5;
/// ggml tensor types.
const GGML_F32: u32 = 0;
const GGML_Q4_0: u32 = 2;
/// Q4_0: 32 weights a block, an f16 scale and 16 bytes of nibbles.
const Q4_0_BLOCK: (u64, u64) = (32, 18);
/// f16 of 0.0045: random nibbles (−8..7, standard deviation about 4.6) times it give weights
/// of about 0.02, as a freshly initialized model has, so activations stay finite.
const Q4_0_SCALE: [u8; 2] = 0x1c9cu16.to_le_bytes();
const ALIGNMENT: u64 = 32;

/// One tensor: its name, GGUF dimensions (the input width first) and type.
struct Tensor {
    name: String,
    dims: Vec<u64>,
    ty: u32,
}

impl Tensor {
    fn bytes(&self) -> u64 {
        let n: u64 = self.dims.iter().product();
        match self.ty {
            GGML_F32 => n * 4,
            _ => n / Q4_0_BLOCK.0 * Q4_0_BLOCK.1,
        }
    }
}

fn tensors(d: &Dims) -> Vec<Tensor> {
    let head_dim = d.embedding / d.heads;
    let t = |name: String, dims: &[u64], ty| Tensor { name, dims: dims.to_vec(), ty };
    let mut all = vec![t("token_embd.weight".into(), &[d.embedding, VOCAB], GGML_F32)];
    for i in 0..d.layers {
        let p = |s: &str| format!("blk.{i}.{s}.weight");
        all.extend([
            t(p("attn_norm"), &[d.embedding], GGML_F32),
            t(p("attn_q"), &[d.embedding, d.heads * head_dim], GGML_Q4_0),
            t(p("attn_k"), &[d.embedding, d.kv_heads * head_dim], GGML_Q4_0),
            t(p("attn_v"), &[d.embedding, d.kv_heads * head_dim], GGML_Q4_0),
            t(p("attn_output"), &[d.heads * head_dim, d.embedding], GGML_Q4_0),
            t(p("ffn_norm"), &[d.embedding], GGML_F32),
            t(p("ffn_gate"), &[d.embedding, d.feed_forward], GGML_Q4_0),
            t(p("ffn_down"), &[d.feed_forward, d.embedding], GGML_Q4_0),
            t(p("ffn_up"), &[d.embedding, d.feed_forward], GGML_Q4_0),
        ]);
    }
    all.push(t("output_norm.weight".into(), &[d.embedding], GGML_F32));
    all
}

/// Writes the model to `path` (through `path.partial`); returns its parameter count.
pub fn write_llama(path: &Path, d: &Dims) -> io::Result<u64> {
    if d.heads == 0
        || d.kv_heads == 0
        || !d.embedding.is_multiple_of(d.heads)
        || !d.embedding.is_multiple_of(Q4_0_BLOCK.0)
    {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no llama has the shape {d:?}")));
    }
    let partial = path.with_extension("partial");
    let result = write_to(&partial, d).and_then(|params| std::fs::rename(&partial, path).map(|()| params));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn write_to(path: &Path, d: &Dims) -> io::Result<u64> {
    let tensors = tensors(d);
    let mut w = Gguf(BufWriter::new(File::create(path)?));
    let name = format!("synthetic llama {}x{} q4_0", d.layers, d.embedding);
    let tokens: Vec<String> = ["<unk>", "<s>", "</s>"]
        .into_iter()
        .map(String::from)
        .chain((0..=255u8).map(|b| format!("<0x{b:02X}>")))
        .collect();
    // llama.cpp's token types: 2 unknown, 3 control, 6 byte.
    let types: Vec<i32> = [2, 3, 3].into_iter().chain(std::iter::repeat_n(6, 256)).collect();
    let u32s: [(&str, u64); 10] = [
        ("llama.context_length", 8192),
        ("llama.embedding_length", d.embedding),
        ("llama.block_count", d.layers),
        ("llama.feed_forward_length", d.feed_forward),
        ("llama.attention.head_count", d.heads),
        ("llama.attention.head_count_kv", d.kv_heads),
        ("llama.rope.dimension_count", d.embedding / d.heads),
        ("tokenizer.ggml.unknown_token_id", 0),
        ("tokenizer.ggml.bos_token_id", 1),
        ("tokenizer.ggml.eos_token_id", 2),
    ];
    w.0.write_all(b"GGUF")?;
    w.u32(3)?;
    w.u64(tensors.len() as u64)?;
    w.u64(5 + u32s.len() as u64 + 3)?;
    w.kv_str("general.architecture", "llama")?;
    w.kv_str("general.name", &name)?;
    w.key("general.file_type", T_U32)?;
    w.u32(2)?; // LLAMA_FTYPE_MOSTLY_Q4_0
    for (key, value) in u32s {
        w.key(key, T_U32)?;
        w.u32(u32::try_from(value).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, key))?)?;
    }
    w.key("llama.attention.layer_norm_rms_epsilon", T_F32)?;
    w.0.write_all(&1e-5f32.to_le_bytes())?;
    w.kv_str("tokenizer.ggml.model", "llama")?;
    w.key("tokenizer.ggml.tokens", T_ARRAY)?;
    w.u32(T_STRING)?;
    w.u64(tokens.len() as u64)?;
    for t in &tokens {
        w.str(t)?;
    }
    w.key("tokenizer.ggml.scores", T_ARRAY)?;
    w.u32(T_F32)?;
    w.u64(tokens.len() as u64)?;
    for _ in &tokens {
        w.0.write_all(&0f32.to_le_bytes())?;
    }
    w.key("tokenizer.ggml.token_type", T_ARRAY)?;
    w.u32(T_I32)?;
    w.u64(types.len() as u64)?;
    for t in &types {
        w.0.write_all(&t.to_le_bytes())?;
    }
    let mut offset = 0;
    for t in &tensors {
        w.str(&t.name)?;
        w.u32(t.dims.len() as u32)?;
        for &n in &t.dims {
            w.u64(n)?;
        }
        w.u32(t.ty)?;
        w.u64(offset)?;
        offset += t.bytes().next_multiple_of(ALIGNMENT);
    }
    w.pad()?;
    let mut rng = fastrand::Rng::with_seed(0);
    let mut params = 0;
    let mut block = [0u8; Q4_0_BLOCK.1 as usize];
    for t in &tensors {
        let n: u64 = t.dims.iter().product();
        params += n;
        match t.ty {
            GGML_F32 if t.dims.len() == 1 => (0..n).try_for_each(|_| w.0.write_all(&1f32.to_le_bytes()))?,
            GGML_F32 => (0..n).try_for_each(|_| w.0.write_all(&((rng.f32() - 0.5) * 0.04).to_le_bytes()))?,
            _ => {
                block[..2].copy_from_slice(&Q4_0_SCALE);
                for _ in 0..n / Q4_0_BLOCK.0 {
                    rng.fill(&mut block[2..]);
                    w.0.write_all(&block)?;
                }
            }
        }
        w.pad()?;
    }
    w.0.flush()?;
    Ok(params)
}

/// Little-endian GGUF fields, counting the bytes written for the alignment padding.
struct Gguf(BufWriter<File>);

impl Gguf {
    fn u32(&mut self, v: u32) -> io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }

    fn str(&mut self, s: &str) -> io::Result<()> {
        self.u64(s.len() as u64)?;
        self.0.write_all(s.as_bytes())
    }

    fn key(&mut self, key: &str, ty: u32) -> io::Result<()> {
        self.str(key)?;
        self.u32(ty)
    }

    fn kv_str(&mut self, key: &str, value: &str) -> io::Result<()> {
        self.key(key, T_STRING)?;
        self.str(value)
    }

    /// Zeros up to the next multiple of the alignment.
    fn pad(&mut self) -> io::Result<()> {
        self.0.flush()?;
        let at = self.0.get_ref().metadata()?.len();
        let zeros = at.next_multiple_of(ALIGNMENT) - at;
        self.0.write_all(&vec![0; zeros as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GgufHeader;
    use crate::predict::{Kernel, Shape};

    #[test]
    fn the_file_reads_back_with_its_shape_and_every_layer_weight_in_q4_0() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synth.gguf");
        let d = Dims { embedding: 256, layers: 2, heads: 4, kv_heads: 2, feed_forward: 512 };
        let params = write_llama(&path, &d).unwrap();
        let h = GgufHeader::read(&path).expect("a complete, valid header and tensor data");
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(h.arch_u64("block_count"), Some(2));
        assert_eq!(h.arch_u64("embedding_length"), Some(256));
        assert_eq!(h.parameter_count(), params);
        let per_layer = 256 * (256 + 2 * 128) + 256 * 256 + 3 * 256 * 512 + 2 * 256;
        assert_eq!(params, 2 * per_layer + 256 * VOCAB + 256);
        let shape = Shape::from_header(&h);
        assert_eq!(shape.kernel, Kernel::Q4_0);
        assert_eq!(shape.output_params, (256 * VOCAB) as f64, "the embedding is the tied output");
        assert_eq!(shape.layers, 2.0);
        // The tied f32 embedding is read under its own class, the norms with the layers'.
        assert_eq!(shape.output_kernel, Some(Kernel::Other));
        let mix = shape.decode_mix();
        assert_eq!(mix.iter().map(|(_, b)| b).sum::<f64>(), shape.decode_bytes);
        assert_eq!(mix.iter().find(|(k, _)| *k == Kernel::Other).map(|m| m.1), Some(shape.output_bytes), "{mix:?}");
        assert!(!dir.path().join("synth.partial").exists());
    }

    #[test]
    fn a_shape_no_llama_has_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.gguf");
        let d = Dims { embedding: 250, layers: 1, heads: 3, kv_heads: 1, feed_forward: 64 };
        assert!(write_llama(&path, &d).is_err());
        assert!(!path.exists());
    }
}
