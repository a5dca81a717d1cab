//! [`Symbol`]: the modules of one level-M QR code.
//!
//! The `qrcode` crate encodes the data (its segment optimiser, Reed-Solomon codewords and
//! module placement); the mask is chosen here. The QR standard picks the mask whose
//! symbol scores the lowest penalty under four rules (runs, 2×2 blocks, finder-like
//! patterns, balance), and `qrcode` scores them module by module, which is most of the
//! time it takes to draw a code. Here every mask is applied and scored on [`Line`]s, 64
//! modules a word. The rules, their weights and the order ties are broken in are those of
//! `qrcode` 0.14, so the symbol is the one `qrcode` draws, module for module (a test
//! compares them over many payloads), only faster.

use qrcode::bits::encode_auto;
use qrcode::canvas::{Canvas, Module};
use qrcode::ec::construct_codewords;
use qrcode::types::{EcLevel, QrError, Version};

use super::line::Line;

/// A QR code's modules, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Symbol {
    version: u8,
    width: usize,
    /// Dark modules, one line per row.
    rows: Vec<Line>,
}

/// The format information's 15 bits, most significant first, at these (x, y) places
/// (negative counts from the far edge): beside the top-left finder...
const FORMAT_MAIN: [(i16, i16); 15] = [
    (0, 8),
    (1, 8),
    (2, 8),
    (3, 8),
    (4, 8),
    (5, 8),
    (7, 8),
    (8, 8),
    (8, 7),
    (8, 5),
    (8, 4),
    (8, 3),
    (8, 2),
    (8, 1),
    (8, 0),
];
/// ...and split between the other two.
const FORMAT_SIDE: [(i16, i16); 15] = [
    (8, -1),
    (8, -2),
    (8, -3),
    (8, -4),
    (8, -5),
    (8, -6),
    (8, -7),
    (-8, 8),
    (-7, 8),
    (-6, 8),
    (-5, 8),
    (-4, 8),
    (-3, 8),
    (-2, 8),
    (-1, 8),
];

/// Every mask's pattern repeats after 12 modules in both directions.
const PERIOD: usize = 12;

impl Symbol {
    /// The smallest level-M symbol holding `data`.
    pub(super) fn encode(data: &[u8]) -> Result<Self, QrError> {
        let bits = encode_auto(data, EcLevel::M)?;
        let version = bits.version();
        let (codewords, ec) = construct_codewords(&bits.into_bytes(), version, EcLevel::M)?;
        let mut canvas = Canvas::new(version, EcLevel::M);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&codewords, &ec);
        let width = usize::try_from(version.width()).map_err(|_| QrError::InvalidVersion)?;
        let number = match version {
            Version::Normal(v) => u8::try_from(v).map_err(|_| QrError::InvalidVersion)?,
            Version::Micro(_) => return Err(QrError::InvalidVersion),
        };

        // The unmasked symbol, and where a mask flips modules (data and error correction;
        // never the function patterns, whose format area is reserved light).
        let mut dark = Plane::new(width);
        let mut data_area = Plane::new(width);
        for y in 0..width {
            for x in 0..width {
                let module = canvas.get(coord(x), coord(y));
                if matches!(module, Module::Unmasked(_) | Module::Empty) {
                    data_area.set(x, y);
                }
                if module.is_dark() {
                    dark.set(x, y);
                }
            }
        }

        let mut best: Option<(u32, Plane)> = None;
        for mask in 0..8 {
            let masked = dark.masked(&data_area, mask, width);
            let score = masked.penalty(width);
            // Strictly lower: the first of equal masks wins, as in `qrcode`.
            if best.as_ref().is_none_or(|(s, _)| score < *s) {
                best = Some((score, masked));
            }
        }
        let rows = best.map(|(_, plane)| plane.rows).unwrap_or_default();
        Ok(Self {
            version: number,
            width,
            rows,
        })
    }

    /// The version, 1 to 40.
    pub(super) fn version(&self) -> u8 {
        self.version
    }

    /// Modules per side, without the quiet zone.
    pub(super) fn width(&self) -> usize {
        self.width
    }

    /// The dark modules of each row.
    pub(super) fn rows(&self) -> &[Line] {
        &self.rows
    }

    /// Whether module (x, y) is dark.
    #[cfg(test)]
    pub(super) fn is_dark(&self, x: usize, y: usize) -> bool {
        self.rows.get(y).is_some_and(|row| row.get(x))
    }
}

/// Coordinates fit an `i16`: a symbol is at most 177 modules wide.
fn coord(i: usize) -> i16 {
    i16::try_from(i).unwrap_or(i16::MAX)
}

/// A symbol as rows and, for the vertical rules, as columns.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plane {
    rows: Vec<Line>,
    cols: Vec<Line>,
}

impl Plane {
    fn new(width: usize) -> Self {
        Self {
            rows: vec![Line::default(); width],
            cols: vec![Line::default(); width],
        }
    }

    fn set(&mut self, x: usize, y: usize) {
        self.rows[y].set(x);
        self.cols[x].set(y);
    }

    fn put(&mut self, x: usize, y: usize, on: bool) {
        self.rows[y].put(x, on);
        self.cols[x].put(y, on);
    }

    /// This (unmasked) symbol under `mask`, with the format information for it.
    fn masked(&self, data_area: &Plane, mask: u8, width: usize) -> Plane {
        // Row y's pattern is that of row y % 12, column x's that of column x % 12.
        let row_patterns: Vec<Line> = (0..PERIOD.min(width))
            .map(|y| pattern_line(width, |x| flips(mask, x, y)))
            .collect();
        let col_patterns: Vec<Line> = (0..PERIOD.min(width))
            .map(|x| pattern_line(width, |y| flips(mask, x, y)))
            .collect();
        let apply = |lines: &[Line], area: &[Line], patterns: &[Line]| -> Vec<Line> {
            lines
                .iter()
                .zip(area)
                .enumerate()
                .map(|(i, (line, area))| *line ^ (*area & patterns[i % PERIOD]))
                .collect()
        };
        let mut plane = Plane {
            rows: apply(&self.rows, &data_area.rows, &row_patterns),
            cols: apply(&self.cols, &data_area.cols, &col_patterns),
        };
        let format = format_bits(mask);
        let at = |c: i16| -> usize {
            let c = if c < 0 { c + coord(width) } else { c };
            usize::try_from(c).unwrap_or(0)
        };
        for places in [&FORMAT_MAIN, &FORMAT_SIDE] {
            for (i, &(x, y)) in places.iter().enumerate() {
                plane.put(at(x), at(y), format >> (14 - i) & 1 == 1);
            }
        }
        plane
    }

    /// The mask penalty of this symbol (rules 1 to 4 as `qrcode` 0.14 counts them, less
    /// its constant for the three finder patterns themselves).
    fn penalty(&self, width: usize) -> u32 {
        let span = Line::span(width);
        let mut score = 0;
        let mut dark_modules = 0;
        for (rows, line) in [(true, &self.rows), (false, &self.cols)]
            .iter()
            .flat_map(|(is_rows, lines)| lines.iter().map(move |l| (*is_rows, l)))
        {
            let dark = *line;
            let light = !dark & span;
            score += runs_penalty(dark) + runs_penalty(light) + finder_penalty(dark);
            if rows {
                dark_modules += dark.count();
            }
        }
        for pair in self.rows.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (la, lb) = (!a & span, !b & span);
            let dark = a & a.next(1) & b & b.next(1);
            let light = la & la.next(1) & lb & lb.next(1);
            score += 3 * (dark.count() + light.count());
        }
        let total = u32::try_from(width * width).unwrap_or(u32::MAX).max(1);
        let ratio = dark_modules * 200 / total;
        score + ratio.abs_diff(100)
    }
}

/// Rule 1: each run of 5 + n modules of one colour scores 3 + n. The windows of five in a
/// run of L are L - 4, plus 2 for the run's start, make L - 2.
fn runs_penalty(colour: Line) -> u32 {
    let windows = colour & colour.next(1) & colour.next(2) & colour.next(3) & colour.next(4);
    let starts = windows & !windows.prev(1);
    windows.count() + 2 * starts.count()
}

/// Rule 3: each `dark light dark dark dark light dark` with four light modules (or the
/// edge) on either side scores 40. Outside the symbol a line is light (its pad).
fn finder_penalty(dark: Line) -> u32 {
    let light = !dark;
    let pattern = dark
        & light.next(1)
        & dark.next(2)
        & dark.next(3)
        & dark.next(4)
        & light.next(5)
        & dark.next(6);
    let before = light.prev(1) & light.prev(2) & light.prev(3) & light.prev(4);
    let after = light.next(7) & light.next(8) & light.next(9) & light.next(10);
    40 * (pattern & (before | after)).count()
}

/// A line of `width` modules set where `on` says.
fn pattern_line(width: usize, on: impl Fn(usize) -> bool) -> Line {
    let mut line = Line::default();
    for i in (0..width).filter(|&i| on(i)) {
        line.set(i);
    }
    line
}

/// Whether mask `mask` (0 to 7, the standard's numbers) flips module (x, y).
fn flips(mask: u8, x: usize, y: usize) -> bool {
    match mask {
        0 => (x + y).is_multiple_of(2),
        1 => y.is_multiple_of(2),
        2 => x.is_multiple_of(3),
        3 => (x + y).is_multiple_of(3),
        4 => (y / 2 + x / 3).is_multiple_of(2),
        5 => (x * y) % 2 + (x * y) % 3 == 0,
        6 => ((x * y) % 2 + (x * y) % 3).is_multiple_of(2),
        _ => ((x + y) % 2 + (x * y) % 3).is_multiple_of(2),
    }
}

/// The 15 format bits of level M with `mask`: 5 data bits, a BCH(15, 5) remainder, and
/// the standard's XOR mask so that no format is all light.
fn format_bits(mask: u8) -> u16 {
    // Level M is 00.
    let data = u16::from(mask & 0b111);
    let mut rem = data << 10;
    for bit in (10..15).rev() {
        if rem >> bit & 1 == 1 {
            rem ^= 0b101_0011_0111 << (bit - 10);
        }
    }
    ((data << 10) | rem) ^ 0b101_0100_0001_0010
}

#[cfg(test)]
mod tests {
    use super::*;
    use qrcode::QrCode;
    use qrcode::types::Color;

    /// The same modules as `qrcode` draws for `data`.
    fn assert_same_as_qrcode(data: &[u8]) {
        let ours = Symbol::encode(data).unwrap();
        let theirs = QrCode::with_error_correction_level(data, EcLevel::M).unwrap();
        assert_eq!(ours.width(), theirs.width(), "{data:?}");
        let colors = theirs.to_colors();
        for y in 0..ours.width() {
            for x in 0..ours.width() {
                assert_eq!(
                    ours.is_dark(x, y),
                    colors[y * ours.width() + x] == Color::Dark,
                    "module ({x}, {y}) of a {}-byte payload",
                    data.len()
                );
            }
        }
    }

    #[test]
    fn format_bits_match_the_standard_table() {
        // ISO/IEC 18004 table C.1, level M, masks 0 to 7.
        let table = [
            0x5412, 0x5125, 0x5e7c, 0x5b4b, 0x45f9, 0x40ce, 0x4f97, 0x4aa0,
        ];
        for (mask, want) in (0..8).zip(table) {
            assert_eq!(format_bits(mask), want, "mask {mask}");
        }
    }

    #[test]
    fn every_symbol_is_module_for_module_the_one_qrcode_draws() {
        // Lengths across every version band, alphanumeric and byte payloads.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
        for len in (1..2_300).step_by(37) {
            let alnum: Vec<u8> = (0..len)
                .map(|_| ALNUM[(next() % ALNUM.len() as u64) as usize])
                .collect();
            assert_same_as_qrcode(&alnum);
            let bytes: Vec<u8> = (0..len.min(2_300) / 2 + 1)
                .map(|_| b'a' + (next() % 26) as u8)
                .collect();
            assert_same_as_qrcode(&bytes);
        }
    }

    #[test]
    fn too_long_is_refused() {
        assert!(matches!(
            Symbol::encode(&[b'a'; 5_000]),
            Err(QrError::DataTooLong)
        ));
    }
}
