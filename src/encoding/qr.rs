//! QR rendering of the binary ticket: byte mode, error correction level L
//! (the smallest symbol; a 49-byte ticket is version 3, a 68-byte locked one 4).

use qrcode::{Color, EcLevel, QrCode, Version};

use super::{EncodingError, Ticket};

/// Quiet zone, in modules, around PNG renderings.
const QUIET: usize = 4;

impl Ticket {
    fn qr(&self) -> Result<QrCode, EncodingError> {
        QrCode::with_error_correction_level(self.to_bytes(), EcLevel::L).map_err(|e| EncodingError::Qr(e.to_string()))
    }

    /// The QR symbol version chosen for this ticket.
    pub fn qr_version(&self) -> Result<i16, EncodingError> {
        match self.qr()?.version() {
            Version::Normal(v) | Version::Micro(v) => Ok(v),
        }
    }

    /// The QR code as Unicode half blocks with a quiet zone, drawn for a
    /// terminal with a **dark background**: light modules are printed as
    /// blocks and dark modules left as background, so a phone camera sees
    /// dark-on-light.
    pub fn qr_terminal(&self) -> Result<String, EncodingError> {
        use qrcode::render::unicode::Dense1x2;
        Ok(self
            .qr()?
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build())
    }

    /// The QR code as an SVG document.
    pub fn qr_svg(&self) -> Result<String, EncodingError> {
        use qrcode::render::svg;
        Ok(self.qr()?.render::<svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build())
    }

    /// The QR code as a grayscale PNG, `module_px` pixels per module (1..=64).
    pub fn qr_png(&self, module_px: u32) -> Result<Vec<u8>, EncodingError> {
        if !(1..=64).contains(&module_px) {
            return Err(EncodingError::Qr("module size must be 1..=64 pixels".into()));
        }
        let code = self.qr()?;
        let n = code.width();
        let colors = code.to_colors();
        let px = module_px as usize;
        let side = (n + 2 * QUIET) * px;
        let mut img = vec![255u8; side * side];
        for (i, c) in colors.iter().enumerate() {
            if *c == Color::Dark {
                let (mx, my) = (i % n + QUIET, i / n + QUIET);
                for y in my * px..(my + 1) * px {
                    img[y * side + mx * px..y * side + (mx + 1) * px].fill(0);
                }
            }
        }
        let mut out = Vec::new();
        {
            let side32 = u32::try_from(side).map_err(|_| EncodingError::Qr("image too large".into()))?;
            let mut enc = png::Encoder::new(&mut out, side32, side32);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(|e| EncodingError::Qr(e.to_string()))?;
            w.write_image_data(&img).map_err(|e| EncodingError::Qr(e.to_string()))?;
        }
        Ok(out)
    }
}
