//! The circuit breaker as a tower layer, for any HTTP client stack (`reqwest::Client` is a
//! tower `Service`, as is an axum `Router`): a refused call fails at once with
//! [`Error::Open`]; an error or a 5xx counts as a failure, anything else as a success.
//!
//! The mesh's own calls ([`crate::upstream`]) drive the same [`CircuitBreaker`] directly,
//! because they decide per route which breaker applies; this layer is for a fixed one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::breaker::{CircuitBreaker, Guard, Outcome, Refused};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the circuit breaker is {} and refused the call", .0.state.as_str())]
    Open(Refused),
    #[error(transparent)]
    Inner(BoxError),
}

#[derive(Clone)]
pub struct BreakerLayer {
    breaker: Arc<CircuitBreaker>,
}

impl BreakerLayer {
    pub fn new(breaker: Arc<CircuitBreaker>) -> BreakerLayer {
        BreakerLayer { breaker }
    }
}

impl<S> tower::Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker { inner, breaker: self.breaker.clone() }
    }
}

#[derive(Clone)]
pub struct Breaker<S> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
}

impl<S, Req, B> tower::Service<Req> for Breaker<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<B>, Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(|e| Error::Inner(e.into()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let guard = match self.breaker.acquire().0 {
            Ok(permit) => Guard::new(self.breaker.clone(), permit),
            Err(refused) => return Box::pin(std::future::ready(Err(Error::Open(refused)))),
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            // Dropped before the call ends, the guard gives its permit back.
            let result = call.await;
            let failed = match &result {
                Ok(response) => response.status().is_server_error(),
                Err(_) => true,
            };
            guard.finish(if failed { Outcome::Failure } else { Outcome::Success });
            result.map_err(|e| Error::Inner(e.into()))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    use std::time::Duration;

    use tower::{Service, ServiceExt};

    use super::*;
    use crate::breaker::{BreakerConfig, State};
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn a_tower_stack_trips_the_breaker_and_stops_calling() {
        let clock = ManualClock::new();
        let config = BreakerConfig {
            window_size: 4,
            minimum_calls: 4,
            wait_ms: 1_000,
            half_open_calls: 1,
            ..BreakerConfig::default()
        };
        let breaker = Arc::new(CircuitBreaker::new(config, clock.clone()));
        let calls = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(AtomicU16::new(503));
        let upstream = {
            let (calls, status) = (calls.clone(), status.clone());
            tower::service_fn(move |_: ()| {
                calls.fetch_add(1, Ordering::SeqCst);
                let code = status.load(Ordering::SeqCst);
                async move { Ok::<_, std::convert::Infallible>(http::Response::builder().status(code).body(()).unwrap()) }
            })
        };
        let mut service = tower::ServiceBuilder::new().layer(BreakerLayer::new(breaker.clone())).service(upstream);
        for _ in 0..4 {
            let response = service.ready().await.unwrap().call(()).await.expect("passed through");
            assert_eq!(response.status(), 503);
        }
        assert_eq!(breaker.state(), State::Open);
        let refused = service.ready().await.unwrap().call(()).await;
        assert!(matches!(refused, Err(Error::Open(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 4, "refused without calling");

        status.store(200, Ordering::SeqCst);
        clock.advance(Duration::from_secs(1));
        let trial = service.ready().await.unwrap().call(()).await.expect("a trial call");
        assert_eq!(trial.status(), 200);
        assert_eq!(breaker.state(), State::Closed);
    }
}
