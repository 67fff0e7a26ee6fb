//! What a head's forward costs through the plugin ABI against the same head built in: the
//! paper's linear head on a Swin-B-sized pooled feature, forward + backward, built in
//! (`kind = "linear"`) and from plugins/csra's `linear_abi`.
//!
//! cargo run --release -p fx --example head_overhead -- target/release/libfx_csra.so [iterations]

use fx::model::{ClsHead, ClsHeadSpec};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

fn time(head: &ClsHead, pooled: &Tensor, map: &Tensor, n: usize) -> f64 {
    let t0 = Instant::now();
    for _ in 0..n {
        let y = head.forward_t(pooled, map, true).unwrap();
        y.sum(Kind::Float).backward();
    }
    t0.elapsed().as_secs_f64() / n as f64 * 1e6
}

fn main() {
    let mut args = std::env::args().skip(1);
    let lib = args.next().expect("the path of libfx_csra.so");
    let n: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(2000);
    let (batch, channels, labels) = (24, 1024, 14);
    let vs = nn::VarStore::new(Device::Cpu);
    let built_in = ClsHead::new(&vs.root() / "a", channels, &ClsHeadSpec::linear(labels)).unwrap();
    let spec = ClsHeadSpec {
        plugin: Some(fx_run::PluginHeadSpec {
            kind: "linear_abi".into(),
            library: lib.into(),
            sha256: String::new(),
            options: serde_json::Value::Null,
        }),
        ..ClsHeadSpec::linear(labels)
    };
    let plugin = ClsHead::new(&vs.root() / "b", channels, &spec).unwrap();
    let pooled = Tensor::randn([batch, channels], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let map = Tensor::randn([batch, channels, 7, 7], (Kind::Float, Device::Cpu));
    tch::set_num_threads(1);
    for _ in 0..3 {
        let (a, b) = (time(&built_in, &pooled, &map, n), time(&plugin, &pooled, &map, n));
        println!("linear head {batch}×{channels} → {labels}, forward + backward: built in {a:.1} µs, through the ABI {b:.1} µs ({:+.1} µs)", b - a);
    }
}
