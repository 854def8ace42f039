//! Link libtorch so that CUDA is found when present, and find it again at run time.
//!
//! `--no-as-needed -ltorch` keeps `libtorch.so` (and through it `libtorch_cuda.so`) in the
//! binary's needed list even though no Rust symbol refers to it directly; without it the
//! linker drops the CUDA library and `tch::Cuda::is_available()` silently reports false.
//! The rpath points at the wheel's `torch/lib`, so no LD_LIBRARY_PATH is needed.
//!
//! With the `python-extension` feature (the Python package) neither is added: see `main`.
//!
//! It also compiles `csrc/shim.cpp` (autocast, TF32, channels-last, CUDA memory statistics:
//! libtorch switches tch does not expose) with the flags torch-sys uses for its own C++ shim.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-env=MTROBUST_GIT_COMMIT={}", git_commit());
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set; run scripts/setup.sh (see README)");
        println!("cargo:rustc-env=MTROBUST_LIBTORCH_VERSION=unknown");
        return;
    };
    // The wheel's own version file, e.g. `__version__ = '2.11.0+cu130'`: the libtorch the rpath
    // below makes the binary load.
    let version_file = PathBuf::from(&libtorch).join("version.py");
    println!("cargo:rerun-if-changed={}", version_file.display());
    let version = std::fs::read_to_string(&version_file)
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim_matches(['\'', '"']).to_string())))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MTROBUST_LIBTORCH_VERSION={version}");
    compile_shim(&libtorch);
    if std::env::var_os("CARGO_FEATURE_PYTHON_EXTENSION").is_some() {
        // Inside the Python package the `torch` module has loaded libtorch before us, and the
        // extension finds it through its RUNPATH ($ORIGIN/../torch/lib, set by python/build.rs).
        // No --no-as-needed: one extension then serves the CPU and the CUDA torch wheels.
        return;
    }
    let lib = PathBuf::from(libtorch).join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-L{}", lib.display());
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
}

/// `csrc/shim.cpp` into a static library linked into the crate (its libtorch symbols resolve
/// against the libraries torch-sys and the link arguments below bring in).
fn compile_shim(libtorch: &str) {
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    let root = PathBuf::from(libtorch);
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // As libtorch itself is built: its headers' debug-only checks read state a release
        // libtorch never sets (RecordFunction's `inputs_valid_`).
        .define("NDEBUG", None)
        .file("csrc/shim.cpp")
        .compile("mtrobust_shim");
}

/// The commit the source was built from (`unknown` outside a git checkout); rebuilt when HEAD moves.
fn git_commit() -> String {
    let git = std::path::Path::new(".git");
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{reference}");
        }
    }
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
