//! The format of a source from its file name, or from the files of a local directory (the one
//! place the config reads the file system besides the config file itself).

use super::Format;

/// The format of a local directory's data files (hive layouts included), skipping hidden and
/// `_`-prefixed entries such as `_SUCCESS`: the format most of its files have by extension
/// (`.parquet`, `.csv`, `.tsv`, `.json`, `.ndjson`, `.jsonl`, compressed or not). Other files
/// — a `README.txt`, notes — never decide it; files of another data format are reported, as
/// the source will skip them. Symbolic links are followed, loops are not.
pub fn sniff_directory(location: &str) -> Option<Format> {
    let hidden =
        |e: &walkdir::DirEntry| e.depth() > 0 && e.file_name().to_str().is_some_and(|n| n.starts_with(['.', '_']));
    let mut counts: Vec<(Format, usize, String)> = Vec::new();
    for entry in walkdir::WalkDir::new(location)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !hidden(e))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
    {
        let path = entry.path().to_string_lossy().into_owned();
        let Some(format) = infer_format(&path).filter(|_| !is_text_file(&path)) else { continue };
        match counts.iter_mut().find(|(f, _, _)| *f == format) {
            Some((_, n, _)) => *n += 1,
            None => counts.push((format, 1, path)),
        }
    }
    // The most files win; on a tie, the first found (in name order).
    let mut best: Option<&(Format, usize, String)> = None;
    for c in &counts {
        if best.is_none_or(|b| c.1 > b.1) {
            best = Some(c);
        }
    }
    // Files of other formats are reported when the source is listed (engine::source_files).
    Some(best?.0)
}

/// `.txt` files count as CSV when a source names one, never when a directory is sniffed.
fn is_text_file(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["", ".gz", ".bz2", ".xz", ".zst"].iter().any(|c| lower.ends_with(&format!(".txt{c}")))
}

/// The format a path's extension implies (`.csv.gz` is csv).
pub fn infer_format(location: &str) -> Option<Format> {
    // A URL's query (`?sig=…`) and fragment are not part of the file name.
    let location = match location.contains("://") {
        true => location.split(['?', '#']).next().unwrap_or(location),
        false => location,
    };
    let name = location.trim_end_matches('/').rsplit('/').next().unwrap_or(location).to_ascii_lowercase();
    let name = ["gz", "bz2", "xz", "zst"]
        .iter()
        .find_map(|c| name.strip_suffix(&format!(".{c}")).map(str::to_string))
        .unwrap_or(name);
    let ext = name.rsplit_once('.')?.1;
    match ext {
        "parquet" | "parq" | "pq" => Some(Format::Parquet),
        "csv" | "tsv" | "txt" => Some(Format::Csv),
        "json" | "ndjson" | "jsonl" => Some(Format::Json),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_names() {
        assert_eq!(infer_format("/d/orders/*.parquet"), Some(Format::Parquet));
        assert_eq!(infer_format("s3://b/x.csv.gz"), Some(Format::Csv));
        assert_eq!(infer_format("/d/x.ndjson"), Some(Format::Json));
        assert_eq!(infer_format("https://h/x.parquet?sig=abc#f"), Some(Format::Parquet));
        assert_eq!(infer_format("/d/orders/"), None);
    }

    #[test]
    fn directories_take_the_format_of_most_data_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["README.txt", "a.parquet", "b.parquet", "notes.csv", "_SUCCESS"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(sniff_directory(&dir.path().to_string_lossy()), Some(Format::Parquet));
        let only_text = tempfile::tempdir().unwrap();
        std::fs::write(only_text.path().join("README.txt"), b"x").unwrap();
        assert_eq!(sniff_directory(&only_text.path().to_string_lossy()), None);
    }
}
