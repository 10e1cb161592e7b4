//! Safetensors read and written one tensor at a time, so a bundle never needs a whole file in
//! memory: the writer takes the header up front (names, dtypes, shapes) and then each tensor's
//! bytes in order, in as many pieces as the caller likes; the reader parses the header and
//! copies any tensor, or any byte range of it, from its place in the file.
//!
//! The layout is the public safetensors one: an 8-byte little-endian header length, a JSON
//! header `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`
//! padded with spaces to a multiple of 8, then the tensors' bytes back to back.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Headers larger than this are refused (the reference implementation's own limit).
const MAX_HEADER: u64 = 100_000_000;
/// Bytes copied per read or write when streaming.
pub const CHUNK: usize = 1 << 20;

/// Element types a bundle uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    U64,
    I64,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::U64 => "U64",
            Dtype::I64 => "I64",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 => 8,
        }
    }
    fn parse(s: &str) -> Option<Dtype> {
        match s {
            "F32" => Some(Dtype::F32),
            "U64" => Some(Dtype::U64),
            "I64" => Some(Dtype::I64),
            _ => None,
        }
    }
}

/// A tensor's place in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte range inside the data section.
    pub begin: u64,
    pub end: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Writes a safetensors file tensor by tensor, hashing it on the way (SHA-256 of the file).
pub struct StreamWriter {
    path: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
    /// Tensors still to write, in file order, with their byte sizes.
    pending: Vec<(String, u64)>,
    /// Bytes still owed to the tensor being written.
    owed: u64,
    written: u64,
}

impl StreamWriter {
    /// Creates `path` and writes the header for `tensors` (in file order) and `metadata`.
    pub fn create(
        path: &Path,
        tensors: &[(String, Dtype, Vec<usize>)],
        metadata: &BTreeMap<String, String>,
    ) -> Result<StreamWriter> {
        let mut header = serde_json::Map::new();
        if !metadata.is_empty() {
            header.insert("__metadata__".into(), json!(metadata));
        }
        let mut offset = 0u64;
        let mut pending = Vec::with_capacity(tensors.len());
        for (name, dtype, shape) in tensors {
            if header.contains_key(name) {
                bail!("tensor `{name}` is listed twice for {}", path.display());
            }
            let bytes = (shape.iter().product::<usize>() * dtype.size()) as u64;
            header.insert(
                name.clone(),
                json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            offset += bytes;
            pending.push((name.clone(), bytes));
        }
        let mut text = serde_json::to_vec(&Value::Object(header))?;
        while !text.len().is_multiple_of(8) {
            text.push(b' ');
        }
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = StreamWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(CHUNK, file),
            hasher: Sha256::new(),
            pending,
            owed: 0,
            written: 0,
        };
        w.raw(&(text.len() as u64).to_le_bytes())?;
        w.raw(&text)?;
        w.pending.reverse();
        Ok(w)
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Starts the next tensor, which must be `name` (the order given to [`create`](Self::create)).
    pub fn begin(&mut self, name: &str) -> Result<()> {
        if self.owed != 0 {
            bail!("{}: the previous tensor is incomplete", self.path.display());
        }
        match self.pending.pop() {
            Some((n, bytes)) if n == name => {
                self.owed = bytes;
                Ok(())
            }
            Some((n, _)) => bail!(
                "{}: expected tensor `{n}`, got `{name}`",
                self.path.display()
            ),
            None => bail!("{}: tensor `{name}` was not declared", self.path.display()),
        }
    }

    /// Appends bytes of the current tensor.
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 > self.owed {
            bail!("{}: tensor data longer than its shape", self.path.display());
        }
        self.owed -= bytes.len() as u64;
        self.raw(bytes)
    }

    /// Appends f32 values of the current tensor (little-endian).
    pub fn f32s(&mut self, values: &[f32]) -> Result<()> {
        for chunk in values.chunks(CHUNK / 4) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.bytes(&bytes)?;
        }
        Ok(())
    }

    /// Appends u64 values of the current tensor (little-endian).
    pub fn u64s(&mut self, values: &[u64]) -> Result<()> {
        for chunk in values.chunks(CHUNK / 8) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.bytes(&bytes)?;
        }
        Ok(())
    }

    /// Writes one whole f32 tensor.
    pub fn f32_tensor(&mut self, name: &str, values: &[f32]) -> Result<()> {
        self.begin(name)?;
        self.f32s(values)
    }

    /// Flushes and fsyncs; returns the file's size and SHA-256 (lower-case hex).
    pub fn finish(self) -> Result<(u64, String)> {
        if self.owed != 0 || !self.pending.is_empty() {
            bail!("{}: not every tensor was written", self.path.display());
        }
        let file = self
            .out
            .into_inner()
            .map_err(|e| anyhow!("cannot write {}: {}", self.path.display(), e.error()))?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok((self.written, hex(&self.hasher.finalize())))
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Size and SHA-256 of a file, read in chunks.
pub fn file_digest(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex(&h.finalize())))
}

/// A safetensors file opened for reading tensor by tensor.
pub struct StreamReader {
    path: PathBuf,
    file: BufReader<File>,
    data_start: u64,
    tensors: HashMap<String, TensorInfo>,
    pub metadata: BTreeMap<String, String>,
}

impl StreamReader {
    /// Opens `path` and checks its header: every tensor of a known dtype, its byte range the
    /// size of its shape, the ranges tiling the data section exactly, which fills the file.
    pub fn open(path: &Path) -> Result<StreamReader> {
        let bad =
            |why: String| anyhow!("{} is not a valid safetensors file: {why}", path.display());
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let mut file = BufReader::with_capacity(CHUNK, file);
        let mut n = [0u8; 8];
        file.read_exact(&mut n)
            .map_err(|_| bad("shorter than its 8-byte header length".into()))?;
        let hlen = u64::from_le_bytes(n);
        if hlen > MAX_HEADER || 8 + hlen > len {
            return Err(bad(format!(
                "header length {hlen} does not fit the file ({len} bytes)"
            )));
        }
        let mut text = vec![0u8; hlen as usize];
        file.read_exact(&mut text)
            .map_err(|_| bad("truncated header".into()))?;
        let header: serde_json::Map<String, Value> =
            serde_json::from_slice(&text).map_err(|e| bad(format!("unreadable header ({e})")))?;
        let mut tensors = HashMap::new();
        let mut metadata = BTreeMap::new();
        for (name, v) in header {
            if name == "__metadata__" {
                let m: BTreeMap<String, String> = serde_json::from_value(v)
                    .map_err(|e| bad(format!("unreadable __metadata__ ({e})")))?;
                metadata = m;
                continue;
            }
            let dtype = v["dtype"].as_str().and_then(Dtype::parse).ok_or_else(|| {
                bad(format!(
                    "tensor `{name}` has dtype {}, a bundle holds F32, U64 or I64",
                    v["dtype"]
                ))
            })?;
            let shape: Vec<usize> = serde_json::from_value(v["shape"].clone())
                .map_err(|_| bad(format!("tensor `{name}` has no valid shape")))?;
            let offs: [u64; 2] = serde_json::from_value(v["data_offsets"].clone())
                .map_err(|_| bad(format!("tensor `{name}` has no valid data_offsets")))?;
            let want = shape
                .iter()
                .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d as u64))
                .ok_or_else(|| bad(format!("tensor `{name}` is too large")))?;
            if offs[1] < offs[0] || offs[1] - offs[0] != want {
                return Err(bad(format!(
                    "tensor `{name}` spans {} bytes, its shape {shape:?} needs {want}",
                    offs[1].saturating_sub(offs[0])
                )));
            }
            tensors.insert(
                name,
                TensorInfo {
                    dtype,
                    shape,
                    begin: offs[0],
                    end: offs[1],
                },
            );
        }
        let data_start = 8 + hlen;
        let mut ranges: Vec<(u64, u64)> = tensors.values().map(|t| (t.begin, t.end)).collect();
        ranges.sort_unstable();
        let mut at = 0;
        for (b, e) in ranges {
            if b != at {
                return Err(bad("tensor data ranges overlap or leave gaps".into()));
            }
            at = e;
        }
        if data_start + at != len {
            return Err(bad(format!(
                "the header describes {} bytes of data, the file holds {}",
                at,
                len - data_start
            )));
        }
        Ok(StreamReader {
            path: path.to_path_buf(),
            file,
            data_start,
            tensors,
            metadata,
        })
    }

    /// The tensor `name`, or an error naming the file.
    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors
            .get(name)
            .ok_or_else(|| anyhow!("{} lacks tensor `{name}`", self.path.display()))
    }

    /// Names of every tensor (unordered).
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// Checks `name` has `dtype` and `shape`.
    pub fn expect(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<TensorInfo> {
        let t = self.info(name)?;
        if t.dtype != dtype || t.shape != shape {
            bail!(
                "{}: tensor `{name}` is {:?} {:?}, expected {:?} {:?}",
                self.path.display(),
                t.dtype,
                t.shape,
                dtype,
                shape
            );
        }
        Ok(t.clone())
    }

    /// Reads bytes `[from, from + out.len())` of tensor `t` into `out`.
    pub fn read_range(&mut self, t: &TensorInfo, from: u64, out: &mut [u8]) -> Result<()> {
        debug_assert!(t.begin + from + out.len() as u64 <= t.end);
        self.file
            .seek(SeekFrom::Start(self.data_start + t.begin + from))
            .and_then(|_| self.file.read_exact(out))
            .with_context(|| format!("cannot read {}", self.path.display()))
    }

    /// Copies bytes `[from, from + len)` of tensor `t` to `sink` in chunks.
    pub fn copy_range(
        &mut self,
        t: &TensorInfo,
        from: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut buf = vec![0u8; CHUNK.min(len as usize)];
        let mut done = 0u64;
        while done < len {
            let k = ((len - done) as usize).min(buf.len());
            self.read_range(t, from + done, &mut buf[..k])?;
            sink(&buf[..k])?;
            done += k as u64;
        }
        Ok(())
    }

    /// Reads f32 tensor `name` of `shape` into `out` (`out.len()` = elements), in chunks.
    pub fn f32_into(&mut self, name: &str, shape: &[usize], out: &mut [f32]) -> Result<()> {
        let t = self.expect(name, Dtype::F32, shape)?;
        debug_assert_eq!(out.len(), t.elements());
        let mut at = 0usize;
        let len = t.end - t.begin;
        self.copy_range(&t, 0, len, &mut |bytes| {
            for (o, c) in out[at..].iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            at += bytes.len() / 4;
            Ok(())
        })
    }

    /// Reads a whole f32 tensor of `shape`.
    pub fn f32_vec(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let mut v = vec![0.0; shape.iter().product()];
        self.f32_into(name, shape, &mut v)?;
        Ok(v)
    }

    /// Reads a whole 1-D u64 tensor of `len` values.
    pub fn u64_vec(&mut self, name: &str, len: usize) -> Result<Vec<u64>> {
        let t = self.expect(name, Dtype::U64, &[len])?;
        let mut out = Vec::with_capacity(len);
        self.copy_range(&t, 0, t.end - t.begin, &mut |bytes| {
            out.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
            );
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_pieces_read_back_and_parse_with_the_reference_crate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let mut w = StreamWriter::create(
            &p,
            &[
                ("a".into(), Dtype::F32, vec![2, 3]),
                ("b".into(), Dtype::U64, vec![3]),
            ],
            &meta,
        )
        .unwrap();
        w.begin("a").unwrap();
        w.f32s(&[1.0, 2.0]).unwrap();
        w.f32s(&[3.0, 4.0, 5.0, 6.0]).unwrap();
        w.begin("b").unwrap();
        w.u64s(&[7, u64::MAX, 0]).unwrap();
        let (n, sha) = w.finish().unwrap();
        assert_eq!((n, sha.clone()), file_digest(&p).unwrap());
        // The reference implementation agrees with the layout.
        let bytes = std::fs::read(&p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("a").unwrap().shape(), &[2, 3]);
        let mut r = StreamReader::open(&p).unwrap();
        assert_eq!(r.metadata, meta);
        assert_eq!(
            r.f32_vec("a", &[2, 3]).unwrap(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(r.u64_vec("b", 3).unwrap(), vec![7, u64::MAX, 0]);
        let e = r.f32_vec("a", &[3, 2]).unwrap_err().to_string();
        assert!(e.contains("expected F32 [3, 2]"), "{e}");
    }

    #[test]
    fn writer_refuses_short_or_misordered_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        let decl = [
            ("a".to_string(), Dtype::F32, vec![2]),
            ("b".to_string(), Dtype::F32, vec![1]),
        ];
        let mut w = StreamWriter::create(&p, &decl, &BTreeMap::new()).unwrap();
        assert!(w.begin("b").is_err());
        let mut w = StreamWriter::create(&p, &decl, &BTreeMap::new()).unwrap();
        w.f32_tensor("a", &[1.0]).unwrap();
        assert!(w.begin("b").is_err(), "a is incomplete");
        let mut w = StreamWriter::create(&p, &decl, &BTreeMap::new()).unwrap();
        assert!(w.f32_tensor("a", &[1.0, 2.0, 3.0]).is_err());
        let mut w = StreamWriter::create(&p, &decl, &BTreeMap::new()).unwrap();
        w.f32_tensor("a", &[1.0, 2.0]).unwrap();
        assert!(w.finish().is_err(), "b never written");
    }

    #[test]
    fn truncated_or_garbage_files_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        let mut w =
            StreamWriter::create(&p, &[("a".into(), Dtype::F32, vec![4])], &BTreeMap::new())
                .unwrap();
        w.f32_tensor("a", &[1.0; 4]).unwrap();
        w.finish().unwrap();
        let full = std::fs::read(&p).unwrap();
        for cut in [3, 12, full.len() - 1] {
            std::fs::write(&p, &full[..cut]).unwrap();
            let e = StreamReader::open(&p).err().unwrap().to_string();
            assert!(e.contains("t.safetensors"), "{e}");
        }
        std::fs::write(&p, b"not a safetensors file at all").unwrap();
        assert!(StreamReader::open(&p).is_err());
    }
}
