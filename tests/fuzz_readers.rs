//! Mutation fuzzing of every file reader (issue #18): whatever the bytes, a reader returns `Ok` or
//! an error; it never panics, aborts, hangs, or allocates what a header claims without the file
//! backing it. cargo-fuzz needs a nightly compiler, so this is a deterministic mutation fuzzer that
//! runs in `cargo test --release`, and so in CI, on a fixed budget.
//!
//! Each test writes real files of its reader's format (the seeds: made by the project's own
//! writers, plus hand-made and hostile ones), mutates them with a seeded ChaCha generator — bit
//! flips, inserted, deleted, repeated and spliced chunks, truncation, interesting values (0, 0xFF,
//! 0x7F, huge little-endian lengths), numbers in text replaced by extreme ones — and hands each
//! mutant to the reader inside `catch_unwind`. Structured targets also mutate what is inside a
//! container (the pickle of a torch.save zip, zipped again) so that the mutants get past the
//! container's checksums.
//!
//! The loop runs in a child process — the test binary re-run for that one test — under an
//! `RLIMIT_DATA` of the child's data size after start-up plus 1 GiB. Under the limit an allocation
//! sized by a crafted header fails (Rust aborts, libtorch throws) instead of quietly succeeding
//! under overcommit; an abort or a stack overflow kills only the child. The parent then reports
//! what happened, with the seed and iteration that replay it, and saves the input under
//! `target/fuzz-crashes/`. (RLIMIT_AS would also count libtorch's large address-space
//! reservations and thread stacks; RLIMIT_DATA counts only writable private memory, which is what
//! a huge allocation takes.)
//!
//! Environment: `MTROBUST_FUZZ_ITERS` (inputs per reader, default: the test's CI budget),
//! `MTROBUST_FUZZ_SCALE` (multiplies every test's budget instead, for long runs),
//! `MTROBUST_FUZZ_SEED` (base seed, default fixed per reader), `MTROBUST_FUZZ_FROM` (the first
//! iteration; with `MTROBUST_FUZZ_ITERS=1` it replays one input), `MTROBUST_FUZZ_TIMEOUT` (seconds
//! before a child is killed as hung, default 600).
#[path = "common/paper_store.rs"]
mod paper_store;

use mtrobust::data::{read_npy, write_npy};
use mtrobust::model::script::ScriptSpec;
use mtrobust::model::torchfile::pickle::{self, *};
use mtrobust::model::torchfile::{read_state_dict, write_state_dict};
use mtrobust::model::treemtl::import;
use mtrobust::model::{BackboneKind, HeadConfig, Model, ModelConfig};
use mtrobust::study::{Store, StudyFile};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

/// Set in the child process: the folder it works in.
const CHILD: &str = "MTROBUST_FUZZ_CHILD";
/// What the child may allocate beyond its size after start-up.
const HEADROOM: u64 = 1 << 30;
/// Mutants are cut to this size.
const MAX_INPUT: usize = 8 << 20;
/// An input that takes longer than this is saved (as `….slow.bin`) and named in the summary: a
/// quadratic path on crafted input shows up here long before it is a hang.
const SLOW: Duration = Duration::from_secs(1);

/// Where crashing and slow inputs are saved.
fn crashes_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("fuzz-crashes");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One input: its kind (what the test does with it), its bytes, and entries to zip with it.
#[derive(Clone)]
struct Input {
    kind: u8,
    bytes: Vec<u8>,
    extra: Rc<Vec<(String, Vec<u8>)>>,
}

fn input(kind: u8, bytes: Vec<u8>) -> Input {
    Input { kind, bytes, extra: Rc::new(Vec::new()) }
}

/// What a test checks beyond "no panic": `Err(why)` fails the run; `Ok(true)` when the reader
/// accepted the input (counted, to see how deep the mutants get).
type Check = Result<bool, String>;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// Runs the fuzz loop of test `name` (its function name) in a child process; `budget` inputs
/// unless `MTROBUST_FUZZ_ITERS` says otherwise. `seeds` writes and returns the seeds (the first
/// one valid); `run` feeds one input to the reader.
fn fuzz(name: &str, budget: u64, seeds: impl FnOnce(&Path) -> Vec<Input>, run: impl Fn(&Path, &Input) -> Check) {
    match std::env::var_os(CHILD) {
        Some(dir) => child(name, budget, Path::new(&dir), seeds, run),
        None => parent(name),
    }
}

fn parent(name: &str) {
    // The child writes every input to a file: in memory (tmpfs) that is 50 times faster than on disk.
    let shm = tempfile::Builder::new().prefix("mtrobust-fuzz").tempdir_in("/dev/shm");
    let dir = shm.or_else(|_| tempfile::tempdir()).unwrap();
    let log = dir.path().join("child.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let timeout = Duration::from_secs(env_u64("MTROBUST_FUZZ_TIMEOUT").unwrap_or(600));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > timeout {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if let Some(status) = status.filter(|s| s.success()) {
        let summary = std::fs::read_to_string(dir.path().join("summary"));
        let summary = summary.unwrap_or_else(|_| panic!("fuzz {name}: the child ran no fuzz loop ({status}):\n{text}"));
        eprintln!("{summary}");
        return;
    }
    let how = match status {
        None => format!("was killed after {} s without finishing (a hang, or raise MTROBUST_FUZZ_TIMEOUT)", timeout.as_secs()),
        Some(s) => {
            use std::os::unix::process::ExitStatusExt;
            match s.signal() {
                Some(6) => "aborted (SIGABRT: a failed allocation, a stack overflow, or a libtorch abort)".into(),
                Some(sig) => format!("died of signal {sig}"),
                None => format!("failed with exit code {:?}", s.code()),
            }
        }
    };
    let progress = std::fs::read_to_string(dir.path().join("progress")).unwrap_or_default();
    let (seed, iter) = progress.split_once(' ').unwrap_or(("?", "?"));
    let saved = crashes_dir().join(format!("{name}-{seed}-{iter}.bin"));
    let _ = std::fs::copy(dir.path().join("input"), &saved);
    let tail: String = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    panic!(
        "fuzz {name}: the child {how} at iteration {iter} (seed {seed}); its input is saved as {}\n\
         replay: MTROBUST_FUZZ_SEED={seed} MTROBUST_FUZZ_FROM={iter} MTROBUST_FUZZ_ITERS=1 cargo test --release --test fuzz_readers {name}\n\
         --- child output (end) ---\n{tail}",
        saved.display()
    );
}

/// The child's data size (VmData), in bytes.
fn data_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmData:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap();
    kb * 1024
}

/// Caps the child's writable private memory at its present size plus [`HEADROOM`], and checks
/// that both Rust and libtorch allocations now fail beyond it.
fn limit_memory() -> u64 {
    let limit = data_size() + HEADROOM;
    let rl = libc::rlimit { rlim_cur: limit, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit only reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_DATA, &rl) }, 0, "setrlimit(RLIMIT_DATA) failed");
    assert!(Vec::<u8>::new().try_reserve(2 * HEADROOM as usize).is_err(), "RLIMIT_DATA does not bound allocations here");
    assert!(Tensor::f_empty([HEADROOM as i64], (Kind::Float, Device::Cpu)).is_err(), "RLIMIT_DATA does not bound libtorch");
    limit
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned()).unwrap_or_default()
}

fn child(name: &str, budget: u64, dir: &Path, seeds: impl FnOnce(&Path) -> Vec<Input>, run: impl Fn(&Path, &Input) -> Check) {
    tch::set_num_threads(1);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let seeds = seeds(&work);
    // The first seed is valid: reading it once warms libtorch up before the limit.
    assert!(run(&work, &seeds[0]).unwrap(), "fuzz {name}: the first seed is not read (see the reader's error by replaying iteration 0)");
    let limit = limit_memory();
    let base = env_u64("MTROBUST_FUZZ_SEED")
        .unwrap_or_else(|| name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)));
    let from = env_u64("MTROBUST_FUZZ_FROM").unwrap_or(0);
    let iters = env_u64("MTROBUST_FUZZ_ITERS").unwrap_or(budget * env_u64("MTROBUST_FUZZ_SCALE").unwrap_or(1));
    let start = Instant::now();
    let (mut slowest, mut slowest_at, mut slowest_len) = (Duration::ZERO, 0, 0);
    let (mut kinds, mut accepted, mut slow) = ([0u64; 4], 0u64, Vec::new());
    for i in from..from + iters {
        // The seeds first, unmutated (the hostile ones among them), then mutants.
        let input = match usize::try_from(i).ok().and_then(|i| seeds.get(i)) {
            Some(s) => s.clone(),
            None => mutate(&mut ChaCha8Rng::seed_from_u64(base.wrapping_add(i)), &seeds),
        };
        std::fs::write(dir.join("input"), &input.bytes).unwrap();
        std::fs::write(dir.join("progress"), format!("{base} {i}")).unwrap();
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&work, &input)));
        if t.elapsed() > slowest {
            (slowest, slowest_at, slowest_len) = (t.elapsed(), i, input.bytes.len());
        }
        if t.elapsed() > SLOW {
            let path = crashes_dir().join(format!("{name}-{base}-{i}.slow.bin"));
            std::fs::write(&path, &input.bytes).unwrap();
            slow.push(format!("{} ({:.1} s)", path.display(), t.elapsed().as_secs_f64()));
        }
        kinds[usize::from(input.kind).min(3)] += 1;
        let failure = match outcome {
            Ok(Ok(ok)) => {
                accepted += u64::from(ok);
                continue;
            }
            Ok(Err(why)) => why,
            Err(payload) => format!("panicked: {}", panic_message(&*payload)),
        };
        panic!("fuzz {name}: input {i} (kind {}, {} bytes) {failure}", input.kind, input.bytes.len());
    }
    let summary = format!(
        "fuzz {name}: {iters} inputs (by kind {kinds:?}, {accepted} accepted) in {:.1} s, slowest {:.0} ms (iteration {slowest_at}, {slowest_len} bytes), seed {base}, \
         data limit {} MiB",
        start.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1e3,
        limit >> 20
    );
    let slow = if slow.is_empty() { String::new() } else { format!("\n  slow inputs, saved: {}", slow.join(", ")) };
    std::fs::write(dir.join("summary"), summary + &slow).unwrap();
}

// ---- mutation ----

const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 62,
    i64::MAX as u64,
    u64::MAX,
    u64::MAX - 7,
];

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "255",
    "65536",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "-9223372036854775808",
    "99999999999999999999999999999",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "inf",
    "0.5",
];

/// A mutant of a random seed: one to eight stacked mutations.
fn mutate(rng: &mut ChaCha8Rng, seeds: &[Input]) -> Input {
    let seed = &seeds[rng.random_range(0..seeds.len())];
    let mut b = seed.bytes.clone();
    let rounds = 1 + rng.random_range(0..8u32).trailing_zeros().min(7);
    for _ in 0..rounds {
        let n = b.len();
        let at = |rng: &mut ChaCha8Rng| if n == 0 { 0 } else { rng.random_range(0..n) };
        match rng.random_range(0..11) {
            0 if n > 0 => {
                let i = at(rng);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if n > 0 => {
                let i = at(rng);
                b[i] = rng.random();
            }
            2 => {
                let i = if n == 0 { 0 } else { rng.random_range(0..=n) };
                let len = rng.random_range(1..=16);
                let new: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                b.splice(i..i, new);
            }
            3 if n > 0 => {
                let i = at(rng);
                let len = rng.random_range(1..=64.min(n - i));
                b.drain(i..i + len);
            }
            4 => b.truncate(if n == 0 { 0 } else { rng.random_range(0..n) }),
            5 => {
                // Splice in a chunk of another seed of the same kind.
                let same: Vec<&Input> = seeds.iter().filter(|s| s.kind == seed.kind && !s.bytes.is_empty()).collect();
                let other = &same[rng.random_range(0..same.len())].bytes;
                let from = rng.random_range(0..other.len());
                let len = rng.random_range(1..=256.min(other.len() - from));
                let i = if n == 0 { 0 } else { rng.random_range(0..=n) };
                if rng.random_bool(0.5) {
                    b.splice(i..i, other[from..from + len].iter().copied());
                } else {
                    let end = (i + len).min(n);
                    b.splice(i..end, other[from..from + len].iter().copied());
                }
            }
            6 => {
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let width = [1, 2, 4, 8][rng.random_range(0..4)];
                let i = at(rng);
                let bytes = &v.to_le_bytes()[..width];
                let end = (i + width).min(n);
                b.splice(i..end, bytes.iter().copied());
            }
            7 if n > 0 => {
                // Repeat a chunk: sometimes thousands of times, which builds deep nesting.
                let i = at(rng);
                let len = rng.random_range(1..=16.min(n - i));
                let times = if rng.random_bool(0.1) { rng.random_range(100..50_000) } else { rng.random_range(2..16) };
                let chunk = b[i..i + len].to_vec();
                let copies: Vec<u8> = chunk.iter().copied().cycle().take((len * times).min(MAX_INPUT)).collect();
                b.splice(i..i, copies);
            }
            8 => {
                // Replace a number written in text by an extreme one.
                let starts: Vec<usize> = (0..n).filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit())).collect();
                if !starts.is_empty() {
                    let i = starts[rng.random_range(0..starts.len())];
                    let end = (i..n).find(|&j| !b[j].is_ascii_digit() && b[j] != b'.').unwrap_or(n);
                    let number = NUMBERS[rng.random_range(0..NUMBERS.len())];
                    b.splice(i..end, number.bytes());
                }
            }
            9 if n > 1 => {
                // Copy a chunk over another place.
                let (i, j) = (at(rng), at(rng));
                let len = rng.random_range(1..=64.min(n - i).min(n - j));
                let chunk = b[i..i + len].to_vec();
                b[j..j + len].copy_from_slice(&chunk);
            }
            _ => {
                // Duplicate a line (text formats: a key twice, a table twice).
                let lines: Vec<usize> = (0..n).filter(|&i| i == 0 || b[i - 1] == b'\n').collect();
                if !lines.is_empty() {
                    let i = lines[rng.random_range(0..lines.len())];
                    let end = (i..n).find(|&j| b[j] == b'\n').map_or(n, |j| j + 1);
                    let line = b[i..end].to_vec();
                    b.splice(end..end, line);
                }
            }
        }
        b.truncate(MAX_INPUT);
    }
    Input { kind: seed.kind, bytes: b, extra: seed.extra.clone() }
}

// ---- seeds ----

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn uni(s: &str) -> Vec<u8> {
    cat(&[&[BINUNICODE], &(s.len() as u32).to_le_bytes(), s.as_bytes()])
}

fn short_uni(s: &str) -> Vec<u8> {
    cat(&[&[SHORT_BINUNICODE, s.len() as u8], s.as_bytes()])
}

fn global(module: &str, name: &str) -> Vec<u8> {
    format!("{}{module}\n{name}\n", GLOBAL as char).into_bytes()
}

/// `torch._utils._rebuild_tensor_v2` of float storage `key` (declaring `numel` elements).
fn tensor_call(key: &str, numel: u8, offset: u8, size: &[u8], stride: &[u8]) -> Vec<u8> {
    let tuple = |vs: &[u8]| -> Vec<u8> {
        let mut t = vec![MARK];
        for &v in vs {
            t.extend([BININT1, v]);
        }
        t.push(TUPLE);
        t
    };
    cat(&[
        &global("torch._utils", "_rebuild_tensor_v2"),
        &[MARK, MARK],
        &uni("storage"),
        &global("torch", "FloatStorage"),
        &uni(key),
        &uni("cpu"),
        &[BININT1, numel, TUPLE, BINPERSID, BININT1, offset],
        &tuple(size),
        &tuple(stride),
        &[NEWFALSE],
        &global("collections", "OrderedDict"),
        &[EMPTY_TUPLE, REDUCE, TUPLE, REDUCE],
    ])
}

/// Hand-made pickles of protocols 0 to 5, each with the opcodes its protocol introduced.
fn protocol_pickles() -> Vec<Vec<u8>> {
    let p0 = b"(dp0\nVa\n(lp1\nI1\naF2.5\naL12345678901L\naS'text'\nasVb\nccollections\nOrderedDict\np2\n(tRp3\nsVc\nP0\nsVd\n(NI01\nI00\ntsVe\ng2\ns."
        .to_vec();
    let p1 = cat(&[
        &[NONE, POP, MARK, NONE, POP_MARK, EMPTY_DICT, BINPUT, 0, MARK],
        &uni("a"),
        &[EMPTY_LIST, BINPUT, 1, MARK, BININT1, 1, BININT2, 0x34, 0x12, BININT, 0xfb, 0xff, 0xff, 0xff, BINFLOAT],
        &2.5f64.to_be_bytes(),
        &[SHORT_BINSTRING, 2, b'x', b'y', BINSTRING, 3, 0, 0, 0, b'a', b'b', b'c', APPENDS],
        &uni("b"),
        &[EMPTY_TUPLE],
        &uni("c"),
        &[MARK, NONE, BINGET, 1, DUP, POP, TUPLE, LONG_BINPUT, 2, 0, 0, 0],
        &uni("d"),
        &[LONG_BINGET, 2, 0, 0, 0, SETITEMS, STOP],
    ]);
    let p2 = cat(&[
        &[PROTO, 2],
        &global("collections", "OrderedDict"),
        &[EMPTY_TUPLE, REDUCE, BINPUT, 0, MARK],
        &uni("w"),
        &tensor_call("0", 6, 1, &[2, 2], &[2, 1]),
        &uni("n"),
        &[LONG1, 8],
        &(-5_000_000_000i64).to_le_bytes(),
        &uni("t"),
        &[NONE, NEWTRUE, NEWFALSE, TUPLE3, TUPLE1],
        &uni("o"),
        &global("__main__", "Layout"),
        &[EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, MARK],
        &uni("T"),
        &[BININT1, 3, DICT, BUILD, SETITEMS, STOP],
    ]);
    let p3 = cat(&[
        &[PROTO, 3, EMPTY_DICT, MARK],
        &uni("b"),
        &[SHORT_BINBYTES, 3, 1, 2, 3],
        &uni("B"),
        &[BINBYTES, 2, 0, 0, 0, 9, 9, SETITEMS, STOP],
    ]);
    let body4 = cat(&[
        &short_uni("collections"),
        &[MEMOIZE],
        &short_uni("OrderedDict"),
        &[MEMOIZE, STACK_GLOBAL, MEMOIZE, EMPTY_TUPLE, REDUCE, MEMOIZE, MARK],
        &short_uni("s"),
        &[EMPTY_SET, MARK, BININT1, 1, BININT1, 2, ADDITEMS],
        &short_uni("f"),
        &[MARK, BININT1, 3, FROZENSET],
        &short_uni("u"),
        &[BINUNICODE8],
        &4u64.to_le_bytes(),
        b"long",
        &short_uni("b8"),
        &[BINBYTES8],
        &3u64.to_le_bytes(),
        b"xyz",
        &short_uni("g"),
        &[BINGET, 0],
        &short_uni("x"),
        &short_uni("builtins"),
        &short_uni("object"),
        &[STACK_GLOBAL, EMPTY_TUPLE, EMPTY_DICT, NEWOBJ_EX, SETITEMS, STOP],
    ]);
    let p4 = cat(&[&[PROTO, 4, FRAME], &(body4.len() as u64).to_le_bytes(), &body4]);
    let p5 = cat(&[
        &[PROTO, 5, EMPTY_DICT],
        &short_uni("a"),
        &[BYTEARRAY8],
        &2u64.to_le_bytes(),
        &[7, 7, SETITEM],
        &short_uni("l"),
        &[LONG4, 2, 0, 0, 0, 0xff, 0x7f, SETITEM, STOP],
    ]);
    vec![p0, p1, p2, p3, p4, p5]
}

/// Pickles that crashed the reader before issue #18: deep nesting, lengths near 2^64, memo
/// references that copied.
fn hostile_pickles() -> Vec<Vec<u8>> {
    let mut deep = vec![PROTO, 2];
    deep.extend([EMPTY_LIST].repeat(100_000));
    deep.extend([APPEND].repeat(99_999));
    deep.push(STOP);
    let mut calls = vec![PROTO, 2, NONE];
    calls.extend([EMPTY_TUPLE, REDUCE].repeat(50_000));
    calls.push(STOP);
    let huge = cat(&[&[PROTO, 4, BINUNICODE8], &u64::MAX.to_le_bytes(), b"abc"]);
    let mut memo = vec![PROTO, 2, BININT1, 1, DUP, DUP, TUPLE3, BINPUT, 0];
    for i in 1..60u8 {
        memo.extend([BINGET, i - 1, BINGET, i - 1, BINGET, i - 1, TUPLE3, BINPUT, i]);
    }
    memo.push(STOP);
    vec![deep, calls, huge, memo]
}

/// A small state dict of every storage kind, with a scalar and an empty tensor.
fn small_state_dict() -> Vec<(String, Tensor)> {
    let base = Tensor::arange(12, (Kind::Float, Device::Cpu)).view([3, 4]);
    vec![
        ("float".into(), base.shallow_clone()),
        ("double".into(), base.to_kind(Kind::Double)),
        ("half".into(), base.to_kind(Kind::Half)),
        ("bf16".into(), base.to_kind(Kind::BFloat16)),
        ("long".into(), Tensor::from(7i64)),
        ("int".into(), base.to_kind(Kind::Int)),
        ("short".into(), base.to_kind(Kind::Int16)),
        ("char".into(), base.to_kind(Kind::Int8)),
        ("byte".into(), base.to_kind(Kind::Uint8)),
        ("bool".into(), base.gt(5.0)),
        ("empty".into(), Tensor::zeros([0, 3], (Kind::Float, Device::Cpu))),
    ]
}

/// The entries of a zip archive.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().to_string(), data)
        })
        .collect()
}

/// A torch.save-like zip of `entries`, stored.
fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        zip.start_file(name, stored).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Kind 1 inputs: the pickle of a torch.save archive, zipped again with the archive's other
/// entries (so that mutants pass the zip's checksums).
fn pickle_input(archive: &[u8]) -> Input {
    let entries = unzip(archive);
    let pkl = entries.iter().find(|(n, _)| n.ends_with("/data.pkl")).unwrap().1.clone();
    let rest: Vec<(String, Vec<u8>)> = entries.into_iter().filter(|(n, _)| !n.ends_with("/data.pkl")).collect();
    Input { kind: 1, bytes: pkl, extra: Rc::new(rest) }
}

/// The file a kind 0 (raw) or kind 1 (pickle to zip) input stands for.
fn archive_bytes(input: &Input) -> Vec<u8> {
    match input.kind {
        1 => {
            let mut entries = vec![("archive/data.pkl".to_string(), input.bytes.clone())];
            entries.extend(input.extra.iter().cloned());
            zip_of(&entries)
        }
        _ => input.bytes.clone(),
    }
}

/// A zip64 archive whose central directory says `archive/data.pkl` holds 2^62 bytes.
fn zip64_claim(pkl: &[u8]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        !data.iter().fold(!0u32, |crc, &b| (0..8).fold(crc ^ u32::from(b), |c, _| if c & 1 == 1 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 }))
    }
    let name = b"archive/data.pkl";
    let (crc, len) = (crc32(pkl), pkl.len() as u32);
    let mut z =
        cat(&[&0x0403_4b50u32.to_le_bytes(), &[45, 0, 0, 0, 0, 0, 0, 0, 0, 0], &crc.to_le_bytes(), &len.to_le_bytes(), &len.to_le_bytes()]);
    z.extend(cat(&[&(name.len() as u16).to_le_bytes(), &[0, 0], name, pkl]));
    let cd = z.len() as u32;
    z.extend(cat(&[&0x0201_4b50u32.to_le_bytes(), &[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0], &crc.to_le_bytes(), &len.to_le_bytes()]));
    z.extend(cat(&[
        &u32::MAX.to_le_bytes(),
        &(name.len() as u16).to_le_bytes(),
        &12u16.to_le_bytes(),
        &[0; 10],
        &0u32.to_le_bytes(),
        name,
    ]));
    z.extend(cat(&[&1u16.to_le_bytes(), &8u16.to_le_bytes(), &(1u64 << 62).to_le_bytes()]));
    let cd_len = z.len() as u32 - cd;
    z.extend(cat(&[&0x0605_4b50u32.to_le_bytes(), &[0, 0, 0, 0, 1, 0, 1, 0], &cd_len.to_le_bytes(), &cd.to_le_bytes(), &[0, 0]]));
    z
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/treemtl")
}

/// The torch.save archive seeds: the project's writer, PyTorch's own (a TreeMTL training
/// checkpoint), and hand-made pickles with their storages.
fn archive_seeds(dir: &Path) -> Vec<Input> {
    let path = dir.join("seed.pt");
    write_state_dict(&path, &small_state_dict()).unwrap();
    let ours = std::fs::read(&path).unwrap();
    let theirs = std::fs::read(fixtures().join("seq_io.pt")).unwrap();
    let floats: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let views = cat(&[
        &[PROTO, 2, EMPTY_DICT, MARK],
        &uni("view"),
        &tensor_call("0", 6, 1, &[2, 2], &[1, 2]),
        &uni("zero"),
        &tensor_call("0", 6, 0, &[0, 3], &[3, 1]),
        &uni("tied"),
        &tensor_call("0", 6, 0, &[6], &[1]),
        &[SETITEMS, STOP],
    ]);
    let storage = Rc::new(vec![("archive/data/0".to_string(), floats), ("archive/byteorder".to_string(), b"little".to_vec())]);
    let mut seeds = vec![input(0, ours.clone()), input(0, theirs.clone()), pickle_input(&ours), pickle_input(&theirs)];
    seeds.push(Input { kind: 1, bytes: views, extra: storage.clone() });
    seeds.extend(protocol_pickles().into_iter().chain(hostile_pickles()).map(|p| Input { kind: 1, bytes: p, extra: storage.clone() }));
    seeds.push(input(0, zip64_claim(b"\x80\x02}.")));
    seeds
}

/// A reader's error must name the file it read.
fn names_file(path: &Path, e: &mtrobust::Error) -> Check {
    let text = e.chain();
    let name = path.file_name().unwrap().to_string_lossy();
    if text.contains(&*name) { Ok(false) } else { Err(format!("returned an error that does not name the file: {text}")) }
}

#[test]
fn pickle_reader() {
    fuzz(
        "pickle_reader",
        4_000,
        |dir| {
            let archives = archive_seeds(dir);
            let mut seeds: Vec<Input> = archives.iter().filter(|s| s.kind == 1).map(|s| input(0, s.bytes.clone())).collect();
            let real = std::fs::read(fixtures().join("seq.model")).unwrap();
            seeds.push(input(0, pickle_input(&real).bytes));
            seeds
        },
        |_, input| {
            let Ok((v, used)) = pickle::unpickle(&input.bytes) else { return Ok(false) };
            assert!(used <= input.bytes.len());
            let _ = (v.describe(), v.global_name(), v.items(), v.get("state_dict"));
            Ok(true)
        },
    );
}

#[test]
fn torch_archive_reader() {
    fuzz("torch_archive_reader", 2_500, archive_seeds, |dir, input| {
        let path = dir.join("input.pt");
        std::fs::write(&path, archive_bytes(input)).unwrap();
        match read_state_dict(&path) {
            Ok(_) => Ok(true),
            Err(e) => names_file(&path, &e),
        }
    });
}

fn deeplab_config() -> ModelConfig {
    ModelConfig {
        backbone: BackboneKind::Small,
        tasks: mtrobust::task::parse_tasks("segm:10,normal,depth").unwrap(),
        layout: "[[{0, 1, 2}], [{0, 1, 2}], [{0, 1, 2}], [{0, 1, 2}], [{1, 2}, {0}]]".parse().unwrap(),
        head: HeadConfig { width: 4, rates: vec![1, 2, 3, 4], dropout: 0.1 },
    }
}

#[test]
fn treemtl_import() {
    fuzz(
        "treemtl_import",
        1_000,
        |dir| {
            // A TreeMTL training checkpoint written by PyTorch (state dict, layout object,
            // optimizer state), the same as safetensors, and the pickle alone.
            let real = std::fs::read(fixtures().join("deeplab.model")).unwrap();
            let st = dir.join("seed.safetensors");
            Tensor::write_safetensors(&read_state_dict(&fixtures().join("deeplab.model")).unwrap(), &st).unwrap();
            vec![input(0, real.clone()), pickle_input(&real), input(2, std::fs::read(&st).unwrap())]
        },
        |dir, input| {
            let path = dir.join(if input.kind == 2 { "input.safetensors" } else { "input.model" });
            std::fs::write(&path, archive_bytes(input)).unwrap();
            match import(&path, deeplab_config(), None, Device::Cpu) {
                Ok(_) => Ok(true),
                Err(e) => names_file(&path, &e),
            }
        },
    );
}

#[test]
fn checkpoint_loader() {
    fuzz(
        "checkpoint_loader",
        2_000,
        |dir| {
            let config = ModelConfig {
                backbone: BackboneKind::Small,
                tasks: mtrobust::task::parse_tasks("segm:4,depth").unwrap(),
                layout: "[[{0, 1}], [{0, 1}], [{0}, {1}], [{0}, {1}], [{0}, {1}]]".parse().unwrap(),
                head: HeadConfig { width: 4, rates: vec![1, 2], dropout: 0.0 },
            };
            let model = Model::new(config, mtrobust::data::InputSpace::reference(), Device::Cpu, 1).unwrap();
            let path = dir.join("seed.safetensors");
            model.save(&path, Some(serde_json::json!({"run": "seed"}))).unwrap();
            let (weights, sidecar) = (std::fs::read(&path).unwrap(), std::fs::read(dir.join("seed.json")).unwrap());
            // Kind 0 mutates the sidecar, kind 1 the weights; `extra` holds the other file.
            vec![
                Input { kind: 0, bytes: sidecar.clone(), extra: Rc::new(vec![("weights".into(), weights.clone())]) },
                Input { kind: 1, bytes: weights, extra: Rc::new(vec![("sidecar".into(), sidecar)]) },
            ]
        },
        |dir, input| {
            let path = dir.join("m.safetensors");
            let (weights, sidecar) = match input.kind {
                0 => (&input.extra[0].1, &input.bytes),
                _ => (&input.bytes, &input.extra[0].1),
            };
            std::fs::write(&path, weights).unwrap();
            std::fs::write(dir.join("m.json"), sidecar).unwrap();
            match Model::load(&path, Device::Cpu) {
                Ok(_) => Ok(true),
                Err(e) => names_file(&path, &e).or_else(|_| names_file(&dir.join("m.json"), &e)),
            }
        },
    );
}

#[test]
fn study_file() {
    fuzz(
        "study_file",
        5_000,
        |_| {
            let minimal = "[data]\npath = \"d\"\n[[model]]\npath = \"a.safetensors\"\n[[attack]]\nrule = \"fgsm\"\n";
            let deep = format!("[data]\npath = \"d\"\nx = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
            // The example with every commented-out option switched on too.
            let all: String = mtrobust::study::EXAMPLE
                .lines()
                .map(|l| match l.strip_prefix("# ") {
                    Some(rest) if rest.contains(" = ") || rest.starts_with("[[") => format!("{rest}\n"),
                    _ => format!("{l}\n"),
                })
                .collect();
            let example = mtrobust::study::EXAMPLE.as_bytes().to_vec();
            vec![input(0, example), input(0, all.into_bytes()), input(0, minimal.into()), input(0, deep.into_bytes())]
        },
        |dir, input| {
            let path = dir.join("study.toml");
            std::fs::write(&path, &input.bytes).unwrap();
            match StudyFile::read(&path) {
                Ok(_) => Ok(true),
                Err(e) => names_file(&path, &e),
            }
        },
    );
}

#[test]
fn model_spec() {
    fuzz(
        "model_spec",
        5_000,
        |_| {
            let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/torchscript");
            let mut seeds = vec![input(0, mtrobust::model::script::spec::EXAMPLE.into())];
            for f in ["dict.toml", "tuple.toml"] {
                seeds.push(input(0, std::fs::read(data.join(f)).unwrap()));
            }
            seeds.push(input(0, format!("[input]\nmean = {}\n", "[".repeat(50_000)).into_bytes()));
            seeds
        },
        |dir, input| {
            let path = dir.join("spec.toml");
            std::fs::write(&path, &input.bytes).unwrap();
            match ScriptSpec::read(&path) {
                Ok(_) => Ok(true),
                Err(e) => names_file(&path, &e),
            }
        },
    );
}

/// A `.npy` file: magic, version, header (padded to 64 bytes as numpy does), data.
fn npy(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let len_bytes = if version == 1 { 2 } else { 4 };
    let mut h = header.to_string();
    while !(8 + len_bytes + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let len = if version == 1 { (h.len() as u16).to_le_bytes().to_vec() } else { (h.len() as u32).to_le_bytes().to_vec() };
    cat(&[b"\x93NUMPY", &[version, 0], &len, h.as_bytes(), data])
}

#[test]
fn npy_reader() {
    fuzz(
        "npy_reader",
        10_000,
        |dir| {
            let path = dir.join("seed.npy");
            write_npy(&path, &Tensor::arange(24, (Kind::Float, Device::Cpu)).view([2, 3, 4])).unwrap();
            let f8: Vec<u8> = (0..6).flat_map(|i| f64::from(i).to_le_bytes()).collect();
            let f4be: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_be_bytes()).collect();
            vec![
                input(0, std::fs::read(&path).unwrap()),
                input(0, npy(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", &f8)),
                input(0, npy(2, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", &f4be)),
                input(0, npy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", &1f32.to_le_bytes())),
                input(0, npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", &[])),
                input(0, npy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", &[1, 0, 0, 0, 2, 0, 0, 0])),
                input(0, npy(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", &[0; 4])),
                // Hostile: a shape of 2^40 values over 16 bytes, a 4 GiB header, deep nesting.
                input(0, npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", &[0; 16])),
                input(0, cat(&[b"\x93NUMPY\x02\x00", &0xffff_fff0u32.to_le_bytes(), b"{'descr': '<f4'}"])),
                input(
                    0,
                    npy(
                        2,
                        &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}1{} }}", "(".repeat(30_000), ",)".repeat(30_000)),
                        &[],
                    ),
                ),
            ]
        },
        |dir, input| {
            let path = dir.join("input.npy");
            std::fs::write(&path, &input.bytes).unwrap();
            match read_npy(&path) {
                Ok(_) => Ok(true),
                Err(e) => names_file(&path, &e),
            }
        },
    );
}

#[test]
fn results_store() {
    fuzz(
        "results_store",
        5_000,
        |dir| {
            let db = dir.join("seed.sqlite");
            paper_store::build(&db);
            let empty = dir.join("empty.sqlite");
            drop(Store::open(&empty).unwrap());
            vec![input(0, std::fs::read(&db).unwrap()), input(0, std::fs::read(&empty).unwrap())]
        },
        |dir, input| {
            let path = dir.join("input.sqlite");
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.join(format!("input.sqlite{suffix}")));
            }
            std::fs::write(&path, &input.bytes).unwrap();
            let store = match Store::open(&path) {
                Ok(s) => s,
                Err(e) => return names_file(&path, &e),
            };
            let cells = store.cells();
            let others = (store.models().is_ok(), store.cleans().is_ok(), store.datasets().is_ok(), store.cell_ids().is_ok());
            let read = cells.is_ok() && others == (true, true, true, true);
            if let Some(c) = cells.ok().and_then(|c| c.into_iter().next()) {
                let _ = store.samples(&c.id);
            }
            Ok(read)
        },
    );
}
