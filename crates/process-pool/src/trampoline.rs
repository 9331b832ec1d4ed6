//! How a function is named across the process boundary: a trampoline's offset from an anchor.
//!
//! A job is a plain function: a fn item or a closure that captures nothing, so its type is
//! zero-sized and the type alone *is* the function (checked at compile time, see [`assert_zst`]).
//! For each `(F, A, R)` the compiler monomorphizes [`job`], a trampoline with one fixed signature
//! that decodes `A`, calls `F`, and encodes `R`. The parent sends the trampoline's address as an
//! offset from [`anchor`], a function of this crate; the worker adds the offset to its own
//! `anchor` and calls the result.
//!
//! Why this is sound:
//! - the worker is a fresh execution of the *same file*: it is started from `/proc/self/exe`
//!   (which names the running binary's inode even after the path is replaced), and before it runs
//!   any job it checks that its own executable has the parent's `(st_dev, st_ino)`. The executable
//!   and every crate statically linked into it are mapped as one image, so ASLR moves the whole
//!   text segment and an offset between two functions of the image is the same in every process;
//! - the offset was computed from a real `Trampoline` value in the parent, so it points at a function
//!   of exactly the `Trampoline` signature;
//! - every trampoline first compares the type name sent with the job with its own and refuses a
//!   mismatch with an error, so a job that lands on the wrong trampoline fails cleanly;
//! - `F` is zero-sized and the parent held a value of it, so `F` is inhabited and its one value has no
//!   bytes: producing it in the worker from nothing gives the same value.
//!
//! What is *not* checked: that an offset points at a trampoline at all. The worker has no list of
//! the trampolines its binary contains (they are monomorphized wherever a job type is used), so a
//! frame with any other offset makes it jump to that address: a crash at best. The type-name check
//! runs inside the trampoline, so it only helps once the jump has landed on one. **The parent is
//! trusted**: the channel is a private socketpair held by the parent and this one worker only
//! (close-on-exec everywhere else), and whoever can write to it already controls the parent. What
//! keeps other processes out is the one-shot token (a stale or copied worker variable fails the
//! handshake), the executable check, and the worker's refusal to start at all in a
//! secure-execution process (setuid, setgid or file capabilities), whose environment belongs to
//! its less privileged caller.
//!
//! The one thing this rules out is linking this crate as a Rust `dylib` separately from the
//! function's crate (`-C prefer-dynamic`): the offset would then cross two images. The Rust default is
//! static linking, which is what this crate supports.
//!
//! Registered names (a table the user fills at startup) were the alternative; they would need either
//! boilerplate for every function or a life-before-main registry, and buy no safety over the checks
//! above.

use std::any::{Any, type_name};
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A monomorphized job entry point: `(expected type name, encoded input, output buffer)`.
pub(crate) type Trampoline = fn(&str, &[u8], &mut Vec<u8>) -> Result<(), Failure>;

/// Why a trampoline did not produce a value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The function panicked; the panic message.
    Panicked(String),
    /// Decoding the argument or encoding the result failed; the codec's message.
    Serialization(String),
}

/// The fixed point offsets are measured from. `#[inline(never)]` and a body of its own keep it a
/// real, unique function in the image.
#[inline(never)]
fn anchor(_: &str, _: &[u8], _: &mut Vec<u8>) -> Result<(), Failure> {
    Err(Failure::Serialization(String::from(
        "the anchor is not a job",
    )))
}

/// The trampoline's distance from [`anchor`], valid in every process running this executable.
pub(crate) fn offset_of(trampoline: Trampoline) -> i64 {
    (trampoline as usize as i64).wrapping_sub(anchor as Trampoline as usize as i64)
}

/// The trampoline at `offset` from [`anchor`].
///
/// # Safety
/// `offset` must come from [`offset_of`] in a process running the same executable image.
pub(crate) unsafe fn from_offset(offset: i64) -> Trampoline {
    let address = (anchor as Trampoline as usize as i64).wrapping_add(offset) as usize;
    // SAFETY: by the caller's contract `address` is the address of a `Trampoline` in this image
    // (see the module docs), and fn pointers and `usize` have the same size on every target we build.
    unsafe { std::mem::transmute::<usize, Trampoline>(address) }
}

/// Compile-time proof that `F` is a plain function: a fn item or a closure that captures nothing.
/// Fails the build (post-monomorphization) otherwise.
pub(crate) const fn assert_zst<F>() {
    assert!(
        size_of::<F>() == 0,
        "a process-pool job must be a plain function: a fn item or a closure that captures nothing"
    );
}

/// Produces the one value of the zero-sized function type `F`.
///
/// # Safety
/// `F` must be zero-sized and inhabited; the caller knows a value of `F` existed in the parent.
unsafe fn conjure<F>() -> F {
    const { assert_zst::<F>() };
    // SAFETY: a zero-sized read from a dangling, well-aligned pointer touches no memory, and by the
    // caller's contract `F` has exactly one value, which has no bytes.
    unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() }
}

/// The type name a job trampoline for `(F, A, R)` checks.
pub(crate) fn job_name<F, A, R>() -> &'static str {
    type_name::<(F, fn(A) -> R)>()
}

/// The type name a chunk trampoline for `(F, A, R)` checks (distinct from [`job_name`]).
pub(crate) fn chunk_name<F, A, R>() -> &'static str {
    type_name::<(F, fn(Vec<A>) -> Vec<R>)>()
}

/// The type name an initializer trampoline for `F` checks.
pub(crate) fn init_name<F>() -> &'static str {
    type_name::<(F, fn())>()
}

fn mismatch(expected: &str, actual: &str) -> Failure {
    Failure::Serialization(format!(
        "job type mismatch: the parent sent `{expected}`, this worker has `{actual}` at that address"
    ))
}

/// The message of a panic payload, as `std`'s default hook would print it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("Box<dyn Any>")
    }
}

fn run<T>(f: impl FnOnce() -> T) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| Failure::Panicked(panic_message(&*p)))
}

fn decode<A: DeserializeOwned>(input: &[u8]) -> Result<A, Failure> {
    crate::codec::decode(input)
        .map_err(|e| Failure::Serialization(format!("cannot decode the argument: {e}")))
}

fn encode<R: Serialize>(value: &R, out: &mut Vec<u8>) -> Result<(), Failure> {
    crate::codec::encode_into(value, out)
        .map_err(|e| Failure::Serialization(format!("cannot encode the result: {e}")))
}

/// Runs one `F(A) -> R` job.
pub(crate) fn job<F, A, R>(name: &str, input: &[u8], out: &mut Vec<u8>) -> Result<(), Failure>
where
    F: Fn(A) -> R + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    if name != job_name::<F, A, R>() {
        return Err(mismatch(name, job_name::<F, A, R>()));
    }
    let arg: A = decode(input)?;
    // SAFETY: the parent held a value of F and `assert_zst` made the build prove it is zero-sized.
    let f: F = unsafe { conjure() };
    let value = run(|| f(arg))?;
    encode(&value, out)
}

/// Runs `F` over a chunk of arguments for `map`; one panic fails the whole chunk, as in Python.
pub(crate) fn chunk<F, A, R>(name: &str, input: &[u8], out: &mut Vec<u8>) -> Result<(), Failure>
where
    F: Fn(A) -> R + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    if name != chunk_name::<F, A, R>() {
        return Err(mismatch(name, chunk_name::<F, A, R>()));
    }
    let args: Vec<A> = decode(input)?;
    // SAFETY: as in `job`.
    let f: F = unsafe { conjure() };
    let values: Vec<R> = run(|| args.into_iter().map(f).collect())?;
    encode(&values, out)
}

/// Runs the initializer `F`.
pub(crate) fn init<F>(name: &str, _: &[u8], _: &mut Vec<u8>) -> Result<(), Failure>
where
    F: Fn() + 'static,
{
    if name != init_name::<F>() {
        return Err(mismatch(name, init_name::<F>()));
    }
    // SAFETY: as in `job`.
    let f: F = unsafe { conjure() };
    run(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: u64) -> u64 {
        x * x
    }

    fn call(offset: i64, name: &str, input: &[u8]) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        // SAFETY: the offsets in these tests come from `offset_of` in this very process.
        let t = unsafe { from_offset(offset) };
        t(name, input, &mut out).map(|()| out)
    }

    fn job_of<F: Fn(A) -> R + 'static, A: DeserializeOwned, R: Serialize>(_: F) -> Trampoline {
        job::<F, A, R>
    }

    #[test]
    fn offset_round_trips_to_the_same_function() {
        let t = job_of(square);
        let out = call(offset_of(t), job_name::<fn(u64) -> u64, u64, u64>(), &[0]).err();
        // The name of a fn item type is not the name of a fn pointer type: refused, not called.
        assert!(matches!(out, Some(Failure::Serialization(m)) if m.contains("mismatch")));
    }

    #[test]
    fn job_trampoline_decodes_calls_and_encodes() {
        let f = |x: u64| x + 1;
        fn name_of<F: Fn(u64) -> u64 + 'static>(_: &F) -> &'static str {
            job_name::<F, u64, u64>()
        }
        let out = call(
            offset_of(job_of(f)),
            name_of(&f),
            &postcard::to_allocvec(&41u64).unwrap(),
        );
        assert_eq!(postcard::from_bytes::<u64>(&out.unwrap()).unwrap(), 42);
    }

    #[test]
    fn panics_and_bad_input_are_failures() {
        let boom = |_: u8| -> u8 { panic!("boom {}", 7) };
        fn name_of<F: Fn(u8) -> u8 + 'static>(_: &F) -> &'static str {
            job_name::<F, u8, u8>()
        }
        let t = offset_of(job_of(boom));
        assert_eq!(
            call(t, name_of(&boom), &[1]),
            Err(Failure::Panicked("boom 7".into()))
        );
        assert!(matches!(
            call(t, name_of(&boom), &[]),
            Err(Failure::Serialization(_))
        ));
    }
}
