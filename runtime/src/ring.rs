//! Frames between processes of one host without zenoh's per-message wake-ups: a
//! publisher's ring of slots in a `/dev/shm` file, one writer, any number of readers,
//! each slot guarded by a sequence lock and the whole ring woken by one futex.
//!
//! zenoh's shared memory moves a frame's bytes without a copy, but still wakes an I/O
//! task in each process for every message (0.13–0.32 ms on a 2-core machine, most of a
//! frame's latency). Here the writer encodes the message straight into a slot and wakes
//! the readers' threads directly, only those asleep; a reader watches the ring briefly
//! before it sleeps. A reader that falls a whole ring behind skips to the newest message
//! (stream semantics, like [`crate::Qos::Stream`]); a reader decodes in place and keeps
//! what it decoded only if the slot's sequence number says it was not written meanwhile
//! ([`Message::intact`]), so nothing torn is handed on.
//!
//! [`crate::Bus`] finds rings through liveliness tokens and decides who reads what; this
//! module only owns the file, its layout and the lock-free protocol.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;

const DIR: &str = "/dev/shm";
const PREFIX: &str = "loho-ring-";
const MAGIC: u64 = u64::from_le_bytes(*b"lohoring");
const SLOTS: u32 = 4;
/// Header and slot headers are this size, so every slot's data starts cache-aligned.
const LINE: usize = 64;

#[derive(Debug, Error)]
pub enum RingError {
    #[error(
        "ring {path}: {source} (is /dev/shm mounted and writable? --no-shared-memory avoids it)"
    )]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("ring {path} is not a loho ring of this version, or was replaced")]
    Foreign { path: String },
}

/// At offset 0 of the file.
#[repr(C)]
struct Head {
    magic: u64,
    /// Chosen by the writer, announced with the ring: a reader checks it opened the ring
    /// it was told of, not a file left by an earlier process of the same pid.
    nonce: u64,
    slots: u32,
    _pad: u32,
    slot_bytes: u64,
    /// Messages written so far; the futex readers sleep on.
    written: AtomicU32,
    /// Set when the writer is gone: readers stop.
    closed: AtomicU32,
    /// Readers asleep on `written` (or about to be): the writer wakes them only then.
    sleepers: AtomicU32,
}

/// At the start of each slot, before its data.
#[repr(C)]
struct Slot {
    /// 2n+1 while message n is being written, 2n+2 once it is whole.
    seq: AtomicU64,
    len: AtomicU64,
}

/// A shared mapping of a whole ring file.
struct Map {
    ptr: *mut u8,
    len: usize,
}

// The mapping is shared memory accessed only through atomics and the sequence lock.
unsafe impl Send for Map {}
unsafe impl Sync for Map {}

impl Map {
    fn open(path: &str, create: Option<u64>) -> Result<Self, RingError> {
        let io = |source| RingError::Io {
            path: path.into(),
            source,
        };
        let mut o = OpenOptions::new();
        o.read(true).write(true).mode(0o600);
        if create.is_some() {
            o.create_new(true);
        }
        let file = o.open(path).map_err(io)?;
        if let Some(len) = create {
            file.set_len(len).map_err(io)?;
        }
        let len = file.metadata().map_err(io)?.len() as usize;
        if len < LINE {
            return Err(RingError::Foreign { path: path.into() });
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of the whole file; unmapped on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io(std::io::Error::last_os_error()));
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
    fn head(&self) -> &Head {
        // SAFETY: the mapping is at least LINE bytes, page-aligned, and Head fits in LINE.
        unsafe { &*(self.ptr as *const Head) }
    }
    /// Slot `i`'s header and data pointer. Callers check `i < slots` and that the layout
    /// fits the mapping ([`layout`]).
    fn slot(&self, i: usize, slot_bytes: usize) -> (&Slot, *mut u8) {
        let at = LINE + i * (LINE + slot_bytes);
        // SAFETY: in bounds by the callers' check; slots start LINE-aligned.
        unsafe { (&*(self.ptr.add(at) as *const Slot), self.ptr.add(at + LINE)) }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The file length a ring of `slots` slots of `slot_bytes` needs.
fn layout(slots: usize, slot_bytes: usize) -> usize {
    LINE + slots * (LINE + slot_bytes)
}

fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: a futex wait on a word of a live shared mapping (not PRIVATE: other
    // processes wake it); returns at once if the word is no longer `seen`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts as *const libc::timespec,
        )
    };
}

/// How long a reader watches for the next message before it sleeps: a frame's depth
/// image follows its colour image by the ~30 µs its encoding takes, and a wake across
/// processes costs tens of µs more here. A std channel's receiver spins the same way
/// before parking.
const SPIN: Duration = Duration::from_micros(50);

/// Whether `word` moved from `seen` within [`SPIN`].
fn spin(word: &AtomicU32, seen: u32) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < SPIN {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
        if word.load(Ordering::Acquire) != seen {
            return true;
        }
    }
    false
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// The one writer of a ring; removes the file when dropped.
pub struct RingWriter {
    map: Map,
    name: String,
    nonce: u64,
    slot_bytes: usize,
    written: u32,
}

impl RingWriter {
    /// A new ring whose slots hold messages of up to `max_message` bytes. The file is
    /// sparse: only the pages messages touch take memory.
    pub fn create(max_message: usize) -> Result<Self, RingError> {
        sweep();
        let slot_bytes = max_message.div_ceil(LINE) * LINE;
        let nonce = nonce();
        let name = format!("{PREFIX}{}-{nonce:016x}", std::process::id());
        let map = Map::open(
            &path(&name),
            Some(layout(SLOTS as usize, slot_bytes) as u64),
        )?;
        // SAFETY: the file is new and ours; no reader knows its name yet.
        unsafe {
            let h = map.ptr as *mut Head;
            (*h).nonce = nonce;
            (*h).slots = SLOTS;
            (*h).slot_bytes = slot_bytes as u64;
            (*h).magic = MAGIC;
        }
        Ok(Self {
            map,
            name,
            nonce,
            slot_bytes,
            written: 0,
        })
    }

    /// The file's name under /dev/shm, and the nonce a reader checks it against.
    pub fn id(&self) -> (&str, u64) {
        (&self.name, self.nonce)
    }

    /// The largest message a slot holds.
    pub fn capacity(&self) -> usize {
        self.slot_bytes
    }

    /// Writes one message and wakes the readers. `false`: it does not fit a slot.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        self.write_with(|slot| {
            let to = slot.get_mut(..bytes.len())?;
            to.copy_from_slice(bytes);
            Some(bytes.len())
        })
    }

    /// Writes one message with `fill`, which puts it at the start of the slot it is given
    /// and says how long it is (`None`: it does not fit), and wakes the readers.
    pub fn write_with(&mut self, fill: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let n = self.written;
        let (slot, data) = self.map.slot((n % SLOTS) as usize, self.slot_bytes);
        slot.seq.store(2 * n as u64 + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        // SAFETY: `data` has slot_bytes bytes of the mapping, which only this writer
        // writes; readers check `seq` around what they read of it.
        let mem = unsafe { std::slice::from_raw_parts_mut(data, self.slot_bytes) };
        let Some(len) = fill(mem) else {
            // The slot stays odd, so no reader takes what was half-written; the next
            // message (same number) writes it again.
            return false;
        };
        slot.len.store(len as u64, Ordering::Relaxed);
        slot.seq.store(2 * n as u64 + 2, Ordering::Release);
        self.written = n.wrapping_add(1);
        let head = self.map.head();
        // SeqCst pairs with the reader's: either it sees this message before it sleeps,
        // or this sees it asleep.
        head.written.store(self.written, Ordering::SeqCst);
        if head.sleepers.load(Ordering::SeqCst) > 0 {
            futex_wake(&head.written);
        }
        true
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        self.map.head().closed.store(1, Ordering::Release);
        futex_wake(&self.map.head().written);
        let _ = std::fs::remove_file(path(&self.name));
    }
}

/// What [`RingReader::next`] found.
#[derive(Debug)]
pub enum Read<'a> {
    /// A message, read in place.
    Message(Message<'a>),
    /// Nothing new within the timeout.
    Idle,
    /// The writer is gone.
    Closed,
}

/// A message in its slot: the writer may overwrite it once the ring laps this reader, so
/// whatever is made of [`Message::bytes`] is kept only if [`Message::intact`] says so
/// afterwards (a sequence lock's read).
#[derive(Debug)]
pub struct Message<'a> {
    seq: &'a AtomicU64,
    whole: u64,
    bytes: &'a [u8],
}

impl Message<'_> {
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }
    /// Whether the slot still holds this message, so that what was read of it is whole.
    pub fn intact(&self) -> bool {
        fence(Ordering::Acquire);
        self.seq.load(Ordering::Relaxed) == self.whole
    }
}

/// One reader's view of a ring: it sees the messages written after it opened the ring.
pub struct RingReader {
    map: Map,
    slots: u32,
    slot_bytes: usize,
    next: u32,
    /// Messages skipped because the writer lapped this reader or was writing their slot.
    pub skipped: u64,
}

impl RingReader {
    /// Opens the ring `name` (under /dev/shm) announced with `nonce`.
    pub fn open(name: &str, nonce: u64) -> Result<Self, RingError> {
        let path = path(name);
        let foreign = || RingError::Foreign { path: path.clone() };
        if !name.starts_with(PREFIX) || name.contains('/') {
            return Err(foreign());
        }
        let map = Map::open(&path, None)?;
        let h = map.head();
        let (slots, slot_bytes) = (h.slots, h.slot_bytes as usize);
        if h.magic != MAGIC
            || h.nonce != nonce
            || slots == 0
            || slot_bytes.checked_mul(slots as usize).is_none()
            || layout(slots as usize, slot_bytes) > map.len
        {
            return Err(foreign());
        }
        let next = h.written.load(Ordering::Acquire);
        Ok(Self {
            map,
            slots,
            slot_bytes,
            next,
            skipped: 0,
        })
    }

    /// The next message, waiting for it at most `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Read<'_> {
        let mut waited = false;
        loop {
            let head = self.map.head();
            let written = head.written.load(Ordering::Acquire);
            if written == self.next {
                if head.closed.load(Ordering::Acquire) != 0 {
                    return Read::Closed;
                }
                if waited {
                    return Read::Idle;
                }
                if !spin(&head.written, written) {
                    head.sleepers.fetch_add(1, Ordering::SeqCst);
                    if head.written.load(Ordering::SeqCst) == written {
                        futex_wait(&head.written, written, timeout);
                    }
                    head.sleepers.fetch_sub(1, Ordering::SeqCst);
                    waited = true;
                }
                continue;
            }
            let behind = written.wrapping_sub(self.next);
            if behind > self.slots {
                // Lapped: everything but the newest message is gone or going.
                self.skipped += (behind - 1) as u64;
                self.next = written.wrapping_sub(1);
            }
            let n = self.next;
            self.next = n.wrapping_add(1);
            let (slot, data) = self.map.slot((n % self.slots) as usize, self.slot_bytes);
            let whole = 2 * n as u64 + 2;
            if slot.seq.load(Ordering::Acquire) != whole {
                self.skipped += 1;
                continue;
            }
            let len = slot.len.load(Ordering::Relaxed) as usize;
            if len > self.slot_bytes {
                self.skipped += 1;
                continue;
            }
            // SAFETY: `data` has slot_bytes ≥ len bytes in the mapping, alive as long as
            // `self`. The writer may overwrite them while the caller reads; `intact` tells.
            let bytes = unsafe { std::slice::from_raw_parts(data, len) };
            return Read::Message(Message {
                seq: &slot.seq,
                whole,
                bytes,
            });
        }
    }
}

fn path(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// Random enough to tell two rings of one pid apart (not a secret).
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Removes the ring files of processes that are gone (killed before they could).
fn sweep() {
    let Ok(dir) = std::fs::read_dir(DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_file(PathBuf::from(DIR).join(&name));
        }
    }
}

/// This host's identity for the current boot: two processes that read the same one can
/// map each other's rings (if they also share /dev/shm, which opening the ring checks).
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(50);

    /// What `next` found: a message's bytes (checked intact after the copy), or "idle",
    /// "closed".
    fn next(r: &mut RingReader, timeout: Duration) -> Result<Vec<u8>, &'static str> {
        match r.next(timeout) {
            Read::Message(m) => {
                let bytes = m.bytes().to_vec();
                assert!(m.intact());
                Ok(bytes)
            }
            Read::Idle => Err("idle"),
            Read::Closed => Err("closed"),
        }
    }

    #[test]
    fn a_reader_sees_what_is_written_after_it_opened() {
        let mut w = RingWriter::create(1024).unwrap();
        assert!(w.write(b"before"));
        let (name, nonce) = w.id();
        let mut r = RingReader::open(name, nonce).unwrap();
        assert_eq!(next(&mut r, T), Err("idle"));
        for m in [&b"one"[..], b"two", b""] {
            assert!(w.write(m));
        }
        for m in [&b"one"[..], b"two", b""] {
            assert_eq!(next(&mut r, T).unwrap(), m);
        }
        assert!(!w.write(&[0; 1025]), "too big for a slot");
        drop(w);
        assert_eq!(next(&mut r, T), Err("closed"));
    }

    #[test]
    fn a_lapped_reader_skips_to_the_newest() {
        let mut w = RingWriter::create(8).unwrap();
        let (name, nonce) = w.id();
        let mut r = RingReader::open(name, nonce).unwrap();
        for k in 0..10u8 {
            w.write(&[k]);
        }
        assert_eq!(next(&mut r, T).unwrap(), [9]);
        assert_eq!(r.skipped, 9);
    }

    #[test]
    fn a_message_overwritten_while_read_is_not_intact() {
        let mut w = RingWriter::create(8).unwrap();
        let (name, nonce) = w.id();
        let mut r = RingReader::open(name, nonce).unwrap();
        w.write(&[1]);
        let Read::Message(m) = r.next(T) else {
            panic!("no message")
        };
        assert!(m.intact());
        for k in 0..SLOTS as u8 {
            w.write(&[k]);
        }
        assert!(!m.intact(), "its slot was written again");
    }

    #[test]
    fn a_wrong_nonce_or_name_is_refused() {
        let w = RingWriter::create(8).unwrap();
        let (name, nonce) = w.id();
        assert!(matches!(
            RingReader::open(name, nonce ^ 1),
            Err(RingError::Foreign { .. })
        ));
        assert!(RingReader::open("../etc/passwd", nonce).is_err());
        assert!(RingReader::open("loho-ring-0-none", nonce).is_err());
    }

    #[test]
    fn a_reader_on_another_thread_is_woken() {
        let mut w = RingWriter::create(64).unwrap();
        let (name, nonce) = w.id();
        let mut r = RingReader::open(name, nonce).unwrap();
        let got = std::thread::spawn(move || {
            let mut got = vec![];
            while got.last() != Some(&99) {
                match next(&mut r, Duration::from_secs(5)) {
                    Ok(m) => got.push(m[0]),
                    Err(_) => break,
                }
            }
            (got, r.skipped)
        });
        for k in 0..100u8 {
            w.write(&[k; 64]);
            std::thread::sleep(Duration::from_micros(200));
        }
        // Every message once, in order, through the last; a reader descheduled for longer
        // than four messages (a loaded machine) skips some, and counts them.
        let (got, skipped) = got.join().unwrap();
        assert_eq!(got.last(), Some(&99), "{got:?}");
        assert!(got.windows(2).all(|p| p[0] < p[1]), "{got:?}");
        assert_eq!(
            got.len() as u64 + skipped,
            100,
            "{got:?}, {skipped} skipped"
        );
        assert!(got.len() >= 50, "woken for only {} of 100", got.len());
    }
}
