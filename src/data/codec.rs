//! File codecs shared by the dataset readers and writers (docs/REFERENCE.md §1.2, §1.3): 8- and 16-bit
//! PNG/JPEG through the `image` crate, `.npy` arrays through `npyz`, and the JSON split index
//! (`{"split": [[path, ...], ...]}`) both datasets use. Every failure is an [`Error::Data`]
//! (or [`Error::Io`] when writing) that names the file, says what is wrong and how to fix it;
//! nothing here panics on bad input.
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, ImageReader, Luma, Rgb};

use crate::data::raw::Dense;
use crate::error::{Error, Result};

/// Opens and fully decodes an image file (format sniffed from its bytes, not its extension).
fn decode(path: &Path) -> Result<DynamicImage> {
    let reader = ImageReader::open(path).map_err(|e| {
        Error::context(format!("{}: cannot open image (check the path in the split file and the dataset root)", path.display()), e)
    })?;
    let reader = reader.with_guessed_format().map_err(|e| Error::context(format!("{}: cannot read image header", path.display()), e))?;
    reader.decode().map_err(|e| {
        Error::data(
            path,
            format!(
                "cannot decode image ({e}); the file is corrupt, truncated or not a PNG/JPEG — \
                 re-extract or regenerate it"
            ),
        )
    })
}

/// Splits interleaved pixels (`H×W×C`, row-major) into a channel-major [`Dense`].
fn planar<T: Copy + Default>(interleaved: &[T], channels: usize, height: usize, width: usize) -> Dense<T> {
    let mut out = Dense::filled(channels, height, width, T::default());
    let plane = height * width;
    for (p, px) in interleaved.chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out.data[c * plane + p] = v;
        }
    }
    out
}

/// Interleaves a channel-major [`Dense`] back into `H×W×C` row-major order.
fn interleaved<T: Copy + Default>(src: &Dense<T>) -> Vec<T> {
    let plane = src.height * src.width;
    let mut out = vec![T::default(); src.data.len()];
    for c in 0..src.channels {
        for p in 0..plane {
            out[p * src.channels + c] = src.data[c * plane + p];
        }
    }
    out
}

/// Reads an 8-bit colour image as 3×H×W in the file's R,G,B order.
///
/// With `like_opencv`, grey and alpha images are accepted and converted the way OpenCV's
/// `imread(IMREAD_COLOR)` does (grey replicated, alpha dropped); otherwise only 8-bit RGB is
/// accepted (PIL-based loaders break on anything else).
pub(crate) fn read_rgb8(path: &Path, like_opencv: bool) -> Result<Dense<u8>> {
    let img = decode(path)?;
    let colour = img.color();
    let rgb = match img {
        DynamicImage::ImageRgb8(b) => b,
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_) | DynamicImage::ImageRgba8(_) if like_opencv => img.to_rgb8(),
        _ => return Err(Error::data(path, format!("expected an 8-bit RGB image, got {colour:?}; convert it to 8-bit RGB"))),
    };
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Ok(planar(rgb.as_raw(), 3, h, w))
}

/// Reads an 8-bit single-channel (grey) image as 1×H×W.
pub(crate) fn read_grey8(path: &Path) -> Result<Dense<u8>> {
    match decode(path)? {
        DynamicImage::ImageLuma8(b) => {
            let (w, h) = (b.width() as usize, b.height() as usize);
            Ok(Dense { channels: 1, height: h, width: w, data: b.into_raw() })
        }
        other => Err(Error::data(
            path,
            format!(
                "expected an 8-bit single-channel (grey) PNG holding raw class ids, got {:?} \
                 (palette PNGs decode as RGB); re-save it as 8-bit grey",
                other.color()
            ),
        )),
    }
}

/// Reads a 16-bit single-channel (grey) PNG as 1×H×W.
pub(crate) fn read_grey16(path: &Path) -> Result<Dense<u16>> {
    match decode(path)? {
        DynamicImage::ImageLuma16(b) => {
            let (w, h) = (b.width() as usize, b.height() as usize);
            Ok(Dense { channels: 1, height: h, width: w, data: b.into_raw() })
        }
        other => Err(Error::data(
            path,
            format!(
                "expected a 16-bit single-channel (grey) PNG, got {:?}; Taskonomy stores depth, \
                 keypoints and edges as 16-bit PNGs",
                other.color()
            ),
        )),
    }
}

/// Image dimensions as the `u32` pair the `image` crate wants, or an error naming `path`.
fn dims(path: &Path, height: usize, width: usize) -> Result<(u32, u32)> {
    match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(Error::data(path, format!("cannot write a {height}×{width} image; both sides must be 1..2^32"))),
    }
}

/// Checks that `src` has `channels` channels and a consistent data length before writing it.
fn check_dense<T>(path: &Path, src: &Dense<T>, channels: usize) -> Result<()> {
    if src.channels != channels || src.data.len() != src.channels * src.height * src.width {
        return Err(Error::data(
            path,
            format!(
                "cannot write: expected {channels} channel(s) with {} values, got {} channel(s) with {} values",
                channels * src.height * src.width,
                src.channels,
                src.data.len()
            ),
        ));
    }
    Ok(())
}

/// Writes 3×H×W values (in R,G,B order) as an 8-bit RGB PNG.
pub(crate) fn write_rgb8(path: &Path, rgb: &Dense<u8>) -> Result<()> {
    check_dense(path, rgb, 3)?;
    let (w, h) = dims(path, rgb.height, rgb.width)?;
    let buf: ImageBuffer<Rgb<u8>, Vec<u8>> =
        ImageBuffer::from_raw(w, h, interleaved(rgb)).ok_or_else(|| Error::data(path, "pixel buffer does not match the image size"))?;
    crate::files::write_png(path, &buf)
}

/// Writes 1×H×W values as an 8-bit grey PNG.
pub(crate) fn write_grey8(path: &Path, grey: &Dense<u8>) -> Result<()> {
    check_dense(path, grey, 1)?;
    let (w, h) = dims(path, grey.height, grey.width)?;
    let buf: ImageBuffer<Luma<u8>, Vec<u8>> =
        ImageBuffer::from_raw(w, h, grey.data.clone()).ok_or_else(|| Error::data(path, "pixel buffer does not match the image size"))?;
    crate::files::write_png(path, &buf)
}

/// Writes 1×H×W values as a 16-bit grey PNG.
pub(crate) fn write_grey16(path: &Path, grey: &Dense<u16>) -> Result<()> {
    check_dense(path, grey, 1)?;
    let (w, h) = dims(path, grey.height, grey.width)?;
    let buf: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_raw(w, h, grey.data.clone()).ok_or_else(|| Error::data(path, "pixel buffer does not match the image size"))?;
    crate::files::write_png(path, &buf)
}

/// A numeric `.npy` array read into `f32`, with its shape in C (row-major) order.
pub(crate) struct NpyArray {
    /// Axis lengths as written in the header.
    pub shape: Vec<usize>,
    /// Values in C order (Fortran-ordered files are transposed on read).
    pub data: Vec<f32>,
}

/// numpy's own reader refuses longer headers (its `max_header_size`); a float array's is ~120 bytes.
const NPY_MAX_HEADER: u64 = 10_000;
/// Brackets nested deeper than this in a header are refused before npyz's parser sees them: it
/// recurses, and backtracks exponentially in the nesting (12 unclosed braces took 4 s). A float
/// array's header nests two levels, the dict and its shape tuple.
const NPY_MAX_NESTING: usize = 4;
/// numpy arrays have at most 64 axes (`NPY_MAXDIMS`).
const NPY_MAX_AXES: usize = 64;

/// Checks a `.npy` file's preamble against the file before npyz reads it: npyz allocates the
/// header length it reads (up to 4 GiB) and parses the header recursively. Returns where the data
/// starts.
fn check_npy_header(path: &Path, file: &mut File) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut pre = Vec::with_capacity(12);
    file.take(12).read_to_end(&mut pre).map_err(|e| Error::io(path, e))?;
    let invalid = |what: String| Error::data(path, format!("not a valid .npy file: {what} (re-save it with numpy.save)"));
    if !pre.starts_with(b"\x93NUMPY") || pre.len() < 10 {
        return Err(invalid("it does not start with the \\x93NUMPY magic and a version".into()));
    }
    let (start, len) = match pre[6] {
        1 => (10, u64::from(u16::from_le_bytes([pre[8], pre[9]]))),
        2 | 3 if pre.len() == 12 => (12, u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]))),
        v => return Err(invalid(format!("format version {v} is not one numpy writes (1, 2 or 3)"))),
    };
    if len > NPY_MAX_HEADER {
        return Err(invalid(format!("it claims a header of {len} bytes; numpy reads at most {NPY_MAX_HEADER}")));
    }
    if start + len > file_len {
        return Err(invalid(format!("it claims a header of {len} bytes but the file has {file_len} in all (truncated)")));
    }
    let mut header = Vec::with_capacity(len as usize);
    file.seek(SeekFrom::Start(start)).map_err(|e| Error::io(path, e))?;
    file.take(len).read_to_end(&mut header).map_err(|e| Error::io(path, e))?;
    let mut depth = 0usize;
    for &b in &header {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth > 0 => depth -= 1,
            b')' | b']' | b'}' => return Err(invalid("its header closes a bracket it never opened".into())),
            _ => {}
        }
        if depth > NPY_MAX_NESTING {
            return Err(invalid(format!("its header nests brackets deeper than {NPY_MAX_NESTING}")));
        }
    }
    if depth > 0 {
        return Err(invalid("its header leaves a bracket open".into()));
    }
    Ok(start + len)
}

/// Reads a float32 or float64 `.npy` file (either byte order, C or Fortran order) into `f32`.
pub(crate) fn read_npy_f32(path: &Path) -> Result<NpyArray> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| {
        Error::context(format!("{}: cannot open .npy file (check the path in the split file and the dataset root)", path.display()), e)
    })?;
    let data_start = check_npy_header(path, &mut file)?;
    let data_len = file.metadata().map_err(|e| Error::io(path, e))?.len() - data_start;
    file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| Error::context(format!("{}: not a valid .npy file (re-save it with numpy.save)", path.display()), e))?;
    let shape: Vec<u64> = npy.shape().to_vec();
    if shape.len() > NPY_MAX_AXES {
        return Err(Error::data(path, format!("its shape has {} axes; numpy arrays have at most {NPY_MAX_AXES}", shape.len())));
    }
    let order = npy.order();
    let dtype = npy.dtype();
    let truncated =
        |e: std::io::Error| Error::data(path, format!("data section is truncated or unreadable ({e}); re-save it with numpy.save"));
    // Only plain float arrays are meaningful here; integers would silently change units.
    let is_float = |size: u64| match &dtype {
        npyz::DType::Plain(t) => t.type_char() == npyz::TypeChar::Float && t.size_field() == size,
        _ => false,
    };
    let size = if is_float(4) {
        4
    } else if is_float(8) {
        8
    } else {
        return Err(Error::data(
            path,
            format!("expected a float32 or float64 array, got dtype {}; convert it with .astype(numpy.float32)", dtype.descr()),
        ));
    };
    // The shape comes from the file: its product is checked, and compared with the data there is.
    let count = if shape.contains(&0) { Some(0) } else { shape.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n)) };
    let bytes = count.and_then(|c| c.checked_mul(size)).filter(|&b| b <= usize::MAX as u64);
    let Some(bytes) = bytes else {
        return Err(Error::data(path, format!("its shape {shape:?} has more values than 64 bits count; the header is corrupt")));
    };
    if bytes > data_len {
        return Err(Error::data(
            path,
            format!("its shape {shape:?} needs {bytes} bytes of data but {data_len} follow its header; the file is truncated"),
        ));
    }
    let data: Vec<f32> = if size == 4 {
        npy.into_vec::<f32>().map_err(truncated)?
    } else {
        npy.into_vec::<f64>().map_err(truncated)?.into_iter().map(|v| v as f32).collect()
    };
    let shape: Vec<usize> = shape.iter().map(|&n| n as usize).collect();
    let expected = (bytes / size) as usize;
    if data.len() != expected {
        return Err(Error::data(path, format!("holds {} values but its shape {shape:?} needs {expected}", data.len())));
    }
    let data = match order {
        npyz::Order::C => data,
        npyz::Order::Fortran => fortran_to_c(&shape, &data),
    };
    Ok(NpyArray { shape, data })
}

/// Reorders a Fortran-ordered (first axis fastest) array into C order.
fn fortran_to_c(shape: &[usize], data: &[f32]) -> Vec<f32> {
    // Axes of length 1 do not change the order; without them there are at most log2(len) axes.
    let shape: Vec<usize> = shape.iter().copied().filter(|&n| n != 1).collect();
    let shape = shape.as_slice();
    let mut out = vec![0.0; data.len()];
    let mut idx = vec![0usize; shape.len()];
    for v in out.iter_mut() {
        // `idx` walks C order (last axis fastest); its Fortran offset has the first axis fastest.
        let mut f_off = 0;
        let mut stride = 1;
        for (i, &n) in idx.iter().zip(shape) {
            f_off += i * stride;
            stride *= n;
        }
        *v = data[f_off];
        for ax in (0..shape.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    out
}

/// Writes `data` (C order) as a little-endian float32 `.npy` of the given shape.
pub(crate) fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(Error::data(path, format!("cannot write {} values as shape {shape:?}", data.len())));
    }
    // Through a temporary file and a rename: a full disk never leaves a truncated `.npy`.
    crate::files::write_atomic(path, |w| {
        w.write_all(&npy_header("<f4", shape))?;
        for chunk in data.chunks(1 << 16) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
        Ok(())
    })
}

/// The `.npy` version 1.0 header numpy itself writes: magic, version, length, then the dict
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3, 65, 65), }` padded with spaces and a
/// newline to a multiple of 64 bytes. The shape is a Python tuple (`(17,)` for one axis), which
/// readers stricter than numpy (tch's `read_npy`) require.
fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    let fixed = 6 + 2 + 2; // magic, version, header length
    let total = (fixed + dict.len() + 1).div_ceil(64) * 64;
    dict.push_str(&" ".repeat(total - fixed - dict.len() - 1));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((dict.len() as u16).to_le_bytes());
    out.extend(dict.into_bytes());
    out
}

/// Reads split `split` of a JSON split index: a list of `N`-path entries.
pub(crate) fn read_split<const N: usize>(json: &Path, split: &str) -> Result<Vec<[String; N]>> {
    let text = std::fs::read_to_string(json).map_err(|e| {
        Error::context(format!("{}: cannot read the split index (pass the dataset root that contains it)", json.display()), e)
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::context(format!("{}: is not valid JSON", json.display()), e))?;
    let obj = value.as_object().ok_or_else(|| Error::data(json, "expected a JSON object mapping split names to lists of entries"))?;
    let entries = obj.get(split).ok_or_else(|| {
        let known: Vec<&str> = obj.keys().map(String::as_str).collect();
        Error::data(json, format!("has no split `{split}`; it has: {}", known.join(", ")))
    })?;
    let list = entries.as_array().ok_or_else(|| Error::data(json, format!("split `{split}` is not a list of entries")))?;
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let bad = || Error::data(json, format!("split `{split}` entry {i} is not a list of {N} path strings: {entry}"));
            let items = entry.as_array().filter(|a| a.len() == N).ok_or_else(bad)?;
            let mut out: [String; N] = std::array::from_fn(|_| String::new());
            for (slot, item) in out.iter_mut().zip(items) {
                *slot = item.as_str().ok_or_else(bad)?.to_owned();
            }
            Ok(out)
        })
        .collect()
}

/// Writes a JSON split index mapping each split name to its list of `N`-path entries.
pub(crate) fn write_split_index<const N: usize>(json: &Path, splits: &[(&str, Vec<[String; N]>)]) -> Result<()> {
    let mut map = serde_json::Map::new();
    for (name, entries) in splits {
        let list = entries.iter().map(|e| serde_json::Value::from(e.to_vec())).collect::<Vec<_>>();
        if map.insert((*name).to_owned(), serde_json::Value::Array(list)).is_some() {
            return Err(Error::data(json, format!("split `{name}` is given twice; merge its entries")));
        }
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(map))
        .map_err(|e| Error::context(format!("{}: cannot serialise the split index", json.display()), e))?;
    crate::files::write_bytes_atomic(json, text)
}

/// Finds a dataset folder `dir` (holding `index`) from a data root or from the folder itself.
pub(crate) fn locate_dataset(root: &Path, dir: &str, index: &str) -> Result<PathBuf> {
    let nested = root.join(dir);
    if nested.join(index).is_file() {
        Ok(nested)
    } else if root.join(index).is_file() {
        Ok(root.to_path_buf())
    } else {
        Err(Error::data(
            nested.join(index),
            format!(
                "{dir} split index not found (also looked for {}); pass the data root that contains {dir}/{index}",
                root.join(index).display()
            ),
        ))
    }
}

/// Checks that a file of a record (`path`, `got` = rows×columns) matches the record's image.
pub(crate) fn check_same_size(path: &Path, got: (usize, usize), image: &Path, want: (usize, usize)) -> Result<()> {
    if got == want {
        return Ok(());
    }
    Err(Error::data(
        path,
        format!(
            "is {}×{} (rows×columns) but the image {} is {}×{}; all files of a record must have the same size",
            got.0,
            got.1,
            image.display(),
            want.0,
            want.1
        ),
    ))
}

/// Checks, before writing, that an array of a record has the image's size.
pub(crate) fn check_write_size(path: &Path, got: (usize, usize), want: (usize, usize)) -> Result<()> {
    if got == want {
        return Ok(());
    }
    Err(Error::data(
        path,
        format!(
            "cannot write a {}×{} array next to a {}×{} image; all arrays of a record must have the same size",
            got.0, got.1, want.0, want.1
        ),
    ))
}

/// Checks a relative output name (a record stem) so that writers never escape their folder.
pub(crate) fn check_stem(stem: &str) -> Result<()> {
    let p = Path::new(stem);
    let escapes = p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_)));
    if stem.is_empty() || escapes {
        return Err(Error::config("stem", format!("`{stem}` must be a non-empty relative name without `..`, e.g. `scene1_0003`")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;
    use std::io::BufWriter;

    #[test]
    fn fortran_order_is_transposed_to_c_order() {
        // A 2×3 array [[0,1,2],[3,4,5]] stored Fortran-order is 0,3,1,4,2,5.
        let f = [0.0, 3.0, 1.0, 4.0, 2.0, 5.0];
        assert_eq!(fortran_to_c(&[2, 3], &f), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn stems_cannot_escape_their_folder() {
        assert!(check_stem("scene_01").is_ok());
        assert!(check_stem("building/point_3").is_ok());
        for bad in ["", "../x", "/abs", "a/../../b"] {
            assert!(check_stem(bad).is_err(), "{bad}");
        }
    }

    /// A `.npy` file with header `header` (format version `version`) and `data`.
    fn npy_bytes(version: u8, header: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = b"\x93NUMPY".to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((header.len() as u16).to_le_bytes());
        } else {
            out.extend((header.len() as u32).to_le_bytes());
        }
        out.extend(header);
        out.extend(data);
        out
    }

    #[test]
    fn npy_headers_are_checked_before_anything_is_allocated_or_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, bytes: Vec<u8>| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            read_npy_f32(&p).err().expect("a hostile .npy is refused").to_string()
        };
        // A version-2 header claiming 4 GiB: npyz allocated it before reading.
        let mut huge = npy_bytes(2, b"{'descr': '<f4'}", &[]);
        huge[8..12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let msg = read("huge.npy", huge);
        assert!(msg.contains("huge.npy") && msg.contains("header of 4294967280 bytes") && msg.contains("10000"), "{msg}");
        // A header nested thousands deep: the header parser recurses.
        let deep = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}1{}}}\n", "(".repeat(3000), ",)".repeat(3000));
        let msg = read("deep.npy", npy_bytes(2, deep.as_bytes(), &[]));
        assert!(msg.contains("deep.npy") && msg.contains("nests brackets deeper than 4"), "{msg}");
        // Twelve unclosed braces: the header parser backtracked for seconds (found by fuzzing).
        let open = b"{{{{{{{{{{{{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }\n";
        let msg = read("open.npy", npy_bytes(1, open, &[0; 48]));
        assert!(msg.contains("open.npy") && msg.contains("nests brackets deeper than 4"), "{msg}");
        let msg = read("open2.npy", npy_bytes(1, b"{{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }\n", &[0; 48]));
        assert!(msg.contains("leaves a bracket open"), "{msg}");
        // A hundred axes of 1: the Fortran reordering took time proportional to values × axes.
        let axes = format!("{{'descr': '<f4', 'fortran_order': True, 'shape': ({}), }}\n", "1, ".repeat(100));
        let msg = read("axes.npy", npy_bytes(1, axes.as_bytes(), &[0; 4]));
        assert!(msg.contains("axes.npy") && msg.contains("100 axes; numpy arrays have at most 64"), "{msg}");
        // Shapes whose product overflows, or needs more data than the file holds.
        // (An empty array of a huge shape is fine: it has no values.)
        let empty = b"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 0), }\n";
        let p = dir.path().join("empty.npy");
        std::fs::write(&p, npy_bytes(1, empty, &[])).unwrap();
        assert_eq!(read_npy_f32(&p).unwrap().shape, [1 << 32, 1 << 32, 0]);
        // As a tensor its dimensions must fit i64.
        let wide = b"{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 0), }\n";
        let p = dir.path().join("wide.npy");
        std::fs::write(&p, npy_bytes(1, wide, &[])).unwrap();
        let msg = crate::data::read_npy(&p).expect_err("dimensions beyond i64 are refused").to_string();
        assert!(msg.contains("wide.npy") && msg.contains("18446744073709551615"), "{msg}");
        let over = b"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n";
        let msg = read("over2.npy", npy_bytes(1, over, &[0; 16]));
        assert!(msg.contains("over2.npy") && msg.contains("shape [4294967296, 4294967296] has more values than 64 bits count"), "{msg}");
        let big = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }\n";
        let msg = read("big.npy", npy_bytes(1, big, &[0; 16]));
        assert!(msg.contains("big.npy") && msg.contains("needs 4398046511104 bytes of data but 16 follow its header"), "{msg}");
    }

    #[test]
    fn npy_headers_are_numpys_own() {
        // What `np.save` writes for float32 arrays of these shapes (header up to the data).
        let h = npy_header("<f4", &[4, 3, 65, 65]);
        assert_eq!(&h[..10], b"\x93NUMPY\x01\x00\x76\x00");
        let dict = std::str::from_utf8(&h[10..]).unwrap();
        assert_eq!(dict.trim_end(), "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3, 65, 65), }");
        assert!(dict.ends_with(" \n") && h.len() == 128);
        let one = npy_header("<f4", &[17]);
        assert!(std::str::from_utf8(&one[10..]).unwrap().starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (17,), }"));
        assert_eq!(one.len() % 64, 0);
        // And libtorch's strict reader takes the file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        write_npy_f32(&path, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let t = tch::Tensor::read_npy(&path).unwrap();
        assert_eq!(t.size(), [2, 3]);
        assert_eq!(Vec::<f32>::try_from(t.flatten(0, -1)).unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn npy_round_trip_and_dtype_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy_f32(&p, &[2, 2], &[1.0, 2.0, 3.0, 4.5]).unwrap();
        let a = read_npy_f32(&p).unwrap();
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.5]);

        // float64 is accepted and converted.
        let p64 = dir.path().join("b.npy");
        let mut w = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .shape(&[3])
            .writer(BufWriter::new(File::create(&p64).unwrap()))
            .begin_nd()
            .unwrap();
        w.extend([0.25f64, -1.0, 7.0]).unwrap();
        w.finish().unwrap();
        assert_eq!(read_npy_f32(&p64).unwrap().data, vec![0.25, -1.0, 7.0]);

        // int32 is rejected with the dtype in the message.
        let pi = dir.path().join("c.npy");
        let mut w = npyz::WriteOptions::<i32>::new()
            .default_dtype()
            .shape(&[2])
            .writer(BufWriter::new(File::create(&pi).unwrap()))
            .begin_nd()
            .unwrap();
        w.extend([1i32, 2]).unwrap();
        w.finish().unwrap();
        let msg = read_npy_f32(&pi).err().unwrap().to_string();
        assert!(msg.contains("c.npy") && msg.contains("<i4"), "{msg}");

        // Truncated data section.
        let bytes = std::fs::read(&p).unwrap();
        let pt = dir.path().join("t.npy");
        std::fs::write(&pt, &bytes[..bytes.len() - 3]).unwrap();
        let msg = read_npy_f32(&pt).err().unwrap().to_string();
        assert!(msg.contains("t.npy") && msg.contains("truncated"), "{msg}");

        // Not an npy at all.
        let pg = dir.path().join("g.npy");
        std::fs::write(&pg, b"hello world, not numpy").unwrap();
        let msg = read_npy_f32(&pg).err().unwrap().to_string();
        assert!(msg.contains("g.npy") && msg.contains("not a valid .npy"), "{msg}");
    }

    #[test]
    fn split_index_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("idx.json");
        let e = |s: &str| [format!("{s}.a"), format!("{s}.b")];
        write_split_index(&p, &[("train", vec![e("x"), e("y")]), ("test", vec![e("z")])]).unwrap();
        assert_eq!(read_split::<2>(&p, "train").unwrap(), vec![e("x"), e("y")]);
        let msg = read_split::<2>(&p, "val").err().unwrap().to_string();
        assert!(msg.contains("idx.json") && msg.contains("no split `val`") && msg.contains("test, train"), "{msg}");
        let msg = read_split::<3>(&p, "test").err().unwrap().to_string();
        assert!(msg.contains("entry 0 is not a list of 3"), "{msg}");
    }
}
