//! What libpq fills in that a connection string leaves out: `PGUSER`, `PGDATABASE`, `PGAPPNAME`,
//! `PGPASSWORD`, and last the password file (`PGPASSFILE`, else `~/.pgpass`), as `psql` does —
//! a DSN without a password is how PostgreSQL users keep secrets out of config files.

use std::path::PathBuf;

use tokio_postgres::Config;
use tokio_postgres::config::Host;

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// Fills in the user, database, application name and password `config` lacks, from the
/// environment and then the password file.
pub fn fill(config: &mut Config) {
    fill_from(config, var, std::env::home_dir());
}

/// [`fill`] with the variables read by `var` and the home directory `home`.
fn fill_from(config: &mut Config, var: impl Fn(&str) -> Option<String>, home: Option<PathBuf>) {
    if config.get_user().is_none()
        && let Some(user) = var("PGUSER").or_else(|| var("USER"))
    {
        config.user(user);
    }
    if config.get_dbname().is_none()
        && let Some(db) = var("PGDATABASE")
    {
        config.dbname(db);
    }
    if config.get_application_name().is_none()
        && let Some(name) = var("PGAPPNAME")
    {
        config.application_name(name);
    }
    if config.get_password().is_some() {
        return;
    }
    let file = var("PGPASSFILE").map(PathBuf::from).or_else(|| home.map(|h| h.join(".pgpass")));
    if let Some(password) = var("PGPASSWORD").or_else(|| from_password_file(config, file?)) {
        config.password(password);
    }
}

/// The password the password file `path` holds for `config`'s first host, port, database and
/// user (the first line that matches, `*` matching anything).
fn from_password_file(config: &Config, path: PathBuf) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        // libpq matches a socket directory as `localhost`.
        _ => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = config.get_user().unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or(user);
    let wanted = [host.as_str(), port.as_str(), dbname, user];
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let fields = split_fields(line);
        let [h, p, d, u, password] = fields.as_slice() else { return None };
        let matches =
            [h, p, d, u].iter().zip(wanted).all(|(field, want)| field.as_str() == "*" || field.as_str() == want);
        matches.then(|| password.clone())
    })
}

/// A password-file line's fields: split at `:`, with `\:` and `\\` read as `:` and `\`.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().expect("one field").extend(chars.next()),
            ':' => fields.push(String::new()),
            _ => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(dsn: &str, vars: &[(&str, &str)], pgpass: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".pgpass"), pgpass).unwrap();
        let mut config: Config = dsn.parse().unwrap();
        let var = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        fill_from(&mut config, var, Some(dir.path().to_path_buf()));
        config
    }

    #[test]
    fn a_dsn_without_a_password_takes_pgpassword_then_the_password_file() {
        let pgpass = "# comment\nother:5432:*:ana:wrong\ndb.example:6543:sales:ana:right\n*:*:*:*:fallback\n";
        let password = |c: &Config| c.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        let dsn = "postgres://ana@db.example:6543/sales";
        assert_eq!(password(&filled(dsn, &[], pgpass)).as_deref(), Some("right"));
        assert_eq!(password(&filled(dsn, &[("PGPASSWORD", "env")], pgpass)).as_deref(), Some("env"));
        assert_eq!(
            password(&filled("postgres://ana:given@db.example:6543/sales", &[], pgpass)).as_deref(),
            Some("given")
        );
        assert_eq!(password(&filled("postgres://bo@db.example/x", &[], pgpass)).as_deref(), Some("fallback"));
        assert_eq!(password(&filled(dsn, &[], "other:*:*:*:no\n")), None);
        // The user and database a DSN leaves out come from PGUSER and PGDATABASE.
        let config = filled("postgres://db.example", &[("PGUSER", "cy"), ("PGDATABASE", "dw")], "");
        assert_eq!((config.get_user(), config.get_dbname()), (Some("cy"), Some("dw")));
        // PGAPPNAME names the session unless the DSN does.
        assert_eq!(filled("host=h", &[("PGAPPNAME", "etl")], "").get_application_name(), Some("etl"));
        let named = filled("host=h application_name=mine", &[("PGAPPNAME", "etl")], "");
        assert_eq!(named.get_application_name(), Some("mine"));
    }

    #[test]
    fn password_file_fields_unescape_colons_and_backslashes() {
        assert_eq!(
            split_fields(r"db.example:5432:*:ana:pa\:ss\\word"),
            ["db.example", "5432", "*", "ana", r"pa:ss\word"]
        );
    }
}
