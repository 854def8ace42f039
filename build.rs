//! Link libtorch so that CUDA is found when present, and find it again at run time.
//!
//! `--no-as-needed -ltorch` keeps `libtorch.so` (and through it `libtorch_cuda.so`) in the
//! binary's needed list even though no Rust symbol refers to it directly; without it the
//! linker drops the CUDA library and `tch::Cuda::is_available()` silently reports false.
//! The rpath points at the wheel's `torch/lib`, so no LD_LIBRARY_PATH is needed.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set; run scripts/setup.sh (see README)");
        return;
    };
    let lib = PathBuf::from(libtorch).join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-L{}", lib.display());
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
}
