//! The RTDE wire protocol (Real-Time Data Exchange, protocol version 2), as Universal
//! Robots' RTDE guide and their Python client (`rtde/rtde.py`, `rtde/serialize.py`)
//! define it: TCP port 30004, every packet a big-endian `u16` size (header included),
//! a `u8` command and a payload.
//!
//! Both ends live here: [`Request`] is what a client sends, [`Reply`] what the controller
//! sends, so the driver and the emulator share one encoder and one decoder. Data packages
//! carry values in the order of a negotiated [`Recipe`]; [`field_type`] is the
//! controller's table of variable names and types. Every malformed packet decodes to an
//! [`RtdeError`], never a panic.
//!
//! - this file: the constants, the errors, packet framing and the payload reader;
//! - [`fields`]: the variables' types and values, the field table, recipes;
//! - [`messages`]: the requests and replies, each with its payload.

use std::io::{self, Read, Write};

use thiserror::Error;

mod fields;
mod messages;

pub use fields::{field_type, Direction, Recipe, Register, Type, Value};
pub use messages::{DataPackage, Reply, Request, TextMessage, Version};
/// The controller's RTDE port.
pub const PORT: u16 = 30004;
/// The protocol version loho speaks.
pub const PROTOCOL_VERSION: u16 = 2;
/// "There is a maximum limit of 2048 bytes to represent the list of inputs/outputs field
/// names" (RTDE guide).
pub const MAX_NAMES: usize = 2048;
/// The largest packet either end accepts: a setup request with the longest name list. A
/// peer announcing more is not speaking RTDE.
pub const MAX_PACKET: usize = MAX_NAMES + 64;

/// Command bytes (`class Command` of the Python client).
pub mod command {
    pub const REQUEST_PROTOCOL_VERSION: u8 = b'V';
    pub const GET_URCONTROL_VERSION: u8 = b'v';
    pub const TEXT_MESSAGE: u8 = b'M';
    pub const DATA_PACKAGE: u8 = b'U';
    pub const SETUP_OUTPUTS: u8 = b'O';
    pub const SETUP_INPUTS: u8 = b'I';
    pub const START: u8 = b'S';
    pub const PAUSE: u8 = b'P';
}

/// What the controller answers for a name it does not know, and for an input another
/// client already writes.
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const IN_USE: &str = "IN_USE";

#[derive(Debug, Error)]
pub enum RtdeError {
    #[error("RTDE connection: {0}")]
    Io(#[from] io::Error),
    #[error("the peer closed the RTDE connection")]
    Closed,
    #[error("RTDE packet size {0} is below its 3-byte header")]
    Undersized(u16),
    #[error("RTDE packet of {0} bytes is larger than any RTDE packet ({MAX_PACKET})")]
    Oversized(usize),
    #[error("RTDE packet '{}' is {got} bytes, shorter than its fields", *command as char)]
    Short { command: u8, got: usize },
    #[error("RTDE packet '{}' has {extra} bytes after its fields", *command as char)]
    Trailing { command: u8, extra: usize },
    #[error("unknown RTDE command byte {0:#04x}")]
    UnknownCommand(u8),
    #[error("expected RTDE '{}', got '{}'", *expected as char, *got as char)]
    Unexpected { expected: u8, got: u8 },
    #[error("unknown RTDE type {0:?}")]
    UnknownType(String),
    #[error("RTDE text is not UTF-8")]
    Text,
    #[error("RTDE data package for recipe {got}, expected recipe {expected}")]
    Recipe { expected: u8, got: u8 },
    #[error("RTDE value {index} is {got}, the recipe says {expected}")]
    ValueType {
        index: usize,
        expected: &'static str,
        got: &'static str,
    },
    #[error("the controller refused: {0}")]
    Refused(String),
}

/// One packet on the wire: header and payload.
pub fn encode(command: u8, payload: &[u8]) -> Result<Vec<u8>, RtdeError> {
    let size = payload.len() + 3;
    if size > MAX_PACKET {
        return Err(RtdeError::Oversized(size));
    }
    let mut out = Vec::with_capacity(size);
    out.extend((size as u16).to_be_bytes());
    out.push(command);
    out.extend(payload);
    Ok(out)
}

/// Writes one packet (one `write_all`, so a packet is never interleaved with another
/// writer's on a shared socket).
pub fn write_packet(w: &mut impl Write, command: u8, payload: &[u8]) -> Result<(), RtdeError> {
    w.write_all(&encode(command, payload)?)?;
    Ok(())
}

/// Reads one packet: its command and payload. A size below the header or above
/// [`MAX_PACKET`] is an error before any payload is read.
pub fn read_packet(r: &mut impl Read) -> Result<(u8, Vec<u8>), RtdeError> {
    let mut header = [0u8; 3];
    read_exact(r, &mut header)?;
    let size = u16::from_be_bytes([header[0], header[1]]);
    if size < 3 {
        return Err(RtdeError::Undersized(size));
    }
    if size as usize > MAX_PACKET {
        return Err(RtdeError::Oversized(size as usize));
    }
    let mut payload = vec![0; size as usize - 3];
    read_exact(r, &mut payload)?;
    Ok((header[2], payload))
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), RtdeError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => RtdeError::Closed,
        _ => RtdeError::Io(e),
    })
}

/// Reads big-endian fields off a payload; running short is an error, not a panic.
struct Cursor<'a> {
    command: u8,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(command: u8, buf: &'a [u8]) -> Self {
        Self {
            command,
            buf,
            pos: 0,
        }
    }
    fn short(&self) -> RtdeError {
        RtdeError::Short {
            command: self.command,
            got: self.buf.len(),
        }
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RtdeError> {
        let Some(b) = self.buf.get(self.pos..self.pos + n) else {
            return Err(self.short());
        };
        self.pos += n;
        Ok(b)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RtdeError> {
        Ok(self.bytes(N)?.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, RtdeError> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, RtdeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, RtdeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, RtdeError> {
        Ok(f64::from_be_bytes(self.array()?))
    }
    fn rest(&mut self) -> &'a [u8] {
        let r = &self.buf[self.pos..];
        self.pos = self.buf.len();
        r
    }
    /// A comma-joined list (names or types); empty payload, empty list.
    fn names(&mut self) -> Result<Vec<String>, RtdeError> {
        let text = std::str::from_utf8(self.rest()).map_err(|_| RtdeError::Text)?;
        Ok(if text.is_empty() {
            vec![]
        } else {
            text.split(',').map(str::to_string).collect()
        })
    }
    fn finish(&self) -> Result<(), RtdeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(RtdeError::Trailing {
                command: self.command,
                extra,
            }),
        }
    }
}
