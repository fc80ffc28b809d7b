//! Fixed-size chunks built on the heap, for the tables whose entries must
//! never move (the task slab and the I/O table grow by adding chunks).

/// A boxed array of `N` values made by `make`, built element by element on
/// the heap: a `[T; N]` temporary would first take a frame of
/// `N * size_of::<T>()` bytes on the caller's stack (a green thread's,
/// whose pages stack probes would then commit).
pub(crate) fn boxed_chunk<T, const N: usize>(make: impl FnMut() -> T) -> Box<[T; N]> {
    let v: Vec<T> = std::iter::repeat_with(make).take(N).collect();
    match v.into_boxed_slice().try_into() {
        Ok(chunk) => chunk,
        Err(_) => unreachable!("exactly N elements were collected"),
    }
}
