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
    fn encodes_header_then_digits() {
        let mut out = Vec::new();
        encode("-12345", 2, &mut out).unwrap();
        assert_eq!(out, [0, 2, 0, 0, 0x40, 0, 0, 2, 0, 123, 0x11, 0x94]);
        assert_eq!(encoded_len("-12345", 2), out.len());
    }
}
