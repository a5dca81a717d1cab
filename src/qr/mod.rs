//! QR codes for payment requests: SVG for web pages, text for terminals, PNG (feature
//! `qr-png`).
//!
//! Every code uses error-correction level **M** (15 % of the symbol can be damaged or
//! covered) and a **quiet zone of 4 modules** of light margin on each side, as the QR
//! standard asks. That combination is what phone wallets read reliably from a screen,
//! including a glossy one seen at an angle; higher levels make the code denser for no gain
//! on screens, and a thinner margin makes scanners miss the finder patterns next to
//! surrounding page content.
//!
//! The payload should be UPPERCASE where it can be: uppercase letters, digits and
//! `$%*+-./:` fit the QR *alphanumeric* mode (5.5 bits a character instead of 8), so a
//! BOLT11 invoice takes about a third fewer modules.
//! [`UnifiedUri::to_uri`](crate::request::unified::UnifiedUri::to_uri) already writes
//! invoices and bech32 addresses in uppercase; these functions encode the text exactly as
//! given (base58 addresses are case-sensitive and must not be uppercased).
//!
//! ```
//! use bitcoin_checkout::qr;
//!
//! let svg = qr::render_svg("bitcoin:BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU?amount=0.0015")?;
//! assert!(svg.starts_with("<svg"));
//! let info = qr::symbol_info("bitcoin:BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU?amount=0.0015")?;
//! assert_eq!(info.modules, 17 + 4 * u32::from(info.version));
//! # Ok::<(), bitcoin_checkout::request::RequestError>(())
//! ```

mod line;
mod svg;
mod symbol;

use qrcode::render::unicode;
use qrcode::types::QrError;
use qrcode::{EcLevel, QrCode};

use crate::request::RequestError;
use symbol::Symbol;

/// Light margin around every code, in modules (the QR standard's minimum).
pub const QUIET_ZONE_MODULES: u32 = 4;

/// Pixels per module of the SVG before any CSS scaling.
const SVG_MODULE_PX: u32 = 8;

/// The largest module size `render_png` accepts: it bounds a PNG to 5 920 px a side.
pub const MAX_MODULE_PX: u32 = 32;

/// The size of the code for a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolInfo {
    /// QR version, 1 to 40.
    pub version: u8,
    /// Modules per side, without the quiet zone (`17 + 4 × version`).
    pub modules: u32,
}

/// The version and size of the code [`render_svg`] and the others draw for `data`.
pub fn symbol_info(data: &str) -> Result<SymbolInfo, RequestError> {
    let symbol = encode_symbol(data)?;
    Ok(SymbolInfo {
        version: symbol.version(),
        modules: u32::try_from(symbol.width()).unwrap_or(u32::MAX),
    })
}

/// An SVG image (black on white, 8 px a module, with a `viewBox` in modules), without the
/// `<?xml …?>` prolog so it can be inlined in HTML; CSS `width`/`height` scale it without
/// blur. The dark modules are one path (a stroke along each run of them), a few times
/// smaller than one square per module.
pub fn render_svg(data: &str) -> Result<String, RequestError> {
    Ok(svg::render(&encode_symbol(data)?))
}

/// The code as text for a terminal, two modules per character (`▀ ▄ █`).
///
/// Drawn for the usual light-on-dark terminal: the light modules and the quiet zone are
/// printed as blocks in the text colour, the dark modules as blanks. On a dark-on-light
/// terminal the code shows inverted, which many but not all phone scanners read.
pub fn render_terminal(data: &str) -> Result<String, RequestError> {
    Ok(encode(data)?
        .render::<unicode::Dense1x2>()
        .quiet_zone(true)
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .build())
}

/// A grayscale PNG, `module_px` pixels a module (1 to [`MAX_MODULE_PX`]).
#[cfg(feature = "qr-png")]
pub fn render_png(data: &str, module_px: u32) -> Result<Vec<u8>, RequestError> {
    use image::{ExtendedColorType, ImageEncoder, Luma, codecs::png::PngEncoder};

    if !(1..=MAX_MODULE_PX).contains(&module_px) {
        return Err(RequestError::InvalidModuleSize(module_px));
    }
    let image = encode(data)?
        .render::<Luma<u8>>()
        .quiet_zone(true)
        .module_dimensions(module_px, module_px)
        .build();
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::L8,
        )
        .map_err(|e| RequestError::PngEncoding(e.to_string()))?;
    Ok(png)
}

/// The smallest level-M code holding `data`, as `qrcode` draws it (the terminal and PNG
/// renderers, which are not on a page's hot path).
fn encode(data: &str) -> Result<QrCode, RequestError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).map_err(qr_error)
}

/// The same symbol, with the mask chosen by the faster scorer of [`symbol`].
fn encode_symbol(data: &str) -> Result<Symbol, RequestError> {
    Symbol::encode(data.as_bytes()).map_err(qr_error)
}

fn qr_error(e: QrError) -> RequestError {
    match e {
        QrError::DataTooLong => RequestError::QrDataTooLong,
        other => RequestError::QrEncoding(other.to_string()),
    }
}
