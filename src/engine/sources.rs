//! Sources become DataFusion listing tables: a file, a glob, a (hive-partitioned) directory, or
//! the same on an object store. Each is checked before anything runs: a missing file or an
//! unreadable one is an error naming the source and its path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use crate::config::{Format, SourceConfig};
use crate::engine::new_files::FilesOnly;
use crate::engine::source_files;
use crate::engine::sql_types::sql_type_to_arrow;
use crate::error::{Error, Result, df_message};

/// Registers `source` in `ctx` under its name, after checking its files exist and can be read.
/// With `clean:` options, the files are registered as [`crate::engine::clean::raw_table`] and the name
/// is a view applying them; its SQL is returned.
pub async fn register(ctx: &SessionContext, source: &SourceConfig) -> Result<Option<String>> {
    let table = listing_table(ctx, source).await?;
    let fail = |e: datafusion::error::DataFusionError| source_error(source, &df_message(&e));
    let Some(clean) = &source.clean else {
        ctx.register_table(TableReference::bare(source.name.as_str()), table).map_err(fail)?;
        return Ok(None);
    };
    let schema = table.schema();
    ctx.register_table(TableReference::bare(crate::engine::clean::raw_table(&source.name)), table).map_err(fail)?;
    let sql = crate::engine::clean::view_sql(ctx, &source.name, &schema, clean)
        .await
        .map_err(|e| source_error(source, &e))?;
    let view = ctx.sql(&sql).await.map_err(fail)?.into_view();
    ctx.register_table(TableReference::bare(source.name.as_str()), view).map_err(fail)?;
    Ok(Some(sql))
}

fn source_error(source: &SourceConfig, msg: &str) -> Error {
    let msg = crate::util::redact::credentials(msg);
    Error::Source(format!("source `{}` ({}): {msg}", source.name, source.path))
}

/// Parses a location into a listing URL; globs are allowed in local paths and in URLs.
fn listing_url(location: &str) -> datafusion::error::Result<ListingTableUrl> {
    if !location.contains("://") {
        return ListingTableUrl::parse(location);
    }
    let has_glob = |s: &str| s.contains(['*', '?', '[']);
    match location.find("://").map(|i| i + 3).and_then(|start| {
        let rest = &location[start..];
        let first_glob = rest
            .split('/')
            .scan(0usize, |offset, seg| {
                let at = *offset;
                *offset += seg.len() + 1;
                Some((at, seg))
            })
            .find(|(_, seg)| has_glob(seg))?;
        Some(start + first_glob.0)
    }) {
        Some(split) => {
            let url = url::Url::parse(&location[..split])
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            let pattern = glob::Pattern::new(&location[split..])
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            ListingTableUrl::try_new(url, Some(pattern))
        }
        None => ListingTableUrl::parse(location),
    }
}

fn compression(source: &SourceConfig) -> FileCompressionType {
    let by_name = |name: &str| match name {
        "gzip" => FileCompressionType::GZIP,
        "bzip2" => FileCompressionType::BZIP2,
        "xz" => FileCompressionType::XZ,
        "zstd" => FileCompressionType::ZSTD,
        _ => FileCompressionType::UNCOMPRESSED,
    };
    match &source.options.compression {
        Some(name) => by_name(name),
        None => {
            // From the path's name, else from the extension the files are chosen by.
            let names = [Some(&source.location), source.options.extension.as_ref()];
            let lower: Vec<String> = names.into_iter().flatten().map(|n| n.to_ascii_lowercase()).collect();
            [(".gz", "gzip"), (".bz2", "bzip2"), (".xz", "xz"), (".zst", "zstd")]
                .iter()
                .find(|(ext, _)| lower.iter().any(|n| n.ends_with(ext)))
                .map_or(FileCompressionType::UNCOMPRESSED, |(_, name)| by_name(name))
        }
    }
}

fn file_format(source: &SourceConfig, compression: FileCompressionType, tab: bool) -> Arc<dyn FileFormat> {
    match source.format {
        Format::Parquet => Arc::new(ParquetFormat::default()),
        Format::Csv => Arc::new(csv_format(source, compression, tab)),
        Format::Json => {
            // Every line is read for its keys unless the source says otherwise: a key first
            // seen after a sample would be dropped without a word.
            let records = source.options.schema_infer_max_records.unwrap_or(usize::MAX);
            Arc::new(JsonFormat::default().with_file_compression_type(compression).with_schema_infer_max_rec(records))
        }
    }
}

/// The CSV format of `source`; `tab`: its files are `.tsv` (tab the default delimiter).
fn csv_format(source: &SourceConfig, compression: FileCompressionType, tab: bool) -> CsvFormat {
    let o = &source.options;
    let byte = |s: &Option<String>| s.as_ref().and_then(|s| s.bytes().next());
    let f = CsvFormat::default()
        .with_has_header(o.header.unwrap_or(true))
        .with_delimiter(byte(&o.delimiter).unwrap_or(if tab { b'\t' } else { b',' }))
        .with_quote(byte(&o.quote).unwrap_or(b'"'))
        .with_escape(byte(&o.escape))
        .with_comment(byte(&o.comment))
        // A value is NULL when the regex matches all of it (as DuckDB's `nullstr` and
        // PostgreSQL's `NULL` compare whole values); an empty field stays NULL too.
        .with_null_regex(o.null_regex.as_ref().map(|r| format!("^$|^(?:{r})$")))
        .with_newlines_in_values(o.newlines_in_values.unwrap_or(false))
        .with_file_compression_type(compression);
    match o.schema_infer_max_records {
        Some(n) => f.with_schema_infer_max_rec(n),
        None => f,
    }
}

/// Columns whose type inference saw only empty values (`Null`) are read as text: as `Null`
/// every value a later row holds would be lost (DuckDB reads such columns as `VARCHAR` too).
fn text_for_untyped(schema: SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| f.data_type() == &DataType::Null) {
        return schema;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Null => f.as_ref().clone().with_data_type(DataType::Utf8).with_nullable(true),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The file extension listing filters on when the source sets `options.extension` (with its
/// dot); empty otherwise (a single file, or files told apart by kind: [`source_files::of_format`]).
fn extension_filter(source: &SourceConfig) -> String {
    match &source.options.extension {
        Some(ext) if ext.starts_with('.') => ext.clone(),
        Some(ext) => format!(".{ext}"),
        None => String::new(),
    }
}

pub(crate) async fn listing_table(ctx: &SessionContext, source: &SourceConfig) -> Result<Arc<dyn TableProvider>> {
    let fail = |msg: String| source_error(source, &msg);
    let url =
        listing_url(&source.location).map_err(|e| fail(format!("not a valid path or URL: {}", df_message(&e))))?;
    let state = ctx.state();
    // A directory's or a glob's files are told apart by name (any case, compressed or not),
    // not by one extension: files of the format that a fixed extension would skip are read,
    // or refused.
    let globbed = source.location.contains(['*', '?', '[']);
    let by_kind = (url.is_collection() || globbed) && source.options.extension.is_none();
    let mut extension = extension_filter(source);
    let store = state.runtime_env().object_store(&url).map_err(|e| fail(df_message(&e)))?;
    let mut listed = source_files::list(&state, store.as_ref(), &url, &extension)
        .await
        .map_err(|e| fail(format!("cannot list files: {e}")))?;
    let tsv = source.location.to_ascii_lowercase().contains(".tsv")
        || source
            .options
            .extension
            .as_ref()
            .is_some_and(|e| e.trim_start_matches('.').to_ascii_lowercase().starts_with("tsv"));
    let (compression, tab) = match by_kind {
        true => {
            let declared = source.options.compression.as_ref().map(|_| compression(source));
            let files = std::mem::take(&mut listed.files);
            let found = source_files::of_format(files, source.format, declared, &url, globbed).map_err(fail)?;
            // DataFusion's listing with the files' shared suffix reads just them, and the hidden
            // files with it (`_SUCCESS` has none); without one, it lists every file.
            listed.narrowed = match found.suffix() {
                Some(suffix) => listed.skipped.iter().any(|f| f.location.as_ref().ends_with(suffix)),
                None => true,
            };
            extension = found.suffix().unwrap_or_default().to_string();
            listed.files = found.files;
            (found.compression, found.tab)
        }
        false => (compression(source), tsv),
    };
    let mut options = ListingOptions::new(file_format(source, compression, tab))
        .with_file_extension(extension.clone())
        .with_session_config_options(state.config());
    if by_kind && extension.is_empty() {
        // Files of one kind spelt differently (`a.parquet`, `b.PARQUET`): DataFusion lists every
        // file, and would read a footer's statistics from a `README.md` before the table is
        // narrowed to the data files.
        options = options.with_collect_stat(false);
    }
    if listed.files.is_empty() {
        // A glob says which files it wants; a directory's are those of the source's format.
        let what = match (by_kind && !globbed, extension.is_empty()) {
            (true, _) => format!("{} files", source.format.name()),
            (false, true) => "files".to_string(),
            (false, false) => format!("{extension} files"),
        };
        return Err(fail(format!(
            "no {what} found at {}; check the path (relative paths start at the project directory)",
            source.location
        )));
    }
    // Empty files add no columns, and a reader may fail on them; they are still listed.
    let nonempty: Vec<_> = listed.files.iter().filter(|f| f.size > 0).cloned().collect();
    if nonempty.is_empty() {
        return Err(fail(format!(
            "{} empty (0 bytes): a source needs a file with its columns (a header, or data)",
            if listed.files.len() == 1 {
                "its file is".to_string()
            } else {
                format!("all {} files are", listed.files.len())
            }
        )));
    }
    let format = options.format.clone();
    if let Format::Csv = source.format
        && source.options.header.unwrap_or(true)
    {
        let csv = csv_format(source, compression, tab);
        source_files::check_same_header(&state, &store, &csv, &url, &nonempty).await.map_err(fail)?;
    }

    let mut escaped = BTreeSet::new();
    if url.is_collection() {
        let partitions = source_files::partitions(&url, &listed.files)
            .map_err(|e| fail(format!("cannot read the partition layout: {e}")))?;
        escaped = partitions.escaped;
        options =
            options.with_table_partition_cols(partitions.columns.into_iter().map(|p| (p, DataType::Utf8)).collect());
    }
    let inferred = match format.infer_schema(&state, &store, &nonempty).await {
        Ok(schema) => schema,
        Err(e) => {
            // The files do not merge as inferred: read one by one, with the declared types.
            let mut declared = BTreeMap::new();
            for (column, sql_type) in &source.schema {
                if let Ok(data_type) = sql_type_to_arrow(ctx, sql_type).await {
                    declared.insert(column.clone(), data_type);
                }
            }
            match source_files::merge_by_file(&state, &store, &format, &url, &nonempty, &declared).await {
                Ok(schema) if !schema.fields().is_empty() => Arc::new(schema),
                Ok(_) => return Err(fail(format!("cannot read it as {}: {}", source.format.name(), df_message(&e)))),
                Err(why) => {
                    // A byte order mark, or a key that changes JSON type between lines: say so,
                    // not that the file may be one array.
                    if (&source.format, compression) == (&Format::Json, FileCompressionType::UNCOMPRESSED)
                        && let Some(why) = json_unreadable(&store, &url.object_store(), &nonempty).await
                    {
                        return Err(fail(format!("cannot read it as json: {why}")));
                    }
                    let hint = match source.format {
                        Format::Json => " (dfpipe reads newline-delimited JSON: one object per line, not one array)",
                        Format::Csv => " (check `delimiter`, `header` and `quote` in the source's options)",
                        Format::Parquet => "",
                    };
                    let hint = if why.contains(" does not match ") { "" } else { hint };
                    return Err(fail(format!("cannot read it as {}: {why}{hint}", source.format.name())));
                }
            }
        }
    };
    let inferred = text_for_untyped(inferred);
    let inferred = match (&source.format, compression) {
        (Format::Json, FileCompressionType::UNCOMPRESSED) => {
            crate::engine::json_keys::in_file_order(inferred, &store, &nonempty[0]).await
        }
        _ => inferred,
    };
    let schema = apply_schema_overrides(ctx, source, inferred).await?;
    let decimals = clean_decimals(ctx, source, &schema).await;
    let (file_schema, typed) = reread(source, &schema, &decimals);
    let root = url.object_store();
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(file_schema);
    let mut table: Arc<dyn TableProvider> = Arc::new(ListingTable::try_new(config).map_err(|e| fail(df_message(&e)))?);
    if listed.narrowed {
        let keep = listed.files.iter().map(|f| format!("{}{}", root.as_str(), f.location)).collect();
        table = Arc::new(FilesOnly::new(table, keep));
    }
    if typed.is_empty() && escaped.is_empty() {
        return Ok(table);
    }
    let null_regex = source.options.null_regex.as_deref().filter(|_| matches!(source.format, Format::Csv));
    typed_view(table, &typed, null_regex, &escaped).map_err(|e| fail(df_message(&e)))
}

/// Why the uncompressed JSON `files` (in the store at `root`) do not read, when it is one dfpipe
/// can name: a file that starts with a UTF-8 byte order mark (Arrow's reader does not skip it;
/// its CSV reader does), else a key that changes JSON type ([`crate::engine::json_keys::type_change`],
/// local files only).
async fn json_unreadable(
    store: &Arc<dyn object_store::ObjectStore>,
    root: &datafusion::execution::object_store::ObjectStoreUrl,
    files: &[object_store::ObjectMeta],
) -> Option<String> {
    let url = |f: &object_store::ObjectMeta| format!("{}{}", root.as_str(), f.location);
    let shown = |url: &str| url.strip_prefix("file://").unwrap_or(url).to_string();
    for f in files {
        let head = object_store::ObjectStoreExt::get_range(store, &f.location, 0..f.size.min(3)).await;
        if head.is_ok_and(|h| h.as_ref() == b"\xEF\xBB\xBF") {
            return Some(format!(
                "{} starts with a UTF-8 byte order mark, which the JSON reader does not take; save it as UTF-8 \
                 without one",
                shown(&url(f))
            ));
        }
    }
    files.iter().find_map(|f| {
        let url = url(f);
        crate::engine::json_keys::type_change(&url).map(|change| format!("{}: {change}", shown(&url)))
    })
}

/// The schema DataFusion's reader is given for the files of `source` (of `schema`), and the
/// columns it would get wrong with their types, which [`typed_view`] gives them over the reader
/// (none: `schema` itself).
///
/// CSV: with `null_regex`, every column (its reader does not apply the regex, only its type
/// inference does); without, the decimals, those of `schema` and those the source's `clean:`
/// makes decimal (`decimals`, see [`clean_decimals`]) — its reader truncates digits past the
/// scale, and a float read first loses digits (1.005 became 1.00), where a cast from the text
/// rounds as DuckDB and PostgreSQL do. The file is then read all as text.
///
/// JSON: the same decimals, and the integers. Arrow's JSON reader parses a number's own text
/// into a decimal but truncates it at the scale (1.005 as `DECIMAL(10,2)` became 1.00), a float
/// loses digits, and a fraction in an integer column was cut (2.7 became 2, where DuckDB and
/// PostgreSQL's numeric give 3); they are read as a decimal of one more digit of scale and 76
/// digits in all ([`wider_decimal`]), which the cast then rounds (half away from zero).
fn reread(
    source: &SourceConfig,
    schema: &SchemaRef,
    decimals: &BTreeMap<String, DataType>,
) -> (SchemaRef, BTreeMap<String, DataType>) {
    let type_of = |f: &Field| decimals.get(f.name()).unwrap_or(f.data_type()).clone();
    let with_types = |file_type: &dyn Fn(&Field) -> DataType| {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(file_type(f)).with_nullable(true))
            .collect();
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    };
    match source.format {
        Format::Csv => {
            let all = source.options.null_regex.is_some();
            if !all && decimals.is_empty() && !schema.fields().iter().any(|f| is_decimal(f.data_type())) {
                return (schema.clone(), BTreeMap::new());
            }
            // Every column goes through the view, so the file is read all as text; only these are cast.
            let types = schema.fields().iter().map(|f| (f.name().clone(), type_of(f))).collect();
            (with_types(&|_| DataType::Utf8), types)
        }
        Format::Json => {
            // Inside structs and lists too: their numbers go through the same reader.
            let wider = |t: &DataType| number_leaves(t, &|leaf| Some(wider_decimal(leaf)));
            let types: BTreeMap<String, DataType> = schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), type_of(f)))
                .filter(|(_, t)| wider(t).is_some())
                .collect();
            if types.is_empty() {
                return (schema.clone(), types);
            }
            let file_schema = with_types(&|f| match types.get(f.name()) {
                Some(t) => wider(t).unwrap_or_else(|| t.clone()),
                None => f.data_type().clone(),
            });
            (file_schema, types)
        }
        Format::Parquet => (schema.clone(), BTreeMap::new()),
    }
}

/// The decimal a JSON column of decimal type `t` is read as (see [`reread`]): 76 digits, one
/// more of them after the point than `t` keeps. Cutting a value there and rounding it to `t`'s
/// scale gives what rounding the value itself gives: the halfway point of `t`'s scale has a
/// digit at that place, so the cut never crosses it.
fn wider_decimal(t: &DataType) -> DataType {
    let scale = match t {
        DataType::Decimal32(_, s)
        | DataType::Decimal64(_, s)
        | DataType::Decimal128(_, s)
        | DataType::Decimal256(_, s) => *s,
        _ => 0,
    };
    DataType::Decimal256(76, scale.saturating_add(1).min(76))
}

/// `t` with each integer or decimal in it (itself, or a field of a struct or the item of a list,
/// at any depth) replaced by what `leaf` gives it; None when `t` holds no such number or `leaf`
/// keeps them all.
fn number_leaves(t: &DataType, leaf: &dyn Fn(&DataType) -> Option<DataType>) -> Option<DataType> {
    let field = |f: &FieldRef| {
        number_leaves(f.data_type(), leaf).map(|t| Arc::new(f.as_ref().clone().with_data_type(t).with_nullable(true)))
    };
    match t {
        t if t.is_integer() || is_decimal(t) => leaf(t),
        DataType::Struct(fields) => {
            let mapped: Vec<Option<FieldRef>> = fields.iter().map(field).collect();
            mapped.iter().any(Option::is_some).then(|| {
                let fields = mapped.into_iter().zip(fields.iter()).map(|(new, old)| new.unwrap_or_else(|| old.clone()));
                DataType::Struct(fields.collect())
            })
        }
        DataType::List(item) => field(item).map(DataType::List),
        DataType::LargeList(item) => field(item).map(DataType::LargeList),
        _ => None,
    }
}

fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// The columns of `schema` the source's `clean:` makes decimal, and their types: a cast to a
/// decimal type, or a float column under `clean.decimals`. Read from the text, not a float.
async fn clean_decimals(ctx: &SessionContext, source: &SourceConfig, schema: &Schema) -> BTreeMap<String, DataType> {
    let Some(clean) = &source.clean else { return BTreeMap::new() };
    let mut decimals = BTreeMap::new();
    for field in schema.fields() {
        let cast = clean.casts.iter().find(|(c, _)| c == field.name());
        let data_type = match (cast, clean.decimals, field.data_type()) {
            // A cast the view cannot make is reported where the view is made.
            (Some((_, sql_type)), _, _) => sql_type_to_arrow(ctx, sql_type).await.ok().filter(is_decimal),
            (None, Some(scale), DataType::Float16 | DataType::Float32 | DataType::Float64) => {
                Some(DataType::Decimal128(38, scale as i8))
            }
            _ => None,
        };
        if let Some(data_type) = data_type {
            decimals.insert(field.name().clone(), data_type);
        }
    }
    decimals
}

/// `table` (read as [`reread`] says) as a view giving each column in `types` its type: NULL
/// where `null_regex` matches the whole text, else the value cast (which fails on a value that
/// is not of the type, as the reader would); and the partition columns in `escaped` their values
/// unescaped ([`crate::engine::hive_value`]).
fn typed_view(
    table: Arc<dyn TableProvider>,
    types: &BTreeMap<String, DataType>,
    null_regex: Option<&str>,
    escaped: &BTreeSet<String>,
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    use datafusion::common::{Column, ScalarValue};
    use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, lit, when};
    const RAW: &str = "raw";
    let columns: Vec<Expr> = table
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let column = Expr::Column(Column::new(Some(TableReference::bare(RAW)), f.name()));
            let Some(data_type) = types.get(f.name()) else {
                return Ok(match escaped.contains(f.name()) {
                    true => crate::engine::hive_value::call(column).alias(f.name()),
                    false => column,
                });
            };
            // The text is NULLed first, then cast: a CASE around the cast would be rewritten
            // into a form that casts every value, those the regex matches too.
            let text = match null_regex {
                Some(regex) => {
                    let null = lit(ScalarValue::Utf8(None));
                    let whole = format!("^(?:{regex})$");
                    when(datafusion::functions::expr_fn::regexp_like(column.clone(), lit(whole), None), null)
                        .otherwise(column)?
                }
                None => column,
            };
            let value = match data_type {
                DataType::Utf8 => text,
                // Arrow's text-to-decimal cast rounds, but reads no exponent: `1.5e3` is
                // written out in digits first, never through a float.
                t if is_decimal(t) && f.data_type() == &DataType::Utf8 => {
                    cast(crate::engine::plain_decimal::call(text, t), t.clone())
                }
                // JSON numbers read as wider decimals (see `reread`): an integer is rounded to a
                // decimal of no scale first, as Arrow's cast to an integer cuts the fraction.
                t if f.data_type() != &DataType::Utf8 && f.data_type() != t => {
                    let whole = |leaf: &DataType| leaf.is_integer().then_some(DataType::Decimal256(76, 0));
                    match number_leaves(t, &whole) {
                        Some(rounded) => cast(cast(text, rounded), t.clone()),
                        None => cast(text, t.clone()),
                    }
                }
                _ => cast(text, data_type.clone()),
            };
            Ok(value.alias(f.name()))
        })
        .collect::<datafusion::error::Result<_>>()?;
    let scan = LogicalPlanBuilder::scan(RAW, datafusion::datasource::provider_as_source(table), None)?;
    let plan = scan.project(columns)?.build()?;
    Ok(Arc::new(datafusion::datasource::ViewTable::new(plan, None)))
}

/// Replaces the inferred types of the columns named in the source's `schema:`.
async fn apply_schema_overrides(ctx: &SessionContext, source: &SourceConfig, inferred: SchemaRef) -> Result<SchemaRef> {
    if source.schema.is_empty() {
        return Ok(inferred);
    }
    let mut fields: Vec<Field> = inferred.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (column, sql_type) in &source.schema {
        let Some(field) = fields.iter_mut().find(|f| f.name() == column) else {
            let names: Vec<&str> = inferred.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(source_error(
                source,
                &format!(
                    "schema: no column `{column}` in the file{}; columns: {}",
                    crate::util::suggest::did_you_mean(column, names.iter().copied()),
                    names.join(", ")
                ),
            ));
        };
        // A type name that does not read is the config's error (exit 2), as any other.
        let data_type = sql_type_to_arrow(ctx, sql_type).await.map_err(|msg| {
            Error::Config(format!("source `{}` ({}): schema: column `{column}`: {msg}", source.name, source.path))
        })?;
        *field = Field::new(column, data_type, true);
    }
    Ok(Arc::new(Schema::new_with_metadata(fields, inferred.metadata().clone())))
}
