//! What a harness run returns: the [`Outcome`] of a command and the [`Failure`] it reports.

use std::fmt;

#[cfg(doc)]
use super::harness::Harness;
use crate::error::Error;
use crate::event::SessionEvent;
use crate::testkit::model::Mismatch;

/// The outcome of a command: its events, or the error it was refused with.
pub type Outcome = Result<Vec<SessionEvent>, Error>;

/// A disagreement found by the [`Harness`]: where in the run, and what.
#[derive(Debug, Clone)]
pub struct Failure(Box<FailureDetails>);

#[derive(Debug, Clone)]
struct FailureDetails {
    step: Option<usize>,
    command: Option<String>,
    mismatch: Mismatch,
    log: Vec<String>,
}

impl Failure {
    pub(crate) fn new(
        step: Option<usize>,
        command: Option<String>,
        mismatch: Mismatch,
        log: Vec<String>,
    ) -> Self {
        Self(Box::new(FailureDetails {
            step,
            command,
            mismatch,
            log,
        }))
    }

    /// The step (from 1) at which it was found; `None` when creating the session.
    pub fn step(&self) -> Option<usize> {
        self.0.step
    }

    /// The command of that step, as debug text.
    pub fn command(&self) -> Option<&str> {
        self.0.command.as_deref()
    }

    /// The field that differs, and both values.
    pub fn mismatch(&self) -> &Mismatch {
        &self.0.mismatch
    }

    /// What happened before, one line per operation.
    pub fn log(&self) -> &[String] {
        &self.0.log
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        match (&d.step, &d.command) {
            (Some(step), Some(command)) => write!(f, "step {step} ({command}): {}", d.mismatch)?,
            _ => write!(f, "creating the session: {}", d.mismatch)?,
        }
        if !d.log.is_empty() {
            f.write_str("\nhistory:")?;
            for line in &d.log {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}
