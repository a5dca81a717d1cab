//! Numbers appended to text digit by digit: the QR path and the stored deltas write
//! thousands of small numbers, where the formatting machinery costs several times the
//! digits themselves.

/// Appends `n` in decimal, as `n.to_string()` would print it.
pub(crate) fn push_number(text: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // n % 10 < 10: the cast keeps every value.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[at..].iter().for_each(|&d| text.push(char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_decimal() {
        for n in [0, 7, 10, 99, 100, 185, 999, 1000, 12_345, usize::MAX] {
            let mut text = String::new();
            push_number(&mut text, n);
            assert_eq!(text, n.to_string());
        }
    }
}
