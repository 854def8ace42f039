//! The extension loads the libtorch of the installed `torch` wheel: its RUNPATH is the wheel's
//! `torch/lib` next to this package in site-packages (`$ORIGIN/../torch/lib`), so no copy of
//! libtorch is bundled and no LD_LIBRARY_PATH is needed. `import mtrobust` imports torch first,
//! so the libraries are already loaded by then; the RUNPATH covers a direct `import mtrobust._core`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
}
