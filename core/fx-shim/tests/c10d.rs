//! c10d through the shim: two ranks as two threads of this process, on localhost over Gloo.
use fx_shim::c10d::{ProcessGroup, TcpStore};
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `body(rank, group, store)` on two ranks and returns their results in rank order.
fn two_ranks<T: Send + 'static>(
    timeout: Duration,
    body: impl Fn(usize, &ProcessGroup, &TcpStore) -> T + Send + Sync + Clone + 'static,
) -> Vec<T> {
    let port = free_port();
    let handles: Vec<_> = (0..2)
        .map(|rank| {
            let body = body.clone();
            std::thread::spawn(move || {
                let store = TcpStore::connect("127.0.0.1", port, rank == 0, 2, Duration::from_secs(30)).unwrap();
                let pg = ProcessGroup::gloo(&store, rank, 2, "127.0.0.1", timeout).unwrap();
                body(rank, &pg, &store)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn collectives_match_their_definitions() {
    let out = two_ranks(Duration::from_secs(30), |rank, pg, store| {
        // Two tensors of different shapes in one call: summed element-wise over the ranks.
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * (rank as f64 + 1.0);
        let b = Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu)) * (10.0 * (rank as f64 + 1.0));
        pg.all_reduce_sum(&[&a, &b]).unwrap();
        // Broadcast from rank 1.
        let c = Tensor::from_slice(&[rank as f32; 4]);
        pg.broadcast(&[&c], 1).unwrap();
        let g = pg.all_gather(&Tensor::from_slice(&[rank as f32 * 5.0, 7.0])).unwrap();
        pg.barrier().unwrap();
        // The store: rank 0 publishes, rank 1 waits for it.
        if rank == 0 {
            store.set("greeting", b"run-dir/path").unwrap();
        }
        let got = store.get("greeting").unwrap();
        (
            Vec::<f32>::try_from(&a).unwrap(),
            Vec::<f32>::try_from(&b.view([-1])).unwrap(),
            Vec::<f32>::try_from(&c).unwrap(),
            g.iter().map(|t| Vec::<f32>::try_from(t).unwrap()).collect::<Vec<_>>(),
            got,
        )
    });
    for (a, b, c, g, got) in &out {
        assert_eq!(a, &vec![3.0, 6.0, 9.0]);
        assert_eq!(b, &vec![30.0; 4]);
        assert_eq!(c, &vec![1.0; 4]);
        assert_eq!(g, &vec![vec![0.0, 7.0], vec![5.0, 7.0]]);
        assert_eq!(got, b"run-dir/path");
    }
}

#[test]
fn a_rank_that_stops_answering_fails_the_collective_within_the_timeout() {
    let out = two_ranks(Duration::from_secs(3), |rank, pg, _| {
        let t = Tensor::ones([4], (Kind::Float, tch::Device::Cpu));
        pg.all_reduce_sum(&[&t]).unwrap();
        if rank == 1 {
            // Alive but silent: never joins the next collective.
            std::thread::sleep(Duration::from_secs(8));
            return None;
        }
        let t0 = Instant::now();
        let err = pg.all_reduce_sum(&[&t]).expect_err("the silent rank must make the all-reduce fail");
        Some((t0.elapsed(), format!("{err:#}")))
    });
    let (took, msg) = out[0].clone().unwrap();
    assert!(msg.contains("c10d all_reduce"), "{msg}");
    assert!(took < Duration::from_secs(8), "the error came after {took:?}, not within the 3 s timeout: {msg}");
}

/// NCCL: on a machine without a GPU, joining is a clear error (the binding links and reports
/// libtorch's check); with a GPU, a one-rank group sums a CUDA tensor in place.
#[test]
fn nccl_group_is_built_and_says_why_it_cannot_start_without_a_gpu() {
    assert!(fx_shim::c10d::nccl_built(), "fx-shim was built without NCCL: run `make setup` (CUDA header wheels)");
    let port = free_port();
    let store = TcpStore::connect("127.0.0.1", port, true, 1, Duration::from_secs(30)).unwrap();
    let joined = ProcessGroup::nccl(&store, 0, 1, Duration::from_secs(30));
    if tch::Cuda::is_available() {
        let pg = joined.unwrap();
        let t = Tensor::from_slice(&[1.0f32, 2.0]).to_device(tch::Device::Cuda(0));
        pg.all_reduce_sum(&[&t]).unwrap();
        assert_eq!(Vec::<f32>::try_from(&t.to_device(tch::Device::Cpu)).unwrap(), vec![1.0, 2.0]);
    } else {
        let e = format!("{:#}", joined.err().expect("no GPU: NCCL must refuse"));
        assert!(e.contains("c10d NCCL group") && e.contains("no GPUs found"), "{e}");
    }
}

#[test]
fn the_differentiable_sum_sums_values_forward_and_gradients_backward() {
    let out = two_ranks(Duration::from_secs(30), |rank, pg, _| {
        // Rank r: x_r = [r+1, 2(r+1)], y = x_0 + x_1 = [3, 6] on both; L_r = Σ y · w_r with
        // w_0 = [1, 1], w_1 = [10, 100]. The job's loss Σ_r L_r has dL/dx_r = w_0 + w_1 on every
        // rank: the backward sums the ranks' gradients.
        let x = (Tensor::from_slice(&[1.0f32, 2.0]) * (rank as f64 + 1.0)).set_requires_grad(true);
        let w = if rank == 0 { Tensor::from_slice(&[1.0f32, 1.0]) } else { Tensor::from_slice(&[10.0f32, 100.0]) };
        let y = pg.sum_differentiable(&(&x * 1.0)).unwrap();
        let loss = (&y * &w).sum(Kind::Float);
        let g = Tensor::run_backward(&[&loss], &[&x], false, false);
        (Vec::<f32>::try_from(&y.detach()).unwrap(), Vec::<f32>::try_from(&g[0]).unwrap())
    });
    for (y, g) in &out {
        assert_eq!(y, &vec![3.0, 6.0]);
        assert_eq!(g, &vec![11.0, 101.0]);
    }
}

#[test]
fn gradients_are_averaged_while_the_backward_runs_in_buckets_of_the_same_order() {
    // Four parameters; buckets of 4 bytes put each in its own. Rank 0's loss does not reach c
    // (its bucket starts only after the backward), rank 1's reaches all; d is reached by no rank.
    // Rank 1's second call has no loss at all (an empty slice): it sends zeros.
    let out = two_ranks(Duration::from_secs(30), |rank, pg, _| {
        let a = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[3.0f32]).set_requires_grad(true);
        let c = Tensor::from_slice(&[5.0f32, 6.0, 7.0]).set_requires_grad(true);
        let d = Tensor::from_slice(&[0.0f32]).set_requires_grad(true);
        let r = rank as f64 + 1.0;
        let loss = if rank == 0 {
            (&a * r).sum(Kind::Float) + (&b * &b).sum(Kind::Float) * r
        } else {
            (&a * r).sum(Kind::Float) + (&b * &b).sum(Kind::Float) * r + (&c * 10.0).sum(Kind::Float)
        };
        let params = [&a, &b, &c, &d];
        let (first, overlapped) = pg.grad_average(Some(&loss), &params, 4).unwrap();
        // Every bucket started within the backward: d (reached by no rank) and, on rank 0, c
        // count as ready at once instead of holding back the buckets after theirs.
        assert_eq!(overlapped, 4, "rank {rank}");
        let again = (&a * 4.0).sum(Kind::Float);
        let (second, _) = pg.grad_average((rank == 0).then_some(&again), &params, 1 << 20).unwrap();
        let values = |gs: &[Tensor]| {
            gs.iter().map(|g| g.defined().then(|| Vec::<f32>::try_from(g).unwrap())).collect::<Vec<_>>()
        };
        (values(&first), values(&second))
    });
    for (first, second) in &out {
        // a: (1 + 2) / 2; b: 2b (1 + 2) / 2 = 9; c: (0 + 10) / 2; d: undefined.
        assert_eq!(first[0], Some(vec![1.5, 1.5]));
        assert_eq!(first[1], Some(vec![9.0]));
        assert_eq!(first[2], Some(vec![5.0, 5.0, 5.0]));
        assert_eq!(first[3], None);
        assert_eq!(second[0], Some(vec![2.0, 2.0]));
        assert!(second[1..].iter().all(|g| g.is_none()));
    }
}
