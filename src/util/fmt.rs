//! Numbers, sizes and tables as people read them in a terminal, and writing them there when
//! the reader may have gone (`dfpipe run | head -1`).

/// `1.5 KiB`, `512.0 MiB`, `900 B` (binary units, one decimal).
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// `1234567` → `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Rows of cells as aligned columns two spaces apart, without borders; columns from
/// `right_from` on align right (figures), the others left.
pub fn table(rows: &[Vec<String>], right_from: usize) -> String {
    use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled).add_rows(rows);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if i >= right_from {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.lines().map(|line| line.trim_end().to_string() + "\n").collect()
}

/// Writes to standard output (`to_stderr`: standard error). A reader that has gone away (`dfpipe
/// run | head -1`) is no error: what it did not read is dropped, and the command goes on to
/// record its run; any other failure to write is logged.
pub fn write_stream(to_stderr: bool, args: std::fmt::Arguments) {
    use std::io::Write;
    let written = if to_stderr {
        std::io::stderr().lock().write_fmt(args)
    } else {
        let mut out = std::io::stdout().lock();
        out.write_fmt(args).and_then(|()| out.flush())
    };
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            tracing::warn!("cannot write to {}: {e}", if to_stderr { "standard error" } else { "standard output" })
        }
        _ => {}
    }
}

/// `print!` that a closed pipe does not stop (see [`write_stream`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::util::fmt::write_stream(false, format_args!($($arg)*)) };
}

/// `println!` that a closed pipe does not stop (see [`write_stream`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::util::fmt::write_stream(false, format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that a closed pipe does not stop (see [`write_stream`]).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::util::fmt::write_stream(true, format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(900), "900 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(1234567), "1,234,567");
    }

    #[test]
    fn tables_align() {
        let rows = vec![
            vec!["target".to_string(), "rows".to_string()],
            vec!["warehouse.daily".to_string(), "1,000".to_string()],
            vec!["x".to_string(), "7".to_string()],
        ];
        assert_eq!(table(&rows, 1), "target            rows\nwarehouse.daily  1,000\nx                    7\n");
    }
}
