//! Memory bandwidth, measured the way STREAM does: `copy` (`c = a`) and `triad`
//! (`a = b + s·c`) over arrays far larger than the caches, on as many threads as the process
//! may use, each on its own slice. Decode speed is bound by it: every generated token reads
//! the whole model once.
//!
//! Must not: run longer than it is given (each kernel gets half of it), or report a figure
//! the compiler could have optimised away (`black_box` on the arrays).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Elements per array: 8 Mi `f64`, 64 MiB each, 192 MiB in all, beyond any L3 cache.
const ELEMENTS: usize = 8 << 20;

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bandwidth {
    /// Best pass of each kernel, bytes per second moved (copy: read + write; triad: two reads
    /// and a write).
    pub copy: f64,
    pub triad: f64,
    pub threads: usize,
    pub array_bytes: usize,
    pub passes: usize,
}

/// Runs both kernels for about `time` in all on `threads` threads.
pub fn measure(threads: usize, time: Duration) -> Bandwidth {
    let threads = threads.max(1);
    let mut a = vec![1.0f64; ELEMENTS];
    let mut b = vec![2.0f64; ELEMENTS];
    let mut c = vec![0.5f64; ELEMENTS];
    let chunk = ELEMENTS.div_ceil(threads);
    let each = time / 2;
    let mut passes = 0;
    let copy = best_rate(each, 2 * 8 * ELEMENTS, &mut passes, || {
        std::thread::scope(|s| {
            for (dst, src) in c.chunks_mut(chunk).zip(a.chunks(chunk)) {
                s.spawn(move || dst.copy_from_slice(black_box(src)));
            }
        });
        black_box(&c);
    });
    let triad = best_rate(each, 3 * 8 * ELEMENTS, &mut passes, || {
        std::thread::scope(|s| {
            for ((x, y), z) in a.chunks_mut(chunk).zip(b.chunks(chunk)).zip(c.chunks(chunk)) {
                s.spawn(move || {
                    for ((x, y), z) in x.iter_mut().zip(black_box(y)).zip(z) {
                        *x = y + 3.0 * z;
                    }
                });
            }
        });
        black_box(&a);
    });
    b[0] = black_box(b[0]);
    Bandwidth { copy, triad, threads, array_bytes: 8 * ELEMENTS, passes }
}

/// Runs `pass` (at least twice: the first one also faults the pages in) until `time` has
/// passed; the best pass's bytes per second.
fn best_rate(time: Duration, bytes: usize, passes: &mut usize, mut pass: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut n = 0;
    while n < 2 || start.elapsed() < time {
        let t = Instant::now();
        pass();
        best = best.min(t.elapsed().as_secs_f64());
        n += 1;
    }
    *passes += n;
    bytes as f64 / best.max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_measure_reports_positive_rates_and_counts_its_passes() {
        let b = measure(2, Duration::ZERO);
        assert!(b.copy > 0.0 && b.triad > 0.0 && b.copy.is_finite(), "{b:?}");
        assert_eq!((b.threads, b.passes, b.array_bytes), (2, 4, 64 << 20));
    }
}
