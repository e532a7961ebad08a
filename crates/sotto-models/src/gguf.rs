//! A pure-Rust reader for the GGUF header: metadata key/values and tensor descriptors.
//!
//! It exists so that sotto can check a model file (is it GGUF at all, is it complete) and read
//! its facts (architecture, quantization, context length, parameter count, KV-cache geometry)
//! *before* llama.cpp touches it: llama.cpp answers a bad file with a null pointer and a log
//! line, which is no error message for a user. This module never reads tensor data; it seeks
//! past large arrays (the tokenizer vocabulary) instead of keeping them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

/// `GGUF` in little-endian byte order.
const MAGIC: u32 = 0x4655_4747;
/// Longest string we accept in a header; anything longer means a corrupt length field.
const MAX_STRING: u64 = 64 << 20;
/// Most elements an array or tensor list may claim; protects against corrupt counts.
const MAX_COUNT: u64 = 1 << 32;

/// What can go wrong while reading a GGUF header.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The path does not exist.
    #[error("model file not found: {0}")]
    NotFound(PathBuf),
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The first four bytes are not `GGUF`.
    #[error("{0} is not a GGUF model file (bad magic bytes)")]
    NotGguf(PathBuf),
    /// A GGUF version this reader does not know.
    #[error("{path} uses GGUF version {version}, which sotto does not support (1-3)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    /// The file ends before the header or the tensor data it declares.
    #[error("{path} is truncated: {detail}; fetch it again (`sotto models fetch`)")]
    Truncated { path: PathBuf, detail: String },
    /// A field holds a value no valid file can hold.
    #[error("{path} is corrupt: {detail}")]
    Malformed { path: PathBuf, detail: String },
}

/// One metadata value. Arrays keep only their element type and length, except short arrays of
/// numbers, which some architectures use for per-layer hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// Array of numbers with at most 4096 entries, kept whole.
    Numbers(Vec<f64>),
    /// Any other array: its element type id and length only.
    Array {
        elem_type: u32,
        len: u64,
    },
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative number.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Uint(v) => Some(v),
            Value::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor's descriptor.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    /// ggml type id.
    pub ggml_type: u32,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of data, when the ggml type is known.
    pub fn bytes(&self) -> Option<u64> {
        let (block, size) = ggml_type_block(self.ggml_type)?;
        Some(self.elements() / block * size)
    }
}

/// The parsed header of a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub path: PathBuf,
    pub version: u32,
    pub file_size: u64,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute file offset where tensor data starts.
    pub data_offset: u64,
}

impl GgufHeader {
    /// Read and validate the header of `path`, including that the file is long enough to hold
    /// every tensor it declares.
    pub fn read(path: &Path) -> Result<Self, GgufError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => GgufError::NotFound(path.to_path_buf()),
            _ => GgufError::Io { path: path.to_path_buf(), source: e },
        })?;
        let io_err = |e: io::Error| GgufError::Io { path: path.to_path_buf(), source: e };
        let file_size = file.metadata().map_err(io_err)?.len();
        let mut r = Reader { inner: BufReader::with_capacity(1 << 16, file), path, version: 3 };
        let magic = r.u32().map_err(|e| match e {
            GgufError::Truncated { .. } => GgufError::NotGguf(path.to_path_buf()),
            other => other,
        })?;
        if magic != MAGIC {
            return Err(GgufError::NotGguf(path.to_path_buf()));
        }
        let version = r.u32()?;
        if !(1..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion { path: path.to_path_buf(), version });
        }
        r.version = version;
        let n_tensors = r.count()?;
        let n_kv = r.count()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let value = r.value(ty)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity(n_tensors.min(1 << 16) as usize);
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims > 8 {
                return Err(r.malformed(format!("tensor {name} claims {n_dims} dimensions")));
            }
            let dims = (0..n_dims).map(|_| r.count()).collect::<Result<Vec<_>, _>>()?;
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            tensors.push(TensorInfo { name, dims, ggml_type, offset });
        }
        let alignment = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(32).max(1);
        let pos = r.inner.stream_position().map_err(io_err)?;
        let data_offset = pos.div_ceil(alignment) * alignment;
        let header = GgufHeader { path: path.to_path_buf(), version, file_size, metadata, tensors, data_offset };
        header.check_data_fits()?;
        Ok(header)
    }

    fn check_data_fits(&self) -> Result<(), GgufError> {
        let end = self
            .tensors
            .iter()
            .map(|t| self.data_offset + t.offset + t.bytes().unwrap_or(0))
            .max()
            .unwrap_or(self.data_offset);
        if end > self.file_size {
            return Err(GgufError::Truncated {
                path: self.path.clone(),
                detail: format!("tensor data needs {end} bytes but the file has {}", self.file_size),
            });
        }
        Ok(())
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// `general.architecture`, e.g. `llama`, `gemma3`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// An architecture-scoped integer, e.g. `arch_u64("context_length")` reads `llama.context_length`.
    pub fn arch_u64(&self, suffix: &str) -> Option<u64> {
        let arch = self.architecture()?;
        self.get(&format!("{arch}.{suffix}")).and_then(|v| match v {
            Value::Numbers(n) => {
                n.iter().copied().fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))).map(|x| x as u64)
            }
            other => other.as_u64(),
        })
    }

    /// Training context length.
    pub fn context_length(&self) -> Option<u64> {
        self.arch_u64("context_length")
    }

    /// Total parameter count: the sum of every tensor's elements.
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::elements).sum()
    }

    /// Quantization name from `general.file_type`, else the most common tensor type.
    pub fn quantization(&self) -> String {
        if let Some(name) = self.get("general.file_type").and_then(Value::as_u64).and_then(file_type_name) {
            return name.to_string();
        }
        let mut counts = BTreeMap::<u32, u64>::new();
        for t in &self.tensors {
            *counts.entry(t.ggml_type).or_default() += t.elements();
        }
        counts
            .into_iter()
            .max_by_key(|&(_, n)| n)
            .map(|(ty, _)| ggml_type_name(ty).map_or_else(|| format!("type{ty}"), str::to_string))
            .unwrap_or_else(|| "unknown".into())
    }

    /// The embedded chat template, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.get("tokenizer.chat_template").and_then(Value::as_str)
    }
}

struct Reader<'a> {
    inner: BufReader<File>,
    path: &'a Path,
    version: u32,
}

impl Reader<'_> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), GgufError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                GgufError::Truncated { path: self.path.to_path_buf(), detail: "the header ends early".into() }
            }
            _ => GgufError::Io { path: self.path.to_path_buf(), source: e },
        })
    }

    fn malformed(&self, detail: String) -> GgufError {
        GgufError::Malformed { path: self.path.to_path_buf(), detail }
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        let mut b = [0; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        let mut b = [0; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Counts and lengths are u32 in GGUF v1, u64 after.
    fn count(&mut self) -> Result<u64, GgufError> {
        let n = if self.version == 1 { u64::from(self.u32()?) } else { self.u64()? };
        if n > MAX_COUNT {
            return Err(self.malformed(format!("a count of {n} is impossible")));
        }
        Ok(n)
    }

    fn string_len(&mut self) -> Result<u64, GgufError> {
        let n = if self.version == 1 { u64::from(self.u32()?) } else { self.u64()? };
        if n > MAX_STRING {
            return Err(self.malformed(format!("a string of {n} bytes is impossible")));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.string_len()?;
        let mut buf = vec![0; n as usize];
        self.fill(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        let n = i64::try_from(n).map_err(|_| self.malformed("skip too large".into()))?;
        self.inner.seek_relative(n).map_err(|e| GgufError::Io { path: self.path.to_path_buf(), source: e })
    }

    fn scalar(&mut self, ty: u32) -> Result<Option<Value>, GgufError> {
        let mut b = [0u8; 8];
        Ok(Some(match ty {
            0 => Value::Uint(u64::from(self.byte(&mut b)?)),
            1 => Value::Int(i64::from(self.byte(&mut b)? as i8)),
            2 => Value::Uint(u64::from(u16::from_le_bytes(self.bytes::<2>()?))),
            3 => Value::Int(i64::from(i16::from_le_bytes(self.bytes::<2>()?))),
            4 => Value::Uint(u64::from(self.u32()?)),
            5 => Value::Int(i64::from(i32::from_le_bytes(self.bytes::<4>()?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.bytes::<4>()?))),
            7 => Value::Bool(self.byte(&mut b)? != 0),
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.bytes::<8>()?)),
            12 => Value::Float(f64::from_le_bytes(self.bytes::<8>()?)),
            _ => return Ok(None),
        }))
    }

    fn byte(&mut self, b: &mut [u8; 8]) -> Result<u8, GgufError> {
        self.fill(&mut b[..1])?;
        Ok(b[0])
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut b = [0; N];
        self.fill(&mut b)?;
        Ok(b)
    }

    fn value(&mut self, ty: u32) -> Result<Value, GgufError> {
        match ty {
            8 => Ok(Value::Str(self.string()?)),
            9 => self.array(),
            _ => self.scalar(ty)?.ok_or_else(|| self.malformed(format!("unknown metadata type {ty}"))),
        }
    }

    fn array(&mut self) -> Result<Value, GgufError> {
        let elem_type = self.u32()?;
        let len = self.count()?;
        if let Some(width) = scalar_width(elem_type) {
            if len <= 4096 && elem_type != 7 {
                let mut out = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    let v = self.scalar(elem_type)?.expect("scalar type");
                    out.push(match v {
                        Value::Uint(u) => u as f64,
                        Value::Int(i) => i as f64,
                        Value::Float(f) => f,
                        _ => 0.0,
                    });
                }
                return Ok(Value::Numbers(out));
            }
            self.skip(width * len)?;
        } else if elem_type == 8 {
            for _ in 0..len {
                let n = self.string_len()?;
                self.skip(n)?;
            }
        } else {
            return Err(self.malformed(format!("unsupported array element type {elem_type}")));
        }
        Ok(Value::Array { elem_type, len })
    }
}

fn scalar_width(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// (elements per block, bytes per block) for the ggml tensor types sotto knows.
fn ggml_type_block(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),
        1 | 30 => (1, 2),
        2 | 20 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 | 21 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 | 28 => (1, 8),
        29 => (256, 56),
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17),
        _ => return None,
    })
}

fn ggml_type_name(ty: u32) -> Option<&'static str> {
    Some(match ty {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        20 => "IQ4_NL",
        23 => "IQ4_XS",
        30 => "BF16",
        39 => "MXFP4",
        _ => return None,
    })
}

/// llama.cpp's `llama_ftype` names, as written in `general.file_type`.
fn file_type_name(ft: u64) -> Option<&'static str> {
    Some(match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Builds a tiny GGUF v3 file: two metadata keys and one F32 tensor of 8 elements.
    fn tiny_gguf(truncate_data: bool) -> Vec<u8> {
        let mut b = Vec::new();
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend((t.len() as u64).to_le_bytes());
            b.extend(t.as_bytes());
        };
        b.extend(MAGIC.to_le_bytes());
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes()); // tensors
        b.extend(3u64.to_le_bytes()); // kv
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "llama");
        s(&mut b, "llama.context_length");
        b.extend(4u32.to_le_bytes());
        b.extend(2048u32.to_le_bytes());
        s(&mut b, "tokenizer.ggml.tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        s(&mut b, "a");
        s(&mut b, "bc");
        s(&mut b, "w");
        b.extend(2u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // F32
        b.extend(0u64.to_le_bytes());
        while b.len() % 32 != 0 {
            b.push(0);
        }
        let data = if truncate_data { 16 } else { 32 };
        b.extend(std::iter::repeat_n(0u8, data));
        b
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_metadata_and_tensors() {
        let f = write(&tiny_gguf(false));
        let h = GgufHeader::read(f.path()).unwrap();
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(h.context_length(), Some(2048));
        assert_eq!(h.parameter_count(), 8);
        assert_eq!(h.quantization(), "F32");
        assert_eq!(h.get("tokenizer.ggml.tokens"), Some(&Value::Array { elem_type: 8, len: 2 }));
    }

    #[test]
    fn short_tensor_data_is_truncated() {
        let f = write(&tiny_gguf(true));
        assert!(matches!(GgufHeader::read(f.path()), Err(GgufError::Truncated { .. })));
    }

    #[test]
    fn cut_header_is_truncated() {
        let bytes = tiny_gguf(false);
        let f = write(&bytes[..40]);
        assert!(matches!(GgufHeader::read(f.path()), Err(GgufError::Truncated { .. })));
    }

    #[test]
    fn other_files_are_not_gguf() {
        let f = write(b"PK\x03\x04 this is a zip file");
        assert!(matches!(GgufHeader::read(f.path()), Err(GgufError::NotGguf(_))));
        let empty = write(b"");
        assert!(matches!(GgufHeader::read(empty.path()), Err(GgufError::NotGguf(_))));
        assert!(matches!(GgufHeader::read(Path::new("/nonexistent/x.gguf")), Err(GgufError::NotFound(_))));
    }

    #[test]
    fn absurd_lengths_are_malformed() {
        let mut b = Vec::new();
        b.extend(MAGIC.to_le_bytes());
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(u64::MAX.to_le_bytes()); // key length
        let f = write(&b);
        assert!(matches!(GgufHeader::read(f.path()), Err(GgufError::Malformed { .. })));
    }
}
