//! The one `syscall!` helper of greenio (runtime and net): a libc return
//! value of -1 becomes `io::Error::last_os_error()`, anything else `Ok`.

/// Turns a libc call's return value of -1 into
/// `Err(io::Error::last_os_error())`, any other value into `Ok(value)`.
/// Shared by greenio's crates; not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! syscall {
    ($call:expr) => {{
        let res = $call;
        if res == -1 {
            Err(::std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
