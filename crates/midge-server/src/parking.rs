//! Idle connections parked off the runtime, so that a client that says nothing for a while
//! costs only its state, not a task and a socket registration.
//!
//! A connected client is served by a tokio task whose socket is registered with tokio's
//! reactor. While the client is idle, both are overhead: the task's allocation (rounded up to
//! 128 bytes by tokio, with the future's room for the busy states) and the registration's
//! `ScheduledIo` (256 bytes) are most of what an idle connection costs. A connection idle for a
//! while (see `connection.rs`) hands its plain socket and its state to [`Parking`] and ends its
//! task. Parking watches the socket with its own `mio::Poll` on one thread, and gives the state
//! back (spawning a new task through [`Parked::resume`]) as soon as the socket becomes readable or the
//! waker it handed out is woken: the broker's link to the connection wakes it for messages, a
//! close or the keep-alive deadline.
//!
//! Written here rather than found in a crate because it is a few dozen lines over `mio` (which
//! tokio itself runs on) and the hand-over races need this exact order: the waker exists before
//! the state is parked, a wake that comes before the state is in its place resumes it as soon
//! as it is, and each parked state is resumed exactly once.

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::{Wake, Waker};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use parking_lot::Mutex;

/// The parked states and the thread that watches their sockets. One per process.
pub(crate) struct Parking<T> {
    registry: Registry,
    slots: Mutex<Slots<T>>,
}

/// A slot per parked state, reused; a token is the slot's index and its generation, so a stale
/// waker (kept by someone after its connection resumed) wakes nothing.
struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

struct Slot<T> {
    generation: u32,
    state: State<T>,
}

enum State<T> {
    Free,
    /// Handed out by [`Parking::reserve`], not yet filled; `woken` if its waker fired meanwhile.
    Reserved {
        woken: bool,
    },
    Parked {
        item: Box<T>,
        fd: RawFd,
    },
}

/// A slot reserved for a state about to be parked, with the waker that resumes it.
pub(crate) struct Reservation {
    token: usize,
}

impl<T: Parked> Parking<T> {
    /// Creates the parking and starts the thread that watches its sockets. `None` if the
    /// system refuses a poll instance or a thread: connections then stay on the runtime while
    /// idle. Called once, from [`Parked::parking`]'s initialisation, which the thread waits
    /// for before it watches.
    pub(crate) fn start() -> Option<Self> {
        let poll = Poll::new().ok()?;
        let registry = poll.registry().try_clone().ok()?;
        std::thread::Builder::new()
            .name("midge-parking".into())
            .spawn(move || {
                if let Some(parking) = T::parking() {
                    parking.watch(poll);
                }
            })
            .ok()?;
        Some(Self {
            registry,
            slots: Mutex::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        })
    }

    /// The thread's loop: resumes every state whose socket became readable.
    fn watch(&'static self, mut poll: Poll) {
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(error) = poll.poll(&mut events, None) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(%error, "parked connections are no longer watched: {error}");
                return;
            }
            for event in &events {
                self.unpark(event.token().0);
            }
        }
    }

    /// A slot for a state about to be parked, and the waker that will resume it. Register the
    /// waker wherever the state can be woken from, then [`Parking::park`] it.
    pub(crate) fn reserve(&'static self) -> (Reservation, Waker) {
        let mut slots = self.slots.lock();
        let index = match slots.free.pop() {
            Some(index) => index,
            None => {
                slots.slots.push(Slot {
                    generation: 0,
                    state: State::Free,
                });
                u32::try_from(slots.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let slot = &mut slots.slots[index as usize];
        slot.state = State::Reserved { woken: false };
        let token = token(index, slot.generation);
        (Reservation { token }, self.waker(token))
    }

    /// Parks `item` in its reserved slot until `fd` is readable or the slot's waker is woken
    /// (at once if it was woken since [`Parking::reserve`]). On error (the socket cannot be
    /// watched) the item is given back and the slot freed.
    pub(crate) fn park(
        &'static self,
        reservation: Reservation,
        fd: RawFd,
        item: Box<T>,
    ) -> Result<(), Box<T>> {
        let (index, generation) = split(reservation.token);
        let mut slots = self.slots.lock();
        let Some(slot) = slots.slots.get_mut(index).filter(|s| s.generation == generation) else {
            return Err(item);
        };
        let woken = matches!(slot.state, State::Reserved { woken: true });
        if let Err(error) =
            self.registry
                .register(&mut SourceFd(&fd), Token(reservation.token), Interest::READABLE)
        {
            tracing::debug!(%error, "cannot park a connection: {error}");
            free(&mut slots, index);
            return Err(item);
        }
        slots.slots[index].state = State::Parked { item, fd };
        drop(slots);
        if woken {
            self.unpark(reservation.token);
        }
        Ok(())
    }

    /// Gives back a reservation that was not used.
    pub(crate) fn cancel(&self, reservation: Reservation) {
        let (index, generation) = split(reservation.token);
        let mut slots = self.slots.lock();
        if slots.slots.get(index).is_some_and(|s| s.generation == generation) {
            free(&mut slots, index);
        }
    }

    /// Resumes the state parked under `token`, if it is still there.
    fn unpark(&self, token: usize) {
        let (index, generation) = split(token);
        let mut slots = self.slots.lock();
        let Some(slot) = slots.slots.get_mut(index).filter(|s| s.generation == generation) else {
            return;
        };
        match &mut slot.state {
            State::Free => {}
            State::Reserved { woken } => *woken = true,
            State::Parked { .. } => {
                let State::Parked { item, fd } = std::mem::replace(&mut slot.state, State::Free) else {
                    return;
                };
                // Before the socket goes back to the runtime, which registers it anew.
                let _ = self.registry.deregister(&mut SourceFd(&fd));
                free(&mut slots, index);
                drop(slots);
                item.resume();
            }
        }
    }

    /// How many states are parked (or about to be) now.
    pub(crate) fn parked(&self) -> usize {
        let slots = self.slots.lock();
        slots.slots.len() - slots.free.len()
    }

    fn waker(&'static self, token: usize) -> Waker {
        Waker::from(Arc::new(Unpark::<T> {
            token,
            parked: PhantomData,
        }))
    }
}

fn free<T>(slots: &mut Slots<T>, index: usize) {
    let slot = &mut slots.slots[index];
    slot.state = State::Free;
    slot.generation = slot.generation.wrapping_add(1);
    slots.free.push(index as u32);
}

fn token(index: u32, generation: u32) -> usize {
    ((generation as usize) << 32) | index as usize
}

fn split(token: usize) -> (usize, u32) {
    (token & 0xFFFF_FFFF, (token >> 32) as u32)
}

/// What is parked: given back once, when its socket is readable or its waker woken.
pub(crate) trait Parked: Send + Sized + 'static {
    /// The process's parking for this type (a static, started by [`Parking::start`] on first
    /// use), where the wakers of parked states find it.
    fn parking() -> Option<&'static Parking<Self>>;
    /// Takes the connection up again (on a runtime: this spawns a task).
    fn resume(self: Box<Self>);
}

/// The waker of a parked state: its token.
struct Unpark<T> {
    token: usize,
    parked: PhantomData<fn() -> T>,
}

impl<T: Parked> Wake for Unpark<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(parking) = T::parking() {
            parking.unpark(self.token);
        }
    }
}
