//! What the mesh costs a call, and how fast it refuses one when a breaker is open:
//! the breaker alone, the balancer, and a whole remote call refused by an open breaker (policy
//! lookup, rate limit, bulkhead, breaker: no network).
//!
//! `cargo bench -p medcov-mesh --bench mesh`. Figures go to docs/benchmarks.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use medcov_mesh::balance::{Balancer, BalancerKind, Candidate};
use medcov_mesh::breaker::{BreakerConfig, CircuitBreaker, Outcome};
use medcov_mesh::{MemoryRegistry, Mesh, PolicyHandle, Remote, Upstream, clock};

fn breaker(c: &mut Criterion) {
    let closed = CircuitBreaker::new(BreakerConfig::default(), clock::system());
    c.bench_function("breaker: admit and record a call (closed)", |b| {
        b.iter(|| {
            let permit = closed.acquire().0.expect("closed");
            black_box(closed.record(permit, Outcome::Success))
        })
    });
    let open = CircuitBreaker::new(BreakerConfig::default(), clock::system());
    open.force_open();
    c.bench_function("breaker: refuse a call (open)", |b| b.iter(|| black_box(open.acquire().0.is_err())));
}

fn balancer(c: &mut Criterion) {
    let ids: Vec<String> = (0..10).map(|i| format!("http://10.0.0.{i}:3002/")).collect();
    let candidates: Vec<Candidate<'_>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Candidate { id, weight: 1 + i as u32 % 3, pending: i as u32 % 4 })
        .collect();
    for kind in [BalancerKind::P2c, BalancerKind::LeastConnections, BalancerKind::WeightedRoundRobin] {
        let balancer = Balancer::new(kind);
        c.bench_function(&format!("balancer: pick one of 10 ({kind:?})"), |b| {
            b.iter(|| black_box(balancer.pick(&candidates)))
        });
    }
}

fn refused_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let remote = runtime.block_on(async {
        let policy = PolicyHandle::open(None, &["billing"]).expect("policy");
        let registry = Arc::new(MemoryRegistry::new(clock::system()));
        let mesh = Arc::new(Mesh::new(policy, registry, reqwest::Client::new(), clock::system()));
        let pool = mesh.pool("billing", &["http://127.0.0.1:9/".parse().expect("url")]);
        mesh.breaker("billing").expect("breaker").force_open();
        Upstream::Remote(Remote { name: "billing", mesh, pool, metrics: medcov_http::Metrics::new("bench") })
    });
    c.bench_function("remote call refused by an open breaker", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iterations {
                    let request = Request::get("/invoices").body(Body::empty()).expect("request");
                    black_box(remote.forward(request, "/invoices", 1024).await.is_err());
                }
                start.elapsed()
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = breaker, balancer, refused_call
}
criterion_main!(benches);
