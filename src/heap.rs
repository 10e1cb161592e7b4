//! Heap accounting: the process's allocator wrapped so that live bytes and their high-water mark
//! are known at any moment, per stage, without a profiler.
//!
//! `main` installs [`Counting`] around mimalloc. Resident memory (`VmHWM`) is what an operator's
//! limit sees, but the allocator keeps freed pages (see `main`), so it only ever rises; the
//! counted heap says what each stage actually needed, which is what a memory estimate must
//! predict and what a regression moves. Test binaries do not install the wrapper: there the
//! figures are `None`.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // One thread's own count, on only inside [`thread_peak`]: what a computation run on this
    // thread alone allocates, whatever other threads do meanwhile. Const-initialised cells
    // without destructors: safe to touch from inside the allocator.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static T_LIVE: Cell<isize> = const { Cell::new(0) };
    static T_PEAK: Cell<isize> = const { Cell::new(0) };
}

/// A global allocator that counts the bytes `A` hands out.
pub struct Counting<A>(pub A);

#[inline]
fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Relaxed) + by;
    // Most allocations do not set a new mark: a plain load first keeps the shared line clean.
    if now > PEAK.load(Relaxed) {
        PEAK.fetch_max(now, Relaxed);
    }
    thread_moved(by as isize);
}

#[inline]
fn shrank(by: usize) {
    LIVE.fetch_sub(by, Relaxed);
    thread_moved(-(by as isize));
}

#[inline]
fn thread_moved(by: isize) {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = T_LIVE.try_with(|live| {
                let now = live.get() + by;
                live.set(now);
                let _ = T_PEAK.try_with(|peak| peak.set(peak.get().max(now)));
            });
        }
    });
}

// SAFETY: every call is forwarded to `A` unchanged; the counters are only updated after `A`
// succeeded, and they never influence what is returned.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.dealloc(ptr, layout);
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = self.0.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Called by `main` once the wrapper is the global allocator.
pub fn mark_installed() {
    INSTALLED.store(true, Relaxed);
}

/// Bytes allocated and not yet freed, if the wrapper is installed.
pub fn live() -> Option<usize> {
    INSTALLED.load(Relaxed).then(|| LIVE.load(Relaxed))
}

/// The most bytes live at once since the start or the last [`reset_peak`].
pub fn peak() -> Option<usize> {
    INSTALLED.load(Relaxed).then(|| PEAK.load(Relaxed))
}

/// Starts a new high-water mark at what is live now, and returns the old mark.
pub fn reset_peak() -> Option<usize> {
    INSTALLED
        .load(Relaxed)
        .then(|| PEAK.swap(LIVE.load(Relaxed), Relaxed))
}

/// Runs `f` on this thread and returns the most bytes it had allocated and not yet freed at
/// once (allocations of other threads are not counted; `f` must not hand its work to them).
/// `None` where the counting allocator is not installed.
pub fn thread_peak<T>(f: impl FnOnce() -> T) -> (T, Option<usize>) {
    if !INSTALLED.load(Relaxed) {
        return (f(), None);
    }
    T_LIVE.with(|l| l.set(0));
    T_PEAK.with(|p| p.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    let peak = T_PEAK.with(Cell::get).max(0) as usize;
    (out, Some(peak))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn counts_live_bytes_and_their_mark() {
        // The wrapper's own arithmetic, driven directly (this test binary's allocator is not
        // the wrapper, so nothing else moves the counters between these calls... except other
        // tests' threads, which never call it).
        let a = Counting(System);
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        // SAFETY: layouts are non-zero; every pointer is freed with the layout it was given.
        unsafe {
            let l1 = Layout::from_size_align(1000, 8).unwrap();
            let p1 = a.alloc(l1);
            assert_eq!(LIVE.load(Relaxed) - base, 1000);
            let p1 = a.realloc(p1, l1, 3000);
            assert_eq!(LIVE.load(Relaxed) - base, 3000);
            let l2 = Layout::from_size_align(500, 8).unwrap();
            let p2 = a.alloc_zeroed(l2);
            assert_eq!(PEAK.load(Relaxed) - base, 3500);
            let l1b = Layout::from_size_align(3000, 8).unwrap();
            let p1 = a.realloc(p1, l1b, 100);
            assert_eq!(LIVE.load(Relaxed) - base, 600);
            a.dealloc(p1, Layout::from_size_align(100, 8).unwrap());
            a.dealloc(p2, l2);
        }
        assert_eq!(LIVE.load(Relaxed), base);
        assert_eq!(PEAK.load(Relaxed) - base, 3500);
        assert_eq!(peak(), None, "not installed in a test binary");
    }
}
