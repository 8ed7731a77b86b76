//! The packets themselves: what a client sends ([`Request`]), what the controller sends
//! ([`Reply`]), and the payloads they carry.

use super::{command, Cursor, RtdeError};

/// A data package: its recipe id and the packed values (decoded by [`Recipe::values`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DataPackage {
    pub recipe: u8,
    pub bytes: Vec<u8>,
}

/// A text message (protocol v2 layout).
#[derive(Debug, Clone, PartialEq)]
pub struct TextMessage {
    pub message: String,
    pub source: String,
    /// 0 exception, 1 error, 2 warning, 3 info.
    pub level: u8,
}

impl TextMessage {
    pub const EXCEPTION: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const WARNING: u8 = 2;
    pub const INFO: u8 = 3;
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    ProtocolVersion(u16),
    ControllerVersion,
    SetupOutputs { frequency: f64, names: Vec<String> },
    SetupInputs { names: Vec<String> },
    Start,
    Pause,
    Data(DataPackage),
    Text(TextMessage),
}

/// The controller's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub bugfix: u32,
    pub build: u32,
}

impl Version {
    /// The rate of the controller's real-time loop: 500 Hz on e-Series (major 5 and
    /// later), 125 Hz on CB3.
    pub fn rate_hz(&self) -> f64 {
        if self.major > 3 {
            500.0
        } else {
            125.0
        }
    }
}

/// What the controller sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    ProtocolVersion { accepted: bool },
    ControllerVersion(Version),
    SetupOutputs { recipe: u8, types: Vec<String> },
    SetupInputs { recipe: u8, types: Vec<String> },
    Start { accepted: bool },
    Pause { accepted: bool },
    Data(DataPackage),
    Text(TextMessage),
}

impl Request {
    pub fn command(&self) -> u8 {
        use command::*;
        match self {
            Request::ProtocolVersion(_) => REQUEST_PROTOCOL_VERSION,
            Request::ControllerVersion => GET_URCONTROL_VERSION,
            Request::SetupOutputs { .. } => SETUP_OUTPUTS,
            Request::SetupInputs { .. } => SETUP_INPUTS,
            Request::Start => START,
            Request::Pause => PAUSE,
            Request::Data(_) => DATA_PACKAGE,
            Request::Text(_) => TEXT_MESSAGE,
        }
    }

    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::ProtocolVersion(v) => out.extend(v.to_be_bytes()),
            Request::ControllerVersion | Request::Start | Request::Pause => {}
            Request::SetupOutputs { frequency, names } => {
                out.extend(frequency.to_be_bytes());
                out.extend(names.join(",").as_bytes());
            }
            Request::SetupInputs { names } => out.extend(names.join(",").as_bytes()),
            Request::Data(p) => p.put(&mut out),
            Request::Text(t) => t.put(&mut out),
        }
        out
    }

    pub fn decode(command: u8, payload: &[u8]) -> Result<Request, RtdeError> {
        use command::*;
        let mut r = Cursor::new(command, payload);
        let req = match command {
            REQUEST_PROTOCOL_VERSION => Request::ProtocolVersion(r.u16()?),
            GET_URCONTROL_VERSION => Request::ControllerVersion,
            SETUP_OUTPUTS => Request::SetupOutputs {
                frequency: r.f64()?,
                names: r.names()?,
            },
            SETUP_INPUTS => Request::SetupInputs { names: r.names()? },
            START => Request::Start,
            PAUSE => Request::Pause,
            DATA_PACKAGE => Request::Data(DataPackage::take(&mut r)?),
            TEXT_MESSAGE => Request::Text(TextMessage::take(&mut r)?),
            other => return Err(RtdeError::UnknownCommand(other)),
        };
        r.finish()?;
        Ok(req)
    }
}

impl Reply {
    pub fn command(&self) -> u8 {
        use command::*;
        match self {
            Reply::ProtocolVersion { .. } => REQUEST_PROTOCOL_VERSION,
            Reply::ControllerVersion(_) => GET_URCONTROL_VERSION,
            Reply::SetupOutputs { .. } => SETUP_OUTPUTS,
            Reply::SetupInputs { .. } => SETUP_INPUTS,
            Reply::Start { .. } => START,
            Reply::Pause { .. } => PAUSE,
            Reply::Data(_) => DATA_PACKAGE,
            Reply::Text(_) => TEXT_MESSAGE,
        }
    }

    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Reply::ProtocolVersion { accepted }
            | Reply::Start { accepted }
            | Reply::Pause { accepted } => out.push(*accepted as u8),
            Reply::ControllerVersion(v) => {
                for x in [v.major, v.minor, v.bugfix, v.build] {
                    out.extend(x.to_be_bytes());
                }
            }
            Reply::SetupOutputs { recipe, types } | Reply::SetupInputs { recipe, types } => {
                out.push(*recipe);
                out.extend(types.join(",").as_bytes());
            }
            Reply::Data(p) => p.put(&mut out),
            Reply::Text(t) => t.put(&mut out),
        }
        out
    }

    pub fn decode(command: u8, payload: &[u8]) -> Result<Reply, RtdeError> {
        use command::*;
        let mut r = Cursor::new(command, payload);
        let reply = match command {
            REQUEST_PROTOCOL_VERSION => Reply::ProtocolVersion {
                accepted: r.u8()? != 0,
            },
            GET_URCONTROL_VERSION => Reply::ControllerVersion(Version {
                major: r.u32()?,
                minor: r.u32()?,
                bugfix: r.u32()?,
                build: r.u32()?,
            }),
            SETUP_OUTPUTS => Reply::SetupOutputs {
                recipe: r.u8()?,
                types: r.names()?,
            },
            SETUP_INPUTS => Reply::SetupInputs {
                recipe: r.u8()?,
                types: r.names()?,
            },
            START => Reply::Start {
                accepted: r.u8()? != 0,
            },
            PAUSE => Reply::Pause {
                accepted: r.u8()? != 0,
            },
            DATA_PACKAGE => Reply::Data(DataPackage::take(&mut r)?),
            TEXT_MESSAGE => Reply::Text(TextMessage::take(&mut r)?),
            other => return Err(RtdeError::UnknownCommand(other)),
        };
        r.finish()?;
        Ok(reply)
    }
}

impl DataPackage {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(self.recipe);
        out.extend(&self.bytes);
    }
    fn take(r: &mut Cursor) -> Result<DataPackage, RtdeError> {
        Ok(DataPackage {
            recipe: r.u8()?,
            bytes: r.rest().to_vec(),
        })
    }
}

impl TextMessage {
    fn put(&self, out: &mut Vec<u8>) {
        for s in [&self.message, &self.source] {
            // A u8 length: longer texts are cut at a character boundary.
            let mut n = s.len().min(255);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            out.push(n as u8);
            out.extend(&s.as_bytes()[..n]);
        }
        out.push(self.level);
    }
    fn take(r: &mut Cursor) -> Result<TextMessage, RtdeError> {
        let text = |r: &mut Cursor| -> Result<String, RtdeError> {
            let n = r.u8()? as usize;
            String::from_utf8(r.bytes(n)?.to_vec()).map_err(|_| RtdeError::Text)
        };
        Ok(TextMessage {
            message: text(r)?,
            source: text(r)?,
            level: r.u8()?,
        })
    }
}
