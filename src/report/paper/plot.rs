//! Rendering one figure to PNG and SVG with `plotters`. Text is drawn with a DejaVu Sans subset
//! embedded in the binary (`assets/fonts`, Bitstream Vera licence), so the PNGs come out the same
//! on a machine without system fonts; the SVGs name the font family for the viewer.
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-subset.ttf");

/// The family name figures ask for (registered to the embedded font).
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters (once per process).
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is a fixed, tested asset: it always parses.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// A drawing that can be rendered on any plotters backend.
pub trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws onto `root`; errors as text.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String>;
}

/// Turns a plotters error into text.
pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Renders `fig` to `<stem>.png` and `<stem>.svg`; returns both paths.
///
/// # Errors
/// Drawing or I/O errors.
pub fn save(fig: &impl Figure, stem: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    let (w, h) = fig.size();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| Error::data(&png, err(e)))?;
        fig.draw(&root).map_err(|e| Error::data(&png, format!("drawing the figure: {e}")))?;
        root.present().map_err(|e| Error::data(&png, err(e)))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).expect("buffer of w × h × 3 bytes");
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| Error::data(&svg, err(e)))?;
        fig.draw(&root).map_err(|e| Error::data(&svg, format!("drawing the figure: {e}")))?;
        root.present().map_err(|e| Error::data(&svg, err(e)))?;
    }
    crate::files::write_png(&png, &img)?;
    crate::files::write_bytes_atomic(&svg, text)?;
    Ok(vec![png, svg])
}
