//! "Did you mean ...?" for names the user typed.

/// The candidate closest to `word`, if one is close enough to be a likely typo.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (c, strsim::levenshtein(&word_lower, &c.to_lowercase())))
        .filter(|(c, d)| *d <= (c.chars().count().max(word.chars().count()) / 3).max(1))
        .min_by_key(|(_, d)| *d)
        .map(|(c, _)| c)
}

/// `" (did you mean `x`?)"`, or nothing when no candidate is close.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates).map_or_else(String::new, |c| format!(" (did you mean `{c}`?)"))
}

/// Adds a did-you-mean to serde's "unknown field `x`, expected one of `a`, `b`" (and "unknown
/// variant") messages, wherever they appear in `message`.
pub fn enrich_serde_message(message: &str) -> String {
    let mut lines: Vec<String> = message.lines().map(str::to_string).collect();
    for line in &mut lines {
        for marker in ["unknown field `", "unknown variant `"] {
            let Some(start) = line.find(marker) else { continue };
            let rest = &line[start + marker.len()..];
            let Some(end) = rest.find('`') else { continue };
            let word = rest[..end].to_string();
            let Some(expected_at) = rest.find("expected") else { continue };
            // "expected one of `a`, `b`" (serde) or "expected one of a, b" (serde-saphyr).
            let expected = rest[expected_at + "expected".len()..].trim_start();
            let expected = expected.strip_prefix("one of").unwrap_or(expected);
            let candidates: Vec<String> = expected
                .split([',', ' '])
                .map(|w| w.trim().trim_matches('`'))
                .filter(|w| !w.is_empty() && *w != "or")
                .map(str::to_string)
                .collect();
            let hint = did_you_mean(&word, candidates.iter().map(String::as_str));
            if !hint.is_empty() && !line.contains("did you mean") {
                line.push_str(&hint);
            }
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_close_names_only() {
        assert_eq!(closest("sourcs", ["name", "sources", "models"]), Some("sources"));
        assert_eq!(closest("daily_revnue", ["daily_revenue", "orders"]), Some("daily_revenue"));
        assert_eq!(closest("zzz", ["sources", "models"]), None);
    }

    #[test]
    fn enriches_unknown_field_messages() {
        let msg = "unknown field `sourcs`, expected one of `name`, `sources`, `models`";
        assert_eq!(
            enrich_serde_message(msg),
            "unknown field `sourcs`, expected one of `name`, `sources`, `models` (did you mean `sources`?)"
        );
        let msg = "unknown variant `parquett`, expected one of `parquet`, `csv`, `json`";
        assert!(enrich_serde_message(msg).ends_with("(did you mean `parquet`?)"));
        let msg = "unknown field `delimeter`, expected one of delimiter, header";
        assert!(enrich_serde_message(msg).ends_with("(did you mean `delimiter`?)"));
        assert_eq!(enrich_serde_message("other"), "other");
    }
}
