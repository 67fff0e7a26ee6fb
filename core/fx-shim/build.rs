// Compiles src/shim.cpp against the headers of the torch wheel that torch-sys links, with the same
// flags torch-sys uses for its own C++ wrapper (C++17, the wheel's _GLIBCXX_USE_CXX11_ABI): two
// translation units built with different ABI settings would disagree on std::string's layout.
use std::process::Command;

const ASK_PYTHON: &str = r"
import torch
from torch.utils import cpp_extension
print('CXX11', int(torch._C._GLIBCXX_USE_CXX11_ABI))
for p in cpp_extension.include_paths():
    print('INCLUDE', p)
for p in cpp_extension.library_paths():
    print('LIB', p)
import os, importlib.util
if torch.version.cuda:
    for pkg in ('nvidia.cu13', 'nvidia.nccl'):
        spec = importlib.util.find_spec(pkg)
        for root in (spec.submodule_search_locations if spec else []):
            print('CUDA_INCLUDE', os.path.join(root, 'include'))
";

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    println!("cargo:rerun-if-changed=src/c10d.cpp");
    println!("cargo:rerun-if-changed=src/checkpoint.cpp");
    println!("cargo:rerun-if-changed=src/nccl.cpp");
    println!("cargo:rerun-if-changed=src/fx_try.h");
    println!("cargo:rerun-if-changed=gloo-decl");
    println!("cargo:rerun-if-changed=build.rs");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python).arg("-c").arg(ASK_PYTHON).output().unwrap_or_else(|e| {
        panic!("fx-shim: running {python} to find the torch wheel's headers failed ({e}); run `make setup` first")
    });
    assert!(
        out.status.success(),
        "fx-shim: {python} could not import torch: {}; run `make setup` first",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut abi, mut includes, mut libs, mut cuda) = (String::from("1"), Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("CXX11", v)) => abi = v.trim().to_string(),
            Some(("INCLUDE", p)) => includes.push(p.trim().to_string()),
            Some(("LIB", p)) => libs.push(p.trim().to_string()),
            Some(("CUDA_INCLUDE", p)) => cuda.push(std::path::PathBuf::from(p.trim())),
            _ => {}
        }
    }
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .includes(&includes)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // c10d.cpp includes ProcessGroupGloo.hpp: libtorch is built with Gloo, and the gloo
        // names that header uses are declared in gloo-decl/ (the wheel lacks gloo's headers).
        .define("USE_C10D_GLOO", None)
        .include("gloo-decl")
        .file("src/shim.cpp")
        .file("src/c10d.cpp")
        .file("src/checkpoint.cpp")
        .compile("fxshim");
    // NCCL when this libtorch has it and the headers ProcessGroupNCCL.hpp needs are installed
    // (`make setup`: the CUDA runtime headers including crt/ and nv/, and nccl.h); else Gloo only.
    println!("cargo:rustc-check-cfg=cfg(fx_nccl)");
    let has = |f: &str| cuda.iter().any(|d| d.join(f).exists());
    let torch_cuda = libs.iter().any(|l| std::path::Path::new(l).join("libtorch_cuda.so").exists());
    if torch_cuda && has("crt/host_config.h") && has("nv/target") && has("nccl.h") && has("cuda_runtime_api.h") {
        cc::Build::new()
            .cpp(true)
            .pic(true)
            .warnings(false)
            .includes(&includes)
            .includes(&cuda)
            .flag("-std=c++17")
            .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
            .flag("-DGLOG_USE_GLOG_EXPORT")
            .define("USE_C10D_NCCL", None)
            .define("USE_CUDA", None)
            .file("src/nccl.cpp")
            .compile("fxnccl");
        println!("cargo:rustc-cfg=fx_nccl");
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    } else {
        println!(
            "cargo:warning=fx-shim: building without NCCL (libtorch_cuda: {torch_cuda}; CUDA headers crt/, nv/, nccl.h: {}); data-parallel GPUs will exchange through Gloo. `make setup` installs the headers.",
            has("crt/host_config.h") && has("nv/target") && has("nccl.h")
        );
    }
    for lib in &libs {
        println!("cargo:rustc-link-search=native={lib}");
    }
    // The shim calls into these two; torch-sys links them too, but naming them here keeps the
    // static library's references resolvable whatever order the linker sees.
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    // This crate's own tests are binaries: the same rpath and --no-as-needed as
    // build/link_libtorch.rs gives every other crate that links libtorch.
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg-tests=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg-tests=-ltorch");
        println!("cargo:rustc-link-arg-tests=-Wl,--as-needed");
    }
}
