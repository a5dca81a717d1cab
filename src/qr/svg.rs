//! The SVG of a [`Symbol`]: a white square and one path that strokes each horizontal run
//! of dark modules, in module units.
//!
//! A run of dark modules is one `h` segment of a 1-module-wide stroke along the middle of
//! its row, so a row costs one absolute move and one short relative move per run instead of
//! one square per module; `shape-rendering="crispEdges"` keeps the edges of neighbouring
//! rows from blurring into seams.

use std::fmt::Write as _;

use super::symbol::Symbol;
use super::{QUIET_ZONE_MODULES, SVG_MODULE_PX};
use crate::digits::push_number;

/// The SVG text, without an XML prolog (so it can be inlined in HTML).
pub(super) fn render(symbol: &Symbol) -> String {
    let quiet = usize::try_from(QUIET_ZONE_MODULES).unwrap_or(4);
    let side = symbol.width() + 2 * quiet;
    let px = side * usize::try_from(SVG_MODULE_PX).unwrap_or(8);
    let mut svg = String::with_capacity(256 + 8 * side * side / 10);
    // Writing to a String cannot fail.
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{px}" height="{px}" viewBox="0 0 {side} {side}" shape-rendering="crispEdges"><path fill="#fff" d="M0 0h{side}v{side}H0z"/><path stroke="#000" d=""##
    );
    for (y, row) in symbol.rows().iter().enumerate() {
        let mut end = None;
        for (start, len) in row.runs(symbol.width()) {
            match end {
                // The first run of a row: an absolute move to the middle of the row.
                None => {
                    svg.push('M');
                    push_number(&mut svg, start + quiet);
                    svg.push(' ');
                    push_number(&mut svg, y + quiet);
                    svg.push_str(".5h");
                }
                // The next ones: a move along the row from where the last one ended.
                Some(e) => {
                    svg.push('m');
                    push_number(&mut svg, start - e);
                    svg.push_str(" 0h");
                }
            }
            push_number(&mut svg, len);
            end = Some(start + len);
        }
    }
    svg.push_str(r#""/></svg>"#);
    svg
}
