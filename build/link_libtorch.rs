// Shared build script of every crate that links libtorch into a binary, a cdylib or tests.
// rustc links with --as-needed and nothing in tch references libtorch_cuda.so, so without
// --no-as-needed -ltorch the CUDA part silently vanishes (see ../shared/TOOLCHAIN.md). The rpath
// lets binaries find libtorch in the PyPI wheel without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-changed=../../build/link_libtorch.rs");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
        println!("cargo:rustc-env=FX_LIBTORCH_LIB={lib}");
    }
}
