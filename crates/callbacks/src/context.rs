//! Context variables: asyncio's `contextvars`, the state that follows a callback or a task.
//!
//! A [`ContextVar`] is a key; its value lives in the *current context*, a small immutable map the
//! thread has entered. Everything the loop schedules captures the context current at schedule
//! time (a [`Snapshot`]: one reference count, nothing copied) and runs inside a copy of it, so a
//! value set by a request handler is seen by every callback and task it schedules, and by nobody
//! else. Setting a value copies the map only if someone else still shares it (copy on write),
//! which gives each callback and task asyncio's `copy_context()` semantics at the cost of a
//! pointer copy.
//!
//! Until the first [`ContextVar::set`] in the process, capturing and entering contexts is skipped
//! altogether (one relaxed load), so a program that never uses context variables pays nothing.
//!
//! ```
//! use evloop_callbacks::{Context, ContextVar};
//!
//! static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id");
//!
//! let mut ctx = Context::new();
//! ctx.run(|| {
//!     REQUEST_ID.set(7);
//!     assert_eq!(REQUEST_ID.get(), Some(7));
//! });
//! assert_eq!(REQUEST_ID.get(), None, "the value stayed in ctx");
//! assert_eq!(ctx.get(&REQUEST_ID), Some(7));
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Set once the first variable is set anywhere: before that, no context can hold a value.
static IN_USE: AtomicBool = AtomicBool::new(false);
/// Variable ids (assigned on first use, so `ContextVar::new` can be `const`).
static NEXT_VAR_ID: AtomicU64 = AtomicU64::new(1);
/// Context identities, for [`ContextVar::reset`]'s "different Context" check. Task contexts use
/// their task's id with the top bit set, so the two never collide.
static NEXT_CONTEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The bit that marks an identity as a task's (see [`Scope::enter_task`]).
const TASK_CONTEXT: u64 = 1 << 63;

type Value = Arc<dyn Any + Send + Sync>;

/// The variables of one context, sorted by variable id (contexts hold a handful of variables,
/// so a sorted vector beats a hash map on every operation that matters here).
#[derive(Clone, Default)]
struct Vars(Vec<(u64, Value)>);

impl Vars {
    fn get(&self, id: u64) -> Option<&Value> {
        self.0
            .binary_search_by_key(&id, |(key, _)| *key)
            .ok()
            .map(|at| &self.0[at].1)
    }

    fn put(&mut self, id: u64, value: Option<Value>) -> Option<Value> {
        match (self.0.binary_search_by_key(&id, |(key, _)| *key), value) {
            (Ok(at), Some(value)) => Some(std::mem::replace(&mut self.0[at].1, value)),
            (Ok(at), None) => Some(self.0.remove(at).1),
            (Err(at), Some(value)) => {
                self.0.insert(at, (id, value));
                None
            }
            (Err(_), None) => None,
        }
    }
}

/// A context's variables as captured at one moment: what a scheduled callback or a new task
/// carries. Cloning it is one atomic increment; it is `Send`, so a job can take it to a thread.
///
/// ```
/// use evloop_callbacks::{ContextVar, Snapshot};
///
/// static USER: ContextVar<&'static str> = ContextVar::new("user");
/// let _token = USER.set("ada");
/// let snapshot = Snapshot::capture().expect("a variable is set");
/// std::thread::spawn(move || {
///     let mut ctx = evloop_callbacks::Context::from_snapshot(Some(snapshot));
///     ctx.run(|| assert_eq!(USER.get(), Some("ada")));
/// })
/// .join()
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Snapshot(Arc<Vars>);

impl Snapshot {
    /// The current context's variables, or `None` when it has none (nothing to carry).
    #[inline]
    pub fn capture() -> Option<Snapshot> {
        if !in_use() {
            return None;
        }
        Snapshot::capture_current()
    }

    #[inline(never)]
    fn capture_current() -> Option<Snapshot> {
        CURRENT.with(|current| current.vars.borrow().clone())
    }

    fn empty() -> Snapshot {
        Snapshot(Arc::new(Vars::default()))
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Snapshot of {} variables>", self.0.0.len())
    }
}

/// The context this thread is in: its variables and its identity.
struct Current {
    vars: RefCell<Option<Snapshot>>,
    id: Cell<u64>,
}

thread_local! {
    static CURRENT: Current = const {
        Current {
            vars: RefCell::new(None),
            id: Cell::new(0),
        }
    };
}

/// Whether any context variable was ever set in this process. Until then capturing and
/// entering contexts can be skipped: every context is empty.
#[inline]
pub(crate) fn in_use() -> bool {
    IN_USE.load(Ordering::Relaxed)
}

/// After code that ran with no context entered because no variable was in use: if that code set
/// the first variable, it went into the thread's own context; take it back out.
#[inline]
pub(crate) fn forget_first_use() {
    if in_use() {
        forget_thread_vars();
    }
}

#[inline(never)]
fn forget_thread_vars() {
    let vars = CURRENT.with(|current| current.vars.take());
    drop(vars);
}

/// A context entered on this thread until the scope ends (or [`Scope::exit`] hands the
/// variables back). Scopes nest; dropping one, even while unwinding, restores the outer context.
///
/// While no variable has ever been set in the process, entering costs next to nothing: every
/// context is empty, so the scope only remembers that; if the code inside then sets the first
/// variable, what it set is taken back from the thread when the scope ends, as if the scope had
/// been entered in full.
///
/// ```
/// use evloop_callbacks::{ContextVar, Scope, Snapshot};
///
/// static LEVEL: ContextVar<u32> = ContextVar::new("level");
/// let scope = Scope::enter(None);
/// LEVEL.set(1);
/// let vars: Option<Snapshot> = scope.exit();
/// assert!(vars.is_some(), "what the scope set comes back");
/// assert_eq!(LEVEL.get(), None, "and the outer context is back");
/// ```
#[must_use = "the context is left when the scope is dropped"]
pub struct Scope {
    outer_vars: Option<Snapshot>,
    outer_id: u64,
    mode: Mode,
    _not_send: PhantomData<*const ()>,
}

/// How much of the context a [`Scope`] swapped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Variables and identity.
    Full,
    /// No variable was in use: only the identity (a task's).
    Identity,
    /// No variable was in use: nothing (a callback's).
    Nothing,
}

impl Scope {
    /// Enters a fresh copy of `vars` (a callback's context: what it sets is its own).
    #[inline]
    pub fn enter(vars: Option<Snapshot>) -> Scope {
        if in_use() {
            let id = NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed);
            Scope::enter_with_id(vars, id)
        } else {
            Scope::untouched()
        }
    }

    /// Enters task `task_id`'s context: the identity stays the same on every step of the task,
    /// so a token set on one step can be reset on another.
    #[inline]
    pub fn enter_task(vars: Option<Snapshot>, task_id: u64) -> Scope {
        if in_use() {
            Scope::enter_with_id(vars, task_id | TASK_CONTEXT)
        } else {
            Scope {
                outer_vars: None,
                outer_id: CURRENT.with(|current| current.id.replace(task_id | TASK_CONTEXT)),
                mode: Mode::Identity,
                _not_send: PhantomData,
            }
        }
    }

    /// A scope that swaps nothing, while no variable is in use (see [`Scope::enter`]).
    #[inline]
    pub(crate) fn untouched() -> Scope {
        Scope {
            outer_vars: None,
            outer_id: 0,
            mode: Mode::Nothing,
            _not_send: PhantomData,
        }
    }

    #[inline(never)]
    fn enter_with_id(vars: Option<Snapshot>, id: u64) -> Scope {
        CURRENT.with(|current| {
            let outer_vars = current.vars.replace(vars);
            let outer_id = current.id.replace(id);
            Scope {
                outer_vars,
                outer_id,
                mode: Mode::Full,
                _not_send: PhantomData,
            }
        })
    }

    /// Leaves the context and returns its variables as they are now (for the owner to keep).
    #[inline]
    pub fn exit(self) -> Option<Snapshot> {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.restore()
    }

    #[inline]
    fn restore(&mut self) -> Option<Snapshot> {
        match self.mode {
            // Nothing was ever set: the thread's variables are still empty.
            Mode::Nothing if !in_use() => None,
            Mode::Identity if !in_use() => {
                CURRENT.with(|current| current.id.set(self.outer_id));
                None
            }
            _ => self.restore_vars(),
        }
    }

    /// A full scope, or a lazy one inside which the first variable was set (the thread held
    /// no variables before, so what it holds now is what the scope set).
    #[inline(never)]
    fn restore_vars(&mut self) -> Option<Snapshot> {
        let outer = self.outer_vars.take();
        CURRENT.with(|current| {
            if self.mode != Mode::Nothing {
                current.id.set(self.outer_id);
            }
            current.vars.replace(outer)
        })
    }
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        drop(self.restore());
    }
}

/// A context: a set of variable values that code can run in (asyncio's `contextvars.Context`).
///
/// `Context::run(&mut self, f)` runs `f` inside it and keeps what `f` set; a clone is a copy
/// (`Context.copy()`), independent from then on. [`copy_context`] captures the current one.
///
/// ```
/// use evloop_callbacks::{ContextVar, copy_context};
///
/// static COLOR: ContextVar<&'static str> = ContextVar::with_default("color", "red");
/// let mut ctx = copy_context();
/// ctx.run(|| COLOR.set("blue"));
/// assert_eq!(COLOR.get(), Some("red"), "the default: nothing set here");
/// assert_eq!(ctx.get(&COLOR), Some("blue"));
/// ```
pub struct Context {
    vars: Option<Snapshot>,
    id: u64,
}

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::from_snapshot(None)
    }

    /// A context holding the variables of `snapshot`.
    pub fn from_snapshot(snapshot: Option<Snapshot>) -> Context {
        Context {
            vars: snapshot,
            id: NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Its variables, to hand to a task or a callback (which run in copies of them).
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.vars.clone()
    }

    /// Runs `f` inside this context; what `f` sets stays in it (asyncio's `Context.run`).
    ///
    /// ```
    /// use evloop_callbacks::{Context, ContextVar};
    /// static N: ContextVar<u32> = ContextVar::new("n");
    /// let mut ctx = Context::new();
    /// ctx.run(|| N.set(1));
    /// assert_eq!(ctx.run(|| N.get()), Some(1));
    /// ```
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct Back<'a>(&'a mut Context, Option<Scope>);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                if let Some(scope) = self.1.take() {
                    self.0.vars = scope.exit();
                }
            }
        }
        // Always in full (not lazily): this context's identity must be current for tokens.
        let scope = Scope::enter_with_id(self.vars.take(), self.id);
        let _back = Back(self, Some(scope));
        f()
    }

    /// The value of `var` in this context (its default if unset here).
    pub fn get<T: Clone + Send + Sync + 'static>(&self, var: &ContextVar<T>) -> Option<T> {
        let id = var.id();
        self.vars
            .as_ref()
            .and_then(|vars| vars.0.get(id))
            .and_then(|value| value.downcast_ref::<T>())
            .cloned()
            .or_else(|| var.default.clone())
    }

    /// Whether `var` has a value set in this context (defaults do not count).
    pub fn contains<T: Send + Sync + 'static>(&self, var: &ContextVar<T>) -> bool {
        let id = var.id();
        self.vars
            .as_ref()
            .is_some_and(|vars| vars.0.get(id).is_some())
    }

    /// How many variables are set in this context.
    pub fn len(&self) -> usize {
        self.vars.as_ref().map_or(0, |vars| vars.0.0.len())
    }

    /// Whether no variable is set in this context.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::new()
    }
}

/// A copy, as asyncio's `Context.copy()`: same values, its own identity.
impl Clone for Context {
    fn clone(&self) -> Self {
        Context::from_snapshot(self.vars.clone())
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Context with {} variables>", self.len())
    }
}

/// A copy of the current context (asyncio's `contextvars.copy_context()`).
///
/// ```
/// static V: evloop_callbacks::ContextVar<i32> = evloop_callbacks::ContextVar::new("v");
/// let _t = V.set(3);
/// assert_eq!(evloop_callbacks::copy_context().get(&V), Some(3));
/// ```
pub fn copy_context() -> Context {
    Context::from_snapshot(Snapshot::capture())
}

/// A context variable (asyncio's `contextvars.ContextVar`): a key whose value depends on the
/// context the code runs in. Declare it as a `static`; values must be `Send + Sync` because
/// `to_thread` carries the context to a worker thread, as asyncio does.
///
/// ```
/// use evloop_callbacks::ContextVar;
///
/// static DEPTH: ContextVar<u32> = ContextVar::with_default("depth", 0);
/// assert_eq!(DEPTH.get(), Some(0));
/// let token = DEPTH.set(1);
/// assert_eq!(DEPTH.get(), Some(1));
/// DEPTH.reset(token).unwrap();
/// assert_eq!(DEPTH.get(), Some(0));
/// ```
pub struct ContextVar<T: Send + Sync + 'static> {
    name: &'static str,
    default: Option<T>,
    id: AtomicU64,
}

impl<T: Send + Sync + 'static> ContextVar<T> {
    /// A variable with no default: `get()` is `None` where it is unset.
    pub const fn new(name: &'static str) -> ContextVar<T> {
        ContextVar {
            name,
            default: None,
            id: AtomicU64::new(0),
        }
    }

    /// A variable whose `get()` gives `default` where it is unset.
    pub const fn with_default(name: &'static str, default: T) -> ContextVar<T> {
        ContextVar {
            name,
            default: Some(default),
            id: AtomicU64::new(0),
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn id(&self) -> u64 {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id;
        }
        let fresh = NEXT_VAR_ID.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(won) => won,
        }
    }

    /// Calls `f` with the value in the current context (or the default), without cloning it.
    ///
    /// ```
    /// static NAME: evloop_callbacks::ContextVar<String> = evloop_callbacks::ContextVar::new("name");
    /// let _t = NAME.set("ada".to_owned());
    /// assert_eq!(NAME.with(|name| name.map(String::len)), Some(3));
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        if !in_use() {
            return f(self.default.as_ref());
        }
        let id = self.id();
        CURRENT.with(|current| {
            let vars = current.vars.borrow();
            let value = vars
                .as_ref()
                .and_then(|vars| vars.0.get(id))
                .and_then(|value| value.downcast_ref::<T>());
            f(value.or(self.default.as_ref()))
        })
    }

    /// The value in the current context, or the default; `None` if neither exists.
    pub fn get(&self) -> Option<T>
    where
        T: Clone,
    {
        self.with(|value| value.cloned())
    }

    /// Sets the value in the current context and returns a token to undo it with
    /// [`reset`](ContextVar::reset) (asyncio's `ContextVar.set`).
    pub fn set(&self, value: T) -> Token<T> {
        IN_USE.store(true, Ordering::Relaxed);
        let id = self.id();
        let (old, context) = CURRENT.with(|current| {
            let mut vars = current.vars.borrow_mut();
            let vars = vars.get_or_insert_with(Snapshot::empty);
            let old = Arc::make_mut(&mut vars.0).put(id, Some(Arc::new(value)));
            (old, current.id.get())
        });
        Token {
            var: id,
            context,
            old,
            _type: PhantomData,
        }
    }

    /// Restores the value the variable had before the `set` that returned `token`
    /// (asyncio's `ContextVar.reset`). A token is used at most once: `reset` consumes it.
    ///
    /// Errors, with asyncio's texts: the token came from another variable, or was made in
    /// another context.
    pub fn reset(&self, token: Token<T>) -> Result<(), ContextError> {
        let id = self.id();
        if token.var != id {
            return Err(ContextError::DifferentVar);
        }
        CURRENT.with(|current| {
            if current.id.get() != token.context {
                return Err(ContextError::DifferentContext);
            }
            let mut vars = current.vars.borrow_mut();
            let vars = vars.get_or_insert_with(Snapshot::empty);
            drop(Arc::make_mut(&mut vars.0).put(id, token.old));
            Ok(())
        })
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<ContextVar name='{}'>", self.name)
    }
}

/// What [`ContextVar::set`] returns: enough to undo that set with [`ContextVar::reset`].
pub struct Token<T> {
    var: u64,
    context: u64,
    old: Option<Value>,
    _type: PhantomData<fn() -> T>,
}

impl<T: Clone + 'static> Token<T> {
    /// The value before the `set` (asyncio's `Token.old_value`; `None` for `Token.MISSING`).
    pub fn old_value(&self) -> Option<T> {
        self.old
            .as_ref()
            .and_then(|value| value.downcast_ref::<T>())
            .cloned()
    }
}

impl<T> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Token var={}>", self.var)
    }
}

/// Why [`ContextVar::reset`] refused a token (asyncio's `ValueError` texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextError {
    /// The token was returned by another variable's `set`.
    DifferentVar,
    /// The token was made in another context.
    DifferentContext,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::DifferentVar => "Token was created by a different ContextVar",
            ContextError::DifferentContext => "Token was created in a different Context",
        })
    }
}

impl std::error::Error for ContextError {}

#[cfg(test)]
mod tests {
    use super::*;

    static A: ContextVar<u32> = ContextVar::new("a");
    static B: ContextVar<u32> = ContextVar::with_default("b", 9);

    #[test]
    fn set_and_reset_restore_the_previous_value() {
        let mut ctx = Context::new();
        ctx.run(|| {
            assert_eq!(A.get(), None);
            let first = A.set(1);
            let second = A.set(2);
            assert_eq!(second.old_value(), Some(1));
            A.reset(second).unwrap();
            assert_eq!(A.get(), Some(1));
            A.reset(first).unwrap();
            assert_eq!(A.get(), None);
        });
    }

    #[test]
    fn a_copy_does_not_see_later_sets_and_the_original_does_not_see_the_copys() {
        let mut outer = Context::new();
        outer.run(|| {
            A.set(1);
            let mut copy = copy_context();
            A.set(2);
            assert_eq!(copy.get(&A), Some(1));
            copy.run(|| A.set(3));
            assert_eq!(A.get(), Some(2));
            assert_eq!(copy.get(&A), Some(3));
        });
    }

    #[test]
    fn defaults_apply_where_unset() {
        let ctx = Context::new();
        assert_eq!(ctx.get(&B), Some(9));
        assert!(!ctx.contains(&B));
    }

    #[test]
    fn reset_refuses_a_token_of_another_var_or_context() {
        let mut ctx = Context::new();
        let token = ctx.run(|| A.set(5));
        assert_eq!(B.reset(copy_token(&token)), Err(ContextError::DifferentVar));
        let mut other = Context::new();
        assert_eq!(
            other.run(|| A.reset(token)),
            Err(ContextError::DifferentContext)
        );
        assert_eq!(
            ContextError::DifferentContext.to_string(),
            "Token was created in a different Context"
        );
    }

    fn copy_token<T>(token: &Token<T>) -> Token<T> {
        Token {
            var: token.var,
            context: token.context,
            old: token.old.clone(),
            _type: PhantomData,
        }
    }

    #[test]
    fn a_scope_restores_the_outer_context_even_when_unwinding() {
        let mut ctx = Context::new();
        ctx.run(|| {
            A.set(1);
            let caught = std::panic::catch_unwind(|| {
                let _scope = Scope::enter(None);
                A.set(2);
                panic!("boom");
            });
            assert!(caught.is_err());
            assert_eq!(A.get(), Some(1));
        });
    }

    #[test]
    fn a_lazy_scope_takes_back_the_first_variable_set_inside_it() {
        // Each test is a process of its own under nextest; under `cargo test` another test may
        // already have set a variable, and the scope is then a full one: same outcome.
        let scope = Scope::enter_task(None, 7);
        let token = A.set(11);
        let vars = scope.exit();
        assert_eq!(A.get(), None, "nothing leaked to the thread");
        let scope = Scope::enter_task(vars, 7);
        assert_eq!(A.get(), Some(11));
        A.reset(token).unwrap();
        drop(scope);
    }

    #[test]
    fn a_task_scope_keeps_its_identity_across_steps() {
        let scope = Scope::enter_task(None, 42);
        let token = A.set(1);
        let vars = scope.exit();
        let scope = Scope::enter_task(vars, 42);
        assert_eq!(A.get(), Some(1));
        A.reset(token).unwrap();
        assert_eq!(A.get(), None);
        drop(scope.exit());
    }
}
