//! `aws-iam-authenticator`: see the library's documentation for the module map.

use std::process::ExitCode;

// musl's malloc takes one lock for every allocation and free, so the server's worker
// threads queue on it; mimalloc keeps per-thread heaps. BENCHMARKS.md has the figures.
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    aws_iam_authenticator::cli::entry::main()
}
