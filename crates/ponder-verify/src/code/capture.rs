//! Bounded capture of a child's output pipes: keep the head or the tail, count the rest,
//! and never read so much at once that the caller misses its deadline.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Most bytes read from one stream before looking at the clock and the limits again.
const READ_BUDGET_BYTES: usize = 1 << 20;

/// Which end of a stream to keep when it is longer than the buffer.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Keep {
    Head(usize),
    Tail(usize),
}

pub(crate) struct Stream {
    pub file: File,
    keep: Keep,
    pub buf: Vec<u8>,
    pub total: u64,
    pub open: bool,
}

impl Stream {
    pub fn new(fd: OwnedFd, keep: Keep) -> io::Result<Stream> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(Stream {
            file: File::from(fd),
            keep,
            buf: Vec::new(),
            total: 0,
            open: true,
        })
    }

    /// Reads what is available now, at most [`READ_BUDGET_BYTES`] so a flood cannot keep
    /// the caller from its deadline and limit checks; marks the stream closed at end of file.
    pub fn read_available(&mut self) {
        let mut chunk = [0u8; 64 << 10];
        let mut budget = READ_BUDGET_BYTES;
        while budget > 0 {
            match self.file.read(&mut chunk) {
                Ok(0) => {
                    self.open = false;
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.total += n as u64;
                    match self.keep {
                        Keep::Head(cap) => {
                            let room = cap.saturating_sub(self.buf.len());
                            self.buf.extend_from_slice(&chunk[..n.min(room)]);
                        }
                        Keep::Tail(cap) => {
                            self.buf.extend_from_slice(&chunk[..n]);
                            if self.buf.len() > cap {
                                self.buf.drain(..self.buf.len() - cap);
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.open = false;
                    return;
                }
            }
        }
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: the same descriptor; the flags are the ones just read plus O_NONBLOCK.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
