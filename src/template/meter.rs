//! Bounds on one handlebars render: the text it writes, the work it does (one
//! tick per block body rendered, so nested `each` loops are counted), and a
//! deadline (the step's or the workflow's timeout). A render runs on one
//! thread, so the meter of the render in progress lives in a thread local.

use std::cell::RefCell;
use std::io::Write;
use std::time::Instant;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason,
};

/// Longest text one rendered template may produce.
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;

/// Most block bodies (an `each` item, an `if` branch) one render may render.
pub const MAX_RENDER_WORK: usize = 1_000_000;

/// Name of the internal helper placed at the start of every block body.
pub(super) const TICK_HELPER: &str = "pallet:tick";

/// Why a render was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderLimit {
    /// The text would be longer than [`MAX_RENDERED_BYTES`].
    Output,
    /// More than [`MAX_RENDER_WORK`] block bodies.
    Work,
    /// The deadline (a timeout of the step or of the workflow) passed.
    Deadline,
}

impl std::fmt::Display for RenderLimit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderLimit::Output => write!(
                formatter,
                "the rendered text is longer than {} (the limit)",
                crate::error::describe_bytes(MAX_RENDERED_BYTES)
            ),
            RenderLimit::Work => write!(
                formatter,
                "rendering takes more than {MAX_RENDER_WORK} block iterations (the limit)"
            ),
            RenderLimit::Deadline => {
                formatter.write_str("the step's or the workflow's timeout passed while rendering")
            }
        }
    }
}

struct Meter {
    work_left: usize,
    deadline: Option<Instant>,
    stopped: Option<RenderLimit>,
}

thread_local! {
    static METER: RefCell<Option<Meter>> = const { RefCell::new(None) };
}

/// Renders template `name` under the bounds; a stop gives the limit that was hit.
pub(super) fn render(
    registry: &Handlebars<'static>,
    name: &str,
    context: &Context,
    deadline: Option<Instant>,
) -> Result<String, Stopped> {
    METER.with(|meter| {
        *meter.borrow_mut() = Some(Meter {
            work_left: MAX_RENDER_WORK,
            deadline,
            stopped: None,
        })
    });
    let mut output = Bounded(Vec::new());
    let result = registry.render_with_context_to_write(name, context, &mut output);
    let meter = METER.with(|meter| meter.borrow_mut().take());
    if let Some(limit) = meter.and_then(|meter| meter.stopped) {
        return Err(Stopped::Limit(limit));
    }
    result.map_err(|error| Stopped::Error(Box::new(error)))?;
    String::from_utf8(output.0).map_err(|_| Stopped::Limit(RenderLimit::Output))
}

pub(super) enum Stopped {
    Limit(RenderLimit),
    Error(Box<handlebars::RenderError>),
}

fn stop(limit: RenderLimit) -> std::io::Error {
    METER.with(|meter| {
        if let Some(meter) = meter.borrow_mut().as_mut() {
            meter.stopped.get_or_insert(limit);
        }
    });
    std::io::Error::other(limit.to_string())
}

/// The render's output, refusing to grow past [`MAX_RENDERED_BYTES`].
struct Bounded(Vec<u8>);

impl Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + bytes.len() > MAX_RENDERED_BYTES {
            return Err(stop(RenderLimit::Output));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts one unit of work and checks the deadline; writes nothing.
pub(super) struct TickHelper;

impl HelperDef for TickHelper {
    fn call<'registry: 'context, 'context>(
        &self,
        _: &Helper<'context>,
        _: &'registry Handlebars<'registry>,
        _: &'context Context,
        _: &mut RenderContext<'registry, 'context>,
        _: &mut dyn Output,
    ) -> HelperResult {
        let verdict = METER.with(|meter| {
            let mut meter = meter.borrow_mut();
            let Some(meter) = meter.as_mut() else {
                return Ok(());
            };
            meter.work_left = meter.work_left.checked_sub(1).ok_or(RenderLimit::Work)?;
            // Reading the clock costs more than a tick: every 1024th.
            let late = meter.work_left % 1024 == 0
                && meter
                    .deadline
                    .is_some_and(|deadline| Instant::now() > deadline);
            if late {
                return Err(RenderLimit::Deadline);
            }
            Ok(())
        });
        verdict.map_err(|limit| RenderErrorReason::Other(stop(limit).to_string()).into())
    }
}
