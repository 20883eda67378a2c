//! Credentials kept out of messages, logs and results: wherever a URL appears in a text,
//! `scheme://user:password@host` shows as `scheme://user:***@host` and every query value (a
//! signature, a token) as `***`; a libpq keyword `password=…` shows as `password=***`.

use std::borrow::Cow;

/// Characters that end a URL inside a message.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '`' | '\'' | '"' | '<' | '>' | ')' | ']' | '}' | ',' | ';')
}

/// `text` with the passwords and query values of the URLs in it, and `password=` values, masked.
pub fn credentials(text: &str) -> Cow<'_, str> {
    masked(text, &|_| "***".to_string())
}

/// [`credentials`], each secret replaced by as many `*` as it has characters: for a config
/// line shown with a caret under a column, which must not move.
pub fn credentials_same_width(text: &str) -> Cow<'_, str> {
    masked(text, &|secret| "*".repeat(secret.chars().count()))
}

/// `text` with each secret replaced by `mask(secret)`; a secret masked already (all `*`) stays
/// as it is, so masking twice changes nothing.
fn masked<'a>(text: &'a str, mask: &dyn Fn(&str) -> String) -> Cow<'a, str> {
    let mask = |secret: &str| match secret.chars().all(|c| c == '*') {
        true => secret.to_string(),
        false => mask(secret),
    };
    let mask: &dyn Fn(&str) -> String = &mask;
    let lower = text.to_ascii_lowercase();
    if !text.contains("://") && !lower.contains("password") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        out.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        let end = rest.find(ends_url).unwrap_or(rest.len());
        out.push_str(&mask_url(&rest[..end], mask));
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(mask_password_keywords(&out, mask))
}

/// `password=value` (libpq's keyword form, any case, spaces around `=`, the value quoted or not)
/// with the value masked.
fn mask_password_keywords(text: &str, mask: &dyn Fn(&str) -> String) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find("password") {
        let key_end = from + found + "password".len();
        from = key_end;
        let after = &text[key_end..];
        let Some(eq) = after.find(|c: char| c != ' ') else { break };
        if !after[eq..].starts_with('=') {
            continue;
        }
        let value_start = key_end + eq + 1 + after[eq + 1..].len() - after[eq + 1..].trim_start_matches(' ').len();
        let value = &text[value_start..];
        let len = match value.strip_prefix('\'') {
            Some(quoted) => quoted.find('\'').map_or(value.len(), |q| q + 2),
            None => {
                value.find(|c: char| c.is_whitespace() || matches!(c, '"' | '`' | ',' | '}')).unwrap_or(value.len())
            }
        };
        if len == 0 {
            continue;
        }
        out.push_str(&text[copied..value_start]);
        out.push_str(&mask(&value[..len]));
        copied = value_start + len;
        from = copied;
    }
    out.push_str(&text[copied..]);
    out
}

/// One URL after its `scheme://`: the password and the query values masked.
fn mask_url(url: &str, mask: &dyn Fn(&str) -> String) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, tail) = url.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    match authority.rfind('@') {
        Some(at) => {
            let user_info = &authority[..at];
            match user_info.find(':') {
                Some(colon) => {
                    out.push_str(&user_info[..=colon]);
                    out.push_str(&mask(&user_info[colon + 1..]));
                }
                None => out.push_str(user_info),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let Some(q) = tail.find('?') else {
        out.push_str(tail);
        return out;
    };
    out.push_str(&tail[..=q]);
    let (query, fragment) = match tail[q + 1..].find('#') {
        Some(h) => tail[q + 1..].split_at(h),
        None => (&tail[q + 1..], ""),
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => format!("{key}={}", mask(value)),
            None => pair.to_string(),
        })
        .collect();
    out.push_str(&masked.join("&"));
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::{credentials, credentials_same_width};

    #[test]
    fn passwords_and_query_values_are_masked_where_the_url_appears() {
        assert_eq!(
            credentials("cannot post to http://user:HUNTER2@127.0.0.1:9/api: refused"),
            "cannot post to http://user:***@127.0.0.1:9/api: refused"
        );
        assert_eq!(
            credentials("source `t` (https://u:P@ss@h/t.csv?sig=SECRET&se=2030): PROPFIND https://u:P@ss@h/"),
            "source `t` (https://u:***@h/t.csv?sig=***&se=***): PROPFIND https://u:***@h/"
        );
        assert_eq!(credentials("s3://bucket/key.parquet and no secret"), "s3://bucket/key.parquet and no secret");
        assert_eq!(credentials("http://user@h/x?flag#frag"), "http://user@h/x?flag#frag");
        assert_eq!(credentials("no url: a:b@c"), "no url: a:b@c");
    }

    #[test]
    fn libpq_password_keywords_are_masked() {
        assert_eq!(credentials("host=h password=s3cret user=u"), "host=h password=*** user=u");
        assert_eq!(credentials("host=h PASSWORD = 'a b' user=u"), "host=h PASSWORD = *** user=u");
        assert_eq!(credentials("the password is wrong"), "the password is wrong");
    }

    #[test]
    fn a_config_line_keeps_its_width() {
        let line = r#"  pg: { kind: postgres, dsn: "postgresql://u:S3cr3t@h:5432/db", copy_stream: 2 }"#;
        let masked = credentials_same_width(line);
        assert_eq!(masked, r#"  pg: { kind: postgres, dsn: "postgresql://u:******@h:5432/db", copy_stream: 2 }"#);
        assert_eq!(masked.len(), line.len());
    }
}
