//! Options taken out of a PostgreSQL connection string before tokio-postgres reads the rest:
//! those dfpipe handles itself (TLS, and libpq options its driver does not know), in either of
//! libpq's forms.

/// Takes `keys` out of `dsn` (URL or `key=value` form): the string without them, and the taken
/// pairs in order. A keyword string that does not read is returned whole, for tokio-postgres
/// to report.
pub fn take(dsn: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        split_url(dsn, keys)
    } else {
        split_keywords(dsn, keys)
    }
}

/// Splits `postgres://…?a=b&c=…` into the URL without `keys` and the taken pairs.
fn split_url(dsn: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = dsn.split_once('?') else { return (dsn.to_string(), Vec::new()) };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let decoded = url::form_urlencoded::parse(pair.as_bytes()).next();
        match decoded {
            Some((key, value)) if keys.contains(&key.as_ref()) => taken.push((key.into_owned(), value.into_owned())),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    (rest, taken)
}

/// Splits `host=… sslmode='…' …` (libpq's keyword form, values optionally single-quoted with
/// backslash escapes) into the string without `keys` and the taken pairs. A string it
/// cannot read is returned whole, for tokio-postgres to report.
fn split_keywords(dsn: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let chars: Vec<char> = dsn.chars().collect();
    let mut kept = String::new();
    let mut taken = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i == chars.len() {
            return (kept.trim_end().to_string(), taken);
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        skip_space(&mut i);
        if i == chars.len() || chars[i] != '=' {
            return (dsn.to_string(), Vec::new());
        }
        i += 1;
        skip_space(&mut i);
        let mut value = String::new();
        let quoted = i < chars.len() && chars[i] == '\'';
        if quoted {
            i += 1;
        }
        loop {
            match chars.get(i) {
                None if quoted => return (dsn.to_string(), Vec::new()),
                None => break,
                Some('\'') if quoted => {
                    i += 1;
                    break;
                }
                Some(c) if c.is_whitespace() && !quoted => break,
                Some('\\') if i + 1 < chars.len() => {
                    value.push(chars[i + 1]);
                    i += 2;
                }
                Some(c) => {
                    value.push(*c);
                    i += 1;
                }
            }
        }
        if keys.contains(&key.as_str()) {
            taken.push((key, value));
        } else {
            kept.extend(&chars[start..i]);
            kept.push(' ');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

    #[test]
    fn keys_leave_url_and_keyword_dsns() {
        let (rest, taken) =
            split_url("postgres://u:p@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fca.pem", TLS);
        assert_eq!(rest, "postgres://u:p@h:5/db?application_name=x");
        assert_eq!(taken, [("sslmode".into(), "verify-full".into()), ("sslrootcert".into(), "/ca.pem".into())]);
        let (rest, taken) = split_keywords("host=h sslmode = require password='a b\\'c' sslrootcert='/my ca.pem'", TLS);
        assert_eq!(rest, "host=h password='a b\\'c'");
        assert_eq!(taken, [("sslmode".into(), "require".into()), ("sslrootcert".into(), "/my ca.pem".into())]);
        assert_eq!(split_keywords("host='unterminated", TLS).0, "host='unterminated");
    }
}
