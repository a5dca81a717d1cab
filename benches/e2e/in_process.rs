//! The cycle's operations called in-process on the library, beside the HTTP runs: the
//! sync service with one caller, and the API cycle through `AsyncCheckout`.

use super::*;

/// The example's setup in-process: $25.00 at 1,000 sats a dollar, test requests.
pub(super) fn in_process<S: Store + 'static>(store: S) -> DynCheckout<S> {
    let usd = Currency::from_code("USD").unwrap();
    let rates = FixedRates::new().with(usd, TargetCurrency::Sats, Decimal::from(1_000));
    Checkout::boxed(store, rates, TestRequestGenerator)
}

/// The same cycle on the library, one caller, for `secs()`.
pub(super) fn run_in_process<S: Store + 'static>(c: &DynCheckout<S>, kind: Kind, tick: f64) -> Run {
    let usd = Currency::from_code("USD").unwrap();
    let cycle = |n: u64| -> [Duration; 4] {
        let mut steps = [Duration::ZERO; 4];
        let t = Instant::now();
        let params = SessionParams::new(Decimal::new(2_500, 2), usd)
            .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain]);
        let key = format!("e2e-{n}");
        let s = c.create(params, Some(&key)).unwrap();
        steps[0] = t.elapsed();
        let t = Instant::now();
        let s = c.get(s.id()).unwrap();
        let quote = s.open_payment().unwrap();
        if kind == Kind::Page {
            let uri = UnifiedUri::from_request(quote.request(), quote.target_msats())
                .and_then(|u| u.to_uri())
                .unwrap();
            std::hint::black_box(qr::render_svg(&uri).unwrap());
        }
        steps[1] = t.elapsed();
        let t = Instant::now();
        let report = TransferReport::lightning(
            TestRequestGenerator::payment_hash(quote.id()),
            quote.target_msats(),
        );
        c.record_transfer(report).unwrap();
        steps[2] = t.elapsed();
        let t = Instant::now();
        while c.get(s.id()).unwrap().status() != SessionStatus::Paid {}
        steps[3] = t.elapsed();
        steps
    };
    measure(cycle, tick)
}

/// Runs `cycle` 20 times to warm up, then for `secs()`: the run's figures, with this
/// process's CPU as the server's (the caller is the library).
fn measure(mut cycle: impl FnMut(u64) -> [Duration; 4], tick: f64) -> Run {
    for n in 0..20 {
        cycle(u64::MAX - n);
    }
    let deadline = Instant::now() + Duration::from_secs(secs());
    let cpu0 = cpu_secs("self", tick);
    let started = Instant::now();
    let mut out = Vec::new();
    let mut n = 0;
    while Instant::now() < deadline {
        out.push(cycle(n));
        n += 1;
    }
    let wall = started.elapsed();
    let cpu = cpu_secs("self", tick) - cpu0;
    collect(vec![out], wall, cpu, 0.0)
}

/// The API cycle through `AsyncCheckout` on a 2-worker tokio runtime, one caller: what
/// the async facade adds to the sync calls (a trip to the blocking pool per call, unless
/// the service never blocks).
pub(super) fn run_in_process_async<S: Store + 'static>(c: DynCheckout<S>, tick: f64) -> Run {
    use bitcoin_checkout::service::AsyncCheckout;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let a = AsyncCheckout::new(c);
    let usd = Currency::from_code("USD").unwrap();
    let cycle = |n: u64| {
        let a = a.clone();
        async move {
            let mut steps = [Duration::ZERO; 4];
            let t = Instant::now();
            let params = SessionParams::new(Decimal::new(2_500, 2), usd)
                .payment_methods([PaymentMethod::Lightning, PaymentMethod::Onchain]);
            let key = format!("e2e-async-{n}");
            let s = a.create(params, Some(&key)).await.unwrap();
            steps[0] = t.elapsed();
            let t = Instant::now();
            let s = a.get(s.id()).await.unwrap();
            let quote = s.open_payment().unwrap().clone();
            steps[1] = t.elapsed();
            let t = Instant::now();
            let report = TransferReport::lightning(
                TestRequestGenerator::payment_hash(quote.id()),
                quote.target_msats(),
            );
            a.record_transfer(report).await.unwrap();
            steps[2] = t.elapsed();
            let t = Instant::now();
            while a.get(s.id()).await.unwrap().status() != SessionStatus::Paid {}
            steps[3] = t.elapsed();
            steps
        }
    };
    // Each cycle runs on this thread (`block_on`), as the whole loop did before.
    measure(|n| rt.block_on(cycle(n)), tick)
}
