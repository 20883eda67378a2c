//! PostgreSQL's binary NUMERIC: base-10000 digits with a weight, a sign and a display scale.
//!
//! Input is an unscaled integer in decimal text (`-12345`) and Arrow's scale (2 → `-123.45`),
//! which covers Decimal128, Decimal256 and UInt64 exactly.

/// The base-10000 digits of `unscaled × 10^-scale`, with the weight of the first one.
fn digits(unscaled: &str, scale: i8) -> (bool, i16, Vec<i16>, u16) {
    let (negative, raw) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    let mut text = raw.trim_start_matches('0').to_string();
    let mut scale = scale as i32;
    if scale < 0 {
        text.push_str(&"0".repeat((-scale) as usize));
        scale = 0;
    }
    let scale = scale as usize;
    if text.len() <= scale {
        text = format!("{}{text}", "0".repeat(scale - text.len() + 1));
    }
    let (int_part, frac_part) = text.split_at(text.len() - scale);
    // Integer digits grouped from the right, fraction digits from the left.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_text = format!("{}{int_part}", "0".repeat(int_pad));
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_text = format!("{frac_part}{}", "0".repeat(frac_pad));
    let group = |chunk: &[u8]| chunk.iter().fold(0i16, |acc, d| acc * 10 + (d - b'0') as i16);
    let mut groups: Vec<i16> = int_text.as_bytes().chunks(4).map(group).collect();
    let mut weight = groups.len() as i16 - 1;
    groups.extend(frac_text.as_bytes().chunks(4).map(group));
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let negative = negative && !groups.is_empty();
    (negative, weight, groups, scale as u16)
}

/// The base-10000 digits of a NUMERIC, most significant first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Groups {
    digits: [i16; 24],
    len: usize,
    weight: i16,
    negative: bool,
    dscale: u16,
}

macro_rules! split_groups {
    ($ty:ty, $abs:expr, $scale:expr) => {{
        let a: $ty = $abs;
        let s: u32 = $scale;
        let p: $ty = (10 as $ty).pow(s);
        let (mut ip, mut fp) = (a / p, a % p);
        let nfrac = s.div_ceil(4) as usize;
        let mut frac = [0i16; 10];
        if nfrac > 0 {
            // The last fraction group holds the remaining 1 to 4 digits, padded on the right.
            let real = s - (nfrac as u32 - 1) * 4;
            let unit: $ty = (10 as $ty).pow(real);
            frac[nfrac - 1] = ((fp % unit) * (10 as $ty).pow(4 - real)) as i16;
            fp /= unit;
            for g in frac[..nfrac - 1].iter_mut().rev() {
                *g = (fp % 10_000) as i16;
                fp /= 10_000;
            }
        }
        let mut int = [0i16; 12];
        let mut nint = 0;
        while ip > 0 {
            int[nint] = (ip % 10_000) as i16;
            ip /= 10_000;
            nint += 1;
        }
        (int, nint, frac, nfrac)
    }};
}

impl Groups {
    /// The digits of `value × 10^-scale` for a Decimal128 (or any integer, with scale 0).
    /// Negative scales (more digits than this holds) go through [`encode`] instead.
    pub fn from_i128(value: i128, scale: i8) -> Groups {
        debug_assert!(scale >= 0, "negative scales use the text path");
        let scale = scale.max(0);
        let abs = value.unsigned_abs();
        let s = scale as u32;
        // 64-bit arithmetic (divisions by constants become multiplications) whenever it fits.
        let (int, nint, frac, nfrac) = if abs <= u64::MAX as u128 && s <= 19 {
            split_groups!(u64, abs as u64, s)
        } else {
            split_groups!(u128, abs, s)
        };
        let mut out =
            Groups { digits: [0; 24], len: 0, weight: nint as i16 - 1, negative: value < 0, dscale: s as u16 };
        for g in int[..nint].iter().rev().chain(&frac[..nfrac]) {
            out.digits[out.len] = *g;
            out.len += 1;
        }
        out.normalize();
        out
    }

    /// Drops leading zero groups (lowering the weight) and trailing ones; zero is positive.
    fn normalize(&mut self) {
        let leading = self.digits[..self.len].iter().take_while(|g| **g == 0).count();
        self.digits.copy_within(leading..self.len, 0);
        self.len -= leading;
        self.weight -= leading as i16;
        while self.len > 0 && self.digits[self.len - 1] == 0 {
            self.len -= 1;
        }
        if self.len == 0 {
            self.weight = 0;
            self.negative = false;
        }
    }

    /// The encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        8 + 2 * self.len
    }

    /// Writes the binary NUMERIC into `out`, which is exactly [`Self::encoded_len`] long.
    pub fn write(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&(self.len as i16).to_be_bytes());
        out[2..4].copy_from_slice(&self.weight.to_be_bytes());
        out[4..6].copy_from_slice(&(if self.negative { 0x4000u16 } else { 0 }).to_be_bytes());
        out[6..8].copy_from_slice(&self.dscale.to_be_bytes());
        for (i, g) in self.digits[..self.len].iter().enumerate() {
            out[8 + 2 * i..10 + 2 * i].copy_from_slice(&g.to_be_bytes());
        }
    }
}

/// The encoded size in bytes.
pub fn encoded_len(unscaled: &str, scale: i8) -> usize {
    8 + 2 * digits(unscaled, scale).2.len()
}

/// Appends the binary NUMERIC for `unscaled × 10^-scale` to `out`.
pub fn encode(unscaled: &str, scale: i8, out: &mut Vec<u8>) -> Result<(), String> {
    let (negative, weight, groups, dscale) = digits(unscaled, scale);
    if groups.len() > i16::MAX as usize {
        return Err(format!("{unscaled}e-{scale} has too many digits for NUMERIC"));
    }
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(unscaled: &str, scale: i8) -> (bool, i16, Vec<i16>, u16) {
        digits(unscaled, scale)
    }

    #[test]
    fn digits_weights_and_scales() {
        assert_eq!(parts("12345", 2), (false, 0, vec![123, 4500], 2)); // 123.45
        assert_eq!(parts("-12345", 2), (true, 0, vec![123, 4500], 2));
        assert_eq!(parts("0", 2), (false, 0, vec![], 2));
        assert_eq!(parts("-0", 0), (false, 0, vec![], 0));
        assert_eq!(parts("5", 3), (false, -1, vec![50], 3)); // 0.005
        assert_eq!(parts("100000000", 0), (false, 2, vec![1], 0)); // 1 0000 0000
        assert_eq!(parts("12", -2), (false, 0, vec![1200], 0)); // 1200
        assert_eq!(parts("99999999999999999999999999999999999999", 0).2.len(), 10);
        assert_eq!(parts("1", 38), (false, -10, vec![100], 38)); // 1e-38
    }

    #[test]
    fn integer_path_matches_text_path() {
        let cases: [(i128, i8); 14] = [
            (12345, 2),
            (-12345, 2),
            (0, 2),
            (5, 3),
            (100_000_000, 0),
            (1, 38),
            (-1, 37),
            (i128::MAX, 0),
            (i128::MIN + 1, 38),
            (99_999_999_999_999_999, 18),
            (123, 1),
            (10_000, 4),
            (1_000_000_000_000_000_000_000, 19),
            (-987_654_321, 9),
        ];
        for (value, scale) in cases {
            let (negative, weight, digits, dscale) = digits(&value.to_string(), scale);
            let g = Groups::from_i128(value, scale);
            assert_eq!(
                (g.negative, g.weight, &g.digits[..g.len], g.dscale),
                (negative, weight, digits.as_slice(), dscale),
                "{value}e-{scale}"
            );
            let mut text = Vec::new();
            encode(&value.to_string(), scale, &mut text).unwrap();
            let mut fast = vec![0u8; g.encoded_len()];
            g.write(&mut fast);
            assert_eq!(fast, text, "{value}e-{scale}");
        }
    }

    #[test]
    fn negative_scales_keep_every_digit() {
        // 123 × 10^100 = 123 × 10000^25: one digit group, weight 25.
        let (negative, weight, groups, dscale) = parts("123", -100);
        assert_eq!((negative, weight, groups, dscale), (false, 25, vec![123], 0));
    }

    #[test]
    fn encodes_header_then_digits() {
        let mut out = Vec::new();
        encode("-12345", 2, &mut out).unwrap();
        assert_eq!(out, [0, 2, 0, 0, 0x40, 0, 0, 2, 0, 123, 0x11, 0x94]);
        assert_eq!(encoded_len("-12345", 2), out.len());
    }
}
