//! The floating-point environment of every thread that computes: denormal (subnormal) numbers
//! are flushed to zero, both when an instruction produces one (flush-to-zero, FTZ) and when one
//! is read (denormals-are-zero, DAZ).
//!
//! Why: training drives many activations and gradients towards zero, and on Intel cores every
//! FMA that meets a denormal takes a microcode assist costing ~100 cycles; the matrix products
//! then slow down step after step (docs/performance.md has the measurement). Values below
//! `f32::MIN_POSITIVE` (1.2e-38) carry no information a CTR model could use, so flushing them
//! changes no result that matters.
//!
//! Where: [`flush_denormals`] is called first thing in `main`, before any thread exists; on
//! Linux (and every POSIX system) a new thread starts with its creator's floating-point
//! environment, so every thread of the process inherits the bits. Threads the crate creates for
//! computing set them again themselves (the training pool's start handler, the engine thread),
//! so the guarantee also holds when the crate is used as a library (and in its tests), where
//! `main` never ran.
//!
//! On x86_64 the bits live in MXCSR (FTZ bit 15, DAZ bit 6). Elsewhere nothing is set: AArch64
//! handles denormals at full speed in hardware, the case this guards against being x86's.

/// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
#[cfg(target_arch = "x86_64")]
pub const MXCSR_FTZ_DAZ: u32 = 0x8040;

/// The calling thread's MXCSR.
#[cfg(target_arch = "x86_64")]
pub fn mxcsr() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: `stmxcsr` stores the 32-bit MXCSR at the given address, a live local `u32`; it
    // touches no other memory or register.
    unsafe {
        std::arch::asm!(
            "stmxcsr [{ptr}]",
            ptr = in(reg) &mut value as *mut u32,
            options(nostack, preserves_flags)
        );
    }
    value
}

/// Sets flush-to-zero and denormals-are-zero on the calling thread (idempotent; a no-op off
/// x86_64). Threads this one creates afterwards inherit them.
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    {
        let value = mxcsr() | MXCSR_FTZ_DAZ;
        // SAFETY: `ldmxcsr` loads MXCSR from a live local `u32`. Only the FTZ and DAZ control
        // bits change; rounding mode and exception masks keep their values, so no operation
        // starts trapping. (The compiler folds constants under the default environment, so a
        // folded expression whose result is denormal could differ from the same expression
        // computed at run time; no kernel relies on denormal results.)
        unsafe {
            std::arch::asm!(
                "ldmxcsr [{ptr}]",
                ptr = in(reg) &value as *const u32,
                options(nostack, preserves_flags, readonly)
            );
        }
    }
}

/// Whether the calling thread flushes denormals (always true off x86_64, where nothing needs
/// setting).
pub fn denormals_flushed() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        mxcsr() & MXCSR_FTZ_DAZ == MXCSR_FTZ_DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// A rayon pool builder whose workers flush denormals before they run anything.
pub fn pool_builder(threads: usize) -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| flush_denormals())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A product whose exact result is denormal, computed at run time (not folded).
    fn denormal_product() -> f32 {
        std::hint::black_box(1e-30f32) * std::hint::black_box(1e-10f32)
    }

    /// Every worker of a pool from [`pool_builder`] has the bits, on a test thread that does not
    /// (the test harness starts its threads before any of this code runs), and its arithmetic
    /// really flushes: a product of 1e-40 comes out as zero there and denormal here.
    #[test]
    fn pool_workers_flush_denormals() {
        let here = std::thread::spawn(|| (denormals_flushed(), denormal_product()))
            .join()
            .unwrap();
        let pool = pool_builder(3).build().unwrap();
        let workers = pool.broadcast(|_| (denormals_flushed(), denormal_product()));
        assert_eq!(workers.len(), 3);
        for (flushed, product) in workers {
            assert!(flushed);
            assert_eq!(product, 0.0);
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert!(!here.0, "a plain thread should start without the bits");
            assert!(here.1 > 0.0 && !here.1.is_normal(), "{}", here.1);
        }
        let _ = here;
    }

    /// Setting the bits keeps every other MXCSR bit, and a thread created afterwards inherits
    /// them from its creator (what `main` relies on).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn setting_keeps_the_other_bits_and_is_inherited() {
        std::thread::spawn(|| {
            let before = mxcsr();
            flush_denormals();
            assert_eq!(mxcsr(), before | MXCSR_FTZ_DAZ);
            flush_denormals();
            assert_eq!(mxcsr(), before | MXCSR_FTZ_DAZ);
            let child = std::thread::spawn(|| (denormals_flushed(), denormal_product()))
                .join()
                .unwrap();
            assert_eq!(child, (true, 0.0));
        })
        .join()
        .unwrap();
    }
}
