//! The format of a source from its file name, or from the files of a local directory (the one
//! place the config reads the file system besides the config file itself).

use super::Format;

/// The format of the first data file in a local directory (hive layouts included), skipping
/// hidden and `_`-prefixed entries such as `_SUCCESS`. Symbolic links are followed, loops are not.
pub fn sniff_directory(location: &str) -> Option<Format> {
    let hidden =
        |e: &walkdir::DirEntry| e.depth() > 0 && e.file_name().to_str().is_some_and(|n| n.starts_with(['.', '_']));
    walkdir::WalkDir::new(location)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !hidden(e))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .find_map(|e| infer_format(&e.path().to_string_lossy()))
}

/// The format a path's extension implies (`.csv.gz` is csv).
pub fn infer_format(location: &str) -> Option<Format> {
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
        assert_eq!(infer_format("/d/orders/"), None);
    }
}
